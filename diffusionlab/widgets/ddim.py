"""The widgets of lesson 4, DDIM and fast sampling."""

from __future__ import annotations

import time

import ipywidgets as W
import torch

from ..utils import make_generator
from ..viz import show_images
from .common import Explorer


DDIM_STEP_CHOICES = (2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)


def make_ddim_explorer(model, n: int = 10, max_guidance: float = 10.0) -> Explorer:
    """Steps, eta, guidance scale and seed for DDIM sampling of the digits 0..n-1 (mod 10); the title
    shows the wall time. `last`: {"images": (n, 1, 28, 28), "seconds": wall time of the sampling}."""


    controls = {
        "steps": W.SelectionSlider(options=DDIM_STEP_CHOICES, value=20, description="steps", continuous_update=False),
        "eta": W.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.1, description="eta", continuous_update=False),
        "guidance_scale": W.FloatSlider(value=2.0, min=0.0, max=max_guidance, step=0.5, description="guidance w",
                                        continuous_update=False),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }
    labels = torch.arange(n) % 10 if model.unet.config.num_classes else None

    def draw(steps, eta, guidance_scale, seed):
        g = make_generator(seed, model.device)
        start = time.perf_counter()
        x = model.sample(n, labels=labels, guidance_scale=guidance_scale, steps=steps, eta=eta, generator=g,
                         progress=False)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        show_images(x, nrow=n, title=f"DDIM, {steps} steps, eta = {eta:g}, w = {guidance_scale:g}: "
                                     f"{seconds:.2f} s for {n} images")
        return {"images": x, "seconds": seconds}

    return Explorer(controls, draw)
