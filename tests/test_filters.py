import pytest
import torch

from diffusionlab.filters import gaussian_blur, gaussian_kernel1d


def test_kernel_is_normalised_and_symmetric():
    k = gaussian_kernel1d(1.5)
    assert len(k) == 2 * 5 + 1  # radius ceil(4.5) = 5
    assert k.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(k, k.flip(0))
    assert torch.equal(gaussian_kernel1d(0), torch.ones(1))


def test_blur_matches_scipy():
    from scipy.ndimage import gaussian_filter

    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    got = gaussian_blur(x, 1.2)
    # scipy's "mirror" border is torch's "reflect"; truncate=3 gives the same radius, ceil(3 sigma) = 4
    want = torch.stack([torch.from_numpy(gaussian_filter(im[0].double().numpy(), 1.2, mode="mirror", truncate=3.0))
                        for im in x])[:, None]
    assert torch.allclose(got.double(), want, atol=1e-5)


def test_blur_keeps_constants_and_shape_and_reduces_noise():
    c = torch.full((3, 2, 28, 28), 0.3)
    assert torch.allclose(gaussian_blur(c, 2.0), c, atol=1e-6)
    x = torch.randn(4, 1, 28, 28)
    assert gaussian_blur(x, 1.0).shape == x.shape
    assert gaussian_blur(x, 1.0).std() < 0.5 * x.std()
    assert torch.equal(gaussian_blur(x, 0), x)


def test_blur_bad_input():
    with pytest.raises(ValueError, match=r"sigma_px must be a finite number of pixels >= 0, got -1"):
        gaussian_blur(torch.zeros(1, 1, 28, 28), -1)
    with pytest.raises(ValueError, match=r"shape \(B, C, H, W\)"):
        gaussian_blur(torch.zeros(28, 28), 1.0)
    with pytest.raises(ValueError, match="too large"):
        gaussian_blur(torch.zeros(1, 1, 28, 28), 10.0)


def test_integer_images_are_refused_not_blurred_to_black():
    """The Gaussian weights (all < 1) cast to uint8 or long are 0: a 0..255 image came back all zeros."""
    with pytest.raises(ValueError, match="float tensor"):
        gaussian_blur(torch.full((1, 1, 28, 28), 200, dtype=torch.uint8), 1.0)
    with pytest.raises(ValueError, match="float tensor"):
        gaussian_blur(torch.full((1, 1, 28, 28), 2), 1.0)
