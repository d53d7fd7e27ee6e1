"""Prompt-to-prompt on the lesson-7 pipeline (`edit_prompt`, `edit_controller`), on a tiny untrained
LatentDiffusion: the batch layout, the baseline, and the controllers each edit picks."""

import pytest
import torch

from diffusionlab.editing.prompt_to_prompt import (
    Chain, InjectSelf, LocalBlend, Refine, ReplaceCross, Reweight, edit_controller, edit_prompt)
from diffusionlab.models.text_encoder import TextEncoderConfig, Tokenizer
from diffusionlab.models.unet import UNetConfig
from diffusionlab.models.vae import VAE, VAEConfig
from diffusionlab.pipelines.latent import LatentDiffusion, TextToLatent
from diffusionlab.samplers import sample
from diffusionlab.schedules import NoiseSchedule

STEPS = 4
TINY_TEXT = TextEncoderConfig(width=16, heads=2, layers=1)
TINY_UNET = UNetConfig(in_channels=4, out_channels=4, image_size=8, channels=(8, 16), attention=(True, True),
                       context_dim=16, heads=2)


class LatentsOut(VAE):
    """A VAE whose decoder hands back the latents: an untrained decoder would blur away the differences
    these tests look for, so they compare latents (the images are tested once, with the real decoder)."""

    def decode_latents(self, z, batch_size=1000, scaled=True):
        return z


def tiny_pipe(scale=0.3) -> LatentDiffusion:
    torch.manual_seed(0)
    model = TextToLatent(TINY_UNET, TINY_TEXT).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # random weights large enough that the prompt and the maps matter
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    vae = LatentsOut(VAEConfig(channels=(8, 8, 16))).eval()
    return LatentDiffusion(vae, model, NoiseSchedule(T=100, kind="linear"), Tokenizer())


@pytest.fixture(scope="module")
def pipe() -> LatentDiffusion:
    return tiny_pipe()


def close(a, b):
    """Equal up to float32 rounding (the random UNet's latents are large: compare relative to their size)."""
    return bool((a - b).abs().max() <= 1e-5 * a.abs().max())


def differ(a, b):
    """Different by much more than rounding."""
    return bool((a - b).abs().max() > 1e-4 * a.abs().max())


def edit(pipe, source="a thick seven", edited="a thin seven", seed=0, **kwargs):
    kwargs = {"n": 2, "steps": STEPS, "cross_fraction": 0.0, "self_fraction": 0.0, **kwargs}
    return edit_prompt(pipe, source, edited, generator=torch.Generator().manual_seed(seed), **kwargs)


def plain(pipe, prompt, n=2, seed=0, guidance_scale=3.0):
    """The prompt sampled alone, without hooks, from the noise edit_prompt draws with this seed."""
    z = torch.randn((n, 4, 8, 8), generator=torch.Generator().manual_seed(seed))
    return sample(pipe.eps_fn([prompt] * n, guidance_scale), None, pipe.schedule, "ddim", STEPS, xT=z,
                  progress=False, clip=None)


@pytest.mark.parametrize("guidance_scale", [3.0, 1.0])
def test_source_and_baseline_are_the_prompts_sampled_alone_from_the_same_noise(pipe, guidance_scale):
    source, edited, baseline = edit(pipe, cross_fraction=1.0, self_fraction=1.0, guidance_scale=guidance_scale)
    assert close(source, plain(pipe, "a thick seven", guidance_scale=guidance_scale))
    assert close(baseline, plain(pipe, "a thin seven", guidance_scale=guidance_scale))
    assert differ(edited, baseline)  # the control changed the edited image


def test_the_images_are_decoded_digits(pipe):
    real = LatentDiffusion(VAE(VAEConfig(channels=(8, 8, 16))).eval(), pipe.model, pipe.schedule, pipe.tokenizer)
    images = edit(real, n=3)
    assert all(x.shape == (3, 1, 28, 28) and x.min() >= -1 and x.max() <= 1 for x in images)


def test_without_control_the_edit_is_the_baseline(pipe):
    source, edited, baseline = edit(pipe)
    assert close(edited, baseline)
    assert differ(source, baseline)  # the two prompts do give different images


def test_editing_a_prompt_into_itself_with_full_control_keeps_the_source(pipe):
    source, edited, _ = edit(pipe, "a small seven leaning right", "a small seven leaning right",
                             cross_fraction=1.0, self_fraction=1.0)
    assert close(source, edited)


def test_reweighting_by_one_changes_nothing_and_by_three_changes_the_edit(pipe):
    _, swap, _ = edit(pipe, cross_fraction=0.5)
    _, same, _ = edit(pipe, cross_fraction=0.5, reweight={"thin": 1.0})
    _, more, _ = edit(pipe, cross_fraction=0.5, reweight={"thin": 3.0})
    assert close(swap, same)
    assert differ(more, swap)


def test_local_blend_with_threshold_zero_is_no_blend_and_with_one_keeps_the_source(pipe):
    source, edited, _ = edit(pipe, cross_fraction=0.5, self_fraction=0.5)
    _, blended, _ = edit(pipe, cross_fraction=0.5, self_fraction=0.5, local_blend=True, threshold=0.0)
    assert close(edited, blended)
    _, nowhere, _ = edit(pipe, cross_fraction=0.5, self_fraction=0.5, local_blend=True, threshold=1.0)
    assert differ(source, edited) and close(nowhere, source)


def test_the_controllers_for_a_word_swap_a_word_added_and_a_reweight():
    tok = Tokenizer()
    ids = {p: tok.encode(p)[0].tolist() for p in ("a thick seven", "a thin seven", "a seven")}
    hook, blend = edit_controller(tok.vocab, ids["a thick seven"], ids["a thin seven"], 10, 0.8, 0.4,
                                  reweight={"thin": 2.0}, local_blend=True)
    assert isinstance(hook, Chain) and [type(h) for h in hook.hooks] == [LocalBlend, InjectSelf, ReplaceCross, Reweight]
    assert hook.hooks[1].until == 4 and hook.hooks[2].until == 8
    assert hook.hooks[3].tokens == [2] and blend.source_tokens == [2] and blend.edited_tokens == [2]
    hook, blend = edit_controller(tok.vocab, ids["a seven"], ids["a thick seven"], 10, local_blend=True)
    refine = hook.hooks[-1]
    assert isinstance(refine, Refine)
    assert refine.alignment.tolist()[:4] == [0, 1, -1, 2]  # <start> a thick seven
    assert blend.edited_tokens == [2] and blend.source_tokens == [1, 2]  # nothing removed: all source words
    hook, _ = edit_controller(tok.vocab, ids["a thin seven"], ids["a thin seven"], 10, self_fraction=0)
    assert [type(h) for h in hook.hooks] == [ReplaceCross]


def test_bad_edits_are_refused_with_the_reason(pipe):
    with pytest.raises(ValueError, match="'thick'.*not a word of the edited prompt"):
        edit(pipe, reweight={"thick": 2.0})
    with pytest.raises(ValueError, match="unknown word 'thinn'"):
        edit(pipe, "a thick seven", "a thinn seven")
    with pytest.raises(ValueError, match="cross_fraction"):
        edit(pipe, cross_fraction=1.5)
    with pytest.raises(ValueError, match="self_fraction"):
        edit(pipe, self_fraction=-0.1)
    with pytest.raises(ValueError, match="same length"):
        edit_controller(Tokenizer().vocab, [1, 3, 4], [1, 3], 10)


def test_several_pairs_at_once_equal_each_pair_alone(pipe):
    pairs = [("a small seven leaning right", "a small two leaning right"),
             ("a small one leaning right", "a small six leaning right")]
    together = edit(pipe, [a for a, _ in pairs], [b for _, b in pairs], cross_fraction=0.5, self_fraction=0.5)
    for i, (a, b) in enumerate(pairs):
        alone = edit(pipe, a, b, cross_fraction=0.5, self_fraction=0.5)  # row i starts from the same noise
        assert all(close(x[i], y[i]) for x, y in zip(together, alone))
    assert differ(together[1][0], together[1][1])
    with pytest.raises(ValueError, match="same token positions"):
        edit(pipe, ["a thick seven", "a seven"], ["a thin seven", "a thick seven"])
