"""The models the course trains, their recipes, and loading them (lessons 1-5, the CLI).

    denoiser  lesson 1  one-step denoiser at sigma = 0.5            UNet(x)
    ddpm      lesson 2  unconditional DDPM                          UNet(x_t, t)
    cond      lesson 3  class-conditioned DDPM for CFG (+ null)     UNet(x_t, t, y)

`train_model(name, ...)` trains one with its recipe; `load(name)` returns a `DiffusionModel`, the
trained network together with the noise schedule and prediction type it was trained with, with
a `sample` method that calls the samplers of `samplers.py`. The course ships a small checkpoint
of each in `data/checkpoints/` (see `MANIFEST.txt` there and the README for the commands that made them).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .data import load_mnist
from .guidance import guided_eps
from .samplers import sample
from .schedules import NoiseSchedule
from .train import denoiser_loss, diffusion_loss, train
from .unet import UNet, UNetConfig, config_dict
from .utils import autocast_dtype

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "data" / "checkpoints"
DEFAULT_GUIDANCE = 2.0  # the guidance scale the course recommends for the `cond` model


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
    prediction: str = "eps"  # what the network predicts: "eps", "v" or "x0"
    schedule: dict = field(default_factory=lambda: {"T": 1000, "kind": "cosine"})
    p_uncond: float = 0.1  # classifier-free guidance: probability of dropping the label
    sigma: float = 0.5  # lesson 1's noise level


FAST_WIDTHS = (16, 32, 64)  # few channels at 28x28, where the convolutions are most expensive

RECIPES = {
    "denoiser": Recipe(UNetConfig(channels=FAST_WIDTHS, attention=(False, False, False), time_conditioning=False)),
    "ddpm": Recipe(UNetConfig(channels=FAST_WIDTHS, attention=(False, False, False))),
    "cond": Recipe(UNetConfig(channels=FAST_WIDTHS, attention=(False, False, False), num_classes=10)),
}


def check_name(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown model {name!r}; the course's models are: {', '.join(RECIPES)}")
    return RECIPES[name]


def default_checkpoint(name: str) -> Path:
    """Where `train_model` saves by default: checkpoints/<name>.pt in the working directory."""
    return Path("checkpoints") / f"{name}.pt"


def shipped_checkpoint(name: str) -> Path:
    return CHECKPOINT_DIR / f"{name}.pt"


def default_batch_size(device: torch.device) -> int:
    """Images sampled at a time: 64 on a CPU (on a 2-core Xeon about 20% faster than 128 and 32, as the
    activations stay in cache) and 1024 on a GPU."""
    return 64 if device.type == "cpu" else 1024


class DiffusionModel:
    """A trained UNet with the schedule and prediction type it was trained with."""

    def __init__(self, name: str, unet: UNet, schedule: NoiseSchedule | None, prediction: str = "eps"):
        self.name, self.unet, self.schedule, self.prediction = name, unet, schedule, prediction
        self.compiled = None  # the torch.compile'd UNet that eps_fn calls, after .compile()

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def to(self, device) -> "DiffusionModel":
        self.unet.to(device)
        return self

    def autocast(self, enabled: bool = True):
        """A `with` context that runs the network in bf16/fp16 where that is faster (`utils.autocast_dtype`);
        the samplers' arithmetic stays in float32. `sample` uses it; wrap the editing functions in it."""
        dtype = autocast_dtype(self.device) if enabled else None
        return torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def compile(self, batch_size: int | None = None) -> "DiffusionModel":
        """Compile the network with `torch.compile` for faster sampling, and compile it now.

        On the 2-core CPU of benchmarks/RESULTS.md compiled sampling was 1.2-1.3x faster; compiling takes
        20-30 s the first time and 0.7-4 s once torch's on-disk cache has it, and again for each new batch
        size. (Training is not compiled: it gained 0-8%, less than compiling costs.) Where torch.compile cannot work (no C++
        compiler, an unsupported platform or Python), this warns and the model stays as it was.
        batch_size: the sampling batch to compile for (default: `sample`'s); a guided batch runs twice that.
        """
        if self.compiled is not None:
            return self
        self.unet.eval()  # as `sample` runs it: the compiled code is specialised to the mode
        compiled = torch.compile(self.unet)
        cfg = self.unet.config
        b = batch_size or default_batch_size(self.device)
        b = 2 * b if cfg.num_classes else b  # classifier-free guidance: conditional and unconditional together
        x = torch.zeros(b, cfg.in_channels, cfg.image_size, cfg.image_size, device=self.device)
        t = torch.zeros(b, dtype=torch.long, device=self.device) if cfg.time_conditioning else None
        y = torch.zeros(b, dtype=torch.long, device=self.device) if cfg.num_classes else None
        try:
            with torch.no_grad(), self.autocast():
                compiled(x, t, y)
        except Exception as err:  # noqa: BLE001 - any failure of the compiler means: stay eager
            warnings.warn(f"torch.compile does not work here ({type(err).__name__}: {str(err).splitlines()[0]}); "
                          "the model runs uncompiled, which gives the same results a little slower", stacklevel=2)
            return self
        self.compiled = compiled
        return self

    def eps_fn(self, y=None, guidance_scale: float = 1.0, negative_y=None):
        """The eps_fn(x_t, t) the samplers call (with classifier-free guidance for the cond model)."""
        net = self.compiled if self.compiled is not None else self.unet
        return guided_eps(net, self.schedule, self.prediction, y, guidance_scale, negative_y)

    @torch.no_grad()
    def sample(self, n: int = 16, labels=None, guidance_scale: float = DEFAULT_GUIDANCE, sampler: str = "ddim",
               steps: int = 50, eta: float = 0.0, negative_labels=None, generator=None, batch_size: int | None = None,
               amp: bool = True, progress: bool = True, **kwargs) -> torch.Tensor:
        """n images (n, 1, 28, 28) in [-1, 1]. labels: (n,) classes for the cond model, or None.

        Images are made `batch_size` at a time (`default_batch_size`). amp runs the network in bf16/fp16
        where that is faster (`utils.autocast_dtype`), the sampler itself in float32.
        """
        if self.schedule is None:
            raise ValueError(f"the {self.name!r} model is a one-step denoiser, not a diffusion model: call it directly")
        if labels is not None:
            labels = torch.as_tensor(labels, device=self.device).long().reshape(-1)
            if len(labels) != n:
                raise ValueError(f"got {len(labels)} labels for n={n} images")
        if negative_labels is not None:
            negative_labels = torch.as_tensor(negative_labels, device=self.device).long().reshape(-1).expand(n)
        if labels is None and not self.unet.config.num_classes:
            guidance_scale = 1.0
        self.unet.eval()
        cfg = self.unet.config
        batch_size = batch_size or default_batch_size(self.device)
        out = []
        for start in range(0, n, batch_size):
            sl = slice(start, min(n, start + batch_size))
            y = labels[sl] if labels is not None else None
            neg = negative_labels[sl] if negative_labels is not None else None
            fn = self.eps_fn(y, guidance_scale, neg)
            with self.autocast(amp):
                shape = (sl.stop - sl.start, cfg.out_channels, cfg.image_size, cfg.image_size)  # (B, 1, 28, 28)
                out.append(sample(fn, shape, self.schedule, sampler=sampler, steps=steps,
                                  eta=eta, generator=generator, device=self.device, progress=progress, **kwargs))
        return torch.cat(out)


def build(name: str) -> UNet:
    """A freshly initialised network for course model `name`."""
    return UNet(check_name(name).config)


def metadata(name: str) -> dict:
    recipe = check_name(name)
    return {"model_name": name, "config": config_dict(recipe.config), "prediction": recipe.prediction,
            "schedule": dict(recipe.schedule) if name != "denoiser" else None}


def train_model(name: str, steps: int | None = None, minutes: float | None = None, checkpoint=None,
                device=None, seed: int = 0, batch_size: int | None = None, limit: int | None = None,
                progress: bool = True, **kwargs):
    """Train course model `name` on MNIST with its recipe. Returns (DiffusionModel of the EMA weights, history)."""
    recipe = check_name(name)
    device = torch.device(device or "cpu")
    x, y = load_mnist("train")
    if limit is not None:
        x, y = x[:limit], y[:limit]
    torch.manual_seed(seed)
    unet = UNet(recipe.config).to(device)
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


def export_weights(checkpoint, out, half: bool = True) -> Path:
    """Keep only the EMA weights (in fp16) and the metadata: the small file the course ships."""
    state = load_checkpoint(checkpoint)
    weights = {k: (v.half() if half and v.is_floating_point() else v) for k, v in state["ema"].items()}
    keep = {k: state[k] for k in ("model_name", "config", "prediction", "schedule", "step", "seed")}
    return save_checkpoint({**keep, "ema": weights}, out)


def load(name: str, checkpoint=None, device=None) -> DiffusionModel:
    """Load course model `name`: from `checkpoint`, else the course's shipped checkpoint."""
    check_name(name)
    path = Path(checkpoint) if checkpoint is not None else shipped_checkpoint(name)
    if checkpoint is None and not path.exists():
        raise CheckpointError(f"no shipped checkpoint for {name!r} at {path}; train one with "
                              f"`diffusionlab train {name}` and pass --checkpoint {default_checkpoint(name)}")
    state = load_checkpoint(path, name)
    config = UNetConfig(**state["config"])
    unet = UNet(config)
    try:
        unet.load_state_dict({k: v.float() for k, v in state["ema"].items()})
    except RuntimeError as err:
        raise CheckpointError(f"{path}: the weights do not fit the {name!r} network ({str(err).splitlines()[0]})") from None
    unet.eval().requires_grad_(False)
    schedule = NoiseSchedule(**state["schedule"]) if state.get("schedule") else None
    return DiffusionModel(name, unet, schedule, state.get("prediction", "eps")).to(device or "cpu")


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
