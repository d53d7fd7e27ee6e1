"""Printed digits: a small data set made offline from the fonts matplotlib ships (lesson 8, fine-tuning).

Lesson 8 fine-tunes the lesson-7 text-to-image model on a style it has never seen: digits set in type
instead of handwritten. Each image is a digit drawn with PIL from one of matplotlib's font files
(DejaVu Sans, Serif and Sans Mono, STIX, and Computer Modern, regular or bold), turned by a small
angle, and then prepared the way MNIST's digits were (LeCun et al. 1998, the MNIST page): the glyph is
scaled to fit a 20x20 box (here at a random size up to 20), placed in 28x28 with its centre of mass at
the centre, and shifted by a pixel or two. White on black, values in [-1, 1], like `data.load_mnist`.

Each image carries its label and a style tag ("serif", "sans" or "mono") from which `captions` writes
prompts in the lesson-7 manner: "a printed seven", "a serif 3", "a mono two".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
STYLES = ("sans", "serif", "mono")

# file in matplotlib's mpl-data/fonts/ttf -> (style, bold)
FONTS = {
    "DejaVuSans.ttf": ("sans", False),
    "DejaVuSans-Bold.ttf": ("sans", True),
    "DejaVuSerif.ttf": ("serif", False),
    "DejaVuSerif-Bold.ttf": ("serif", True),
    "DejaVuSansMono.ttf": ("mono", False),
    "DejaVuSansMono-Bold.ttf": ("mono", True),
    "STIXGeneral.ttf": ("serif", False),
    "STIXGeneralBol.ttf": ("serif", True),
    "cmr10.ttf": ("serif", False),  # Computer Modern Roman
    "cmb10.ttf": ("serif", True),  # Computer Modern Bold Extended
    "cmss10.ttf": ("sans", False),  # Computer Modern Sans
    "cmtt10.ttf": ("mono", False),  # Computer Modern Typewriter
}

RENDER_PX = 96  # the font size the glyphs are drawn at, before they are scaled down to 28x28


def font_path(name: str) -> Path:
    """Where matplotlib keeps the font file `name` (one of FONTS)."""
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name
    if not path.exists():
        raise FileNotFoundError(f"matplotlib's font {name} is not at {path}: the printed digits need the fonts "
                                f"matplotlib ships (reinstall matplotlib), or pass fonts=[...] from {sorted(FONTS)}")
    return path


def render_digit(digit: int, font: str, angle: float = 0.0, size: int = 20,
                 shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """One printed digit as a 28x28 float array in [0, 1] (ink = 1), prepared as MNIST's digits were.

    font: a file of FONTS; angle: degrees, anticlockwise; size: the longer side of the glyph in pixels
    (MNIST: 20); shift: (dy, dx) pixels after centring by mass.
    """
    from PIL import Image, ImageDraw, ImageFont

    if digit not in range(10):
        raise ValueError(f"digit must be 0..9, got {digit!r}")
    if not 4 <= size <= 20:
        raise ValueError(f"size (the glyph's longer side) must be 4..20 pixels to fit MNIST's 20x20 box, got {size}")
    # 1. draw the glyph large, white on black, and turn it
    canvas = 2 * RENDER_PX
    img = Image.new("L", (canvas, canvas), 0)
    pil_font = ImageFont.truetype(str(font_path(font)), RENDER_PX)
    ImageDraw.Draw(img).text((canvas // 2, canvas // 2), str(digit), fill=255, font=pil_font, anchor="mm")
    img = img.rotate(angle, resample=Image.BICUBIC)
    # 2. crop to the ink and scale the longer side to `size` pixels (anti-aliased, as MNIST's grey levels)
    img = img.crop(img.getbbox())
    w, h = img.size
    k = size / max(w, h)
    img = img.resize((max(1, round(w * k)), max(1, round(h * k))), Image.LANCZOS)
    glyph = np.asarray(img, dtype=np.float32) / 255  # (h, w)
    # 3. paste into 28x28 with the centre of mass at the centre, then shift
    ys, xs = np.indices(glyph.shape)
    cy, cx = (ys * glyph).sum() / glyph.sum(), (xs * glyph).sum() / glyph.sum()
    top, left = round(14 - cy) + shift[0], round(14 - cx) + shift[1]
    top = min(max(top, 0), 28 - glyph.shape[0])  # keep the whole glyph inside the image
    left = min(max(left, 0), 28 - glyph.shape[1])
    out = np.zeros((28, 28), dtype=np.float32)
    out[top : top + glyph.shape[0], left : left + glyph.shape[1]] = glyph
    return out.clip(0, 1)


def make_printed(n: int = 1000, seed: int = 0, fonts: list[str] | None = None, max_angle: float = 10.0,
                 sizes: tuple[int, int] = (15, 20), max_shift: int = 1) -> dict:
    """n printed digits, as many of each digit (in a random order), reproducible from `seed`.

    Each image draws a font from `fonts` (default: all of FONTS), an angle in [-max_angle, max_angle]
    degrees, a size in sizes = (smallest, largest) pixels and a shift of up to max_shift pixels each way.
    Returns {"images": (n, 1, 28, 28) in [-1, 1], "labels": (n,) long, "styles": n tags of STYLES,
    "fonts": n font files, "bold": (n,) bool}.
    """
    fonts = list(FONTS) if fonts is None else list(fonts)
    unknown = [f for f in fonts if f not in FONTS]
    if unknown or not fonts:
        raise ValueError(f"fonts must be a non-empty list from {sorted(FONTS)}, got {unknown or fonts}")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive number of images, got {n!r}")
    if not 4 <= sizes[0] <= sizes[1] <= 20:
        raise ValueError(f"sizes must be (smallest, largest) with 4 <= smallest <= largest <= 20, got {sizes}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10)
    chosen = [fonts[i] for i in rng.integers(len(fonts), size=n)]
    angles = rng.uniform(-max_angle, max_angle, size=n)
    px = rng.integers(sizes[0], sizes[1] + 1, size=n)
    shifts = rng.integers(-max_shift, max_shift + 1, size=(n, 2))
    images = np.stack([render_digit(int(d), f, float(a), int(s), tuple(int(v) for v in sh))
                       for d, f, a, s, sh in zip(labels, chosen, angles, px, shifts)])
    return {
        "images": torch.from_numpy(images)[:, None] * 2 - 1,  # (n, 1, 28, 28): ink 1 -> +1, paper 0 -> -1
        "labels": torch.from_numpy(labels).long(),
        "styles": [FONTS[f][0] for f in chosen],
        "fonts": chosen,
        "bold": torch.tensor([FONTS[f][1] for f in chosen]),
    }


def captions(labels, styles, seed: int = 0) -> list[str]:
    """One caption per image, naming the digit (as a word or a numeral) and saying it is printed or its
    style: "a printed seven", "a serif 3", "a printed mono two"."""
    if len(labels) != len(styles):
        raise ValueError(f"need one style per label, got {len(labels)} labels and {len(styles)} styles")
    rng = np.random.default_rng(seed)
    templates = ("a printed {digit}", "a {style} {digit}", "a printed {style} {digit}")
    out = []
    for label, style in zip(labels, styles):
        if style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {style!r}")
        label = int(label)
        digit = DIGIT_WORDS[label] if rng.random() < 0.5 else str(label)
        out.append(templates[rng.integers(len(templates))].format(digit=digit, style=style))
    return out
