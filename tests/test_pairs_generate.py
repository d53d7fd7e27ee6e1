"""The pair generator (pairs.generate_pairs, lesson 9) on a tiny random text-to-image pipeline that follows
the documented interface (pairs.TextToImage), so it runs in seconds."""

import pytest
import torch
import torch.nn.functional as F

from diffusionlab.instructions import INSTRUCTION_VOCAB, random_triplets
from diffusionlab.metrics import load_classifier
from diffusionlab.models.text_encoder import TextEncoder, Tokenizer
from diffusionlab.models.unet import UNet, UNetConfig
from diffusionlab.pairs import generate_pairs, sample_pair
from diffusionlab.schedules import NoiseSchedule
from tiny_models import randomize


class TinyPipeline:
    """Random weights, a 2 x 8 x 8 latent, decoded by upsampling its first channel."""

    latent_shape = (2, 8, 8)
    prediction = "v"  # as the shipped text model: eps-prediction without clipping blows a random model up

    def __init__(self):
        self.tokenizer = Tokenizer(INSTRUCTION_VOCAB)
        self.text_encoder = randomize(TextEncoder(vocab_size=len(self.tokenizer), width=8, layers=1, heads=2), 1).eval()
        self.unet = randomize(UNet(UNetConfig(in_channels=2, out_channels=2, image_size=8, channels=(8, 16),
                                            attention=(True, True), context_dim=8, heads=2))).eval()
        self.schedule = NoiseSchedule(T=100)

    def encode_prompts(self, prompts):
        return self.text_encoder(self.tokenizer.encode(prompts))

    def decode(self, z):
        return F.interpolate(z[:, :1], size=28, mode="bilinear").tanh()


@pytest.fixture(scope="module")
def pipe():
    return TinyPipeline()


def fake_scores(inputs, edited, triplets):
    """Accept a pair when its edited image's mean is above the input's; direction: the difference."""
    d = (edited - inputs).mean((1, 2, 3))
    return {"accepted": d > 0, "direction": d}


def test_generate_pairs_shapes_counts_and_keeping_the_best(pipe):
    out = generate_pairs(pipe, 5, samples_per_prompt=6, keep_per_prompt=2, steps=4, batch_size=3,
                         generator=torch.Generator().manual_seed(0), progress=False, score_fn=fake_scores)
    c = out["counts"]
    assert c["prompts"] == 5 and c["generated"] == 30 and c["kept_per_prompt"] == len(out["inputs"])
    assert 0 < c["kept_per_prompt"] <= min(10, c["accepted"]) and c["seconds"] > 0
    assert out["inputs"].shape == out["edited"].shape == (c["kept_per_prompt"], 1, 28, 28)
    assert out["inputs"].min() >= -1 and out["inputs"].max() <= 1
    assert len(out["instructions"]) == len(out["triplets"]) == c["kept_per_prompt"]
    assert ((out["p"] >= 0.1) & (out["p"] <= 0.9)).all() and len(set(out["p"].tolist())) > 1
    # per prompt, at most 2, and they are the best accepted by direction among that prompt's 6 samples
    d = fake_scores(out["inputs"], out["edited"], out["triplets"])["direction"]
    assert (d > 0).all()
    for tr in set(map(id, out["triplets"])):
        assert sum(id(t) == tr for t in out["triplets"]) <= 2


def test_generate_pairs_is_reproducible(pipe):
    kw = {"samples_per_prompt": 2, "steps": 3, "progress": False, "score_fn": fake_scores}
    a = generate_pairs(pipe, 3, generator=torch.Generator().manual_seed(1), **kw)
    b = generate_pairs(pipe, 3, generator=torch.Generator().manual_seed(1), **kw)
    c = generate_pairs(pipe, 3, generator=torch.Generator().manual_seed(2), **kw)
    assert torch.equal(a["inputs"], b["inputs"]) and torch.equal(a["edited"], b["edited"])
    assert a["instructions"] == b["instructions"]
    assert not torch.equal(a["p"], c["p"])


def test_sample_pair_uses_the_controllers(pipe):
    """The source rows do not depend on the fraction p; the edited rows do (p = 1: all steps controlled,
    p = 0: none), and without control the two prompts give different images."""
    triplets = random_triplets(3, torch.Generator().manual_seed(0))
    src0, ed0 = sample_pair(pipe, triplets, 0.0, steps=4, generator=torch.Generator().manual_seed(0))
    src1, ed1 = sample_pair(pipe, triplets, 1.0, steps=4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(src0, src1)
    # same noise, so without control ed0 and ed1 would be equal to the last bit: any difference beyond float
    # rounding is the controllers' (random weights give nearly uniform maps, hence a small one)
    assert (ed0 - ed1).abs().max() > 1e-4 and (src0 - ed0).abs().max() > 1e-3


def test_with_the_course_filter_a_random_model_keeps_little(pipe):
    out = generate_pairs(pipe, 4, load_classifier(), samples_per_prompt=2, steps=3, progress=False,
                         generator=torch.Generator().manual_seed(0))
    c = out["counts"]
    assert c["generated"] == 8 and {"caption", "directional", "kept", "accepted"} <= set(c)
    assert c["kept_per_prompt"] <= c["accepted"] <= min(c["caption"], c["directional"], c["kept"])


def test_generate_pairs_checks_its_arguments(pipe):
    with pytest.raises(ValueError, match="classifier"):
        generate_pairs(pipe, 2)
    with pytest.raises(ValueError, match="p_range"):
        generate_pairs(pipe, 2, score_fn=fake_scores, p_range=(0.5, 0.2))


def test_sample_pair_runs_the_course_guidance_and_checks_its_scale(pipe):
    """sample_pair's eps_fn was text_guided_eps written out again by hand, without its checks: a guidance scale out
    of range was used as given. It now calls text_guided_eps; at the scales the course uses the images are the
    hand-written ones to the bit, and at scale 1 the controllers act on the unguided [source, edited] batch."""
    from diffusionlab.editing.prompt_to_prompt import Chain, InjectSelf, ReplaceCross, controlled
    from diffusionlab.guidance import cfg_combine
    from diffusionlab.samplers import sample

    triplets = random_triplets(2, torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="guidance_scale"):
        sample_pair(pipe, triplets, 0.5, steps=3, guidance_scale=25.0)
    src, ed = sample_pair(pipe, triplets, 0.5, steps=3, guidance_scale=3.0, generator=torch.Generator().manual_seed(0))
    # the hand-written version it replaced
    n = len(triplets)
    context = pipe.encode_prompts([t.caption for t in triplets] + [t.edited_caption for t in triplets])
    uncond = pipe.encode_prompts([""] * (2 * n))
    z = torch.randn((n, *pipe.latent_shape), generator=torch.Generator().manual_seed(0))

    def eps_fn(zt, t):
        out = pipe.unet(torch.cat([zt, zt]), torch.cat([t, t]), context=torch.cat([uncond, context])).float()
        out = pipe.schedule.to_x0_eps(pipe.prediction, out, torch.cat([zt, zt]), torch.cat([t, t]))[1]
        return cfg_combine(*out.chunk(2), 3.0)

    with torch.no_grad(), controlled(pipe.unet, Chain(InjectSelf(3, 0.5), ReplaceCross(3, 0.5))):
        z0 = sample(eps_fn, None, pipe.schedule, "ddim", 3, xT=torch.cat([z, z]), progress=False, clip=None)
    expected_src, expected_ed = pipe.decode(z0).chunk(2)
    assert torch.equal(src, expected_src) and torch.equal(ed, expected_ed)
    # scale 1: one pass per step on [source, edited]; the controllers still copy the source's maps
    g = torch.Generator
    src0, ed0 = sample_pair(pipe, triplets, 0.0, steps=4, guidance_scale=1.0, generator=g().manual_seed(0))
    src1, ed1 = sample_pair(pipe, triplets, 1.0, steps=4, guidance_scale=1.0, generator=g().manual_seed(0))
    torch.testing.assert_close(src0, src1)
    assert (ed0 - ed1).abs().max() > 1e-4
