import os

# Notebooks and lessons run in fast mode under pytest, also on a machine with a GPU: the stored outputs
# were made in fast mode, and CI must stay short. The Jupyter kernels that nbval starts inherit this.
os.environ.setdefault("DIFFUSIONLAB_MODE", "fast")

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(2)


@pytest.fixture
def tiny_config():
    from diffusionlab.models.unet import UNetConfig

    return UNetConfig(channels=(8, 16), attention=(False, True), num_classes=10, image_size=28)
