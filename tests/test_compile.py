"""`DiffusionModel.compile`: torch.compile for faster sampling, and a clear fallback where it cannot work."""

import pytest
import torch

from diffusionlab import course

LABELS = torch.tensor([3, 7])


def _sample(model, amp=True):
    return model.sample(2, LABELS, steps=5, generator=torch.Generator().manual_seed(0), progress=False, amp=amp)


def _rms(a, b):
    return (a - b).pow(2).mean().sqrt().item()


def test_compiled_model_matches_eager():
    eager = course.load("cond")
    compiled = course.load("cond").compile(batch_size=2)
    assert compiled.compiled is not None
    assert compiled.compile() is compiled  # compiling twice is a no-op

    # one guided forward pass (batch 2 x 2): the same prediction, up to bf16 rounding
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    t, y = torch.full((4,), 700), torch.tensor([3, 7, 10, 10])
    with torch.no_grad(), eager.autocast():
        assert _rms(eager.unet(x, t, y).float(), compiled.compiled(x, t, y).float()) < 0.02  # eps has rms ~1

    # not bit-identical (the compiler fuses and reorders the bf16 arithmetic): compiled and eager samples
    # differ no more than bf16 and fp32 samples of the same model do
    a, b = _sample(eager), _sample(compiled)
    assert _rms(a, b) < 1.5 * _rms(a, _sample(eager, amp=False))
    assert torch.equal(b, _sample(compiled))  # and the compiled model's samples are reproducible


def test_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    def broken_compile(module, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no C++ compiler found\nmore detail")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = course.load("cond")
    with pytest.warns(UserWarning, match="torch.compile does not work here .*no C\\+\\+ compiler found"):
        assert model.compile(batch_size=2) is model
    assert model.compiled is None
    assert torch.equal(_sample(model), _sample(course.load("cond")))


def test_cli_sample_compile(tmp_path, capsys):
    from diffusionlab.cli import main

    out = tmp_path / "samples.pt"
    assert main(["sample", "--n", "2", "--steps", "2", "--compile", "--device", "cpu", "--out", str(out)]) in (0, None)
    printed = capsys.readouterr().out
    assert "compiled the network in" in printed and "sampled 2 images" in printed
    assert torch.load(out, weights_only=True)["images"].shape == (2, 1, 28, 28)


def test_compiled_flow_model_matches_eager():
    """FlowModel.compile shares compile_unet: float times, guided batch of 2 x 2, the same samples up to bf16."""
    eager = course.load("flow")
    compiled = course.load("flow").compile(batch_size=2, n=3)  # batches of 2 and 1 compiled now
    assert compiled.compiled is not None and compiled.compile() is compiled

    def sample(model, amp=True):
        return model.sample(2, LABELS, steps=4, generator=torch.Generator().manual_seed(0), amp=amp)

    a, b = sample(eager), sample(compiled)
    assert _rms(a, b) < 1.5 * _rms(a, sample(eager, amp=False)) + 1e-3
    assert torch.equal(b, sample(compiled))


def test_cli_sample_flow_compile(tmp_path, capsys):
    from diffusionlab.cli import main

    out = tmp_path / "samples.pt"
    assert main(["sample", "--model", "flow", "--n", "2", "--steps", "2", "--compile", "--device", "cpu",
                 "--out", str(out)]) in (0, None)
    assert "compiled the network in" in capsys.readouterr().out
    assert torch.load(out, weights_only=True)["images"].shape == (2, 1, 28, 28)


def test_batch_sizes_are_those_sample_runs():
    from diffusionlab.pipelines.pixel import batch_sizes

    assert batch_sizes(1000, 64) == [64, 40]  # 15 full batches, then 40: both are compiled before sampling
    assert batch_sizes(128, 64) == [64] and batch_sizes(10, 64) == [10] and batch_sizes(None, 64) == [64]
