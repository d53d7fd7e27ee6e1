"""The lessons: each student lesson (lessons/) is made from its solution notebook (notebooks/) by
scripts/make_lessons.py, has its exercises checked, and fails on the first unfinished exercise."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent

_spec = importlib.util.spec_from_file_location("make_lessons", ROOT / "scripts" / "make_lessons.py")
make_lessons = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_lessons)

NOTEBOOKS = sorted((ROOT / "notebooks").glob(make_lessons.LESSON_GLOB))  # the lessons (not playground.ipynb)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def exercises(nb):
    """(exercise cell, the code cell after it) for every cell holding a solution block."""
    cells = code_cells(nb)
    return [(c, cells[i + 1] if i + 1 < len(cells) else None) for i, c in enumerate(cells)
            if make_lessons.BEGIN in make_lessons.source_text(c)]


def first_exercise_name(nb) -> str:
    """The exercise named by the first check cell's stored verdict, "PASS <name>: ..."."""
    check = exercises(nb)[0][1]
    text = "".join(o.get("text", "") for o in check.outputs if o.get("output_type") == "stream")
    match = re.match(r"PASS (\w+):", text)
    assert match, f"the first check cell has no stored PASS verdict (was the notebook executed?): {text!r}"
    return match.group(1)


def test_there_are_lessons():
    assert NOTEBOOKS, "no notebooks in notebooks/"


def test_lessons_are_in_sync_with_notebooks():
    result = subprocess.run([sys.executable, "scripts/make_lessons.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_make_lessons_is_deterministic():
    assert make_lessons.expected_lessons() == make_lessons.expected_lessons()


def _setup_without_budget(path) -> str:
    """The setup cell (the first code cell) without the lines of its BUDGET dict, which differ per lesson."""
    source = make_lessons.source_text(code_cells(nbformat.read(path, as_version=4))[0])
    return re.sub(r"\nBUDGET = \{\n.*?\n\}\[MODE\]\n", "\nBUDGET\n", source, flags=re.S)


def test_the_repository_address_is_written_in_one_place():
    """Every notebook and lesson clones make_lessons.REPOSITORY in its setup cell and links to it in its badge;
    the README's clone command and badges use it too. Changing the address means changing that one line
    (then these places, which this test lists)."""
    lessons = [ROOT / "lessons" / path.name for path in NOTEBOOKS]
    for path in NOTEBOOKS + lessons:
        nb = nbformat.read(path, as_version=4)
        badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({make_lessons.COLAB}{path.parent.name}/{path.name})"
        assert nb.cells[0].source == badge, f"{path.relative_to(ROOT)}: the first cell must be the badge {badge}"
        setup = make_lessons.source_text(code_cells(nb)[0])
        assert f'REPOSITORY = "{make_lessons.REPOSITORY}"' in setup, f"{path.relative_to(ROOT)}: the setup cell must clone REPOSITORY"
        assert setup.count("github.com") == 1, f"{path.relative_to(ROOT)}: the setup cell writes an address twice"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    clones = re.findall(r"git clone (\S+)", readme)
    assert clones and all(address == make_lessons.REPOSITORY for address in clones), clones
    links = re.findall(r"https://colab\.research\.google\.com/github/\S*?\.ipynb", readme)
    assert links and all(link.startswith(make_lessons.COLAB + "lessons/") for link in links), links


def test_the_colab_setup_says_what_to_do_when_the_clone_fails(tmp_path, monkeypatch):
    """On Colab the setup cell clones the course; a failed clone stops with the address and what to do, not
    with a CalledProcessError traceback. Run here with an address that does not exist."""
    if shutil.which("git") is None or os.path.exists("/content/diffusionlab-course"):
        pytest.skip("needs git, and no /content/diffusionlab-course (the cell would install it)")
    missing = str(tmp_path / "no-such-repository")
    setup = make_lessons.source_text(code_cells(nbformat.read(NOTEBOOKS[0], as_version=4))[0])
    setup = setup.replace(f'"{make_lessons.REPOSITORY}"', repr(missing))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    with pytest.raises(SystemExit) as stop:
        exec(compile(setup, "setup cell", "exec"), {})
    message = str(stop.value)
    assert f"Could not download the course from {missing}" in message
    assert "REPOSITORY in this cell" in message and "/content/diffusionlab-course" in message


def test_the_colab_clone_does_not_hide_the_installed_course(tmp_path):
    """Colab starts every kernel in /content, with it first on sys.path. A clone at /content/diffusionlab is
    there a folder named like the package: Python takes it for an empty namespace package before it asks the
    finder of the editable install, so a restarted kernel (or `!python` in a cell) imports an empty `diffusionlab`
    ("cannot import name 'checks' from 'diffusionlab' (unknown location)"). Here: a fresh Python in a folder
    holding the setup cell's clone folder, the course found the way an editable install finds it (a finder after
    the path finders), must find the package's __init__.py."""
    setup = make_lessons.source_text(code_cells(nbformat.read(NOTEBOOKS[0], as_version=4))[0])
    folders = set(re.findall(r'"(/content/[^"]*)"', setup))
    assert len(folders) == 1, f"the setup cell should name its folder once: {folders}"
    (tmp_path / Path(folders.pop()).name).mkdir()  # the clone, seen from Colab's working directory
    code = ("import importlib.machinery, importlib.util, sys\n"
            "class EditableFinder:  # as setuptools' editable installs: after the path finders\n"
            "    @staticmethod\n"
            "    def find_spec(name, path=None, target=None):\n"
            "        if name == 'diffusionlab':\n"
            f"            return importlib.machinery.PathFinder.find_spec(name, [{str(ROOT)!r}])\n"
            "sys.meta_path.append(EditableFinder)\n"
            "print(importlib.util.find_spec('diffusionlab').origin)")
    # -S -E: no site-packages and no PYTHONPATH, so only the stand-in finder knows the course; '' stays on sys.path
    found = subprocess.run([sys.executable, "-S", "-E", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                           check=True)
    assert found.stdout.strip() == str(ROOT / "diffusionlab" / "__init__.py"), found.stdout


def test_the_colab_setup_shows_pips_message_when_the_install_fails(monkeypatch):
    """pip's output goes to the kernel's log, not to the notebook: a failed install must stop with pip's own
    message (a missing dependency, no space left...), not with a bare CalledProcessError. The clone and the
    install are stood in for by a fake subprocess.run: the clone succeeds, pip fails."""
    import subprocess

    def fake_run(command, **kwargs):
        failed = "pip" in command
        return subprocess.CompletedProcess(command, 1 if failed else 0, stdout="",
                                           stderr="ERROR: No matching distribution found for torch" if failed else "")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(os.path, "exists", lambda path: False)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    setup = make_lessons.source_text(code_cells(nbformat.read(NOTEBOOKS[0], as_version=4))[0])
    with pytest.raises(SystemExit) as stop:
        exec(compile(setup, "setup cell", "exec"), {})
    message = str(stop.value)
    assert "Could not install the course" in message and "No matching distribution found for torch" in message


def test_readme_opens_the_student_lesson_with_the_repository_as_jupyters_root(monkeypatch):
    """The README's first command ends with `jupyter lab ...`: run from the clone, it must serve the repository
    (lessons/ and notebooks/ both in the file browser) and open lesson 1's student version."""
    from jupyter_server.serverapp import ServerApp

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = re.search(r"```bash\n(.*?)\n```", readme, flags=re.S).group(1)
    command = first.split("&&")[-1].split()
    assert command[:2] == ["jupyter", "lab"], first
    monkeypatch.chdir(ROOT)
    app = ServerApp()
    app.parse_command_line(command[2:])
    assert Path(app.root_dir).resolve() == ROOT, f"{' '.join(command)} serves {app.root_dir}, not the repository"
    assert Path(app.file_to_run).resolve() == ROOT / "lessons" / NOTEBOOKS[0].name


def test_every_lesson_starts_with_the_badge_and_the_same_setup_cell():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert nb.cells[0].cell_type == "markdown" and f"{make_lessons.COLAB}notebooks/{path.name}" in nb.cells[0].source
        assert nb.cells[1].cell_type == "code" and "BUDGET" in _setup_without_budget(path)
    setups = {path.name: _setup_without_budget(path) for path in NOTEBOOKS}
    assert len(set(setups.values())) == 1, "the setup cells differ (beyond BUDGET): " + ", ".join(setups)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_exercise_is_followed_by_a_passing_check(path):
    nb = nbformat.read(path, as_version=4)
    found = exercises(nb)
    assert found, f"{path.name} has no exercise (a code cell with {make_lessons.BEGIN!r})"
    for exercise, check in found:
        assert check is not None and make_lessons.is_check_cell(check), (
            f"{path.name}: the code cell after this exercise must be a check cell starting with "
            f"{make_lessons.CHECK_MARKER!r}:\n{make_lessons.source_text(exercise)}")
        assert "checks.check_" in make_lessons.source_text(check)
        text = "".join(o.get("text", "") for o in check.outputs if o.get("output_type") == "stream")
        assert text.startswith("PASS "), f"{path.name}: a check cell has no stored PASS output: {text!r}"


def sanitize(text: str) -> str:
    """`text` as nbval compares it, after the patterns of the sanitizer that pyproject.toml gives it."""
    from nbval.plugin import get_sanitize_patterns

    for regex, replace in get_sanitize_patterns((ROOT / "lessons" / "nbval_sanitize.cfg").read_text()):
        text = re.sub(regex, replace, text)
    return text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_a_lesson_labels_its_stored_verdicts_as_expected(path):
    """A student sees "expected: PASS ..." under an unfinished exercise, not a "PASS ..." that could pass for
    their own result; nbval, after the sanitizer, compares the notebook's "PASS ..." with theirs."""
    nb = nbformat.read(path, as_version=4)
    lesson = nbformat.read(ROOT / "lessons" / path.name, as_version=4)
    assert "--nbval-sanitize-with=lessons/nbval_sanitize.cfg" in (ROOT / "pyproject.toml").read_text()
    checks_ = [(c, s) for c, s in zip(code_cells(nb), code_cells(lesson)) if make_lessons.is_check_cell(c)]
    assert checks_
    for cell, stubbed in checks_:
        ours = [o.text for o in cell.outputs if o.output_type == "stream"]
        theirs = [o.text for o in stubbed.outputs if o.output_type == "stream"]
        assert len(theirs) == len(ours) == 1 and theirs[0] == make_lessons.EXPECTED + ours[0], (ours, theirs)
        assert not ours[0].startswith(make_lessons.EXPECTED) and sanitize(theirs[0]) == ours[0]


def _check_notebook(path: Path, printed: str) -> None:
    """A notebook with one check cell that prints `printed`, storing a lesson's labelled verdict."""
    cell = nbformat.v4.new_code_cell(f"{make_lessons.CHECK_MARKER}\nprint({printed!r})", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                           text=make_lessons.EXPECTED + "PASS add_noise: matches.\n")]
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)


def test_the_grading_command_compares_the_expected_verdict_with_the_students(tmp_path):
    _check_notebook(tmp_path / "right.ipynb", "PASS add_noise: matches.")
    _check_notebook(tmp_path / "wrong.ipynb", "PASS res_block: matches.")
    assert grade(tmp_path / "right.ipynb").returncode == 0
    result = grade(tmp_path / "wrong.ipynb")
    assert result.returncode != 0 and "PASS res_block" in result.stdout, result.stdout[-2000:]


def test_conftest_finds_the_sanitizer_from_another_working_directory(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
    conftest = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conftest)
    config = types.SimpleNamespace(option=types.SimpleNamespace(nbval_sanitize_with="lessons/nbval_sanitize.cfg"),
                                   rootpath=ROOT)
    monkeypatch.chdir(tmp_path)
    conftest.pytest_configure(config)
    assert Path(config.option.nbval_sanitize_with) == ROOT / "lessons" / "nbval_sanitize.cfg"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_put_back_give_the_notebook(path):
    nb = nbformat.read(path, as_version=4)
    lesson = nbformat.read(ROOT / "lessons" / path.name, as_version=4)
    assert [c.cell_type for c in lesson.cells] == [c.cell_type for c in nb.cells]
    for cell, stubbed in zip(code_cells(nb), code_cells(lesson)):
        source = make_lessons.source_text(cell)
        _, solutions = make_lessons.split_solutions(source)
        assert make_lessons.restore_solutions(make_lessons.source_text(stubbed), solutions) == source
        if solutions:
            assert make_lessons.BEGIN not in make_lessons.source_text(stubbed)
            assert "raise NotImplementedError()" in make_lessons.source_text(stubbed)
        if not make_lessons.is_check_cell(cell):
            assert not stubbed.outputs and stubbed.execution_count is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_unfinished_lesson_fails_at_its_first_exercise(path):
    """nbval on the student version stops at the first check cell, which names the exercise."""
    name = first_exercise_name(nbformat.read(path, as_version=4))
    env = {**os.environ, "DIFFUSIONLAB_MODE": "fast"}
    result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-x", "-q",
                             "-p", "no:cacheprovider", str(Path("lessons") / path.name)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"the unfinished lesson {path.name} passed nbval:\n{output[-3000:]}"
    assert f"Exercise '{name}' is not done yet" in output, output[-3000:]


# --- The student's path: fill in a lesson, do not run it, grade it with the README's command -----------------

GRADED = NOTEBOOKS[0]  # lesson 1, the quickest to run


def filled_lesson(path, wrong: str | None = None):
    """The student lesson of notebook `path` with every stub filled with its solution, never executed.
    wrong: the name of one function whose solution is replaced by `return x` (a wrong answer)."""
    nb = nbformat.read(path, as_version=4)
    lesson = nbformat.read(ROOT / "lessons" / path.name, as_version=4)
    for cell, stubbed in zip(code_cells(nb), code_cells(lesson)):
        _, solutions = make_lessons.split_solutions(make_lessons.source_text(cell))
        if solutions:
            if wrong is not None and f"def {wrong}(" in make_lessons.source_text(cell):
                solutions = [[block[0].replace(make_lessons.BEGIN, "return x")] for block in solutions]
            stubbed.source = make_lessons.restore_solutions(make_lessons.source_text(stubbed), solutions)
    return lesson


def grade(notebook: Path, *options: str) -> subprocess.CompletedProcess:
    """The README's grading command on `notebook`, run from the repository root as a student would (so that
    pyproject.toml's pytest options apply), in fast mode, importing this copy of the package."""
    env = {**os.environ, "DIFFUSIONLAB_MODE": "fast",
           "PYTHONPATH": os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
    return subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-c", str(ROOT / "pyproject.toml"),
                           "--rootdir", str(ROOT), "-p", "no:cacheprovider", "-q", *options, str(notebook)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def test_filled_lesson_passes_the_grading_command_without_being_run(tmp_path):
    """A student fills in every exercise correctly and grades the lesson without running or saving it."""
    path = tmp_path / GRADED.name
    nbformat.write(filled_lesson(GRADED), path)
    result = grade(path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"a correct, unexecuted lesson failed the grading command:\n{output[-3000:]}"


def test_a_wrong_answer_fails_the_grading_command_naming_its_exercise(tmp_path):
    path = tmp_path / GRADED.name
    nbformat.write(filled_lesson(GRADED, wrong="add_noise"), path)
    result = grade(path, "-x")
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"a lesson with a wrong add_noise passed the grading command:\n{output[-3000:]}"
    assert "Exercise 'add_noise', case 2" in output, output[-3000:]


@pytest.mark.parametrize("outputs", [
    [],  # the notebook was not executed
    [nbformat.v4.new_output("error", ename="ExerciseError", evalue="Exercise 'add_noise', case 1 of 4", traceback=[])],
], ids=["not executed", "solution fails its check"])
def test_a_check_cell_without_a_stored_pass_is_refused(outputs):
    """A lesson made from it would show the student an error (or nothing) as the expected verdict, and nbval would
    not grade a check cell without one."""
    cell = nbformat.v4.new_code_cell(f"{make_lessons.CHECK_MARKER}\nchecks.check_add_noise(add_noise)", execution_count=3)
    cell.outputs = outputs
    with pytest.raises(ValueError, match=r"cell 0: the check cell stores no 'PASS \.\.\.' verdict"):
        make_lessons.make_lesson(nbformat.v4.new_notebook(cells=[cell]))
