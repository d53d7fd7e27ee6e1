"""Execute the solution notebooks top to bottom and print how long each took.

    python scripts/run_notebooks.py                        # every notebook, fast mode, outputs saved in place
    python scripts/run_notebooks.py --mode full --out DIR  # full mode (a GPU), executed copies written to DIR
    python scripts/run_notebooks.py notebooks/06_editing.ipynb

This is how the outputs stored in notebooks/ are made (fast mode, so that nbval in CI compares like
with like) and how full mode is timed on a GPU. After saving in place, run scripts/make_lessons.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def run(path: Path, mode: str, out: Path | None, timeout: int) -> float:
    """Execute one notebook in `mode`; save it (in place, or into `out`); return the wall time in seconds."""
    os.environ["DIFFUSIONLAB_MODE"] = mode  # the kernel inherits it; the setup cell reads it
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    seconds = time.perf_counter() - start
    target = (out / path.name) if out else path
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--mode", choices=("fast", "full"), default="fast")
    parser.add_argument("--out", type=Path, help="write executed copies here instead of saving in place")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    rows = []
    for path in paths:
        seconds = run(path.resolve(), args.mode, args.out, args.timeout)
        rows.append((path.name, seconds))
        print(f"{path.name:<24} {args.mode:>4}  {seconds:7.1f} s", flush=True)
    print(f"{'total':<24} {args.mode:>4}  {sum(s for _, s in rows):7.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
