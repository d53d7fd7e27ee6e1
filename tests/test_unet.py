import pytest
import torch

from diffusionlab.models.unet import UNet, UNetConfig


@pytest.mark.parametrize("kwargs", [
    dict(time_conditioning=False),
    dict(),
    dict(num_classes=10),
    dict(num_classes=10, attention=(False, True)),
])
def test_output_shape(kwargs):
    model = UNet(UNetConfig(channels=(8, 16), attention=kwargs.pop("attention", (False, False)), **kwargs))
    x = torch.randn(3, 1, 28, 28)
    t = torch.tensor([0, 500, 999])
    y = torch.tensor([0, 5, 10]) if model.config.num_classes else None
    out = model(x, t, y) if model.config.time_conditioning else model(x)
    assert out.shape == x.shape


def test_extra_input_channels_and_cross_attention():
    """Room for the later lessons: a concatenated conditioning image and text tokens."""
    cfg = UNetConfig(in_channels=2, out_channels=1, image_size=16, channels=(8, 16), attention=(False, True),
                     context_dim=12)
    model = UNet(cfg)
    x = torch.randn(2, 2, 16, 16)
    out = model(x, torch.tensor([3, 4]), context=torch.randn(2, 5, 12))
    assert out.shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="pass context"):
        model(x, torch.tensor([3, 4]))


def test_no_batchnorm_and_samples_independent_of_batch(tiny_config):
    model = UNet(tiny_config).eval()
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    # make the output non-trivial (the last conv starts at zero)
    torch.nn.init.normal_(model.out[-1].weight, std=0.1)
    x, t, y = torch.randn(4, 1, 28, 28), torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 3, 10])
    with torch.no_grad():
        alone = model(x[:1], t[:1], y[:1])
        together = model(x, t, y)[:1]
    assert torch.allclose(alone, together, atol=1e-5)


def test_bad_inputs(tiny_config):
    model = UNet(tiny_config)
    x = torch.randn(2, 1, 28, 28)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 28, 28\), got \(2, 3, 28, 28\)"):
        model(torch.randn(2, 3, 28, 28), torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="time-conditioned"):
        model(x)
    with pytest.raises(ValueError, match=r"t must have shape \(2,\)"):
        model(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match=r"class labels must be in 0..10"):
        model(x, torch.tensor([1, 2]), torch.tensor([3, 11]))
    with pytest.raises(ValueError, match="divisible by groups"):
        UNetConfig(channels=(12, 16), attention=(False, False))
    with pytest.raises(ValueError, match="one flag per level"):
        UNetConfig(channels=(8, 16), attention=(False,))


@pytest.fixture
def model(tiny_config):
    """A UNet whose output is not zero (a fresh UNet's last convolution is zero, so it outputs exactly 0)."""
    m = UNet(tiny_config).eval()
    torch.nn.init.normal_(m.out[-1].weight, std=0.1)
    return m


@torch.no_grad()
def test_scalar_t_broadcasts(model):
    x = torch.randn(2, 1, 28, 28)
    y = torch.tensor([1, 2])
    out = model(x, torch.tensor(5), y)
    assert torch.allclose(out, model(x, torch.tensor([5, 5]), y), atol=1e-6)
    assert not torch.allclose(out, model(x, torch.tensor([900, 900]), y), atol=1e-3)  # t is not ignored


@torch.no_grad()
def test_output_depends_on_t_and_y(model):
    """Fails if the time or the class conditioning is cut (for example the embedding replaced by zeros)."""
    x = torch.randn(1, 1, 28, 28).expand(4, -1, -1, -1)
    out = model(x, torch.tensor([5, 900, 5, 5]), torch.tensor([1, 1, 2, 10]))
    scale = out[0].abs().mean()
    assert (out[1] - out[0]).abs().mean() > 0.01 * scale  # t = 5 and t = 900
    assert (out[2] - out[0]).abs().mean() > 0.01 * scale  # class 1 and class 2
    assert (out[3] - out[0]).abs().mean() > 0.01 * scale  # class 1 and the null class


@torch.no_grad()
def test_conditioning_the_model_cannot_read_is_refused():
    """A label given to an unconditional UNet, or text tokens to one without cross-attention, were silently
    ignored (the output was the unconditional one); a float or list y failed inside nn.Embedding."""
    plain = UNet(UNetConfig(channels=(8, 16), attention=(False, True)))
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="no class conditioning"):
        plain(x, t, torch.tensor([3, 4]))
    with pytest.raises(ValueError, match="no cross-attention"):
        plain(x, t, context=torch.randn(2, 5, 12))
    cond = UNet(UNetConfig(channels=(8, 16), attention=(False, True), num_classes=10))
    with pytest.raises(ValueError, match="must be integers"):
        cond(x, t, torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(cond(x, t, [1, 2]), cond(x, t, torch.tensor([1, 2])))  # a list of labels is fine
