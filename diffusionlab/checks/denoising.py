"""The exercise checks of lesson 1, denoising as a learning problem."""

from __future__ import annotations

from typing import Callable

import torch

from ..losses import add_noise, denoiser_loss
from ..models.unet import ResBlock, UNet, UNetConfig, UpBlock
from ..utils import make_generator
from .common import compare, load_reference_weights, others_as_references, seeded


def check_add_noise(student_fn: Callable) -> None:
    """Lesson 1. student_fn(x, sigma, generator) -> x + sigma * eps with eps = torch.randn(x.shape, generator=...)."""
    cases = [lambda s=s, seed=seed: (seeded(seed, 2, 1, 28, 28), s, make_generator(seed))
             for s, seed in ((0.0, 1), (0.2, 2), (0.5, 3), (1.0, 4))]
    compare("add_noise", student_fn, add_noise, cases)


def _random_resblock(c_in: int, c_out: int, seed: int, groups: int = 8):
    """A `unet.ResBlock` without embedding (lesson 1's), every parameter random (norms included)."""
    block = ResBlock(c_in, c_out, None, groups)
    g = make_generator(seed)
    with torch.no_grad():
        for name, p in block.named_parameters():
            scale = 1.0 if name.startswith("norm") and name.endswith("weight") else 0.0  # GroupNorm scales near 1
            p.copy_(scale + 0.1 * torch.randn(p.shape, generator=g))
    return block


def check_res_block(student_class: type) -> None:
    """Lesson 1. student_class(c_in, c_out, groups) is a residual block with the parameter names of
    `unet.ResBlock` (norm1, conv1, norm2, conv2, skip) whose forward(x) is checked with the same weights."""

    def run(block_class):
        def fn(c_in, c_out, seed):
            reference = _random_resblock(c_in, c_out, seed)
            x = seeded(seed + 100, 2, c_in, 8, 8)
            if block_class is None:
                return reference(x, None)
            block = block_class(c_in, c_out, 8)
            load_reference_weights(block, reference, "res_block")
            return block(x)

        return fn

    cases = [lambda c=c, seed=seed: (*c, seed) for c, seed in (((16, 16), 1), ((8, 16), 2), ((32, 16), 3))]
    with torch.no_grad(), torch.random.fork_rng():  # building blocks draws initial weights: keep the notebook's RNG
        compare("res_block", run(student_class), run(None), cases)


def _random_parameters(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter of `module` random (GroupNorm scales near 1, the rest near 0), from `seed`."""
    g = make_generator(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            scale = 1.0 if ".norm" in "." + name and name.endswith("weight") else 0.0
            p.copy_(scale + 0.1 * torch.randn(p.shape, generator=g))
    return module


def check_up_block(student_class: type) -> None:
    """Lesson 1. student_class(c_in, c_skip, c_out, groups) is a UNet up block: forward(h, skip) upsamples h
    (B, c_in, H, W) to 2H x 2W (nearest neighbour), concatenates skip (B, c_skip, 2H, 2W) after it along the
    channels and applies its residual block `block` (a `unet.ResBlock`). Compared with `unet.UpBlock`, with the
    same random weights."""

    def run(block_class):
        def fn(c_in, c_skip, c_out, size, seed):
            reference = _random_parameters(UpBlock(c_in, c_skip, c_out, None, 8), seed)
            h, skip = seeded(seed + 100, 2, c_in, size, size), seeded(seed + 200, 2, c_skip, 2 * size, 2 * size)
            if block_class is None:
                return reference(h, skip)
            block = block_class(c_in, c_skip, c_out, 8)
            load_reference_weights(block, reference, "up_block")
            return block(h, skip)

        return fn

    cases = [lambda c=c, seed=seed: (*c, seed) for c, seed in (((32, 16, 16, 4), 1), ((16, 16, 16, 7), 2),
                                                               ((64, 32, 32, 2), 3))]
    with torch.no_grad(), torch.random.fork_rng():  # building blocks draws initial weights: keep the notebook's RNG
        compare("up_block", run(student_class), run(None), cases)


def check_denoiser_loss(student_fn: Callable) -> None:
    """Lesson 1. student_fn(model, x0, y, generator, sigma) -> the mean squared error ||model(z) - x0||^2,
    z = add_noise(x0, sigma, generator) (compared with `losses.denoiser_loss`). If it calls the notebook's
    `add_noise`, the course's is used during the check: this check tests the loss alone."""
    with torch.random.fork_rng():  # fixed weights, whatever ran before, and the notebook's RNG left alone
        torch.manual_seed(0)
        model = UNet(UNetConfig(channels=(8, 16), attention=(False, False), time_conditioning=False)).eval()
        torch.nn.init.normal_(model.out[-1].weight, std=0.1)  # not the all-zero start
    cases = [lambda s=s, seed=seed: (model, seeded(seed, 4, 1, 28, 28).clamp(-1, 1), None, make_generator(seed), s)
             for s, seed in ((0.5, 1), (0.2, 2), (1.0, 3))]
    def reference(model, x0, y, generator, sigma):
        return denoiser_loss(model, x0, y, generator, sigma=sigma)

    with torch.no_grad(), others_as_references(student_fn, add_noise=add_noise):
        compare("denoiser_loss", student_fn, reference, cases)
