"""The exercise checks of lesson 4, DDIM and fast sampling."""

from __future__ import annotations

from typing import Callable


from ..samplers import ddim_step, ddim_timesteps
from ..schedules import NoiseSchedule
from .common import ExerciseError, compare, seeded


def _as_int_list(exercise: str, fn: Callable) -> Callable:
    """Accept a list, tuple, array or tensor of timesteps; compare them as a list of ints."""
    def run(*args):
        out = fn(*args)
        try:
            return [int(t) for t in out]
        except (TypeError, ValueError):
            raise ExerciseError(f"Exercise '{exercise}': return a list of integer timesteps, "
                                f"got {type(out).__name__}") from None

    return run


def check_ddim_timesteps(student_fn: Callable) -> None:
    """Lesson 4. student_fn(T, steps) -> the trailing timesteps [round(T - 1 - i T / steps) for i < steps]."""
    cases = [lambda T=T, s=s: (T, s) for T, s in ((1000, 1), (1000, 3), (1000, 10), (1000, 50), (1000, 1000), (100, 7))]
    compare("ddim_timesteps", _as_int_list("ddim_timesteps", student_fn),
            lambda T, steps: ddim_timesteps(T, steps, "trailing"), cases, atol=0, rtol=0)


def check_ddim_step(student_fn: Callable) -> None:
    """Lesson 4. student_fn(schedule, eps, t, t_prev, xt, eta, noise) -> (x_prev, x0_hat), eq. 12 and 16
    of DDIM without clipping x0_hat (compared with `samplers.ddim_step(..., clip=None)`); noise is None in a case
    with eta = 0, as in the lesson's loop."""
    schedule = NoiseSchedule(1000, "cosine")

    def case(t, t_prev, eta, seed, noise=True):
        return lambda: (schedule, seeded(seed, 2, 1, 28, 28), t, t_prev, seeded(seed + 1, 2, 1, 28, 28), eta,
                        seeded(seed + 2, 2, 1, 28, 28) if noise else None)

    # the lesson's loop passes noise=None at eta = 0 (case 2): a step must not use it then
    cases = [case(960, 940, 0.0, 10), case(500, 480, 0.0, 20, noise=False), case(500, 300, 0.5, 30),
             case(40, 20, 1.0, 40), case(20, -1, 1.0, 50)]

    def reference(schedule, eps, t, t_prev, xt, eta, noise):
        return ddim_step(schedule, eps, t, t_prev, xt, eta, clip=None, noise=noise)

    compare("ddim_step", student_fn, reference, cases)
