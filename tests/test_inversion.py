"""DDIM inversion (lesson 4) on data whose exact noise predictor is known.

For Gaussian data x0 ~ N(0, s^2 I), x_t = sqrt(ab) x0 + sqrt(1 - ab) eps is Gaussian too, and the best
noise estimate is E[eps | x_t] = sqrt(1 - ab) x_t / (ab s^2 + 1 - ab). The probability-flow ODE that DDIM
(eta = 0) discretises then just rescales: x_t = x0 sqrt(ab s^2 + 1 - ab) / s. So inversion must land on
that x_T, sampling must bring it back to x0, and both errors must shrink like 1/steps (first order).
"""

import pytest
import torch

from diffusionlab.samplers import ddim_invert, ddim_timesteps, sample
from diffusionlab.schedules import NoiseSchedule

S = 0.25  # data standard deviation: small enough that the sampler's clipping to [-1, 1] never acts


def gaussian_eps_fn(schedule):
    def eps_fn(x, t):
        ab = schedule.alpha_bar[t].to(x.dtype).view(-1, 1, 1, 1)
        return (1 - ab).sqrt() * x / (ab * S**2 + 1 - ab)

    return eps_fn


def errors(kind, steps):
    schedule = NoiseSchedule(1000, kind)
    eps_fn = gaussian_eps_fn(schedule)
    x0 = S * torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    xT = ddim_invert(eps_fn, x0, schedule, steps)
    ab = schedule.alpha_bar[-1]
    exact = x0 * (ab * S**2 + 1 - ab).sqrt() / S
    back = sample(eps_fn, x0.shape, schedule, "ddim", steps=steps, xT=xT, progress=False)
    return ((xT - exact).norm() / exact.norm()).item(), ((back - x0).norm() / x0.norm()).item()


# relative errors measured at 100 steps (noise, round trip): cosine 1.7 % and 4.5 %, linear 2.2 % and 7.5 %
@pytest.mark.parametrize("kind, inv_tol, rec_tol", [("cosine", 0.025, 0.06), ("linear", 0.03, 0.10)])
def test_round_trip_reconstructs(kind, inv_tol, rec_tol):
    inv_err, rec_err = errors(kind, 100)
    assert inv_err < inv_tol, inv_err  # the noise is the analytic x_T
    assert rec_err < rec_tol, rec_err  # and sampling from it gives back x0


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_errors_shrink_like_one_over_steps(kind):
    (inv_a, rec_a), (inv_b, rec_b) = errors(kind, 25), errors(kind, 50)
    assert 1.6 < inv_a / inv_b < 2.4 and 1.6 < rec_a / rec_b < 2.4, (inv_a, inv_b, rec_a, rec_b)


def test_trajectory_visits_the_sampler_timesteps_in_reverse():
    schedule = NoiseSchedule(1000)
    seen = []

    def eps_fn(x, t):
        seen.append(int(t[0]))
        return torch.zeros_like(x)

    x0 = torch.rand(2, 1, 28, 28) * 2 - 1
    xT, traj = ddim_invert(eps_fn, x0, schedule, 10, return_trajectory=True)
    assert seen == ddim_timesteps(1000, 10)[::-1]
    assert traj["t"] == seen and traj["xt"].shape == (11, 2, 1, 28, 28)
    assert torch.equal(traj["xt"][0], x0) and torch.equal(traj["xt"][-1], xT)
    # with eps = 0 the image is only scaled: x_t = sqrt(alpha_bar_t) x0
    assert torch.allclose(xT, schedule.alpha_bar[999].sqrt().float() * x0)
