"""Helpers for the tests on tiny models."""

import torch


def randomize(module, seed=0):
    """Give every parameter of `module` seeded random values (scale 0.3) and return it. A new UNet's output
    convolution and a new LoRA's up-projection start at zero, which would make many comparisons trivially true."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return module
