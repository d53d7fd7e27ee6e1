"""Editing with a trained diffusion model, without retraining (lesson 5).

Everything here changes *what the sampler is given*, never the network: a different starting point,
a different eps_fn, or a correction after each step. Each method is written as a function a student
can read next to `samplers.sample`.

SDEdit (Meng et al. 2022, "SDEdit: Guided Image Synthesis and Editing with SDEs"): noise an image
    to an intermediate step t_start with the forward process (eq. 4 of DDPM),
        x_{t_start} = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps,
    and run the reverse process from there. strength in [0, 1] is the fraction of the sampler's
    steps that are run again: 0 returns the input, 1 starts from (almost) pure noise.

Inpainting (Lugmayr et al. 2022, "RePaint", eq. 8-9): after every reverse step, the region to keep
    is replaced by the original noised to the same level,
        x_{t'} = mask * x_{t'}(model) + (1 - mask) * q_sample(x_known, t'),
    where mask = 1 marks the pixels the model paints. With `resample` > 1, each step is undone
    (x_{t'} is noised back to x_t with q(x_t | x_{t'})) and redone, so the painted region can
    agree with the known one ("resampling jumps" of length 1, sec. 4.2).

Visual anagrams (Geng, Park & Owens 2024, "Visual Anagrams", eq. 3): for a view v (a pixel
    permutation, such as turning the image upside down) and two conditions a and b,
        eps(x_t, t) = 1/2 [ eps_a(x_t, t) + v^-1( eps_b(v(x_t), t) ) ],
    so the sample looks like a as it is and like b when seen through v.

Hybrid images (Geng et al. 2024, "Factorized Diffusion", sec. 3): a low-pass filter G (a Gaussian
    blur) splits the noise estimates by frequency,
        eps(x_t, t) = G(eps_far(x_t, t)) + [eps_near(x_t, t) - G(eps_near(x_t, t))],
    so the coarse shape (seen from afar, or small) follows one condition and the fine strokes
    (seen up close, or large) the other.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from tqdm.auto import tqdm

from .filters import gaussian_blur
from .samplers import SAMPLERS, _alpha_bar, ddim_step, ddim_timesteps, ddpm_step, sample
from .schedules import NoiseSchedule

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _check_images(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a batch of images (B, C, H, W), got {shape}; "
                         "for one image use x[None] or data.load_image(...)")


# --- SDEdit ---------------------------------------------------------------------------------------------


def check_strength(strength: float) -> float:
    if not isinstance(strength, (int, float)) or not math.isfinite(strength) or not 0 <= strength <= 1:
        raise ValueError(f"strength must be a number from 0 (keep the input) to 1 (start from noise), got {strength!r}")
    return float(strength)


def sdedit_start(schedule: NoiseSchedule, x0: torch.Tensor, strength: float, steps: int = 50,
                 spacing: str = "trailing", generator: torch.Generator | None = None):
    """Where SDEdit starts: (x_{t_start}, start_step).

    The sampler's `steps` timesteps are `ddim_timesteps(T, steps, spacing)`; SDEdit runs the last
    round(strength * steps) of them. start_step is the index of the first one run, t_start the
    timestep there, and x0 is noised to t_start with fresh noise from `generator`.
    strength 0 runs no step: (x0, steps) is returned.
    """
    _check_images(x0, "x0")
    check_strength(strength)
    timesteps = ddim_timesteps(schedule.T, steps, spacing)
    n_run = round(strength * steps)
    start_step = steps - n_run
    if n_run == 0:
        return x0, start_step
    t = torch.full((x0.shape[0],), timesteps[start_step], device=x0.device, dtype=torch.long)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return schedule.q_sample(x0, t, eps).to(x0.dtype), start_step


def sdedit(eps_fn: EpsFn, x0: torch.Tensor, schedule: NoiseSchedule, strength: float, steps: int = 50,
           sampler: str = "ddim", eta: float = 0.0, spacing: str = "trailing",
           generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """Image-to-image: noise x0 (B, C, H, W) in [-1, 1] to `strength` and denoise it with eps_fn.

    The condition lives in eps_fn (for example `model.eps_fn(y=target_class, guidance_scale=w)`), so
    the same function makes "this 3, redrawn" and "this 3, turned into an 8".
    """
    xt, start_step = sdedit_start(schedule, x0, strength, steps, spacing, generator)
    if start_step == steps:
        return x0.clone()
    return sample(eps_fn, tuple(x0.shape), schedule, sampler=sampler, steps=steps, eta=eta, spacing=spacing,
                  generator=generator, xT=xt, start_step=start_step, progress=progress)


# --- Inpainting -----------------------------------------------------------------------------------------


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
    x_{t_to} = sqrt(a) x + sqrt(1 - a) z,  a = alpha_bar_{t_to} / alpha_bar_{t_from}."""
    a = _alpha_bar(schedule, t_to, x) / _alpha_bar(schedule, t_from, x)
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return a.sqrt() * x + (1 - a).sqrt() * z


@torch.no_grad()
def inpaint(eps_fn: EpsFn, x_known: torch.Tensor, mask: torch.Tensor, schedule: NoiseSchedule, steps: int = 50,
            sampler: str = "ddim", eta: float = 0.0, resample: int = 1, spacing: str = "trailing",
            generator: torch.Generator | None = None, progress: bool = False) -> torch.Tensor:
    """Fill the region where mask = 1 of the images x_known (B, C, H, W) in [-1, 1]; keep the rest.

    The loop is `samplers.sample` with two additions: the replacement after every step and, with
    resample = r > 1, each step redone r times after noising back (RePaint's jumps, which make the
    painted part agree with the kept part; the work grows r times). Everything random comes from
    `generator`: first x_T, then the noise of the steps and replacements in order.
    """
    _check_images(x_known, "x_known")
    mask = check_mask(mask, x_known)
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if not isinstance(resample, int) or resample < 1:
        raise ValueError(f"resample must be an integer >= 1 (1: no resampling jumps), got {resample!r}")
    timesteps = ddim_timesteps(schedule.T, steps, spacing)
    x = torch.randn(x_known.shape, generator=generator, device=x_known.device, dtype=x_known.dtype)
    for i, t in enumerate(tqdm(timesteps, desc="inpainting", disable=not progress, leave=False)):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        for r in range(resample if t_prev >= 0 else 1):
            if r > 0:
                x = renoise(schedule, x, t_prev, t, generator)  # jump back up and redo the step
            eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
            if sampler == "ddpm":
                x_model, _ = ddpm_step(schedule, eps, t, x, t_prev, generator=generator)
            else:
                x_model, _ = ddim_step(schedule, eps, t, t_prev, x, eta, generator=generator)
            x = inpaint_replace(schedule, x_model, x_known, mask, t_prev, generator)
    return x.clamp(-1, 1)


# --- Visual anagrams ------------------------------------------------------------------------------------

# Each view is a permutation of the pixels (so noise stays noise), with its inverse: name -> (view, inverse).
VIEWS: dict[str, tuple[Callable, Callable]] = {
    "identity": (lambda x: x, lambda x: x),
    "rot180": (lambda x: torch.rot90(x, 2, (-2, -1)), lambda x: torch.rot90(x, -2, (-2, -1))),  # upside down
    "rot90": (lambda x: torch.rot90(x, 1, (-2, -1)), lambda x: torch.rot90(x, -1, (-2, -1))),  # a quarter turn left
    "flip_vertical": (lambda x: torch.flip(x, (-2,)), lambda x: torch.flip(x, (-2,))),  # mirrored top to bottom
    "flip_horizontal": (lambda x: torch.flip(x, (-1,)), lambda x: torch.flip(x, (-1,))),  # mirrored left to right
    "transpose": (lambda x: x.transpose(-2, -1), lambda x: x.transpose(-2, -1)),  # mirrored along the diagonal
}


def get_view(name: str) -> tuple[Callable, Callable]:
    if name not in VIEWS:
        raise ValueError(f"unknown view {name!r}; the views are: {', '.join(VIEWS)}")
    return VIEWS[name]


def anagram_combine(eps_a: torch.Tensor, eps_b_seen: torch.Tensor, view: str) -> torch.Tensor:
    """eq. 3 of Visual Anagrams: 1/2 (eps_a + v^-1(eps_b_seen)), where eps_b_seen was computed on v(x_t)."""
    _, inverse = get_view(view)
    return 0.5 * (eps_a + inverse(eps_b_seen))


def anagram_eps(eps_fn_a: EpsFn, eps_fn_b: EpsFn, view: str) -> EpsFn:
    """An eps_fn for the samplers whose samples look like condition a upright and like b through `view`."""
    forward, _ = get_view(view)

    def eps_fn(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return anagram_combine(eps_fn_a(xt, t), eps_fn_b(forward(xt), t), view)

    return eps_fn


# --- Hybrid images --------------------------------------------------------------------------------------


def split_frequencies(x: torch.Tensor, sigma_px: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) with low = Gaussian blur of x (B, C, H, W) at `sigma_px` and high = x - low; low + high = x."""
    low = gaussian_blur(x, sigma_px)
    return low, x - low


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
