"""What every lesson's checks share: `compare` a student's function with the package's reference.

Each `check_...(student_fn)` runs both functions on fixed, seeded inputs and prints a one-line
verdict that does not depend on the machine, so nbval can compare it with the verdict stored in
the lesson. A wrong answer raises `ExerciseError`, naming the exercise and the first case that
differs; an unfinished exercise (NotImplementedError) says so.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch


class ExerciseError(AssertionError):
    """The student's function does not (yet) match the reference."""


def compare(exercise: str, student_fn: Callable, reference_fn: Callable, cases: Sequence[Callable[[], tuple]],
            atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Run student_fn(*args) and reference_fn(*args) for each case and compare the results.

    cases: functions returning a fresh tuple of arguments each (so that a function that changes its
    inputs in place cannot spoil the reference's run). Results may be tensors, numbers or tuples of them.
    """
    for i, make_args in enumerate(cases, start=1):
        try:
            got = student_fn(*make_args())
        except NotImplementedError:
            raise ExerciseError(f"Exercise '{exercise}' is not done yet: replace `raise NotImplementedError()` "
                                "with your code.") from None
        expected = reference_fn(*make_args())
        _assert_close(exercise, i, got, expected, atol, rtol)
    print(f"PASS {exercise}: matches the reference on {len(cases)} seeded cases.")


def _assert_close(exercise: str, case: int, got, expected, atol: float, rtol: float) -> None:
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            raise ExerciseError(f"Exercise '{exercise}', case {case}: expected {len(expected)} results, "
                                f"got {type(got).__name__}")
        for g, e in zip(got, expected):
            _assert_close(exercise, case, g, e, atol, rtol)
        return
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(f"Exercise '{exercise}', case {case}: expected a tensor, got {type(got).__name__}")
        if got.shape != expected.shape:
            raise ExerciseError(f"Exercise '{exercise}', case {case}: expected shape {tuple(expected.shape)}, "
                                f"got {tuple(got.shape)}")
        if not torch.allclose(got.double(), expected.double(), atol=atol, rtol=rtol):
            diff = (got.double() - expected.double()).abs().max().item()
            raise ExerciseError(f"Exercise '{exercise}', case {case}: values differ from the reference "
                                f"(largest difference {diff:.3g})")
        return
    if abs(float(got) - float(expected)) > atol + rtol * abs(float(expected)):
        raise ExerciseError(f"Exercise '{exercise}', case {case}: expected {expected}, got {got}")


def seeded(seed: int, *shape: int) -> torch.Tensor:
    """A reproducible standard-normal tensor for check inputs."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
