"""Classical image filters: the Gaussian blur (lesson 1's baseline denoiser; lesson 6's hybrid images).

A Gaussian blur replaces each pixel by a weighted average of its neighbours, with weights
    k(d) = exp(-d^2 / (2 sigma_px^2)) / sum,   d = -r..r,  r = ceil(3 sigma_px)
applied along the rows and then along the columns (the 2-D Gaussian is separable). It removes
noise, which varies from pixel to pixel, and with it the fine detail of the image: the low-pass
filter that the learned denoiser of lesson 1 has to beat.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_kernel1d(sigma_px: float, radius: int | None = None) -> torch.Tensor:
    """The normalised 1-D Gaussian weights (2 r + 1,), float32, with r = ceil(3 sigma_px) by default."""
    if not isinstance(sigma_px, (int, float)) or not math.isfinite(sigma_px) or sigma_px < 0:
        raise ValueError(f"sigma_px must be a finite number of pixels >= 0, got {sigma_px!r}")
    if sigma_px == 0:
        return torch.ones(1)
    r = math.ceil(3 * sigma_px) if radius is None else int(radius)
    d = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-(d**2) / (2 * sigma_px**2))
    return (k / k.sum()).float()


def gaussian_blur(x: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Blur images (B, C, H, W) with a Gaussian of standard deviation `sigma_px` pixels.

    The border is reflected (no dark frame around the image); sigma_px = 0 returns x unchanged.
    """
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():  # the weights (< 1) cast to an integer dtype are all 0: a black image
        raise ValueError(f"x must be a float tensor, got {x.dtype}: convert it first (x.float(), or images / 127.5 - 1 "
                         "for 0..255 pixels)")
    k = gaussian_kernel1d(sigma_px).to(device=x.device, dtype=x.dtype)
    r = len(k) // 2
    if r == 0:
        return x.clone()
    if r >= min(x.shape[-2:]):
        raise ValueError(f"sigma_px={sigma_px} is too large for {x.shape[-2]}x{x.shape[-1]} images "
                         f"(the kernel radius {r} must be smaller than the image)")
    B, C, H, W = x.shape
    h = x.reshape(B * C, 1, H, W)
    with torch.autocast(x.device.type, enabled=False):  # a filter, not a network: keep x's precision
        h = F.conv2d(F.pad(h, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))  # along rows
        h = F.conv2d(F.pad(h, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))  # along columns
    return h.reshape(B, C, H, W)
