"""A wrong answer that is one of the mistakes students make is told which one, in the lesson's words, after the
usual "values differ" (the checks' `mistakes=`); an answer that is wrong in another way gets no such guess."""

import math

import pytest

from diffusionlab import checks, editing, flow
from diffusionlab.checks import ExerciseError


def q_sample_with(table, root=True):
    def q_sample(schedule, x0, t, eps):
        a = getattr(schedule, table)[t].to(x0.dtype).view(-1, 1, 1, 1)
        return (a.sqrt() * x0 + (1 - a).sqrt() * eps) if root else (a * x0 + (1 - a) * eps)
    return q_sample


def ddpm_step_with(clip=1.0, variance="beta tilde", table_beta=False):
    """Algorithm 2 in Python floats, with one of the mistakes."""
    def ddpm_step(schedule, eps, t, t_prev, xt, noise):
        ab_t = schedule.alpha_bar[t].item()
        ab_prev = schedule.alpha_bar[t_prev].item() if t_prev >= 0 else 1.0
        beta = schedule.betas[t].item() if table_beta else 1 - ab_t / ab_prev
        x0 = (xt - math.sqrt(1 - ab_t) * eps) / math.sqrt(ab_t)
        x0 = x0.clamp(-clip, clip) if clip else x0
        mean = math.sqrt(ab_prev) * beta / (1 - ab_t) * x0 + math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab_t) * xt
        if t_prev < 0:
            return mean
        var = (1 - ab_prev) / (1 - ab_t) * beta if variance == "beta tilde" else beta
        return mean + math.sqrt(var) * noise
    return ddpm_step


WRONG = [  # check, a mistake, the words its hint must contain
    (checks.check_q_sample, q_sample_with("alphas"), "alpha_t (schedule.alphas) where the formula has alpha_bar_t"),
    (checks.check_q_sample, q_sample_with("alpha_bar", root=False), "square roots"),
    (checks.check_ddpm_step, ddpm_step_with(clip=None), "x0_hat is not clipped to [-1, 1]"),
    (checks.check_ddpm_step, ddpm_step_with(variance="beta"), "variance beta instead of beta tilde"),
    (checks.check_ddpm_step, ddpm_step_with(table_beta=True), "schedule.betas[t]"),
    (checks.check_cfg_combine, lambda u, c, w: c + w * (u - c), "the two predictions swapped"),
    (checks.check_cfg_combine, lambda u, c, w: (1 + w) * c - w * u, "Ho & Salimans"),
    (checks.check_guided_velocity, lambda u, c, w: c + w * (u - c), "the two predictions swapped"),
    (checks.check_euler_step, lambda v, t, t_next, xt: xt + (t - t_next) * v, "wrong sign"),
    (checks.check_interpolate, lambda x0, eps, t: flow.interpolate(eps, x0, t), "x0 and eps swapped"),
    (checks.check_velocity_target, lambda x0, eps: x0 - eps, "x0 - eps"),
    (checks.check_anagram_combine, lambda a, b, view: 0.5 * (a + editing.get_view(view)[0](b)), "the view itself"),
]


@pytest.mark.parametrize("check, wrong, words", WRONG, ids=[f"{c.__name__}-{w[:20]}" for c, _, w in WRONG])
def test_a_known_mistake_is_named(check, wrong, words):
    with pytest.raises(ExerciseError, match=r"values differ from the reference") as failure:
        check(wrong)
    assert "It looks like" in str(failure.value) and words in str(failure.value), str(failure.value)
    assert "\n" not in str(failure.value)  # yours_or_reference shows the first line


def test_another_mistake_gets_no_guess():
    with pytest.raises(ExerciseError) as failure:
        checks.check_cfg_combine(lambda u, c, w: u + w * (c - u) + 0.01)
    assert "values differ" in str(failure.value) and "It looks like" not in str(failure.value)
