"""A small convolutional VAE: the autoencoder of latent diffusion (lesson 7).

Kingma & Welling 2014, "Auto-Encoding Variational Bayes": the encoder gives a Gaussian posterior
q(z | x) = N(mean, exp(logvar)) per latent element, a latent is drawn with the reparameterisation
trick (sec. 2.4)
    z = mean + exp(logvar / 2) * eps,   eps ~ N(0, I)
so the sample is a differentiable function of (mean, logvar), and the KL divergence to the prior
N(0, I) has the closed form of appendix B
    KL = 0.5 * sum(mean^2 + exp(logvar) - 1 - logvar).
Rombach et al. 2022 ("High-Resolution Image Synthesis with Latent Diffusion Models", sec. 3 and
appendix G) train such an autoencoder with a very small KL weight, so the latent stays close to the
image (good reconstructions) while keeping a bounded, smooth scale; the diffusion model then works
on latents multiplied by `scale_factor` = 1 / std(latents), so they have unit variance like the noise.

Here: MNIST padded from 28x28 to 32x32 (`pad`, `crop`), in [-1, 1], and a 4 x 8 x 8 latent (256 numbers
for 784 pixels). Reconstruction loss: mean squared error per pixel; KL: mean per latent element,
weighted by `kl_weight` (`vae_loss`).

Shapes in comments: B batch, C channels, H x W size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..unet import ResBlock

IMAGE_SIZE = 28  # MNIST
PAD = 2  # 28 + 2 + 2 = 32: three halvings to 8x8 need a size divisible by 4... and 8x8 needs 32


def pad(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 28, 28) -> (B, C, 32, 32), padded with the background value -1."""
    return F.pad(x, (PAD, PAD, PAD, PAD), value=-1.0)


def crop(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 32, 32) -> (B, C, 28, 28): undo `pad`."""
    return x[..., PAD:-PAD, PAD:-PAD]


@dataclass
class VAEConfig:
    in_channels: int = 1  # image channels
    image_size: int = 32  # the padded image; must be divisible by 2 ** (len(channels) - 1)
    channels: tuple[int, ...] = (32, 64, 64)  # width at each resolution: 32x32, 16x16, 8x8
    latent_channels: int = 4  # channels of the latent, at the lowest resolution
    groups: int = 8  # GroupNorm groups

    def __post_init__(self):
        self.channels = tuple(self.channels)
        if self.image_size % 2 ** (len(self.channels) - 1):
            raise ValueError(f"image_size {self.image_size} is not divisible by 2**{len(self.channels) - 1}")

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.channels) - 1)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (self.latent_channels, self.latent_size, self.latent_size)


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I): a sample of N(mean, exp(logvar)) that gradients flow through."""
    eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + (0.5 * logvar).exp() * eps


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per element (same shape as mean): 0.5 (mean^2 + var - 1 - logvar)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


class VAE(nn.Module):
    """encode(x) -> (mean, logvar), decode(z) -> image; x (B, 1, 32, 32), z (B, 4, 8, 8).

    `scale_factor` (a buffer, 1 until `fit_scale_factor` sets it) is 1 / std of the training latents:
    the diffusion model sees z * scale_factor and hands back latents that are divided by it before decoding.
    """

    def __init__(self, config: VAEConfig | None = None, **kwargs):
        super().__init__()
        cfg = config if config is not None else VAEConfig(**kwargs)
        self.config = cfg
        ch, g = cfg.channels, cfg.groups
        self.register_buffer("scale_factor", torch.tensor(1.0))

        enc = [nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)]
        c = ch[0]
        for i, c_level in enumerate(ch):
            enc.append(ResBlock(c, c_level, None, g))
            c = c_level
            if i < len(ch) - 1:
                enc.append(nn.Conv2d(c, c, 3, stride=2, padding=1))  # halves H and W
        enc += [nn.GroupNorm(g, c), nn.SiLU(), nn.Conv2d(c, 2 * cfg.latent_channels, 3, padding=1)]
        self.encoder = nn.ModuleList(enc)

        dec = [nn.Conv2d(cfg.latent_channels, ch[-1], 3, padding=1)]
        c = ch[-1]
        for i, c_level in enumerate(reversed(ch)):
            dec.append(ResBlock(c, c_level, None, g))
            c = c_level
            if i < len(ch) - 1:
                dec += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c, c, 3, padding=1)]  # doubles H and W
        dec += [nn.GroupNorm(g, c), nn.SiLU(), nn.Conv2d(c, cfg.in_channels, 3, padding=1)]
        self.decoder = nn.ModuleList(dec)

    @staticmethod
    def _run(layers: nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            h = layer(h, None) if isinstance(layer, ResBlock) else layer(h)
        return h

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, 32, 32) in [-1, 1] -> (mean, logvar), each (B, latent_channels, 8, 8)."""
        cfg = self.config
        expected = (cfg.in_channels, cfg.image_size, cfg.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            hint = " (pad 28x28 digits with vae.pad first)" if x.shape[-1] == IMAGE_SIZE else ""
            raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}{hint}")
        mean, logvar = self._run(self.encoder, x).chunk(2, dim=1)  # (B, latent_channels, 8, 8) each
        return mean, logvar.clamp(-30.0, 20.0)  # keep exp(logvar) finite

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, latent_channels, 8, 8) -> image (B, C, 32, 32), roughly in [-1, 1] (not clipped)."""
        expected = self.config.latent_shape
        if z.dim() != 4 or tuple(z.shape[1:]) != expected:
            raise ValueError(f"z must have shape (B, {', '.join(map(str, expected))}), got {tuple(z.shape)}")
        return self._run(self.decoder, z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """(reconstruction, mean, logvar): encode, draw z with the reparameterisation trick, decode."""
        mean, logvar = self.encode(x)
        return self.decode(reparameterize(mean, logvar, generator)), mean, logvar

    @torch.no_grad()
    def encode_latents(self, images: torch.Tensor, batch_size: int = 1000, scaled: bool = True) -> torch.Tensor:
        """28x28 digits (N, 1, 28, 28) in [-1, 1] -> posterior means (N, 4, 8, 8), times scale_factor if scaled."""
        device = self.scale_factor.device
        out = [self.encode(pad(images[i : i + batch_size].to(device)))[0] for i in range(0, len(images), batch_size)]
        z = torch.cat(out)
        return z * self.scale_factor if scaled else z

    @torch.no_grad()
    def decode_latents(self, z: torch.Tensor, batch_size: int = 1000, scaled: bool = True) -> torch.Tensor:
        """Latents (N, 4, 8, 8) (times scale_factor if scaled) -> 28x28 digits (N, 1, 28, 28), clamped to [-1, 1]."""
        z = z / self.scale_factor if scaled else z
        out = [crop(self.decode(z[i : i + batch_size])) for i in range(0, len(z), batch_size)]
        return torch.cat(out).float().clamp(-1, 1)

    @torch.no_grad()
    def fit_scale_factor(self, images: torch.Tensor) -> float:
        """Set scale_factor = 1 / std of the posterior means of `images` (N, 1, 28, 28); returns it."""
        std = self.encode_latents(images, scaled=False).float().std().item()
        self.scale_factor.fill_(1.0 / std)
        return 1.0 / std


def vae_loss(model: VAE, x0: torch.Tensor, y, generator: torch.Generator | None = None, kl_weight: float = 1e-3):
    """MSE of the reconstruction (mean per pixel) + kl_weight * KL (mean per latent element).

    x0: (B, 1, 28, 28) digits in [-1, 1], padded here; y is ignored (the signature of `train.train`'s loss_fn).
    """
    x = pad(x0)
    recon, mean, logvar = model(x, generator)
    mse = (recon.float() - x).pow(2).mean()
    return mse + kl_weight * kl_divergence(mean.float(), logvar.float()).mean()


def config_dict(config: VAEConfig) -> dict:
    """The config as plain types, safe to store in a weights_only checkpoint."""
    d = asdict(config)
    d["channels"] = list(d["channels"])
    return d
