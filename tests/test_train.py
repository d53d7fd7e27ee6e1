import pytest
import torch

from diffusionlab.checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from diffusionlab.data import load_mnist
from diffusionlab.schedules import NoiseSchedule
from diffusionlab.losses import diffusion_loss
from diffusionlab.models.unet import UNet, UNetConfig
from diffusionlab.train import ema_update, lr_at, train

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
    for steps in (0, 1.5, "10"):
        with pytest.raises(ValueError, match=f"steps must be a whole number of optimiser steps, at least 1, "
                                             f"got {steps!r}"):
            train(model, None, x, y, steps=steps)
    with pytest.raises(ValueError, match="batch_size 512 is larger than the 256 training images: give a batch of at "
                                         "most 256"):
        train(model, None, x, y, steps=1, batch_size=512)


def _tiny_run(path, x, y, steps, seed=0, warmup=100, amp=False, loss_scale=1.0, **kwargs):
    """A tiny model trained from the same initial weights each time, saving every 5 steps."""
    torch.manual_seed(0)
    model = UNet(CFG)
    schedule = NoiseSchedule(1000)
    loss_fn = lambda m, x0, labels, g: loss_scale * diffusion_loss(m, x0, labels, g, schedule)
    return model, train(model, loss_fn, x, y, steps=steps, batch_size=16, warmup=warmup, seed=seed, checkpoint=path,
                        checkpoint_every=5, metadata={"model_name": "tiny"}, progress=False, amp=amp, **kwargs)


def _same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_resume_continues_to_a_larger_budget(tmp_path, mnist_small):
    """1 step, then resumed with steps=4: it trains to step 4, and (all within the warm-up, where the learning
    rate does not depend on the budget) the result is bit-exact with an uninterrupted 4-step run."""
    x, y = mnist_small
    model_a, (ema_a, hist_a) = _tiny_run(None, x, y, steps=4)
    _tiny_run(tmp_path / "b.pt", x, y, steps=1)
    model_b, (ema_b, hist_b) = _tiny_run(tmp_path / "b.pt", x, y, steps=4)
    assert hist_b["step"] == [1, 2, 3, 4] and load_checkpoint(tmp_path / "b.pt")["step"] == 4
    assert _same_weights(model_a, model_b) and _same_weights(ema_a, ema_b)
    assert hist_a == hist_b


def test_resume_past_the_warmup_follows_the_new_schedule(tmp_path, mnist_small):
    """Past the warm-up, the steps taken followed the old budget's schedule and the rest follow the new one's."""
    x, y = mnist_small
    _tiny_run(tmp_path / "c.pt", x, y, steps=6, warmup=2)
    _, (_, hist) = _tiny_run(tmp_path / "c.pt", x, y, steps=10, warmup=2)
    assert hist["step"] == list(range(1, 11))
    assert hist["lr"] == pytest.approx([lr_at(s, 6, 2e-3, 2) for s in range(6)] +
                                       [lr_at(s, 10, 2e-3, 2) for s in range(6, 10)])
    # a checkpoint already at its budget trains no further
    _, (_, again) = _tiny_run(tmp_path / "c.pt", x, y, steps=8, warmup=2)
    assert again["step"][-1] == 10 and load_checkpoint(tmp_path / "c.pt")["step"] == 10


def test_resume_keeps_the_checkpoints_seed_and_says_so(tmp_path, mnist_small):
    x, y = mnist_small
    model_a, _ = _tiny_run(None, x, y, steps=8)
    _tiny_run(tmp_path / "s.pt", x, y, steps=8, stop_after=6)  # crashed; the checkpoint holds step 5
    with pytest.warns(UserWarning, match=r"seed=7 was given, but .*s\.pt was trained with seed=0"):
        model_b, _ = _tiny_run(tmp_path / "s.pt", x, y, steps=8, seed=7)
    assert _same_weights(model_a, model_b)


def test_minutes_count_the_training_time_of_every_session(tmp_path, mnist_small):
    x, y = mnist_small
    _tiny_run(tmp_path / "m.pt", x, y, steps=3)
    state = load_checkpoint(tmp_path / "m.pt")
    assert state["seconds"] > 0
    # a time budget that the first session already used up: nothing more is trained
    _, (_, hist) = _tiny_run(tmp_path / "m.pt", x, y, steps=None, minutes=state["seconds"] / 60 / 2)
    assert hist["step"][-1] == 3 and load_checkpoint(tmp_path / "m.pt")["step"] == 3


def test_fp16_training_resumes_exactly(tmp_path, mnist_small):
    """fp16 scales the loss (GradScaler). The scaled loss is made large enough that the first steps overflow
    and the scale is halved: a resumed run that started again from the initial scale would skip other steps."""
    x, y = mnist_small
    run = dict(steps=8, amp=torch.float16, loss_scale=1e4)
    model_a, (ema_a, hist_a) = _tiny_run(tmp_path / "a.pt", x, y, **run)
    scale = load_checkpoint(tmp_path / "a.pt")["scaler"]["scale"]
    assert scale < 2.0**16  # the overflows happened
    _tiny_run(tmp_path / "b.pt", x, y, stop_after=6, **run)  # crash; the checkpoint holds step 5
    model_b, (ema_b, hist_b) = _tiny_run(tmp_path / "b.pt", x, y, **run)
    assert load_checkpoint(tmp_path / "b.pt")["scaler"]["scale"] == scale
    assert _same_weights(model_a, model_b) and _same_weights(ema_a, ema_b)
    assert hist_a == hist_b


def test_ctrl_c_saves_the_last_step_and_resumes_exactly(tmp_path, mnist_small):
    x, y = mnist_small
    model_a, (ema_a, _) = _tiny_run(None, x, y, steps=9)
    schedule = NoiseSchedule(1000)
    calls = []

    def interrupted_loss(m, x0, labels, g):
        calls.append(1)
        if len(calls) == 4:  # Ctrl-C while computing the 4th step (step 3): steps 0-2 are done
            raise KeyboardInterrupt
        return diffusion_loss(m, x0, labels, g, schedule)

    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt, match=r"interrupted at step 3; saved .*i\.pt"):
        train(UNet(CFG), interrupted_loss, x, y, steps=9, batch_size=16, checkpoint=tmp_path / "i.pt",
              checkpoint_every=5, metadata={"model_name": "tiny"}, progress=False, amp=False)
    assert load_checkpoint(tmp_path / "i.pt")["step"] == 3
    model_b, (ema_b, _) = _tiny_run(tmp_path / "i.pt", x, y, steps=9)
    assert _same_weights(model_a, model_b) and _same_weights(ema_a, ema_b)
    assert not list(tmp_path.glob("*.tmp"))


def test_ctrl_c_during_an_update_finishes_the_step_first(tmp_path, mnist_small, monkeypatch):
    """A real Ctrl-C (SIGINT) that arrives while the weights are being updated takes effect once the step is
    complete, so the saved state is consistent and the resumed run exact."""
    import os
    import signal

    import diffusionlab.train as train_module

    x, y = mnist_small
    model_a, (ema_a, _) = _tiny_run(None, x, y, steps=7)
    calls, ema_update = [], train_module.ema_update

    def ema_update_interrupted(ema, model, decay):
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)  # after the optimizer step, before the EMA is updated
        ema_update(ema, model, decay)

    monkeypatch.setattr(train_module, "ema_update", ema_update_interrupted)
    with pytest.raises(KeyboardInterrupt, match="interrupted at step 3"):
        _tiny_run(tmp_path / "u.pt", x, y, steps=7)
    monkeypatch.setattr(train_module, "ema_update", ema_update)
    model_b, (ema_b, _) = _tiny_run(tmp_path / "u.pt", x, y, steps=7)
    assert _same_weights(model_a, model_b) and _same_weights(ema_a, ema_b)


def test_ctrl_c_without_a_checkpoint_says_nothing_was_saved(mnist_small):
    x, y = mnist_small

    def loss_fn(m, x0, labels, g):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt, match="nothing was saved, as no checkpoint path was given"):
        train(UNet(CFG), loss_fn, x, y, steps=3, batch_size=16, progress=False, amp=False)


def test_ema_update_arithmetic():
    ema, model = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in ema.parameters()]
    ema_update(ema, model, 0.9)
    for e, b, p in zip(ema.parameters(), before, model.parameters()):
        assert torch.allclose(e, 0.9 * b + 0.1 * p, atol=1e-7)


def test_training_keeps_an_ema_of_the_weights(mnist_small):
    """After one step (decay min(0.999, 1/10) = 0.1) the EMA is 0.1 * initial + 0.9 * trained weights."""
    x, y = mnist_small
    torch.manual_seed(0)
    model = UNet(CFG)
    initial = [p.detach().clone() for p in model.parameters()]
    schedule = NoiseSchedule(1000)
    ema, _ = train(model, lambda m, x0, labels, g: diffusion_loss(m, x0, labels, g, schedule), x, y, steps=1,
                   batch_size=16, progress=False, amp=False)
    changed = 0
    for e, w0, w1 in zip(ema.parameters(), initial, model.parameters()):
        assert torch.allclose(e, 0.1 * w0 + 0.9 * w1, atol=1e-6)
        changed += not torch.equal(w0, w1)
    assert changed > 0
