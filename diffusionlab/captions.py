"""Captions that are true by construction, measured from the pixels of each digit (lesson 7).

MNIST has labels but no text. Here every caption is computed from the image it describes, so it is
never wrong, and the same measurements later check what a text-to-image model drew (measured
adherence): `attributes` is both the captioner and the judge.

Measured attributes (`attributes(images) -> dict of (N,) tensors`), on ink = pixels brighter than mid-grey:
    thickness  mean stroke width in pixels, 2 * area / perimeter (a stroke of width w and length L
               has area w L and a boundary of about 2 L pixels)
    size       bounding-box area in pixels. MNIST scales every digit to a height of 20 pixels
               (LeCun et al. 1998), so in practice this is the width: "large" means wide
    slant      the shear of the ink, -mu11 / mu02 from central image moments (Hu 1962): how far the
               ink moves right per pixel upwards. > 0 leans right, < 0 leans left
Position is not an attribute: MNIST centres each digit on its centre of mass, whose position varies by
less than a third of a pixel (std) over the training set.

Thresholds are the tertiles of each attribute *within each digit* on the training set (a "thick one"
is thick for a one): the top third is described ("thick", "large", "leaning right"), the bottom third
too ("thin", "small", "leaning left"), and nothing is said about the middle third (`sides`).

Captions (`make_caption`) combine the digit (a word or a numeral) with some of the attributes that
have a side, in several templates with synonyms: "a thick seven", "a small 2 leaning right",
"the digit four, written thin". With probability p_plain a caption names the digit only; otherwise each
attribute with a side is mentioned with probability p_attribute. So the model also sees the same kinds of
images described without the word, and a plain "a seven" stands for sevens of every kind.
"""

from __future__ import annotations

import functools
import re

import torch

from .data import load_mnist

ATTRIBUTES = ("thickness", "size", "slant")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# the words for each side of each attribute: index 0 for side -1 (bottom third), 1 for side +1 (top third)
WORDS = {
    "thickness": (("thin", "light", "fine"), ("thick", "bold", "heavy")),
    "size": (("small", "narrow", "little"), ("large", "big", "wide")),
    "slant": (("leaning left", "slanted left", "tilted to the left"),
              ("leaning right", "slanted right", "tilted to the right")),
}
TEMPLATE_WORDS = ("a", "an", "the", "digit", "number", "written", "that", "is", "and", "handwritten")
INK = 0.5  # a pixel is ink when brighter than mid-grey: > 0 in the course's [-1, 1] range
# How often a caption names the attributes (`make_caption`): a quarter of the captions name the digit only, the
# others every attribute the digit has a side of. On 20,000 training digits that says "large" of 75% of the wide
# digits, and 22.5% of the digits with a plain caption ("a five") are wide, against 26% of all digits: a plain caption
# still stands for digits of every kind. Naming each attribute half the time instead said "large" of 51% and left 15%
# wide, and the lesson-7 model trained on it obeyed "large" less often (benchmarks/RESULTS.md)
P_PLAIN = 0.25
P_ATTRIBUTE = 1.0


def _vocabulary() -> tuple[str, ...]:
    words = list(TEMPLATE_WORDS) + list(DIGIT_WORDS) + [str(d) for d in range(10)]
    for pair in WORDS.values():
        for side in pair:
            for phrase in side:
                words += phrase.split()
    return tuple(dict.fromkeys(words))  # unique, in order


VOCAB = _vocabulary()  # every word a caption can contain (the text encoder's vocabulary)


# ---------------------------------------------------------------- measuring


def attributes(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Measure each digit: images (N, 1, 28, 28) in [-1, 1] -> {"thickness", "size", "slant"}, each (N,) float.

    An image with no ink at all gets thickness 0, size 0 and slant 0.
    """
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"images must have shape (N, 1, H, W), got {tuple(images.shape)}")
    p = ((images[:, 0].float() + 1) / 2).clamp(0, 1)  # (N, H, W) intensity in [0, 1]
    N, H, W = p.shape
    ink = p > INK  # (N, H, W)
    # thickness: 2 area / perimeter; the perimeter is the ink pixels with a background 4-neighbour
    area = ink.sum((1, 2)).float()
    padded = torch.nn.functional.pad(ink, (1, 1, 1, 1))  # (N, H+2, W+2), background around
    inner = padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1] & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:]
    perimeter = (ink & ~inner).sum((1, 2)).float()
    thickness = 2 * area / perimeter.clamp(min=1)
    # size: bounding-box area of the ink
    rows, cols = ink.any(2), ink.any(1)  # (N, H), (N, W)
    r = torch.arange(H, device=p.device)
    c = torch.arange(W, device=p.device)
    height = torch.where(rows, r, -1).max(1).values - torch.where(rows, r, H).min(1).values + 1
    width = torch.where(cols, c, -1).max(1).values - torch.where(cols, c, W).min(1).values + 1
    size = (height.clamp(min=0) * width.clamp(min=0)).float()
    # slant: -mu11 / mu02, central moments of the intensity (y grows downwards, so a right lean has mu11 < 0)
    mass = p.sum((1, 2)).clamp(min=1e-6)  # (N,)
    y = r.view(1, H, 1).float()
    x = c.view(1, 1, W).float()
    cy = (p * y).sum((1, 2)) / mass
    cx = (p * x).sum((1, 2)) / mass
    dy, dx = y - cy.view(N, 1, 1), x - cx.view(N, 1, 1)  # (N, H, W) each
    mu11 = (p * dx * dy).sum((1, 2)) / mass
    mu02 = (p * dy * dy).sum((1, 2)) / mass
    slant = -mu11 / mu02.clamp(min=1e-6)
    return {"thickness": thickness, "size": size, "slant": slant}


def fit_thresholds(images: torch.Tensor, labels: torch.Tensor, quantiles=(1 / 3, 2 / 3)) -> dict[str, torch.Tensor]:
    """The (low, high) quantiles of each attribute within each digit: {name: (10, 2)}."""
    attrs = attributes(images)
    out = {}
    for name, values in attrs.items():
        q = torch.tensor(quantiles, dtype=values.dtype)
        out[name] = torch.stack([values[labels == d].quantile(q) for d in range(10)])  # (10, 2)
    return out


@functools.lru_cache(maxsize=1)
def _training_thresholds() -> dict[str, torch.Tensor]:
    x, y = load_mnist("train")
    return fit_thresholds(x, y)


def thresholds() -> dict[str, torch.Tensor]:
    """The course's thresholds: tertiles within each digit over the 60,000 training images, {name: (10, 2)}."""
    return {k: v.clone() for k, v in _training_thresholds().items()}


def sides(attrs: dict[str, torch.Tensor], digits: torch.Tensor, thr: dict[str, torch.Tensor] | None = None):
    """Which side of its thresholds each measurement falls: {name: (N,) long}, -1 below the low one, +1 above
    the high one, 0 in between (nothing to say). digits (N,): the digit each image is (or was asked to be)."""
    thr = thr if thr is not None else thresholds()
    digits = torch.as_tensor(digits).long().cpu()
    out = {}
    for name, values in attrs.items():
        lo, hi = thr[name][digits].unbind(1)  # (N,) each
        v = values.cpu()
        out[name] = (v > hi).long() - (v < lo).long()
    return out


# ---------------------------------------------------------------- writing


def _choice(options, generator):
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def _article(phrase: str) -> str:
    """ "a" or "an" before `phrase`, by its sound: an eight, an 8, a one."""
    return "an" if phrase.split()[0] in ("eight", "8") else "a"


def make_caption(digit: int, attribute_sides: dict[str, int] | None = None, generator: torch.Generator | None = None,
                 p_attribute: float = P_ATTRIBUTE, p_numeral: float = 0.3, p_plain: float = P_PLAIN) -> str:
    """A caption for one digit: e.g. make_caption(7, {"thickness": 1, "size": 0, "slant": 1}) may give
    "a thick seven leaning right", "the digit 7, written bold" or just "a seven".

    attribute_sides: {name: -1, 0 or +1} (as from `sides`); an attribute with side 0 is never mentioned, the
    others each with probability p_attribute, unless the caption is plain (the digit only, probability p_plain).
    The digit is a numeral with probability p_numeral.
    """
    if not 0 <= int(digit) <= 9:
        raise ValueError(f"digit must be 0..9, got {digit}")
    g = generator
    digit_word = str(int(digit)) if torch.rand(1, generator=g).item() < p_numeral else DIGIT_WORDS[int(digit)]
    plain = p_plain > 0 and torch.rand(1, generator=g).item() < p_plain  # no draw at all when p_plain is 0
    said = {}
    for name in () if plain else ATTRIBUTES:  # a plain caption says no attribute
        side = int((attribute_sides or {}).get(name, 0))
        if side != 0 and torch.rand(1, generator=g).item() < p_attribute:
            said[name] = _choice(WORDS[name][side > 0], g)
    adjectives = [said[n] for n in ("thickness", "size") if n in said]
    if len(adjectives) == 2 and torch.rand(1, generator=g).item() < 0.5:
        adjectives.reverse()
    slant = f" {said['slant']}" if "slant" in said else ""
    template = int(torch.randint(4, (1,), generator=g))
    if template == 0:  # "a thick small seven leaning right"
        words = " ".join(adjectives + [digit_word])
        return f"{_article(words)} {words}{slant}"
    if template == 1:  # "the digit seven, written thick and small"
        written = f", written {' and '.join(adjectives)}" if adjectives else ""
        return f"the {_choice(('digit', 'number'), g)} {digit_word}{written}{slant}"
    if template == 2:  # "a seven that is thick and small, leaning right"
        that = f" that is {' and '.join(adjectives)}" if adjectives else ""
        words = f"{digit_word}{that}"
        return f"{_article(words)} {words}{',' if that and slant else ''}{slant}"
    words = " ".join(adjectives + [digit_word])  # "handwritten thick seven leaning right"
    return f"handwritten {words}{slant}"


def make_captions(digits: torch.Tensor, attribute_sides: dict[str, torch.Tensor], generator: torch.Generator | None = None,
                  **kwargs) -> list[str]:
    """One `make_caption` per image: digits (N,), attribute_sides {name: (N,)} as from `sides`."""
    digits = torch.as_tensor(digits).reshape(-1).tolist()
    cols = {k: torch.as_tensor(v).reshape(-1).tolist() for k, v in attribute_sides.items()}
    return [make_caption(d, {k: v[i] for k, v in cols.items()}, generator, **kwargs) for i, d in enumerate(digits)]


def caption_images(images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None, **kwargs):
    """Captions for labelled digits, measured from their pixels: images (N, 1, 28, 28), labels (N,)."""
    return make_captions(labels, sides(attributes(images), labels), generator, **kwargs)


# ---------------------------------------------------------------- reading


def words(text: str) -> list[str]:
    """The words of a caption: lower case, punctuation dropped ("The digit 4, thin" -> [the, digit, 4, thin])."""
    return re.findall(r"[a-z0-9]+", text.lower())


def parse_caption(text: str) -> dict:
    """What a caption asks for: {"digit": 0..9 or None, "thickness": -1/0/+1, "size": ..., "slant": ...}."""
    ws = words(text)
    joined = " " + " ".join(ws) + " "
    out = {"digit": None}
    for w in ws:
        if w in DIGIT_WORDS:
            out["digit"] = DIGIT_WORDS.index(w)
        elif w.isdigit() and len(w) == 1:
            out["digit"] = int(w)
    for name in ATTRIBUTES:
        out[name] = 0
        for side, phrases in zip((-1, 1), WORDS[name]):
            if any(f" {phrase} " in joined for phrase in phrases):
                out[name] = side
    return out
