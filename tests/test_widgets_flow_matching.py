"""The widget of lesson 5, driven headlessly: render, move a control, the picture changes."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from diffusionlab import flow, widgets
from diffusionlab.models.unet import UNet, UNetConfig
from diffusionlab.pipelines.flow import FlowModel

from widget_helpers import changes  # tests/widget_helpers.py


def tiny_flow(name, seed):
    torch.manual_seed(seed)
    unet = UNet(UNetConfig(channels=(8, 16), attention=(False, False), num_classes=10)).eval()
    torch.nn.init.normal_(unet.out[-1].weight, std=0.3)  # untrained, but not the zero output of a fresh UNet
    torch.nn.init.normal_(unet.class_emb.weight, std=1.0)  # the label changes the output: guidance does something
    return FlowModel(name, unet, 1.0 if name == "reflow" else 1.5)  # the defaults of course.load


@pytest.fixture(scope="module")
def models():
    return {"flow": tiny_flow("flow", 0), "reflow": tiny_flow("reflow", 1)}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("name, value", [("model", "reflow"), ("steps", 8), ("solver", "heun"),
                                         ("guidance_scale", 5.0), ("seed", 3)])
def test_flow_explorer(models, name, value):
    explorer = widgets.make_flow_explorer(models, n=3)
    assert changes(explorer, name, value, "images")


def test_flow_explorer_starts_at_the_flow_models_default_guidance(models):
    explorer = widgets.make_flow_explorer(models, n=2)
    assert explorer.controls["guidance_scale"].value == models["flow"].default_guidance == 1.5


def test_flow_explorer_moves_guidance_to_each_models_default_when_the_model_changes(models):
    explorer = widgets.make_flow_explorer(models, n=2)
    explorer.controls["model"].value = "reflow"
    assert explorer.controls["guidance_scale"].value == models["reflow"].default_guidance == 1.0
    assert "w = 1," in plt.gcf().axes[1].get_title()  # the redraw already used it
    explorer.controls["guidance_scale"].value = 3.0
    explorer.controls["model"].value = "flow"
    assert explorer.controls["guidance_scale"].value == 1.5


def test_flow_explorer_draws_the_solver_paths_and_counts_evaluations(models):
    explorer = widgets.make_flow_explorer(models, n=2)
    explorer.controls["steps"].value = 8
    explorer.controls["solver"].value = "heun"
    last = explorer.last
    assert last["paths"].shape == (9, 200, 2) and last["evaluations"] == 15
    assert set(explorer.controls["steps"].options) == set(widgets.FLOW_STEP_CHOICES)


def test_toy_paths_reach_the_modes_with_many_steps_and_not_with_one():
    means = widgets.toy_means()
    many, one = widgets.toy_paths(50, "euler", 0), widgets.toy_paths(1, "euler", 0)
    assert float(torch.cdist(many[-1], means).min(1).values.median()) < 0.3
    assert float(torch.cdist(one[-1], means).min(1).values.median()) > 0.5
    assert torch.equal(widgets.toy_paths(4, "heun", 0)[0], many[0])  # the same noise for every setting
    assert flow.straightness(many) > 0.01  # the exact field bends its paths
