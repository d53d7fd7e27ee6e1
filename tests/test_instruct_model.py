"""InstructPix2Pix's model side (lesson 9): the dual guidance (guidance.py), the zero-initialised image
channels and conditioning dropout (models/instruct.py), on tiny random networks."""

import pytest
import torch

from diffusionlab.guidance import dual_cfg_combine, instruct_guided_eps
from diffusionlab.models.instruct import (
    add_image_channels,
    drop_conditions,
    grow_token_embedding,
)
from diffusionlab.models.unet import UNet, UNetConfig
from diffusionlab.schedules import NoiseSchedule
from tiny_models import randomize

C, C_I, S, L, D = 4, 4, 8, 5, 6  # latent channels, image-latent channels, latent size, tokens, token width


@pytest.fixture(scope="module")
def text_unet():
    cfg = UNetConfig(in_channels=C, out_channels=C, image_size=S, channels=(8, 16), attention=(False, True),
                     context_dim=D, heads=2)
    return randomize(UNet(cfg)).eval()


def _inputs(B=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, C, S, S, generator=g), torch.randint(0, 1000, (B,), generator=g),
            torch.randn(B, C_I, S, S, generator=g), torch.randn(B, L, D, generator=g), torch.randn(B, L, D, generator=g))


# ---------------------------------------------------------------- dual guidance


def test_dual_combine_limits():
    g = torch.Generator().manual_seed(0)
    e00, eI, eIT = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    torch.testing.assert_close(dual_cfg_combine(e00, eI, eIT, 1.0, 1.0), eIT)  # fully conditional
    torch.testing.assert_close(dual_cfg_combine(e00, eI, eIT, 0.0, 0.0), e00)  # unconditional
    torch.testing.assert_close(dual_cfg_combine(e00, eI, eIT, 1.0, 0.0), eI)  # image only
    # s_T = 0: the instruction's prediction has no effect, whatever it is
    torch.testing.assert_close(dual_cfg_combine(e00, eI, eIT, 1.7, 0.0), dual_cfg_combine(e00, eI, -5 * eIT, 1.7, 0.0))
    # eq. 3 written out for other scales
    torch.testing.assert_close(dual_cfg_combine(e00, eI, eIT, 1.5, 7.0), e00 + 1.5 * (eI - e00) + 7.0 * (eIT - eI))


@pytest.mark.parametrize("s_I, s_T", [(-0.1, 1.0), (1.0, 21.0), (float("nan"), 1.0), (1.0, "7")])
def test_dual_scales_out_of_range_raise(s_I, s_T):
    x = torch.zeros(1)
    with pytest.raises(ValueError, match="must be a number from 0"):
        dual_cfg_combine(x, x, x, s_I, s_T)


def test_instruct_guided_eps_on_a_unet(text_unet):
    """The eps_fn's three rows are the predictions of eq. 3: check against separate calls; s_T = 0 makes
    the instruction irrelevant; s_I = s_T = 1 is the conditional prediction; a negative instruction takes
    the place of the empty one."""
    unet = randomize(add_image_channels(text_unet, C_I), seed=2)  # non-zero image weights: c_I matters
    schedule = NoiseSchedule(1000)
    z, t, c_I, ctx, empty = _inputs()
    with torch.no_grad():
        def e(img, c):
            return unet(torch.cat([z, img], 1), t, context=c)
        e00, eI, eIT = e(torch.zeros_like(c_I), empty), e(c_I, empty), e(c_I, ctx)
        got = instruct_guided_eps(unet, schedule, "eps", c_I, ctx, empty, 1.5, 4.0)(z, t)
        torch.testing.assert_close(got, e00 + 1.5 * (eI - e00) + 4.0 * (eIT - eI), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(instruct_guided_eps(unet, schedule, "eps", c_I, ctx, empty, 1.0, 1.0)(z, t), eIT,
                                   atol=1e-5, rtol=1e-5)
        other = torch.randn(ctx.shape, generator=torch.Generator().manual_seed(5))
        no_text = instruct_guided_eps(unet, schedule, "eps", c_I, ctx, empty, 1.5, 0.0)(z, t)
        torch.testing.assert_close(instruct_guided_eps(unet, schedule, "eps", c_I, other, empty, 1.5, 0.0)(z, t), no_text)
        assert (got - no_text).abs().max() > 1e-3  # with s_T > 0 the instruction does matter
        negative = other
        n00, nI = e(torch.zeros_like(c_I), negative), e(c_I, negative)
        torch.testing.assert_close(instruct_guided_eps(unet, schedule, "eps", c_I, ctx, negative, 1.5, 4.0)(z, t),
                                   n00 + 1.5 * (nI - n00) + 4.0 * (eIT - nI), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- the image channels


def test_new_channels_start_at_zero_so_the_model_equals_the_text_model(text_unet):
    unet = add_image_channels(text_unet, C_I)
    assert unet.config.in_channels == C + C_I and text_unet.config.in_channels == C
    z, t, c_I, ctx, _ = _inputs()
    with torch.no_grad():
        old = text_unet(z, t, context=ctx)
        assert old.abs().max() > 1e-3  # a random, non-trivial output
        for image in (c_I, 10 * torch.randn_like(c_I), torch.zeros_like(c_I)):
            torch.testing.assert_close(unet(torch.cat([z, image], 1), t, context=ctx), old, atol=1e-5, rtol=1e-5)
    # the weights are copies, not shared: training the new model leaves the text model alone
    assert unet.stem.weight.data_ptr() != text_unet.stem.weight.data_ptr()
    torch.testing.assert_close(unet.stem.weight[:, :C], text_unet.stem.weight)
    assert unet.stem.weight[:, C:].abs().max() == 0


def test_add_image_channels_rejects_a_bad_count(text_unet):
    with pytest.raises(ValueError, match="image_channels"):
        add_image_channels(text_unet, 0)


# ---------------------------------------------------------------- conditioning dropout


def test_drop_conditions_rates_and_exactness():
    B = 40_000
    g = torch.Generator().manual_seed(0)
    images = torch.randn(B, C_I, 2, 2, generator=g) + 3  # no zero rows by chance
    texts = [f"make it a {i % 10}" for i in range(B)]
    out, kept, text_dropped, image_dropped = drop_conditions(images, texts, 0.05, torch.Generator().manual_seed(1))
    only_text = (text_dropped & ~image_dropped).float().mean().item()
    only_image = (image_dropped & ~text_dropped).float().mean().item()
    both = (text_dropped & image_dropped).float().mean().item()
    sd = (0.05 * 0.95 / B) ** 0.5
    for rate in (only_text, only_image, both):
        assert abs(rate - 0.05) < 4 * sd
    # exact: dropped images are zero latents, kept ones untouched; dropped texts are the empty instruction
    assert torch.equal(out[image_dropped], torch.zeros_like(out[image_dropped]))
    assert torch.equal(out[~image_dropped], images[~image_dropped])
    assert all((k == "") == d for k, d in zip(kept, text_dropped.tolist()))
    assert all(k == s for k, s, d in zip(kept, texts, text_dropped.tolist()) if not d)
    # reproducible with a generator, and the input left alone
    again = drop_conditions(images, texts, 0.05, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], out) and again[1] == kept
    assert texts[0] == "make it a 0" and (images != 0).all()


def test_drop_conditions_checks_its_arguments():
    with pytest.raises(ValueError, match="one instruction per image"):
        drop_conditions(torch.zeros(3, 1, 2, 2), ["a", "b"])
    with pytest.raises(ValueError, match="from 0 to 1/3"):
        drop_conditions(torch.zeros(2, 1, 2, 2), ["a", "b"], p=0.5)


def test_grow_token_embedding_keeps_the_old_words():
    old = torch.nn.Embedding(10, 6)
    new = grow_token_embedding(old, 14, torch.Generator().manual_seed(0))
    assert new.num_embeddings == 14
    ids = torch.arange(10)
    torch.testing.assert_close(new(ids), old(ids))
    assert new.weight.requires_grad and new.weight[10:].std() > 0.3
    with pytest.raises(ValueError, match="only grow"):
        grow_token_embedding(old, 5)
