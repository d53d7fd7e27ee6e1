"""The exercise checks of lesson 6, editing."""

from __future__ import annotations

from typing import Callable

import torch

from ..editing import VIEWS, anagram_combine, inpaint_replace, make_mask, sdedit_start, split_frequencies
from ..schedules import NoiseSchedule
from .common import compare, seeded


def check_sdedit_start(student_fn: Callable) -> None:
    """Lesson 6. student_fn(schedule, x0, strength, steps, generator) -> (x_t_start, start_step), as
    `editing.sdedit_start` with trailing timesteps: the noise is torch.randn(x0.shape, generator=generator), and
    n = round(strength * steps) steps are run (none at strength 0)."""
    schedule = NoiseSchedule(1000, "cosine")

    def case(strength, steps, seed):
        return lambda: (schedule, seeded(seed, 2, 1, 28, 28).clamp(-1, 1), strength, steps,
                        torch.Generator().manual_seed(seed + 1))

    # 0.58 * 20 = 11.6 rounds to 12 steps (int() would give 11); strength 0 runs no step: (x0, steps)
    cases = [case(0.5, 50, 1), case(0.58, 20, 2), case(1.0, 10, 3), case(0.04, 50, 4), case(0.0, 40, 5)]
    def reference(schedule, x0, strength, steps, generator):
        return sdedit_start(schedule, x0, strength, steps, generator=generator)

    compare("sdedit_start", student_fn, reference, cases)


def check_inpaint_replace(student_fn: Callable) -> None:
    """Lesson 6. student_fn(schedule, x, x_known, mask, t, generator) -> the model's x where mask = 1 and
    x_known noised to t elsewhere (t = -1: x_known itself), as `editing.inpaint_replace`."""
    schedule = NoiseSchedule(1000, "cosine")

    def case(kind, t, seed):
        return lambda: (schedule, seeded(seed, 2, 1, 28, 28), seeded(seed + 1, 2, 1, 28, 28).clamp(-1, 1),
                        make_mask(kind), t, torch.Generator().manual_seed(seed + 2))

    cases = [case("top", 900, 1), case("center", 500, 2), case("right", 20, 3), case("bottom", -1, 4)]
    compare("inpaint_replace", student_fn, inpaint_replace, cases)


def check_anagram_combine(student_fn: Callable) -> None:
    """Lesson 6. student_fn(eps_a, eps_b_seen, view) -> 1/2 (eps_a + inverse_view(eps_b_seen)), as
    `editing.anagram_combine`, for every view in `editing.VIEWS`."""
    cases = [lambda v=v, k=k: (seeded(10 + k, 2, 1, 28, 28), seeded(20 + k, 2, 1, 28, 28), v)
             for k, v in enumerate(VIEWS)]
    mistakes = {"you applied the view itself to eps_b_seen instead of its inverse (editing.get_view(view) returns "
                "(view, inverse))": lambda eps_a, eps_b_seen, view: 0.5 * (eps_a + VIEWS[view][0](eps_b_seen))}
    compare("anagram_combine", student_fn, anagram_combine, cases, mistakes=mistakes)


def check_split_frequencies(student_fn: Callable) -> None:
    """Lesson 6. student_fn(x, sigma_px) -> (low, high): the Gaussian blur of x and what is left, as
    `editing.split_frequencies`."""
    cases = [lambda s=s, k=k: (seeded(30 + k, 2, 1, 28, 28), s) for k, s in enumerate((0.5, 1.0, 2.0, 3.5))]
    compare("split_frequencies", student_fn, split_frequencies, cases)
