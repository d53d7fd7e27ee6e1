"""A trained flow-matching model: the course's UNet read as a velocity field (lesson 5).

`FlowModel.sample` is `flow.sample` (Euler or Heun steps from t = 1 to t = 0), run in batches, with the network
wrapped by `flow.velocity_fn` (classifier-free guidance on the velocity). `reflow_data` makes reflow's training
pairs from a trained model. The course's models are `course.load("flow")` and `course.load("reflow")`.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .. import flow
from ..checkpoints import load_checkpoint, save_checkpoint
from ..models.unet import UNet
from .pixel import TrainedUNet, check_n, default_batch_size

FLOW_GUIDANCE = 1.5  # the flow model's default guidance: measured best at 10 evaluations (benchmarks/RESULTS.md)
REFLOW_GUIDANCE = 1.0  # reflow learns the guided teacher's pairs: sample it without guidance (one pass per step)


class FlowModel(TrainedUNet):
    """A UNet trained by flow matching (or reflow); t in [0, 1], 0 = data, 1 = noise."""

    clip = 1.0  # the data range: the samples are clamped to [-1, 1]
    time_dtype = torch.float32  # the UNet sees continuous times (t * flow.TIME_SCALE)

    def __init__(self, name: str, unet: UNet, default_guidance: float = FLOW_GUIDANCE):
        super().__init__(name, unet)
        self.default_guidance = default_guidance

    def velocity_fn(self, y=None, guidance_scale: float | None = None) -> flow.VelocityFn:
        w = self.default_guidance if guidance_scale is None else guidance_scale
        net = self.compiled if self.compiled is not None else self.unet
        return flow.velocity_fn(net, y, w if y is not None else 1.0)

    @torch.no_grad()
    def sample(self, n: int = 16, labels=None, guidance_scale: float | None = None, steps: int = 10,
               solver: str = "euler", generator=None, x1: torch.Tensor | None = None, batch_size: int | None = None,
               amp: bool = True, callback=None) -> torch.Tensor:
        """n images (n, 1, 28, 28) in [-1, 1] after `steps` solver steps (flow.evaluations(steps, solver)
        network evaluations; with guidance each runs the network on the conditional and unconditional batch).
        labels: (n,) classes, or None for unconditional samples. x1: the starting noise (n, 1, 28, 28)."""
        flow.check_solver(solver)
        n = check_n(n)
        if labels is not None:
            labels = torch.as_tensor(labels, device=self.device).long().reshape(-1)
            if len(labels) != n:
                raise ValueError(f"got {len(labels)} labels for n={n} images")
        if x1 is not None and x1.shape[0] != n:
            raise ValueError(f"x1 holds {x1.shape[0]} noise images for n={n}")
        self.unet.eval()
        cfg = self.unet.config
        batch_size = batch_size or default_batch_size(self.device)
        out = []
        for start in range(0, n, batch_size):
            sl = slice(start, min(n, start + batch_size))
            y = labels[sl] if labels is not None else None
            noise = x1[sl].to(self.device) if x1 is not None else None
            shape = (sl.stop - sl.start, cfg.out_channels, cfg.image_size, cfg.image_size)  # (B, 1, 28, 28)
            with self.autocast(amp):
                x = flow.sample(self.velocity_fn(y, guidance_scale), shape, steps=steps, solver=solver,
                                generator=generator, device=self.device, x1=noise, callback=callback)
            out.append(x.clamp(-self.clip, self.clip))
        return torch.cat(out)


def reflow_data(model: FlowModel, n: int, steps: int = 20, solver: str = "euler", guidance_scale: float | None = None,
                seed: int = 0, out: str | Path | None = None) -> dict:
    """Reflow's training set: n pairs (eps, x0 = the model's ODE solution from eps), labels 0..9 in turn.

    Returns (and saves to `out`, atomically) {"eps", "x0", "labels", "steps", "solver", "guidance", "seconds"}."""
    g = torch.Generator(device=model.device).manual_seed(seed)
    labels = torch.arange(n, device=model.device) % 10
    w = model.default_guidance if guidance_scale is None else guidance_scale
    start = time.time()
    with torch.no_grad(), model.autocast():
        eps, x0 = flow.reflow_pairs(lambda x, t, rows: model.velocity_fn(labels[rows], w)(x, t), n, (1, 28, 28),
                                    steps, solver, generator=g, device=model.device)
    data = {"eps": eps.cpu(), "x0": x0.clamp(-model.clip, model.clip).cpu(), "labels": labels.cpu(), "steps": steps,
            "solver": solver, "guidance": float(w), "seconds": time.time() - start}
    if out is not None:
        save_checkpoint({"model_name": "reflow-pairs", **data}, out)
    return data


def load_reflow_data(path: str | Path) -> dict:
    """Pairs written by `reflow_data` (`diffusionlab make-reflow-pairs`)."""
    return load_checkpoint(path, "reflow-pairs")
