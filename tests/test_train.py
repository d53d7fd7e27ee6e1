import pytest
import torch

from diffusionlab.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from diffusionlab.data import load_mnist
from diffusionlab.schedules import NoiseSchedule
from diffusionlab.losses import diffusion_loss
from diffusionlab.train import lr_at, train
from diffusionlab.models.unet import UNet, UNetConfig

CFG = UNetConfig(channels=(8, 16), attention=(False, False), num_classes=10)


@pytest.fixture(scope="module")
def mnist_small():
    x, y = load_mnist("test")
    return x[:256], y[:256]


def test_tiny_model_overfits_a_batch(mnist_small):
    """Same images, same t and same noise every step: the loss must fall at least 10x."""
    x, y = mnist_small
    idx = torch.stack([torch.nonzero(y == c)[0, 0] for c in range(8)])  # one image of each class 0..7
    schedule = NoiseSchedule(1000)

    def fixed_loss(model, x0, labels, g):
        order = labels.argsort()  # the loop shuffles; undo it so each image keeps its noise
        return diffusion_loss(model, x0[order], labels[order], torch.Generator().manual_seed(0), schedule, p_uncond=0)

    torch.manual_seed(0)
    model = UNet(CFG)
    _, history = train(model, fixed_loss, x[idx], y[idx], steps=300, batch_size=8, lr=3e-3, warmup=10,
                       progress=False, amp=False)
    first, last = history["loss"][0], min(history["loss"][-10:])
    assert last < first / 10, (first, last)


def _run(path, x, y, **kwargs):
    torch.manual_seed(0)
    model = UNet(CFG)
    schedule = NoiseSchedule(1000)
    loss_fn = lambda m, x0, labels, g: diffusion_loss(m, x0, labels, g, schedule)
    return model, train(model, loss_fn, x, y, steps=40, batch_size=48, checkpoint=path, checkpoint_every=10,
                        metadata={"model_name": "tiny"}, progress=False, amp=False, **kwargs)


def test_resume_after_crash_equals_uninterrupted_run(tmp_path, mnist_small):
    x, y = mnist_small
    model_a, (ema_a, hist_a) = _run(tmp_path / "a.pt", x, y)
    # crash after step 25: the last checkpoint on disk is from step 20
    _run(tmp_path / "b.pt", x, y, stop_after=25)
    assert load_checkpoint(tmp_path / "b.pt")["step"] == 20
    model_b, (ema_b, hist_b) = _run(tmp_path / "b.pt", x, y)  # a fresh process would do the same
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(ema_a.state_dict().values(), ema_b.state_dict().values()):
        assert torch.equal(a, b)
    assert hist_a == hist_b
    assert not list(tmp_path.glob("*.tmp"))  # atomic saves leave no temporary files


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    save_checkpoint({"model_name": "ddpm"}, tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="holds a 'ddpm' model, but a 'cond' model was asked for"):
        load_checkpoint(tmp_path / "d.pt", "cond")
    torch.save({"a": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a diffusionlab checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "broken.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="could not read"):
        load_checkpoint(tmp_path / "broken.pt")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # the file is a plain pickle, on purpose
def test_checkpoint_refuses_pickled_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("code ran",))

    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"format": "diffusionlab-checkpoint-v1", "x": Evil()}, f)
    with pytest.raises(CheckpointError, match="could not read"):
        load_checkpoint(tmp_path / "evil.pt")


def test_lr_schedule():
    assert lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert lr_at(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert lr_at(100, 100, 1.0, 10) == pytest.approx(0.1)


def test_budget_errors(mnist_small):
    x, y = mnist_small
    model = UNet(CFG)
    with pytest.raises(ValueError, match="give a training budget"):
        train(model, None, x, y)
    with pytest.raises(ValueError, match="batch_size 512 is larger"):
        train(model, None, x, y, steps=1, batch_size=512)
