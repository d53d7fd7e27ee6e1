"""The widgets of lesson 8, driven headlessly on a tiny untrained pipeline: move a control, the picture changes;
bad input is named in the output area instead of raising; and `sample_with_maps`, which the viewer shows."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from diffusionlab import widgets
from diffusionlab.editing.prompt_to_prompt import CROSS_FRACTION, SELF_FRACTION, edit_prompt, sample_with_maps
from diffusionlab.models.text_encoder import TextEncoderConfig, Tokenizer
from diffusionlab.models.unet import UNetConfig
from diffusionlab.models.vae import VAE, VAEConfig
from diffusionlab.pipelines.latent import DEFAULT_TEXT_GUIDANCE, LatentDiffusion, TextToLatent
from diffusionlab.schedules import NoiseSchedule
from diffusionlab.utils import make_generator

from widget_helpers import changes  # tests/widget_helpers.py

STEPS = 4


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    text = TextEncoderConfig(width=16, heads=2, layers=1)
    unet = UNetConfig(in_channels=4, out_channels=4, image_size=8, channels=(8, 16), attention=(True, True),
                      context_dim=16, heads=2)
    model = TextToLatent(unet, text).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random weights large enough that the prompt and the maps matter
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    vae = VAE(VAEConfig(channels=(8, 8, 16))).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return LatentDiffusion(vae, model, NoiseSchedule(T=100), Tokenizer())


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_sample_with_maps_keeps_every_step_and_layer_and_draws_what_sample_draws(pipe):
    images, store, words = sample_with_maps(pipe, "a thick seven", n=2, steps=STEPS, generator=make_generator(3))
    assert torch.equal(images, pipe.sample("a thick seven", n=2, steps=STEPS, guidance_scale=DEFAULT_TEXT_GUIDANCE,
                                           generator=make_generator(3)))
    assert words == {"a": [1], "thick": [2], "seven": [3]}
    assert len(store.maps) == STEPS and len(store.cross_layers) >= 2
    assert all(m.shape[0] == 4 for m in store.maps[0].values())  # [uncond x 2, prompt x 2]
    with pytest.raises(ValueError, match="unknown word 'sevn'"):
        sample_with_maps(pipe, "a sevn", steps=STEPS)


@pytest.mark.parametrize("name, value", [("word", "thick"), ("step", 0), ("layer", 1), ("seed", 4),
                                         ("prompt", "a thin seven leaning left")])
def test_attention_viewer(pipe, name, value):
    viewer = widgets.make_attention_viewer(pipe, prompt="a thick seven leaning right", steps=STEPS)
    if name == "layer":
        value = viewer.controls["layer"].options[value]
    assert changes(viewer, name, value, "map")
    assert viewer.last["map"].shape == (28, 28) and viewer.last["image"].shape == (1, 1, 28, 28)


def test_attention_viewer_mean_is_the_mean_of_the_layers(pipe):
    viewer = widgets.make_attention_viewer(pipe, prompt="a thick seven", word="seven", steps=STEPS)
    mean = viewer.render()["map"]
    layers = viewer.controls["layer"].options[1:]
    per_layer = []
    for layer in layers:
        viewer.controls["layer"].value = layer
        per_layer.append(viewer.last["map"])
    assert torch.allclose(mean, torch.stack(per_layer).mean(0), atol=1e-6)


def test_attention_viewer_names_a_bad_word_in_its_output(pipe, capsys):
    viewer = widgets.make_attention_viewer(pipe, prompt="a thick seven", word="seven", steps=STEPS)
    viewer.render()
    viewer.controls["word"].value = "thin"  # a known word, not in the prompt
    assert "'thin' is not a word of the prompt" in viewer.last["error"] and "'thick'" in viewer.last["error"]
    viewer.controls["prompt"].value = "a thick sevn"  # an unknown word
    assert "unknown word 'sevn'" in viewer.last["error"]
    assert "Traceback" not in capsys.readouterr().out
    viewer.controls["prompt"].value = "a thin seven"  # good input draws again
    assert viewer.last["word"] == "thin"


@pytest.mark.parametrize("name, value", [("edited", "a small six leaning right"), ("cross_fraction", 0.2),
                                         ("self_fraction", 0.0), ("reweight_word", "two"), ("seed", 7),
                                         ("source", "a small one leaning right")])
def test_p2p_explorer(pipe, name, value):
    # control for most of the STEPS = 4 steps, so that every control acts (the defaults control none of 4 steps)
    explorer = widgets.make_p2p_explorer(pipe, n=2, steps=STEPS, cross_fraction=0.8, self_fraction=0.4)
    assert changes(explorer, name, value, "edited")
    assert all(explorer.last[k].shape == (2, 1, 28, 28) for k in ("source", "edited", "baseline"))


def test_p2p_explorer_shows_what_edit_prompt_returns(pipe):
    explorer = widgets.make_p2p_explorer(pipe, "a thick seven", "a thin seven", n=2, steps=STEPS)
    explorer.controls["reweight_word"].value = "thin"
    explorer.controls["reweight_scale"].value = 3.0
    explorer.controls["local_blend"].value = True
    got = explorer.last
    # the sliders start at the course's measured settings, and the guidance at lesson 7's
    assert (explorer.controls["cross_fraction"].value, explorer.controls["self_fraction"].value) == \
        (CROSS_FRACTION, SELF_FRACTION)
    expected = edit_prompt(pipe, "a thick seven", "a thin seven", 2, CROSS_FRACTION, SELF_FRACTION, {"thin": 3.0}, True,
                           STEPS, DEFAULT_TEXT_GUIDANCE, make_generator(0))
    assert all(torch.equal(got[k], e) for k, e in zip(("source", "edited", "baseline"), expected))


def test_p2p_explorer_names_bad_edits_in_its_output(pipe, capsys):
    explorer = widgets.make_p2p_explorer(pipe, "a thick seven", "a thin seven", n=2, steps=STEPS)
    explorer.render()
    explorer.controls["edited"].value = "a thinn seven"
    assert "unknown word 'thinn'" in explorer.last["error"]
    explorer.controls["edited"].value = "a thin seven"
    explorer.controls["reweight_word"].value = "thick"  # in the source, not in the edited prompt
    assert "cannot re-weight 'thick'" in explorer.last["error"]
    assert "Traceback" not in capsys.readouterr().out
    explorer.controls["reweight_word"].value = ""
    assert explorer.last["edited"].shape == (2, 1, 28, 28)
