"""LoRA (models/lora.py): it starts as the base model, trains only its own matrices, and merges back exactly."""

import pytest
import torch
from torch import nn

from diffusionlab.models.attention import attention_modules
from diffusionlab.models.lora import (LoRAConv2d, LoRALinear, add_conv_lora, add_lora, count_trainable, lora_parameters,
                                      merge_lora)
from diffusionlab.models.unet import UNet, UNetConfig
from tiny_models import randomize

CFG = UNetConfig(in_channels=4, out_channels=4, image_size=8, channels=(32, 64), attention=(True, True),
                 context_dim=32)


def _inputs():
    g = torch.Generator().manual_seed(3)
    return torch.randn(2, 4, 8, 8, generator=g), torch.tensor([5, 700]), torch.randn(2, 5, 32, generator=g)


def test_a_lora_layer_with_zero_B_is_the_base_layer_and_trains_only_A_and_B():
    base = nn.Linear(12, 7)
    lora = LoRALinear(base, rank=3, alpha=6, generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 5, 12)
    assert torch.equal(lora(x), base(x))
    assert lora.A.abs().sum() > 0 and lora.scale == 2.0
    lora(x).square().sum().backward()
    assert lora.B.grad.abs().sum() > 0  # B learns first (A's gradient is zero while B is)
    assert base.weight.grad is None and not base.weight.requires_grad


def test_lora_update_is_alpha_over_rank_B_A_x():
    lora = LoRALinear(nn.Linear(6, 5), rank=2, alpha=8)
    with torch.no_grad():
        lora.B.copy_(torch.randn(5, 2))
    x = torch.randn(3, 6)
    torch.testing.assert_close(lora(x) - lora.base(x), 4.0 * x @ (lora.B @ lora.A).T)


def test_add_lora_freezes_the_model_except_the_lora_matrices_and_merge_gives_the_same_output():
    model = randomize(UNet(CFG))
    x, t, ctx = _inputs()
    before = model(x, t, context=ctx)
    wrapped = add_lora(model, rank=4, alpha=8, generator=torch.Generator().manual_seed(0))  # scale 2
    assert len(wrapped) == 4 * len(attention_modules(model)) and "down.0.attn.cross_attn.to_k" in wrapped
    torch.testing.assert_close(model(x, t, context=ctx), before, atol=0, rtol=0)  # B = 0: the same model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith((".A", ".B")) for n in trainable)
    assert len(lora_parameters(model)) == len(trainable)
    # a training step moves only the LoRA matrices
    opt = torch.optim.SGD(lora_parameters(model), lr=0.1)
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    for _ in range(2):  # two steps: the first moves B only, the second A as well
        opt.zero_grad()
        model(x, t, context=ctx).square().mean().backward()
        opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)
    tuned = model(x, t, context=ctx)
    assert (tuned - before).abs().max() > 1e-4
    assert merge_lora(model) == len(wrapped)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(model(x, t, context=ctx), tuned, atol=1e-5, rtol=1e-5)


def test_lora_trainable_share_of_a_latent_text_unet_is_small_and_counted_exactly():
    model = UNet(CFG)
    total = count_trainable(model)[1]
    assert count_trainable(model) == (total, total)
    add_lora(model, rank=4)
    trainable, total_with_lora = count_trainable(model)
    # r (d_in + d_out) per projection: to_q and to_out map C -> C, to_k and to_v map D -> C, with D = C in
    # self-attention and D = context_dim in cross-attention; each level of width C has a block down and one up
    r = 4

    def per_module(C, D):
        return 2 * r * (C + C) + 2 * r * (D + C)

    expected = sum(2 * (per_module(C, C) + per_module(C, CFG.context_dim)) for C in CFG.channels)
    assert trainable == expected == total_with_lora - total
    assert trainable / total < 0.05


def test_cross_only_adapts_only_cross_attention_and_bad_input_is_refused():
    model = UNet(CFG)
    wrapped = add_lora(model, rank=2, cross_only=True)
    assert wrapped and all(".cross_attn." in n for n in wrapped)
    with pytest.raises(ValueError, match="merge_lora"):
        add_lora(model, rank=2, cross_only=True)
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(nn.Linear(4, 3), rank=4)
    with pytest.raises(ValueError, match="no cross-attention"):
        add_lora(UNet(UNetConfig(channels=(8, 16), attention=(False, True), image_size=8)), cross_only=True)


def test_a_conv_lora_is_the_base_convolution_plus_a_rank_r_update_that_merges_exactly():
    base = nn.Conv2d(6, 5, 3, stride=2, padding=1)
    lora = LoRAConv2d(base, rank=2, alpha=4, generator=torch.Generator().manual_seed(0))  # scale 2
    x = torch.randn(3, 6, 9, 9)
    assert torch.equal(lora(x), base(x))  # B = 0: the base convolution
    with torch.no_grad():
        lora.B.copy_(torch.randn(5, 2))
    # the update is a convolution with the rank-r kernel B A, (c_out, c_in, 3, 3)
    kernel = 2.0 * torch.einsum("or,rikl->oikl", lora.B, lora.A)
    torch.testing.assert_close(lora(x) - base(x), nn.functional.conv2d(x, kernel, None, 2, 1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lora.merged()(x), lora(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError, match="nn.Conv2d"):
        LoRAConv2d(nn.Linear(3, 3))


def test_conv_lora_adapts_every_3x3_convolution_and_merges_to_the_same_unet():
    model = randomize(UNet(CFG))
    x, t, ctx = _inputs()
    add_lora(model, rank=2, generator=torch.Generator().manual_seed(0))
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    wrapped = add_conv_lora(model, rank=2, generator=torch.Generator().manual_seed(1))
    assert len(wrapped) == len(convs) and "stem" in wrapped
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert all(n.endswith((".A", ".B")) for n in trainable) and len(lora_parameters(model)) == len(trainable)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRAConv2d):
                m.B.normal_()
    tuned = model(x, t, context=ctx)
    assert merge_lora(model) == len(wrapped) + len(attention_modules(model)) * 4
    assert not any(isinstance(m, (LoRALinear, LoRAConv2d)) for m in model.modules())
    torch.testing.assert_close(model(x, t, context=ctx), tuned, atol=1e-4, rtol=1e-4)
