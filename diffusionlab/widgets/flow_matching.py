"""The widgets of lesson 5, flow matching: steps, solver, guidance and seed, with the paths drawn.

Left, a 2-D toy: the exact velocity field of a mixture of Gaussians (`flow.mixture_velocity`) solved with the
chosen solver and steps, each path drawn from its noise (grey) to where it ends (red). Right, the digits the
trained flow model (or the reflow model) makes with the same solver and steps.
"""

from __future__ import annotations

import math

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from .. import flow
from ..utils import make_generator
from ..viz import make_grid
from .common import Explorer

FLOW_STEP_CHOICES = (1, 2, 3, 4, 8, 16, 50)


def toy_means(k: int = 6, radius: float = 2.5) -> torch.Tensor:
    """k centres evenly spaced on a circle: the 2-D toy data of the lesson."""
    angles = torch.arange(k) * 2 * math.pi / k
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def toy_paths(steps: int, solver: str, seed: int, n: int = 200, means: torch.Tensor | None = None,
              std: float = 0.1) -> torch.Tensor:
    """(steps + 1, n, 2): the solver's paths from n noise points to the toy data, on its exact velocity field."""
    means = toy_means() if means is None else means
    x1 = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    return flow.trajectory(flow.mixture_velocity(means, std), x1, steps=steps, solver=solver)


def make_flow_explorer(models: dict, n: int = 10, max_guidance: float = 6.0) -> Explorer:
    """models: {"flow": FlowModel, "reflow": FlowModel (optional)}. Controls: model, steps, solver, guidance, seed.
    `last`: {"images": (n, 1, 28, 28), "paths": (steps + 1, 200, 2) of the toy, "evaluations": network calls}."""
    first = next(iter(models))
    controls = {  # guidance starts at the model's default: the flow model's 1.5, the reflow model's 1
        "model": W.Dropdown(options=list(models), value=first, description="model"),
        "steps": W.SelectionSlider(options=FLOW_STEP_CHOICES, value=4, description="steps", continuous_update=False),
        "solver": W.Dropdown(options=list(flow.SOLVERS), value="euler", description="solver"),
        "guidance_scale": W.FloatSlider(value=models[first].default_guidance, min=0.0, max=max_guidance, step=0.25,
                                        description="guidance w",
                                        continuous_update=False),
        "seed": W.IntSlider(value=0, min=0, max=99, description="seed", continuous_update=False),
    }
    labels = torch.arange(n) % 10

    def use_default_guidance(change):  # a new model: its own guidance (reflow is sampled at w = 1)
        controls["guidance_scale"].value = models[change["new"]].default_guidance

    controls["model"].observe(use_default_guidance, names="value")  # before Explorer's redraw: it sees the new w

    def draw(model, steps, solver, guidance_scale, seed):
        chosen = models[model]
        x = chosen.sample(n, labels=labels, guidance_scale=guidance_scale, steps=steps, solver=solver,
                          generator=make_generator(seed, chosen.device))
        paths = toy_paths(steps, solver, seed)
        fig, (ax_toy, ax_img) = plt.subplots(1, 2, figsize=(10, 3.1), gridspec_kw={"width_ratios": [1, 2.6]})
        for i in range(paths.shape[1]):
            ax_toy.plot(paths[:, i, 0], paths[:, i, 1], color="tab:blue", alpha=0.25, lw=0.8)
        ax_toy.scatter(paths[0, :, 0], paths[0, :, 1], s=4, color="grey", label="noise, t = 1", zorder=3)
        ax_toy.scatter(paths[-1, :, 0], paths[-1, :, 1], s=6, color="tab:red", label="end, t = 0", zorder=3)
        means = toy_means()
        ax_toy.scatter(means[:, 0], means[:, 1], marker="x", s=50, color="black", label="data modes", zorder=4)
        ax_toy.set_aspect("equal")
        ax_toy.set_xlim(-4.5, 4.5)
        ax_toy.set_ylim(-4.5, 4.5)
        ax_toy.legend(fontsize=8, loc="lower left")
        ax_toy.set_title(f"2-D toy, exact velocity: {solver}, {steps} step(s)", fontsize=9)
        ax_img.imshow(make_grid(x, nrow=n), cmap="gray", vmin=0, vmax=1)
        ax_img.axis("off")
        evaluations = flow.evaluations(steps, solver)
        ax_img.set_title(f"{model}: {solver}, {steps} step(s) = {evaluations} network evaluation(s), "
                         f"w = {guidance_scale:g}, seed {seed}", fontsize=9)
        fig.tight_layout()
        return {"images": x, "paths": paths, "evaluations": evaluations}

    return Explorer(controls, draw)
