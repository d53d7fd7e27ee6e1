"""Interactive sliders for the lessons (ipywidgets 7.7 on Colab and 8 locally: core widgets only).

Every widget here is thin: it wires sliders to a pure function of this package (which the tests
call directly) and redraws an image in an Output area. Each `make_...` returns a `Explorer`, whose
`.ui` is displayed in the notebook, whose `.controls` are the sliders, and whose `.render()` draws
the current state; tests set a control's value and check that the picture changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import ipywidgets as W
import matplotlib.pyplot as plt


@dataclass
class Explorer:
    """Sliders + an output area + a draw function. `last` holds what the last redraw computed."""

    controls: dict
    draw: Callable[..., object]  # draw(**values) -> anything worth keeping (images, numbers), and plots
    output: W.Output = field(default_factory=W.Output)
    last: object = None

    def __post_init__(self):
        for control in self.controls.values():
            control.observe(lambda change: self.render(), names="value")
        self.ui = W.VBox([W.HBox(list(self.controls.values())), self.output])

    def values(self) -> dict:
        return {name: c.value for name, c in self.controls.items()}

    def render(self):
        with self.output:
            self.output.clear_output(wait=True)
            self.last = self.draw(**self.values())
            plt.show()
        return self.last


# --- Lesson 1: denoising as a learning problem ----------------------------------------------------------


def denoise_views(denoiser, x, sigma: float, blur_px: float = 1.0, seed: int = 0) -> dict:
    """Clean images x (B, 1, 28, 28) -> the noisy input at `sigma`, the Gaussian-blur baseline and the
    UNet's answer: {"clean", "noisy", "blur", "unet": (B, 1, 28, 28) on the CPU, "mse": {name: MSE to clean}}.

    denoiser: a one-step denoiser UNet(z), or the `course.DiffusionModel` that holds it.
    """
    import torch

    from .filters import gaussian_blur
    from .train import add_noise
    from .utils import make_generator

    net = getattr(denoiser, "unet", denoiser)
    device = next(net.parameters()).device
    x = x.float().cpu()
    noisy = add_noise(x, sigma, make_generator(seed))
    with torch.no_grad():
        unet = net(noisy.to(device)).float().cpu()
    views = {"clean": x, "noisy": noisy, "blur": gaussian_blur(noisy, blur_px), "unet": unet}
    views["mse"] = {k: (v - x).pow(2).mean().item() for k, v in views.items() if k != "clean"}
    return views


def make_denoise_explorer(denoiser, images, sigma: float = 0.5, blur_px: float = 1.0) -> Explorer:
    """A noise-level slider (and blur width, image index): noisy input | blur baseline | UNet output
    side by side, each with its mean squared error to the clean image. `last`: `denoise_views`' dict."""
    from .viz import show_row

    controls = {
        "sigma": W.FloatSlider(value=sigma, min=0.0, max=1.5, step=0.05, description="noise sigma",
                               continuous_update=False),
        "blur_px": W.FloatSlider(value=blur_px, min=0.0, max=3.0, step=0.25, description="blur (px)",
                                 continuous_update=False),
        "index": W.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False),
    }

    def draw(sigma, blur_px, index):
        v = denoise_views(denoiser, images[index : index + 1], sigma, blur_px, seed=index)
        mse = v["mse"]
        show_row([v["clean"], v["noisy"], v["blur"], v["unet"]],
                 titles=["clean", f"noisy, sigma={sigma:.2f}\nMSE {mse['noisy']:.3f}",
                         f"blur {blur_px:g} px\nMSE {mse['blur']:.3f}", f"UNet\nMSE {mse['unet']:.3f}"])
        return v

    return Explorer(controls, draw)


# --- Lesson 2: DDPM -------------------------------------------------------------------------------------


def forward_views(model, x0, t: int, seed: int = 0) -> dict:
    """One step of the forward process and the model's answer to it, for clean images x0 (B, 1, 28, 28):
    {"xt", "eps", "eps_hat", "x0_hat": (B, 1, 28, 28) on the CPU, "alpha_bar": alpha_bar_t}.

    model: a `course.DiffusionModel` (its network, schedule and prediction type).
    """
    import torch

    from .samplers import predict_x0
    from .utils import make_generator

    schedule = model.schedule
    x0 = x0.float().cpu()
    eps = torch.randn(x0.shape, generator=make_generator(seed))
    tt = torch.full((x0.shape[0],), int(t), dtype=torch.long)
    xt = schedule.q_sample(x0, tt, eps)
    with torch.no_grad():
        eps_hat = model.eps_fn()(xt.to(model.device), tt.to(model.device)).float().cpu()
    x0_hat, _ = predict_x0(schedule, eps_hat, int(t), xt)
    return {"xt": xt, "eps": eps, "eps_hat": eps_hat, "x0_hat": x0_hat, "alpha_bar": float(schedule.alpha_bar[t])}


def make_forward_explorer(model, images, t: int = 500) -> Explorer:
    """A timestep slider over the forward process of one digit: x0 | x_t | the noise eps | the model's
    noise estimate | its x0 prediction. `last`: `forward_views`' dict."""
    from .viz import show_row

    controls = {
        "t": W.IntSlider(value=t, min=0, max=model.schedule.T - 1, description="t", continuous_update=False),
        "index": W.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False),
    }

    def draw(t, index):
        v = forward_views(model, images[index : index + 1], t, seed=index)
        # the noise is shown at half its size, so that +-2 standard deviations fit the grey range [-1, 1]
        show_row([images[index : index + 1], v["xt"], v["eps"] / 2, v["eps_hat"] / 2, v["x0_hat"]],
                 titles=["x0", f"x_t, t={t}\nalpha_bar={v['alpha_bar']:.3f}", "noise eps", "predicted eps",
                         "x0 prediction"])
        return v

    return Explorer(controls, draw)


def make_reverse_explorer(trajectory: dict, n: int = 8) -> Explorer:
    """A slider that scrubs through a precomputed reverse process (`samplers.sample(...,
    return_trajectory=True)`): x_t on top, the model's x0 prediction below. `last`: (x_t, x0_hat) shown."""
    import torch

    from .viz import show_images

    ts = trajectory["t"]
    controls = {"step": W.IntSlider(value=0, min=0, max=len(ts), description="step", continuous_update=True)}

    def draw(step):
        xt = trajectory["xt"][step, :n]
        x0_hat = trajectory["x0"][min(step, len(ts) - 1), :n] if step < len(ts) else xt
        title = f"step {step} of {len(ts)}: t = {ts[step]}" if step < len(ts) else f"done: {len(ts)} steps"
        show_images(torch.cat([xt, x0_hat]), nrow=n, title=title, row_labels=["x_t", "x0 pred."])
        return xt, x0_hat

    return Explorer(controls, draw)


# --- Lesson 3: class conditioning and classifier-free guidance ------------------------------------------


def make_guidance_explorer(model, n: int = 8, steps: int = 25, max_guidance: float = 10.0) -> Explorer:
    """A digit picker, a guidance-scale slider and a seed: `n` samples of the digit from `model` (a
    class-conditioned `course.DiffusionModel`) with DDIM in `steps` steps. `last`: the images (n, 1, 28, 28)."""
    from .utils import make_generator
    from .viz import show_images

    controls = {
        "digit": W.Dropdown(options=list(range(10)), value=3, description="digit"),
        "guidance_scale": W.FloatSlider(value=2.0, min=0.0, max=max_guidance, step=0.5, description="guidance w",
                                        continuous_update=False),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }

    def draw(digit, guidance_scale, seed):
        g = make_generator(seed, model.device)
        x = model.sample(n, labels=[digit] * n, guidance_scale=guidance_scale, steps=steps, generator=g,
                         progress=False)
        show_images(x, nrow=n, title=f"digit {digit}, guidance w = {guidance_scale:g}, seed {seed}")
        return x

    return Explorer(controls, draw)


# --- Lesson 4: DDIM and fast sampling -------------------------------------------------------------------

DDIM_STEP_CHOICES = (2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)


def make_ddim_explorer(model, n: int = 10, max_guidance: float = 10.0) -> Explorer:
    """Steps, eta, guidance scale and seed for DDIM sampling of the digits 0..n-1 (mod 10); the title
    shows the wall time. `last`: {"images": (n, 1, 28, 28), "seconds": wall time of the sampling}."""
    import time

    import torch

    from .utils import make_generator
    from .viz import show_images

    controls = {
        "steps": W.SelectionSlider(options=DDIM_STEP_CHOICES, value=20, description="steps", continuous_update=False),
        "eta": W.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.1, description="eta", continuous_update=False),
        "guidance_scale": W.FloatSlider(value=2.0, min=0.0, max=max_guidance, step=0.5, description="guidance w",
                                        continuous_update=False),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }
    labels = torch.arange(n) % 10 if model.unet.config.num_classes else None

    def draw(steps, eta, guidance_scale, seed):
        g = make_generator(seed, model.device)
        start = time.perf_counter()
        x = model.sample(n, labels=labels, guidance_scale=guidance_scale, steps=steps, eta=eta, generator=g,
                         progress=False)
        if model.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        show_images(x, nrow=n, title=f"DDIM, {steps} steps, eta = {eta:g}, w = {guidance_scale:g}: "
                                     f"{seconds:.2f} s for {n} images")
        return {"images": x, "seconds": seconds}

    return Explorer(controls, draw)


# --- Lesson 5: editing ----------------------------------------------------------------------------------

NO_LABEL = 10  # the null class of the cond model: no condition
CLASS_OPTIONS = [("no label", NO_LABEL)] + [(str(c), c) for c in range(10)]


def _label_eps(model, label: int, n: int, guidance_scale: float):
    """eps_fn for n images of class `label`, guided; NO_LABEL: unconditional, without guidance."""
    import torch

    y = torch.full((n,), label, device=model.device)
    return model.eps_fn(y, guidance_scale if label != NO_LABEL else 1.0)


def _sample_from(model, eps_fn, n: int, steps: int, seed: int):
    """n images from noise with DDIM and `eps_fn`, the network in mixed precision (as `model.sample`)."""
    from .samplers import sample
    from .utils import make_generator

    with model.autocast():
        return sample(eps_fn, (n, 1, 28, 28), model.schedule, steps=steps,
                      generator=make_generator(seed, model.device), device=model.device, progress=False)


def read_uploads(value) -> list[tuple[str, bytes]]:
    """(name, bytes) of each file in a FileUpload's value, in ipywidgets 7.7's format (a dict
    name -> {"content": bytes, ...}) and in 8's (a tuple of {"name", "content": memoryview, ...})."""
    if isinstance(value, dict):
        return [(name, bytes(f["content"])) for name, f in value.items()]
    return [(f["name"], bytes(f["content"])) for f in value]


def make_sdedit_explorer(model, images, n: int = 6, steps: int = 25, guidance_scale: float = 2.0) -> Explorer:
    """SDEdit: pick a source image (from `images` (N, 1, 28, 28)), a target class and the strength; `n`
    edits from different noise are shown after the source. `last`: the edits (n, 1, 28, 28)."""
    import torch

    from .editing import sdedit
    from .utils import make_generator
    from .viz import show_images

    controls = {
        "index": W.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False),
        "target": W.Dropdown(options=CLASS_OPTIONS, value=8, description="target"),
        "strength": W.FloatSlider(value=0.6, min=0.0, max=1.0, step=0.05, description="strength",
                                  continuous_update=False),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }

    def draw(index, target, strength, seed):
        x0 = images[index:index + 1].to(model.device).expand(n, -1, -1, -1)
        eps_fn = _label_eps(model, target, n, guidance_scale)
        with model.autocast():
            x = sdedit(eps_fn, x0, model.schedule, strength, steps, generator=make_generator(seed, model.device))
        name = "no label" if target == NO_LABEL else f"class {target}"
        show_images(torch.cat([x0[:1], x]), nrow=n + 1, title=f"source | {n} edits towards {name}, strength {strength:g}")
        return x

    return Explorer(controls, draw)


def make_upload_explorer(model, n: int = 6, steps: int = 25, guidance_scale: float = 2.0) -> Explorer:
    """SDEdit on a picture the student uploads (any size or mode: `data.load_image` turns it into a 28x28
    digit). `last`: the edits (n, 1, 28, 28), or None before an upload or when the file is no image."""
    import torch

    from .data import load_image
    from .editing import sdedit
    from .utils import make_generator
    from .viz import show_images

    controls = {
        "upload": W.FileUpload(accept="image/*", multiple=False, description="your digit"),
        "target": W.Dropdown(options=CLASS_OPTIONS, value=NO_LABEL, description="target"),
        "strength": W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="strength",
                                  continuous_update=False),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }

    def draw(upload, target, strength, seed):
        files = read_uploads(upload)
        if not files:
            print("Upload a picture of a digit (PNG or JPEG, any size; dark ink on light paper is fine).")
            return None
        name, content = files[-1]
        try:
            x0 = load_image(content).to(model.device).expand(n, -1, -1, -1)
        except ValueError as err:
            print(f"{name}: {err}")
            return None
        eps_fn = _label_eps(model, target, n, guidance_scale)
        with model.autocast():
            x = sdedit(eps_fn, x0, model.schedule, strength, steps, generator=make_generator(seed, model.device))
        show_images(torch.cat([x0[:1], x]), nrow=n + 1, title=f"{name} as 28x28 | {n} edits, strength {strength:g}")
        return x

    return Explorer(controls, draw)


def make_inpaint_explorer(model, images, n: int = 6, steps: int = 25, guidance_scale: float = 2.0) -> Explorer:
    """Inpainting: an image, a mask (the part the model repaints), a class for the new part, RePaint's
    resampling and a seed. `last`: the results (n, 1, 28, 28)."""
    import torch

    from .editing import MASKS, inpaint, make_mask
    from .utils import make_generator
    from .viz import show_images

    controls = {
        "index": W.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False),
        "mask": W.Dropdown(options=[m for m in MASKS if m != "none"], value="top", description="repaint"),
        "target": W.Dropdown(options=CLASS_OPTIONS, value=NO_LABEL, description="class"),
        "resample": W.IntSlider(value=1, min=1, max=5, description="resample", continuous_update=False),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }

    def draw(index, mask, target, resample, seed):
        x_known = images[index:index + 1].to(model.device).expand(n, -1, -1, -1)
        m = make_mask(mask).to(model.device)
        eps_fn = _label_eps(model, target, n, guidance_scale)
        with model.autocast():
            x = inpaint(eps_fn, x_known, m, model.schedule, steps, sampler="ddpm", resample=resample,
                        generator=make_generator(seed, model.device))
        shown = x_known[:1] * (1 - m)  # the kept part; the repainted part is 0, mid-grey
        show_images(torch.cat([x_known[:1], shown, x]), nrow=n + 2,
                    title=f"image | kept part | {n} results (mask {mask}, resample {resample})")
        return x

    return Explorer(controls, draw)


def make_anagram_explorer(model, n: int = 6, steps: int = 25, guidance_scale: float = 2.0) -> Explorer:
    """Visual anagrams: a view and two classes; the samples are shown as they are and through the view.
    `last`: the samples (n, 1, 28, 28)."""
    import torch

    from .editing import VIEWS, anagram_eps, get_view
    from .viz import show_images

    controls = {
        "view": W.Dropdown(options=[v for v in VIEWS if v != "identity"], value="rot180", description="view"),
        "class_a": W.Dropdown(options=list(range(10)), value=6, description="as is"),
        "class_b": W.Dropdown(options=list(range(10)), value=9, description="through view"),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }

    def draw(view, class_a, class_b, seed):
        eps_fn = anagram_eps(_label_eps(model, class_a, n, guidance_scale), _label_eps(model, class_b, n, guidance_scale),
                             view)
        x = _sample_from(model, eps_fn, n, steps, seed)
        show_images(torch.cat([x, get_view(view)[0](x)]), nrow=n, row_labels=[f"as is: {class_a}", f"{view}: {class_b}"],
                    title=f"anagrams {class_a} / {class_b}")
        return x

    return Explorer(controls, draw)


def make_hybrid_explorer(model, n: int = 6, steps: int = 25, guidance_scale: float = 2.0) -> Explorer:
    """Hybrid images: a class seen from afar (low frequencies), one seen up close (high frequencies) and
    the blur that separates them. Shown large, and small (4x4 averaged: what a distant viewer sees).
    `last`: the samples (n, 1, 28, 28)."""
    import torch
    import torch.nn.functional as F

    from .editing import hybrid_eps
    from .viz import show_images

    controls = {
        "far": W.Dropdown(options=list(range(10)), value=1, description="from afar"),
        "near": W.Dropdown(options=list(range(10)), value=7, description="up close"),
        "sigma_px": W.FloatSlider(value=1.5, min=0.5, max=4.0, step=0.25, description="blur σ (px)",
                                  continuous_update=False),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }

    def draw(far, near, sigma_px, seed):
        eps_fn = hybrid_eps(_label_eps(model, far, n, guidance_scale), _label_eps(model, near, n, guidance_scale),
                            sigma_px)
        x = _sample_from(model, eps_fn, n, steps, seed)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 1.9), gridspec_kw={"width_ratios": [4, 1]})
        show_images(x, nrow=n, ax=ax1, title=f"up close: {near}")
        show_images(F.avg_pool2d(x, 4), nrow=n, ax=ax2, title=f"from afar: {far}")
        return x

    return Explorer(controls, draw)
