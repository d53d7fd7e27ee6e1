"""Checkpoints: atomic saves, clear messages for bad files, and the EMA weights used for sampling."""

import pickle
import shutil

import pytest
import torch

from diffusionlab import course
from diffusionlab import checkpoints
from diffusionlab.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from diffusionlab.train import train
from diffusionlab.models.unet import UNet, UNetConfig


@pytest.mark.parametrize("crash", [OSError("No space left on device"), KeyboardInterrupt()])
def test_a_crash_in_the_middle_of_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, crash):
    path = tmp_path / "c.pt"
    save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def save_half_then_crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 the first bytes of a checkpoint")
        raise crash

    monkeypatch.setattr(torch, "save", save_half_then_crash)
    with pytest.raises(type(crash)):
        save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


class _Code:
    def __reduce__(self):
        return (print, ("code ran",))


def _bad_files(tmp_path):
    save_checkpoint({"model_name": "cond", "w": torch.ones(1000)}, tmp_path / "good.pt")
    whole = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 2])  # a copy that stopped half way
    (tmp_path / "text.pt").write_text("not a checkpoint\n")
    with open(tmp_path / "code.pt", "wb") as f:  # a pickle that would run code: refused, as weights_only=True does
        pickle.dump({"format": "diffusionlab-checkpoint-v1", "x": _Code()}, f)
    return ["cut.pt", "text.pt", "code.pt"]


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_a_bad_checkpoint_gets_a_plain_message_without_torchs_advice(tmp_path):
    for name in _bad_files(tmp_path):
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(tmp_path / name, "cond")
        message = str(err.value)
        assert f"could not read {tmp_path / name}: it is not a valid diffusionlab checkpoint" in message
        assert "diffusionlab train cond" in message  # how to get a good one
        for advice in ("weights_only", "issue", "PyTorch", "torch.load", "Traceback"):
            assert advice not in message, (name, message)
        assert len(message.splitlines()) == 1


@pytest.mark.parametrize("name, command", [
    ("cond", "diffusionlab train cond"), ("classifier", "diffusionlab classifier"),
    ("text-printed", "diffusionlab train finetune"), ("reflow-pairs", "diffusionlab make-reflow-pairs"),
])
def test_a_missing_checkpoint_names_the_command_that_makes_one(tmp_path, name, command):
    with pytest.raises(CheckpointError, match=f"does not exist. Train one with `{command}` or pass"):
        load_checkpoint(tmp_path / "missing.pt", name)


def test_training_cannot_resume_from_a_weights_only_file(tmp_path):
    path = tmp_path / "cond.pt"
    shutil.copy(course.shipped_checkpoint("cond"), path)
    with pytest.raises(CheckpointError, match=r"holds only a model's weights \(a weights-only file.*cannot resume"):
        checkpoints.load_training_state(path, "cond")
    x = torch.zeros(8, 1, 28, 28)
    with pytest.raises(CheckpointError, match="cannot resume from it. To train from scratch, give another"):
        train(UNet(UNetConfig(channels=(8, 16), attention=(False, False))), None, x, steps=2, batch_size=8,
              checkpoint=path, metadata={"model_name": "cond"}, progress=False)
    assert path.read_bytes() == course.shipped_checkpoint("cond").read_bytes()  # left as it was


def test_the_course_model_samples_with_the_ema_weights(tmp_path):
    """train_model returns, and course.load loads, the EMA weights (not the last weights of training)."""
    path = tmp_path / "cond.pt"
    trained, _ = course.train_model("cond", steps=3, checkpoint=path, batch_size=16, limit=64, progress=False,
                                    amp=False)
    state = load_checkpoint(path)
    loaded = course.load("cond", path)
    for name, w in trained.unet.state_dict().items():
        assert torch.equal(w, state["ema"][name]) and torch.equal(loaded.unet.state_dict()[name], w)
    assert any(not torch.equal(state["ema"][k], state["model"][k]) for k in state["model"])
    # and the sampler calls that network: eps_fn's output is the EMA network's
    raw = UNet(course.RECIPES["cond"].config)
    raw.load_state_dict(state["model"])
    xt, t, y = torch.randn(4, 1, 28, 28), torch.full((4,), 500), torch.arange(4)
    with torch.no_grad():
        eps = loaded.eps_fn(y)(xt, t)
        assert torch.allclose(eps, loaded.unet(xt, t, y), atol=1e-6)
        assert not torch.allclose(eps, raw.eval()(xt, t, y), atol=1e-4)


def test_a_file_of_another_kind_is_named_by_what_it_holds(tmp_path):
    """The instruction pairs of `make-pairs` (kind 'pairs', no model name) given where reflow's pairs or a model
    are wanted: the error says what the file holds and what makes the right one, not "holds a None model"."""
    pairs = save_checkpoint({"kind": "pairs", "inputs": torch.zeros(1)}, tmp_path / "pairs.pt")
    with pytest.raises(CheckpointError, match=r"pairs.pt holds 'pairs' data, not reflow's \(noise, sample\) pairs; "
                                              r"make them with `diffusionlab make-reflow-pairs`"):
        load_checkpoint(pairs, "reflow-pairs")
    with pytest.raises(CheckpointError, match=r"pairs.pt holds 'pairs' data, not a model's weights\. Pass the "
                                              r"checkpoint of a 'cond' model\."):
        load_checkpoint(pairs, "cond")
    record = save_checkpoint({"kind": "training-record", "model_name": "cond"}, tmp_path / "cond_record.pt")
    with pytest.raises(CheckpointError, match=r"cond_record.pt holds 'training-record' data \(the record of a 'cond' "
                                              r"run: records.load_record reads it\), not a model's weights"):
        load_checkpoint(record, "cond")
    flow = save_checkpoint({"model_name": "flow"}, tmp_path / "flow.pt")
    with pytest.raises(CheckpointError, match=r"flow.pt holds a 'flow' model, not reflow's \(noise, sample\) pairs"):
        load_checkpoint(flow, "reflow-pairs")
    with pytest.raises(CheckpointError, match=r"holds a 'flow' model, but a 'cond' model was asked for\. Pass the "
                                              r"checkpoint of a 'cond' model\."):
        load_checkpoint(flow, "cond")


def test_export_of_a_file_without_weights_says_what_it_takes(tmp_path):
    pairs = save_checkpoint({"kind": "pairs", "inputs": torch.zeros(1)}, tmp_path / "pairs.pt")
    with pytest.raises(CheckpointError, match=r"pairs.pt holds no model weights .* export takes a checkpoint saved by "
                                              r"`diffusionlab train`"):
        course.export_weights(pairs, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
