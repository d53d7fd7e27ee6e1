"""The image-conditioned UNet of InstructPix2Pix, made from a text-to-image UNet (lesson 9).

Brooks, Holynski & Efros 2022, "InstructPix2Pix: Learning to Follow Image Editing Instructions", sec. 3.2:
the model edits an image c_I by an instruction c_T. Its UNet reads the noisy latent z_t and the input
image's latent E(c_I) side by side, concatenated along the channels (the paper's notation; the code calls
the latent E(c_I) `image_latent`, or z_I in `pipelines.instruct`),

    eps_theta(cat([z_t, E(c_I)]), t, c_T)        input (B, C + C_I, h, w)

and starts from the text-to-image model: "we add additional input channels to the first convolutional
layer ... All available weights of the diffusion model are initialized from the pretrained checkpoints,
and weights that operate on the newly added input channels are initialized to zero." So at the start the
new model is the old one, whatever the input image (`add_image_channels`; the paper's ddpm_edit.py and
diffusers' train_instruct_pix2pix.py do the same).

Conditioning dropout (sec. 3.2.1), so that one network learns eps(z, c_I, c_T), eps(z, c_I, 0) and
eps(z, 0, 0) for the two guidance scales (`guidance.dual_cfg_combine`): for 5% of the examples the
instruction is dropped (the empty instruction ""), for 5% the image (a zero latent), for 5% both
(`drop_conditions`, with one uniform draw per example as diffusers does).

Instructions have words that captions do not ("make", "turn", "into"): `grow_token_embedding` gives the
lesson-7 text encoder rows for them, keeping the embeddings of the caption words.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .unet import UNet, UNetConfig

P_DROP = 0.05  # the paper's rate for each of: instruction only, image only, both


def add_image_channels(unet: UNet, image_channels: int) -> UNet:
    """A copy of `unet` whose first convolution takes `image_channels` more input channels, placed after the
    existing ones (input: cat([z_t, image_latent], dim=1)); their weights are zero, every other weight is
    copied, so the new UNet gives the old one's prediction for any image latent."""
    if not isinstance(image_channels, int) or image_channels < 1:
        raise ValueError(f"image_channels must be a positive integer (the input image latent's channels), "
                         f"got {image_channels!r}")
    old = unet.config
    new = UNet(UNetConfig(**{**old.__dict__, "in_channels": old.in_channels + image_channels}))
    state = copy.deepcopy(unet.state_dict())
    w = state["stem.weight"]  # (C_out, C_in, 3, 3)
    state["stem.weight"] = torch.cat([w, w.new_zeros(w.shape[0], image_channels, *w.shape[2:])], dim=1)
    new.load_state_dict(state)
    return new.to(w.device)


def drop_conditions(image_latents: torch.Tensor, instructions: list[str], p: float = P_DROP,
                    generator: torch.Generator | None = None):
    """Conditioning dropout for a training batch: one draw u ~ U[0, 1) per example,
        u < p        the instruction is dropped ("")
        p <= u < 2p  both are dropped
        2p <= u < 3p the image is dropped (its latent set to zero)
    Returns (image_latents, instructions, text_dropped (B,) bool, image_dropped (B,) bool); the inputs are
    not modified."""
    if not 0 <= p <= 1 / 3:
        raise ValueError(f"p is the rate of each of the three kinds of dropout, from 0 to 1/3, got {p!r}")
    B = image_latents.shape[0]
    if len(instructions) != B:
        raise ValueError(f"one instruction per image: {B} image latents and {len(instructions)} instructions")
    u = torch.rand(B, generator=generator, device=image_latents.device if generator is None else generator.device)
    u = u.to(image_latents.device)
    text_dropped = u < 2 * p
    image_dropped = (u >= p) & (u < 3 * p)
    mask = (~image_dropped).to(image_latents.dtype).view(B, *([1] * (image_latents.dim() - 1)))
    kept = ["" if d else s for s, d in zip(instructions, text_dropped.tolist())]
    return image_latents * mask, kept, text_dropped, image_dropped


def grow_token_embedding(embedding: nn.Embedding, vocab_size: int, generator: torch.Generator | None = None) -> nn.Embedding:
    """A copy of `embedding` with rows for `vocab_size` tokens: the old rows copied (the tokenizer keeps
    the old words' ids when the new words come after them), the new ones drawn as nn.Embedding draws them,
    N(0, 1). Set it as text_encoder.token_emb (and text_encoder.config.vocab_size = vocab_size)."""
    old = embedding.num_embeddings
    if vocab_size < old:
        raise ValueError(f"vocab_size {vocab_size} is smaller than the embedding's {old} rows: it can only grow")
    w = embedding.weight.detach()
    new_rows = torch.randn(vocab_size - old, w.shape[1], generator=generator, device=w.device if generator is None
                           else generator.device).to(w)
    return nn.Embedding.from_pretrained(torch.cat([w, new_rows]), freeze=False)
