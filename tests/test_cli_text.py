"""`diffusionlab train vae|text` and `diffusionlab sample --model text` (lesson 7), on tiny models."""

import pytest
import torch

from diffusionlab import cli


@pytest.fixture(scope="module")
def tiny_checkpoints(tiny_latent):
    d = tiny_latent("text")
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


def test_sample_text_guides_in_the_recommended_interval_unless_told(tiny_checkpoints, tmp_path, capsys):
    d = tiny_checkpoints
    base = ["sample", "--model", "text", "--checkpoint", str(d / "text.pt"), "--vae", str(d / "vae.pt"),
            "--prompt", "a thick 2", "--n", "2", "--steps", "4", "--guidance", "4"]
    runs = {}
    for name, extra in [("default", []), ("every", ["--guidance-interval", "0", "1000"]),
                        ("top", ["--guidance-interval", "850", "1000"])]:
        out = tmp_path / f"{name}.pt"
        assert cli.main(base + extra + ["--out", str(out)]) == 0
        runs[name] = torch.load(out, weights_only=True)["images"]
        printed = capsys.readouterr().out
    assert "at timesteps 850 <= t < 1000" in printed
    assert not torch.equal(runs["default"], runs["every"]) and not torch.equal(runs["top"], runs["every"])
    assert cli.main(base + ["--guidance-interval", "900", "100", "--out", str(tmp_path / "x.pt")]) == 2
    assert "guidance_interval must be None" in capsys.readouterr().err


def test_guidance_interval_is_an_option_of_the_text_model_only(capsys):
    assert cli.main(["sample", "--model", "cond", "--guidance-interval", "0", "850"]) == 2
    assert "--model text" in capsys.readouterr().err
