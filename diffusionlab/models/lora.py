"""LoRA: fine-tune a few low-rank matrices beside frozen weights (lesson 8).

Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", eq. 3 and sec. 4.1: a frozen
linear layer W (d_out x d_in) gets a trainable update of rank r,
    h = W x + (alpha / r) B A x,        A (r x d_in) random Gaussian,  B (d_out x r) zero
so training starts exactly at the pretrained model (B A = 0), and only r (d_in + d_out) numbers per
layer learn instead of d_in d_out. After training the update merges into W (W' = W + (alpha / r) B A):
the merged model is as fast as the original. As in the LoRA fine-tuning of Stable Diffusion
(diffusers' train_text_to_image_lora.py), the adapted layers are the attention projections
to_q, to_k, to_v and to_out of every attention module (`attention.Attention`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .attention import Attention

PROJECTIONS = ("to_q", "to_k", "to_v", "to_out")


class LoRALinear(nn.Module):
    """`base` (a frozen nn.Linear) plus (alpha / rank) B A x. alpha defaults to rank (a scale of 1)."""

    def __init__(self, base: nn.Linear, rank: int = 4, alpha: float | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRA adapts an nn.Linear, got {type(base).__name__}")
        if not isinstance(rank, int) or not 1 <= rank <= min(base.in_features, base.out_features):
            raise ValueError(f"rank must be an integer from 1 to min(d_in, d_out) = "
                             f"{min(base.in_features, base.out_features)}, got {rank!r}")
        self.base = base.requires_grad_(False)
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.scale = self.alpha / rank
        w = base.weight
        # A: Gaussian with the spread of a default nn.Linear's weights, so B A x starts at a sensible size
        A = torch.randn(rank, base.in_features, generator=generator, device=generator.device if generator else None)
        self.A = nn.Parameter((A / math.sqrt(base.in_features)).to(device=w.device, dtype=w.dtype))  # (r, d_in)
        self.B = nn.Parameter(torch.zeros(base.out_features, rank, device=w.device, dtype=w.dtype))  # (d_out, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scale * (x @ self.A.T @ self.B.T)  # (..., d_out)

    def merged(self) -> nn.Linear:
        """A plain nn.Linear with W + (alpha / r) B A: the same function, without the extra matrices."""
        out = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                        device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.scale * self.B @ self.A)  # (d_out, d_in)
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}"


def add_lora(model: nn.Module, rank: int = 4, alpha: float | None = None, cross_only: bool = False,
             generator: torch.Generator | None = None) -> list[str]:
    """Freeze every parameter of `model`, then wrap the projections to_q, to_k, to_v, to_out of its
    attention modules (only the cross-attention ones if cross_only) in LoRALinear, in place. Returns the
    names of the wrapped layers. Afterwards only the A and B matrices require gradients."""
    model.requires_grad_(False)
    wrapped = []
    for module in [m for m in model.modules() if isinstance(m, Attention)]:
        if cross_only and not module.is_cross:
            continue
        for name in PROJECTIONS:
            layer = getattr(module, name)
            if isinstance(layer, LoRALinear):
                raise ValueError(f"{module.name}.{name} already has LoRA: merge_lora(model) first")
            setattr(module, name, LoRALinear(layer, rank, alpha, generator))
            wrapped.append(f"{module.name}.{name}" if module.name else name)
    if not wrapped:
        raise ValueError("the model has no attention modules to adapt" +
                         (" (cross_only=True: it has no cross-attention)" if cross_only else ""))
    return wrapped


def merge_lora(model: nn.Module) -> int:
    """Replace every LoRALinear in `model` by its merged nn.Linear, in place. Returns how many it merged.
    The merged layers keep requires_grad=False: unfreeze with model.requires_grad_(True) to train on."""
    count = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, LoRALinear):
                setattr(module, name, child.merged().requires_grad_(False))
                count += 1
    return count


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The A and B matrices of every LoRALinear in `model` (what the optimiser gets)."""
    return [p for m in model.modules() if isinstance(m, LoRALinear) for p in (m.A, m.B)]


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """(parameters that require gradients, all parameters) of `model`."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
