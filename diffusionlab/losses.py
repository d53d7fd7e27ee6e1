"""The training objectives of lessons 1-3; `train.train` minimises any of them.

  * `denoiser_loss` (lesson 1): z = x + sigma eps (`add_noise`), loss = ||D(z) - x||^2.
  * `diffusion_loss` (lessons 2-3): DDPM's simplified objective, Algorithm 1 of Ho et al. 2020:
    t ~ Uniform{0..T-1}, eps ~ N(0, I), x_t = q_sample(x0, t, eps), loss = ||model(x_t, t, y) - target||^2
    with target eps (DDPM), v or x0 (`NoiseSchedule.target`). For classifier-free guidance the label
    is dropped to the null class with probability p_uncond (Ho & Salimans 2022, Algorithm 1).

Every loss has the signature loss_fn(model, x0, y, generator) that `train` calls, with all its
randomness drawn from `generator`, so a resumed run replays the same steps.
"""

from __future__ import annotations

import torch

from .guidance import drop_labels
from .schedules import NoiseSchedule


def add_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = x + sigma * eps, eps ~ N(0, I): the noisy image of lesson 1."""
    return x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def denoiser_loss(model, x0, y, generator, sigma: float = 0.5):
    """Lesson 1: the L2 loss of a one-step denoiser at noise level sigma."""
    return (model(add_noise(x0, sigma, generator)).float() - x0).pow(2).mean()


def noised_batch(schedule: NoiseSchedule, x0: torch.Tensor, generator: torch.Generator | None = None):
    """Algorithm 1's draws for a batch x0 (B, C, H, W): t ~ Uniform{0..T-1} (B,), eps ~ N(0, I) like x0, and
    x_t = q_sample(x0, t, eps). Returns (xt, t, eps). Every diffusion loss of the course (lessons 2-3, 7-9) draws
    its noise here, in this order, so they all train on the same forward process."""
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    return schedule.q_sample(x0, t, eps), t, eps


def prediction_loss(out: torch.Tensor, schedule: NoiseSchedule, prediction: str, x0: torch.Tensor, t: torch.Tensor,
                    eps: torch.Tensor) -> torch.Tensor:
    """||out - target||^2 (mean), with the target eps, x0 or v that `prediction` names (`NoiseSchedule.target`)."""
    return (out.float() - schedule.target(prediction, x0, t, eps)).pow(2).mean()


def diffusion_loss(model, x0, y, generator, schedule: NoiseSchedule, prediction: str = "eps", p_uncond: float = 0.1):
    """Lessons 2-3: Algorithm 1 of DDPM (with the target chosen by `prediction`) and CFG label dropout."""
    xt, t, eps = noised_batch(schedule, x0, generator)
    if model.config.num_classes:
        y = drop_labels(y, p_uncond, model.config.num_classes, generator)
        out = model(xt, t, y)
    else:
        out = model(xt, t)
    return prediction_loss(out, schedule, prediction, x0, t, eps)
