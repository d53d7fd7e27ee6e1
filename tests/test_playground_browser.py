"""The playground in a real browser: Voila serves notebooks/playground.ipynb on a free localhost port and
Playwright drives it in headless Chromium (Debian's `chromium`, installed by .ci/run).

Screenshots and the measured click-to-image times are written to test-artefacts/playground/ (not committed).
Skipped, with the reason, only when chromium or playwright is missing.
"""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTEFACTS = ROOT / "test-artefacts" / "playground"
CHROMIUM = "/usr/bin/chromium"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("voila", reason="voila is not installed (pip install -e '.[app]')")

TIMEOUT_MS = 120_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    log = open(ARTEFACTS / "voila.log", "w")
    sys.path.insert(0, str(ROOT))
    from diffusionlab.cli import playground_command

    proc = subprocess.Popen(playground_command(port, ROOT / "notebooks" / "playground.ipynb"), cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"voila exited with {proc.returncode}: see {ARTEFACTS / 'voila.log'}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("voila did not start listening within 60 s")
                time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # voila and its kernel
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1200, "height": 1300})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server, timeout=TIMEOUT_MS)
        page.wait_for_selector(".pg-app", timeout=TIMEOUT_MS)
        yield page
        browser.close()


def tab(page, title):
    page.locator(".lm-TabBar-tab, .p-TabBar-tab", has_text=title).click()


def fill(page, selector, value):
    """Type into a text box (its value reaches the kernel when the box is left)."""
    box = page.locator(f"{selector} input, {selector} textarea").first
    box.fill(str(value))
    box.press("Tab")


def set_slider(page, selector, value):
    """Type a value into a slider's editable readout."""
    readout = page.locator(f"{selector} .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")
    page.wait_for_function("([s, v]) => document.querySelector(s + ' .widget-readout').textContent.trim() == v",
                           arg=[selector, str(value)])


def src(page, selector):
    img = page.locator(selector)
    return img.get_attribute("src") if img.count() else None


def click_and_wait_image(page, button, image):
    """Click `button`, wait until `image` shows a new picture; returns (seconds from click to image, PNG bytes)."""
    before = src(page, image)
    start = time.perf_counter()
    page.locator(button).click()
    page.wait_for_function("([s, old]) => { const i = document.querySelector(s); return i && i.src && i.src != old"
                           " && i.complete && i.naturalWidth > 0 && getComputedStyle(i).display != 'none'; }",
                           arg=[image, before or ""], polling=20)
    seconds = time.perf_counter() - start
    return seconds, page.locator(image).screenshot()


def message(page, panel):
    return page.locator(f".pg-{panel}-message").inner_text()


def record(name, value):
    path = ARTEFACTS / "timings.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = value
    path.write_text(json.dumps(data, indent=1))


def test_page_has_the_five_tabs(page):
    titles = page.locator(".lm-TabBar-tab, .p-TabBar-tab").all_inner_texts()
    assert titles == ["Edit by instruction", "Text to image", "Digits by class", "Gallery", "About"]
    page.screenshot(path=ARTEFACTS / "edit_tab.png")


def test_text_to_image_responds_to_seed_prompt_and_bad_words(page):
    tab(page, "Text to image")
    fill(page, ".pg-text-prompt", "a thick seven")
    assert page.locator(".pg-text-steps .widget-readout").inner_text().strip() == "20"
    times = []
    for seed in (10, 11, 12):  # the click-to-image time at 20 DDIM steps (4 digits); a new seed, a new picture
        fill(page, ".pg-text-seed", seed)
        seconds, _ = click_and_wait_image(page, ".pg-text-run", ".pg-text-result")
        times.append(round(seconds, 3))
    record("text_to_image_20_steps_click_to_image_s", times)
    print(f"text to image, 20 DDIM steps, click to image: {times} s")
    assert "4 digits in" in message(page, "text")
    page.screenshot(path=ARTEFACTS / "text_tab.png")
    fill(page, ".pg-text-seed", 0)
    _, first = click_and_wait_image(page, ".pg-text-run", ".pg-text-result")
    fill(page, ".pg-text-seed", 1)
    _, other_seed = click_and_wait_image(page, ".pg-text-run", ".pg-text-result")
    assert other_seed != first
    fill(page, ".pg-text-prompt", "a small 2 leaning right")
    _, other_prompt = click_and_wait_image(page, ".pg-text-run", ".pg-text-result")
    assert other_prompt not in (first, other_seed)
    fill(page, ".pg-text-prompt", "a purple seven")
    page.locator(".pg-text-run").click()
    page.wait_for_function("() => document.querySelector('.pg-text-message').innerText.includes('purple')")
    assert "unknown word" in message(page, "text")
    page.screenshot(path=ARTEFACTS / "text_tab_unknown_word.png")
    fill(page, ".pg-text-prompt", " ")
    page.locator(".pg-text-run").click()
    page.wait_for_function("() => document.querySelector('.pg-text-message').innerText.includes('Type a prompt')")
    fill(page, ".pg-text-prompt", "a four")  # and the page still works
    click_and_wait_image(page, ".pg-text-run", ".pg-text-result")


def test_a_long_run_shows_progress_and_stops(page):
    tab(page, "Text to image")
    fill(page, ".pg-text-prompt", "a five")
    set_slider(page, ".pg-text-steps", 1000)
    page.locator(".pg-text-run").click()
    page.wait_for_function("() => { const b = document.querySelector('.pg-text-message'); "
                           "return b.innerText.includes('Drawing'); }")
    page.wait_for_function("() => [...document.querySelectorAll('.pg-progress')].some(p => p.offsetParent &&"
                           " parseFloat(p.querySelector('.progress-bar').style.width || '0') > 0)")  # it moves
    page.screenshot(path=ARTEFACTS / "text_tab_progress.png")
    page.locator(".pg-stop:visible").click()
    page.wait_for_function("() => document.querySelector('.pg-text-message').innerText.includes('Stopped after')")
    done = int(message(page, "text").split("Stopped after ")[1].split()[0])
    assert 0 < done < 1000
    page.screenshot(path=ARTEFACTS / "text_tab_stopped.png")
    set_slider(page, ".pg-text-steps", 20)
    click_and_wait_image(page, ".pg-text-run", ".pg-text-result")  # it works again after the stop


def test_digits_by_class_respond_to_the_seed(page):
    tab(page, "Digits by class")
    _, first = click_and_wait_image(page, ".pg-class-run", ".pg-class-result")
    fill(page, ".pg-class-seed", 5)
    _, second = click_and_wait_image(page, ".pg-class-run", ".pg-class-result")
    assert first != second
    page.screenshot(path=ARTEFACTS / "class_tab.png")


def _picture(kind):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (300, 180) if kind == "png" else (120, 260), "white")  # not square
    draw = ImageDraw.Draw(img)
    draw.line([(100, 30), (200, 30), (130, 150)] if kind == "png" else [(30, 40), (90, 40), (60, 220)],
              fill="black", width=14)
    buf = io.BytesIO()
    img.save(buf, format="PNG" if kind == "png" else "JPEG")
    return buf.getvalue()


def upload(page, path):
    """Choose a file with the upload button (ipywidgets 8 makes its file input only when clicked)."""
    with page.expect_file_chooser() as chooser:
        page.locator(".pg-upload").click()
    chooser.value.set_files(str(path))


def test_upload_of_png_jpeg_and_a_file_that_is_no_image(page, tmp_path):
    tab(page, "Edit by instruction")
    page.locator(".pg-source button", has_text="upload").click()
    page.wait_for_function("() => document.querySelector('.pg-edit-message').innerText.includes('Upload a picture')")
    shots = []
    for name in ("wide.png", "tall.jpg"):
        path = tmp_path / name
        path.write_bytes(_picture("png" if name.endswith("png") else "jpeg"))
        before = src(page, ".pg-edit-input")
        upload(page, path)
        page.wait_for_function("([old]) => { const i = document.querySelector('.pg-edit-input');"
                               " return i.src && i.src != old && i.naturalWidth > 0 && "
                               "getComputedStyle(i).display != 'none'; }", arg=[before or ""])
        shots.append(page.locator(".pg-edit-input").screenshot())
        page.screenshot(path=ARTEFACTS / f"upload_{name.replace('.', '_')}.png")
    assert shots[0] != shots[1]
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    upload(page, text)
    page.wait_for_function("() => document.querySelector('.pg-edit-message').innerText.includes('as an image')")
    page.screenshot(path=ARTEFACTS / "upload_not_an_image.png")
    page.locator(".pg-source button", has_text="test digit").click()  # the page keeps working
    page.wait_for_function("() => getComputedStyle(document.querySelector('.pg-edit-input')).display != 'none'")


def test_edit_tab_edits_a_test_digit_by_an_instruction(page):
    tab(page, "Edit by instruction")
    page.locator(".pg-source button", has_text="test digit").click()
    assert not page.locator(".pg-edit-run").is_disabled(), message(page, "edit")  # the shipped model is loaded
    before = src(page, ".pg-edit-input")
    page.locator(".pg-pick-digit select").select_option("4")
    page.wait_for_function("([old]) => document.querySelector('.pg-edit-input').src != old", arg=[before])
    fill(page, ".pg-edit-instruction", "turn it into a 9")
    assert page.locator(".pg-edit-steps .widget-readout").inner_text().strip() == "20"
    times = []
    for seed in (10, 11, 12):  # the click-to-image time of an edit at 20 DDIM steps; a new seed, a new picture
        fill(page, ".pg-edit-seed", seed)
        seconds, _ = click_and_wait_image(page, ".pg-edit-run", ".pg-edit-result")
        times.append(round(seconds, 3))
    record("edit_20_steps_click_to_image_s", times)
    print(f"edit, 20 DDIM steps, click to image: {times} s")
    assert "Done in" in message(page, "edit")
    page.screenshot(path=ARTEFACTS / "edit_tab_result.png")
    fill(page, ".pg-edit-seed", 0)
    _, first = click_and_wait_image(page, ".pg-edit-run", ".pg-edit-result")
    fill(page, ".pg-edit-seed", 3)
    _, other_seed = click_and_wait_image(page, ".pg-edit-run", ".pg-edit-result")
    assert other_seed != first
    fill(page, ".pg-edit-seed", 0)
    fill(page, ".pg-edit-instruction", "make it thicker")
    _, other_instruction = click_and_wait_image(page, ".pg-edit-run", ".pg-edit-result")
    assert other_instruction not in (first, other_seed)
    assert page.locator(".pg-edit-strip").is_visible()  # the reverse process
    fill(page, ".pg-edit-instruction", "make it purple")
    page.locator(".pg-edit-run").click()
    page.wait_for_function("() => document.querySelector('.pg-edit-message').innerText.includes('unknown word')")
    assert "purple" in message(page, "edit")
    page.screenshot(path=ARTEFACTS / "edit_tab_unknown_word.png")
    fill(page, ".pg-edit-instruction", " ")
    page.locator(".pg-edit-run").click()
    page.wait_for_function("() => document.querySelector('.pg-edit-message').innerText.includes('Type an instruction')")
    fill(page, ".pg-edit-instruction", "turn it into a 9")  # and the page still works
    click_and_wait_image(page, ".pg-edit-run", ".pg-edit-result")


def test_a_long_edit_shows_progress_and_stops(page):
    tab(page, "Edit by instruction")
    fill(page, ".pg-edit-instruction", "make it smaller")
    set_slider(page, ".pg-edit-steps", 1000)
    page.locator(".pg-edit-run").click()
    page.wait_for_function("() => document.querySelector('.pg-edit-message').innerText.includes('Editing')")
    page.wait_for_function("() => [...document.querySelectorAll('.pg-progress')].some(p => p.offsetParent &&"
                           " parseFloat(p.querySelector('.progress-bar').style.width || '0') > 0)")  # it moves
    page.screenshot(path=ARTEFACTS / "edit_tab_progress.png")
    page.locator(".pg-stop:visible").click()
    page.wait_for_function("() => document.querySelector('.pg-edit-message').innerText.includes('Stopped after')")
    done = int(message(page, "edit").split("Stopped after ")[1].split()[0])
    assert 0 < done < 1000
    set_slider(page, ".pg-edit-steps", 20)
    click_and_wait_image(page, ".pg-edit-run", ".pg-edit-result")  # it works again after the stop


def test_gallery_example_opens_in_its_tab(page):
    tab(page, "Gallery")
    page.screenshot(path=ARTEFACTS / "gallery_tab.png")
    before = src(page, ".pg-edit-result")
    page.locator(".pg-gallery-edit-0").click()
    page.wait_for_function("([old]) => { const i = document.querySelector('.pg-edit-result'); return i.src != old"
                           " && getComputedStyle(i).display != 'none'; }", arg=[before or ""])
    assert page.locator(".lm-TabBar-tab.lm-mod-current, .p-TabBar-tab.p-mod-current").inner_text() == \
        "Edit by instruction"
    assert page.locator(".pg-edit-instruction input").input_value() == "turn it into a 3"
    page.wait_for_function("() => document.querySelector('.pg-edit-message').innerText.includes('Done in')")
    page.screenshot(path=ARTEFACTS / "edit_tab_gallery_example.png")
    tab(page, "Gallery")
    before = src(page, ".pg-text-result")
    page.locator(".pg-gallery-text-1").click()
    page.wait_for_function("([old]) => document.querySelector('.pg-text-result').src != old", arg=[before or ""])
    assert page.locator(".lm-TabBar-tab.lm-mod-current, .p-TabBar-tab.p-mod-current").inner_text() == "Text to image"
    assert page.locator(".pg-text-prompt input").input_value() == "a thin eight"


def test_about_tab_has_the_maths_and_measured_figures(page):
    tab(page, "About")
    text = page.locator(".pg-app").inner_text()
    assert "InstructPix2Pix" in text and "376 k" in text
    assert "99.6%" in text and "92.2%" in text and "93.3%" in text and "6850 pairs" in text  # lesson 7's and lesson 9's measures
    page.screenshot(path=ARTEFACTS / "about_tab.png")
