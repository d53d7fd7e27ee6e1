"""The exercise checks of lessons 3 to 5: each passes on the package's reference and names the
exercise when given a wrong function or an unfinished one (NotImplementedError)."""


import pytest
import torch

from diffusionlab import checks, editing, guidance, samplers
from diffusionlab.checks import ExerciseError
from diffusionlab.filters import gaussian_blur

import exercise_checks  # tests/exercise_checks.py: what every exercise check must do


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


def sdedit_start_floor(schedule, x0, strength, steps, generator):
    """Counts the steps to skip instead of the steps to run: noises far too little."""
    return editing.sdedit_start(schedule, x0, 1 - strength, steps, generator=generator)


def sdedit_start_wrong_t(schedule, x0, strength, steps, generator):
    """Noises to t = strength * T instead of the timestep the sampler will run first."""
    xt, start = editing.sdedit_start(schedule, x0, strength, steps, generator=generator)
    t = torch.full((x0.shape[0],), min(999, round(strength * 1000)))
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    return schedule.q_sample(x0, t, eps), start


def replace_keep_inverted(schedule, x, x_known, mask, t, generator):
    """Keeps the model where mask = 0: the wrong way round."""
    return editing.inpaint_replace(schedule, x, x_known, 1 - mask, t, generator)


def replace_clean(schedule, x, x_known, mask, t, generator):
    """Pastes the clean image instead of the noised one."""
    return mask * x + (1 - mask) * x_known


CASES = [
    # check, reference, wrong answers
    (checks.check_drop_labels, guidance.drop_labels, [drop_inverted, drop_to_zero, lambda y, p, n, g=None: y]),
    (checks.check_cfg_combine, guidance.cfg_combine,
     [lambda u, c, w: c + w * (c - u), lambda u, c, w: u + w * (u - c)]),
    (checks.check_ddim_timesteps, lambda T, steps: samplers.ddim_timesteps(T, steps, "trailing"),
     [lambda T, steps: samplers.ddim_timesteps(T, steps, "leading"),
      lambda T, steps: [int(T - 1 - i * T / steps) for i in range(steps)],  # floor instead of round
      lambda T, steps: list(range(T - 1, -1, -(T // steps)))]),
    (checks.check_ddim_step, lambda s, eps, t, tp, xt, eta, noise: samplers.ddim_step(s, eps, t, tp, xt, eta, clip=None,
                                                                                       noise=noise),
     [ddim_step_no_noise_term, lambda s, eps, t, tp, xt, eta, noise: samplers.ddim_step(s, eps, t, tp, xt, eta, noise=noise)]),
    (checks.check_sdedit_start, lambda s, x0, strength, steps, g: editing.sdedit_start(s, x0, strength, steps, generator=g),
     [sdedit_start_floor, sdedit_start_wrong_t]),
    (checks.check_inpaint_replace, editing.inpaint_replace, [replace_keep_inverted, replace_clean]),
    (checks.check_anagram_combine, editing.anagram_combine,
     [lambda a, b, v: 0.5 * (a + b),  # forgets to undo the view
      lambda a, b, v: a + editing.get_view(v)[1](b),  # sums instead of averaging
      lambda a, b, v: 0.5 * (a + editing.get_view(v)[0](b))]),  # applies the view again instead of undoing it
    (checks.check_split_frequencies, editing.split_frequencies,
     [lambda x, s: (gaussian_blur(x, s), x),  # high is not what is left
      lambda x, s: (x - gaussian_blur(x, s), gaussian_blur(x, s))]),  # swapped
]
# drop_labels' own messages name the failing case by p_uncond
test_reference_passes, test_wrong_answers_fail_naming_the_exercise_and_the_case, test_unfinished_exercise = (
    exercise_checks.contract_tests(CASES, also_naming="p_uncond="))


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


def test_a_wrong_drop_rate_is_named_in_the_students_terms():
    """The case names the student's own parameters (null_class, not the check's seed) and says what the numbers are."""
    def drops_the_whole_batch(y, p_uncond, null_class, generator=None):
        return torch.full_like(y, null_class) if torch.rand((), generator=generator) < p_uncond else y.clone()

    with pytest.raises(ExerciseError, match=r"case 2 of 4 \(y: \(50000,\) tensor, p_uncond=0.1, null_class=10\): the "
                                            r"fraction of labels replaced should be 0.1\d*, got 0$"):
        checks.check_drop_labels(drops_the_whole_batch)
