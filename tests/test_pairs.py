"""Exact image operations and the pair filter (pairs.py, lesson 9), on real digits the classifier never saw."""

import pytest
import torch

from diffusionlab.captions import ATTRIBUTES, attributes, sides
from diffusionlab.data import load_mnist
from diffusionlab.instructions import make_triplet
from diffusionlab.metrics import load_classifier
from diffusionlab.pairs import (
    DIGIT_MARGIN,
    MOVE_MARGIN,
    apply_edit,
    blurred_correlation,
    directional_test,
    exact_pairs,
    filter_pairs,
    shear,
    spreads,
    thin,
)


@pytest.fixture(scope="module")
def digits():
    x, y = load_mnist("train")
    return x[50000:50300], y[50000:50300]


@pytest.fixture(scope="module")
def classifier():
    return load_classifier()


@pytest.mark.parametrize("kind", ATTRIBUTES)
def test_exact_operations_move_their_attribute_the_requested_way(digits, kind):
    x, _ = digits
    before = attributes(x)[kind]
    for target in (-1, 1):
        after = attributes(apply_edit(x, kind, target))[kind]
        assert ((after - before) * target > 0).float().mean() > 0.9


def test_thinner_strokes_keep_their_cores_at_full_ink(digits):
    # a thinner pen, not a fainter one: the half erosion used before turned 64% bright ink into 11%
    x, _ = digits
    p, q = (x + 1) / 2, (thin(x) + 1) / 2

    def bright_share(p):  # of the ink pixels, the share that is near full ink
        return ((p > 0.9) & (p > 0.5)).sum() / (p > 0.5).sum()

    assert bright_share(q) >= bright_share(p)
    assert (q[p >= 0.999] >= 0.999).all()  # full ink stays full ink
    assert (q <= p + 1e-6).all()  # and nothing gets brighter


def test_shear_adds_its_factor_to_the_measured_slant(digits):
    x, _ = digits
    moved = attributes(shear(x, 0.3))["slant"] - attributes(x)["slant"]
    assert (moved - 0.3).abs().median() < 0.03
    torch.testing.assert_close(shear(x, 0.0), x, atol=1e-5, rtol=0)  # no shear: the image itself


def test_the_filter_accepts_exact_pairs(digits, classifier):
    inputs, edited, triplets = exact_pairs(*digits, generator=torch.Generator().manual_seed(0))
    r = filter_pairs(inputs, edited, triplets, classifier)
    assert r["accepted"].float().mean() > 0.8  # 92% measured on 2000 digits (pairs.py)
    assert {t.kind for t in triplets} == set(ATTRIBUTES)


def test_the_filter_rejects_the_unedited_image_and_the_opposite_edit(digits, classifier):
    inputs, _, triplets = exact_pairs(*digits, generator=torch.Generator().manual_seed(0))
    assert not filter_pairs(inputs, inputs.clone(), triplets, classifier)["accepted"].any()
    opposite = torch.cat([apply_edit(inputs[i : i + 1], t.kind, -t.target) for i, t in enumerate(triplets)])
    assert not filter_pairs(inputs, opposite, triplets, classifier)["accepted"].any()


def test_the_filter_rejects_an_edit_that_fails_its_caption(digits, classifier):
    """A digit change whose edited image is still the input digit, and a style edit whose edited image
    (correctly thickened) is another digit: both fail the caption test."""
    x, y = digits
    s = sides(attributes(x), y)
    i = int((y == 7).nonzero()[0])
    j = int((y == 1).nonzero()[0])
    sd = {n: int(s[n][i]) for n in ATTRIBUTES}
    to_two = make_triplet("digit", 2, 7, sd, torch.Generator().manual_seed(0))
    thicker = make_triplet("thickness", 1, 7, sd, torch.Generator().manual_seed(0))
    inputs = x[[i, i]]
    edited = torch.stack([apply_edit(x[i : i + 1], "size", 1)[0], apply_edit(x[j : j + 1], "thickness", 1)[0]])
    r = filter_pairs(inputs, edited, [to_two, thicker], classifier)
    assert not r["caption"].any() and not r["accepted"].any()
    assert r["digit_in"].tolist() == [7, 7] and r["digit_out"].tolist() == [7, 1]
    # the same thickening of the 7 itself passes: the rejection above is the caption's doing
    ok = filter_pairs(x[[i]], apply_edit(x[[i]], "thickness", 1), [thicker], classifier)
    assert ok["accepted"].all()


def test_the_filter_accepts_a_digit_change_that_keeps_the_style(digits, classifier):
    """A real 1 and a real 7 with nearly the same thickness and slant: the pair '1 -> 7' passes; with the 7
    sheared far the other way, the style is not kept."""
    x, y = digits
    a = attributes(x)
    ones, sevens = (y == 1).nonzero().flatten(), (y == 7).nonzero().flatten()
    d = ((a["thickness"][ones, None] - a["thickness"][None, sevens]).abs() / 0.58
         + (a["slant"][ones, None] - a["slant"][None, sevens]).abs() / 0.23)
    k = int(d.argmin())
    i, j = int(ones[k // len(sevens)]), int(sevens[k % len(sevens)])
    tr = make_triplet("digit", 7, 1, None, torch.Generator().manual_seed(0))
    assert filter_pairs(x[[i]], x[[j]], [tr], classifier)["accepted"].all()
    far = shear(x[[j]], -1.0 if a["slant"][i] > 0 else 1.0)
    assert not filter_pairs(x[[i]], far, [tr], classifier)["kept"].any()


def test_blurred_correlation(digits):
    x, _ = digits
    torch.testing.assert_close(blurred_correlation(x[:5], x[:5]), torch.ones(5))
    assert (blurred_correlation(x[:5], -x[:5]) < -0.99).all()


def test_filter_checks_shapes(classifier):
    with pytest.raises(ValueError, match="one row per triplet"):
        filter_pairs(torch.zeros(2, 1, 28, 28), torch.zeros(2, 1, 28, 28), [], classifier)


def test_directional_test_by_hand():
    """Digit changes pass on the rise of the new digit's probability (not its value), style edits on the move the
    requested way (not its size), each at its margin or more."""
    p_in, p_out = torch.full((6, 10), 0.1), torch.full((6, 10), 0.1)
    p_out[0, 3], p_out[1, 3] = 0.1 + DIGIT_MARGIN, 0.1 + DIGIT_MARGIN - 0.01  # rises of exactly the margin, and less
    p_in[2, 3] = p_out[2, 3] = 0.9  # read as a 3 before and after: no rise
    moved = {n: torch.zeros(6) for n in ATTRIBUTES}
    moved["thickness"][3], moved["thickness"][4], moved["slant"][5] = MOVE_MARGIN, -1.0, -MOVE_MARGIN
    kinds = ["digit", "digit", "digit", "thickness", "thickness", "slant"]
    targets = torch.tensor([3, 3, 3, 1, 1, -1])
    direction, passed = directional_test(kinds, targets, p_in, p_out, moved)
    assert passed.tolist() == [True, False, False, True, False, True]
    torch.testing.assert_close(direction, torch.tensor([DIGIT_MARGIN, DIGIT_MARGIN - 0.01, 0.0, MOVE_MARGIN, -1.0,
                                                        MOVE_MARGIN]))
    with pytest.raises(ValueError, match="probabilities"):
        directional_test(kinds, targets, p_in[:5], p_out, moved)


def test_the_filter_uses_the_directional_test(digits, classifier):
    """filter_pairs' "directional" and "direction" are directional_test's on the same measures."""
    inputs, edited, triplets = exact_pairs(*digits, generator=torch.Generator().manual_seed(0))
    r = filter_pairs(inputs, edited, triplets, classifier)
    with torch.no_grad():
        p_in, p_out = classifier(inputs).softmax(1), classifier(edited).softmax(1)
    a_in, a_out = attributes(inputs), attributes(edited)
    moved = {n: (a_out[n] - a_in[n]) / spreads()[n] for n in ATTRIBUTES}
    direction, passed = directional_test([t.kind for t in triplets], torch.tensor([t.target for t in triplets]),
                                         p_in, p_out, moved)
    assert torch.equal(r["directional"], passed) and torch.equal(r["direction"], direction)
