"""The widgets of lesson 1, denoising as a learning problem."""

from __future__ import annotations

import ipywidgets as W
import torch

from ..filters import gaussian_blur
from ..losses import add_noise
from ..utils import make_generator
from ..viz import show_row
from .common import Explorer


def denoise_views(denoiser, x, sigma: float, blur_px: float = 1.0, seed: int = 0) -> dict:
    """Clean images x (B, 1, 28, 28) -> the noisy input at `sigma`, the Gaussian-blur baseline and the
    UNet's answer: {"clean", "noisy", "blur", "unet": (B, 1, 28, 28) on the CPU, "mse": {name: MSE to clean}}.

    denoiser: a one-step denoiser UNet(z), or the `course.DiffusionModel` that holds it.
    """

    net = getattr(denoiser, "unet", denoiser)
    device = next(net.parameters()).device
    x = x.float().cpu()
    noisy = add_noise(x, sigma, make_generator(seed))
    with torch.no_grad():
        unet = net(noisy.to(device)).float().cpu()
    views = {"clean": x, "noisy": noisy, "blur": gaussian_blur(noisy, blur_px), "unet": unet}
    views["mse"] = {k: (v - x).pow(2).mean().item() for k, v in views.items() if k != "clean"}
    return views


def make_denoise_explorer(denoiser, images, sigma: float = 0.5, blur_px: float = 1.0) -> Explorer:
    """A noise-level slider (and blur width, image index): noisy input | blur baseline | UNet output
    side by side, each with its mean squared error to the clean image. `last`: `denoise_views`' dict."""
    controls = {
        "sigma": W.FloatSlider(value=sigma, min=0.0, max=1.5, step=0.05, description="noise sigma",
                               continuous_update=False),
        "blur_px": W.FloatSlider(value=blur_px, min=0.0, max=3.0, step=0.25, description="blur (px)",
                                 continuous_update=False),
        "index": W.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False),
    }

    def draw(sigma, blur_px, index):
        v = denoise_views(denoiser, images[index : index + 1], sigma, blur_px, seed=index)
        mse = v["mse"]
        show_row([v["clean"], v["noisy"], v["blur"], v["unet"]],
                 titles=["clean", f"noisy, sigma={sigma:.2f}\nMSE {mse['noisy']:.3f}",
                         f"blur {blur_px:g} px\nMSE {mse['blur']:.3f}", f"UNet\nMSE {mse['unet']:.3f}"])
        return v

    return Explorer(controls, draw)
