"""The exercise checks of lesson 5, flow matching."""

from __future__ import annotations

from typing import Callable

import torch

from ..flow import euler_step, guided_velocity, interpolate, velocity_target
from .common import compare, seeded
from .guidance import guidance_mistakes


def check_interpolate(student_fn: Callable) -> None:
    """Lesson 5. student_fn(x0, eps, t) -> x_t = (1 - t) x0 + t eps, with t of shape (B,) in [0, 1]
    (t = 0 is the data, t = 1 the noise)."""
    def case(t, seed):
        return lambda: (seeded(seed, len(t), 1, 28, 28), seeded(seed + 1, len(t), 1, 28, 28), torch.tensor(t))

    cases = [case([0.0, 1.0], 1), case([0.25, 0.5, 0.75], 2), case([0.1, 0.9, 0.3, 0.6], 3)]
    mistakes = {"you have x0 and eps swapped: t = 0 is the data, t = 1 the noise":
                lambda x0, eps, t: interpolate(eps, x0, t)}
    compare("interpolate", student_fn, interpolate, cases, mistakes=mistakes)


def check_velocity_target(student_fn: Callable) -> None:
    """Lesson 5. student_fn(x0, eps) -> the velocity d x_t / dt = eps - x0."""
    cases = [lambda s=s: (seeded(s, 3, 1, 28, 28), seeded(s + 1, 3, 1, 28, 28)) for s in (1, 2, 3)]
    mistakes = {"you returned x0 - eps: the velocity d x_t / dt of x_t = (1 - t) x0 + t eps is eps - x0":
                lambda x0, eps: x0 - eps}
    compare("velocity_target", student_fn, velocity_target, cases, mistakes=mistakes)


def check_euler_step(student_fn: Callable) -> None:
    """Lesson 5. student_fn(v, t, t_next, xt) -> x_{t'} = x_t + (t' - t) v (t' < t: towards the data)."""
    def case(t, t_next, seed):
        return lambda: (seeded(seed, 2, 1, 28, 28), t, t_next, seeded(seed + 1, 2, 1, 28, 28))

    cases = [case(1.0, 0.0, 1), case(1.0, 0.9, 2), case(0.5, 0.25, 3), case(0.1, 0.0, 4)]
    mistakes = {"the step has the wrong sign: x_t' = x_t + (t' - t) v, and t' < t":
                lambda v, t, t_next, xt: xt + (t - t_next) * v}
    compare("euler_step", student_fn, euler_step, cases, mistakes=mistakes)


def check_guided_velocity(student_fn: Callable) -> None:
    """Lesson 5. student_fn(v_uncond, v_cond, guidance_scale) -> v_uncond + w (v_cond - v_uncond)."""
    cases = [lambda w=w: (seeded(1, 2, 1, 28, 28), seeded(2, 2, 1, 28, 28), w) for w in (0.0, 1.0, 2.0, 4.5)]
    compare("guided_velocity", student_fn, guided_velocity, cases, mistakes=guidance_mistakes("v"))
