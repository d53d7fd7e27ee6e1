import pytest
import torch

from diffusionlab.utils import course_mode, get_device, make_generator, seed_everything


def test_seed_everything_reproducible():
    g1 = seed_everything(3)
    a = torch.randn(3), torch.randn(3, generator=g1)
    g2 = seed_everything(3)
    b = torch.randn(3), torch.randn(3, generator=g2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert make_generator(None) is None


def test_get_device():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device().type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU is available"):
            get_device("cuda")


def test_course_mode(monkeypatch):
    monkeypatch.setenv("DIFFUSIONLAB_MODE", "full")
    assert course_mode() == "full"
    monkeypatch.setenv("DIFFUSIONLAB_MODE", "FAST")
    assert course_mode() == "fast"
    monkeypatch.setenv("DIFFUSIONLAB_MODE", "turbo")
    with pytest.raises(ValueError, match="'fast' or 'full'"):
        course_mode()
