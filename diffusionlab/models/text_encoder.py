"""A word-level tokenizer and a small transformer text encoder (lesson 7).

Stable Diffusion reads its prompt with CLIP's text transformer (Radford et al. 2021), frozen, and
the UNet attends to its output, one embedding per token (Rombach et al. 2022, sec. 3.3). Our captions
use a vocabulary of under fifty words (`captions.VOCAB`), so a word-level tokenizer is enough, and the
encoder, a two-layer transformer (Vaswani et al. 2017; the pre-norm blocks of GPT-2, with the
course's `attention.Attention` as self-attention), is trained jointly with the UNet from scratch.
Unlike GPT-2 and CLIP's text transformer, which are causal (a token sees only the tokens before it),
it has no mask: every token sees the whole caption, as in BERT, since the UNet reads all the tokens anyway.

    tokens (B, L)  ->  token embedding + position embedding  ->  2 x [x + attn(ln(x)); x + mlp(ln(x))]
                   ->  ln  ->  context (B, L, width), one vector per token

Every sequence starts with the start token and is padded to `max_length` with the pad token; the
empty caption "" is just the start token and padding: the unconditional prompt of classifier-free
guidance. Pad tokens are attended to like any other (as Stable Diffusion does with CLIP's padding).

Shapes in comments: B batch, L tokens, D width.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..captions import VOCAB, words
from .attention import Attention

PAD, START = "<pad>", "<start>"


class Tokenizer:
    """Words -> ids: encode(["a thick seven", ""]) -> (2, max_length) long tensor.

    id 0 is the pad token, id 1 the start token, then the words of `vocab` in order.
    """

    def __init__(self, vocab=VOCAB, max_length: int = 12):
        self.vocab = (PAD, START, *vocab)
        self.ids = {w: i for i, w in enumerate(self.vocab)}
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[int]:
        """One caption -> its ids, starting with the start token (not padded)."""
        if not isinstance(text, str):
            raise ValueError(f"a caption must be a string, got {type(text).__name__}: {text!r}")
        ids = [self.ids[START]]
        for w in words(text):
            if w not in self.ids:
                close = difflib.get_close_matches(w, self.vocab[2:], n=3, cutoff=0.5)
                hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
                raise ValueError(f"unknown word {w!r} in the caption {text!r}.{hint} The model knows only the "
                                 f"{len(self.vocab) - 2} words of its captions: {', '.join(self.vocab[2:])}")
            ids.append(self.ids[w])
        if len(ids) > self.max_length:
            raise ValueError(f"the caption {text!r} has {len(ids) - 1} words; at most {self.max_length - 1} fit")
        return ids

    def encode(self, texts, device=None) -> torch.Tensor:
        """A caption or a list of captions -> (B, max_length) long tensor of ids, padded."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = torch.full((len(texts), self.max_length), self.ids[PAD], dtype=torch.long)
        for i, text in enumerate(texts):
            ids = self.tokenize(text)
            out[i, : len(ids)] = torch.tensor(ids)
        return out.to(device) if device is not None else out

    def decode(self, ids: torch.Tensor) -> list[str]:
        """(B, L) ids -> captions (pad and start tokens dropped)."""
        return [" ".join(self.vocab[i] for i in row if i > 1) for row in torch.as_tensor(ids).reshape(len(ids), -1).tolist()]


@dataclass
class TextEncoderConfig:
    vocab_size: int = len(VOCAB) + 2  # the caption words, plus pad and start
    max_length: int = 12  # tokens per caption, the start token included
    width: int = 64  # D: the width of every token embedding (the UNet's context_dim)
    layers: int = 2  # transformer blocks
    heads: int = 4  # attention heads
    mlp_ratio: int = 4  # hidden width of each block's MLP, as a multiple of `width`


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, width: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads)  # self-attention: q, k and v from the tokens
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TextEncoder(nn.Module):
    """tokens (B, L) long -> context (B, L, width): one embedding per token, for the UNet's cross-attention."""

    def __init__(self, config: TextEncoderConfig | None = None, **kwargs):
        super().__init__()
        cfg = config if config is not None else TextEncoderConfig(**kwargs)
        self.config = cfg
        self.token_emb = nn.Embedding(cfg.vocab_size, cfg.width)
        self.pos_emb = nn.Parameter(torch.zeros(cfg.max_length, cfg.width))
        nn.init.normal_(self.pos_emb, std=0.02)
        self.blocks = nn.ModuleList(Block(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.layers))
        self.ln = nn.LayerNorm(cfg.width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if tokens.dim() != 2 or tokens.shape[1] > cfg.max_length:
            raise ValueError(f"tokens must have shape (B, L) with L <= {cfg.max_length}, got {tuple(tokens.shape)}")
        L = tokens.shape[1]
        x = self.token_emb(tokens) + self.pos_emb[:L]  # (B, L, D)
        for block in self.blocks:
            x = block(x)
        return self.ln(x)  # (B, L, D)


def config_dict(config: TextEncoderConfig) -> dict:
    return asdict(config)
