"""The exercise checks of lesson 2, DDPM."""

from __future__ import annotations

from typing import Callable

import torch

from ..samplers import ddpm_step
from ..schedules import NoiseSchedule, cosine_betas
from .common import compare, seeded


def check_q_sample(student_fn: Callable) -> None:
    """Lesson 2. student_fn(schedule, x0, t, eps) -> x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps."""
    def case(kind, t, seed):
        schedule = NoiseSchedule(1000, kind)
        return lambda: (schedule, seeded(seed, len(t), 1, 28, 28), torch.tensor(t), seeded(seed + 1, len(t), 1, 28, 28))

    cases = [case("cosine", [0, 250, 500, 999], 1), case("linear", [10, 10, 700], 2), case("cosine", [42], 3)]
    compare("q_sample", student_fn, lambda schedule, x0, t, eps: schedule.q_sample(x0, t, eps), cases)


def check_cosine_schedule(student_fn: Callable) -> None:
    """Lesson 2. student_fn(T, s, max_beta) -> (betas, alpha_bar), both (T,): Improved DDPM's cosine schedule."""
    def reference(T, s, max_beta):
        betas = cosine_betas(T, s, max_beta)
        return betas, torch.cumprod(1 - betas, dim=0)

    cases = [lambda T=T, s=s: (T, s, 0.999) for T, s in ((1000, 0.008), (50, 0.008), (10, 0.1))]
    compare("cosine_schedule", student_fn, reference, cases)


def check_ddpm_step(student_fn: Callable) -> None:
    """Lesson 2. student_fn(schedule, eps, t, t_prev, xt, noise) -> x_{t_prev}: one step of Algorithm 2 of DDPM
    with sigma_t^2 = beta tilde_t and no noise at the last step, t_prev = -1 (compared with
    `samplers.ddpm_step(..., clip=None)`)."""
    def case(kind, t, t_prev, seed):
        schedule = NoiseSchedule(1000, kind)
        return lambda: (schedule, seeded(seed, 2, 1, 28, 28), t, t_prev, seeded(seed + 1, 2, 1, 28, 28),
                        seeded(seed + 2, 2, 1, 28, 28))

    cases = [case("cosine", 900, 899, 10), case("cosine", 500, 499, 20), case("linear", 300, 299, 30),
             case("cosine", 1, 0, 40), case("cosine", 0, -1, 50), case("cosine", 500, 480, 60)]

    def reference(schedule, eps, t, t_prev, xt, noise):
        return ddpm_step(schedule, eps, t, t_prev, xt, clip=None, noise=noise)[0]

    compare("ddpm_step", student_fn, reference, cases)
