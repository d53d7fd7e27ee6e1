"""The widgets of lessons 1-2, headless: build each explorer on a tiny model, render, move a control,
and check that the callback recomputed the picture (the draw functions' numbers are checked too)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from diffusionlab import course, samplers, widgets
from diffusionlab.data import load_mnist
from diffusionlab.schedules import NoiseSchedule
from diffusionlab.models.unet import UNet, UNetConfig


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def digits():
    return load_mnist("test")[0][:4]


def tiny_unet(**kwargs):
    torch.manual_seed(0)
    net = UNet(UNetConfig(channels=(8, 16), attention=(False, False), **kwargs)).eval()
    torch.nn.init.normal_(net.out[-1].weight, std=0.05)  # not the all-zero start
    return net


@pytest.fixture(scope="module")
def tiny_ddpm():
    return course.DiffusionModel("ddpm", tiny_unet(), NoiseSchedule(1000, "cosine"))


def test_denoise_views_numbers(digits):
    v = widgets.denoise_views(tiny_unet(time_conditioning=False), digits, sigma=0.5, blur_px=1.0)
    assert set(v) == {"clean", "noisy", "blur", "unet", "mse"}
    assert v["mse"]["noisy"] == pytest.approx(0.25, rel=0.1)  # E[(sigma eps)^2] = sigma^2
    assert v["mse"]["blur"] < v["mse"]["noisy"]
    assert widgets.denoise_views(tiny_unet(time_conditioning=False), digits, sigma=0.0)["mse"]["noisy"] == 0


def test_denoise_explorer(digits):
    explorer = widgets.make_denoise_explorer(tiny_unet(time_conditioning=False), digits)
    first = explorer.render()
    explorer.controls["sigma"].value = 1.0  # the observer redraws
    assert explorer.last is not first
    assert explorer.last["mse"]["noisy"] > first["mse"]["noisy"]
    before = explorer.last
    explorer.controls["index"].value = 2
    assert not torch.equal(explorer.last["clean"], before["clean"])


@pytest.mark.skipif(not course.shipped_checkpoint("denoiser").exists(), reason="no shipped denoiser checkpoint")
def test_shipped_denoiser_beats_the_blur(digits):
    v = widgets.denoise_views(course.load("denoiser"), load_mnist("test")[0][:200], sigma=0.5, blur_px=1.0)
    assert v["mse"]["unet"] < v["mse"]["blur"] < v["mse"]["noisy"]


def test_forward_views_numbers(digits, tiny_ddpm):
    v = widgets.forward_views(tiny_ddpm, digits[:2], t=0)
    assert torch.allclose(v["xt"], digits[:2], atol=0.1)  # t = 0: almost clean
    a = tiny_ddpm.schedule.alpha_bar[700].item()
    v = widgets.forward_views(tiny_ddpm, digits[:2], t=700)
    assert v["alpha_bar"] == pytest.approx(a)
    assert torch.allclose(v["xt"], a**0.5 * digits[:2] + (1 - a) ** 0.5 * v["eps"], atol=1e-5)
    assert v["x0_hat"].min() >= -1 and v["x0_hat"].max() <= 1


def test_forward_explorer(digits, tiny_ddpm):
    explorer = widgets.make_forward_explorer(tiny_ddpm, digits, t=100)
    first = explorer.render()
    explorer.controls["t"].value = 900
    assert not torch.equal(explorer.last["xt"], first["xt"])
    assert explorer.last["alpha_bar"] < first["alpha_bar"]


def test_reverse_explorer(tiny_ddpm):
    _, trajectory = samplers.sample(tiny_ddpm.eps_fn(), (3, 1, 28, 28), tiny_ddpm.schedule, sampler="ddpm", steps=5,
                                    generator=torch.Generator().manual_seed(0), return_trajectory=True, progress=False)
    explorer = widgets.make_reverse_explorer(trajectory, n=3)
    xt, x0_hat = explorer.render()
    assert torch.equal(xt, trajectory["xt"][0]) and torch.equal(x0_hat, trajectory["x0"][0])
    explorer.controls["step"].value = 5  # the end: the finished images
    assert torch.equal(explorer.last[0], trajectory["xt"][5])
    assert not torch.equal(explorer.last[0], xt)
