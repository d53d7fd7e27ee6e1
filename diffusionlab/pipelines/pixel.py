"""A trained pixel-space diffusion model: the UNet, its noise schedule and prediction type (lessons 2-6).

`DiffusionModel.sample` is the sampling loop of `samplers.sample`, run in batches, with the network
wrapped by `guidance.guided_eps` (classifier-free guidance for the class-conditioned model). The course's
trained models are loaded with `course.load(name)`.
"""

from __future__ import annotations

import operator
import warnings

import torch

from ..guidance import guided_eps
from ..models.unet import UNet
from ..samplers import sample
from ..schedules import NoiseSchedule
from ..utils import autocast_dtype

DEFAULT_GUIDANCE = 2.0  # the guidance scale the course recommends for the `cond` model


def check_n(n) -> int:
    """The number of images to sample: a whole number, at least 1."""
    try:
        count = operator.index(n)
    except TypeError:
        count = None
    if count is None or count < 1:
        raise ValueError(f"n is the number of images to sample, a whole number of at least 1, got {n!r}")
    return count


def default_batch_size(device: torch.device) -> int:
    """Images sampled at a time: 64 on a CPU (on a 2-core Xeon about 20% faster than 128 and 32, as the
    activations stay in cache) and 1024 on a GPU."""
    return 64 if device.type == "cpu" else 1024


def batch_sizes(n: int | None, batch_size: int) -> list[int]:
    """The batch sizes `sample` runs for n images, `batch_size` at a time: [batch_size], and the last one if smaller."""
    if n is None or n <= batch_size:
        return [min(n or batch_size, batch_size)]
    return [batch_size] + ([n % batch_size] if n % batch_size else [])


def compile_unet(unet: UNet, sizes: list[int], t_dtype: torch.dtype, autocast) -> torch.nn.Module | None:
    """`torch.compile(unet)`, run once on a batch of zeros of each size in `sizes`, so that it compiles now
    rather than while sampling; None (with a warning) where torch.compile cannot work (no C++ compiler, an
    unsupported platform or Python): the caller then keeps the eager UNet, which gives the same results a little
    slower.

    The compiled code is specialised to eval mode, to the batch (twice the batch size for a class-conditioned
    UNet: classifier-free guidance runs the conditional and unconditional batch together) and to t's dtype
    (long steps for DDPM/DDIM, float times for flow matching); a second batch size (the last, smaller batch of n
    images) makes torch recompile, so it is done here too. autocast: the model's `autocast` method."""
    unet.eval()
    compiled = torch.compile(unet, dynamic=False)  # one static graph per batch size: faster on a CPU than one dynamic graph
    cfg = unet.config
    device = next(unet.parameters()).device
    try:
        for batch_size in sizes:
            b = 2 * batch_size if cfg.num_classes else batch_size
            x = torch.zeros(b, cfg.in_channels, cfg.image_size, cfg.image_size, device=device)
            t = torch.zeros(b, dtype=t_dtype, device=device) if cfg.time_conditioning else None
            y = torch.zeros(b, dtype=torch.long, device=device) if cfg.num_classes else None
            with torch.no_grad(), autocast():
                compiled(x, t, y)
    except Exception as err:  # noqa: BLE001 - any failure of the compiler means: stay eager
        warnings.warn(f"torch.compile does not work here ({type(err).__name__}: {str(err).splitlines()[0]}); "
                      "the model runs uncompiled, which gives the same results a little slower", stacklevel=3)
        return None
    return compiled


class TrainedUNet:
    """What the course's trained pixel models share: the UNet, its device, mixed precision and compiling.
    `DiffusionModel` (lessons 1-4, 6) and `pipelines.flow.FlowModel` (lesson 5) build on it."""

    time_dtype = torch.long  # what the UNet's t is when sampling: integer steps here, float times for flow

    def __init__(self, name: str, unet: UNet):
        self.name, self.unet = name, unet
        self.compiled = None  # the torch.compile'd UNet that sampling calls, after .compile()

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def to(self, device):
        self.unet.to(device)
        return self

    def autocast(self, enabled: bool = True):
        """A `with` context that runs the network in bf16/fp16 where that is faster (`utils.autocast_dtype`);
        the samplers' arithmetic stays in float32. `sample` uses it; wrap the editing functions in it."""
        dtype = autocast_dtype(self.device) if enabled else None
        return torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def compile(self, batch_size: int | None = None, n: int | None = None):
        """Compile the network with `torch.compile` for faster sampling, and compile it now (`compile_unet`).

        On the 2-core CPU of benchmarks/RESULTS.md compiled sampling was 1.2-1.5x faster; compiling takes
        20-50 s the first time and 0.7-7 s once torch's on-disk cache has it. (Training is not compiled: it
        gained 0-8%, less than compiling costs.)
        batch_size: the sampling batch to compile for (default: `sample`'s); a guided batch runs twice that.
        n: the number of images you will sample, so that the last, smaller batch is compiled now too.
        """
        if self.compiled is None:
            sizes = batch_sizes(n, batch_size or default_batch_size(self.device))
            self.compiled = compile_unet(self.unet, sizes, self.time_dtype, self.autocast)
        return self


class DiffusionModel(TrainedUNet):
    """A trained UNet with the schedule and prediction type it was trained with."""

    clip = 1.0  # the data range the samplers clip x0_hat to: pixels in [-1, 1] (`data.py`)

    def __init__(self, name: str, unet: UNet, schedule: NoiseSchedule | None, prediction: str = "eps"):
        super().__init__(name, unet)
        self.schedule, self.prediction = schedule, prediction

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
        n = check_n(n)
        if labels is not None:
            labels = torch.as_tensor(labels, device=self.device).long().reshape(-1)
            if len(labels) != n:
                raise ValueError(f"got {len(labels)} labels for n={n} images")
        if negative_labels is not None:
            negative_labels = torch.as_tensor(negative_labels, device=self.device).long().reshape(-1)
            if len(negative_labels) not in (1, n):
                raise ValueError(f"negative_labels must be one class or {n} classes, got {len(negative_labels)}")
            negative_labels = negative_labels.expand(n)
        if labels is None and not self.unet.config.num_classes:
            guidance_scale = 1.0
        self.unet.eval()
        cfg = self.unet.config
        batch_size = batch_size or default_batch_size(self.device)
        kwargs.setdefault("clip", self.clip)  # x0_hat and the samples stay in the data range
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
