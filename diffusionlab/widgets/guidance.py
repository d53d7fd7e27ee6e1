"""The widgets of lesson 3, class conditioning and classifier-free guidance."""

from __future__ import annotations

import ipywidgets as W

from ..utils import make_generator
from ..viz import show_images
from .common import Explorer


def make_guidance_explorer(model, n: int = 8, steps: int = 25, max_guidance: float = 10.0) -> Explorer:
    """A digit picker, a guidance-scale slider and a seed: `n` samples of the digit from `model` (a
    class-conditioned `course.DiffusionModel`) with DDIM in `steps` steps. `last`: the images (n, 1, 28, 28)."""
    controls = {
        "digit": W.Dropdown(options=list(range(10)), value=3, description="digit"),
        "guidance_scale": W.FloatSlider(value=2.0, min=0.0, max=max_guidance, step=0.5, description="guidance w",
                                        continuous_update=False),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }

    def draw(digit, guidance_scale, seed):
        g = make_generator(seed, model.device)
        x = model.sample(n, labels=[digit] * n, guidance_scale=guidance_scale, steps=steps, generator=g,
                         progress=False)
        show_images(x, nrow=n, title=f"digit {digit}, guidance w = {guidance_scale:g}, seed {seed}")
        return x

    return Explorer(controls, draw)
