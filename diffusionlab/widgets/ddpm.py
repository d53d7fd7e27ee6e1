"""The widgets of lesson 2, DDPM."""

from __future__ import annotations

import ipywidgets as W
import torch

from ..samplers import predict_x0
from ..utils import make_generator
from ..viz import frame_labels, show_images, show_row
from .common import Explorer


def forward_views(model, x0, t: int, seed: int = 0) -> dict:
    """One step of the forward process and the model's answer to it, for clean images x0 (B, 1, 28, 28):
    {"xt", "eps", "eps_hat", "x0_hat": (B, 1, 28, 28) on the CPU, "alpha_bar": alpha_bar_t}.

    model: a `course.DiffusionModel` (its network, schedule and prediction type).
    """

    schedule = model.schedule
    x0 = x0.float().cpu()
    eps = torch.randn(x0.shape, generator=make_generator(seed))
    tt = torch.full((x0.shape[0],), int(t), dtype=torch.long)
    xt = schedule.q_sample(x0, tt, eps)
    with torch.no_grad():
        eps_hat = model.eps_fn()(xt.to(model.device), tt.to(model.device)).float().cpu()
    x0_hat, _ = predict_x0(schedule, eps_hat, int(t), xt, clip=model.clip)
    return {"xt": xt, "eps": eps, "eps_hat": eps_hat, "x0_hat": x0_hat, "alpha_bar": float(schedule.alpha_bar[t])}


def make_forward_explorer(model, images, t: int = 500) -> Explorer:
    """A timestep slider over the forward process of one digit: x0 | x_t | the noise eps | the model's
    noise estimate | its x0 prediction. `last`: `forward_views`' dict."""
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

    ts, labels = trajectory["t"], frame_labels(trajectory)
    controls = {"step": W.IntSlider(value=0, min=0, max=len(ts), description="step", continuous_update=True)}

    def draw(step):
        xt = trajectory["xt"][step, :n]
        x0_hat = trajectory["x0"][min(step, len(ts) - 1), :n] if step < len(ts) else xt
        title = f"step {step} of {len(ts)}: {labels[step]}" if step < len(ts) else f"done: {len(ts)} steps, {labels[step]}"
        show_images(torch.cat([xt, x0_hat]), nrow=n, title=title, row_labels=["x_t", "x0 pred."])
        return xt, x0_hat

    return Explorer(controls, draw)
