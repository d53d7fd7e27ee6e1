"""What every lesson's checks share: `compare` a student's function with the package's reference.

Each `check_...(student_fn)` runs both functions on fixed, seeded inputs and prints a one-line
verdict that does not depend on the machine, so nbval can compare it with the verdict stored in
the lesson. A wrong answer raises `ExerciseError`, naming the exercise, the first case that differs and
that case's inputs (also when the student's code raises an error, changes an input in place or returns an input
itself where a new tensor is expected, or when its result has NaNs); an unfinished exercise (NotImplementedError) says so. A check tests one exercise:
`others_as_references` makes the other exercises a student's function calls by name the package's own
while it runs, so a mistake in one exercise cannot fail the next. `yours_or_reference` lets the cells after an
exercise use the student's own function once its check passes, and the package's until then.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import traceback
import types
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import torch


PACKAGE_DIR = Path(__file__).resolve().parent.parent  # diffusionlab/


class ExerciseError(AssertionError):
    """The student's function does not (yet) match the reference.

    In a notebook its traceback shows the notebook's own lines and the message, not the lines of the checking code
    inside this package: those came first and pushed the message naming the exercise some 25 lines down, below
    the fold of a JupyterLab window.
    """

    def _render_traceback_(self) -> list[str]:
        """IPython's hook for an exception's traceback (Jupyter, Colab): the usual one, less this package's frames.
        (If this hook fails, IPython itself falls back to the standard traceback.)"""
        from IPython import get_ipython

        tb = _without_package_frames(self.__traceback__)
        shell = get_ipython()
        if shell is None:  # called outside IPython: Python's own format
            return "".join(traceback.format_exception(type(self), self, tb)).splitlines()
        return shell.InteractiveTB.structured_traceback(type(self), self, tb)


class _ValuesDiffer(ExerciseError):
    """A result of the right type, shape and dtype whose values are not the reference's."""


def compare(exercise: str, student_fn: Callable, reference_fn: Callable, cases: Sequence[Callable[[], tuple]],
            atol: float = 1e-5, rtol: float = 1e-4, what: str | None = None,
            mistakes: Mapping[str, Callable] | None = None) -> None:
    """Run student_fn(*args) and reference_fn(*args) for each case and compare the results.

    cases: functions returning a fresh tuple of arguments each (so that a function that changes its
    inputs in place cannot spoil the reference's run). Results may be tensors, numbers, strings or tuples
    (lists) of them; a tensor must have the reference's dtype (a float64 result breaks the float32 network).
    A failure names the case by its inputs, with the names of reference_fn's parameters. An error raised by
    student_fn, a tensor argument it changed in place, and a result that is one of its inputs (or a view of it)
    where the reference's is a new tensor, are failures too (an ExerciseError).
    what: what a number result measures, for the failure message ("the fraction of labels replaced").
    mistakes: {what a student did: a function, with reference_fn's arguments, that does it}; a result that differs
    from the reference but matches one of them gets "It looks like <what the student did>" in its message.
    """
    names = _parameter_names(reference_fn)
    aliased = []  # results that are an input itself: said after every case's values, the likelier mistake
    for i, make_args in enumerate(cases, start=1):
        args = make_args()
        where = f"Exercise '{exercise}', case {i} of {len(cases)} ({describe(names, args)})"
        before = [_snapshot(value) for value in args]
        try:
            got = student_fn(*args)
        except ExerciseError:
            raise
        except NotImplementedError:
            raise ExerciseError(f"Exercise '{exercise}' is not done yet: replace `raise NotImplementedError()` "
                                "with your code.") from None
        except Exception as err:  # the student's own error, named with the case (and caught by yours_or_reference)
            raise ExerciseError(f"{where}: your function raised {type(err).__name__}: {err}") from None
        for k, (value, saved) in enumerate(zip(args, before)):
            if not _unchanged(value, saved):
                name = names[k] if k < len(names) else f"argument {k + 1}"
                raise ExerciseError(f"{where}: your function changed its input '{name}' in place; return a new "
                                    "tensor (use .clone() or torch.where)")
        reference_args = make_args()
        expected = reference_fn(*reference_args)
        if got is None and expected is not None:
            raise ExerciseError(f"{where}: your function returned None; did you forget `return`?")
        try:
            _assert_close(where, got, expected, atol, rtol, what)
        except ExerciseError as failure:
            values = isinstance(failure, _ValuesDiffer)
            why = _diagnose(student_fn, reference_fn, cases, make_args, mistakes or {}, atol, rtol, values)
            raise ExerciseError(f"{failure}{why}") from None
        aliased += _aliased_results(where, names, got, args, expected, reference_args)
    if aliased:
        raise ExerciseError(aliased[0])
    print(f"PASS {exercise}: matches the reference on {len(cases)} seeded cases.")


def _without_package_frames(tb: types.TracebackType | None) -> types.TracebackType | None:
    """The traceback `tb` without the frames of code inside this package (the notebook's and IPython's stay)."""
    kept = []
    while tb is not None:
        if not Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE_DIR):
            kept.append(tb)
        tb = tb.tb_next
    chain = None
    for old in reversed(kept):
        chain = types.TracebackType(chain, old.tb_frame, old.tb_lasti, old.tb_lineno)
    return chain


def yours_or_reference(check: Callable[[Callable], None], student_fn: Callable, reference_fn: Callable) -> Callable:
    """The student's function if `check(student_fn)` passes, else the package's `reference_fn`; says which.

    Used after an exercise, so that the student's own code makes the pictures that follow, while an unfinished
    or wrong exercise does not stop the rest of the lesson from running."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check(student_fn)
    except ExerciseError as error:
        print(f"Using the package's {getattr(reference_fn, '__name__', 'function')} for now "
              f"({str(error).splitlines()[0]})")
        return reference_fn
    print(f"Using your {getattr(student_fn, '__name__', 'function')}: it passes its check.")
    return student_fn


@contextlib.contextmanager
def others_as_references(student_fn: Callable, **references: Callable) -> Iterator[None]:
    """While the block runs, each name in `references` that the student's notebook defines (for example its
    own `add_noise`, which its `denoiser_loss` calls) is the package's reference instead, then the student's
    again. student_fn: the student's function or class, whose module (the notebook) is the one changed."""
    namespace = _namespace(student_fn)
    saved = {name: namespace[name] for name in references if namespace is not None and name in namespace}
    try:
        for name in saved:
            namespace[name] = references[name]
        yield
    finally:
        for name, value in saved.items():
            namespace[name] = value


def _namespace(obj) -> dict | None:
    """The global names a function (or a class's methods) looks up: the notebook's for a notebook's function."""
    obj = inspect.unwrap(obj)  # a decorated function (@torch.no_grad()): the notebook's function inside
    if hasattr(obj, "__globals__"):
        return obj.__globals__
    for member in vars(obj).values() if isinstance(obj, type) else ():
        if hasattr(member, "__globals__"):
            return member.__globals__
    return None


def _map_tensors(fn: Callable[[torch.Tensor], torch.Tensor], value):
    """value with fn applied to each of its tensors (also in a list, tuple or dict); other values as they are."""
    if isinstance(value, torch.Tensor):
        return fn(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(fn, v) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(fn, v) for k, v in value.items()}
    return value


def _snapshot(value):
    """A copy of an argument's tensors, to see afterwards whether it was changed."""
    return _map_tensors(lambda t: t.detach().clone(), value)


def _unchanged(value, saved) -> bool:
    if isinstance(value, torch.Tensor):
        return value.shape == saved.shape and torch.equal(value.detach(), saved)
    if isinstance(value, (list, tuple)):
        return len(value) == len(saved) and all(_unchanged(v, s) for v, s in zip(value, saved))
    if isinstance(value, dict):
        return value.keys() == saved.keys() and all(_unchanged(value[k], saved[k]) for k in value)
    return True  # numbers, strings, generators, modules: not compared


def _diagnose(student_fn: Callable, reference_fn: Callable, cases: Sequence[Callable[[], tuple]], make_args: Callable,
              mistakes: Mapping[str, Callable], atol: float, rtol: float, values: bool) -> str:
    """What to add to a failure: that the formula is right but float32 loses precision (values: the failure is one of
    values, not of type, shape or dtype), or which known mistake the student made; "" if neither."""
    if values and _right_in_float64(student_fn, reference_fn, make_args, atol, rtol):
        return (". Your function agrees with the reference when its inputs are float64: the difference is float32 "
                "rounding, not the formula. Compute the scalar coefficients in float64, as Python floats (for example "
                "schedule.alpha_bar[t].item()), and only the tensors in float32")
    for description, mistake in mistakes.items():
        if _matches(student_fn, mistake, cases, atol, rtol):
            return f". It looks like {description}"
    return ""


def _matches(student_fn: Callable, mistake: Callable, cases: Sequence[Callable[[], tuple]], atol: float,
             rtol: float) -> bool:
    """Whether student_fn gives what `mistake` gives on every case (then that is the student's mistake)."""
    try:
        for make_args in cases:
            _assert_close("", student_fn(*make_args()), mistake(*make_args()), atol, rtol)
    except Exception:
        return False
    return True


def _as_float64(value):
    """value with its float tensors made float64."""
    return _map_tensors(lambda t: t.double() if t.is_floating_point() else t, value)


def _right_in_float64(student_fn: Callable, reference_fn: Callable, make_args: Callable, atol: float,
                      rtol: float) -> bool:
    """Whether student_fn matches reference_fn once the case's float32 tensors are float64: then a difference in
    float32 is rounding (a small difference of two close numbers, say), not a wrong formula."""
    args = make_args()
    if not any(t.dtype == torch.float32 for t in _tensors(args)):
        return False
    try:
        got = _as_float64(student_fn(*_as_float64(args)))
        expected = _as_float64(reference_fn(*_as_float64(make_args())))
        _assert_close("", got, expected, atol, rtol)
    except Exception:  # a network's float32 weights refuse float64 inputs; a wrong formula stays wrong: no hint
        return False
    return True


def _tensors(value) -> list[torch.Tensor]:
    """The tensors in a value (also in a list, tuple or dict)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _aliased_inputs(result, args: tuple) -> set[tuple[int, int]]:
    """{(k, j)}: result k (0 for a single result) shares its memory with argument j (it is that input or a view of it)."""
    results = result if isinstance(result, (list, tuple)) else [result]
    return {(k, j) for k, r in enumerate(results) for out in _tensors(r) if out.numel()
            for j, arg in enumerate(args) for inp in _tensors(arg)
            if inp.numel() and out.untyped_storage().data_ptr() == inp.untyped_storage().data_ptr()}


def _aliased_results(where: str, names: Sequence[str], got, args: tuple, expected, reference_args: tuple) -> list[str]:
    """A failure message for each result that is an input itself (or a view of it) where the reference's is a new
    tensor: changing such a result (an edited image, say) would change the caller's input too."""
    messages = []
    for k, j in sorted(_aliased_inputs(got, args) - _aliased_inputs(expected, reference_args)):
        name = names[j] if j < len(names) else f"argument {j + 1}"
        result = f", result {k + 1} of {len(got)}" if isinstance(got, (list, tuple)) else ""
        messages.append(f"{where}{result}: your function returned its input '{name}' itself (or a view of it); return "
                        "a new tensor (use .clone()), so that changing the result cannot change the input")
    return messages


def _parameter_names(fn: Callable) -> list[str]:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def describe(names: Sequence[str], args: tuple) -> str:
    """A case's inputs in a few words: `x0: (2, 1, 28, 28) tensor, sigma=0.2, generator seeded 3`."""
    parts = []
    for k, value in enumerate(args):
        name = names[k] if k < len(names) else f"argument {k + 1}"
        if isinstance(value, torch.Tensor) and value.numel() > 6:
            parts.append(f"{name}: {tuple(value.shape)} tensor")
        elif isinstance(value, torch.Tensor):
            parts.append(f"{name}={value.tolist()}")
        elif isinstance(value, torch.Generator):
            parts.append(f"{name} seeded {value.initial_seed()}")
        elif isinstance(value, torch.nn.Module) or callable(value):
            parts.append(f"{name}: a {type(value).__name__}")
        elif value is None or isinstance(value, (bool, int, float, str)) or len(repr(value)) <= 40:
            parts.append(f"{name}={value!r}")
        else:
            parts.append(f"{name}: a {type(value).__name__}")
    return ", ".join(parts)


def _assert_close(where: str, got, expected, atol: float, rtol: float, what: str | None = None) -> None:
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            raise ExerciseError(f"{where}: expected {len(expected)} results, got {type(got).__name__}"
                                + (f" of {len(got)}" if isinstance(got, (tuple, list)) else ""))
        for k, (g, e) in enumerate(zip(got, expected), start=1):
            _assert_close(f"{where}, result {k} of {len(expected)}", g, e, atol, rtol, what)
        return
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(f"{where}: expected a tensor, got {type(got).__name__}")
        if got.shape != expected.shape:
            raise ExerciseError(f"{where}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
        if got.dtype != expected.dtype and (got.is_floating_point() or expected.is_floating_point()):
            raise ExerciseError(f"{where}: expected dtype {str(expected.dtype).removeprefix('torch.')}, got "
                                f"{str(got.dtype).removeprefix('torch.')}; compute in the inputs' dtype or cast the "
                                f"result with .to({expected.dtype})")
        bad = ~torch.isfinite(got) & torch.isfinite(expected)
        if bad.any():
            raise ExerciseError(f"{where}: your result has NaN or infinite values where the reference's are finite "
                                f"({bad.sum().item()} of {bad.numel()}); look for a square root or a log of a negative "
                                "number, or a division by zero")
        if not torch.allclose(got.double(), expected.double(), atol=atol, rtol=rtol):
            diff = (got.double() - expected.double()).abs().max().item()
            raise _ValuesDiffer(f"{where}: values differ from the reference (largest difference {diff:.3g})")
        return
    if isinstance(expected, str):
        if got != expected:
            raise ExerciseError(f"{where}: expected {expected!r}, got {got!r}")
        return
    try:
        value = float(got)
    except (TypeError, ValueError):
        raise ExerciseError(f"{where}: expected a number, got {type(got).__name__}") from None
    if abs(value - float(expected)) > atol + rtol * abs(float(expected)):
        if what:
            raise _ValuesDiffer(f"{where}: {what} should be {float(expected):.3g}, got {value:.3g}")
        raise _ValuesDiffer(f"{where}: expected {expected}, got {got}")


def load_reference_weights(block: torch.nn.Module, reference: torch.nn.Module, exercise: str) -> torch.nn.Module:
    """Load `reference`'s weights into the student's `block`, so the two can be compared output for output; a
    block whose parameters are named otherwise gets an ExerciseError naming the package class to follow."""
    try:
        block.load_state_dict(reference.state_dict())
    except RuntimeError as err:
        raise ExerciseError(f"Exercise '{exercise}': the block's parameters must be named like "
                            f"unet.{type(reference).__name__}'s ({str(err).splitlines()[-1].strip()})") from None
    return block


def seeded(seed: int, *shape: int) -> torch.Tensor:
    """A reproducible standard-normal tensor for check inputs."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
