"""environment.yml: conda-forge only, its PyTorch build named, the same torch floor as pyproject.toml."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_uses_conda_forges_pytorch():
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "environment.yml").read_text()
    env = yaml.safe_load(text)
    assert env["name"] == "diffusionlab"
    assert env["channels"] == ["conda-forge"]  # PyTorch's own channel is no longer updated
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    names = [re.split(r"[=<>!\s]", d)[0] for d in conda]
    assert "cpuonly" not in names and "pytorch-cuda" not in names  # the old channel's selectors
    assert "pytorch-cpu" in names and "pytorch-gpu" in text  # the CPU build, and the CUDA build named
    floor = re.search(r'"torch>=([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert f"pytorch>={floor}" in conda
    assert {"-e .[dev]"} == set(next(d for d in env["dependencies"] if isinstance(d, dict))["pip"])
