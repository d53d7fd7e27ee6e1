import math

import pytest
import torch

from diffusionlab.schedules import NoiseSchedule, cosine_betas, linear_betas


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_alpha_bar_strictly_decreasing_in_unit_interval(kind):
    s = NoiseSchedule(1000, kind)
    ab = s.alpha_bar
    assert torch.all(ab[1:] < ab[:-1])
    assert 0 < ab[-1] < 0.01 and 0.99 < ab[0] < 1


def test_linear_matches_ddpm_paper():
    b = linear_betas(1000)
    assert math.isclose(b[0].item(), 1e-4) and math.isclose(b[-1].item(), 0.02)


def test_cosine_matches_closed_form():
    T, s = 1000, 0.008
    ab = NoiseSchedule(T, "cosine").alpha_bar
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    for t in [0, 10, 500, 900]:
        assert math.isclose(ab[t].item(), f(t + 1) / f(0), rel_tol=1e-9)


def test_q_sample_closed_form():
    s = NoiseSchedule(1000, "linear")
    x0, eps = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    t = torch.tensor([0, 10, 500, 999])
    xt = s.q_sample(x0, t, eps)
    for i in range(4):
        a = torch.prod(1 - s.betas[: t[i] + 1]).float()
        assert torch.allclose(xt[i], a.sqrt() * x0[i] + (1 - a).sqrt() * eps[i], atol=1e-5)


def test_q_sample_statistics():
    s = NoiseSchedule(1000, "cosine")
    x0 = torch.ones(20000, 1, 1, 1)
    t = torch.full((20000,), 300)
    xt = s.q_sample(x0, t, torch.randn_like(x0))
    a = s.alpha_bar[300].item()
    assert abs(xt.mean().item() - math.sqrt(a)) < 0.02
    assert abs(xt.var().item() - (1 - a)) < 0.02


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_prediction_conversions_round_trip(prediction):
    s = NoiseSchedule(1000, "cosine")
    x0, eps = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8)
    t = torch.tensor([5, 400, 990])
    xt = s.q_sample(x0, t, eps)
    x0_hat, eps_hat = s.to_x0_eps(prediction, s.target(prediction, x0, t, eps), xt, t)
    assert torch.allclose(x0_hat, x0, atol=1e-3) and torch.allclose(eps_hat, eps, atol=1e-3)


def test_bad_inputs():
    s = NoiseSchedule(100)
    with pytest.raises(ValueError, match=r"timestep out of range.*0\.\.99"):
        s.q_sample(torch.zeros(1, 1, 4, 4), torch.tensor([100]), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="same shape"):
        s.q_sample(torch.zeros(1, 1, 4, 4), torch.tensor([1]), torch.zeros(1, 1, 5, 5))
    with pytest.raises(ValueError, match="'linear' or 'cosine'"):
        NoiseSchedule(100, "quadratic")
    with pytest.raises(ValueError, match="prediction must be one of"):
        s.target("score", torch.zeros(1), torch.tensor([0]), torch.zeros(1))
    with pytest.raises(ValueError, match="positive integer"):
        NoiseSchedule(0)
