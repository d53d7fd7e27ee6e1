"""The widgets of lessons 3 and 4, driven headlessly: render, move a control, the picture changes."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from diffusionlab import course, widgets
from diffusionlab.schedules import NoiseSchedule
from diffusionlab.unet import UNet, UNetConfig


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    unet = UNet(UNetConfig(channels=(8, 16), attention=(False, False), num_classes=10)).eval()
    torch.nn.init.normal_(unet.out[-1].weight, std=0.3)  # untrained, but not the zero output of a fresh UNet
    return course.DiffusionModel("cond", unet, NoiseSchedule(1000, "cosine"))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def changes(explorer, name, value, key=None):
    before = explorer.render()
    explorer.controls[name].value = value  # the observer redraws
    after = explorer.last
    pick = (lambda r: r[key]) if key else (lambda r: r)
    return before is not after and not torch.equal(pick(before), pick(after))


@pytest.mark.parametrize("name, value", [("digit", 7), ("guidance_scale", 6.0), ("seed", 5)])
def test_guidance_explorer(model, name, value):
    explorer = widgets.make_guidance_explorer(model, n=2, steps=3)
    assert changes(explorer, name, value)
    assert explorer.last.shape == (2, 1, 28, 28)


@pytest.mark.parametrize("name, value", [("steps", 5), ("eta", 1.0), ("guidance_scale", 6.0), ("seed", 5)])
def test_ddim_explorer(model, name, value):
    explorer = widgets.make_ddim_explorer(model, n=2)
    explorer.controls["steps"].value = 2
    assert changes(explorer, name, value, key="images")
    assert explorer.last["images"].shape == (2, 1, 28, 28) and explorer.last["seconds"] > 0


def test_ddim_explorer_steps_are_valid_sampler_settings():
    choices = widgets.DDIM_STEP_CHOICES
    assert choices[0] >= 1 and choices[-1] == 1000 and list(choices) == sorted(choices)
