"""The models the course trains: their recipes, training them and loading them (lessons 1-9 and the CLI).

    denoiser      lesson 1  one-step denoiser at sigma = 0.5              UNet(x)
    ddpm          lesson 2  unconditional DDPM                            UNet(x_t, t)
    cond          lesson 3  class-conditioned DDPM for CFG (+ null)       UNet(x_t, t, y)
    flow          lesson 5  class-conditioned flow matching (velocity)    UNet(x_t, 1000 t, y), t in [0, 1] (flow.py)
    reflow        lesson 5  the flow model retrained on its own pairs     (needs pairs: `make-reflow-pairs`)
    vae           lesson 7  the autoencoder of latent diffusion           VAE: encode(x), decode(z)
    text          lesson 7  latent text-to-image model (on the vae)       UNet(z_t, t, context=TextEncoder(tokens))
    text-printed  lesson 8  the text model fine-tuned on printed digits   (finetune.py; `train finetune`)
    pix2pix       lesson 9  InstructPix2Pix: edits a digit by an instruction  (needs pairs: `make-pairs`)

`train_model(name, ...)` trains one with its recipe and returns (model, history); `load(name)` returns the model
from a checkpoint (default: the one the course ships in data/checkpoints/, listed in MANIFEST.txt there). The model is

    denoiser, ddpm, cond   pipelines.pixel.DiffusionModel: the network with the noise schedule and prediction type it
                           was trained with; `sample` calls the samplers of samplers.py
    flow, reflow           pipelines.flow.FlowModel: the velocity network; `sample` solves the ODE (flow.py)
    vae                    models.vae.VAE
    text, text-printed     pipelines.latent.LatentDiffusion: VAE, tokenizer, text encoder and UNet; `sample(prompts)`
    pix2pix                pipelines.instruct.InstructPix2Pix: `edit(images, instruction)`

Only the pixel-space models (denoiser to reflow) have a `Recipe` here; the others are built and trained in
pipelines/latent.py (vae, text), finetune.py (text-printed) and pipelines/instruct.py (pix2pix).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .data import load_mnist, not_in_a_clone_hint
from . import flow
from .losses import denoiser_loss, diffusion_loss
from .models.unet import UNet, UNetConfig, config_dict
from .pipelines.pixel import DEFAULT_GUIDANCE, DiffusionModel, default_batch_size  # noqa: F401 (course.DiffusionModel)
from .pipelines.flow import FLOW_GUIDANCE, REFLOW_GUIDANCE, FlowModel, load_reflow_data
from .schedules import NoiseSchedule
from .train import train
from .utils import get_device

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "data" / "checkpoints"


@dataclass
class Recipe:
    """How a course model is built and trained. Widths, attention, batch, learning rate, EMA, precision
    and prediction were chosen by measuring sample quality per minute of training on a 2-core CPU;
    `benchmarks/recipe.py` repeats the measurements (results in benchmarks/RESULTS.md)."""

    config: UNetConfig
    lr: float = 2e-3
    batch_size: int = 128
    ema_decay: float = 0.999
    warmup: int = 100
    prediction: str = "eps"  # what the network predicts: "eps", "v" or "x0"; "velocity" for flow matching
    schedule: dict | None = field(default_factory=lambda: {"T": 1000, "kind": "cosine"})  # None: no noise schedule
    p_uncond: float = 0.1  # classifier-free guidance: probability of dropping the label
    sigma: float = 0.5  # lesson 1's noise level


FAST_WIDTHS = (16, 32, 64)  # few channels at 28x28, where the convolutions are most expensive

RECIPES = {
    "denoiser": Recipe(UNetConfig(channels=FAST_WIDTHS, attention=(False, False, False), time_conditioning=False)),
    "ddpm": Recipe(UNetConfig(channels=FAST_WIDTHS, attention=(False, False, False))),
    "cond": Recipe(UNetConfig(channels=FAST_WIDTHS, attention=(False, False, False), num_classes=10)),
    # lesson 5: cond's network, batch, learning rate, EMA, null class and label dropout; flow matching's loss
    "flow": Recipe(UNetConfig(channels=FAST_WIDTHS, attention=(False, False, False), num_classes=10),
                   prediction="velocity", schedule=None),
    # reflow starts from the flow model's weights and trains on its (eps, x0) pairs, labels kept (no dropout:
    # the pairs were drawn with guidance, which reflow learns into the conditional velocity)
    "reflow": Recipe(UNetConfig(channels=FAST_WIDTHS, attention=(False, False, False), num_classes=10),
                     prediction="velocity", schedule=None, lr=5e-4, warmup=20, p_uncond=0.0),
}
FLOW_MODELS = ("flow", "reflow")


LATENT_MODELS = ("vae", "text", "text-printed", "pix2pix")  # pipelines/latent.py, finetune.py, pipelines/instruct.py
MODELS = (*RECIPES, *LATENT_MODELS)


def check_name(name: str) -> Recipe:
    """The recipe of pixel-space model `name`; a clear error for the latent models and for unknown names."""
    if name in LATENT_MODELS:
        raise ValueError(f"{name!r} has no UNet recipe in course.py: vae and text are built in pipelines/latent.py, "
                         "text-printed in finetune.py and pix2pix in pipelines/instruct.py (course.train_model and "
                         f"course.load handle them); the recipes here are for {', '.join(RECIPES)}")
    if name not in RECIPES:
        raise ValueError(f"unknown model {name!r}; the course's models are: {', '.join(MODELS)}")
    return RECIPES[name]


def recipe_batch_size(name: str) -> int:
    """The training batch of course model `name`."""
    if name in LATENT_MODELS:
        from .pipelines import latent
        if name == "text-printed":
            from .finetune import FINETUNE_RECIPE
            return FINETUNE_RECIPE.batch_size
        if name == "pix2pix":
            from .pipelines.instruct import INSTRUCT_RECIPE
            return INSTRUCT_RECIPE.batch_size
        return (latent.VAE_RECIPE if name == "vae" else latent.TEXT_RECIPE).batch_size
    return check_name(name).batch_size


def default_checkpoint(name: str) -> Path:
    """Where `train_model` saves by default: checkpoints/<name>.pt in the working directory."""
    return Path("checkpoints") / f"{name}.pt"


def shipped_checkpoint(name: str) -> Path:
    return CHECKPOINT_DIR / f"{name}.pt"


def build(name: str) -> UNet:
    """A freshly initialised network for course model `name`."""
    return UNet(check_name(name).config)


def metadata(name: str) -> dict:
    recipe = check_name(name)
    return {"model_name": name, "config": config_dict(recipe.config), "prediction": recipe.prediction,
            "schedule": dict(recipe.schedule) if name != "denoiser" and recipe.schedule else None}


def train_model(name: str, steps: int | None = None, minutes: float | None = None, checkpoint=None,
                device=None, seed: int = 0, batch_size: int | None = None, limit: int | None = None,
                progress: bool = True, **kwargs):
    """Train course model `name` with its recipe. Returns (model of the EMA weights, history), the model being a
    DiffusionModel (denoiser, ddpm, cond), a FlowModel (flow, reflow), a VAE (vae), a LatentDiffusion (text,
    text-printed) or an InstructPix2Pix (pix2pix). kwargs: `vae=` (a path) for text, text-printed and pix2pix;
    `pairs=` and `base=` for reflow and pix2pix; `base=` and `lora=` for text-printed."""
    if name == "text-printed":  # kwargs: base= (a text checkpoint), vae=, lora= (a rank)
        from .finetune import finetune_text
        return finetune_text(steps=steps, minutes=minutes, checkpoint=checkpoint, device=device, seed=seed,
                             batch_size=batch_size, progress=progress, **kwargs)
    if name == "pix2pix":  # kwargs: pairs= (a dict or a make-pairs file), base= (a text checkpoint), vae=
        from .pipelines.instruct import train_instruct
        return train_instruct(steps=steps, minutes=minutes, checkpoint=checkpoint, device=device, seed=seed,
                              batch_size=batch_size, progress=progress, **kwargs)
    if name in LATENT_MODELS:
        from .pipelines import latent
        train_fn = latent.train_vae if name == "vae" else latent.train_text
        return train_fn(steps=steps, minutes=minutes, checkpoint=checkpoint, device=device, seed=seed,
                        batch_size=batch_size, limit=limit, progress=progress, **kwargs)
    recipe = check_name(name)
    device = torch.device(device or "cpu")
    if name == "reflow":  # kwargs: pairs= (a dict or a make-reflow-pairs file), base= (a flow checkpoint)
        return _train_reflow(recipe, steps, minutes, checkpoint, device, seed, batch_size, limit, progress, **kwargs)
    x, y = load_mnist("train")
    if limit is not None:
        x, y = x[:limit], y[:limit]
    torch.manual_seed(seed)
    unet = UNet(recipe.config).to(device)
    if name == "flow":
        def flow_loss_fn(model, x0, labels, g):
            return flow.flow_loss(model, x0, labels, g, recipe.p_uncond)
        ema, history = train(unet, flow_loss_fn, x, y, steps=steps, minutes=minutes,
                             batch_size=batch_size or recipe.batch_size, lr=recipe.lr, warmup=recipe.warmup,
                             ema_decay=recipe.ema_decay, seed=seed, checkpoint=checkpoint, metadata=metadata(name),
                             progress=progress, **kwargs)
        return FlowModel(name, ema), history
    schedule = NoiseSchedule(**recipe.schedule) if name != "denoiser" else None
    if name == "denoiser":
        def loss_fn(model, x0, labels, g):
            return denoiser_loss(model, x0, labels, g, sigma=recipe.sigma)
    else:
        def loss_fn(model, x0, labels, g):
            return diffusion_loss(model, x0, labels, g, schedule, recipe.prediction, recipe.p_uncond)
    ema, history = train(unet, loss_fn, x, y if recipe.config.num_classes else None, steps=steps, minutes=minutes,
                         batch_size=batch_size or recipe.batch_size, lr=recipe.lr, warmup=recipe.warmup,
                         ema_decay=recipe.ema_decay, seed=seed, checkpoint=checkpoint, metadata=metadata(name),
                         progress=progress, **kwargs)
    return DiffusionModel(name, ema, schedule, recipe.prediction), history


def _train_reflow(recipe: Recipe, steps, minutes, checkpoint, device, seed, batch_size, limit, progress,
                  pairs=None, base=None, **kwargs):
    """Reflow (Liu et al. 2022, sec. 2.3): the flow model's weights, trained on fixed (eps, x0) pairs."""
    if pairs is None:
        raise ValueError("reflow trains on pairs drawn from a flow model: make them with `diffusionlab "
                         "make-reflow-pairs --out pairs.pt` and pass pairs= (the file or its dict)")
    data = pairs if isinstance(pairs, dict) else load_reflow_data(pairs)
    x0, eps, labels = data["x0"], data["eps"], data["labels"]
    if limit is not None:
        x0, eps, labels = x0[:limit], eps[:limit], labels[:limit]
    start = load("flow", base, device)  # base None: the shipped flow model
    torch.manual_seed(seed)
    unet = UNet(recipe.config).to(device)
    unet.load_state_dict(start.unet.state_dict())

    def loss_fn(model, x0_eps, y, g):
        return flow.reflow_loss(model, x0_eps, y, g, recipe.p_uncond)

    meta = {**metadata("reflow"), "pairs": {k: data[k] for k in ("steps", "solver", "guidance")}, "pair_count": len(x0)}
    ema, history = train(unet, loss_fn, torch.cat([x0, eps], dim=1), labels, steps=steps, minutes=minutes,
                         batch_size=batch_size or recipe.batch_size, lr=recipe.lr, warmup=recipe.warmup,
                         ema_decay=recipe.ema_decay, seed=seed, checkpoint=checkpoint, metadata=meta,
                         progress=progress, **kwargs)
    return FlowModel("reflow", ema, REFLOW_GUIDANCE), history


def export_weights(checkpoint, out, half: bool = True) -> Path:
    """Keep only the EMA weights (in fp16) and the metadata: the small file the course ships.

    Paths on the machine that trained the model (pix2pix's `text_checkpoint`) are dropped: a shipped model
    goes with the other shipped models (pix2pix's img2img baseline then loads the shipped text.pt)."""
    state = load_checkpoint(checkpoint)
    if not isinstance(state.get("ema"), dict):
        raise CheckpointError(f"{checkpoint} holds no model weights (it is a data file, such as training pairs): "
                              "export takes a checkpoint saved by `diffusionlab train`, such as checkpoints/cond.pt")
    weights = {k: (v.half() if half and v.is_floating_point() else v) for k, v in state["ema"].items()}
    training_only = ("model", "ema", "optimizer", "history", "total_steps", "format", "text_checkpoint")
    keep = {k: v for k, v in state.items() if k not in training_only}  # name, config(s), schedule, step, seed
    return save_checkpoint({**keep, "ema": weights}, out)


def load(name: str, checkpoint=None, device=None, vae=None):
    """Load course model `name`: from `checkpoint`, else the course's shipped checkpoint.

    Returns a DiffusionModel (denoiser, ddpm, cond), a FlowModel (flow, reflow), a VAE (vae), a LatentDiffusion
    (text, text-printed) or an InstructPix2Pix (pix2pix); the last three take `vae`: a path, or None for the shipped
    vae.pt. device: a torch.device, or a name ("cpu", "cuda", "mps", "auto": the best here); None: the CPU."""
    if isinstance(device, str):
        device = get_device(device)  # a clear error for a name torch does not know or a device that is not here
    if name == "text-printed":
        from .finetune import load as load_finetuned
        return load_finetuned(checkpoint, vae=vae, device=device)
    if name == "pix2pix":
        from .pipelines.instruct import load as load_instruct
        return load_instruct(checkpoint, vae=vae, device=device)
    if name in LATENT_MODELS:
        from .pipelines import latent
        if name == "vae":
            return latent.load_vae(checkpoint, device)
        return latent.load(checkpoint, vae=vae, device=device)
    recipe = check_name(name)
    path = Path(checkpoint) if checkpoint is not None else shipped_checkpoint(name)
    if checkpoint is None and not path.exists():
        raise CheckpointError(f"no shipped checkpoint for {name!r} at {path}; train one with "
                              f"`diffusionlab train {name}` and pass --checkpoint {default_checkpoint(name)}."
                              + not_in_a_clone_hint())
    state = load_checkpoint(path, name)
    config = UNetConfig(**state["config"])
    unet = UNet(config)
    try:
        unet.load_state_dict({k: v.float() for k, v in state["ema"].items()})
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the weights do not fit the {name!r} network ({str(err).splitlines()[0]})") from None
    unet.eval().requires_grad_(False)
    if recipe.prediction == "velocity":
        return FlowModel(name, unet, REFLOW_GUIDANCE if name == "reflow" else FLOW_GUIDANCE).to(device or "cpu")
    schedule = NoiseSchedule(**state["schedule"]) if state.get("schedule") else None
    return DiffusionModel(name, unet, schedule, state.get("prediction", "eps")).to(device or "cpu")


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
