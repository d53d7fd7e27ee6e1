"""A small UNet for 28x28 images, configured by a dataclass (lessons 1-3; latents and text in lessons 7-9).

Ronneberger et al. 2015 ("U-Net"), with the diffusion additions of Ho et al. 2020 (DDPM, appendix B):
residual blocks, GroupNorm (never BatchNorm: a sample must not depend on the other images in its
batch), a sinusoidal time embedding (Vaswani et al. 2017, sec. 3.5) and self-attention at low
resolution. One class covers the course's models:

  * lesson 1, single-step denoiser:   UNetConfig(time_conditioning=False)
  * lesson 2, DDPM:                   UNetConfig()                      forward(x, t)
  * lesson 3, class-conditioned, CFG: UNetConfig(num_classes=10)        forward(x, t, y); y = 10 is "no class"
  * lesson 7, latent + text:          UNetConfig(in_channels=4, context_dim=...)  forward(x, t, context=tokens)
  * lesson 9, InstructPix2Pix:        in_channels = latent channels + image channels (concatenated input)

Each conditioning signal becomes one embedding vector per image that scales and shifts the
normalised features of every residual block ("FiLM", Perez et al. 2018). Text tokens, which are a
sequence rather than one vector, enter through cross-attention instead (`attention.py`).

Shapes in comments: B batch, C channels, H x W image size, L tokens.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .attention import AttentionBlock, name_attention


@dataclass
class UNetConfig:
    in_channels: int = 1  # image channels, plus any channels concatenated to the input (InstructPix2Pix)
    out_channels: int = 1  # channels of the prediction (same as the image)
    image_size: int = 28  # height = width of the input; must be divisible by 2 ** (len(channels) - 1)
    channels: tuple[int, ...] = (32, 64, 128)  # width at each resolution: 28x28, 14x14, 7x7
    attention: tuple[bool, ...] = (False, False, True)  # self-attention at each resolution
    blocks_per_level: int = 1  # residual blocks at each resolution, on the way down
    time_conditioning: bool = True  # False: a plain single-step denoiser (lesson 1)
    num_classes: int | None = None  # class conditioning; label num_classes is the "null" class for CFG
    context_dim: int | None = None  # width of text tokens for cross-attention (None: no cross-attention)
    groups: int = 8  # GroupNorm groups
    heads: int = 4  # attention heads

    def __post_init__(self):
        self.channels = tuple(self.channels)
        self.attention = tuple(self.attention)
        if len(self.attention) != len(self.channels):
            raise ValueError(f"attention needs one flag per level: {len(self.channels)} levels, got {self.attention}")
        if self.image_size % 2 ** (len(self.channels) - 1):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2**{len(self.channels) - 1}")
        for c in self.channels:
            if c % self.groups:
                raise ValueError(f"every width in channels must be divisible by groups={self.groups}, got {c}")


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (B,) timesteps -> (B, dim), as in the Transformer's position encoding."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, twice, with the embedding as a scale and shift in between."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int | None, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out) if emb_dim else None
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, H, W)
        h = self.norm2(h)
        if self.emb is not None:
            scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)  # (B, C_out, 1, 1) each
            h = h * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return h + self.skip(x)


def _attend(layer: nn.Module, h: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
    return layer(h, context) if isinstance(layer, AttentionBlock) else h


class DownBlock(nn.Module):
    """One resolution on the way down: residual block(s), self-attention if any, then a stride-2 convolution
    that halves H and W (none at the lowest resolution). forward(h, emb, context) -> (h_down, skip): the skip
    is the features before downsampling, which the UpBlock of the same resolution takes."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int | None, groups: int, n_blocks: int = 1,
                 attention: bool = False, heads: int = 4, context_dim: int | None = None, downsample: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList([ResBlock(c_in if k == 0 else c_out, c_out, emb_dim, groups) for k in range(n_blocks)])
        self.attn = AttentionBlock(c_out, heads, groups, context_dim) if attention else nn.Identity()
        self.downsample = nn.Conv2d(c_out, c_out, 3, stride=2, padding=1) if downsample else nn.Identity()

    def forward(self, h: torch.Tensor, emb: torch.Tensor | None = None, context: torch.Tensor | None = None):
        for block in self.blocks:
            h = block(h, emb)  # (B, C_out, H, W)
        skip = _attend(self.attn, h, context)
        return self.downsample(skip), skip  # (B, C_out, H/2, W/2) (H, W at the lowest level), (B, C_out, H, W)


class UpBlock(nn.Module):
    """One resolution on the way up: upsample by 2 (nearest neighbour; not at the lowest resolution),
    concatenate the skip of the same resolution along the channels, a residual block, self-attention if any.
    forward(h, skip, emb, context) -> (B, C_out, 2H, 2W)."""

    def __init__(self, c_in: int, c_skip: int, c_out: int, emb_dim: int | None, groups: int,
                 attention: bool = False, heads: int = 4, context_dim: int | None = None, upsample: bool = True):
        super().__init__()
        self.upsample = upsample
        self.block = ResBlock(c_in + c_skip, c_out, emb_dim, groups)
        self.attn = AttentionBlock(c_out, heads, groups, context_dim) if attention else nn.Identity()

    def forward(self, h: torch.Tensor, skip: torch.Tensor, emb: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")  # (B, C_in, 2H, 2W)
        h = torch.cat([h, skip], dim=1)  # (B, C_in + C_skip, 2H, 2W)
        return _attend(self.attn, self.block(h, emb), context)  # (B, C_out, 2H, 2W)


class UNet(nn.Module):
    """forward(x, t=None, y=None, context=None) -> prediction with the shape of x (B, out_channels, H, W)."""

    def __init__(self, config: UNetConfig | None = None, **kwargs):
        super().__init__()
        cfg = config if config is not None else UNetConfig(**kwargs)
        self.config = cfg
        ch, groups = cfg.channels, cfg.groups

        emb_dim = None
        if cfg.time_conditioning or cfg.num_classes:
            emb_dim = 4 * ch[0]
            self.time_mlp = nn.Sequential(nn.Linear(ch[0], emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
            if cfg.num_classes:
                self.class_emb = nn.Embedding(cfg.num_classes + 1, emb_dim)  # + 1: the null class

        self.stem = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList()
        c = ch[0]
        for i, (c_level, use_attn) in enumerate(zip(ch, cfg.attention)):
            last = i == len(ch) - 1
            self.down.append(DownBlock(c, c_level, emb_dim, groups, cfg.blocks_per_level, use_attn, cfg.heads,
                                       cfg.context_dim, downsample=not last))
            c = c_level
        self.mid = ResBlock(c, c, emb_dim, groups)
        self.up = nn.ModuleList()
        for i in reversed(range(len(ch))):
            first = i == len(ch) - 1
            self.up.append(UpBlock(c, ch[i], ch[i], emb_dim, groups, cfg.attention[i], cfg.heads, cfg.context_dim,
                                   upsample=not first))
            c = ch[i]
        self.out = nn.Sequential(nn.GroupNorm(groups, c), nn.SiLU(), nn.Conv2d(c, cfg.out_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)  # start by predicting zero: a calm first step of training
        nn.init.zeros_(self.out[-1].bias)
        name_attention(self)

    def _embedding(self, x, t, y):
        cfg = self.config
        if y is not None and not cfg.num_classes:
            raise ValueError("this UNet has no class conditioning (num_classes=None), so a label y would be ignored: "
                             "call it without y, or use a model built with UNetConfig(num_classes=10)")
        if not (cfg.time_conditioning or cfg.num_classes):
            return None
        B = x.shape[0]
        if cfg.time_conditioning:
            if t is None:
                raise ValueError("this UNet is time-conditioned: call model(x, t) with t of shape (B,)")
            t = torch.as_tensor(t, device=x.device)
            if t.dim() == 0:  # one timestep for the whole batch
                t = t.expand(B)
            if t.shape != (B,):
                raise ValueError(f"t must have shape ({B},) to match x, got {tuple(t.shape)}")
            emb = self.time_mlp(timestep_embedding(t, cfg.channels[0]))  # (B, emb_dim)
        else:
            emb = self.time_mlp(torch.zeros(B, cfg.channels[0], device=x.device, dtype=x.dtype))
        if cfg.num_classes:
            if y is None:
                y = torch.full((B,), cfg.num_classes, device=x.device, dtype=torch.long)  # no label: null class
            y = torch.as_tensor(y, device=x.device)
            if y.is_floating_point() or y.dtype == torch.bool:
                raise ValueError(f"class labels y must be integers (a long tensor), got {y.dtype}")
            if y.shape != (B,):
                raise ValueError(f"y must have shape ({B},) to match x, got {tuple(y.shape)}")
            # a check on the values, not the shape: skipped inside torch.compile, where it would split the graph
            if not torch.compiler.is_compiling() and (int(y.min()) < 0 or int(y.max()) > cfg.num_classes):
                raise ValueError(f"class labels must be in 0..{cfg.num_classes} ({cfg.num_classes} = no class), "
                                 f"got {int(y.min())}..{int(y.max())}")
            emb = emb + self.class_emb(y)
        return emb

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None, y: torch.Tensor | None = None,
                context: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        if context is not None and cfg.context_dim is None:
            raise ValueError("this UNet has no cross-attention (context_dim=None), so text tokens would be ignored: "
                             "call it without context, or use a text model (UNetConfig(context_dim=...))")
        emb = self._embedding(x, t, y)

        h = self.stem(x)  # (B, ch[0], H, W)
        skips = []
        for level in self.down:
            h, skip = level(h, emb, context)  # h: halved in H and W, except at the last level
            skips.append(skip)
        h = self.mid(h, emb)
        for level in self.up:
            h = level(h, skips.pop(), emb, context)
        return self.out(h)


def swap_res_blocks(model: nn.Module, block_class: type) -> nn.Module:
    """Replace every `ResBlock` of `model` by block_class(c_in, c_out, emb_dim, groups) holding the same weights
    (lesson 2: the trained network, run with the student's own time-conditioned block). Returns `model`.
    block_class must name its parameters like ResBlock's and take forward(x, emb)."""
    for name, block in list(model.named_modules()):
        if type(block) is ResBlock and block.emb is not None:
            new = block_class(block.conv1.in_channels, block.conv1.out_channels, block.emb.in_features,
                              block.norm2.num_groups)
            new.load_state_dict(block.state_dict())
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, new.to(block.conv1.weight.device))
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def config_dict(config: UNetConfig) -> dict:
    """The config as plain types (lists, ints), safe to store in a weights_only checkpoint."""
    d = asdict(config)
    d["channels"] = list(d["channels"])
    d["attention"] = list(d["attention"])
    return d
