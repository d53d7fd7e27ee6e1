"""`diffusionlab make-pairs`, `train pix2pix` and `edit` (lesson 9), on tiny models."""

import pytest
import torch
from PIL import Image, ImageDraw

from diffusionlab import cli
from diffusionlab.pairs import load_pairs


@pytest.fixture(scope="module")
def tiny(tiny_latent):
    """Tiny VAE and text model, pairs made by `make-pairs`, and a pix2pix model trained on them by `train pix2pix`."""
    d = tiny_latent("cli_pix2pix")
    models = ["--vae", str(d / "vae.pt")]
    assert cli.main(["make-pairs", "--n", "2", "--exact", "12", "--steps", "2", "--samples-per-prompt", "1",
                     "--checkpoint", str(d / "text.pt"), "--out", str(d / "pairs.pt"), *models]) == 0
    assert cli.main(["train", "pix2pix", "--pairs", str(d / "pairs.pt"), "--steps", "2", "--batch-size", "4",
                     "--base", str(d / "text.pt"), "--checkpoint", str(d / "pix2pix.pt"), *models]) == 0
    return d


def _edit(d, *args):
    return cli.main(["edit", "--checkpoint", str(d / "pix2pix.pt"), "--vae", str(d / "vae.pt"), "--steps", "3", *args])


def test_make_pairs_writes_a_reproducible_pairs_file(tiny, tmp_path, capsys):
    capsys.readouterr()
    d = tiny
    args = ["make-pairs", "--n", "2", "--exact", "12", "--steps", "2", "--samples-per-prompt", "1",
            "--checkpoint", str(d / "text.pt"), "--vae", str(d / "vae.pt")]
    assert cli.main([*args, "--out", str(tmp_path / "again.pt")]) == 0
    out = capsys.readouterr().out
    assert "model pairs: 2 prompts, 2 generated" in out and "exact pairs: 12 generated" in out
    a, b = load_pairs(d / "pairs.pt"), load_pairs(tmp_path / "again.pt")
    assert torch.equal(a["inputs"], b["inputs"]) and a["instructions"] == b["instructions"]
    assert a["inputs"].shape[1:] == (1, 28, 28) and len(a["kinds"]) == len(a["provenance"]) == len(a["inputs"])


def test_edit_a_non_square_rgb_picture_writes_images_and_instruction(tiny, tmp_path, capsys):
    im = Image.new("RGB", (50, 80), (250, 250, 240))
    ImageDraw.Draw(im).line((25, 10, 28, 70), fill=(10, 10, 10), width=5)
    im.save(tmp_path / "one.png")
    out, png = tmp_path / "e.pt", tmp_path / "e.png"
    assert _edit(tiny, "--input", str(tmp_path / "one.png"), "--instruction", "turn it into a 3", "--out", str(out),
                 "--png", str(png)) == 0, capsys.readouterr().err
    result = torch.load(out, weights_only=True)
    assert set(result) == {"images", "instruction"} and result["instruction"] == "turn it into a 3"
    assert result["images"].shape == (1, 1, 28, 28) and 0 <= result["images"].min() and result["images"].max() <= 1
    assert png.stat().st_size > 0


@pytest.mark.parametrize("variant", ["full", "no-cfg-no-ddim", "img2img"])
def test_edit_a_pt_file_of_images_is_reproducible(tiny, tmp_path, variant):
    torch.save({"images": torch.rand(3, 1, 28, 28)}, tmp_path / "in.pt")
    runs = []
    for i in range(2):
        out = tmp_path / f"{i}.pt"
        assert _edit(tiny, "--input", str(tmp_path / "in.pt"), "--instruction", "make it thicker", "--variant", variant,
                     "--strength", "0.7", "--text-checkpoint", str(tiny / "text.pt"), "--seed", "4",
                     "--out", str(out)) == 0
        runs.append(torch.load(out, weights_only=True)["images"])
    assert runs[0].shape == (3, 1, 28, 28) and torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("args, message", [
    (["--instruction", "turn it intoo a 3"], "unknown word 'intoo' (did you mean 'into'"),
    (["--instruction", " "], '--instruction is empty: say what to change, such as "turn it into a 3"'),
    (["--instruction", "make it thicker", "--steps", "1"], "2 to 1000"),
    (["--instruction", "make it thicker", "--strength", "0"], "runs no step"),
    (["--instruction", "make it thicker", "--sampler", "ddpm"], "use variant 'no-ddim'"),
    (["--instruction", "make it thicker", "--variant", "img2img", "--image-guidance", "2"],
     "--image-guidance is not used by variant img2img"),
    (["--instruction", "make it thicker", "--variant", "no-cfg", "--text-guidance", "2"],
     "variant 'no-cfg' samples without guidance"),
])
def test_bad_edits_are_one_line_errors(tiny, tmp_path, capsys, args, message):
    torch.save({"images": torch.rand(1, 1, 28, 28)}, tmp_path / "in.pt")
    assert _edit(tiny, "--input", str(tmp_path / "in.pt"), "--out", str(tmp_path / "o.pt"), *args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("content, message", [
    ({"images": torch.rand(2, 28, 28)}, "(N, 1, 28, 28)"), ({"images": torch.full((1, 1, 28, 28), 2.0)}, "[0, 1]"),
])
def test_bad_input_files_are_clear_errors(tiny, tmp_path, capsys, content, message):
    torch.save(content, tmp_path / "in.pt")
    assert _edit(tiny, "--input", str(tmp_path / "in.pt"), "--instruction", "make it thicker",
                 "--out", str(tmp_path / "o.pt")) == 2
    assert message in capsys.readouterr().err


def test_train_pix2pix_needs_pairs(capsys):
    assert cli.main(["train", "pix2pix", "--steps", "1"]) == 2
    assert "--pairs" in capsys.readouterr().err
    assert cli.main(["train", "cond", "--pairs", "p.pt", "--steps", "1"]) == 2
    assert "option of `train pix2pix`" in capsys.readouterr().err


def test_train_pix2pix_takes_several_pair_files(tiny, tmp_path, capsys):
    d = tiny
    args = ["train", "pix2pix", "--pairs", str(d / "pairs.pt"), str(d / "pairs.pt"), "--steps", "1", "--batch-size",
            "4", "--base", str(d / "text.pt"), "--vae", str(d / "vae.pt"), "--checkpoint", str(tmp_path / "p.pt")]
    assert cli.main(args) == 0
    n = len(load_pairs(d / "pairs.pt")["inputs"])
    assert torch.load(tmp_path / "p.pt", weights_only=True)["pairs"] == 2 * n


@pytest.mark.parametrize("variant, used, unused", [
    ("full", "text guidance 3, image guidance 3", "caption guidance"),
    ("img2img", "caption guidance 3", "image guidance"),
    ("no-cfg", "no guidance", "image guidance"),
])
def test_edit_prints_only_the_guidance_its_variant_uses(tiny, tmp_path, capsys, variant, used, unused):
    torch.save({"images": torch.rand(1, 1, 28, 28)}, tmp_path / "in.pt")
    capsys.readouterr()
    assert _edit(tiny, "--input", str(tmp_path / "in.pt"), "--instruction", "make it thicker", "--variant", variant,
                 "--text-checkpoint", str(tiny / "text.pt"), "--out", str(tmp_path / "o.pt")) == 0
    out = capsys.readouterr().out
    assert f"({variant}, 3 steps, {used}, strength 1)" in out and unused not in out
