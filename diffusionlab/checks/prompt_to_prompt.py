"""The exercise checks of lesson 8, attention maps, prompt-to-prompt and LoRA."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Callable

import torch
from torch import nn

from ..editing.prompt_to_prompt import ReplaceCross, Reweight
from ..models.lora import LoRALinear
from .common import compare, seeded


def _maps(seed: int, B: int, heads: int, N: int, M: int) -> torch.Tensor:
    """Seeded attention maps (B, heads, N, M): each row a softmax over the M tokens, as the hooks receive them."""
    return (2 * seeded(seed, B, heads, N, M)).softmax(dim=-1)


def check_replace_cross(student_fn: Callable) -> None:
    """Lesson 8. student_fn(probs, step, until) -> the maps with the word swap of prompt-to-prompt applied, as
    `editing.prompt_to_prompt.ReplaceCross`: probs (4n, heads, N, M) is a cross-attention map of the batch
    [uncond source, uncond edited, source, edited] (n rows each); for step < until the edited prompt's rows (the
    last n) become the source prompt's (rows 2n .. 3n-1), all other rows unchanged; from step `until` on, probs
    is returned as it is."""
    cross = SimpleNamespace(is_cross=True, name="cross")  # all ReplaceCross reads of the module

    def reference(probs, step, until):
        controller = ReplaceCross(steps=max(until, 1), fraction=until / max(until, 1))  # controls steps 0 .. until-1
        out = controller.forward(probs, cross, step)
        return probs if out is None else out

    def case(n, heads, N, M, step, until, seed):
        return lambda: (_maps(seed, 4 * n, heads, N, M), step, until)

    cases = [case(1, 2, 16, 12, 0, 8, 1), case(2, 4, 4, 12, 3, 8, 2), case(3, 1, 16, 5, 7, 8, 3),
             case(2, 2, 4, 12, 8, 8, 4), case(1, 4, 16, 12, 12, 8, 5), case(2, 2, 16, 12, 0, 0, 6)]
    compare("replace_cross", student_fn, reference, cases)


def check_reweight(student_fn: Callable) -> None:
    """Lesson 8. student_fn(maps, token, scale) -> the maps (n, heads, N, M) with the column of token position
    `token` multiplied by `scale` and every other column unchanged (not renormalised), as
    `editing.prompt_to_prompt.Reweight.edit`."""

    def reference(maps, token, scale):
        return Reweight(token, scale, steps=1).edit(maps, maps, None)

    def case(n, heads, N, M, token, scale, seed):
        return lambda: (_maps(seed, n, heads, N, M), token, scale)

    cases = [case(2, 2, 16, 12, 2, 2.0, 1), case(1, 4, 4, 12, 5, 0.0, 2), case(3, 1, 16, 5, 4, 0.5, 3),
             case(2, 2, 16, 12, 1, 1.0, 4), case(1, 2, 4, 7, 0, 3.0, 5)]
    compare("reweight", student_fn, reference, cases)


def check_lora_linear(student_fn: Callable) -> None:
    """Lesson 8. student_fn(x, base, A, B, alpha) -> base(x) + (alpha / r) x A^T B^T, the forward pass of
    `models.lora.LoRALinear`: base an nn.Linear (d_in -> d_out, with or without bias), A (r, d_in), B (d_out, r),
    x (..., d_in)."""

    def reference(x, base, A, B, alpha):
        with torch.random.fork_rng():  # the layer draws an initial A (replaced below): the notebook's RNG left alone
            layer = LoRALinear(base, rank=A.shape[0], alpha=alpha)
        with torch.no_grad():
            layer.A.copy_(A)
            layer.B.copy_(B)
            return layer(x)

    def case(shape, d_out, r, alpha, bias, zero_B, seed):
        def make():
            with torch.random.fork_rng():  # the layer's weights from `seed`; the notebook's RNG left alone
                torch.manual_seed(seed)
                base = nn.Linear(shape[-1], d_out, bias=bias)
            B = torch.zeros(d_out, r) if zero_B else seeded(seed + 2, d_out, r)
            return seeded(seed, *shape), base, seeded(seed + 1, r, shape[-1]), B, alpha
        return make

    cases = [case((2, 16, 32), 32, 4, 4.0, False, False, 1), case((5, 8), 12, 2, 8.0, True, False, 2),
             case((3, 6, 16), 24, 1, 1.0, True, False, 3), case((4, 10), 10, 3, 6.0, True, True, 4),
             case((2, 9, 20), 20, 8, 4.0, False, False, 5)]
    with torch.no_grad():
        compare("lora_linear", student_fn, reference, cases)
