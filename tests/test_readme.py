"""The README as a newcomer reads it on GitHub: its code blocks open and close where they should, its relative
links lead to files of the repository, and the `diffusionlab` commands it shows are ones the CLI accepts."""

import re
import shlex
from pathlib import Path

import pytest

from diffusionlab.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^(```|~~~)")


def fenced_lines(text: str) -> list[tuple[int, str, bool]]:
    """(line number, line, inside a code block) for every line; fence lines count as inside."""
    out, inside = [], False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            out.append((number, line, True))
            inside = not inside
        else:
            out.append((number, line, inside))
    return out


def test_every_code_block_closes_and_no_section_lies_inside_one():
    lines = fenced_lines(README)
    fences = [number for number, line, _ in lines if FENCE.match(line)]
    assert len(fences) % 2 == 0, f"README.md: a code block opened at line {fences[-1]} is never closed"
    headings_in_code = [(number, line) for number, line, inside in lines if inside and line.startswith("## ")]
    assert not headings_in_code, f"README.md: section headings inside a code block: {headings_in_code}"


def test_fenced_lines_sees_an_unclosed_block():
    lines = fenced_lines("```bash\nls\n```\n```\n## Section\n")
    assert [inside for _, _, inside in lines] == [True, True, True, True, True]


def test_relative_links_lead_to_files_of_the_repository():
    links = [target.split("#")[0] for target in re.findall(r"\]\(([^)\s]+)\)", README)
             if not re.match(r"[a-z]+:", target)]
    assert links, "the README links to no file of the repository"
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def readme_commands() -> list[str]:
    """The `diffusionlab ...` commands of the README's code blocks (a trailing backslash joins lines)."""
    commands, pending = [], ""
    for _, line, inside in fenced_lines(README):
        if not inside or FENCE.match(line):
            continue
        line = pending + line.split("  #")[0].strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        for part in line.split("&&"):
            if part.strip().startswith("diffusionlab "):
                commands.append(part.strip())
    return commands


@pytest.mark.parametrize("command", readme_commands())
def test_the_readmes_commands_parse(command):
    build_parser().parse_args(shlex.split(command)[1:])  # argparse exits (SystemExit) on a command it refuses

