"""The widget tests again, under ipywidgets 7.7.1: the version Colab preloads (and the course must not upgrade
there), while a local install has ipywidgets 8. The explorers use core widgets only, so that both work; this
runs them on both.

ipywidgets 7.7.1 and ipython_genutils (which it imports) are installed once from PyPI into .cache/ (`pip install
--target`, without dependencies: traitlets, ipykernel and the rest come from this environment), then put first
on the path of a pytest run of the widget tests in a subprocess.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COLAB_IPYWIDGETS = ["ipywidgets==7.7.1", "ipython_genutils==0.2.0"]
TARGET = ROOT / ".cache" / "ipywidgets-7.7.1"
WIDGET_TESTS = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "tests").glob("test_widget*.py"))


def colab_ipywidgets() -> Path:
    """The folder holding ipywidgets 7.7.1, installed there on first use."""
    if TARGET.exists():
        return TARGET
    TARGET.parent.mkdir(exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix="ipywidgets-", dir=TARGET.parent))  # renamed when complete
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(partial),
                              *COLAB_IPYWIDGETS], capture_output=True, text=True)
    if install.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        message = f"could not install {' '.join(COLAB_IPYWIDGETS)} from PyPI:\n{install.stderr.strip()[-1500:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + "\n(offline? this test needs PyPI once)")
    partial.rename(TARGET)
    return TARGET


def run_with_colab_ipywidgets(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(colab_ipywidgets()), str(ROOT)]), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True)


def test_the_widget_tests_find_ipywidgets_7():
    assert WIDGET_TESTS, "no tests/test_widget*.py found"
    found = run_with_colab_ipywidgets("-c", "import ipywidgets; print(ipywidgets.__version__)")
    assert found.stdout.strip() == "7.7.1", found.stdout + found.stderr


def test_every_widget_test_passes_under_ipywidgets_7():
    run = run_with_colab_ipywidgets("-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
                                    *WIDGET_TESTS)
    assert run.returncode == 0, f"under ipywidgets 7.7.1:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    assert " passed" in run.stdout.splitlines()[-1] and " skipped" not in run.stdout.splitlines()[-1], run.stdout[-500:]
