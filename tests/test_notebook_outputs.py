"""The saved outputs of the notebooks: no progress bars frozen at their first or a stale state, and no
notebook over 1 MB (figures are stored as small PNGs of the same pixels).

A tqdm bar in a notebook is a widget; a reader without a live kernel (GitHub, nbviewer) sees its text as it
was when first shown ("training:   0%|   | 0/60") or, from the saved widget state, as it was at its last
refresh (" 989/1000"). scripts/run_notebooks.py cleans executed notebooks (`clean_outputs`), and the
package's bars refresh to their final count when they close.
"""

import base64
import copy
import html
import importlib.util
import io
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from diffusionlab import samplers
from diffusionlab.schedules import NoiseSchedule

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
run_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_notebooks)

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
LESSONS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
COUNT = re.compile(r"(\d+)/(\d+)")


def leftovers(nb) -> list[str]:
    """What a reader of the saved notebook `nb` would see of progress bars that are not finished text:
    bars still shown as widgets, and any bar text (in an output or the saved widget state) short of its total."""
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            text = "".join(output.get("text", "")) + "".join(data.get("text/plain", ""))
            if not run_notebooks.PROGRESS_TEXT.search(text):
                continue
            if run_notebooks.WIDGET_VIEW in data:
                found.append(f"a progress bar widget: {text.splitlines()[0]!r}")
            for line in text.replace("\r", "\n").splitlines():
                match = run_notebooks.PROGRESS_TEXT.search(line) and COUNT.search(line)
                if match and int(match.group(1)) < int(match.group(2)):
                    found.append(f"a bar that stops short of its total: {line!r}")
    state = nb.metadata.get("widgets", {}).get(run_notebooks.WIDGET_STATE, {}).get("state", {})
    for model in state.values():
        value = html.unescape(str(model.get("state", {}).get("value", ""))).replace("\u2007", " ")
        match = COUNT.fullmatch(value.strip().split(" ")[0]) if "/" in value else None
        if match and int(match.group(1)) < int(match.group(2)):
            found.append(f"saved widget state of a bar that stops short of its total: {value.strip()!r}")
    return found


def bar_notebook(left: str, value: float, total: float, right: str, plain: str):
    """A notebook with one cell whose output is a tqdm bar, with its saved widget state (as nbclient saves it)."""
    ids = ["box", "left", "bar", "right", "layout"]
    state = {
        "box": {"model_name": "HBoxModel", "state": {"children": [f"IPY_MODEL_{i}" for i in ids[1:4]],
                                                     "layout": "IPY_MODEL_layout"}},
        "left": {"model_name": "HTMLModel", "state": {"value": left.replace(" ", "\u2007")}},
        "bar": {"model_name": "FloatProgressModel", "state": {"value": value, "max": total}},
        "right": {"model_name": "HTMLModel", "state": {"value": html.escape(right).replace(" ", "\u2007")}},
        "layout": {"model_name": "LayoutModel", "state": {}},
        "unused": {"model_name": "LayoutModel", "state": {}},
    }
    cell = nbformat.v4.new_code_cell("train(model)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        run_notebooks.WIDGET_VIEW: {"model_id": "box", "version_major": 2, "version_minor": 0}, "text/plain": plain}),
        nbformat.v4.new_output("stream", name="stdout", text="done\n")]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["widgets"] = {run_notebooks.WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}
    return nb


def test_leftovers_finds_a_bar_at_its_first_state_and_a_stale_saved_count():
    nb = bar_notebook("ddpm sampling:  99%", 989, 1000, " 989/1000 [00:06<00:00, 144.97it/s]",
                      "ddpm sampling:   0%|          | 0/1000 [00:00<?, ?it/s]")
    found = leftovers(nb)
    assert any("widget" in f and "0/1000" in f for f in found), found
    assert any("989/1000" in f for f in found), found


def test_clean_outputs_writes_the_final_text_of_a_bar_and_drops_its_widgets():
    nb = bar_notebook("training: 100%", 60, 60, " 60/60 [00:05<00:00, 11.2it/s, loss=0.0312]",
                      "training:   0%|          | 0/60 [00:00<?, ?it/s]")
    assert leftovers(nb)
    run_notebooks.clean_outputs(nb)
    outputs = nb.cells[0].outputs
    assert [(o.output_type, o.name) for o in outputs] == [("stream", "stdout"), ("stream", "stdout")]
    assert outputs[0].text == "training: 100% 60/60 [00:05<00:00, 11.2it/s, loss=0.0312]\n"
    assert outputs[1].text == "done\n"
    assert nb.metadata.widgets[run_notebooks.WIDGET_STATE]["state"] == {}
    assert leftovers(nb) == []


def test_clean_outputs_keeps_the_widgets_that_are_still_shown():
    nb = bar_notebook("training: 100%", 60, 60, " 60/60", "training:   0%|          | 0/60")
    slider = nbformat.v4.new_output("display_data", data={
        run_notebooks.WIDGET_VIEW: {"model_id": "layout", "version_major": 2, "version_minor": 0},
        "text/plain": "IntSlider(value=0)"})
    nb.cells[0].outputs.append(slider)
    run_notebooks.clean_outputs(nb)
    assert set(nb.metadata.widgets[run_notebooks.WIDGET_STATE]["state"]) == {"layout"}
    assert nb.cells[0].outputs[-1] == slider


def test_a_bar_that_stopped_short_stays_visibly_short():
    """A bar that really stopped early (an error) is written as it stopped, not tidied into a full one."""
    nb = bar_notebook("training:  40%", 24, 60, " 24/60 [00:02<00:03]", "training:   0%|          | 0/60")
    run_notebooks.clean_outputs(nb)
    assert nb.cells[0].outputs[0].text.startswith("training:  40% 24/60")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_cleaning_a_saved_notebook_leaves_no_progress_bar_leftovers(path):
    nb = nbformat.read(path, as_version=4)
    run_notebooks.clean_outputs(nb)
    assert leftovers(nb) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_notebook_has_no_progress_bar_leftovers(path):
    """Fails until the notebook is executed (and so cleaned) by scripts/run_notebooks.py."""
    found = leftovers(nbformat.read(path, as_version=4))
    assert not found, (f"{path.name}: run `python scripts/run_notebooks.py notebooks/{path.name}` "
                       "(or with --clean-only):\n" + "\n".join(found))


def test_unsaved_widgets_names_a_shown_widget_whose_state_was_not_saved():
    nb = bar_notebook("training: 100%", 60, 60, " 60/60", "training:   0%|          | 0/60")
    assert run_notebooks.unsaved_widgets(nb) == []
    nb.metadata["widgets"][run_notebooks.WIDGET_STATE]["state"] = {}  # what one run of lesson 9 saved
    assert run_notebooks.unsaved_widgets(nb) == ["box"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_saved_notebook_keeps_the_state_of_every_widget_it_shows(path):
    missing = run_notebooks.unsaved_widgets(nbformat.read(path, as_version=4))
    assert not missing, (f"{path.name} shows {len(missing)} widget(s) without their saved state: run "
                         f"`python scripts/run_notebooks.py notebooks/{path.name}` again")


@pytest.mark.parametrize("loop", ["sample", "ddim_invert"])
def test_a_notebook_progress_bar_ends_showing_its_total(monkeypatch, loop):
    """The sampling loops' bars in a notebook: once closed, the saved text reads 1000/1000, not the count of
    its last timed refresh (with leave=False tqdm hid the bar without refreshing it, and 989/1000 was saved)."""
    from tqdm.notebook import tqdm as notebook_tqdm

    bars = []

    class Recorded(notebook_tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            bars.append(self)

    monkeypatch.setattr(samplers, "tqdm", Recorded)
    schedule = NoiseSchedule(1000, "cosine")
    eps_fn = lambda xt, t: torch.zeros_like(xt)  # noqa: E731
    if loop == "sample":
        samplers.sample(eps_fn, (1, 1, 4, 4), schedule, steps=1000, progress=True, generator=torch.Generator().manual_seed(0))
    else:
        samplers.ddim_invert(eps_fn, torch.zeros(1, 1, 4, 4), schedule, steps=1000, progress=True)
    (bar,) = bars
    left, progress, right = bar.container.children
    assert progress.value == 1000 and "1000/1000" in right.value, (left.value, right.value)


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name)
def test_with_budget_runs_full_mode_code_with_the_fast_budget(path):
    """`--mode full --budget fast` inserts, after the setup cell, a cell that sets BUDGET to the notebook's own fast
    entry: every lesson must keep its budgets in the one `BUDGET = {...}[MODE]` table that this finds."""
    nb = nbformat.read(path, as_version=4)
    sources = [cell.source for cell in nb.cells]
    assert run_notebooks.with_budget(nb, "fast"), f"{path.name}: no `BUDGET = {{...}}[MODE]` table"
    index = next(i for i, cell in enumerate(nb.cells) if "inserted by run_notebooks.py" in cell.source)
    assert [cell.source for i, cell in enumerate(nb.cells) if i != index] == sources
    setup, inserted = nb.cells[index - 1].source, nb.cells[index].source
    namespace = {"MODE": "full"}
    exec(run_notebooks.BUDGET_TABLE.search(setup).group(0).replace("[MODE]", '["fast"]'), namespace)
    fast = namespace["BUDGET"]
    exec(inserted.replace("print(BUDGET)", ""), namespace)
    assert namespace["BUDGET"] == fast and namespace["MODE"] == "full"


def test_with_budget_leaves_a_notebook_without_budgets_as_it_is():
    nb = nbformat.read(ROOT / "notebooks" / "playground.ipynb", as_version=4)
    cells = len(nb.cells)
    assert not run_notebooks.with_budget(nb, "fast") and len(nb.cells) == cells


@pytest.mark.parametrize("path", NOTEBOOKS + sorted((ROOT / "lessons").glob("*.ipynb")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_is_under_1_MB(path):
    """GitHub and nbviewer show a notebook of a few hundred KB at once; over 1 MB they slow or refuse."""
    assert path.stat().st_size < 1_000_000, f"{path.name}: {path.stat().st_size:,} bytes"


def _png(pixels) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _rgba(data: str):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGBA"))


def _figure_png() -> str:
    """A figure as the inline backend stores it: opaque RGBA, grays and antialiased text."""
    fig = Figure(figsize=(3, 2), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(np.random.default_rng(0).random((28, 28)), cmap="gray")
    ax.set_title("t = 999")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@pytest.mark.parametrize("kind", ["figure", "few colours, transparent", "many colours", "many colours, transparent"])
def test_smaller_png_keeps_every_pixel(kind):
    rng = np.random.default_rng(0)
    if kind == "figure":
        data = _figure_png()
    elif kind == "few colours, transparent":
        data = _png(rng.choice(np.array([[0, 0, 0, 0], [255, 0, 0, 128], [9, 9, 9, 255]], np.uint8), size=(20, 30)))
    else:
        data = _png(rng.integers(0, 256, size=(20, 30, 4 if "transparent" in kind else 3), dtype=np.uint8))
    smaller = run_notebooks.smaller_png(data)
    assert len(smaller) <= len(data)
    assert np.array_equal(_rgba(smaller), _rgba(data))


def test_smaller_png_halves_a_figure_of_digits():
    data = _figure_png()
    assert _rgba(data).shape[2] == 4 and len(run_notebooks.smaller_png(data)) < 0.7 * len(data)


def test_clean_outputs_stores_figures_as_smaller_pngs():
    data = _figure_png()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("plot()", outputs=[
        nbformat.v4.new_output("display_data", data={"image/png": data, "text/plain": "<Figure>"})])])
    run_notebooks.clean_outputs(nb)
    stored = nb.cells[0].outputs[0]["data"]["image/png"]
    assert len(stored) < len(data) and np.array_equal(_rgba(stored), _rgba(data))
