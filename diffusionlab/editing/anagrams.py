"""Visual anagrams: one sample that reads as one condition upright and another through a view (lesson 6).

Geng, Park & Owens 2024, "Visual Anagrams: Generating Multi-View Optical Illusions with Diffusion Models",
eq. 3: for a view v (a pixel permutation, such as turning the image upside down) and two conditions a, b,
    eps(x_t, t) = 1/2 [ eps_a(x_t, t) + v^-1( eps_b(v(x_t), t) ) ],
so the sample looks like a as it is and like b when seen through v.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..samplers import EpsFn


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
