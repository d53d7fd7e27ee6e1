"""SDEdit: image-to-image by noising part way and denoising (lesson 6).

Meng et al. 2022, "SDEdit: Guided Image Synthesis and Editing with Stochastic Differential Equations":
noise an image to an intermediate step t_start with the forward process (eq. 4 of DDPM),
    x_{t_start} = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps,
and run the reverse process from there. strength in [0, 1] is the fraction of the sampler's steps that
are run again: 0 returns the input, 1 starts from (almost) pure noise.
"""

from __future__ import annotations

import math

import torch

from ..samplers import EpsFn, ddim_timesteps, sample
from ..schedules import NoiseSchedule
from ..utils import check_images


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
    strength 0 runs no step: (a copy of x0, steps) is returned.
    """
    check_images(x0, "x0")
    check_strength(strength)
    timesteps = ddim_timesteps(schedule.T, steps, spacing)
    n_run = round(strength * steps)
    start_step = steps - n_run
    if n_run == 0:
        return x0.clone(), start_step  # a new tensor, as at any other strength
    t = torch.full((x0.shape[0],), timesteps[start_step], device=x0.device, dtype=torch.long)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return schedule.q_sample(x0, t, eps).to(x0.dtype), start_step


def sdedit(eps_fn: EpsFn, x0: torch.Tensor, schedule: NoiseSchedule, strength: float, steps: int = 50,
           sampler: str = "ddim", eta: float = 0.0, spacing: str = "trailing",
           generator: torch.Generator | None = None, progress: bool = False,
           clip: float | None = 1.0) -> torch.Tensor:
    """Image-to-image: noise x0 (B, C, H, W) in [-1, 1] to `strength` and denoise it with eps_fn.

    The condition lives in eps_fn (for example `model.eps_fn(y=target_class, guidance_scale=w)`), so
    the same function makes "this 3, redrawn" and "this 3, turned into an 8".
    clip: the data range bound, as in `samplers.sample` (None: no clipping).
    """
    xt, start_step = sdedit_start(schedule, x0, strength, steps, spacing, generator)
    if start_step == steps:
        return x0.clone()
    return sample(eps_fn, tuple(x0.shape), schedule, sampler=sampler, steps=steps, eta=eta, spacing=spacing,
                  generator=generator, xT=xt, start_step=start_step, progress=progress, clip=clip)
