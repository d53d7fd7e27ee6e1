import pytest
import torch

from diffusionlab.captions import (ATTRIBUTES, VOCAB, WORDS, attributes, caption_images, fit_thresholds,
                                   make_caption, make_captions, parse_caption, sides, words)
from diffusionlab.data import load_mnist


def blank(n=1):
    return -torch.ones(n, 1, 28, 28)


def bar(width: int, height: int = 20, shear: float = 0.0) -> torch.Tensor:
    """A white stroke `width` pixels wide and `height` tall, its top moved `shear` pixels right per row up."""
    x = blank()
    top = 4
    for row in range(top, top + height):
        left = 12 + round(shear * (top + height - 1 - row))
        x[0, 0, row, left : left + width] = 1.0
    return x


def test_thickness_is_the_stroke_width():
    widths = [attributes(bar(w))["thickness"].item() for w in (1, 2, 3, 4, 6)]
    assert widths == sorted(widths)  # thicker strokes measure thicker
    assert widths[-1] == pytest.approx(6, rel=0.25)  # and roughly in pixels


def test_size_is_the_bounding_box_area():
    assert attributes(bar(3, height=20))["size"].item() == 60
    assert attributes(bar(3, height=10))["size"].item() == 30
    assert attributes(blank())["size"].item() == 0


def test_slant_sign_follows_the_lean():
    right, left, upright = bar(2, shear=0.3), bar(2, shear=-0.3), bar(2)
    assert attributes(right)["slant"].item() == pytest.approx(0.3, abs=0.05)
    assert attributes(left)["slant"].item() == pytest.approx(-0.3, abs=0.05)
    assert attributes(upright)["slant"].item() == pytest.approx(0.0, abs=1e-6)
    # the mirror image of a right-leaning digit leans left by the same amount
    assert attributes(right.flip(-1))["slant"].item() == pytest.approx(-attributes(right)["slant"].item(), abs=1e-5)


def test_attributes_rejects_a_wrong_shape():
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        attributes(torch.zeros(28, 28))


def test_sides_use_the_thresholds_of_the_digit():
    thr = {name: torch.tensor([[1.0, 2.0]] * 10) for name in ATTRIBUTES}
    thr["size"][7] = torch.tensor([10.0, 20.0])
    attrs = {name: torch.tensor([0.5, 1.5, 2.5, 15.0]) for name in ATTRIBUTES}
    s = sides(attrs, torch.tensor([0, 0, 0, 7]), thr)
    assert s["thickness"].tolist() == [-1, 0, 1, 1]
    assert s["size"].tolist() == [-1, 0, 1, 0]


@pytest.fixture(scope="module")
def digits():
    x, y = load_mnist("test")
    return x[:600], y[:600]


def test_thresholds_split_a_set_into_thirds(digits):
    x, y = digits
    thr = fit_thresholds(x, y)
    assert set(thr) == set(ATTRIBUTES) and all(v.shape == (10, 2) for v in thr.values())
    s = sides(attributes(x), y, thr)
    for name in ("thickness", "slant"):  # continuous measures: a third on each side (up to per-digit rounding)
        assert 0.25 < (s[name] == 1).float().mean() < 0.36
        assert 0.25 < (s[name] == -1).float().mean() < 0.36


def test_captions_are_true_by_construction(digits):
    x, y = digits
    g = torch.Generator().manual_seed(0)
    caps = caption_images(x, y, g, p_attribute=1.0, p_plain=0.0)
    measured = sides(attributes(x), y)
    said = 0
    for i, cap in enumerate(caps):
        asked = parse_caption(cap)
        assert asked["digit"] == y[i].item(), cap
        for name in ATTRIBUTES:  # every attribute with a side is mentioned (p_attribute=1), with that side
            assert asked[name] == measured[name][i].item(), (cap, name)
            said += asked[name] != 0
    assert said > len(caps)  # most captions say something beyond the digit


def test_a_plain_caption_names_the_digit_only_and_is_drawn_as_often_as_asked(digits):
    x, y = digits
    measured = sides(attributes(x), y)
    caps = caption_images(x, y, torch.Generator().manual_seed(0), p_attribute=1.0, p_plain=0.25)
    asked = [parse_caption(c) for c in caps]
    assert all(a["digit"] == d for a, d in zip(asked, y.tolist()))
    has_side = torch.stack([measured[n] != 0 for n in ATTRIBUTES]).any(0)  # (N,) some attribute to say
    plain = torch.tensor([all(a[n] == 0 for n in ATTRIBUTES) for a in asked])
    share = plain[has_side].float().mean().item()  # a digit with something to say, said plainly: p_plain
    assert 0.18 < share < 0.32, share
    for a, m in zip(asked, zip(*(measured[n].tolist() for n in ATTRIBUTES))):  # the others say every side (p_attribute 1)
        if any(a[n] != 0 for n in ATTRIBUTES):
            assert [a[n] for n in ATTRIBUTES] == list(m)
    all_plain = caption_images(x, y, torch.Generator().manual_seed(0), p_plain=1.0)
    assert all(all(parse_caption(c)[n] == 0 for n in ATTRIBUTES) for c in all_plain)


def test_captions_are_reproducible_and_varied():
    sides_ = {"thickness": torch.tensor([1] * 50), "size": torch.tensor([-1] * 50), "slant": torch.tensor([1] * 50)}
    digits = torch.arange(50) % 10
    a = make_captions(digits, sides_, torch.Generator().manual_seed(1))
    b = make_captions(digits, sides_, torch.Generator().manual_seed(1))
    assert a == b
    assert len(set(a)) > 40  # templates, synonyms, numerals: few repeats
    assert any(c.split()[-1].isdigit() or any(w.isdigit() for w in words(c)) for c in a)  # numerals appear


def test_a_middle_third_attribute_is_never_mentioned():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        cap = make_caption(3, {"thickness": 0, "size": 0, "slant": 0}, g, p_attribute=1.0)
        assert parse_caption(cap) == {"digit": 3, "thickness": 0, "size": 0, "slant": 0}, cap


def test_every_caption_word_is_in_the_vocabulary():
    g = torch.Generator().manual_seed(0)
    for i in range(300):
        s = {name: int(torch.randint(-1, 2, (1,), generator=g)) for name in ATTRIBUTES}
        cap = make_caption(i % 10, s, g, p_attribute=0.7)
        assert set(words(cap)) <= set(VOCAB), cap


def test_articles():
    g = torch.Generator().manual_seed(0)
    caps = [make_caption(d, {}, g) for d in (1, 8) for _ in range(40)]
    assert not any(c.startswith("an one") or c.startswith("an 1") for c in caps)
    assert not any(c.startswith("a eight") or c.startswith("a 8") for c in caps)


def test_parse_caption_reads_every_synonym():
    for name in ATTRIBUTES:
        for side, phrases in zip((-1, 1), WORDS[name]):
            for phrase in phrases:
                assert parse_caption(f"a seven {phrase}")[name] == side
    assert parse_caption("the digit 4, written thin")["digit"] == 4
    assert parse_caption("")["digit"] is None
