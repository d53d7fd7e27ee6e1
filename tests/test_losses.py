"""The course's diffusion losses share Algorithm 1's draws (`losses.noised_batch`) and the regression to the
target (`losses.prediction_loss`). Each is compared here with Algorithm 1 written out by hand, on tiny models,
to the bit: the same draws in the same order as before they shared the code."""

import torch

from diffusionlab.instructions import INSTRUCTION_VOCAB
from diffusionlab.losses import diffusion_loss, noised_batch
from diffusionlab.models.text_encoder import TextEncoderConfig, Tokenizer
from diffusionlab.models.unet import UNet, UNetConfig
from diffusionlab.pipelines.instruct import InstructModel, instruct_loss
from diffusionlab.pipelines.latent import TextToLatent, captioned_diffusion_loss
from diffusionlab.schedules import NoiseSchedule

SCHEDULE = NoiseSchedule(50)


def _nonzero(model):
    """A fresh UNet's last convolution is zero; give it weights so the outputs are not all 0."""
    unet = model.unet if hasattr(model, "unet") else model
    torch.nn.init.normal_(unet.out[-1].weight, std=0.1, generator=torch.Generator().manual_seed(1))
    return model


def _by_hand(schedule, x0, g, prediction):
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    a = schedule.alpha_bar[t].float().view(-1, 1, 1, 1)
    xt = a.sqrt() * x0 + (1 - a).sqrt() * eps  # eq. 4
    target = {"eps": eps, "x0": x0, "v": a.sqrt() * eps - (1 - a).sqrt() * x0}[prediction]
    return xt, t, eps, target


def test_noised_batch_is_eq_4_with_uniform_t():
    x0 = torch.randn(6, 1, 4, 4)
    xt, t, eps = noised_batch(SCHEDULE, x0, torch.Generator().manual_seed(0))
    xt2, t2, eps2, _ = _by_hand(SCHEDULE, x0, torch.Generator().manual_seed(0), "eps")
    assert torch.equal(t, t2) and torch.equal(eps, eps2) and torch.allclose(xt, xt2, atol=1e-6)


@torch.no_grad()
def test_diffusion_loss_is_algorithm_1():
    model = _nonzero(UNet(UNetConfig(image_size=8, channels=(8, 16), attention=(False, False))).eval())
    x0 = torch.randn(4, 1, 8, 8)
    for prediction in ("eps", "v"):
        loss = diffusion_loss(model, x0, None, torch.Generator().manual_seed(0), SCHEDULE, prediction)
        xt, t, _, target = _by_hand(SCHEDULE, x0, torch.Generator().manual_seed(0), prediction)
        torch.testing.assert_close(loss, (model(xt, t) - target).pow(2).mean())


def _text_parts(model_class, in_channels):
    unet = UNetConfig(in_channels=in_channels, out_channels=4, image_size=8, channels=(8, 16), attention=(False, True),
                      context_dim=16, heads=2)
    tokenizer = Tokenizer(INSTRUCTION_VOCAB)
    model = model_class(unet, TextEncoderConfig(vocab_size=len(tokenizer), width=16, heads=2, layers=1))
    return _nonzero(model.eval()), tokenizer


@torch.no_grad()
def test_captioned_diffusion_loss_is_algorithm_1_with_caption_dropout():
    model, tokenizer = _text_parts(TextToLatent, 4)
    z0 = torch.randn(4, 4, 8, 8)
    captions = ["a seven", "a thick two", "a one", "a three"]
    loss = captioned_diffusion_loss(model, z0, lambda g: captions, torch.Generator().manual_seed(0), SCHEDULE,
                                    tokenizer, p_uncond=0.5, prediction="v")
    g = torch.Generator().manual_seed(0)
    zt, t, _, target = _by_hand(SCHEDULE, z0, g, "v")
    drop = torch.rand(4, generator=g) < 0.5
    kept = ["" if d else c for c, d in zip(captions, drop.tolist())]
    torch.testing.assert_close(loss, (model(zt, t, tokenizer.encode(kept)) - target).pow(2).mean())


@torch.no_grad()
def test_instruct_loss_is_algorithm_1_with_conditioning_dropout():
    from diffusionlab.models.instruct import drop_conditions

    model, tokenizer = _text_parts(InstructModel, 8)
    z0, z_in = torch.randn(4, 4, 8, 8), torch.randn(4, 4, 8, 8)
    instructions = ["make it thicker", "turn it into a 3", "make it thinner", "turn it into a 7"]
    loss = instruct_loss(model, z0, z_in, instructions, torch.Generator().manual_seed(0), SCHEDULE, tokenizer,
                         p_drop=0.2, prediction="v")
    g = torch.Generator().manual_seed(0)
    zt, t, _, target = _by_hand(SCHEDULE, z0, g, "v")
    image, texts, _, _ = drop_conditions(z_in, instructions, 0.2, g)
    torch.testing.assert_close(loss, (model(zt, t, image, tokenizer.encode(texts)) - target).pow(2).mean())
