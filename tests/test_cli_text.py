"""`diffusionlab train vae|text` and `diffusionlab sample --model text` (lesson 7), on tiny models."""

import pytest
import torch

from diffusionlab import cli
from diffusionlab.models.text_encoder import TextEncoderConfig
from diffusionlab.models.unet import UNetConfig
from diffusionlab.models.vae import VAEConfig
from diffusionlab.pipelines import latent


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("text")
    latent.train_vae(steps=1, batch_size=16, limit=32, recipe=latent.VAERecipe(config=VAEConfig(channels=(8, 8, 16))),
                     checkpoint=d / "vae.pt", progress=False)
    recipe = latent.TextRecipe(unet=UNetConfig(in_channels=4, out_channels=4, image_size=8, channels=(8, 16),
                                               attention=(False, True), context_dim=16, heads=2),
                               text=TextEncoderConfig(width=16, heads=2, layers=1))
    latent.train_text(steps=1, batch_size=16, limit=32, vae=d / "vae.pt", recipe=recipe, checkpoint=d / "text.pt",
                      progress=False)
    return d


def test_sample_text_cycles_prompts(tiny_checkpoints, tmp_path, capsys):
    d = tiny_checkpoints
    out = tmp_path / "s.pt"
    rc = cli.main(["sample", "--model", "text", "--checkpoint", str(d / "text.pt"), "--vae", str(d / "vae.pt"),
                   "--prompt", "a seven", "--prompt", "a thick 2", "--negative-prompt", "a thin seven",
                   "--n", "3", "--steps", "2", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    result = torch.load(out, weights_only=True)
    assert result["images"].shape == (3, 1, 28, 28)
    assert 0 <= result["images"].min() and result["images"].max() <= 1
    assert result["prompts"] == ["a seven", "a thick 2", "a seven"]


def test_sample_text_needs_a_prompt(capsys):
    assert cli.main(["sample", "--model", "text", "--n", "2"]) == 2
    assert "--prompt" in capsys.readouterr().err


def test_unknown_word_is_a_one_line_error(tiny_checkpoints, capsys):
    d = tiny_checkpoints
    rc = cli.main(["sample", "--model", "text", "--checkpoint", str(d / "text.pt"), "--vae", str(d / "vae.pt"),
                   "--prompt", "a thikc seven", "--steps", "2", "--n", "1"])
    assert rc == 2
    assert "unknown word 'thikc'" in capsys.readouterr().err


def test_prompt_is_an_option_of_the_text_model_only(capsys):
    assert cli.main(["sample", "--model", "cond", "--prompt", "a seven"]) == 2
    assert "--model text" in capsys.readouterr().err


def test_train_accepts_the_latent_models():
    parser = cli.build_parser()
    assert parser.parse_args(["train", "vae", "--steps", "5"]).model == "vae"
    args = parser.parse_args(["train", "text", "--vae", "v.pt"])
    assert args.model == "text" and str(args.vae) == "v.pt"
