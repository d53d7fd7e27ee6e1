"""Attention written out, with a hook to read and replace its maps (lessons 7-9).

Vaswani et al. 2017, "Attention Is All You Need", eq. 1, with several heads (sec. 3.2.2):
    Attention(Q, K, V) = softmax(Q K^T / sqrt(d)) V
One module serves both uses in the UNet (Rombach et al. 2022, "Latent Diffusion", sec. 3.3):
  * self-attention:  Q, K and V all come from the image positions x           forward(x)
  * cross-attention: Q from the image positions, K and V from the text tokens  forward(x, context)
The attention map softmax(Q K^T / sqrt(d)) says, for every image position, how much it reads from
each token. In cross-attention that is a picture of where each word acts (lesson 8's maps).

Hooks. `Attention.hook`, when set, is called as hook(probs, module) after the softmax, with probs of
shape (B, heads, N, M); it may return a tensor of the same shape that replaces the map (prompt-to-
prompt's controllers: store, replace, re-weight), or None to leave it. `set_attention_hook(model, hook)`
sets one hook on every attention module of a model. The hook is a plain attribute, read in `forward`,
so no method is patched: the same idea as diffusers' attention processors, kept to one function.

Shapes in comments: B batch, N query positions (H*W), M key positions (N itself, or L text tokens),
h heads, d = C / h channels per head.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

AttentionHook = Callable[[torch.Tensor, "Attention"], "torch.Tensor | None"]


class Attention(nn.Module):
    """Multi-head attention from queries x (B, N, C) to keys and values from `context` (B, M, C_ctx),
    or from x itself when context is None (self-attention)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        if dim % heads:
            raise ValueError(f"the width {dim} must be divisible by the number of heads {heads}")
        self.heads = heads
        self.is_cross = context_dim is not None
        self.context_dim = context_dim or dim  # the width of what k and v are computed from
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_v = nn.Linear(context_dim or dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)
        self.name = ""  # where the module sits in its model ("down.2.attn.cross_attn"); set by `name_attention`
        self.hook: AttentionHook | None = None

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if self.is_cross and context is None:
            raise ValueError(f"cross-attention {self.name!r} needs text tokens: pass context=(B, L, context_dim)")
        context = x if context is None else context
        B, N, C = x.shape
        if context.dim() != 3 or context.shape[0] != B or context.shape[2] != self.context_dim:
            raise ValueError(f"attention {self.name!r} needs context (B={B}, L, {self.context_dim}): one row of tokens "
                             f"per image, each of width {self.context_dim}; got {tuple(context.shape)}")
        M, h = context.shape[1], self.heads
        q = self.to_q(x).view(B, N, h, C // h).transpose(1, 2)  # (B, h, N, d)
        k = self.to_k(context).view(B, M, h, C // h).transpose(1, 2)  # (B, h, M, d)
        v = self.to_v(context).view(B, M, h, C // h).transpose(1, 2)  # (B, h, M, d)
        scores = q @ k.transpose(-2, -1) / math.sqrt(C // h)  # (B, h, N, M)
        probs = scores.softmax(dim=-1)  # each query's weights over the M keys sum to 1
        if self.hook is not None:
            replaced = self.hook(probs, self)
            if replaced is not None:
                if replaced.shape != probs.shape:
                    raise ValueError(f"an attention hook must return a map of shape {tuple(probs.shape)}, "
                                     f"got {tuple(replaced.shape)}")
                probs = replaced.to(probs.dtype)
        out = probs @ v  # (B, h, N, d)
        out = out.transpose(1, 2).reshape(B, N, C)  # (B, N, C): the heads side by side again
        return self.to_out(out)


class AttentionBlock(nn.Module):
    """Self-attention over the H*W positions of a feature map, then (when context_dim is set)
    cross-attention from the positions to text tokens, each with its norm and residual connection:
    the attention part of Stable Diffusion's transformer block."""

    def __init__(self, channels: int, heads: int, groups: int, context_dim: int | None = None):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.self_attn = Attention(channels, heads)
        self.cross_attn = None
        if context_dim is not None:
            self.norm_cross = nn.LayerNorm(channels)
            self.cross_attn = Attention(channels, heads, context_dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        B, C, H, W = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, H*W, C): one token per position
        x = x + self.self_attn(h).transpose(1, 2).reshape(B, C, H, W)
        if self.cross_attn is not None:
            q = self.norm_cross(x.flatten(2).transpose(1, 2))  # (B, H*W, C)
            x = x + self.cross_attn(q, context).transpose(1, 2).reshape(B, C, H, W)
        return x


def attention_modules(model: nn.Module) -> list[Attention]:
    """Every `Attention` in `model`, in the order of `model.modules()`."""
    return [m for m in model.modules() if isinstance(m, Attention)]


def name_attention(model: nn.Module) -> None:
    """Give every attention module of `model` its name in the model, so a hook can tell them apart."""
    for name, m in model.named_modules():
        if isinstance(m, Attention):
            m.name = name


def set_attention_hook(model: nn.Module, hook: AttentionHook | None) -> None:
    """Set `hook` (or None, to remove it) on every attention module of `model`."""
    for m in attention_modules(model):
        m.hook = hook
