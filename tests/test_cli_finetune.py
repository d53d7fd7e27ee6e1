"""`diffusionlab train finetune` and `sample --model text-printed` (lesson 8), on a tiny text model."""

import pytest
import torch

from diffusionlab import cli


@pytest.fixture(scope="module")
def tiny(tiny_latent):
    d = tiny_latent("finetune")
    return d


@pytest.mark.parametrize("mode", [[], ["--lora", "2"], ["--from-scratch"]])
def test_finetune_then_sample_the_printed_model(tiny, tmp_path, capsys, mode):
    d, ckpt, out = tiny, tmp_path / "printed.pt", tmp_path / "s.pt"
    rc = cli.main(["train", "finetune", "--base", str(d / "text.pt"), "--vae", str(d / "vae.pt"), "--data", "printed",
                   *mode, "--steps", "2", "--n-images", "20", "--batch-size", "10", "--checkpoint", str(ckpt)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "'text-printed'" in captured.out and "parameters" in captured.out
    rc = cli.main(["sample", "--model", "text-printed", "--checkpoint", str(ckpt), "--vae", str(d / "vae.pt"),
                   "--prompt", "a printed seven", "--prompt", "a thick 2", "--n", "2", "--steps", "2", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    result = torch.load(out, weights_only=True)
    assert result["images"].shape == (2, 1, 28, 28) and result["prompts"] == ["a printed seven", "a thick 2"]


def test_the_text_model_does_not_know_the_style_words(tiny, capsys):
    d = tiny
    rc = cli.main(["sample", "--model", "text", "--checkpoint", str(d / "text.pt"), "--vae", str(d / "vae.pt"),
                   "--prompt", "a printed seven", "--n", "1", "--steps", "1", "--out", str(d / "x.pt")])
    assert rc == 2 and "unknown word 'printed'" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["train", "finetune", "--lora", "2", "--from-scratch"], "give one of them"),
    (["train", "cond", "--lora", "2"], "options of `train finetune`"),
    (["train", "cond", "--vae", "v.pt"], "text models only"),
])
def test_finetune_options_are_checked(tmp_path, capsys, args, message):
    assert cli.main([*args, "--checkpoint", str(tmp_path / "c.pt")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_text_printed_is_sampled_not_trained_by_that_name(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "text-printed"])
    assert "invalid choice" in capsys.readouterr().err
