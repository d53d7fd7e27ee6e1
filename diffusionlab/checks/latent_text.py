"""The exercise checks of lesson 7, latent diffusion with text."""

from __future__ import annotations

from typing import Callable

import torch

from ..guidance import text_guided_eps
from ..models.attention import Attention
from ..models.unet import UNet, UNetConfig
from ..models.vae import kl_divergence, reparameterize
from ..schedules import NoiseSchedule
from .common import compare, seeded


def check_reparameterize(student_fn: Callable) -> None:
    """Lesson 7. student_fn(mean, logvar, generator) -> z = mean + exp(logvar / 2) * eps, as `models.vae.reparameterize`,
    with eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)."""

    def case(shape, logvar_shift, seed):
        return lambda: (seeded(seed, *shape), seeded(seed + 1, *shape) + logvar_shift,
                        torch.Generator().manual_seed(seed + 2))

    cases = [case((2, 4, 8, 8), 0.0, 1), case((3, 4, 8, 8), -3.0, 4), case((1, 4, 8, 8), 2.0, 7), case((5, 2), 0.5, 10)]
    compare("reparameterize", student_fn, reparameterize, cases)


def check_kl_divergence(student_fn: Callable) -> None:
    """Lesson 7. student_fn(mean, logvar) -> KL(N(mean, exp(logvar)) || N(0, I)) per element, the shape of mean,
    as `models.vae.kl_divergence`."""

    def case(shape, scale, logvar_shift, seed):
        return lambda: (scale * seeded(seed, *shape), seeded(seed + 1, *shape) + logvar_shift)

    cases = [case((2, 4, 8, 8), 1.0, 0.0, 1), case((3, 4, 8, 8), 0.1, -4.0, 3), case((1, 4, 8, 8), 3.0, 1.5, 5),
             case((4, 3), 0.0, 0.0, 7)]
    compare("kl_divergence", student_fn, kl_divergence, cases)


def check_cross_attention(student_fn: Callable) -> None:
    """Lesson 7. student_fn(attn, x, context) -> what `attn(x, context)` returns: multi-head scaled dot-product
    attention with the weights of `attn` (an `models.attention.Attention`): q from x (B, N, C), k and v from
    context (B, M, C_ctx), softmax(q k^T / sqrt(d)) v per head, the heads side by side, then attn.to_out."""

    def case(B, N, M, dim, heads, context_dim, seed):
        def make():
            with torch.random.fork_rng():  # the layer's initial weights from `seed`; the notebook's RNG left alone
                torch.manual_seed(seed)
                attn = Attention(dim, heads, context_dim).eval()
            return attn, seeded(seed + 1, B, N, dim), seeded(seed + 2, B, M, context_dim)
        return make

    cases = [case(2, 64, 12, 32, 4, 16, 1), case(1, 16, 5, 8, 1, 8, 2), case(3, 4, 12, 64, 8, 64, 3),
             case(2, 9, 1, 16, 2, 24, 4)]

    def reference(attn, x, context):
        with torch.no_grad():
            return attn(x, context)

    with torch.no_grad():
        compare("cross_attention", student_fn, reference, cases)


def _text_unet(seed: int) -> UNet:
    """A small untrained latent UNet with cross-attention, whose output layer is not the zero of a fresh UNet.
    Its weights come from `seed`; the notebook's global RNG is left as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        unet = UNet(UNetConfig(in_channels=4, out_channels=4, image_size=8, channels=(8, 16), attention=(False, True),
                               context_dim=16, heads=2)).eval()
        for p in unet.out.parameters():
            torch.nn.init.normal_(p, std=0.3)
    return unet


def check_negative_prompt_eps(student_fn: Callable) -> None:
    """Lesson 7. student_fn(unet, zt, t, context, negative_context, guidance_scale) -> eps_neg + w (eps_cond - eps_neg),
    where eps_cond = unet(zt, t, context=context) and eps_neg = unet(zt, t, context=negative_context), as
    `guidance.text_guided_eps(unet, schedule, "eps", context, negative_context, w)(zt, t)`."""
    schedule = NoiseSchedule(1000, "cosine")

    def case(B, w, t, seed):
        def make():
            return (_text_unet(seed), seeded(seed + 1, B, 4, 8, 8), torch.full((B,), t),
                    seeded(seed + 2, B, 12, 16), seeded(seed + 3, B, 12, 16), w)
        return make

    cases = [case(2, 3.0, 500, 1), case(1, 0.0, 900, 2), case(3, 7.5, 100, 3), case(2, 1.0, 10, 4), case(2, 2.0, 999, 5)]

    def reference(unet, zt, t, context, negative_context, guidance_scale):
        return text_guided_eps(unet, schedule, "eps", context, negative_context, guidance_scale)(zt, t)

    with torch.no_grad():
        compare("negative_prompt_eps", student_fn, reference, cases, atol=1e-4)
