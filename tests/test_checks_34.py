"""The exercise checks of lessons 3 and 4: each passes on the package's reference and names the
exercise when given a wrong function or an unfinished one (NotImplementedError)."""

import pytest
import torch

from diffusionlab import checks, guidance, samplers
from diffusionlab.checks import ExerciseError


def not_done(*args):
    raise NotImplementedError()


def drop_inverted(y, p_uncond, null_class, generator=None):
    """Keeps a label with probability p_uncond instead of dropping it."""
    return guidance.drop_labels(y, 1 - p_uncond, null_class, generator)


def drop_to_zero(y, p_uncond, null_class, generator=None):
    """Drops at the right rate, but to class 0 instead of the null class."""
    return torch.where(guidance.drop_labels(y, p_uncond, null_class, generator) == null_class, 0, y)


def drop_other_draws(y, p_uncond, null_class, generator=None):
    """Correct, with other random draws than the reference's: must pass."""
    keep = torch.bernoulli(torch.full(y.shape, 1 - p_uncond), generator=generator).bool()
    return torch.where(keep, y, torch.full_like(y, null_class))


def ddim_step_no_noise_term(schedule, eps, t, t_prev, xt, eta, noise):
    """Forgets sigma in the direction term: sqrt(1 - alpha_bar_prev) instead of sqrt(1 - alpha_bar_prev - sigma^2)."""
    ab_t = schedule.alpha_bar[t]
    ab_prev = schedule.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
    x0 = (xt - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
    sigma = eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).sqrt()
    return ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps + sigma * noise, x0


CASES = [
    # check, reference, wrong answers
    (checks.check_drop_labels, guidance.drop_labels, [drop_inverted, drop_to_zero, lambda y, p, n, g=None: y]),
    (checks.check_cfg_combine, guidance.cfg_combine,
     [lambda u, c, w: c + w * (c - u), lambda u, c, w: u + w * (u - c)]),
    (checks.check_ddim_timesteps, lambda T, steps: samplers.ddim_timesteps(T, steps, "trailing"),
     [lambda T, steps: samplers.ddim_timesteps(T, steps, "leading"),
      lambda T, steps: [int(T - 1 - i * T / steps) for i in range(steps)],  # floor instead of round
      lambda T, steps: list(range(T - 1, -1, -(T // steps)))]),
    (checks.check_ddim_step, lambda s, eps, t, tp, xt, eta, noise: samplers.ddim_step(s, eps, t, tp, xt, eta, clip=False,
                                                                                       noise=noise),
     [ddim_step_no_noise_term, lambda s, eps, t, tp, xt, eta, noise: samplers.ddim_step(s, eps, t, tp, xt, eta, noise=noise)]),
]
IDS = [c[0].__name__ for c in CASES]


@pytest.mark.parametrize("check, reference, wrong", CASES, ids=IDS)
def test_reference_passes(check, reference, wrong, capsys):
    check(reference)
    assert capsys.readouterr().out.startswith("PASS ")


@pytest.mark.parametrize("check, reference, wrong", CASES, ids=IDS)
def test_wrong_answers_fail(check, reference, wrong):
    exercise = check.__name__.removeprefix("check_")
    for fn in wrong:
        with pytest.raises(ExerciseError, match=f"Exercise '{exercise}'"):
            check(fn)


@pytest.mark.parametrize("check, reference, wrong", CASES, ids=IDS)
def test_unfinished_exercise(check, reference, wrong):
    with pytest.raises(ExerciseError, match="not done yet"):
        check(not_done)


def test_other_random_draws_pass(capsys):
    checks.check_drop_labels(drop_other_draws)
    assert "PASS drop_labels" in capsys.readouterr().out


def test_timesteps_as_tensor_pass(capsys):
    checks.check_ddim_timesteps(lambda T, steps: torch.tensor(samplers.ddim_timesteps(T, steps)))
    assert "PASS ddim_timesteps" in capsys.readouterr().out


def test_drop_labels_messages():
    with pytest.raises(ExerciseError, match="only be replaced by the null class 10"):
        checks.check_drop_labels(drop_to_zero)
    with pytest.raises(ExerciseError, match="return a tensor of labels"):
        checks.check_drop_labels(lambda y, p, n, g=None: y.tolist())
