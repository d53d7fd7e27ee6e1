"""The exercise checks of lesson 5, flow matching: each passes on the package's reference and fails on wrong
answers (the convention of CS180 and Lipman et al., a sign slip, a forgotten term), naming the exercise."""

import torch

from diffusionlab import checks, flow

import exercise_checks  # tests/exercise_checks.py: what every exercise check must do


def interpolate_other_convention(x0, eps, t):
    """CS180's convention (t = 0 is noise): x_t = (1 - t) eps + t x0."""
    return flow.interpolate(eps, x0, t)


def interpolate_scalar_t(x0, eps, t):
    """Uses the first t for every image instead of one t per image."""
    return (1 - t[0]) * x0 + t[0] * eps


def interpolate_ddpm_like(x0, eps, t):
    """sqrt weights, as in a variance-preserving path: not the straight line."""
    t = t.reshape(-1, 1, 1, 1)
    return (1 - t).sqrt() * x0 + t.sqrt() * eps


CASES = [
    (checks.check_interpolate, flow.interpolate,
     [interpolate_other_convention, interpolate_scalar_t, interpolate_ddpm_like]),
    (checks.check_velocity_target, flow.velocity_target,
     [lambda x0, eps: x0 - eps, lambda x0, eps: eps, lambda x0, eps: eps - x0.mean()]),
    (checks.check_euler_step, flow.euler_step,
     [lambda v, t, t_next, xt: xt + (t - t_next) * v,  # steps the wrong way: away from the data
      lambda v, t, t_next, xt: xt - t_next * v,
      lambda v, t, t_next, xt: xt + (t_next - t) * v.clamp(-1, 1)]),
    (checks.check_guided_velocity, flow.guided_velocity,
     [lambda u, c, w: c + w * (c - u), lambda u, c, w: u + w * (u - c), lambda u, c, w: w * c]),
]

test_reference_passes, test_wrong_answers_fail_naming_the_exercise_and_the_case, test_unfinished_exercise = (
    exercise_checks.contract_tests(CASES))


def test_a_correct_answer_written_differently_passes(capsys):
    checks.check_interpolate(lambda x0, eps, t: x0 + t[:, None, None, None] * (eps - x0))
    checks.check_euler_step(lambda v, t, t_next, xt: xt - (t - t_next) * v)
    assert capsys.readouterr().out.count("PASS ") == 2
