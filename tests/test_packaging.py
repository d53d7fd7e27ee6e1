"""Packaging: the wheel holds every subpackage, Binder installs the CPU build of torch, the licence is there, and
checkpoints written anywhere stay out of git while the shipped ones stay in."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_takes_every_subpackage():
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(find_packages(ROOT, include=config["packages"]["find"]["include"]))
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "diffusionlab").rglob("__init__.py")}
    assert {"diffusionlab.models", "diffusionlab.pipelines", "diffusionlab.editing", "diffusionlab.widgets",
            "diffusionlab.checks"} <= on_disk
    assert packages == on_disk


def test_binder_installs_the_cpu_torch_first_with_pyprojects_floor():
    lines = [l for l in (ROOT / "binder" / "postBuild").read_text().splitlines() if l.startswith("python -m pip")]
    floor = re.search(r'"torch>=([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert f'"torch>={floor}" --index-url https://download.pytorch.org/whl/cpu' in lines[0]
    assert lines[1].endswith('-e ".[app]"')


def test_the_licence_is_the_mit_one_pyproject_declares():
    assert 'license = { text = "MIT" }' in (ROOT / "pyproject.toml").read_text()
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 DiffusionLab contributors\n")
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in text


def test_checkpoints_written_anywhere_are_ignored_but_the_shipped_ones_are_not():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path):
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT).returncode == 0

    assert ignored("checkpoints/cond.pt") and ignored("notebooks/checkpoints/flow.pt")
    assert not ignored("data/checkpoints/new.pt") and not ignored("diffusionlab/checkpoints.py")
