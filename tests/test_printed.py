"""Printed digits (printed.py): MNIST's format, reproducible, and read as themselves by the course's classifier."""

import numpy as np
import pytest
import torch

from diffusionlab.metrics import load_classifier, predict
from diffusionlab.printed import DIGIT_WORDS, FONTS, STYLES, captions, font_path, make_printed, render_digit


@pytest.fixture(scope="module")
def printed():
    return make_printed(300, seed=0)


def test_printed_digits_have_mnists_shape_range_and_balance(printed):
    x, y = printed["images"], printed["labels"]
    assert x.shape == (300, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1  # black paper, white ink at full strength
    assert torch.bincount(y, minlength=10).tolist() == [30] * 10
    assert set(printed["styles"]) == set(STYLES) and len(printed["styles"]) == len(printed["fonts"]) == 300
    assert all(FONTS[f] == (s, bool(b)) for f, s, b in zip(printed["fonts"], printed["styles"], printed["bold"]))


def test_each_glyph_fits_20_pixels_and_its_centre_of_mass_is_at_the_centre(printed):
    ink = (printed["images"][:, 0] + 1) / 2  # (n, 28, 28) in [0, 1]
    rows, cols = (ink > 0.05).any(2), (ink > 0.05).any(1)  # (n, 28) each
    extent = lambda m: m.shape[1] - m.int().argmax(1) - m.flip(1).int().argmax(1)
    assert extent(rows).max() <= 20 and extent(cols).max() <= 20
    ys = torch.arange(28.0)
    cy = (ink.sum(2) * ys).sum(1) / ink.sum((1, 2))
    cx = (ink.sum(1) * ys).sum(1) / ink.sum((1, 2))
    # centre at (14, 14) up to rounding (half a pixel) and the shift of at most 1 pixel
    assert (cy - 14).abs().max() <= 1.6 and (cx - 14).abs().max() <= 1.6


def test_printed_digits_are_reproducible_from_the_seed(printed):
    again = make_printed(300, seed=0)
    assert torch.equal(again["images"], printed["images"]) and torch.equal(again["labels"], printed["labels"])
    assert again["fonts"] == printed["fonts"]
    assert not torch.equal(make_printed(300, seed=1)["images"], printed["images"])


def test_the_course_classifier_reads_printed_digits_as_themselves(printed):
    """Measured: 97.0% of 1000 (seed 0), 96.3% and 96.2% (seeds 1, 2). The misses are printed shapes
    that handwriting rarely has: Computer Modern's closed 6 read as 8 or 0, a 1 with a foot read as 2."""
    labels, _ = predict(load_classifier(), printed["images"])
    correct = (labels == printed["labels"]).float()
    assert correct.mean() >= 0.93
    for digit in range(10):
        assert correct[printed["labels"] == digit].mean() >= 0.7, f"digit {digit} is not read as itself"


def test_every_font_draws_every_digit_differently():
    for font in FONTS:
        digits = np.stack([render_digit(k, font) for k in range(10)])  # (10, 28, 28)
        assert digits.max() == 1 and all(d.sum() > 10 for d in digits)
        flat = digits.reshape(10, -1)
        assert len({d.tobytes() for d in flat}) == 10, f"{font} draws two digits alike (a missing glyph?)"


def test_captions_name_the_digit_and_the_style():
    caps = captions([7, 3, 2], ["sans", "serif", "mono"], seed=0)
    assert len(caps) == 3
    for cap, label, style in zip(caps, [7, 3, 2], ["sans", "serif", "mono"]):
        words = cap.split()
        assert DIGIT_WORDS[label] in words or str(label) in words
        assert "printed" in words or style in words
    assert captions([7, 3, 2], ["sans", "serif", "mono"], seed=0) == caps
    with pytest.raises(ValueError, match="style"):
        captions([1], ["italic"])


def test_bad_arguments_are_refused_with_what_is_allowed():
    with pytest.raises(ValueError, match="fonts must be"):
        make_printed(10, fonts=["Arial.ttf"])
    with pytest.raises(ValueError, match="20x20"):
        render_digit(3, "DejaVuSans.ttf", size=24)
    with pytest.raises(ValueError, match="digit"):
        render_digit(12, "DejaVuSans.ttf")
    with pytest.raises(FileNotFoundError, match="matplotlib"):
        font_path("NoSuchFont.ttf")
