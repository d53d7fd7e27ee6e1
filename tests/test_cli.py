"""The command line: train -> sample round trip on a tiny budget, and clear one-line errors."""

import argparse
import re
import time
from pathlib import Path

import pytest
import torch

from diffusionlab.checkpoints import load_checkpoint
from diffusionlab import cli
from diffusionlab.cli import main


def test_train_then_sample_round_trip(tmp_path, capsys):
    ckpt = tmp_path / "cond.pt"
    assert main(["train", "cond", "--steps", "3", "--batch-size", "16", "--checkpoint", str(ckpt), "--device", "cpu"]) == 0
    assert "training images/s" in capsys.readouterr().out
    out = tmp_path / "s.pt"
    assert main(["sample", "--model", "cond", "--n", "12", "--steps", "2", "--guidance", "2", "--checkpoint", str(ckpt),
                 "--out", str(out), "--png", str(tmp_path / "s.png"), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "sampled 12 images" in printed and " s (" in printed
    result = torch.load(out, weights_only=True)
    assert result["images"].shape == (12, 1, 28, 28) and result["images"].dtype == torch.float32
    assert 0 <= result["images"].min() and result["images"].max() <= 1
    assert result["labels"].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert (tmp_path / "s.png").exists()
    assert main(["score", str(out)]) == 0
    assert "12 images: FD" in capsys.readouterr().out
    # same seed, same samples
    out2 = tmp_path / "s2.pt"
    main(["sample", "--model", "cond", "--n", "12", "--steps", "2", "--checkpoint", str(ckpt), "--out", str(out2),
          "--device", "cpu"])
    assert torch.equal(result["images"], torch.load(out2, weights_only=True)["images"])
    # resuming the training continues from the checkpoint
    assert main(["train", "cond", "--steps", "5", "--batch-size", "16", "--checkpoint", str(ckpt), "--device", "cpu"]) == 0
    assert "resuming 'cond' from step 3" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["sample", "--guidance", "50"], "guidance_scale must be a number from 0 to 20"),
    (["sample", "--steps", "0"], "must be at least 1"),
    (["sample", "--steps", "1001", "--checkpoint", "CKPT"], "steps must be an integer from 1 to T=1000"),
    (["sample", "--n", "ten"], "expected a whole number"),
    (["sample", "--sampler", "euler"], "invalid choice: 'euler'"),
    (["sample", "--checkpoint", "missing.pt"], "missing.pt does not exist"),
    (["sample", "--model", "ddpm", "--checkpoint", "CKPT"], "holds a 'cond' model, but a 'ddpm' model was asked for"),
    (["train", "unet"], "invalid choice: 'unet'"),
    (["train", "cond", "--minutes", "-1"], "must be positive"),
])
def test_bad_arguments_give_one_line_errors(argv, message, tmp_path, capsys):
    ckpt = tmp_path / "cond.pt"
    if "CKPT" in argv:
        main(["train", "cond", "--steps", "1", "--batch-size", "8", "--checkpoint", str(ckpt), "--device", "cpu"])
        capsys.readouterr()
        argv = [str(ckpt) if a == "CKPT" else a for a in argv]
    try:
        code = main(argv + ["--device", "cpu"] if argv[0] == "sample" else argv)
    except SystemExit as exit:  # argparse's own errors
        code = exit.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def _train(ckpt, *extra):
    return main(["train", "cond", "--batch-size", "8", "--checkpoint", str(ckpt), "--device", "cpu", *extra])


def _same_training_state(a, b):
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    assert sa["step"] == sb["step"] and sa["history"] == sb["history"]
    for key in ("model", "ema"):
        assert all(torch.equal(sa[key][k], sb[key][k]) for k in sa[key])


@pytest.fixture(scope="module")
def four_steps(tmp_path_factory):
    """An uninterrupted 4-step run, to compare the resumed runs with."""
    ckpt = tmp_path_factory.mktemp("reference") / "cond.pt"
    assert _train(ckpt, "--steps", "4") == 0
    return ckpt


def test_resume_continues_to_the_new_budget_and_keeps_the_seed(tmp_path, capsys, four_steps):
    ckpt = tmp_path / "cond.pt"
    assert _train(ckpt, "--steps", "1") == 0
    capsys.readouterr()
    assert _train(ckpt, "--steps", "4", "--seed", "3") == 0
    out = capsys.readouterr().out
    assert f"resuming 'cond' from step 1 of {ckpt}" in out and "to step 4" in out
    assert "--seed 3 differs from the checkpoint's seed 0; the checkpoint's seed is kept" in out
    assert "done: step 4" in out
    _same_training_state(ckpt, four_steps)  # within the warm-up, so bit-exact with an uninterrupted run
    assert _train(ckpt, "--steps", "4") == 0
    assert "already reached the budget: nothing to train" in capsys.readouterr().out


def test_ctrl_c_saves_and_the_same_command_resumes_exactly(tmp_path, capsys, monkeypatch, four_steps):
    import os
    import signal

    import diffusionlab.train as train_module

    calls, ema_update = [], train_module.ema_update

    def ema_update_then_ctrl_c(ema, model, decay):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        ema_update(ema, model, decay)

    monkeypatch.setattr(train_module, "ema_update", ema_update_then_ctrl_c)
    ckpt = tmp_path / "cond.pt"
    assert _train(ckpt, "--steps", "4") == 130
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"diffusionlab train: training interrupted at step 2; saved {ckpt}: train again with the same "
                   "checkpoint and budget to resume exactly")
    monkeypatch.setattr(train_module, "ema_update", ema_update)
    assert _train(ckpt, "--steps", "4") == 0
    assert "resuming 'cond' from step 2" in capsys.readouterr().out
    _same_training_state(ckpt, four_steps)


@pytest.fixture
def no_work(monkeypatch):
    """Make any sampling, training or scoring fail loudly: the errors under test must come before the work."""
    from diffusionlab import course, metrics

    def work(*args, **kwargs):
        raise AssertionError("the work started before the input was checked")

    monkeypatch.setattr(course, "load", work)
    monkeypatch.setattr(course, "train_model", work)
    monkeypatch.setattr(course, "export_weights", work)
    monkeypatch.setattr(metrics, "SampleScorer", work)
    monkeypatch.setattr(metrics, "train_classifier", work)


def _bad_inputs(tmp_path):
    import shutil

    from diffusionlab import course

    shutil.copy(course.shipped_checkpoint("cond"), tmp_path / "shipped.pt")
    (tmp_path / "notes.txt").write_text("not samples\n")
    torch.save({"a": 1}, tmp_path / "other.pt")
    torch.save({"images": torch.rand(2, 1, 28, 28) * 2 - 1}, tmp_path / "signed.pt")  # [-1, 1], not [0, 1]
    (tmp_path / "broken.pt").write_bytes(b"garbage")
    return tmp_path


@pytest.mark.parametrize("argv, message", [
    (["sample", "--out", "/sys/o.pt"], "cannot write --out /sys/o.pt: Permission denied"),
    (["sample", "--png", "/sys/grid.png"], "cannot write --png /sys/grid.png: Permission denied"),
    (["sample", "--out", "/tmp"], "--out /tmp is a directory; give a file name, such as /tmp/samples.pt"),
    (["sample", "--device", "gpu"], "unknown device 'gpu'; the devices here are: cpu"),
    (["train", "cond", "--device", "gpu"], "unknown device 'gpu'; the devices here are: cpu"),
    (["train", "cond", "--checkpoint", "TMP/shipped.pt"],
     "holds only a model's weights (a weights-only file, as the course ships in data/checkpoints/), not a training "
     "state, so training cannot resume from it. To train from scratch, give another checkpoint path"),
    (["train", "cond", "--checkpoint", "/tmp"], "checkpoint /tmp is a directory"),
    (["score", "TMP/notes.txt"], "notes.txt is not a samples file (it could not be read as one)"),
    (["score", "TMP/other.pt"], "other.pt is not a samples file (no 'images' of shape (N, 1, 28, 28))"),
    (["score", "TMP/signed.pt"], "signed.pt: 'images' must be in [0, 1], got -"),
    (["train", "cond", "--checkpoint", "TMP/shipped.pt"], "or `diffusionlab sample --model cond --checkpoint "),
    (["sample", "--model", "text", "--prompt", "a seven", "--out", "/tmp"],
     "--out /tmp is a directory; give a file name, such as /tmp/samples.pt"),
    (["sample", "--model", "text", "--prompt", "a seven", "--png", "/sys/grid.png"],
     "cannot write --png /sys/grid.png: Permission denied"),
    (["export", "TMP/shipped.pt", "/tmp"], "out /tmp is a directory; give a file name, such as /tmp/shipped.pt"),
    (["export", "TMP/shipped.pt", "/proc/nope.pt"], "cannot write out /proc/nope.pt"),
    (["classifier", "--out", "/tmp"], "--out /tmp is a directory; give a file name, such as /tmp/classifier.pt"),
    (["sample", "--model", "ddpm", "--guidance", "3"],
     "--guidance needs a conditional model (cond, flow, reflow, text, text-printed); ddpm is unconditional"),
    (["train", "cond", "--base", "foo"],
     "--base is an option of `train finetune`, `train reflow` and `train pix2pix`, not of `train cond`"),
    (["train", "flow", "--lora", "2", "--data", "printed"],
     "--data, --lora: options of `train finetune` (--data, --lora, --from-scratch, --n-images), not of `train flow`"),
])
def test_bad_input_is_refused_in_one_line_before_any_work(argv, message, tmp_path, capsys, no_work):
    if "gpu" in argv and torch.cuda.is_available():
        message = "unknown device 'gpu'; the devices here are: cpu, cuda"
    argv = [a.replace("TMP", str(_bad_inputs(tmp_path))) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err and "weights_only" not in err and len(err.strip().splitlines()) == 1


def test_a_corrupt_checkpoint_gets_one_plain_line(tmp_path, capsys):
    broken = _bad_inputs(tmp_path) / "broken.pt"
    for argv in (["sample", "--checkpoint", str(broken), "--out", str(tmp_path / "s.pt")],
                 ["train", "cond", "--checkpoint", str(broken)]):
        assert main(argv + ["--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert f"could not read {broken}: it is not a valid diffusionlab checkpoint" in err
        assert "Traceback" not in err and "weights_only" not in err and "issue" not in err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s.pt").exists()


def test_png_into_a_new_directory(tmp_path, capsys):
    png = tmp_path / "new" / "dir" / "grid.png"
    assert main(["sample", "--n", "2", "--steps", "1", "--out", str(tmp_path / "s.pt"), "--png", str(png),
                 "--device", "cpu"]) == 0
    assert png.exists()


def test_classifier_saves_under_checkpoints_by_default_and_leaves_the_shipped_scorer(tmp_path, monkeypatch, capsys):
    from diffusionlab import cli, metrics

    shipped = metrics.CLASSIFIER_PATH.read_bytes()
    assert cli.build_parser().parse_args(["classifier"]).out == Path("checkpoints/classifier.pt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(metrics, "train_classifier", lambda epochs: metrics.Classifier())  # untrained: the saving is tested
    monkeypatch.setattr(metrics, "accuracy", lambda model, x, y: 0.1)
    assert main(["classifier"]) == 0
    out = capsys.readouterr().out
    assert "wrote checkpoints/classifier.pt" in out and "load_classifier('checkpoints/classifier.pt')" in out
    metrics.load_classifier(tmp_path / "checkpoints" / "classifier.pt")
    assert metrics.CLASSIFIER_PATH.read_bytes() == shipped


def test_every_option_of_every_command_says_what_it_is_in_help():
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    silent = [f"{name} {action.option_strings[0] if action.option_strings else action.dest}"
              for name, parser in sub.choices.items() for action in parser._actions
              if not isinstance(action, argparse._HelpAction) and not action.help]
    assert not silent, f"options without help text: {silent}"


def test_the_training_rate_counts_the_steps_time_not_loading_the_data(tmp_path, capsys, monkeypatch):
    from diffusionlab import course

    train_model = course.train_model

    def slow_to_start(*args, **kwargs):  # as the text model, which encodes the whole training set first
        time.sleep(2.0)
        return train_model(*args, **kwargs)

    monkeypatch.setattr(course, "train_model", slow_to_start)
    assert _train(tmp_path / "cond.pt", "--steps", "2") == 0
    done = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("done:"))
    times = re.search(r"([\d.]+) s of training \(([\d.]+) s in all\)", done)
    assert times, done
    training, elapsed = map(float, times.groups())
    assert elapsed - training >= 2.0, done
