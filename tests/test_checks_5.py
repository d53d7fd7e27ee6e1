"""The exercise checks of lesson 5: each passes on the package's reference and names the exercise when
given a wrong function or an unfinished one (NotImplementedError)."""

import pytest
import torch

from diffusionlab import checks, editing
from diffusionlab.checks import ExerciseError
from diffusionlab.filters import gaussian_blur


def not_done(*args):
    raise NotImplementedError()


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
