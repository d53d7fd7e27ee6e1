"""Hybrid images: the coarse shape follows one condition, the fine strokes another (lesson 6).

Geng et al. 2024, "Factorized Diffusion: Perceptual Illusions by Noise Decomposition", sec. 3: a low-pass
filter G (a Gaussian blur) splits the noise estimates by frequency,
    eps(x_t, t) = G(eps_far(x_t, t)) + [eps_near(x_t, t) - G(eps_near(x_t, t))],
so what is seen from afar (or small) follows one condition and what is seen up close (or large) the other.
`seen_from_afar` is what the lesson shows and measures as the far view: the image at full size, blurred.
"""

from __future__ import annotations

import torch

from ..filters import gaussian_blur
from ..samplers import EpsFn


def split_frequencies(x: torch.Tensor, sigma_px: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) with low = Gaussian blur of x (B, C, H, W) at `sigma_px` and high = x - low; low + high = x."""
    low = gaussian_blur(x, sigma_px)
    return low, x - low


FAR_SIGMA_PX = 2.5  # the blur that stands in for distance: at 28x28, strokes 2-3 pixels wide are gone


def seen_from_afar(x: torch.Tensor, sigma_px: float = FAR_SIGMA_PX) -> torch.Tensor:
    """What a distant viewer sees of the images x (B, C, H, W): the same size, with the fine strokes blurred away."""
    return gaussian_blur(x, sigma_px)


def hybrid_eps(eps_fn_far: EpsFn, eps_fn_near: EpsFn, sigma_px: float = 2.0) -> EpsFn:
    """An eps_fn whose low frequencies follow eps_fn_far (seen from afar) and high ones eps_fn_near."""
    if not isinstance(sigma_px, (int, float)) or not 0 < sigma_px <= 4:
        raise ValueError(f"sigma_px (the blur that separates far from near) must be in (0, 4] pixels for 28x28 "
                         f"images, got {sigma_px!r}")

    def eps_fn(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        low, _ = split_frequencies(eps_fn_far(xt, t), sigma_px)
        _, high = split_frequencies(eps_fn_near(xt, t), sigma_px)
        return low + high

    return eps_fn
