"""The checkpoints the course ships: intact, loadable, and good at what the lessons use them for."""

from pathlib import Path

import pytest
import torch

from diffusionlab import course
from diffusionlab.data import load_mnist
from diffusionlab.metrics import accuracy, load_classifier, predict

CKPT_DIR = course.CHECKPOINT_DIR


def _manifest():
    rows = {}
    for line in (CKPT_DIR / "MANIFEST.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            digest, name = line.split()[:2]
            rows[name] = digest
    return rows


def test_manifest_checksums_and_sizes():
    rows = _manifest()
    assert set(rows) == {p.name for p in CKPT_DIR.glob("*.pt")}
    total = 0
    for name, digest in rows.items():
        path = CKPT_DIR / name
        assert course.sha256(path) == digest, f"{name} does not match MANIFEST.txt"
        assert path.stat().st_size < 5e6
        total += path.stat().st_size
    assert total < 30e6


def test_classifier_accuracy():
    x, y = load_mnist("test")
    assert accuracy(load_classifier(), x[:2000], y[:2000]) > 0.98


@pytest.mark.parametrize("name", ["denoiser", "ddpm", "cond", "flow", "reflow"])
def test_shipped_models_load(name):
    model = course.load(name)
    assert model.name == name and not model.unet.training


def test_shipped_cond_model_draws_the_requested_digits():
    model = course.load("cond")
    labels = torch.arange(60) % 10
    x = model.sample(60, labels=labels, steps=20, generator=torch.Generator().manual_seed(0), progress=False)
    pred, _ = predict(load_classifier(), x)
    assert (pred == labels).float().mean() > 0.9


def test_shipped_flow_models_draw_the_requested_digits_in_few_steps():
    labels = torch.arange(60) % 10
    classifier = load_classifier()
    for name, steps in (("flow", 10), ("reflow", 2)):
        x = course.load(name).sample(60, labels=labels, steps=steps, generator=torch.Generator().manual_seed(0))
        assert (predict(classifier, x)[0] == labels).float().mean() > 0.9, name


def test_shipped_denoiser_beats_the_noise():
    x, _ = load_mnist("test")
    x = x[:200]
    noisy = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        denoised = course.load("denoiser").unet(noisy)
    assert (denoised - x).pow(2).mean() < 0.25 * (noisy - x).pow(2).mean()


def test_wrong_checkpoint_for_model_is_refused():
    with pytest.raises(course.CheckpointError, match="holds a 'ddpm' model, but a 'cond' model was asked for"):
        course.load("cond", CKPT_DIR / "ddpm.pt")


@pytest.mark.parametrize("name", ["cond", "flow"])
@pytest.mark.parametrize("n", [0, -2, 2.5])
def test_sample_refuses_a_number_of_images_that_is_none(name, n):
    with pytest.raises(ValueError, match=f"n is the number of images to sample, a whole number of at least 1, got {n}"):
        course.load(name).sample(n, steps=2)
