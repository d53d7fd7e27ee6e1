"""Attention written out (models/attention.py): against torch's own, and the hook that lessons 8-9 steer it by."""

import pytest
import torch
import torch.nn.functional as F

from diffusionlab.models.attention import Attention, AttentionBlock, attention_modules, set_attention_hook
from diffusionlab.models.unet import UNet, UNetConfig
from tiny_models import randomize


def test_self_attention_matches_torch_scaled_dot_product_attention():
    attn = randomize(Attention(16, heads=4))
    x = torch.randn(2, 9, 16)
    q, k, v = (layer(x).view(2, 9, 4, 4).transpose(1, 2) for layer in (attn.to_q, attn.to_k, attn.to_v))
    expected = attn.to_out(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 9, 16))
    torch.testing.assert_close(attn(x), expected, atol=1e-6, rtol=1e-5)


def test_cross_attention_to_a_single_token_returns_its_value_projection():
    """With one key, softmax gives it weight 1 at every position: the output is to_out(to_v(token))."""
    attn = randomize(Attention(16, heads=2, context_dim=6))
    x, token = torch.randn(3, 25, 16), torch.randn(3, 1, 6)
    expected = attn.to_out(attn.to_v(token)).expand(3, 25, 16)
    torch.testing.assert_close(attn(x, token), expected, atol=1e-6, rtol=1e-5)


def test_cross_attention_without_context_says_what_to_pass():
    with pytest.raises(ValueError, match="pass context"):
        Attention(16, heads=2, context_dim=6)(torch.randn(1, 4, 16))


def test_a_hook_sees_every_map_and_returning_none_or_the_same_map_changes_nothing():
    cfg = UNetConfig(channels=(8, 16), attention=(True, True), image_size=16, context_dim=6)
    model = randomize(UNet(cfg))
    x, t, ctx = torch.randn(2, 1, 16, 16), torch.tensor([10, 500]), torch.randn(2, 3, 6)
    plain = model(x, t, context=ctx)
    seen = []

    def store(probs, module):
        seen.append((module.name, module.is_cross, tuple(probs.shape)))
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))  # rows of a softmax
        return probs

    set_attention_hook(model, store)
    torch.testing.assert_close(model(x, t, context=ctx), plain)
    names = [m.name for m in attention_modules(model)]
    assert [s[0] for s in seen] == names and len(set(names)) == len(names) == 2 * 4  # self + cross in 2 down and 2 up blocks
    assert ("down.0.attn.cross_attn", True, (2, 4, 16 * 16, 3)) in seen  # (B, heads, H*W, tokens)
    set_attention_hook(model, lambda probs, module: None)
    torch.testing.assert_close(model(x, t, context=ctx), plain)
    set_attention_hook(model, None)
    assert all(m.hook is None for m in attention_modules(model))


def test_a_hook_that_replaces_the_cross_attention_maps_changes_the_output():
    block = randomize(AttentionBlock(8, heads=2, groups=4, context_dim=5))
    x, ctx = torch.randn(1, 8, 4, 4), torch.randn(1, 3, 5)
    plain = block(x, ctx)

    def only_first_token(probs, module):
        if module.is_cross:
            out = torch.zeros_like(probs)
            out[..., 0] = 1
            return out

    set_attention_hook(block, only_first_token)
    changed = block(x, ctx)
    assert not torch.allclose(changed, plain)
    # reading only token 0 is the same as a context of that one token
    set_attention_hook(block, None)
    torch.testing.assert_close(changed, block(x, ctx[:, :1]), atol=1e-6, rtol=1e-5)


def test_a_hook_returning_a_wrong_shape_is_refused():
    attn = Attention(8, heads=2)
    attn.hook = lambda probs, module: probs[..., :1]
    with pytest.raises(ValueError, match="shape"):
        attn(torch.randn(1, 4, 8))


def test_context_of_the_wrong_shape_says_what_is_expected():
    """Text tokens of the wrong width or batch failed inside torch ("mat1 and mat2 shapes cannot be multiplied",
    "shape '[2, 5, 4, 4]' is invalid for input of size 80")."""
    attn = Attention(16, 4, context_dim=12)
    x = torch.randn(2, 9, 16)
    for bad in (torch.randn(2, 5, 10), torch.randn(1, 5, 12), torch.randn(5, 12)):
        with pytest.raises(ValueError, match=r"needs context \(B=2, L, 12\)"):
            attn(x, bad)
    assert attn(x, torch.randn(2, 5, 12)).shape == (2, 9, 16)
