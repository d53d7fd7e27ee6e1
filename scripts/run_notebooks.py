"""Execute the solution notebooks top to bottom and print how long each took.

    python scripts/run_notebooks.py                        # every notebook, fast mode, outputs saved in place
    python scripts/run_notebooks.py --mode full --out DIR  # full mode (a GPU), executed copies written to DIR
    python scripts/run_notebooks.py --mode full --out DIR --jobs 9 --deadline 3600  # all at once on one GPU
    python scripts/run_notebooks.py --mode full --budget fast --out DIR --jobs 2  # full mode's code, fast budgets (CPU)
    python scripts/run_notebooks.py notebooks/06_editing.ipynb
    python scripts/run_notebooks.py --clean-only notebooks/06_editing.ipynb  # only tidy the saved outputs

This is how the outputs stored in notebooks/ are made (fast mode, so that nbval in CI compares like
with like) and how full mode is timed on a GPU. After saving in place, run scripts/make_lessons.py.

Before saving, `clean_outputs` turns each progress bar (a tqdm widget, which a reader without a live kernel sees
as its first text, "training:   0%|   | 0/60") into one line of text with the bar's final state, read from
the saved widget state ("training: 100% 60/60 [00:05<00:00, loss=0.0312]"), drops the saved state of
widgets that no output shows any more, and stores each figure as a smaller PNG of the same pixels (`smaller_png`),
which keeps every notebook under 1 MB.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import os
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nbformat
import numpy as np
from jupyter_client import KernelManager
from nbclient import NotebookClient
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# tqdm's text: "desc:  42%|####      | 42/100 [00:01<00:02, 30.1it/s]" (the bar part may be empty)
PROGRESS_TEXT = re.compile(r"\d+%\|[^|\n]*\|\s*\d+(\.\d+)?[kMG]?/\d+")


def _model(state: dict, ref: str) -> dict | None:
    """The saved state of the widget model `ref` ("IPY_MODEL_<id>" or "<id>"), or None."""
    return state.get(ref.removeprefix("IPY_MODEL_"), {}).get("state")


def progress_bar_text(output: dict, state: dict) -> str | None:
    """The final text of a tqdm notebook bar shown by `output` (a display_data of an HBox [HTML, progress,
    HTML]), from the saved widget state; None if the output is not a progress bar."""
    data = output.get("data", {})
    plain = "".join(data.get("text/plain", ""))
    if output.get("output_type") != "display_data" or WIDGET_VIEW not in data or not PROGRESS_TEXT.search(plain):
        return None
    box = _model(state, data[WIDGET_VIEW]["model_id"]) or {}
    parts = [_model(state, ref) or {} for ref in box.get("children", [])]
    if len(parts) != 3:
        return plain.splitlines()[0]  # no saved state: the best we have is the bar's text when it was shown
    left, right = (html.unescape(p.get("value", "")).replace("\u2007", " ").strip() for p in (parts[0], parts[2]))
    return f"{left} {right}".strip()


def _references(value) -> list[str]:
    """The widget ids that a saved widget state refers to ("IPY_MODEL_<id>" strings, at any depth)."""
    if isinstance(value, str):
        return [value.removeprefix("IPY_MODEL_")] if value.startswith("IPY_MODEL_") else []
    if isinstance(value, dict):
        value = list(value.values())
    return [ref for item in value for ref in _references(item)] if isinstance(value, list) else []


def smaller_png(data: str) -> str:
    """The base64 PNG `data` stored again, pixel for pixel, in fewer bytes (or `data` itself if that is smaller).

    matplotlib saves an opaque figure as RGBA, 4 bytes a pixel, though a figure of digits has a few hundred grays:
    without the alpha channel, and with a palette when there are at most 256 colours, the file is about half."""
    rgba = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGBA"))  # (H, W, 4) uint8
    opaque = bool((rgba[..., 3] == 255).all())
    pixels = rgba[..., :3] if opaque else rgba
    packed = np.zeros(pixels.shape[:2], dtype=np.uint32)  # one number per colour, to count the colours
    for channel in range(pixels.shape[2]):
        packed = (packed << 8) | pixels[..., channel]
    colors, index = np.unique(packed, return_inverse=True)
    if len(colors) <= 256:
        height, width = packed.shape
        image = Image.frombytes("P", (width, height), index.astype(np.uint8).tobytes())
        shifts = 8 * np.arange(pixels.shape[2] - 1, -1, -1)  # unpack: the first channel is in the high bits
        palette = (colors[:, None] >> shifts) & 255  # (colours, channels)
        image.putpalette(palette.astype(np.uint8).ravel().tolist(), rawmode="RGB" if opaque else "RGBA")
    else:
        image = Image.fromarray(np.ascontiguousarray(pixels))  # RGB or RGBA, from the last axis
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    smaller = base64.b64encode(buffer.getvalue()).decode("ascii")
    return smaller if len(smaller) < len(data) else data


def clean_outputs(nb) -> None:
    """Replace every progress bar output by a stream output with its final text, keep in the notebook's saved
    widget state only the widgets that the remaining outputs show (and what those refer to), and store every
    figure as a smaller PNG of the same pixels."""
    widgets = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {})
    state = widgets.get("state", {})
    shown = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            text = progress_bar_text(output, state)
            if text is not None:
                # stdout: a notebook shows stderr on red, like an error
                outputs.append(nbformat.v4.new_output("stream", name="stdout", text=text + "\n"))
            else:
                outputs.append(output)
                if "image/png" in output.get("data", {}):
                    output["data"]["image/png"] = smaller_png(output["data"]["image/png"])
                if WIDGET_VIEW in output.get("data", {}):
                    shown.append(output["data"][WIDGET_VIEW]["model_id"])
        cell.outputs = outputs
    keep, todo = set(), list(shown)
    while todo:
        ref = todo.pop()
        if ref in state and ref not in keep:
            keep.add(ref)
            todo += _references(state[ref].get("state", {}))
    if widgets:
        widgets["state"] = {ref: model for ref, model in state.items() if ref in keep}


def unsaved_widgets(nb) -> list[str]:
    """The widgets that an output shows but the notebook's saved widget state lacks: a reader without a live kernel
    sees "Error displaying widget" where they are. (A run can end before the kernel has sent every widget's state.)"""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return [output["data"][WIDGET_VIEW]["model_id"] for cell in nb.cells if cell.cell_type == "code"
            for output in cell.outputs if WIDGET_VIEW in output.get("data", {})
            and output["data"][WIDGET_VIEW]["model_id"] not in state]


BUDGET_TABLE = re.compile(r"^BUDGET = (\{\n.*?\n\})\[MODE\]$", re.S | re.M)  # BUDGET = {"fast": ..., "full": ...}[MODE]


def with_budget(nb, budget: str) -> bool:
    """Insert, after the setup cell, a cell that sets BUDGET to the setup cell's `budget` entry while MODE stays
    as it is: `--mode full --budget fast` runs every full-mode branch (RETRAIN = True, the full-mode checkpoints)
    with the small budgets, a check of full mode's code that takes minutes on a CPU instead of hours.
    False (and the notebook unchanged) for a notebook without budgets, such as the playground."""
    for index, cell in enumerate(nb.cells):
        found = BUDGET_TABLE.search(cell.source) if cell.cell_type == "code" else None
        if found:
            source = f"BUDGET = {found.group(1)}[{budget!r}]  # inserted by run_notebooks.py --budget\nprint(BUDGET)"
            nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
            return True
    return False


def run(path: Path, mode: str, out: Path | None, timeout: int, deadline: float | None = None,
        budget: str | None = None) -> tuple[float, str]:
    """Execute one notebook in `mode` (with the budget of `budget`, default: of `mode`); save it (in place, or into
    `out`); return (wall time in seconds, status).

    deadline: a time.time() by which the notebook must be done. The cell running then is stopped, and with `out`
    the notebook is saved as far as it ran (status "stopped at cell N: ..."), so that a timed machine still
    gives back what it ran. An error in a cell is handled the same way when `out` is given."""
    os.environ["DIFFUSIONLAB_MODE"] = mode  # the kernel inherits it; the setup cell reads it
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # a cell the run does not reach must not show the outputs of an earlier run
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    if budget and budget != mode:
        with_budget(nb, budget)
    start = time.perf_counter()
    # IPC sockets, not TCP ports: two notebooks started at once on one machine cannot pick the same port
    km = KernelManager(kernel_name="python3", transport="ipc",
                       ip=os.path.join(tempfile.mkdtemp(prefix="diffusionlab-kernel-"), "ipc"))  # an absolute path
    client = NotebookClient(nb, km=km, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    current = {"index": 0}
    client.on_cell_start = lambda cell, cell_index: current.update(index=cell_index)
    # at the deadline, interrupt the kernel: the running cell stops with KeyboardInterrupt, as with Ctrl-C
    alarm = threading.Timer(max(0.0, deadline - time.time()), km.interrupt_kernel) if deadline else None
    status = "done"
    try:
        if alarm:
            alarm.start()
        client.execute()
    except Exception as error:  # CellExecutionError, CellTimeoutError, DeadKernelError
        if out is None:
            raise
        last_line = (re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines() or [type(error).__name__])[-1]
        status = f"stopped at cell {current['index']}: {type(error).__name__}: {last_line[:300]}"
    finally:
        if alarm:
            alarm.cancel()
    seconds = time.perf_counter() - start
    clean_outputs(nb)
    missing = unsaved_widgets(nb)
    if missing and status == "done":
        status = f"done, but {len(missing)} widget(s) shown without their saved state: run this notebook again"
    target = (out / path.name) if out else path
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return seconds, status


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--mode", choices=("fast", "full"), default="fast")
    parser.add_argument("--budget", choices=("fast", "full"),
                        help="the budgets of this mode instead of --mode's (needs --out): --mode full --budget fast "
                             "checks on a CPU, in minutes, that full mode's code runs")
    parser.add_argument("--out", type=Path, help="write executed copies here instead of saving in place")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    parser.add_argument("--jobs", type=int, default=1,
                        help="notebooks run at once, each in its own kernel (full mode on a large GPU: all of them)")
    parser.add_argument("--deadline", type=float,
                        help="seconds from now by which every notebook must be done (with --out: the rest is cut)")
    parser.add_argument("--clean-only", action="store_true", help="do not execute: only clean the saved outputs")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    if args.budget and args.budget != args.mode and not args.out:
        parser.error("--budget needs --out: a run with another mode's budget must not be saved over the notebooks")
    if args.clean_only:
        for path in paths:
            nb = nbformat.read(path, as_version=4)
            clean_outputs(nb)
            nbformat.write(nb, (args.out / path.name) if args.out else path)
        return 0
    deadline = time.time() + args.deadline if args.deadline else None
    rows, failed = [], 0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        runs = {pool.submit(run, path.resolve(), args.mode, args.out, args.timeout, deadline, args.budget): path for path in paths}
        for done in as_completed(runs):
            seconds, status = done.result()
            rows.append((runs[done].name, seconds))
            failed += status != "done"
            print(f"{runs[done].name:<26} {args.mode:>4}  {seconds:7.1f} s  {status}", flush=True)
    print(f"{'total':<26} {args.mode:>4}  {sum(s for _, s in rows):7.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
