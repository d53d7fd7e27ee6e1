"""The command line: train -> sample round trip on a tiny budget, and clear one-line errors."""

import pytest
import torch

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
