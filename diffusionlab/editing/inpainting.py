"""Inpainting: fill a masked region so that it agrees with the rest of the image (lesson 6).

Lugmayr et al. 2022, "RePaint: Inpainting using Denoising Diffusion Probabilistic Models", eq. 8-9:
after every reverse step, the region to keep is replaced by the original noised to the same level,
    x_{t'} = mask * x_{t'}(model) + (1 - mask) * q_sample(x_known, t'),
where mask = 1 marks the pixels the model paints. (The paper's m is the other way round: m = 1 marks the
*known* pixels, x_{t-1} = m * x_known + (1 - m) * x_unknown; our mask is its 1 - m.) With `resample` > 1,
each step is undone (x_{t'} is noised back to x_t with q(x_t | x_{t'})) and redone, so the painted region
can agree with the known one ("resampling jumps" of length 1, sec. 4.2).
"""

from __future__ import annotations

import torch

from ..samplers import SAMPLERS, EpsFn, sample, step
from ..schedules import NoiseSchedule
from ..utils import check_images


def check_mask(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A mask (H, W), (1, H, W), (B, 1, H, W)... with values in [0, 1] that broadcasts to x; returned as x's dtype."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a tensor with 1 where the model paints and 0 where the image is kept, "
                         f"got {type(mask).__name__}")
    if mask.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"the mask is {tuple(mask.shape[-2:])} pixels but the images are {tuple(x.shape[-2:])}: "
                         "make a mask of the same height and width (see editing.make_mask)")
    if mask.min() < 0 or mask.max() > 1:
        raise ValueError("mask values must be in [0, 1]: 1 where the model paints, 0 where the image is kept")
    try:
        torch.broadcast_shapes(mask.shape, x.shape)
    except RuntimeError:
        raise ValueError(f"a mask of shape {tuple(mask.shape)} does not fit images of shape {tuple(x.shape)}") from None
    return mask.to(device=x.device, dtype=x.dtype)


MASKS = ("top", "bottom", "left", "right", "center", "none", "all")


def make_mask(kind: str, size: int = 28, box: int = 14) -> torch.Tensor:
    """A (1, 1, size, size) mask with 1 where the model paints: the "top" half, "bottom" half, "left" or
    "right" half, a `box`-pixel square in the "center", "none" (keep all) or "all" (paint all)."""
    if kind == "center" and not (isinstance(box, int) and 1 <= box <= size):
        raise ValueError(f"box is the side of the centre square in pixels, from 1 to size={size}, got {box!r}")
    m = torch.zeros(1, 1, size, size)
    half, lo = size // 2, (size - box) // 2
    if kind == "top":
        m[..., :half, :] = 1
    elif kind == "bottom":
        m[..., half:, :] = 1
    elif kind == "left":
        m[..., :, :half] = 1
    elif kind == "right":
        m[..., :, half:] = 1
    elif kind == "center":
        m[..., lo:lo + box, lo:lo + box] = 1
    elif kind == "all":
        m[:] = 1
    elif kind != "none":
        raise ValueError(f"mask kind must be one of {MASKS}, got {kind!r}")
    return m


def inpaint_replace(schedule: NoiseSchedule, x: torch.Tensor, x_known: torch.Tensor, mask: torch.Tensor, t: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """RePaint's replacement (eq. 8-9): keep the model's x (B, C, H, W) where mask = 1, and elsewhere put
    x_known noised to timestep t (t = -1: the clean x_known itself, after the last step)."""
    if t < 0:
        known_t = x_known
    else:
        eps = torch.randn(x_known.shape, generator=generator, device=x_known.device, dtype=x_known.dtype)
        known_t = schedule.q_sample(x_known, torch.full((x_known.shape[0],), t, device=x_known.device), eps)
    return mask * x + (1 - mask) * known_t.to(x.dtype)


def renoise(schedule: NoiseSchedule, x: torch.Tensor, t_from: int, t_to: int,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Go back up from t_from to the noisier t_to with the forward process q(x_{t_to} | x_{t_from}):
    x_{t_to} = sqrt(a) x + sqrt(1 - a) z,  a = alpha_bar_{t_to} / alpha_bar_{t_from}.
    t_from = -1 is the clean image; t_to must be noisier (t_from < t_to), else 1 - a < 0."""
    if not -1 <= t_from < t_to:
        raise ValueError(f"renoise goes up to a noisier timestep: need -1 <= t_from < t_to, got t_from={t_from}, "
                         f"t_to={t_to} (to go down, take a sampler step)")
    a = (schedule.alpha_bar_at(t_to) / schedule.alpha_bar_at(t_from)).to(device=x.device, dtype=x.dtype)
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return a.sqrt() * x + (1 - a).sqrt() * z


@torch.no_grad()
def inpaint(eps_fn: EpsFn, x_known: torch.Tensor, mask: torch.Tensor, schedule: NoiseSchedule, steps: int = 50,
            sampler: str = "ddim", eta: float = 0.0, resample: int = 1, spacing: str = "trailing",
            generator: torch.Generator | None = None, progress: bool = False,
            clip: float | None = 1.0) -> torch.Tensor:
    """Fill the region where mask = 1 of the images x_known (B, C, H, W) in [-1, 1]; keep the rest.

    This is `samplers.sample` with a callback after every step that puts the known region back and,
    with resample = r > 1, redoes the step r - 1 more times after noising back (RePaint's jumps, which
    make the painted part agree with the kept part; the work grows r times). Everything random comes
    from `generator`: first x_T, then the noise of the steps and replacements in order.
    clip: the data range bound, as in `samplers.sample` (None: no clipping).
    """
    check_images(x_known, "x_known")
    mask = check_mask(mask, x_known)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if not isinstance(resample, int) or resample < 1:
        raise ValueError(f"resample must be an integer >= 1 (1: no resampling jumps), got {resample!r}")

    def replace_known(i, t, t_prev, x, x0_hat):
        x = inpaint_replace(schedule, x, x_known, mask, t_prev, generator)
        for _ in range(resample - 1 if t_prev >= 0 else 0):
            x = renoise(schedule, x, t_prev, t, generator)  # jump back up and redo the step
            eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
            x, _ = step(sampler, schedule, eps, t, t_prev, x, eta=eta, generator=generator, clip=clip)
            x = inpaint_replace(schedule, x, x_known, mask, t_prev, generator)
        return x

    return sample(eps_fn, tuple(x_known.shape), schedule, sampler=sampler, steps=steps, eta=eta, spacing=spacing,
                  generator=generator, device=x_known.device, callback=replace_known, progress=progress,
                  clip=clip)
