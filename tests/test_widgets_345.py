"""The widgets of lessons 3 to 5, driven headlessly: render, move a control, the picture changes."""

import io
from datetime import datetime, timezone

import matplotlib

matplotlib.use("Agg")

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from diffusionlab import course, widgets
from diffusionlab.schedules import NoiseSchedule
from diffusionlab.models.unet import UNet, UNetConfig

from widget_helpers import changes  # tests/widget_helpers.py


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


# --- Lesson 6 ---

IMAGES = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize("name, value", [("index", 2), ("target", 3), ("strength", 0.9), ("seed", 5)])
def test_sdedit_explorer(model, name, value):
    explorer = widgets.make_sdedit_explorer(model, IMAGES, n=2, steps=4)
    assert changes(explorer, name, value)
    assert explorer.last.shape == (2, 1, 28, 28)


def test_sdedit_explorer_strength_0_shows_the_source(model):
    explorer = widgets.make_sdedit_explorer(model, IMAGES, n=2, steps=4)
    explorer.controls["strength"].value = 0.0
    assert torch.equal(explorer.last, IMAGES[:1].expand(2, -1, -1, -1))


@pytest.mark.parametrize("name, value", [("index", 1), ("mask", "center"), ("target", 5), ("resample", 2), ("seed", 3)])
def test_inpaint_explorer(model, name, value):
    explorer = widgets.make_inpaint_explorer(model, IMAGES, n=2, steps=4)
    assert changes(explorer, name, value)
    bottom = explorer.last[..., 14:, :]
    if explorer.controls["mask"].value == "top":
        assert torch.equal(bottom, IMAGES[explorer.controls["index"].value, None, :, 14:, :].expand_as(bottom))


@pytest.mark.parametrize("name, value", [("view", "flip_vertical"), ("class_a", 1), ("class_b", 2), ("seed", 7)])
def test_anagram_explorer(model, name, value):
    explorer = widgets.make_anagram_explorer(model, n=2, steps=4)
    assert changes(explorer, name, value)


@pytest.mark.parametrize("name, value", [("far", 4), ("near", 0), ("sigma_px", 3.0), ("seed", 7)])
def test_hybrid_explorer(model, name, value):
    explorer = widgets.make_hybrid_explorer(model, n=2, steps=4)
    assert changes(explorer, name, value)


def png_bytes(mode="RGB", size=(90, 60)):
    array = np.full((size[1], size[0], 3), 255, dtype=np.uint8)
    array[10:50, 40:48] = 0  # a dark "1" on white paper
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


def upload_value(name, content):
    """A FileUpload value in the installed ipywidgets' format (7.x: dict; 8.x: tuple of dicts)."""
    if ipywidgets.__version__.startswith("7"):
        return {name: {"metadata": {"name": name}, "content": content}}
    return ({"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
             "last_modified": datetime.now(timezone.utc)},)


def test_read_uploads_reads_both_ipywidgets_formats():
    content = png_bytes()
    assert widgets.read_uploads({"a.png": {"metadata": {}, "content": content}}) == [("a.png", content)]
    assert widgets.read_uploads(({"name": "a.png", "content": memoryview(content)},)) == [("a.png", content)]
    assert widgets.read_uploads(()) == [] and widgets.read_uploads({}) == []


def test_upload_explorer_converts_any_picture_and_explains_a_bad_file(model, capsys):
    explorer = widgets.make_upload_explorer(model, n=2, steps=4)
    assert explorer.render() is None and "Upload a picture" in capsys.readouterr().out
    # as the browser sets it (FileUpload.value is read-only in Python in ipywidgets 7)
    explorer.controls["upload"].set_trait("value", upload_value("photo.png", png_bytes("RGB", (90, 60))))
    assert explorer.last.shape == (2, 1, 28, 28)
    explorer.controls["upload"].set_trait("value", upload_value("notes.txt", b"not an image"))
    assert explorer.last is None
    assert "notes.txt: Could not read the uploaded data as an image" in capsys.readouterr().out


def test_hybrid_explorer_shows_the_far_view_blurred_at_full_size(model, monkeypatch):
    """The far view was a 7x7 thumbnail (4x4 average pooling), too small to read: it is the samples blurred."""
    from diffusionlab import editing
    from diffusionlab.widgets import editing as editing_widgets

    shown = []
    monkeypatch.setattr(editing_widgets, "show_images", lambda images, **kw: shown.append(images))
    explorer = widgets.make_hybrid_explorer(model, n=2, steps=4)
    x = explorer.render()
    (images,) = shown
    assert images.shape == (4, 1, 28, 28)
    assert torch.equal(images[:2], x) and torch.allclose(images[2:], editing.seen_from_afar(x))
