import math

import pytest
import torch

from diffusionlab.schedules import NoiseSchedule, cosine_betas, eps_from_x0, linear_betas, x0_from_eps


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


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("T", [2, 5, 10, 20, 1000])
def test_every_T_gives_a_valid_schedule(kind, T):
    """The linear schedule scaled by 1000 / T once had beta = 2 at T = 10 and alpha_bar = 0 at T = 20."""
    s = NoiseSchedule(T, kind)
    assert torch.all((s.betas > 0) & (s.betas < 1)), s.betas
    ab = s.alpha_bar
    assert torch.all((ab > 0) & (ab < 1)) and torch.all(ab[1:] < ab[:-1]), ab
    x0, eps = torch.randn(T, 1, 4, 4), torch.randn(T, 1, 4, 4)
    assert torch.isfinite(s.q_sample(x0, torch.arange(T), eps)).all()


def test_linear_unchanged_where_it_was_valid():
    """The cap at 0.999 only acts for T <= 20; from T = 21 the betas are Improved DDPM's scaled linear ones."""
    for T in (21, 50, 1000):
        scale = 1000 / T
        assert torch.allclose(linear_betas(T), torch.linspace(scale * 1e-4, scale * 0.02, T, dtype=torch.float64))


def test_bfloat16_inputs_use_float32_tables():
    """In bf16 alpha_bar_0 = 0.99996 rounds to 1 and x_0 would come back without noise."""
    s = NoiseSchedule(1000, "cosine")
    x0, eps = torch.randn(2, 1, 4, 4).bfloat16(), torch.randn(2, 1, 4, 4).bfloat16()
    t = torch.tensor([0, 1])
    xt = s.q_sample(x0, t, eps)
    assert xt.dtype == torch.float32
    assert torch.allclose(xt, s.q_sample(x0.float(), t, eps.float()), atol=1e-7)
    assert not torch.allclose(xt, x0.float(), atol=1e-3)


def test_x0_and_eps_from_eq4_invert_it():
    ab = 0.3
    x0, eps = torch.randn(2, 1, 4, 4, dtype=torch.float64), torch.randn(2, 1, 4, 4, dtype=torch.float64)
    xt = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
    assert torch.allclose(x0_from_eps(xt, eps, ab), x0) and torch.allclose(eps_from_x0(xt, x0, ab), eps)
    ab_t = torch.tensor([ab, ab], dtype=torch.float64).view(-1, 1, 1, 1)  # or per image, as a tensor
    assert torch.allclose(x0_from_eps(xt, eps, ab_t), x0) and torch.allclose(eps_from_x0(xt, x0, ab_t), eps)


def test_timesteps_that_would_be_misread_are_refused():
    """A float t (flow matching's time in [0, 1]) was truncated to step 0 without a word; a t of another batch
    size failed deep in broadcasting; v_target and to_x0_eps indexed out of range with an IndexError."""
    s = NoiseSchedule(10)
    x0, eps = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    with pytest.raises(ValueError, match="whole numbers 0..9.*flow matching"):
        s.q_sample(x0, torch.tensor([0.7, 0.2]), eps)
    with pytest.raises(ValueError, match="one per image: 2 images, got 3"):
        s.q_sample(x0, torch.tensor([3, 3, 3]), eps)
    with pytest.raises(ValueError, match=r"timestep out of range.*0\.\.9"):
        s.v_target(x0, torch.tensor([10, 10]), eps)
    with pytest.raises(ValueError, match=r"timestep out of range.*0\.\.9"):
        s.to_x0_eps("v", x0, x0, torch.tensor([-1, 2]))
    # one timestep for the whole batch, and a plain int, still work
    assert torch.equal(s.q_sample(x0, torch.tensor([3]), eps), s.q_sample(x0, torch.tensor([3, 3]), eps))
    assert torch.equal(s.q_sample(x0, 3, eps), s.q_sample(x0, torch.tensor([3, 3]), eps))
