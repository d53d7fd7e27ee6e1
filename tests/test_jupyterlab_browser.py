"""The course in JupyterLab 4, in a real browser: `jupyter lab` serves a three-cell notebook on a free localhost port
and Playwright drives it in headless Chromium (Debian's `chromium`, installed by .ci/run), as a student would:
Run > Run All Cells, then move a slider of lesson 1's explorer.

It checks what only a browser shows: the ipywidgets front end (jupyterlab_widgets) draws the widgets (sliders, no
"Error displaying widget" or "Failed to load model class", which a front end of another ipywidgets version shows), a
tqdm.auto progress bar is a widget, and moving a slider redraws the explorer's picture and takes away the plain copy
that `show_explorer` puts under it. Without the front end (`jupyter labextension disable
@jupyter-widgets/jupyterlab-manager`) the tests fail: no sliders, tqdm's text bar stuck at 0%; so they do when the
explorer's drawing raises. Screenshots are written to test-artefacts/jupyterlab/ (not committed). Skipped, with the
reason, only when chromium, playwright or jupyterlab is missing. About 15 s.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTEFACTS = ROOT / "test-artefacts" / "jupyterlab"
CHROMIUM = "/usr/bin/chromium"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (pip install -e '.[dev]')")

TIMEOUT_MS = 120_000

# What a lesson's last cell does (lesson 1's explorer), after a tqdm.auto loop like the training cells'.
CELLS = [
    "from tqdm.auto import tqdm\nfor _ in tqdm(range(20), desc='steps'):\n    pass",
    ("from diffusionlab import course, widgets\nfrom diffusionlab.data import load_mnist\n\n"
     "x_test, _ = load_mnist('test')\n"
     "explorer = widgets.show_explorer(widgets.make_denoise_explorer(course.load('denoiser'), x_test[:4], sigma=0.5))"),
    # lesson 5's explorer: five controls in a row, the most of any explorer
    "flow = widgets.show_explorer(widgets.make_flow_explorer({'flow': course.load('flow')}))",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kernels(base, token):
    with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`jupyter lab` on a folder holding explorer.ipynb; its settings in the same scratch folder (autosave off)."""
    import nbformat

    home = tmp_path_factory.mktemp("lab")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, home / "explorer.ipynb")
    settings = home / ".settings" / "@jupyterlab"
    for plugin, values in {"docmanager-extension/plugin": {"autosave": False},
                           "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}.items():
        (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
        (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "DIFFUSIONLAB_MODE": "fast",
           "JUPYTERLAB_SETTINGS_DIR": str(home / ".settings"), "JUPYTERLAB_WORKSPACES_DIR": str(home / ".workspaces")}
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTEFACTS / "jupyterlab.log", "w")
    command = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={home}", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", f"--IdentityProvider.token={token}", "--allow-root"]  # CI runs as root
    proc = subprocess.Popen(command, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}: see {ARTEFACTS / 'jupyterlab.log'}")
            try:
                _kernels(base, token)
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("jupyter lab did not answer within 60 s")
                time.sleep(0.3)
        yield base, token
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its kernel
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def run_all_cells(page):
    """Run > Run All Cells, as a student does; checked to have started (a notebook opened a moment ago may not yet
    be the one the menu acts on: then it is clicked again, up to three times)."""
    started = ("() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
               ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))")
    for attempt in range(3):
        page.locator(".jp-CodeCell .jp-InputPrompt").first.click()  # the notebook is the current widget
        page.locator(".lm-MenuBar-itemLabel").get_by_text("Run", exact=True).click()
        page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
        try:
            page.wait_for_function(started, timeout=15_000)
            return
        except sync_api.TimeoutError:
            print(f"Run All Cells, try {attempt + 1}: no cell started")
    raise AssertionError("Run > Run All Cells started no cell in three tries")


@pytest.fixture(scope="module")
def page(lab):
    base, token = lab
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(f"{base}/lab/tree/explorer.ipynb?token={token}")  # a new workspace: only this notebook
            page.wait_for_selector(".jp-Notebook .jp-CodeCell")
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']")  # its kernel has started
            run_all_cells(page)
            # done: both cells numbered, none waiting ([*]), and the kernel idle
            page.wait_for_function("() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]"
                                   ".map(e => e.textContent); return p.length == 3 && p.every(t => /\\[\\d+\\]/.test(t)); }")
            while any(k["execution_state"] != "idle" for k in _kernels(base, token)):
                time.sleep(0.3)
        except Exception:
            page.screenshot(path=ARTEFACTS / "notebook_failed_to_run.png")
            raise
        yield page
        page.screenshot(path=ARTEFACTS / "notebook.png")
        browser.close()


# the pictures of the explorer's cell outside the widget (show_explorer's plain copy of the first picture)
PLAIN_COPIES = ("() => [...[...document.querySelectorAll('.jp-CodeCell')][1].querySelectorAll('img')]"
                ".filter(i => !i.closest('.jupyter-widgets')).length")


def notebook_text(page):
    return page.locator(".jp-Notebook").text_content()


def explorer_picture(page):
    """The src of the picture the explorer's Output widget shows (matplotlib's inline PNG)."""
    return page.evaluate("() => [...document.querySelectorAll('.jp-CodeCell')][1]"
                         ".querySelector('.widget-output img, .jupyter-widgets-output-area img')?.src ?? ''")


def test_cells_run_without_errors_and_widgets_render(page):
    text = notebook_text(page)
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0, text
    assert "Error displaying widget" not in text and "Failed to load model class" not in text, text
    assert page.locator(".jp-Notebook .widget-slider").count() == 3 + 3  # sigma, blur, image; steps, w, seed
    assert explorer_picture(page).startswith("data:image/png")


def test_tqdm_progress_bar_is_a_widget(page):
    bar = page.locator(".jp-CodeCell").first.locator(".widget-hprogress .progress-bar")
    assert bar.count() == 1
    assert "20/20" in page.locator(".jp-CodeCell").first.text_content()


def test_moving_a_slider_redraws_the_picture(page):
    cell = page.locator(".jp-CodeCell").nth(1)
    assert cell.locator(".widget-slider").count() == 3, "the explorer shows no sliders"
    slider = cell.locator(".widget-slider").first  # noise sigma, 0.50
    assert slider.locator(".widget-readout").inner_text().strip() == "0.50"
    before = explorer_picture(page)
    assert page.evaluate(PLAIN_COPIES) == 1  # the plain copy of the picture, for readers without a kernel
    handle = slider.locator(".noUi-handle")
    handle.focus()
    handle.press("ArrowRight")  # one step: 0.55
    try:
        page.wait_for_function("(old) => { const c = [...document.querySelectorAll('.jp-CodeCell')][1];"
                               " const i = c.querySelector('.widget-output img, .jupyter-widgets-output-area img');"
                               " return i && i.src != old && i.naturalWidth > 0; }", arg=before, timeout=30_000)
    except sync_api.TimeoutError:
        cell.screenshot(path=ARTEFACTS / "explorer_not_redrawn.png")
        raise AssertionError(f"the picture did not change in 30 s; the cell shows:\n{cell.text_content()[-2000:]}")
    assert slider.locator(".widget-readout").inner_text().strip() == "0.55"
    page.wait_for_function(f"() => ({PLAIN_COPIES})() == 0")  # the copy went away
    assert cell.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    cell.screenshot(path=ARTEFACTS / "explorer_after_slider.png")


def test_every_slider_has_room_to_move(page):
    """A row of controls wider than the notebook wraps: before, lesson 5's five controls squeezed its sliders to a
    dot (the steps slider's track was 0 px wide in a 1300 px window)."""
    widths = page.evaluate("() => [...document.querySelectorAll('.jp-Notebook .widget-slider')].map(s =>"
                           " [s.querySelector('.widget-label').textContent,"
                           " Math.round(s.querySelector('.slider-container').getBoundingClientRect().width)])")
    assert len(widths) == 6 and all(width >= 100 for _, width in widths), widths

