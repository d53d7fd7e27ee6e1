"""The exercise checks of lesson 9, InstructPix2Pix: conditioning dropout, the dual guidance of eq. 3, and the
directional test of the pair filter."""

from __future__ import annotations

from typing import Callable

import torch

from ..captions import ATTRIBUTES
from ..guidance import dual_cfg_combine
from ..models.instruct import drop_conditions
from ..pairs import MOVE_MARGIN, directional_test
from .common import compare, seeded

_INSTRUCTIONS = ("make it thicker", "turn it into a 3", "lean it to the left", "make it smaller", "thin the strokes")


def check_drop_conditions(student_fn: Callable) -> None:
    """Lesson 9. student_fn(image_latents, instructions, p, generator) -> (image_latents, instructions, text_dropped,
    image_dropped), as `models.instruct.drop_conditions`: one draw u = torch.rand(B, generator=generator) per example;
    u < p drops the instruction (""), p <= u < 2p both, 2p <= u < 3p the image (its latent set to zero)."""

    def case(B, p, seed, shape=(4, 8, 8)):
        def make():
            texts = [_INSTRUCTIONS[(seed + i) % len(_INSTRUCTIONS)] for i in range(B)]
            return seeded(seed, B, *shape), texts, p, torch.Generator().manual_seed(seed + 1)
        return make

    cases = [case(24, 0.3, 1), case(64, 0.05, 2), case(8, 0.0, 3), case(16, 1 / 3, 4), case(40, 0.2, 5, (2, 4, 4))]
    compare("drop_conditions", student_fn, drop_conditions, cases)


def check_dual_guidance(student_fn: Callable) -> None:
    """Lesson 9. student_fn(eps_uncond, eps_image, eps_full, image_scale, text_scale) -> eq. 3 of InstructPix2Pix,
    eps_uncond + s_I (eps_image - eps_uncond) + s_T (eps_full - eps_image), as `guidance.dual_cfg_combine`."""

    def case(B, s_I, s_T, seed):
        return lambda: (seeded(seed, B, 4, 8, 8), seeded(seed + 1, B, 4, 8, 8), seeded(seed + 2, B, 4, 8, 8), s_I, s_T)

    cases = [case(2, 1.5, 7.5, 1), case(1, 1.0, 1.0, 2), case(3, 1.0, 0.0, 3), case(2, 0.0, 3.0, 4),
             case(2, 2.0, 1.0, 5), case(4, 1.2, 5.0, 6)]
    compare("dual_guidance", student_fn, dual_cfg_combine, cases)


def check_directional_test(student_fn: Callable) -> None:
    """Lesson 9. student_fn(kinds, targets, p_in, p_out, moved) -> (direction (N,), passed (N,) bool), as
    `pairs.directional_test`: for a digit change, the rise of the new digit's probability, passed at DIGIT_MARGIN or
    more; for a style edit, the attribute's move times the requested side, passed at MOVE_MARGIN or more."""

    def case(N, seed, on_margin=False):
        def make():
            g = torch.Generator().manual_seed(seed)
            kinds = [("digit", *ATTRIBUTES)[int(k)] for k in torch.randint(4, (N,), generator=g)]
            digits = torch.randint(10, (N,), generator=g)
            sides = torch.randint(2, (N,), generator=g) * 2 - 1
            targets = torch.tensor([int(d) if k == "digit" else int(s) for k, d, s in zip(kinds, digits, sides)])
            p_in = (2 * torch.randn(N, 10, generator=g)).softmax(1)
            p_out = (2 * torch.randn(N, 10, generator=g)).softmax(1)
            p_out[torch.arange(N), digits] += torch.rand(N, generator=g) * 3  # many clear digit changes
            p_out = p_out / p_out.sum(1, keepdim=True)
            moved = {name: 0.6 * torch.randn(N, generator=g) for name in ATTRIBUTES}
            if on_margin:  # every style edit moved exactly MOVE_MARGIN the requested way: they pass
                for i, k in enumerate(kinds):
                    if k != "digit":
                        moved[k][i] = MOVE_MARGIN * int(targets[i])
            return kinds, targets, p_in, p_out, moved
        return make

    cases = [case(32, 1), case(12, 2), case(16, 3, on_margin=True), case(64, 4), case(1, 5)]
    compare("directional_test", student_fn, directional_test, cases)
