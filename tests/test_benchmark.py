"""The benchmark's baseline (Pearce's ContextUnet + DDPM) on tiny inputs, and smoke runs of the benchmark scripts."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from baseline_contextunet import BaselineDDPM, ContextUnet, ddpm_schedules, train_baseline  # noqa: E402


def test_context_unet_shapes_and_published_size():
    model = ContextUnet(n_feat=16)
    x, c = torch.randn(4, 1, 28, 28), torch.tensor([0, 3, 7, 9])
    out = model(x, c, torch.rand(4), torch.tensor([0.0, 1.0, 0.0, 1.0]))
    assert out.shape == (4, 1, 28, 28) and torch.isfinite(out).all()
    # the published network (n_feat=128): a count worked out by hand from its layers
    assert sum(p.numel() for p in ContextUnet().parameters()) == 6_585_601
    with pytest.raises(ValueError, match="divisible by 8"):
        ContextUnet(n_feat=12)


def test_dropped_context_ignores_the_label():
    torch.manual_seed(0)
    model = ContextUnet(n_feat=16).eval()
    x, t = torch.randn(2, 1, 28, 28), torch.rand(2)
    dropped = torch.ones(2)
    a = model(x, torch.tensor([1, 2]), t, dropped)
    b = model(x, torch.tensor([5, 8]), t, dropped)
    assert torch.equal(a, b)
    assert not torch.equal(a, model(x, torch.tensor([1, 2]), t, torch.zeros(2)))


def test_schedule_matches_its_definition():
    s = ddpm_schedules(1e-4, 0.02, 400)
    assert s["beta_t"].shape == (401,)
    assert s["beta_t"][0].item() == pytest.approx(1e-4) and s["beta_t"][-1].item() == pytest.approx(0.02)
    assert (s["sqrtab"] ** 2 + s["sqrtmab"] ** 2).sub(1).abs().max() < 1e-6


def test_training_steps_are_sane_and_sampling_runs():
    from diffusionlab.data import load_mnist

    x, y = load_mnist("test")
    x01, y = (x[:32] + 1) / 2, y[:32]
    torch.manual_seed(0)
    ddpm = BaselineDDPM(ContextUnet(n_feat=8), n_T=10)
    before = [p.detach().clone() for p in ddpm.parameters()]
    result = train_baseline(ddpm, x01, y, steps=20, batch_size=16, lr=3e-3, seed=0)
    loss = result["loss"]
    assert result["steps"] == 20 and all(torch.isfinite(torch.tensor(loss)))
    assert 0.1 < loss[0] < 10  # eps-prediction MSE starts near Var(eps) = 1
    assert sum(loss[-5:]) / 5 < loss[0]
    assert all(not torch.equal(a, b) for a, b in zip(before, ddpm.parameters()))
    images = ddpm.sample(torch.arange(4), generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 1, 28, 28) and 0 <= images.min() and images.max() <= 1
    again = ddpm.sample(torch.arange(4), generator=torch.Generator().manual_seed(0))
    assert torch.equal(images, again)


def test_benchmark_quick_throughput_prints_the_table(tmp_path):
    out = tmp_path / "bench.md"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "benchmark.py"), "--quick", "--sections", "throughput",
         "--warmup-steps", "0", "--throughput-steps", "1", "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    printed = run.stdout
    assert "| machine" in printed and "torch / python" in printed
    assert "Training throughput" in printed and "images / s" in printed
    for name in ("denoiser", "ddpm", "cond", "baseline ContextUnet"):
        assert f"| {name}" in printed, printed
    assert "6.59 M" in printed  # the baseline's parameter count, next to ours
    assert "Training throughput" in out.read_text()


def test_benchmark_quick_sampling_eager_and_compiled(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "benchmark.py"), "--quick", "--sections", "sampling", "--no-ddpm",
         "--n-samples", "10", "--repeats", "2", "--device", "cpu"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    printed = run.stdout
    assert "median (min-max) of 2 runs" in printed
    for steps in (10, 20, 50):
        assert f"| DDIM {steps}        | eager    |" in printed and f"| DDIM {steps}        | compiled |" in printed
    assert "DDPM" not in printed and "Compiling the network before the first compiled run took" in printed


def test_recipe_comparison_smoke_run(tmp_path):
    out = tmp_path / "recipe.md"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "recipe.py"), "--train-steps", "2", "--steps", "1",
         "--n-samples", "10", "--variants", "course,v,fp32", "--device", "cpu", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    printed = run.stdout
    assert "| fp32 | NCHW |" in printed and "| fp32 | channels-last |" in printed
    for row in ("| course | the course recipe | 376 k | 2 |", "| v | predict v | 376 k | 2 |",
                "| fp32 | fp32, no mixed precision | 376 k | 2 |"):
        assert row in printed, printed
    assert "FD floor" in printed and "cond trained 2 steps per variant" in out.read_text()
    bad = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recipe.py"), "--minutes", "1",
                          "--variants", "course,score"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "--variants takes a comma-separated list" in bad.stderr
    no_budget = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "recipe.py"), "--sections", "quality"],
                               capture_output=True, text=True, timeout=60)
    assert no_budget.returncode != 0 and "needs a training budget" in no_budget.stderr
