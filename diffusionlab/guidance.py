"""Classifier-free guidance (lesson 3).

Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", eq. 6, written with the scale w of
Imagen/diffusers (w = 1: plain conditional model; w = 0: unconditional):
    eps_guided = eps_uncond + w (eps_cond - eps_uncond)
One network learns both terms: during training the class label is replaced by the "null" class
with probability p_uncond. A *negative* class takes the place of the null class, so the sample is
pushed towards y and away from the negative class. Without y, the unconditional prediction is the
positive term: eps = eps_neg + w (eps_uncond - eps_neg), away from the negative class only.

`guided_eps` turns a trained UNet into the eps_fn(x_t, t) that the samplers call; `guided_sample` is
the guided DDIM loop that lesson 3's exercise writes out (`samplers.sample` with `guided_eps`).
"""

from __future__ import annotations

import math

import torch

from . import samplers
from .schedules import PREDICTIONS, NoiseSchedule, compute_dtype

MAX_GUIDANCE = 20.0


def check_guidance_scale(guidance_scale: float) -> float:
    if not isinstance(guidance_scale, (int, float)) or not math.isfinite(guidance_scale) or not 0 <= guidance_scale <= MAX_GUIDANCE:
        raise ValueError(f"guidance_scale must be a number from 0 to {MAX_GUIDANCE:g} "
                         f"(1 = no guidance; 2-5 is typical), got {guidance_scale!r}")
    return float(guidance_scale)


def cfg_combine(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """eps_uncond + w (eps_cond - eps_uncond)."""
    return eps_uncond + guidance_scale * (eps_cond - eps_uncond)


def check_prediction(prediction: str) -> str:
    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction (what the network outputs) must be one of {PREDICTIONS}, got {prediction!r}")
    return prediction


def output_to_eps(schedule: NoiseSchedule, prediction: str, out: torch.Tensor, xt: torch.Tensor,
                  t: torch.Tensor) -> torch.Tensor:
    """The network's output (B, C, H, W) read as eps, in the samplers' precision (`compute_dtype(xt)`: float32,
    float64 for a float64 x_t): under mixed precision the network answers in bf16/fp16. An x0- or v-prediction is
    converted through eq. 4 (`NoiseSchedule.to_x0_eps`); every eps_fn below calls this, so the samplers only
    ever see eps."""
    out = out.to(compute_dtype(xt))
    return out if prediction == "eps" else schedule.to_x0_eps(prediction, out, xt, t)[1]


def check_dual_scales(image_scale: float, text_scale: float) -> tuple[float, float]:
    """The two scales of InstructPix2Pix's guidance, each a number from 0 to MAX_GUIDANCE."""
    for name, s, typical in (("image_scale", image_scale, "1-2"), ("text_scale", text_scale, "3-10")):
        if not isinstance(s, (int, float)) or not math.isfinite(s) or not 0 <= s <= MAX_GUIDANCE:
            raise ValueError(f"{name} (s_{name[0].upper()}) must be a number from 0 to {MAX_GUIDANCE:g} "
                             f"(1 = no guidance on that condition; {typical} is typical), got {s!r}")
    return float(image_scale), float(text_scale)


def dual_cfg_combine(eps_uncond: torch.Tensor, eps_image: torch.Tensor, eps_full: torch.Tensor,
                     image_scale: float, text_scale: float) -> torch.Tensor:
    """Classifier-free guidance on two conditions, the input image c_I and the instruction c_T (lesson 9).

    Brooks, Holynski & Efros 2022, "InstructPix2Pix", eq. 3:
        eps = eps(z, 0, 0) + s_I (eps(z, c_I, 0) - eps(z, 0, 0)) + s_T (eps(z, c_I, c_T) - eps(z, c_I, 0))
    eps_uncond = eps(z, 0, 0)      neither condition (a zero image latent, the empty instruction)
    eps_image  = eps(z, c_I, 0)    the input image, no instruction
    eps_full   = eps(z, c_I, c_T)  both
    s_I = s_T = 1 gives eps_full; s_T = 0 ignores the instruction; s_I = s_T = 0 gives eps_uncond.
    A negative instruction takes the place of the empty one: eps_image = eps(z, c_I, c_neg), so the text
    term pushes from the negative instruction towards c_T.
    """
    check_dual_scales(image_scale, text_scale)
    return eps_uncond + image_scale * (eps_image - eps_uncond) + text_scale * (eps_full - eps_image)


def instruct_guided_eps(unet, schedule: NoiseSchedule, prediction: str, image_latent: torch.Tensor,
                        context: torch.Tensor, uncond_context: torch.Tensor, image_scale: float = 1.5,
                        text_scale: float = 7.5):
    """eps_fn(z_t, t) for an image-conditioned UNet (`models.instruct`): unet(cat([z_t, c_I]), t, context=...)
    combined by `dual_cfg_combine` in one batched pass of 3B rows:
        [z_t, 0]   with uncond_context       -> eps(z, 0, 0)
        [z_t, c_I] with uncond_context       -> eps(z, c_I, 0)
        [z_t, c_I] with context              -> eps(z, c_I, c_T)
    image_latent:   (B, C_I, h, w) the input image's latent c_I (its "0" is a zero latent, as in training)
    context:        (B, L, D) the instruction's token embeddings
    uncond_context: (B, L, D) the empty instruction's, or a negative instruction's, which then takes the place
                    of the empty one in both terms (as diffusers' StableDiffusionInstructPix2PixPipeline does)
    With s_I = s_T = 1 only the third row is computed.
    """
    check_dual_scales(image_scale, text_scale)
    check_prediction(prediction)
    if context.shape != uncond_context.shape or context.shape[0] != image_latent.shape[0]:
        raise ValueError(f"image_latent {tuple(image_latent.shape)}, context {tuple(context.shape)} and "
                         f"uncond_context {tuple(uncond_context.shape)} need one row per image, and the two "
                         "contexts the same shape")

    def eps_fn(zt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c_I = image_latent.to(zt.dtype)
        if image_scale == 1.0 and text_scale == 1.0:
            return output_to_eps(schedule, prediction, unet(torch.cat([zt, c_I], 1), t, context=context), zt, t)
        z3, t3 = torch.cat([zt, zt, zt]), torch.cat([t, t, t])
        images = torch.cat([torch.zeros_like(c_I), c_I, c_I])  # (3B, C_I, h, w)
        out = unet(torch.cat([z3, images], 1), t3, context=torch.cat([uncond_context, uncond_context, context]))
        eps_uncond, eps_image, eps_full = output_to_eps(schedule, prediction, out, z3, t3).chunk(3)
        return dual_cfg_combine(eps_uncond, eps_image, eps_full, image_scale, text_scale)

    return eps_fn


def drop_labels(y: torch.Tensor, p_uncond: float, null_class: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Training-time condition dropout: replace each label by `null_class` with probability p_uncond."""
    if not isinstance(p_uncond, (int, float)) or not 0 <= p_uncond <= 1:
        raise ValueError(f"p_uncond is the probability of dropping a label, from 0 to 1 (0.1 is usual), got {p_uncond!r}")
    drop = torch.rand(y.shape, generator=generator, device=y.device) < p_uncond
    return torch.where(drop, torch.full_like(y, null_class), y)


def guided_eps(model, schedule: NoiseSchedule, prediction: str = "eps", y: torch.Tensor | None = None,
               guidance_scale: float = 1.0, negative_y: torch.Tensor | None = None):
    """Wrap `model` into eps_fn(x_t, t) -> eps for the samplers.

    model:          a UNet predicting `prediction` ("eps", "x0" or "v"); class-conditioned if y is given
    y:              (B,) class labels, or None: the null class (unconditional)
    guidance_scale: w in eps_uncond + w (eps_cond - eps_uncond); 1 skips the second pass
    negative_y:     (B,) classes to steer away from, used in place of the null class; with y = None,
                    eps_neg + w (eps_uncond - eps_neg)
    """
    check_guidance_scale(guidance_scale)
    check_prediction(prediction)
    num_classes = getattr(model.config, "num_classes", None)
    if (y is not None or negative_y is not None) and not num_classes:
        raise ValueError("this model is not class-conditioned: sample it without y or negative_y")

    def eps_fn(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not num_classes:
            return output_to_eps(schedule, prediction, model(xt, t), xt, t)
        null = torch.full((xt.shape[0],), num_classes, device=xt.device, dtype=torch.long)
        positive = y if y is not None else null
        if guidance_scale == 1.0 or (y is None and negative_y is None):
            return output_to_eps(schedule, prediction, model(xt, t, positive), xt, t)
        negative = negative_y if negative_y is not None else null
        # one batched forward pass for both predictions: (2B, C, H, W)
        x2, t2 = torch.cat([xt, xt]), torch.cat([t, t])
        out = model(x2, t2, torch.cat([negative, positive]))
        eps_negative, eps_positive = output_to_eps(schedule, prediction, out, x2, t2).chunk(2)
        return cfg_combine(eps_negative, eps_positive, guidance_scale)

    return eps_fn


@torch.no_grad()
def guided_sample(unet, schedule: NoiseSchedule, labels: torch.Tensor, guidance_scale: float, xT: torch.Tensor,
                  steps: int = 25, eta: float = 0.0, generator: torch.Generator | None = None,
                  clip: float | None = 1.0) -> torch.Tensor:
    """Classifier-free guided DDIM sampling from xT (lesson 3's exercise): at each of the `steps` trailing
    timesteps, eps_uncond and eps_cond from one batched pass of the eps-predicting, class-conditioned `unet`
    (null class and `labels`), combined by `cfg_combine`, then one `samplers.ddim_step`.

    labels: (B,) classes; xT: (B, C, H, W) the starting noise. Returns (B, C, H, W) clipped to [-clip, clip].
    The same loop as `samplers.sample(guided_eps(unet, schedule, "eps", labels, guidance_scale), ...)`, which
    is what this runs, so that there is one sampling loop.
    """
    if labels.shape != (xT.shape[0],):
        raise ValueError(f"labels must be (B,) = ({xT.shape[0]},), one class per image of xT, got {tuple(labels.shape)}")
    eps_fn = guided_eps(unet, schedule, "eps", labels, guidance_scale)
    return samplers.sample(eps_fn, xT.shape, schedule, "ddim", steps, eta, generator=generator, xT=xT,
                           progress=False, clip=clip)


def check_guidance_interval(interval, T: int = 1000) -> tuple[int, int] | None:
    """None (guide every step), or (lo, hi) with 0 <= lo < hi <= T: guide only the timesteps lo <= t < hi."""
    if interval is None:
        return None
    try:
        lo, hi = (int(v) for v in interval)
        ok = (lo, hi) == tuple(interval) and 0 <= lo < hi <= T
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"guidance_interval must be None (every step) or (lo, hi) with 0 <= lo < hi <= {T}, whole "
                         f"timesteps: guidance acts where lo <= t < hi (e.g. (0, 850)); got {interval!r}")
    return lo, hi


def text_guided_eps(unet, schedule: NoiseSchedule, prediction: str, context: torch.Tensor,
                    uncond_context: torch.Tensor, guidance_scale: float = 1.0, guidance_interval=None):
    """eps_fn(x_t, t) for a UNet that reads text tokens through cross-attention (lesson 7).

    context:           (B, L, D) the prompt's token embeddings
    uncond_context:    (B, L, D) the empty caption's, or a *negative prompt's*: its prediction takes the place
                       of the unconditional one, eps_neg + w (eps_cond - eps_neg), so the sample moves away from it
    guidance_interval: None: guide every step. (lo, hi): guide only where lo <= t < hi, and use the prompt's own
                       prediction elsewhere (w = 1, one network pass instead of two). Kynkaanniemi et al. 2024,
                       "Applying Guidance in a Limited Interval Improves Sample and Distribution Quality in
                       Diffusion Models": guidance at the highest noise levels costs the most diversity.
    """
    check_guidance_scale(guidance_scale)
    check_prediction(prediction)
    interval = check_guidance_interval(guidance_interval, schedule.T)
    if context.shape != uncond_context.shape:
        raise ValueError(f"context {tuple(context.shape)} and uncond_context {tuple(uncond_context.shape)} must "
                         "have the same shape: one prompt and one negative (or empty) prompt per image")

    def eps_fn(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inside = torch.ones_like(t, dtype=torch.bool) if interval is None else (t >= interval[0]) & (t < interval[1])
        if guidance_scale == 1.0 or not inside.any():
            return output_to_eps(schedule, prediction, unet(xt, t, context=context), xt, t)
        # one batched forward pass for both predictions: (2B, C, H, W)
        x2, t2 = torch.cat([xt, xt]), torch.cat([t, t])
        out = unet(x2, t2, context=torch.cat([uncond_context, context]))
        eps_uncond, eps_cond = output_to_eps(schedule, prediction, out, x2, t2).chunk(2)
        guided = cfg_combine(eps_uncond, eps_cond, guidance_scale)
        return guided if inside.all() else torch.where(inside.view(-1, 1, 1, 1), guided, eps_cond)

    return eps_fn
