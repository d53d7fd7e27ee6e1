"""Make the student lessons from the solution notebooks: notebooks/NN_name.ipynb -> lessons/NN_name.ipynb.

    python scripts/make_lessons.py                                 # write lessons/*.ipynb
    python scripts/make_lessons.py --check                         # exit 1 if a lesson is missing or out of date
    python scripts/make_lessons.py notebooks/02_ddpm.ipynb [...]   # only these lessons

In each code cell, every block from a line `### BEGIN SOLUTION` to a line `### END SOLUTION` is
replaced by `# YOUR CODE HERE` and `raise NotImplementedError()`, indented like the BEGIN line.
All outputs and execution counts are cleared, except in the check cells (first line
`# NBVAL_CHECK_OUTPUT`), which must store the solution's "PASS ..." (a notebook not run, or whose solution fails
its check, is refused): they keep the reference verdict, labelled "expected: PASS ..." so that no student
takes it for their own result, which nbval compares with the student's "PASS ..." after its sanitizer
(lessons/nbval_sanitize.cfg, passed by pyproject.toml's pytest options) has taken the label off, and their
execution count, without which nbval fails the cell ("Unrun reference cell has outputs") even when the
student's answer is right. The Colab badge is pointed at lessons/. The JSON is
written deterministically, so running the script twice gives the same bytes.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CHECK_MARKER = "# NBVAL_CHECK_OUTPUT"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
EXPECTED = "expected: "  # the label on a lesson's stored verdicts; lessons/nbval_sanitize.cfg removes it for nbval
# The course's address: the one place it is written. The notebooks' setup cells clone it on Colab, their badges
# and the README's link to it; tests/test_lessons.py checks that every copy agrees with this line.
REPOSITORY = "https://github.com/diffusionlab/diffusionlab"
COLAB = "https://colab.research.google.com/github/" + REPOSITORY.removeprefix("https://github.com/") + "/blob/main/"
# The lessons are the notebooks named NN_name.ipynb; notebooks/playground.ipynb (the web page) is not a lesson.
LESSON_GLOB = "[0-9][0-9]_*.ipynb"


def source_text(cell: dict) -> str:
    """A cell's source (or a stream output's text), which nbformat may store as a list of lines."""
    src = cell.get("text" if "output_type" in cell else "source", "")
    return "".join(src) if isinstance(src, list) else src


def is_check_cell(cell: dict) -> bool:
    return cell["cell_type"] == "code" and source_text(cell).startswith(CHECK_MARKER)


def split_solutions(source: str) -> tuple[str, list[list[str]]]:
    """(the source with each solution block stubbed, the solution blocks' lines, markers included)."""
    out, solutions, block = [], [], None
    for line in source.split("\n"):
        stripped = line.strip()
        if block is None:
            if stripped == BEGIN:
                block = [line]
                indent = line[: len(line) - len(line.lstrip())]
                out += [indent + STUB[0], indent + STUB[1]]
            elif stripped == END:
                raise ValueError(f"{END!r} without {BEGIN!r} in:\n{source}")
            else:
                out.append(line)
        else:
            block.append(line)
            if stripped == BEGIN:
                raise ValueError(f"nested {BEGIN!r} in:\n{source}")
            if stripped == END:
                solutions.append(block)
                block = None
    if block is not None:
        raise ValueError(f"{BEGIN!r} without {END!r} in:\n{source}")
    return "\n".join(out), solutions


def restore_solutions(stubbed: str, solutions: list[list[str]]) -> str:
    """Put solution blocks back in place of the stubs, in order (the inverse of `split_solutions`)."""
    lines, out, k, i = stubbed.split("\n"), [], 0, 0
    while i < len(lines):
        if (lines[i].strip() == STUB[0] and i + 1 < len(lines) and lines[i + 1].strip() == STUB[1]
                and k < len(solutions)):
            out += solutions[k]
            k, i = k + 1, i + 2
        else:
            out.append(lines[i])
            i += 1
    if k != len(solutions):
        raise ValueError(f"found {k} stubs for {len(solutions)} solutions")
    return "\n".join(out)


def make_lesson(nb: dict) -> dict:
    """The student version of notebook `nb` (nbformat 4, as read by `nbformat.read`)."""
    nb = copy.deepcopy(nb)
    nb["metadata"].pop("widgets", None)  # saved widget state belongs to the cleared outputs
    for index, cell in enumerate(nb["cells"]):
        cell["metadata"].pop("execution", None)  # timestamps of the run
        src = source_text(cell)
        if is_check_cell(cell) and not any(source_text(o).startswith("PASS ") for o in cell["outputs"]
                                           if o.get("output_type") == "stream"):
            raise ValueError(f"cell {index}: the check cell stores no 'PASS ...' verdict (the notebook was not run, or "
                             "its solution fails its check); run the notebook, then make the lessons:\n" + src)
        if cell["cell_type"] == "markdown":
            src = src.replace(COLAB + "notebooks/", COLAB + "lessons/")
        elif cell["cell_type"] == "code":
            src = split_solutions(src)[0]
            if is_check_cell(cell):
                # nbval compares a cell's stored outputs only if the cell has an execution count, and fails a
                # cell with outputs but none ("Unrun reference cell has outputs"): the check cells keep the
                # notebook's count, so that a lesson filled in but never run (or run and not saved) can be graded.
                cell["execution_count"] = cell.get("execution_count") or 1
                for output in cell["outputs"]:
                    if "execution_count" in output:
                        output["execution_count"] = cell["execution_count"]
                    if output.get("output_type") == "stream" and source_text(output).startswith("PASS "):
                        output["text"] = EXPECTED + source_text(output)
            else:
                cell["execution_count"] = None
                cell["outputs"] = []
        cell["source"] = src
    return nb


def dumps(nb: dict) -> str:
    """nbformat's own layout (indent 1, sorted keys, sources as lists of lines): the same bytes every time."""
    text = nbformat.writes(nbformat.from_dict(nb), version=4)
    return text if text.endswith("\n") else text + "\n"


def expected_lessons(root: Path = ROOT, notebooks=None) -> dict[Path, str]:
    """{lesson path: its expected text} for `notebooks` (default: every lesson, notebooks/NN_name.ipynb)."""
    out = {}
    for path in sorted(Path(p).resolve() for p in notebooks) if notebooks else sorted((root / "notebooks").glob(LESSON_GLOB)):
        if path.parent != root / "notebooks" or not path.exists():
            raise SystemExit(f"make_lessons: {path} is not a notebook in {root / 'notebooks'}")
        try:
            out[root / "lessons" / path.name] = dumps(make_lesson(nbformat.read(path, as_version=4)))
        except ValueError as error:
            raise SystemExit(f"make_lessons: {path.relative_to(root)}, {error}") from None
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*", help="notebooks/NN_name.ipynb to make lessons of (default: all)")
    p.add_argument("--check", action="store_true", help="only check that lessons/ is up to date")
    args = p.parse_args(argv)
    expected = expected_lessons(notebooks=args.notebooks)
    stale = [path for path, text in expected.items()
             if not path.exists() or path.read_text(encoding="utf-8") != text]
    orphans = [] if args.notebooks else [path for path in sorted((ROOT / "lessons").glob("*.ipynb"))
                                         if path not in expected]
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)} (run python scripts/make_lessons.py)")
        for path in orphans:
            print(f"no notebook for: {path.relative_to(ROOT)}")
        return 1 if stale or orphans else 0
    (ROOT / "lessons").mkdir(exist_ok=True)
    for path in stale:
        path.write_text(expected[path], encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    for path in orphans:
        print(f"warning: {path.relative_to(ROOT)} has no notebook in notebooks/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
