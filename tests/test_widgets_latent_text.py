"""The widgets of lesson 7, driven headlessly on a tiny untrained pipeline: move a control, the picture changes;
an unknown word is named in the output area instead of raising."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

from diffusionlab import widgets
from diffusionlab.models.text_encoder import TextEncoderConfig, Tokenizer
from diffusionlab.models.unet import UNetConfig
from diffusionlab.models.vae import VAE, VAEConfig
from diffusionlab.pipelines.latent import LatentDiffusion, TextToLatent
from diffusionlab.schedules import NoiseSchedule

from widget_helpers import changes  # tests/widget_helpers.py


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    text = TextEncoderConfig(width=16, heads=2, layers=1)
    unet = UNetConfig(in_channels=4, out_channels=4, image_size=8, channels=(8, 16), attention=(False, True),
                      context_dim=16, heads=2)
    model = TextToLatent(unet, text).eval()
    for p in model.unet.out.parameters():  # a fresh UNet predicts zero: give it an output
        torch.nn.init.normal_(p, std=0.3)
    vae = VAE(VAEConfig(channels=(8, 8, 16))).eval()
    return LatentDiffusion(vae, model, NoiseSchedule(T=100), Tokenizer())


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("name, value", [("prompt", "a thin 2 leaning left"), ("negative_prompt", "a thick seven"),
                                         ("guidance_scale", 7.0), ("guide_below", 50), ("steps", 10), ("seed", 5)])
def test_prompt_explorer(pipe, name, value):
    explorer = widgets.make_prompt_explorer(pipe, n=2, steps=5)
    assert changes(explorer, name, value, "images")
    assert explorer.last["images"].shape == (2, 1, 28, 28) and explorer.last["seconds"] > 0


def test_prompt_explorer_names_an_unknown_word_in_its_output(pipe, capsys):
    explorer = widgets.make_prompt_explorer(pipe, n=2, steps=5)
    explorer.render()
    explorer.controls["prompt"].value = "a thick sevn"  # no exception escapes the observer
    assert "error" in explorer.last and "'sevn'" in explorer.last["error"] and "'seven'" in explorer.last["error"]
    shown = capsys.readouterr().out  # printed in the output area (outside a kernel, to stdout)
    assert "unknown word 'sevn'" in shown and "Traceback" not in shown
    explorer.controls["prompt"].value = "a thick seven"  # a good prompt draws again
    assert explorer.last["images"].shape == (2, 1, 28, 28)


def test_prompt_explorer_empty_negative_is_plain_guidance(pipe):
    """An empty negative prompt gives the samples of the empty caption as the unconditional prediction; the
    widget starts at the recommended guidance scale, guiding every step of this T = 100 schedule."""
    explorer = widgets.make_prompt_explorer(pipe, n=2, steps=5)
    images = explorer.render()["images"]
    from diffusionlab.utils import make_generator
    assert explorer.controls["guidance_scale"].value == 2.5 and explorer.controls["guide_below"].value == 100
    expected = pipe.sample("a thick seven", n=2, negative_prompts="", guidance_scale=2.5, steps=5,
                           generator=make_generator(0))
    assert torch.equal(images, expected)
    explorer.controls["guide_below"].value = 60  # guidance only where t < 60
    expected = pipe.sample("a thick seven", n=2, guidance_scale=2.5, steps=5, generator=make_generator(0),
                           guidance_interval=(0, 60))
    assert torch.equal(explorer.last["images"], expected)


@pytest.mark.parametrize("name, value", [("digit_a", 3), ("digit_b", 2), ("example", 2), ("alpha", 0.9)])
def test_interpolation_explorer(pipe, name, value):
    images = torch.rand(60, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    labels = torch.arange(60) % 10  # six examples of each digit
    explorer = widgets.make_interpolation_explorer(pipe.vae, images, labels)
    assert changes(explorer, name, value, "latent")
    assert explorer.last["latent"].shape == (1, 1, 28, 28)


def test_interpolation_ends_are_the_reconstructions(pipe):
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    mixes = widgets.interpolate_latents(pipe.vae, x[:1], x[1:], [0.0, 0.5, 1.0])
    recon = pipe.vae.decode_latents(pipe.vae.encode_latents(x))
    assert mixes.shape == (3, 1, 28, 28)
    assert torch.allclose(mixes[0], recon[0], atol=1e-5) and torch.allclose(mixes[2], recon[1], atol=1e-5)
    assert not torch.allclose(mixes[1], recon[0], atol=1e-3)


def test_prompt_explorer_refuses_steps_it_cannot_show(pipe):
    with pytest.raises(ValueError, match="steps must be one of"):
        widgets.make_prompt_explorer(pipe, steps=7)
    for steps in (15, 50):  # the lesson's fast and full budgets
        assert steps in widgets.TEXT_STEP_CHOICES
