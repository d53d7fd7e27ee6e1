"""InstructPix2Pix (pipelines/instruct.py, lesson 9) on tiny models: the model made from the lesson-7 text model,
the two guidance scales, training and resuming, the five variants, strength, and bad input."""

import re

import pytest
import torch
from PIL import Image, ImageDraw

from diffusionlab import pairs
from diffusionlab.editing.img2img import sdedit_start
from diffusionlab.instructions import read_instruction
from diffusionlab.pipelines import instruct, latent


@pytest.fixture(scope="module")
def tiny(tiny_latent):
    """A tiny VAE and text model (one training step each), and 16 exact pairs."""
    d = tiny_latent("pix2pix")
    base = latent.load(d / "text.pt", vae=d / "vae.pt")
    data = pairs.make_pairs(0, n_exact=16, seed=0, out=d / "pairs.pt", progress=False,
                            score_fn=lambda a, b, t: {"accepted": torch.ones(len(t), dtype=torch.bool)})
    return {"dir": d, "base": base, "pairs": data}


@pytest.fixture(scope="module")
def trained(tiny):
    d = tiny["dir"]
    pipe, history = instruct.train_instruct(d / "pairs.pt", base=d / "text.pt", vae=d / "vae.pt", steps=2,
                                            batch_size=8, checkpoint=d / "pix2pix.pt", progress=False)
    return pipe


def _digits(tiny, n=2):
    return pairs.load_pairs(tiny["dir"] / "pairs.pt")["inputs"][:n]


def test_the_new_model_is_the_text_model_at_the_start_for_any_image_latent(tiny):
    base = tiny["base"]
    model, tokenizer = instruct.from_text_model(base, torch.Generator().manual_seed(0))
    assert model.unet.config.in_channels == 8 and model.image_channels == 4
    captions = ["a thick seven", "a 2 leaning right", ""]
    assert torch.equal(tokenizer.encode(captions), base.tokenizer.encode(captions))  # caption words keep their ids
    tokenizer.encode(["turn it into a 3", "make it thicker"])  # and the instruction words are known
    g = torch.Generator().manual_seed(1)
    zt, image_latent = torch.randn(3, 4, 8, 8, generator=g), 5 * torch.randn(3, 4, 8, 8, generator=g)
    t = torch.tensor([0, 500, 999])
    with torch.no_grad():
        expected = base.model(zt, t, base.tokenizer.encode(captions))
        got = model(zt, t, image_latent, tokenizer.encode(captions))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert not torch.equal(base.model.unet.stem.weight, model.unet.stem.weight[:, 4:])  # the base is not changed


def test_scales_one_give_the_conditional_prediction(trained, tiny):
    pipe = trained
    z_I = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    zt, t = torch.randn(2, 4, 8, 8), torch.tensor([100, 700])
    instructions = ["turn it into a 3", "make it thicker"]
    with torch.no_grad():
        out = pipe.model(zt, t, z_I, pipe.tokenizer.encode(instructions)).float()
        eps = pipe.schedule.to_x0_eps(pipe.prediction, out, zt, t)[1]
        torch.testing.assert_close(pipe.eps_fn(z_I, instructions, 1.0, 1.0)(zt, t), eps)
        # the batched dual-guidance pass agrees: s_I = 1, s_T = 1 + tiny is the conditional eps to within tiny
        near = pipe.eps_fn(z_I, instructions, 1.0 + 1e-6, 1.0)(zt, t)
        torch.testing.assert_close(near, eps, atol=1e-4, rtol=1e-4)


def test_text_guidance_zero_ignores_the_instruction(trained):
    pipe = trained
    z_I = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    zt, t = torch.randn(1, 4, 8, 8), torch.tensor([300])
    with torch.no_grad():
        a = pipe.eps_fn(z_I, ["turn it into a 3"], 0.0, 1.5)(zt, t)
        b = pipe.eps_fn(z_I, ["make it smaller"], 0.0, 1.5)(zt, t)
        c = pipe.eps_fn(z_I, ["make it smaller"], 2.0, 1.5)(zt, t)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)  # with s_T > 0 the instruction matters


def test_save_load_round_trip_edits_the_same(trained, tiny):
    d = tiny["dir"]
    loaded = instruct.load(d / "pix2pix.pt", vae=d / "vae.pt")
    assert loaded.tokenizer.vocab == trained.tokenizer.vocab
    x = _digits(tiny)
    a = trained.edit(x, "turn it into a 3", steps=3, generator=torch.Generator().manual_seed(0))
    b = loaded.edit(x, "turn it into a 3", steps=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)


def test_the_shipped_file_names_no_path_of_the_training_machine(trained, tiny, tmp_path):
    from diffusionlab import course
    from diffusionlab.checkpoints import load_checkpoint

    d = tiny["dir"]
    assert load_checkpoint(d / "pix2pix.pt")["text_checkpoint"] == str(d / "text.pt")
    out = course.export_weights(d / "pix2pix.pt", tmp_path / "pix2pix.pt")
    assert "text_checkpoint" not in load_checkpoint(out)
    x = _digits(tiny)
    a = trained.edit(x, "turn it into a 3", steps=3, generator=torch.Generator().manual_seed(0))
    b = instruct.load(out, vae=d / "vae.pt").edit(x, "turn it into a 3", steps=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b, atol=2e-2, rtol=0)  # fp16 weights


def test_training_resumes_exactly(tiny, tmp_path):
    d = tiny["dir"]
    kw = {"base": d / "text.pt", "vae": d / "vae.pt", "steps": 3, "batch_size": 8, "progress": False}
    whole, _ = instruct.train_instruct(d / "pairs.pt", checkpoint=tmp_path / "a.pt", **kw)
    instruct.train_instruct(d / "pairs.pt", checkpoint=tmp_path / "b.pt", stop_after=1, checkpoint_every=1, **kw)
    resumed, history = instruct.train_instruct(d / "pairs.pt", checkpoint=tmp_path / "b.pt", **kw)
    assert history["step"] == [1, 2, 3]
    for (k, v), w in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(v, w), k


def test_conditioning_dropout_reaches_the_loss(tiny):
    """With p = 1/3 every example loses its instruction or its image: the loss differs from p = 0."""
    base = tiny["base"]
    model, tokenizer = instruct.from_text_model(base)
    z0, z_I = torch.randn(8, 4, 8, 8), torch.randn(8, 4, 8, 8)
    args = (model, z0, z_I, ["make it thicker"] * 8)
    loss = [instruct.instruct_loss(*args, torch.Generator().manual_seed(0), base.schedule, tokenizer, p)
            for p in (0.0, 0.0, 1 / 3)]
    assert torch.equal(loss[0], loss[1]) and not torch.equal(loss[0], loss[2])


@pytest.mark.parametrize("variant", list(instruct.VARIANTS))
def test_every_variant_runs_and_is_reproducible_by_seed(trained, tiny, variant):
    x = _digits(tiny)

    def edit(seed):
        return trained.edit(x, "make it thicker", steps=3, variant=variant, strength=1.0 if variant != "img2img" else 0.6,
                            negative_prompt="make it thinner" if variant != "img2img" else None,
                            generator=torch.Generator().manual_seed(seed))

    a, b, c = edit(0), edit(0), edit(1)
    assert a.shape == (2, 1, 28, 28) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_variants_use_their_sampler_and_guidance(trained, tiny):
    x = _digits(tiny, 1)
    kw = {"steps": 3, "text_guidance": 5.0, "image_guidance": 2.0}
    full = trained.edit(x, "make it bold", generator=torch.Generator().manual_seed(0), **kw)
    no_cfg = trained.edit(x, "make it bold", variant="no-cfg", generator=torch.Generator().manual_seed(0), **kw)
    plain = trained.edit(x, "make it bold", generator=torch.Generator().manual_seed(0), steps=3, text_guidance=1.0,
                         image_guidance=1.0)
    assert torch.equal(no_cfg, plain) and not torch.equal(full, no_cfg)
    no_ddim = trained.edit(x, "make it bold", variant="no-ddim", generator=torch.Generator().manual_seed(0), **kw)
    ddpm = trained.edit(x, "make it bold", sampler="ddpm", variant="no-ddim", generator=torch.Generator().manual_seed(0), **kw)
    assert torch.equal(no_ddim, ddpm) and not torch.equal(no_ddim, full)
    with pytest.raises(ValueError, match="no-ddim"):
        trained.edit(x, "make it bold", sampler="ddpm", variant="full")


def test_strength_below_one_starts_from_the_noised_input(trained, tiny):
    z_I = trained.vae.encode_latents(_digits(tiny, 1))
    eps_fn = trained.eps_fn(z_I, ["make it thicker"])
    z0, traj = trained.reverse(eps_fn, z_I, 0.5, 10, "ddim", torch.Generator().manual_seed(3), return_trajectory=True)
    start, start_step = sdedit_start(trained.schedule, z_I, 0.5, 10, generator=torch.Generator().manual_seed(3))
    assert start_step == 5 and len(traj["t"]) == 5 and len(traj["xt"]) == 6  # the last 5 of the 10 steps
    torch.testing.assert_close(traj["xt"][0], start)
    _, traj = trained.reverse(eps_fn, z_I, 1.0, 10, "ddim", torch.Generator().manual_seed(3), return_trajectory=True)
    torch.testing.assert_close(traj["xt"][0], torch.randn(z_I.shape, generator=torch.Generator().manual_seed(3)))


def test_edit_returns_the_reverse_process(trained, tiny):
    x = _digits(tiny, 2)
    y, traj = trained.edit(x, "make it thicker", steps=4, strength=0.5, return_trajectory=True,
                           generator=torch.Generator().manual_seed(0))
    assert traj["x0"].shape == (2, 2, 1, 28, 28) and len(traj["t"]) == 2  # half of the 4 steps


@pytest.mark.parametrize("variant", ["full", "img2img"])
def test_the_callback_sees_every_step_and_can_stop_the_edit(trained, tiny, variant):
    x = _digits(tiny, 1)
    seen = []
    trained.edit(x, "make it thicker", steps=5, variant=variant, callback=lambda i, *rest: seen.append(i))
    assert seen == [0, 1, 2, 3, 4]

    class Stop(Exception):
        pass

    def stop(i, *rest):
        if i == 1:
            raise Stop
    with pytest.raises(Stop):
        trained.edit(x, "make it thicker", steps=5, variant=variant, callback=stop)


def test_unknown_words_are_named_with_the_closest(trained, tiny):
    x = _digits(tiny, 1)
    with pytest.raises(ValueError, match=r"unknown words 'intoo' \(did you mean 'into'.*'pleaze'"):
        trained.edit(x, "turn it intoo a 3 pleaze", steps=3)
    with pytest.raises(ValueError, match="'thikc'"):
        trained.edit(x, "make it thicker", negative_prompt="make it thikc", steps=3)


@pytest.mark.parametrize("kwargs, message", [
    ({"steps": 1}, "2 to 1000"), ({"steps": 1001}, "2 to 1000"), ({"text_guidance": 25.0}, "text_scale"),
    ({"image_guidance": -1.0}, "image_scale"), ({"strength": 0.0}, "runs no step"), ({"strength": 1.5}, "strength"),
    ({"variant": "fancy"}, "variant must be one of"), ({"sampler": "euler"}, "sampler must be"),
])
def test_bad_settings_are_clear_errors(trained, tiny, kwargs, message):
    with pytest.raises(ValueError, match=message):
        trained.edit(_digits(tiny, 1), "make it thicker", **{"steps": 3, **kwargs})



@pytest.mark.parametrize("steps", [2, 4, 6, 10])
def test_a_strength_that_runs_no_step_is_refused_naming_one_that_runs(trained, tiny, steps):
    with pytest.raises(ValueError, match="runs no step") as err:  # round(0.5) == 0: half a step rounds to none
        trained.edit(_digits(tiny, 1), "make it thicker", steps=steps, strength=0.5 / steps)
    suggested = float(re.search(r"at least ([\d.]+)", str(err.value)).group(1))
    trained.edit(_digits(tiny, 1), "make it thicker", steps=steps, strength=suggested)  # accepted

@pytest.mark.parametrize("images, message", [
    (torch.zeros(1, 28, 28), r"\(N, 1, 28, 28\)"), (torch.zeros(2, 1, 32, 32), r"\(N, 1, 28, 28\)"),
    (torch.full((1, 1, 28, 28), 255.0), r"\[-1, 1\]"),
])
def test_bad_images_are_clear_errors(trained, images, message):
    with pytest.raises(ValueError, match=message):
        trained.edit(images, "make it thicker", steps=3)


def test_edit_reads_a_non_square_rgb_picture(trained, tmp_path):
    im = Image.new("RGB", (60, 40), "white")
    ImageDraw.Draw(im).line((30, 5, 33, 35), fill=(20, 20, 90), width=4)
    im.save(tmp_path / "digit.png")
    y = trained.edit(tmp_path / "digit.png", "turn it into a 3", steps=3, generator=torch.Generator().manual_seed(0))
    assert y.shape == (1, 1, 28, 28)


def test_img2img_writes_the_edited_caption(trained, tiny):
    assert trained.edited_captions(_digits(tiny, 1), ["turn it into a 3"]) == ["a three"]
    assert instruct.edited_caption("thickness", 1, 7) == "a thick seven"
    assert instruct.edited_caption("slant", -1, 8) == "an eight leaning left"
    assert instruct.edited_caption("size", -1, 2) == "a small two"
    with pytest.raises(ValueError, match="caption="):
        trained.edit(_digits(tiny, 1), "make it", variant="img2img", steps=3)


def test_read_instruction():
    assert read_instruction("Turn it into a 3.") == ("digit", 3)
    assert read_instruction("change the seven to an eight") == ("digit", 8)
    assert read_instruction("thin the strokes") == ("thickness", -1)
    assert read_instruction("lean it to the right") == ("slant", 1)
    assert read_instruction("make it a little smaller") == ("size", -1)
    assert read_instruction("make it purple") is None


def test_make_pairs_is_reproducible_and_round_trips(tiny, tmp_path):
    kw = {"n_exact": 12, "samples_per_prompt": 2, "steps": 3, "progress": False}
    a = pairs.make_pairs(2, tiny["base"], seed=5, out=tmp_path / "a.pt", **kw)
    b = pairs.make_pairs(2, tiny["base"], seed=5, **kw)
    c = pairs.make_pairs(2, tiny["base"], seed=6, **kw)
    assert torch.equal(a["inputs"], b["inputs"]) and a["instructions"] == b["instructions"]
    assert a["instructions"] != c["instructions"]
    counts = a["counts"]
    assert counts["model"]["generated"] == 4 and counts["exact"]["generated"] == 12
    assert counts["pairs"] == len(a["instructions"]) == counts["model"]["kept_per_prompt"] + counts["exact"]["accepted"]
    loaded = pairs.load_pairs(tmp_path / "a.pt")
    assert loaded["inputs"].dtype == torch.float32 and loaded["inputs"].min() >= -1 and loaded["inputs"].max() <= 1
    assert loaded["instructions"] == a["instructions"] and loaded["provenance"].count("exact") == counts["exact"]["accepted"]
    assert set(loaded["kinds"]) <= {"digit", "thickness", "size", "slant"}
    with pytest.raises(ValueError, match="not a pairs file"):
        torch.save({"images": torch.zeros(1)}, tmp_path / "x.pt")
        pairs.load_pairs(tmp_path / "x.pt")


def test_the_benchmark_keeps_the_edits_it_measured(trained):
    """benchmarks/instruct_pix2pix.run(..., keep=d) hands back the very edits it judged: the shares are their means,
    and the edits are the pipeline's for the same inputs, instructions and seed (lesson 9 shows them)."""
    import sys
    from pathlib import Path

    from diffusionlab.metrics import load_classifier

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from benchmarks import instruct_pix2pix as bench

    classifier = load_classifier()
    edits = bench.test_edits(3, seed=0)
    kept = {}
    result = bench.run(trained, classifier, edits, 3.0, 1.5, 2, keep=kept)
    assert set(kept) == set(edits) == set(result)
    for kind, (images, asked, ok) in kept.items():
        assert images.shape == (3, 1, 28, 28) and asked.shape == ok.shape == (3,)
        assert result[kind] == pytest.approx((asked.float().mean().item(), ok.float().mean().item()))
    x, _, _, texts = edits["digit"]
    again = trained.edit(x, texts, text_guidance=3.0, image_guidance=1.5, steps=2,
                         generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(kept["digit"][0], again)


def test_a_subset_of_pairs_is_a_pairs_file_of_the_same_rows(tiny, tmp_path):
    src = tiny["dir"] / "pairs.pt"
    sub = pairs.subset_pairs(src, 5, tmp_path / "sample.pt", seed=1)
    full, small = pairs.load_pairs(src), pairs.load_pairs(tmp_path / "sample.pt")
    assert len(small["inputs"]) == len(small["instructions"]) == len(small["kinds"]) == 5
    for j in range(5):  # every row of the sample is a row of the file, images and words together
        assert any(torch.equal(full["inputs"][k], small["inputs"][j]) and torch.equal(full["edited"][k], small["edited"][j])
                   and full["instructions"][k] == small["instructions"][j] for k in range(16))
    assert sub["subset"] == {"of": 16, "n": 5, "seed": 1}
    with pytest.raises(ValueError, match="n must be from 1 to the 16 pairs"):
        pairs.subset_pairs(src, 17, tmp_path / "x.pt")


def test_pairs_of_chosen_kinds_and_training_on_two_files(tiny, tmp_path):
    """`make-pairs --kinds digit` makes only digit changes; `train pix2pix --pairs A B` trains on both sets joined."""
    accept_all = lambda a, b, t: {"accepted": torch.ones(len(t), dtype=torch.bool),  # noqa: E731
                                  "direction": torch.ones(len(t))}
    digits = pairs.make_pairs(6, tiny["base"], n_exact=0, kinds=["digit"], seed=1, samples_per_prompt=1, steps=2,
                              out=tmp_path / "digits.pt", progress=False, score_fn=accept_all)
    assert digits["kinds"] == ["digit"] * 6 and all(i != "" for i in digits["instructions"])
    joined = instruct.load_pairs_for_training([tiny["dir"] / "pairs.pt", tmp_path / "digits.pt"])
    n_first = len(tiny["pairs"]["instructions"])
    assert len(joined["inputs"]) == len(joined["instructions"]) == len(joined["kinds"]) == n_first + 6
    assert joined["instructions"][n_first:] == digits["instructions"]
    assert torch.equal(joined["edited"][:n_first], pairs.load_pairs(tiny["dir"] / "pairs.pt")["edited"])
    instruct.train_instruct([tiny["dir"] / "pairs.pt", tmp_path / "digits.pt"], base=tiny["dir"] / "text.pt",
                            vae=tiny["dir"] / "vae.pt", steps=1, batch_size=4, checkpoint=tmp_path / "p.pt",
                            progress=False)
    assert torch.load(tmp_path / "p.pt", weights_only=True)["pairs"] == n_first + 6
