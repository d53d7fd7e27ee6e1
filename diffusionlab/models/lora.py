"""LoRA: fine-tune a few low-rank matrices beside frozen weights (lesson 8).

Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", eq. 3 and sec. 4.1: a frozen
linear layer W (d_out x d_in) gets a trainable update of rank r,
    h = W x + (alpha / r) B A x,        A (r x d_in) random Gaussian,  B (d_out x r) zero
so training starts exactly at the pretrained model (B A = 0), and only r (d_in + d_out) numbers per
layer learn instead of d_in d_out. After training the update merges into W (W' = W + (alpha / r) B A):
the merged model is as fast as the original. As in the LoRA fine-tuning of Stable Diffusion
(diffusers' train_text_to_image_lora.py), the adapted layers are the attention projections
to_q, to_k, to_v and to_out of every attention module (`attention.Attention`).

A style such as "printed" lives in the strokes, which our small UNet draws with its convolutions (they
hold more than half its weights), so lesson 8 also adapts the 3 x 3 convolutions (`LoRAConv2d`, as the
"LoCon" variant of LoRA for Stable Diffusion does): the update of a k x k convolution W (c_out, c_in, k, k)
is B A with A a k x k convolution to r channels and B a 1 x 1 convolution back, r (c_in k k + c_out) numbers.
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


class LoRAConv2d(nn.Module):
    """`base` (a frozen k x k nn.Conv2d) plus (alpha / rank) B(A(x)): A a k x k convolution from c_in to rank
    channels (same stride and padding as base), B a 1 x 1 convolution from rank to c_out channels, zero at first."""

    def __init__(self, base: nn.Conv2d, rank: int = 4, alpha: float | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        if not isinstance(base, nn.Conv2d) or base.groups != 1:
            raise TypeError(f"LoRAConv2d adapts an nn.Conv2d (groups=1), got {type(base).__name__}")
        if not isinstance(rank, int) or not 1 <= rank <= min(base.in_channels, base.out_channels):
            raise ValueError(f"rank must be an integer from 1 to min(c_in, c_out) = "
                             f"{min(base.in_channels, base.out_channels)}, got {rank!r}")
        self.base = base.requires_grad_(False)
        self.rank = rank
        self.alpha = float(rank if alpha is None else alpha)
        self.scale = self.alpha / rank
        w = base.weight  # (c_out, c_in, k, k)
        fan_in = w[0].numel()  # c_in k k, the spread of a default convolution's weights, as in LoRALinear
        A = torch.randn(rank, *w.shape[1:], generator=generator, device=generator.device if generator else None)
        self.A = nn.Parameter((A / math.sqrt(fan_in)).to(device=w.device, dtype=w.dtype))  # (r, c_in, k, k)
        self.B = nn.Parameter(torch.zeros(w.shape[0], rank, device=w.device, dtype=w.dtype))  # (c_out, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.conv2d(x, self.A, None, self.base.stride, self.base.padding, self.base.dilation)  # (N, r, H', W')
        return self.base(x) + self.scale * torch.einsum("or,nrhw->nohw", self.B, h)

    def merged(self) -> nn.Conv2d:
        """A plain nn.Conv2d with W + (alpha / r) B A: the same function, without the extra weights."""
        b = self.base
        out = nn.Conv2d(b.in_channels, b.out_channels, b.kernel_size, b.stride, b.padding, b.dilation,
                        bias=b.bias is not None, padding_mode=b.padding_mode, device=b.weight.device, dtype=b.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(b.weight + self.scale * torch.einsum("or,rikl->oikl", self.B, self.A))
            if b.bias is not None:
                out.bias.copy_(b.bias)
        return out

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}"


def add_conv_lora(model: nn.Module, rank: int = 4, alpha: float | None = None,
                  generator: torch.Generator | None = None) -> list[str]:
    """Wrap every 3 x 3 nn.Conv2d of `model` in LoRAConv2d, in place, freezing it. Returns the wrapped layers'
    names. Use it with `add_lora` (which freezes the whole model first) to adapt attention and convolutions."""
    wrapped = []
    for module_name, module in list(model.named_modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Conv2d) and child.kernel_size == (3, 3):
                setattr(module, name, LoRAConv2d(child, rank, alpha, generator))
                wrapped.append(f"{module_name}.{name}" if module_name else name)
    if not wrapped:
        raise ValueError("the model has no 3 x 3 convolutions to adapt")
    return wrapped


def merge_lora(model: nn.Module) -> int:
    """Replace every LoRALinear (LoRAConv2d) in `model` by its merged nn.Linear (nn.Conv2d), in place. Returns
    how many it merged.
    The merged layers keep requires_grad=False: unfreeze with model.requires_grad_(True) to train on."""
    count = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, (LoRALinear, LoRAConv2d)):
                setattr(module, name, child.merged().requires_grad_(False))
                count += 1
    return count


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The A and B matrices of every LoRALinear and LoRAConv2d in `model` (what the optimiser gets)."""
    return [p for m in model.modules() if isinstance(m, (LoRALinear, LoRAConv2d)) for p in (m.A, m.B)]


def count_trainable(model: nn.Module) -> tuple[int, int]:
    """(parameters that require gradients, all parameters) of `model`."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
