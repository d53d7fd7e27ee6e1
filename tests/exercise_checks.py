"""What every exercise check must do, as tests: pass the reference (leaving the notebook's global RNG as it was),
fail each wrong answer naming the exercise and the case, and say when the exercise is not done yet. A test module of lesson checks lists its CASES,
(check, reference, [wrong answers]), and keeps the three tests `contract_tests(CASES)` returns."""

import re

import pytest
import torch

from diffusionlab.checks import ExerciseError


def not_done(*args):
    raise NotImplementedError()


def contract_tests(cases, also_naming: str | None = None):
    """The three parametrized tests over `cases`. also_naming: a text that names the failing case as well as
    "case k of n (...)" does (a check whose own messages name it)."""
    over_cases = pytest.mark.parametrize("check, reference, wrong", cases, ids=[c[0].__name__ for c in cases])

    @over_cases
    def test_reference_passes(check, reference, wrong, capsys):
        torch.manual_seed(123)
        expected = torch.rand(3)
        torch.manual_seed(123)
        check(reference)
        assert capsys.readouterr().out.startswith("PASS ")
        assert torch.equal(torch.rand(3), expected), "the check changed the notebook's global RNG: use fork_rng"

    @over_cases
    def test_wrong_answers_fail_naming_the_exercise_and_the_case(check, reference, wrong):
        exercise = check.__name__.removeprefix("check_")
        for fn in wrong:
            with pytest.raises(ExerciseError, match=f"Exercise '{exercise}'") as failure:
                check(fn)
            message = str(failure.value)
            assert re.search(r"case \d+ of \d+ \(\w+", message) or (also_naming and also_naming in message), message

    @over_cases
    def test_unfinished_exercise(check, reference, wrong):
        with pytest.raises(ExerciseError, match="not done yet"):
            check(not_done)

    return test_reference_passes, test_wrong_answers_fail_naming_the_exercise_and_the_case, test_unfinished_exercise
