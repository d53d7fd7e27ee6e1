"""Instruction triplets (instructions.py, lesson 9): what each triplet asks for, word-swap caption pairs,
reproducibility, and that the tokenizer built from INSTRUCTION_VOCAB reads every word."""

import pytest
import torch

from diffusionlab.captions import ATTRIBUTES, VOCAB, parse_caption, words
from diffusionlab.instructions import (
    DIGIT_TEMPLATES,
    INSTRUCTION_VOCAB,
    INSTRUCTION_WORDS,
    KINDS,
    STYLE_TEMPLATES,
    make_instruction,
    make_triplet,
    random_triplets,
)
from diffusionlab.models.text_encoder import Tokenizer


@pytest.fixture(scope="module")
def triplets():
    return random_triplets(2000, torch.Generator().manual_seed(0))


def test_the_edited_caption_says_what_the_triplet_asks_for(triplets):
    for tr in triplets:
        before, after = parse_caption(tr.caption), parse_caption(tr.edited_caption)
        assert before["digit"] == tr.digit and after["digit"] == tr.edited_digit
        for name in ATTRIBUTES:
            assert before[name] == tr.sides[name]
            assert after[name] == (tr.target if tr.kind == name else tr.sides[name])
        if tr.kind == "digit":
            assert tr.target != tr.digit
        else:
            assert tr.sides[tr.kind] == -tr.target  # random triplets are word swaps: thin -> thick


def test_caption_pairs_are_word_swaps_with_the_tokens_in_place(triplets):
    for tr in triplets:
        a, b = words(tr.caption), words(tr.edited_caption)
        assert len(a) == len(b), (tr.caption, tr.edited_caption)
        changed = [i for i, (x, y) in enumerate(zip(a, b)) if x != y]
        assert 1 <= len(changed) <= 3  # the digit (and its article), or one attribute phrase's word(s)


def test_every_kind_and_direction_appears_with_paraphrases(triplets):
    kinds = {tr.kind for tr in triplets}
    assert kinds == set(KINDS)
    for name in ATTRIBUTES:
        for side in (-1, 1):
            said = {tr.instruction for tr in triplets if tr.kind == name and tr.target == side}
            assert said <= set(STYLE_TEMPLATES[name][side > 0]) and len(said) >= 4
    digit_instructions = {tr.instruction for tr in triplets if tr.kind == "digit"}
    assert any(any(ch.isdigit() for ch in s) for s in digit_instructions)  # numerals ...
    assert any(" seven" in s or " two" in s for s in digit_instructions)  # ... and words


def test_digit_instructions_name_the_digits():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        s = make_instruction("digit", 8, 7, g)
        ws = words(s)
        assert "eight" in ws or "8" in ws
        assert "an" in ws and "a" not in ws  # "an eight", never "a eight"
        with_source = [t for t in DIGIT_TEMPLATES if "{src}" in t]
        names_source = bool(set(ws) & {"seven", "7"})
        assert names_source == any(s in (t.format(src=x, dst=f"an {y}") for x, y in (("seven", "eight"), ("7", "8")))
                                   for t in with_source)
    seen = {make_instruction("digit", 2, 7, torch.Generator().manual_seed(s), p_numeral=0.0) for s in range(200)}
    assert "change the seven to a two" in seen and "turn it into a two" in seen


def test_reproducible_with_a_generator():
    a = random_triplets(50, torch.Generator().manual_seed(3))
    b = random_triplets(50, torch.Generator().manual_seed(3))
    c = random_triplets(50, torch.Generator().manual_seed(4))
    assert a == b and a != c


def test_the_instruction_tokenizer_reads_every_word_and_keeps_the_caption_ids(triplets):
    tok = Tokenizer(INSTRUCTION_VOCAB)
    texts = [s for tr in triplets for s in (tr.caption, tr.instruction, tr.edited_caption)]
    texts += list(STYLE_TEMPLATES["slant"][0]) + [t.format(src="seven", dst="an eight") for t in DIGIT_TEMPLATES]
    tok.encode(texts)  # raises on an unknown word or a text too long for max_length
    assert set(INSTRUCTION_WORDS).isdisjoint(VOCAB) and {"make", "turn", "thicker", "lean"} <= set(INSTRUCTION_WORDS)
    old = Tokenizer(VOCAB)
    assert all(tok.ids[w] == old.ids[w] for w in VOCAB)  # the lesson-7 embedding rows stay valid
    with pytest.raises(ValueError, match="unknown word 'make'"):
        old.encode("make it thicker")  # the caption tokenizer alone cannot read instructions


@pytest.mark.parametrize("kind, target, digit", [("digit", 7, 7), ("digit", 10, 1), ("size", 0, 3), ("color", 1, 3),
                                                 ("slant", 1, 12)])
def test_bad_edits_raise(kind, target, digit):
    with pytest.raises(ValueError):
        make_triplet(kind, target, digit)


def test_a_given_source_side_is_kept():
    tr = make_triplet("thickness", 1, 4, {"thickness": 0, "slant": 1}, torch.Generator().manual_seed(0))
    assert parse_caption(tr.caption)["thickness"] == 0 and parse_caption(tr.edited_caption)["thickness"] == 1
    assert parse_caption(tr.edited_caption)["slant"] == 1
