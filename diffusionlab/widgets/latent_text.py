"""The widgets of lesson 7, latent diffusion with text."""

from __future__ import annotations

import time

import ipywidgets as W
import torch

from ..pipelines.latent import RECOMMENDED_GUIDANCE
from ..utils import make_generator
from ..viz import show_images, show_row
from .common import Explorer

TEXT_STEP_CHOICES = (5, 10, 15, 20, 30, 50, 100)


def make_prompt_explorer(pipe, n: int = 8, prompt: str = "a thick seven", negative_prompt: str = "",
                         guidance_scale: float = RECOMMENDED_GUIDANCE["guidance_scale"], steps: int = 20,
                         max_guidance: float = 10.0) -> Explorer:
    """Prompt and negative prompt (text boxes, drawn when you press Enter or leave the box), guidance scale, the
    timestep below which guidance acts ("guide t <": the guidance interval (0, that); T guides every step), DDIM
    steps and seed: `n` samples of `pipe` (a `pipelines.latent.LatentDiffusion`) and the time they took.
    An empty negative prompt is the empty caption, plain classifier-free guidance. A word the model does not
    know is named in the output area, with the closest words it knows.
    `last`: {"images": (n, 1, 28, 28), "seconds": wall time}, or {"error": the message}."""
    if steps not in TEXT_STEP_CHOICES:
        raise ValueError(f"steps must be one of {TEXT_STEP_CHOICES}, got {steps!r}")
    T = pipe.schedule.T
    controls = {
        "prompt": W.Text(value=prompt, description="prompt", continuous_update=False),
        "negative_prompt": W.Text(value=negative_prompt, description="negative", placeholder="(none)",
                                  continuous_update=False),
        "guidance_scale": W.FloatSlider(value=guidance_scale, min=0.0, max=max_guidance, step=0.5,
                                        description="guidance w", continuous_update=False),
        "guide_below": W.IntSlider(value=min(RECOMMENDED_GUIDANCE["guidance_interval"][1], T), min=T // 10, max=T,
                                   step=T // 20, description="guide t <", continuous_update=False),
        "steps": W.SelectionSlider(options=TEXT_STEP_CHOICES, value=steps, description="steps",
                                   continuous_update=False),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }

    def draw(prompt, negative_prompt, guidance_scale, guide_below, steps, seed):
        negative = negative_prompt if negative_prompt.strip() else None
        try:
            pipe.tokenizer.encode([prompt] + ([negative] if negative else []))
        except ValueError as err:  # an unknown word or a caption too long: the message, not a traceback
            print(err)
            return {"error": str(err)}
        start = time.perf_counter()
        x = pipe.sample(prompt, n=n, negative_prompts=negative, guidance_scale=guidance_scale, steps=steps,
                        generator=make_generator(seed, pipe.device), guidance_interval=(0, guide_below))
        if pipe.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        away = f", not {negative!r}" if negative else ""
        where = "" if guide_below == T else f" at t < {guide_below}"
        show_images(x, nrow=n, title=f"{prompt!r}{away}, w = {guidance_scale:g}{where}, DDIM {steps} steps: "
                                     f"{seconds:.2f} s for {n} images")
        return {"images": x, "seconds": seconds}

    return Explorer(controls, draw)


def interpolate_latents(vae, x_a: torch.Tensor, x_b: torch.Tensor, alphas) -> torch.Tensor:
    """Decode (1 - alpha) z_a + alpha z_b for each alpha, where z_a, z_b are the VAE's posterior means of the
    digits x_a, x_b (1, 1, 28, 28). Returns (len(alphas), 1, 28, 28) in [-1, 1]."""
    device = vae.scale_factor.device
    z = vae.encode_latents(torch.cat([x_a, x_b]).to(device))  # (2, 4, 8, 8)
    a = torch.as_tensor(list(alphas), dtype=z.dtype, device=device).view(-1, 1, 1, 1)
    return vae.decode_latents((1 - a) * z[:1] + a * z[1:])


def make_interpolation_explorer(vae, images: torch.Tensor, labels: torch.Tensor, index_a: int = 0,
                                index_b: int = 1) -> Explorer:
    """Two digits (by their digit and which example of it, from `images` (N, 1, 28, 28) with `labels` (N,)) and a
    slider alpha: the decoded mix of their latents, (1 - alpha) z_a + alpha z_b, next to the mix of their pixels.
    `last`: {"latent": the decoded latent mix (1, 1, 28, 28), "pixel": the pixel mix (1, 1, 28, 28)}."""
    digits = sorted(set(labels.tolist()))
    controls = {
        "digit_a": W.Dropdown(options=digits, value=digits[1 % len(digits)], description="from"),
        "digit_b": W.Dropdown(options=digits, value=digits[7 % len(digits)], description="to"),
        "example": W.IntSlider(value=0, min=0, max=4, description="example", continuous_update=False),
        "alpha": W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="alpha", continuous_update=True),
    }

    def pick(digit, example):
        idx = (labels == digit).nonzero().flatten()
        return images[idx[example % len(idx)]].unsqueeze(0)  # (1, 1, 28, 28)

    def draw(digit_a, digit_b, example, alpha):
        x_a, x_b = pick(digit_a, example), pick(digit_b, example + 1)
        latent = interpolate_latents(vae, x_a, x_b, [alpha]).cpu()
        pixel = (1 - alpha) * x_a + alpha * x_b
        show_row([x_a, latent, pixel, x_b], [f"a {digit_a}", f"latent mix, {alpha:.2f}", f"pixel mix, {alpha:.2f}",
                                             f"a {digit_b}"])
        return {"latent": latent, "pixel": pixel}

    return Explorer(controls, draw)
