"""Prompt-to-prompt's controllers (editing/prompt_to_prompt.py) on a tiny UNet with random weights and random
text tokens: what each controller must leave alone, and what it must copy."""

import pytest
import torch

from diffusionlab.editing.prompt_to_prompt import (
    Chain, InjectSelf, LocalBlend, Refine, ReplaceCross, Reweight, StoreMaps, align_tokens, controlled,
    edited_rows, swapped_tokens, word_maps)
from diffusionlab.models.unet import UNet, UNetConfig
from diffusionlab.samplers import sample
from diffusionlab.schedules import NoiseSchedule
from tiny_models import randomize

STEPS, N, L, D = 6, 2, 5, 6  # sampler steps, images per prompt, tokens, token width


@pytest.fixture(scope="module")
def setup():
    cfg = UNetConfig(channels=(8, 16), attention=(True, True), image_size=8, context_dim=D, heads=2)
    model = randomize(UNet(cfg)).eval()
    g = torch.Generator().manual_seed(1)
    source, edited, uncond = (torch.randn(1, L, D, generator=g) for _ in range(3))
    edited[:, 0] = source[:, 0]  # the prompts share their first tokens ("a ...")
    xT = torch.randn(N, 1, 8, 8, generator=g)
    return model, source, edited, uncond, xT


def run(setup, hook=None, blend=None, same_prompt=False, guidance=3.0):
    """Sample [source x N, edited x N] from the same noise with classifier-free guidance in one UNet call:
    the batch [uncond(source), uncond(edited), source, edited], as the module docstring lays it out."""
    model, source, edited, uncond, xT = setup
    context = torch.cat([source.expand(N, L, D), (source if same_prompt else edited).expand(N, L, D)])

    def eps_fn(x, t):
        B = x.shape[0]
        out = model(torch.cat([x, x]), torch.cat([t, t]), context=torch.cat([uncond.expand(B, L, D), context]))
        eps_uncond, eps_cond = out.chunk(2)
        return eps_uncond + guidance * (eps_cond - eps_uncond)

    schedule = NoiseSchedule(T=100)
    with controlled(model, hook or (lambda probs, module: None)):
        x = sample(eps_fn, None, schedule, "ddim", STEPS, xT=torch.cat([xT, xT]), progress=False,
                   callback=blend.callback if blend else None)
    return x.chunk(2)  # (source images, edited images)


def test_without_control_the_two_prompts_give_different_images(setup):
    source, edited = run(setup)
    assert (source - edited).abs().max() > 1e-2  # else the tests below could not fail


def test_replacing_a_prompts_maps_with_its_own_changes_nothing(setup):
    """Source and edited prompt the same: copying the source's maps (cross and self, every step) into the
    edited rows copies them onto themselves. Copying the wrong rows (the unconditional ones) would not."""
    _, plain = run(setup, same_prompt=True)
    hook = Chain(ReplaceCross(STEPS, 1.0), InjectSelf(STEPS, 1.0))
    _, replaced = run(setup, hook, same_prompt=True)
    torch.testing.assert_close(replaced, plain, atol=1e-6, rtol=0)
    _, refined = run(setup, Refine(list(range(L)), STEPS, 1.0), same_prompt=True)
    torch.testing.assert_close(refined, plain, atol=1e-6, rtol=0)


def test_replacing_for_no_steps_equals_no_control_and_for_some_steps_changes_the_edit(setup):
    source, plain = run(setup)
    _, none = run(setup, Chain(ReplaceCross(STEPS, 0.0), InjectSelf(STEPS, 0.0)))
    torch.testing.assert_close(none, plain, atol=0, rtol=0)
    source_again, half = run(setup, ReplaceCross(STEPS, 0.5))
    torch.testing.assert_close(source_again, source, atol=0, rtol=0)  # the source is never touched
    assert (half - plain).abs().max() > 1e-3


def test_word_swap_for_every_step_gives_the_edited_rows_the_sources_cross_attention(setup):
    plain = StoreMaps()
    run(setup, plain)
    before, after = StoreMaps(), StoreMaps()
    run(setup, Chain(before, ReplaceCross(STEPS, 1.0), after))
    assert len(after.maps) == STEPS and len(after.cross_layers) == 4
    for step in range(STEPS):
        for name in after.cross_layers:
            a, b = after.maps[step][name], before.maps[step][name]  # (4N, positions, L)
            assert a.shape[0] == 4 * N and a.shape[-1] == L
            # [uncond source, uncond edited, source, edited]: the edited rows now hold the source's maps
            torch.testing.assert_close(a[3 * N :], a[2 * N : 3 * N], atol=0, rtol=0)
            torch.testing.assert_close(a[: 3 * N], b[: 3 * N], atol=0, rtol=0)  # and nothing else changed
            p = plain.maps[step][name]
            assert (p[3 * N :] - p[2 * N : 3 * N]).abs().max() > 1e-4  # they differed without control


def test_self_attention_injection_copies_self_maps_only_for_its_steps(setup):
    stored = StoreMaps(cross_only=False)
    run(setup, Chain(InjectSelf(STEPS, 0.5), stored))
    self_layers = [n for n in stored.maps[0] if n not in stored.cross_layers]
    assert len(self_layers) == 4
    for step in range(STEPS):
        for name in self_layers:
            m = stored.maps[step][name]  # (4N, P, P)
            gap = (m[3 * N :] - m[2 * N : 3 * N]).abs().max()
            assert gap == 0 if step < STEPS // 2 else gap > 0


def test_refine_copies_aligned_tokens_from_the_source_and_keeps_the_new_words_own_map(setup):
    A = [0, -1, 1, 2, 3]  # edited token 1 is new; the others are source tokens 0, 1, 2, 3
    before, after = StoreMaps(), StoreMaps()
    run(setup, Chain(before, Refine(A, STEPS, 1.0), after))
    for step in range(STEPS):
        for name in after.cross_layers:
            b, a = before.maps[step][name], after.maps[step][name]
            src, own, new = b[2 * N : 3 * N], b[3 * N :], a[3 * N :]
            torch.testing.assert_close(new[..., 1], own[..., 1], atol=0, rtol=0)
            torch.testing.assert_close(new[..., [0, 2, 3, 4]], src[..., [0, 1, 2, 3]], atol=1e-7, rtol=0)


def test_reweighting_by_one_changes_nothing_and_by_two_doubles_the_tokens_column(setup):
    _, plain = run(setup)
    _, same = run(setup, Reweight(2, 1.0, STEPS))
    torch.testing.assert_close(same, plain, atol=0, rtol=0)
    before, after = StoreMaps(), StoreMaps()
    _, doubled = run(setup, Chain(before, Reweight(2, 2.0, STEPS), after))
    assert (doubled - plain).abs().max() > 1e-3
    name = after.cross_layers[0]
    b, a = before.maps[0][name], after.maps[0][name]
    torch.testing.assert_close(a[3 * N :, :, 2], 2 * b[3 * N :, :, 2])
    torch.testing.assert_close(a[:, :, [0, 1, 3, 4]], b[:, :, [0, 1, 3, 4]])
    torch.testing.assert_close(a[: 3 * N], b[: 3 * N])


def test_local_blend_with_an_all_ones_mask_is_no_blend_and_with_all_zeros_returns_the_source(setup):
    source, plain = run(setup)
    everywhere = LocalBlend([3], [3], threshold=0.0)  # every normalised map value is > 0: all ones
    _, kept = run(setup, everywhere, blend=everywhere)
    torch.testing.assert_close(kept, plain, atol=0, rtol=0)
    nowhere = LocalBlend([3], [3], threshold=1.0)  # no value is > its image's maximum: all zeros
    source_again, edited = run(setup, nowhere, blend=nowhere)
    torch.testing.assert_close(edited, source_again, atol=0, rtol=0)
    torch.testing.assert_close(source_again, source, atol=0, rtol=0)
    # random weights give flat maps, all within 20% of their maximum: a high threshold cuts out a region
    partial = LocalBlend([3], [3], threshold=0.9, dilate=0)
    _, blended = run(setup, partial, blend=partial)
    m = partial.mask((8, 8))
    assert m.shape == (2, N, 1, 8, 8) and 0 < m.float().mean() < 1  # the last step's masks: neither all nor none
    assert (blended - plain).abs().max() > 1e-3


def test_word_maps_give_one_picture_per_step_and_layer_and_sum_to_one_over_tokens(setup):
    store = StoreMaps()
    run(setup, store)
    maps, names = word_maps(store, token=2, size=28)
    assert maps.shape == (STEPS, 4, 28, 28) and names == store.cross_layers
    total = sum(word_maps(store, token=j, size=28)[0] for j in range(L))
    torch.testing.assert_close(total, torch.ones_like(total))  # softmax rows, kept by bilinear upsampling
    with pytest.raises(ValueError, match="outside"):
        word_maps(store, token=L)


def test_the_refine_alignment_for_a_seven_to_a_thick_seven():
    assert align_tokens(["a", "seven"], ["a", "thick", "seven"]) == [0, -1, 1]
    pad = "<pad>"
    assert align_tokens(["a", "seven", pad, pad, pad], ["a", "thick", "seven", pad, pad]) == [0, -1, 1, 2, 3]
    assert align_tokens([5, 9], [5, 11, 9]) == [0, -1, 1]  # ids work as well as words
    assert swapped_tokens(["a", "thick", "seven"], ["a", "thin", "seven"]) == [1]
    with pytest.raises(ValueError, match="Refine"):
        swapped_tokens(["a", "seven"], ["a", "thick", "seven"])


def test_a_batch_not_in_the_layout_is_refused_with_the_layout_named():
    with pytest.raises(ValueError, match="uncond source"):
        edited_rows(torch.rand(6, 2, 4, 3), guided=True)
    source, edited = edited_rows(torch.arange(6.0), guided=False)
    assert source.tolist() == [0, 1, 2] and edited.tolist() == [3, 4, 5]
    with pytest.raises(ValueError, match="share of the sampling steps"):
        ReplaceCross(10, 1.5)


@pytest.mark.parametrize("threshold", [1.5, -0.1, "0.3"])
def test_a_local_blend_threshold_outside_0_to_1_is_refused_as_a_fraction_of_the_maps_maximum(threshold):
    with pytest.raises(ValueError, match="fraction of the map's maximum") as err:
        LocalBlend([3], [3], threshold=threshold)
    assert "sampling steps" not in str(err.value) and repr(threshold) in str(err.value)
