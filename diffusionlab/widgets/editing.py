"""The widgets of lesson 6, editing."""

from __future__ import annotations

import ipywidgets as W
import torch

from ..data import load_image
from ..editing import MASKS, VIEWS, anagram_eps, get_view, hybrid_eps, inpaint, make_mask, sdedit, seen_from_afar
from ..samplers import sample
from ..utils import make_generator
from ..viz import show_images
from .common import Explorer


def _class_options(model) -> list[tuple[str, int]]:
    """("no label", the null class) and one entry per class of the class-conditioned `model`."""
    null = model.unet.config.num_classes
    return [("no label", null)] + [(str(c), c) for c in range(null)]


def _label_eps(model, label: int, n: int, guidance_scale: float):
    """eps_fn for n images of class `label`, guided; the null class: unconditional, without guidance."""
    y = torch.full((n,), label, device=model.device)
    return model.eps_fn(y, guidance_scale if label != model.unet.config.num_classes else 1.0)


def _sample_from(model, eps_fn, n: int, steps: int, seed: int):
    """n images from noise with DDIM and `eps_fn`, the network in mixed precision (as `model.sample`)."""
    cfg = model.unet.config
    with model.autocast():
        return sample(eps_fn, (n, cfg.out_channels, cfg.image_size, cfg.image_size), model.schedule, steps=steps,
                      generator=make_generator(seed, model.device), device=model.device, progress=False,
                      clip=model.clip)


def read_uploads(value) -> list[tuple[str, bytes]]:
    """(name, bytes) of each file in a FileUpload's value, in ipywidgets 7.7's format (a dict
    name -> {"content": bytes, ...}) and in 8's (a tuple of {"name", "content": memoryview, ...})."""
    if isinstance(value, dict):
        return [(name, bytes(f["content"])) for name, f in value.items()]
    return [(f["name"], bytes(f["content"])) for f in value]


def make_sdedit_explorer(model, images, n: int = 6, steps: int = 25, guidance_scale: float = 2.0) -> Explorer:
    """SDEdit: pick a source image (from `images` (N, 1, 28, 28)), a target class and the strength; `n`
    edits from different noise are shown after the source. `last`: the edits (n, 1, 28, 28)."""

    controls = {
        "index": W.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False),
        "target": W.Dropdown(options=_class_options(model), value=8, description="target"),
        "strength": W.FloatSlider(value=0.6, min=0.0, max=1.0, step=0.05, description="strength",
                                  continuous_update=False),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }

    def draw(index, target, strength, seed):
        x0 = images[index:index + 1].to(model.device).expand(n, -1, -1, -1)
        eps_fn = _label_eps(model, target, n, guidance_scale)
        with model.autocast():
            x = sdedit(eps_fn, x0, model.schedule, strength, steps, generator=make_generator(seed, model.device))
        name = "no label" if target == model.unet.config.num_classes else f"class {target}"
        show_images(torch.cat([x0[:1], x]), nrow=n + 1, title=f"source | {n} edits towards {name}, strength {strength:g}")
        return x

    return Explorer(controls, draw)


def make_upload_explorer(model, n: int = 6, steps: int = 25, guidance_scale: float = 2.0) -> Explorer:
    """SDEdit on a picture the student uploads (any size or mode: `data.load_image` turns it into a 28x28
    digit). `last`: the edits (n, 1, 28, 28), or None before an upload or when the file is no image."""

    controls = {
        "upload": W.FileUpload(accept="image/*", multiple=False, description="your digit"),
        "target": W.Dropdown(options=_class_options(model), value=model.unet.config.num_classes, description="target"),
        "strength": W.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="strength",
                                  continuous_update=False),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }

    def draw(upload, target, strength, seed):
        files = read_uploads(upload)
        if not files:
            print("Upload a picture of a digit (PNG or JPEG, any size; dark ink on light paper is fine). "
                  "On Colab, keep the file under 1 MB: a larger one never reaches the notebook.")
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

    controls = {
        "index": W.IntSlider(value=0, min=0, max=len(images) - 1, description="image", continuous_update=False),
        "mask": W.Dropdown(options=[m for m in MASKS if m != "none"], value="top", description="repaint"),
        "target": W.Dropdown(options=_class_options(model), value=model.unet.config.num_classes, description="class"),
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
    the blur that separates them. Shown as they are (up close) and blurred at full size (`seen_from_afar`: what a
    distant viewer sees). `last`: the samples (n, 1, 28, 28)."""

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
        show_images(torch.cat([x, seen_from_afar(x)]), nrow=n, title=f"hybrids {far} / {near} (blur σ {sigma_px:g} px)",
                    row_labels=[f"up close: {near}", f"from afar: {far}"])
        return x

    return Explorer(controls, draw)
