"""What a student sees when a check cell fails in Jupyter: the traceback IPython shows for an ExerciseError holds
the notebook's own line and the message naming the exercise, not the checking code inside the package (which
came first and pushed the message below the fold of a JupyterLab window)."""

import re

import pytest

InteractiveShell = pytest.importorskip("IPython.core.interactiveshell").InteractiveShell

STUB = "def add_noise(x, sigma, generator=None):\n    raise NotImplementedError()\n"
WRONG = "def add_noise(x, sigma, generator=None):\n    return x + sigma\n"
ERROR = "def add_noise(x, sigma, generator=None):\n    return x + undefined_name\n"


@pytest.fixture
def shown(monkeypatch):
    """run(cell source) -> the traceback IPython shows for it, as plain text (the lines a notebook prints)."""
    shell = InteractiveShell.instance()
    tracebacks = []
    monkeypatch.setattr(shell, "_showtraceback", lambda etype, evalue, stb: tracebacks.append(stb))

    def run(source):
        tracebacks.clear()
        shell.run_cell("from diffusionlab import checks\n" + source)
        assert len(tracebacks) == 1, "the cell raised no error"
        return re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(tracebacks[0]))

    yield run
    InteractiveShell.clear_instance()


@pytest.mark.parametrize("answer, message", [
    (STUB, "ExerciseError: Exercise 'add_noise' is not done yet"),
    (WRONG, "ExerciseError: Exercise 'add_noise', case 2 of 4"),
    (ERROR, "your function raised NameError: name 'undefined_name' is not defined"),
], ids=["stub", "wrong answer", "student's error"])
def test_check_cell_traceback_is_the_cells_line_and_the_message(shown, answer, message):
    text = shown(answer + "checks.check_add_noise(add_noise)")
    assert message in text, text
    assert "checks.check_add_noise(add_noise)" in text  # the line of the cell that failed
    assert "diffusionlab" not in text.replace("from diffusionlab import", ""), text  # no frame of the package
    assert len(text.splitlines()) < 12, text


def test_other_errors_keep_their_full_traceback(shown):
    text = shown("checks.check_add_noise(42)")  # not a function: the package's own TypeError, untouched
    assert "TypeError" in text


def test_outside_ipython_the_error_is_a_plain_assertion_error():
    from diffusionlab import checks

    def add_noise(x, sigma, generator=None):
        raise NotImplementedError()

    with pytest.raises(AssertionError, match="Exercise 'add_noise' is not done yet"):
        checks.check_add_noise(add_noise)
    lines = checks.ExerciseError("Exercise 'x'")._render_traceback_()
    assert lines[-1] == "diffusionlab.checks.common.ExerciseError: Exercise 'x'"
