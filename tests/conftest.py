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


@pytest.fixture(scope="session")
def tiny_latent(tmp_path_factory):
    """copy_to(name) -> a new folder holding vae.pt and text.pt: a tiny VAE and latent text model, one training
    step each, for the tests of lessons 7-9's commands and pipelines. Trained once per test session."""
    import shutil

    from diffusionlab.models.text_encoder import TextEncoderConfig
    from diffusionlab.models.unet import UNetConfig
    from diffusionlab.models.vae import VAEConfig
    from diffusionlab.pipelines import latent

    src = tmp_path_factory.mktemp("tiny_latent")
    latent.train_vae(steps=1, batch_size=16, limit=32, recipe=latent.VAERecipe(config=VAEConfig(channels=(8, 8, 16))),
                     checkpoint=src / "vae.pt", progress=False)
    recipe = latent.TextRecipe(unet=UNetConfig(in_channels=4, out_channels=4, image_size=8, channels=(8, 16),
                                               attention=(False, True), context_dim=16, heads=2),
                               text=TextEncoderConfig(width=16, heads=2, layers=1))
    latent.train_text(steps=1, batch_size=16, limit=32, vae=src / "vae.pt", recipe=recipe, checkpoint=src / "text.pt",
                      progress=False)

    def copy_to(name):
        d = tmp_path_factory.mktemp(name)
        for file in ("vae.pt", "text.pt"):
            shutil.copy(src / file, d / file)
        return d

    return copy_to
