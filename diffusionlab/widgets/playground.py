"""The playground: the course's models behind one web page, served with Voila (`diffusionlab playground`).

A visualizer site for InstructPix2Pix (Brooks, Holynski & Efros 2022), made of core ipywidgets (7.7 and 8) so
that the notebook `notebooks/playground.ipynb` only lays it out. Five tabs:
  - "Edit by instruction" (lesson 9): a digit picked from the MNIST test set, drawn on a grid or uploaded (any
    size or mode: `data.load_image`), an instruction and a negative prompt, the model variant, steps 2..1000,
    "temperature" 0.1..1 (SDEdit's strength: how far from the input the edit starts; 1 = from pure noise), the
    text guidance s_T and the image guidance s_I of eq. 3, a seed; the result, its time and the reverse process;
  - "Text to image" (lesson 7): prompt, negative prompt, guidance, steps, seed (guidance acts in lesson 7's
    recommended interval of timesteps, `latent.RECOMMENDED_GUIDANCE`);
  - "Digits by class" (lesson 3): class, guidance, steps, seed;
  - "Gallery": examples that work with the shipped models, each one click from the editor (or the text tab);
  - "About": the maths, the measured figures of the models (benchmarks/RESULTS.md) and how often an edit works.
The controls' defaults are the pipelines' (`instruct.DEFAULT_TEXT_GUIDANCE`, `latent.RECOMMENDED_GUIDANCE`...), their
bounds the public visualizer's: steps 2..1000, temperature 0.1..1, guidance scales 1..14 in the edit and text tabs
(the class tab's guidance w runs 0..10, where 0 is the unconditional model).

Sampling runs in a background thread (`Runner`), so the page stays live: the sampler's callback moves the
progress bar after every step and raises `Stopped` once Stop is pressed. Bad input (an empty instruction, an
unknown word, a file that is no image, a temperature too low to run one of the steps) is told in the panel's
message line, and the page keeps working.
Tests build the panels with `background=False`, which runs the same code in the caller's thread.
"""

from __future__ import annotations

import html
import inspect
import io
import math
import threading
import time
import warnings

import ipywidgets as W
import numpy as np
import torch

from ..data import load_image
from ..pipelines import instruct, latent  # lesson 9's and lesson 7's defaults
from ..pipelines.pixel import DEFAULT_GUIDANCE
from ..utils import make_generator
from .editing import read_uploads

MAX_STEPS = instruct.MAX_STEPS  # the public visualizer's bounds: steps 2..1000, temperature 0.1..1, CFG 1..14
MAX_CFG = 14.0
DEFAULT_STEPS = 20  # DDIM steps of the text and class tabs when the page opens (and of the gallery's examples)
SEED_MAX = 99999
DRAW_SIZE = 14  # the drawing grid: 14 x 14 cells, placed like an MNIST digit by `load_image`
# (label in the page, the pipeline's variant name): the six of the public visualizer, less its unshipped sixth
VARIANTS = (
    ("full: CFG + DDIM", "full"),
    ("no DDIM: CFG + DDPM ancestral sampling", "no-ddim"),
    ("no CFG: DDIM, s_I = s_T = 1", "no-cfg"),
    ("no CFG and no DDIM", "no-cfg-no-ddim"),
    ("img2img baseline: SDEdit with the lesson-7 model", "img2img"),
)
# Examples for the gallery, edits that work: each was run with the shipped pix2pix.pt at the default settings
# (`EditPanel.DEFAULTS`) on its MNIST test digit (digit, which example of it) for seeds 0-7, and did what it says
# for all eight but "make it thinner" (seven of eight: seed 3 failed). tests/test_widgets_playground.py checks each
# for the seed given. Two of each kind of lesson-9 instruction.
EDIT_EXAMPLES = (
    {"digit": 7, "example": 0, "instruction": "turn it into a 3", "seed": 0},
    {"digit": 4, "example": 0, "instruction": "turn it into a 9", "seed": 0},
    {"digit": 7, "example": 0, "instruction": "make it thicker", "seed": 0},
    {"digit": 9, "example": 0, "instruction": "make it thinner", "seed": 0},
    {"digit": 0, "example": 0, "instruction": "make it smaller", "seed": 0},
    {"digit": 6, "example": 0, "instruction": "make it larger", "seed": 0},
    {"digit": 0, "example": 2, "instruction": "lean it to the right", "seed": 0},
    {"digit": 1, "example": 0, "instruction": "lean it to the left", "seed": 0},
)
# Text-to-image examples, looked at with the shipped text.pt at seed 0 (8 samples each): a negative prompt moves
# an attribute less than a positive word does (benchmarks/RESULTS.md), so only one example uses it.
TEXT_GUIDANCE = latent.RECOMMENDED_GUIDANCE["guidance_scale"]  # in latent.RECOMMENDED_GUIDANCE's interval of timesteps
TEXT_EXAMPLES = (
    {"prompt": "a thick seven", "negative_prompt": "", "guidance_scale": TEXT_GUIDANCE, "seed": 0},
    {"prompt": "a thin eight", "negative_prompt": "", "guidance_scale": TEXT_GUIDANCE, "seed": 0},
    {"prompt": "a four", "negative_prompt": "a four leaning left", "guidance_scale": TEXT_GUIDANCE,
     "seed": 0},
    {"prompt": "a large five", "negative_prompt": "", "guidance_scale": TEXT_GUIDANCE, "seed": 0},
)


class Stopped(Exception):
    """Raised inside the sampling loop (by `Runner.callback`) when Stop was pressed."""


def to_png(images: torch.Tensor, scale: int = 4, nrow: int | None = None, pad: int = 2) -> bytes:
    """PNG bytes of images (N, 1, H, W) in [-1, 1] in a grid of `nrow` columns, each pixel scale x scale."""
    from PIL import Image

    if images.dim() != 4 or images.shape[1] != 1 or len(images) == 0:
        raise ValueError(f"images must have shape (N, 1, H, W) with N >= 1, got {tuple(images.shape)}")
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    n, _, h, w = x.shape
    nrow = min(nrow or n, n)
    rows = -(-n // nrow)
    canvas = np.full((pad + rows * (h + pad), pad + nrow * (w + pad)), 96, np.uint8)  # grey gaps
    for k in range(n):
        r, c = divmod(k, nrow)
        canvas[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = x[k, 0]
    img = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _set_image(widget: W.Image, png: bytes):
    """Show png in an Image widget; hidden while empty (an empty <img> shows a broken-image icon)."""
    widget.value = png
    widget.layout.display = None if png else "none"


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _message(text: str, error: bool = False) -> str:
    color = "#b00020" if error else "#333"
    return f'<span style="color:{color}">{html.escape(text)}</span>'


class Runner:
    """One sampling job at a time, with a progress bar and a Stop button.

    start(job, total, done): job(callback) runs (in a thread when `background`), calling callback(...) after each
    of its `total` steps; done(result) gets job's return value, or the exception it raised (`Stopped` after Stop).
    """

    def __init__(self, background: bool = True):
        self.background = background
        self.progress = W.IntProgress(value=0, min=0, max=1, description="progress")
        self.progress.add_class("pg-progress")
        self.stop_button = W.Button(description="Stop", disabled=True, button_style="warning",
                                    tooltip="stop the sampling after the current step")
        self.stop_button.add_class("pg-stop")
        self.stop_button.on_click(lambda _: self.stop())
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.steps_done = 0

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def stop(self):
        self._stop.set()

    def callback(self, *args):
        """The sampler's callback(i, t, t_prev, x_prev, x0_hat): one step done; Stop -> raise Stopped.
        The bar moves by about 1% at a time (a long run would otherwise send the page a message per step)."""
        self.steps_done += 1
        if self.steps_done == self.progress.max or self.steps_done % max(1, self.progress.max // 100) == 0:
            self.progress.value = min(self.steps_done, self.progress.max)
        if self._stop.is_set():
            raise Stopped()

    def start(self, job, total: int, done) -> bool:
        if self.busy:
            return False
        self._stop.clear()
        self.progress.max = max(1, total)
        self.progress.value = self.steps_done = 0
        self.stop_button.disabled = False

        def work():
            try:
                out = job(self.callback)
            except Exception as err:  # shown in the page; the page goes on
                out = err
            self.stop_button.disabled = True
            done(out)

        if self.background:
            self.thread = threading.Thread(target=work, daemon=True)
            self.thread.start()
        else:
            work()
        return True

    def wait(self, timeout: float | None = None):
        if self.thread is not None:
            self.thread.join(timeout)


class _Panel:
    """What the three sampling tabs share: a Runner, a message line, a result image, and `last`, the outcome
    of the last run: {"images", "seconds"}, {"error": message} or {"stopped": steps done}."""

    name = "panel"

    def __init__(self, background: bool):
        self.runner = Runner(background)
        self.message = W.HTML(value="")
        self.message.add_class(f"pg-{self.name}-message")
        self.result = W.Image(format="png", layout=W.Layout(display="none"))
        self.result.add_class(f"pg-{self.name}-result")
        self.button = W.Button(description="Run", button_style="primary")
        self.button.add_class(f"pg-{self.name}-run")
        self.button.on_click(lambda _: self.run())
        self.last: dict | None = None

    def say(self, text: str, error: bool = False):
        self.message.value = _message(text, error)

    def fail(self, text: str):
        self.last = {"error": text}
        self.say(text, error=True)

    def _start(self, job, total: int, what: str):
        if self.runner.busy:
            self.say("Still running: press Stop, or wait for it to finish.", error=True)
            return
        self.say(f"{what}...")
        self.button.disabled = True

        def done(out):
            self.button.disabled = False
            if isinstance(out, Stopped):
                self.last = {"stopped": self.runner.steps_done}
                self.say(f"Stopped after {self.runner.steps_done} of {self.runner.progress.max} steps.")
            elif isinstance(out, ValueError):  # bad input, said by the package in words
                self.fail(str(out))
            elif isinstance(out, Exception):
                self.fail(f"{type(out).__name__}: {out}")
            else:
                self.show(*out)

        self.runner.start(job, total, done)

    def _timed(self, fn):
        start = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - start


def _controls_box(panel: str, controls: dict) -> list:
    """The controls, each with the CSS class pg-<panel>-<name> (the browser tests find them by it)."""
    for name, c in controls.items():
        c.add_class(f"pg-{panel}-{name.replace('_', '-')}")
        c.style = {"description_width": "130px"}
        c.layout.width = "420px"
    return list(controls.values())


def _steps_slider(value: int) -> W.IntSlider:
    return W.IntSlider(value=value, min=2, max=MAX_STEPS, description="inference steps", continuous_update=False)


def _guidance_slider(value: float, description: str) -> W.FloatSlider:
    """A guidance scale from 1 (no guidance) to MAX_CFG, as the public visualizer's CFG control."""
    if not 1.0 <= value <= MAX_CFG or (value * 4) % 1:
        raise ValueError(f"a default guidance scale must be a multiple of 0.25 from 1 to {MAX_CFG:g}, got {value!r}")
    return W.FloatSlider(value=value, min=1.0, max=MAX_CFG, step=0.25, description=description,
                         continuous_update=False)


TEMPERATURE_TOOLTIP = ("SDEdit's strength: how far from the input the edit starts (1: pure noise; 0.5: the input "
                       "noised halfway, the last half of the steps)")


def _with_tooltip(widget: W.Widget, text: str) -> W.Widget:
    """Set the hover text of a control: `tooltip` in ipywidgets 8, `description_tooltip` in 7."""
    setattr(widget, "tooltip" if widget.has_trait("tooltip") else "description_tooltip", text)
    return widget


def _seed() -> W.BoundedIntText:
    return W.BoundedIntText(value=0, min=0, max=SEED_MAX, description="seed")


class TextPanel(_Panel):
    """Lesson 7: `pipe` (a `pipelines.latent.LatentDiffusion`) draws `n` digits for a prompt."""

    name = "text"

    def __init__(self, pipe, n: int = 4, background: bool = True):
        super().__init__(background)
        self.pipe, self.n = pipe, n
        self.controls = {
            "prompt": W.Text(value="a thick seven", description="prompt", placeholder="a small 2 leaning right"),
            "negative_prompt": W.Text(value="", description="negative prompt", placeholder="(none)"),
            "guidance_scale": _guidance_slider(TEXT_GUIDANCE, "guidance (CFG)"),
            "steps": _steps_slider(DEFAULT_STEPS),
            "seed": _seed(),
        }
        self.button.description = "Generate"
        self.ui = W.VBox([*_controls_box(self.name, self.controls), W.HBox([self.button, self.runner.stop_button,
                                                                 self.runner.progress]), self.message, self.result])

    def run(self):
        v = {k: c.value for k, c in self.controls.items()}
        prompt, negative = v["prompt"].strip(), v["negative_prompt"].strip() or None
        if not prompt:
            return self.fail("Type a prompt, for example 'a thick seven' or 'a small 2 leaning right'.")
        try:  # an unknown word: named now, before any sampling
            self.pipe.tokenizer.encode([prompt] + ([negative] if negative else []))
        except ValueError as err:
            return self.fail(str(err))
        g = make_generator(v["seed"], self.pipe.device)

        def job(callback):
            return self._timed(lambda: self.pipe.sample(prompt, n=self.n, negative_prompts=negative,
                                                        guidance_scale=v["guidance_scale"], steps=v["steps"],
                                                        generator=g, callback=callback,
                                                        guidance_interval=latent.RECOMMENDED_GUIDANCE["guidance_interval"]))

        self._start(job, v["steps"], f"Drawing {self.n} digits for {prompt!r}")

    def show(self, images, seconds):
        self.last = {"images": images, "seconds": seconds}
        _set_image(self.result, to_png(images, scale=4))
        self.say(f"{len(images)} digits in {seconds:.2f} s ({self.controls['steps'].value} DDIM steps).")


class ClassPanel(_Panel):
    """Lesson 3: the class-conditioned `model` (a `pipelines.pixel.DiffusionModel`) draws `n` digits of a class."""

    name = "class"

    def __init__(self, model, n: int = 8, background: bool = True):
        super().__init__(background)
        self.model, self.n = model, n
        self.controls = {
            "digit": W.Dropdown(options=list(range(10)), value=3, description="class"),
            "guidance_scale": W.FloatSlider(value=DEFAULT_GUIDANCE, min=0.0, max=10.0, step=0.5,
                                            description="guidance w", continuous_update=False),
            "steps": _steps_slider(DEFAULT_STEPS),
            "seed": _seed(),
        }
        self.button.description = "Draw"
        self.ui = W.VBox([*_controls_box(self.name, self.controls), W.HBox([self.button, self.runner.stop_button,
                                                                 self.runner.progress]), self.message, self.result])

    def run(self):
        v = {k: c.value for k, c in self.controls.items()}
        g = make_generator(v["seed"], self.model.device)

        def job(callback):
            return self._timed(lambda: self.model.sample(self.n, labels=[v["digit"]] * self.n,
                                                         guidance_scale=v["guidance_scale"], steps=v["steps"],
                                                         generator=g, progress=False, callback=callback))

        self._start(job, v["steps"], f"Drawing {self.n} digits of class {v['digit']}")

    def show(self, images, seconds):
        self.last = {"images": images, "seconds": seconds}
        _set_image(self.result, to_png(images, scale=3))
        self.say(f"{len(images)} digits in {seconds:.2f} s ({self.controls['steps'].value} DDIM steps).")


class EditPanel(_Panel):
    """Lesson 9: edit one digit by an instruction with `pipe`, whose `edit(images, instruction, text_guidance=,
    image_guidance=, steps=, negative_prompt=, strength=, variant=, generator=)` returns (N, 1, 28, 28) in
    [-1, 1]; a `callback=` (the sampler's) and `return_trajectory=` (-> (images, {"t", "x0": (S, N, 1, 28, 28)}))
    are used when `edit` takes them. pipe=None: the tab says why (`unavailable`) and stays disabled.
    `test_images` (N, 1, 28, 28), `test_labels` (N,): the digits to pick from."""

    name = "edit"
    # the controls' settings when the page opens, and what a gallery example does not set itself
    DEFAULTS = {"negative_prompt": "", "variant": "full", "steps": instruct.DEFAULT_STEPS, "temperature": 1.0,
                "text_guidance": instruct.DEFAULT_TEXT_GUIDANCE, "image_guidance": instruct.DEFAULT_IMAGE_GUIDANCE,
                "seed": 0}

    def __init__(self, pipe, test_images: torch.Tensor, test_labels: torch.Tensor, background: bool = True,
                 unavailable: str = "the instruction-editing model (lesson 9) is not available"):
        super().__init__(background)
        self.pipe, self.images, self.labels = pipe, test_images, test_labels
        self.unavailable = f"Not available: {unavailable}. The other tabs work."
        self.input: torch.Tensor | None = None  # (1, 1, 28, 28) in [-1, 1]
        self.input_problem = ""
        self.source = W.ToggleButtons(options=["test digit", "drawing", "upload"], value="test digit",
                                      description="input")
        self.source.add_class("pg-source")
        self.pick = {"digit": W.Dropdown(options=list(range(10)), value=7, description="test digit"),
                     "example": W.BoundedIntText(value=0, min=0, max=99, description="which one")}
        for name, c in self.pick.items():
            c.add_class(f"pg-pick-{name}")
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="upload")
        self.upload.add_class("pg-upload")
        self.cells = [W.ToggleButton(value=False, layout=W.Layout(width="18px", height="18px", padding="0px",
                                                                  margin="0px")) for _ in range(DRAW_SIZE ** 2)]
        for k, cell in enumerate(self.cells):
            cell.add_class(f"pg-cell-{k}")
        self.clear = W.Button(description="clear drawing")
        self.clear.add_class("pg-clear")
        self.preview = W.Image(format="png")
        self.preview.add_class("pg-edit-input")
        self.controls = {
            "instruction": W.Text(value="turn it into a 3", description="instruction",
                                  placeholder="make it thicker"),
            "negative_prompt": W.Text(value="", description="negative prompt", placeholder="(none)"),
            "variant": W.Dropdown(options=list(VARIANTS), value=self.DEFAULTS["variant"],
                                  description="model variant"),
            "steps": _steps_slider(self.DEFAULTS["steps"]),
            "temperature": _with_tooltip(W.FloatSlider(value=self.DEFAULTS["temperature"], min=0.1, max=1.0,
                                                       step=0.05, description="temperature", continuous_update=False),
                                         TEMPERATURE_TOOLTIP),
            "text_guidance": _guidance_slider(self.DEFAULTS["text_guidance"], "text guidance s_T"),
            "image_guidance": _guidance_slider(self.DEFAULTS["image_guidance"], "image guidance s_I"),
            "seed": _seed(),
        }
        self.button.description = "Edit"
        self.strip = W.Image(format="png", layout=W.Layout(display="none"))
        self.strip.add_class("pg-edit-strip")
        grid = W.GridBox(self.cells, layout=W.Layout(grid_template_columns=f"repeat({DRAW_SIZE}, 18px)",
                                                    grid_gap="0px", width=f"{DRAW_SIZE * 18 + 4}px"))
        self.source_boxes = {"test digit": W.VBox(list(self.pick.values())),
                             "drawing": W.VBox([grid, self.clear]), "upload": W.VBox([self.upload])}
        self.source_area = W.VBox([self.source_boxes["test digit"]])
        explain = W.HTML("<small>temperature: how far from the input the edit starts (SDEdit's strength): 1 starts "
                         "from pure noise, 0.5 noises the input halfway and runs the last half of the steps.</small>")
        self.ui = W.VBox([
            W.HBox([W.VBox([self.source, self.source_area]), W.VBox([W.HTML("input, as the model sees it"),
                                                                      self.preview])]),
            *_controls_box(self.name, self.controls), explain,
            W.HBox([self.button, self.runner.stop_button, self.runner.progress]), self.message,
            W.HBox([W.VBox([W.HTML("result"), self.result]), W.VBox([W.HTML("reverse process (estimate of the "
                                                                              "result at each step)"), self.strip])]),
        ])
        self.source.observe(lambda _: self.update_input(), names="value")
        for c in (*self.pick.values(), self.upload):
            c.observe(lambda _: self.update_input(), names="value")
        for cell in self.cells:
            cell.observe(self._drawn, names="value")
        self.clear.on_click(lambda _: self.clear_drawing())
        self.update_input()
        if pipe is None:
            self.button.disabled = True

    # -- the input digit
    def test_digit(self, digit: int, example: int) -> torch.Tensor:
        idx = (self.labels == digit).nonzero().flatten()
        return self.images[idx[example % len(idx)]].unsqueeze(0).float()  # (1, 1, 28, 28)

    def drawing(self) -> np.ndarray:
        return np.array([c.value for c in self.cells], dtype=np.float64).reshape(DRAW_SIZE, DRAW_SIZE)

    def clear_drawing(self):
        for c in self.cells:
            c.value = False

    def _drawn(self, change):
        if self.source.value == "drawing":
            self.update_input()

    def update_input(self):
        """Read the input from the chosen source into `self.input` and the preview (or say what is wrong)."""
        self.source_area.children = [self.source_boxes[self.source.value]]
        self.input, self.input_problem = None, ""
        try:
            if self.source.value == "test digit":
                self.input = self.test_digit(self.pick["digit"].value, self.pick["example"].value)
            else:
                if self.source.value == "drawing":
                    picture, name = self.drawing(), "the drawing"
                    if not picture.any():
                        raise ValueError("Draw a digit: click the cells of the grid.")
                else:
                    files = read_uploads(self.upload.value)
                    if not files:
                        raise ValueError("Upload a picture of a digit (PNG, JPEG...; any size, dark ink on light "
                                         "paper is fine).")
                    name, picture = files[-1]
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    x = load_image(picture)
                if caught:
                    raise ValueError(f"{name}: {caught[0].message}")
                self.input = x
        except ValueError as err:
            self.input_problem = str(err)
        if self.input is None:
            _set_image(self.preview, b"")
            self.say(self.input_problem, error=True)
        else:
            _set_image(self.preview, to_png(self.input, scale=4))
            self.say("" if self.pipe is not None else self.unavailable, error=self.pipe is None)

    # -- the edit
    def run(self):
        if self.pipe is None:
            return self.fail("The instruction-editing model is not available.")
        v = {k: c.value for k, c in self.controls.items()}
        instruction, negative = v["instruction"].strip(), v["negative_prompt"].strip() or None
        if not instruction:
            return self.fail("Type an instruction, for example 'turn it into a 3' or 'make it thicker'.")
        if self.input is None:
            return self.fail(self.input_problem or "Choose an input digit.")
        if hasattr(self.pipe, "tokenizer"):  # an unknown word: named now, before any sampling
            try:
                instruct.check_words(self.pipe.tokenizer, [instruction])
                if negative:
                    instruct.check_words(self.pipe.tokenizer, [negative], "negative prompt")
            except ValueError as err:
                return self.fail(str(err))
        if round(v["temperature"] * v["steps"]) < 1:  # the edit runs round(temperature * steps) of the steps
            return self.fail(f"Temperature {v['temperature']:g} of {v['steps']} steps runs no step: raise the "
                             f"temperature to at least {1 / v['steps']:.2g} or the steps to at least "
                             f"{math.ceil(1 / v['temperature'])}.")
        kwargs = dict(text_guidance=v["text_guidance"], image_guidance=v["image_guidance"], steps=v["steps"],
                      negative_prompt=negative, strength=v["temperature"], variant=v["variant"],
                      generator=make_generator(v["seed"], self.pipe.device))
        trajectory = _accepts(self.pipe.edit, "return_trajectory")
        if trajectory:
            kwargs["return_trajectory"] = True
        x = self.input

        def job(callback):
            extra = {"callback": callback} if _accepts(self.pipe.edit, "callback") else {}
            return self._timed(lambda: self.pipe.edit(x, instruction, **kwargs, **extra))

        self._start(job, max(1, round(v["temperature"] * v["steps"])), f"Editing: {instruction!r}")

    def show(self, out, seconds):
        images, trajectory = out if isinstance(out, tuple) else (out, None)
        self.last = {"images": images, "seconds": seconds}
        _set_image(self.result, to_png(images[:1], scale=6))
        if trajectory is not None:
            x0 = trajectory["x0"][:, 0]  # (S, 1, 28, 28)
            keep = np.unique(np.linspace(0, len(x0) - 1, min(8, len(x0))).round().astype(int))
            _set_image(self.strip, to_png(x0[keep], scale=2))
            self.last["trajectory"] = x0[keep]
        self.say(f"Done in {seconds:.2f} s ({self.controls['variant'].value}, {self.controls['steps'].value} steps, "
                 f"temperature {self.controls['temperature'].value:g}).")

    def load_example(self, example: dict):
        """Put a gallery example into the controls: its test digit, its instruction and seed, and every other
        setting it does not give back to `DEFAULTS` (the settings it was checked with)."""
        self.source.value = "test digit"
        self.pick["digit"].value, self.pick["example"].value = example["digit"], example["example"]
        for name, value in {**self.DEFAULTS, **example}.items():
            if name in self.controls:
                self.controls[name].value = value


ABOUT = r"""
<h3>What runs here</h3>
<p>Every picture on this page is drawn on this computer's CPU by the course's own models, trained on MNIST.
Nothing is sent anywhere. Each tab is one lesson of the course: the code is in the <code>diffusionlab</code>
package, the notebooks explain it step by step.</p>

<h3>DDPM (lesson 2)</h3>
<p>The forward process adds Gaussian noise to a digit \(x_0\) in \(T = 1000\) steps:
$$x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon, \qquad \epsilon \sim \mathcal N(0, I).$$
A UNet \(\epsilon_\theta(x_t, t)\) learns to predict the noise, minimising \(\lVert \epsilon - \epsilon_\theta(x_t, t)\rVert^2\)
(Ho et al. 2020). Sampling runs the process backwards, one step at a time (ancestral sampling, Algorithm 2):
$$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{1-\alpha_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon_\theta(x_t, t)\Big) + \sigma_t z.$$</p>

<h3>DDIM (lesson 4)</h3>
<p>Song et al. 2021: the same trained network, a deterministic update that can skip steps. With
\(\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_\theta)/\sqrt{\bar\alpha_t}\),
$$x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}}\,\epsilon_\theta(x_t, t)$$
for the next timestep \(t' < t\) of a short subsequence (20 steps instead of 1000).
"no DDIM" variants use DDPM's ancestral steps instead.</p>

<h3>Classifier-free guidance (lesson 3)</h3>
<p>Ho &amp; Salimans 2022: one network learns both the conditional and the unconditional prediction (the condition
is dropped during training), and sampling extrapolates from one to the other with the guidance scale \(w\):
$$\tilde\epsilon = \epsilon_\theta(x_t, \varnothing) + w\,\big(\epsilon_\theta(x_t, c) - \epsilon_\theta(x_t, \varnothing)\big).$$
A negative prompt takes the place of the empty condition \(\varnothing\): the sample moves away from it.</p>

<h3>Latent diffusion with text (lesson 7)</h3>
<p>Rombach et al. 2022: a small autoencoder maps a digit to a 4 x 8 x 8 latent; the diffusion model works on
latents and reads the prompt through cross-attention, \(\mathrm{softmax}(QK^\top/\sqrt d)\,V\) with queries from the
image and keys and values from the words.</p>

<h3>InstructPix2Pix: two guidance scales (lesson 9)</h3>
<p>Brooks, Holynski &amp; Efros 2022: the model reads the noisy latent \(z_t\), the input image \(c_I\) and the
instruction \(c_T\). Both conditions are dropped during training, so that sampling can guide towards each:
$$\tilde\epsilon = \epsilon(z_t, \varnothing, \varnothing) + s_I\,\big(\epsilon(z_t, c_I, \varnothing) - \epsilon(z_t, \varnothing, \varnothing)\big)
+ s_T\,\big(\epsilon(z_t, c_I, c_T) - \epsilon(z_t, c_I, \varnothing)\big).$$
The image guidance \(s_I\) keeps the result close to the input, the text guidance \(s_T\) makes it follow the
instruction. "no CFG" sets \(s_I = s_T = 1\) (the plain conditional prediction). The <b>temperature</b> is
SDEdit's strength (Meng et al. 2022): at 1 the edit starts from pure noise; below 1 the input's latent is
noised to that point of the schedule and only that share of the steps is run. The img2img baseline is SDEdit
with the lesson-7 text model and the caption after the edit: it sees the input only through its noised latent.</p>

<h3>Models, data and training, as measured (benchmarks/RESULTS.md)</h3>
<ul>
<li><b>Data</b>: MNIST, 28 x 28 grey digits; the models learn from the training set, the editor's test digits come
from the test set.</li>
<li><b>Digits by class</b> (<code>cond</code>): a UNet of 376 k parameters with classifier-free guidance. After 10
minutes of training on a 2-core CPU: 99.5% of samples read as the requested digit by the course classifier,
Fréchet distance 25.35 (1.73x the floor of 14.63 given by real held-out digits). 1000 DDIM-20 samples in 13.3 s.</li>
<li><b>Text to image</b> (lesson 7): an autoencoder of 117 k parameters trained 700 steps (206 s; reconstruction
MSE 0.0064 on 1000 test digits, latent scale factor 1.2764), and a text
model of 579 k parameters (UNet and text encoder) trained 6000 steps (562 s on two threads of a quiet 2-core CPU,
encoding the training latents included) on captions of which a quarter name the digit only and the others every
attribute the digit has. At guidance 2.5, not applied at the 9 noisiest of 50 DDIM steps
(t &ge; 825: lesson 7's recommended setting, the default here): 99.6% of 1000 samples read as the requested digit,
Fr&eacute;chet distance 24.32 (1.66x the floor of 14.63). Attribute words land on the requested side: thick 100%,
thin 96.4%, large 92.2%, small 96.6%, leaning right 98.8%, leaning left 98.4% (500 samples each; "large" 91.0% over
four draws of 500).</li>
<li><b>Edit by instruction</b> (lesson 9): the text model above with four more input channels for the input's
latent (582 k parameters), trained 8000 steps (1640 s on one thread of a 2-core CPU shared with 4-6 other jobs) on
6850 pairs: 5243 made by the lesson's recipe (3412 kept of 8000 drawn by the text model with prompt-to-prompt, 2000
prompts x 4 samples, filtered by the course classifier and the attribute measures, and 1831 of 2000 pairs made by
exact operations: thicken, thin, shrink, shear...), and 1607 digit changes kept of 6000 more drawn by the text model,
because the filter keeps few digit changes.</li>
</ul>

<h3>How often an edit works (lesson 9, measured)</h3>
<p>On 300 MNIST test digits per kind of instruction, drawn twice (seeds 0 and 1), the full variant at
\(s_T = 3\), \(s_I = 3\) and 20 DDIM steps (the defaults here), judged by the course classifier and the attribute
measures:</p>
<ul>
<li>digit changes ("turn it into a 3"): 93.3% and 95.7% read as the new digit; the style (thickness, slant) kept
in 55.7% and 50.3%;</li>
<li>thickness: 97.3% and 94.7% changed the asked way, the digit kept in 94.7% and 93.7% (95.8% on 1000 more
digits);</li>
<li>size: 99.7% on both draws (digit kept 95.3%, 96.3%); slant: 100% (digit kept 96.7%, 95.7%).</li>
</ul>
<p>So about one digit change in twenty fails, and a digit change often redraws the digit in a new style. The
gallery shows edits that work; other digits and seeds can fail. The img2img baseline (SDEdit with the lesson-7
model and the edited caption) reads every digit change right at temperature 1 but keeps the style in only 9.5%,
and at 0.7 gets 48.5% of them right (200 test digits per kind). One edit at 20 steps takes 0.08 s on a 2-core CPU
with other jobs running (median, one thread, load average 2.6; 0.018 s per edit in a batch of 100; measured
outside the page).</p>
"""


# How often an edit does what it asks (% of 300 MNIST test digits per kind, seeds 0 and 1, the defaults): the
# figures of the About tab above (benchmarks/RESULTS.md, "digit: asked" and "asked" columns).
EDIT_SUCCESS = {"digit": (93.3, 95.7), "thickness": (97.3, 94.7), "size": (99.7, 99.7), "slant": (100.0, 100.0)}
_STYLE = [p for kind in ("thickness", "size", "slant") for p in EDIT_SUCCESS[kind]]
GALLERY_INTRO = (
    "<p>Examples that work: one click loads them into their tab and runs them. Not every edit works: on MNIST test "
    f"digits, {math.floor(min(EDIT_SUCCESS['digit']))}-{math.ceil(max(EDIT_SUCCESS['digit']))}% of digit changes and "
    f"{min(_STYLE):g}-{max(_STYLE):g}% of thickness, size and slant edits did what was asked (the About tab has the "
    "figures).</p>")


class Playground:
    """The five tabs. `ui` is the page (an ipywidgets Tab); `edit`, `text`, `digits` are the panels."""

    TITLES = ("Edit by instruction", "Text to image", "Digits by class", "Gallery", "About")

    def __init__(self, edit_pipe, text_pipe, class_model, test_images, test_labels, background: bool = True,
                 unavailable: dict | None = None):
        unavailable = unavailable or {}
        self.edit = EditPanel(edit_pipe, test_images, test_labels, background,
                              unavailable.get("edit", "the instruction-editing model (lesson 9) is not available"))
        self.text = TextPanel(text_pipe, background=background) if text_pipe is not None else None
        self.digits = ClassPanel(class_model, background=background) if class_model is not None else None
        self.tab = W.Tab()
        self.gallery_buttons: list[W.Button] = []
        missing = lambda what: W.HTML(_message(f"Not available: {unavailable.get(what, 'no model')}.", error=True))
        self.tab.children = [self.edit.ui, self.text.ui if self.text else missing("text"),
                             self.digits.ui if self.digits else missing("class"), self._gallery(), W.HTMLMath(ABOUT)]
        for i, title in enumerate(self.TITLES):
            self.tab.set_title(i, title)
        self.ui = W.VBox([W.HTML("<h2>DiffusionLab playground</h2>"), self.tab])
        self.ui.add_class("pg-app")

    def _gallery(self):
        items = []
        for k, ex in enumerate(EDIT_EXAMPLES):
            thumb = W.Image(value=to_png(self.edit.test_digit(ex["digit"], ex["example"]), scale=2), format="png")
            button = W.Button(description="open in the editor", disabled=self.edit.pipe is None)
            button.add_class(f"pg-gallery-edit-{k}")
            button.on_click(lambda _, ex=ex: self.open_edit(ex))
            self.gallery_buttons.append(button)
            items.append(W.VBox([thumb, W.HTML(f"<b>{html.escape(ex['instruction'])}</b>"), button],
                                layout=W.Layout(border="1px solid #ddd", padding="4px", margin="4px")))
        for k, ex in enumerate(TEXT_EXAMPLES):
            away = f"<br>not: {html.escape(ex['negative_prompt'])}" if ex["negative_prompt"] else ""
            button = W.Button(description="open in text to image", disabled=self.text is None)
            button.add_class(f"pg-gallery-text-{k}")
            button.on_click(lambda _, ex=ex: self.open_text(ex))
            self.gallery_buttons.append(button)
            items.append(W.VBox([W.HTML(f"<b>{html.escape(ex['prompt'])}</b>{away}<br>guidance "
                                        f"{ex['guidance_scale']:g}"), button],
                                layout=W.Layout(border="1px solid #ddd", padding="4px", margin="4px")))
        intro = W.HTML(GALLERY_INTRO)
        return W.VBox([intro, W.HTML("<h4>Edit by instruction</h4>"),
                       W.HBox(items[:len(EDIT_EXAMPLES)], layout=W.Layout(flex_flow="row wrap")),
                       W.HTML("<h4>Text to image</h4>"),
                       W.HBox(items[len(EDIT_EXAMPLES):], layout=W.Layout(flex_flow="row wrap"))])

    def open_edit(self, example: dict):
        self.edit.load_example(example)
        self.tab.selected_index = 0
        self.edit.run()

    def open_text(self, example: dict):
        for name, value in {"steps": DEFAULT_STEPS, **example}.items():
            self.text.controls[name].value = value
        self.tab.selected_index = 1
        self.text.run()


def _load_edit_pipe(device=None):
    from ..pipelines import instruct  # lesson 9
    return instruct.load(device=device)


def load_models(device=None) -> dict:
    """The shipped models the playground uses, as keyword arguments of `make_playground`; a model that cannot be
    loaded (its module or its checkpoint is missing) is None, and `unavailable` says why."""
    from .. import course
    from ..checkpoints import CheckpointError
    from ..data import load_mnist

    loaders = {"edit": ("edit_pipe", _load_edit_pipe), "text": ("text_pipe", lambda d: course.load("text", device=d)),
               "class": ("class_model", lambda d: course.load("cond", device=d))}
    models, unavailable = {}, {}
    for what, (key, load) in loaders.items():
        try:
            models[key] = load(device)
        except (ImportError, CheckpointError, OSError, ValueError) as err:
            models[key] = None
            unavailable[what] = (f"its code is not in this version of the package ({err})" if isinstance(err, ImportError)
                                 else f"its model could not be loaded ({err})")
    if models["edit_pipe"] is None:
        unavailable["edit"] = "the instruction-editing model (lesson 9) is not available: " + unavailable["edit"]
    images, labels = load_mnist("test")
    return {**models, "test_images": images, "test_labels": labels, "unavailable": unavailable}


def make_playground(edit_pipe=None, text_pipe=None, class_model=None, test_images=None, test_labels=None,
                    background: bool = True, unavailable: dict | None = None) -> Playground:
    """The playground page (`.ui`). Pass the models (`load_models()` gives the shipped ones); test_images
    (N, 1, 28, 28) in [-1, 1] and test_labels (N,) are the digits the editor picks from (default: MNIST test)."""
    if test_images is None:
        from ..data import load_mnist
        test_images, test_labels = load_mnist("test")
    return Playground(edit_pipe, text_pipe, class_model, test_images, test_labels, background, unavailable)
