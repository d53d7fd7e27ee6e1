"""Editing instructions: (caption, instruction, edited caption) triplets from templates (lesson 9).

Brooks, Holynski & Efros 2022, "InstructPix2Pix", sec. 3.1.1: a fine-tuned GPT-3 reads an image
caption and writes an edit instruction and the caption after the edit,
    ("photograph of a girl riding a horse", "have her ride a dragon", "photograph of a girl riding a dragon").
Our captions are the lesson-7 ones (`captions.make_caption`), so templates with paraphrases are enough:
    ("a thin seven", "make it thicker", "a thick seven")
    ("a small 2 leaning right", "change the two to a five", "a small 5 leaning right")
Four kinds of edit, each with a target that the evaluation can measure (`Triplet.kind`, `Triplet.target`):
    digit       target = the new digit (0..9), read by the course classifier
    thickness   target = the side asked for, -1 (thinner) or +1 (thicker), measured by `captions.attributes`
    size        target = -1 (smaller) or +1 (larger)
    slant       target = -1 (lean left) or +1 (lean right)
The caption and the edited caption are written from the same random draws, so they differ only in the
edited word(s) and have as many words: "a thin seven" -> "a thick seven", "a seven" -> "an eight". That is
prompt-to-prompt's word swap (`editing.prompt_to_prompt.ReplaceCross`), which needs the tokens in place.

Vocabulary. Instructions are text for the text encoder, so their words must be in the tokenizer's
vocabulary: `INSTRUCTION_VOCAB` is the caption vocabulary `captions.VOCAB` followed by the words only
instructions use (`INSTRUCTION_WORDS`). Kept in that order, the caption words keep their token ids, and
the lesson-7 text encoder only needs new embedding rows (`models.instruct.grow_token_embedding`):
    Tokenizer(INSTRUCTION_VOCAB)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from .captions import ATTRIBUTES, DIGIT_WORDS, VOCAB, _article, make_caption, words

KINDS = ("digit", *ATTRIBUTES)  # ("digit", "thickness", "size", "slant")
KIND_WEIGHTS = (0.4, 0.2, 0.2, 0.2)  # how often `random_triplets` draws each kind

# "{src}": the source digit, "{dst}": the new one with its article ("a two", "an 8")
DIGIT_TEMPLATES = (
    "turn it into {dst}", "change the {src} to {dst}", "make it {dst}", "turn the {src} into {dst}",
    "replace the {src} with {dst}", "change it to {dst}", "draw {dst} instead", "make the {src} {dst}",
)
# for each attribute, the instructions for side -1 and for side +1
STYLE_TEMPLATES = {
    "thickness": (
        ("make it thinner", "thin the strokes", "make it light", "make the strokes thinner", "make it finer",
         "use thinner strokes", "make the lines lighter"),
        ("make it thicker", "make the strokes thicker", "make it bold", "thicken the strokes", "make it heavier",
         "use thicker strokes", "make the lines bolder"),
    ),
    "size": (
        ("make it smaller", "make it narrower", "shrink it", "make the digit smaller", "make it a little smaller"),
        ("make it larger", "make it bigger", "make it wider", "enlarge it", "widen it", "make the digit larger"),
    ),
    "slant": (
        ("lean it to the left", "make it lean left", "tilt it to the left", "slant it left",
         "make it lean to the left"),
        ("lean it to the right", "make it lean right", "tilt it to the right", "slant it right",
         "make it lean to the right"),
    ),
}


def instruction_words() -> tuple[str, ...]:
    """The words that instructions use and captions do not, in a fixed order."""
    texts = list(DIGIT_TEMPLATES) + [t for pair in STYLE_TEMPLATES.values() for side in pair for t in side]
    found = [w for t in texts for w in words(t.replace("{src}", "").replace("{dst}", ""))]
    return tuple(w for w in dict.fromkeys(found) if w not in VOCAB)


INSTRUCTION_WORDS = instruction_words()
INSTRUCTION_VOCAB = (*VOCAB, *INSTRUCTION_WORDS)  # caption words first: their token ids do not move


@dataclass
class Triplet:
    """One edit: the source caption, the instruction, the caption after the edit, and what to measure.

    digit: the source digit; sides: the source's side of each attribute ({name: -1, 0 or +1});
    kind: "digit", "thickness", "size" or "slant"; target: the new digit, or the requested side (-1 or +1).
    """

    caption: str
    instruction: str
    edited_caption: str
    kind: str
    target: int
    digit: int
    sides: dict = field(default_factory=dict)

    @property
    def edited_digit(self) -> int:
        return self.target if self.kind == "digit" else self.digit


def _choice(options, generator):
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def _check(kind: str, target: int, digit: int) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(digit, int) or not 0 <= digit <= 9:
        raise ValueError(f"digit must be 0..9, got {digit!r}")
    if kind == "digit" and (not isinstance(target, int) or not 0 <= target <= 9 or target == digit):
        raise ValueError(f"a digit edit's target is a new digit 0..9 other than the source {digit}, got {target!r}")
    if kind != "digit" and target not in (-1, 1):
        raise ValueError(f"a {kind} edit's target is the side asked for, -1 or +1, got {target!r}")


def make_instruction(kind: str, target: int, digit: int, generator: torch.Generator | None = None,
                     p_numeral: float = 0.3) -> str:
    """An instruction for one edit, e.g. ("digit", 2, 7) -> "change the seven to a two" or "make it a 2";
    ("thickness", +1, 7) -> "make it thicker". Digits are numerals with probability p_numeral."""
    _check(kind, target, digit)
    g = generator
    if kind != "digit":
        return _choice(STYLE_TEMPLATES[kind][target > 0], g)
    numeral = torch.rand(1, generator=g).item() < p_numeral
    src, dst = (str(d) if numeral else DIGIT_WORDS[d] for d in (digit, target))
    return _choice(DIGIT_TEMPLATES, g).format(src=src, dst=f"{_article(dst)} {dst}")


def make_triplet(kind: str, target: int, digit: int, sides: dict | None = None,
                 generator: torch.Generator | None = None) -> Triplet:
    """The triplet for one edit of a `digit` whose attributes have `sides` ({name: -1, 0, +1}; missing: 0).

    Every attribute with a side is named in both captions. For a style edit the edited caption has the
    attribute on the `target` side; its source side defaults to the opposite one, -target (the word-swap
    pair "a thin seven" -> "a thick seven"); a given side 0 or +target is kept (then the captions differ
    by a word added, or not at all, as for pairs made from real digits).
    """
    _check(kind, target, digit)
    sides = {name: int((sides or {}).get(name, 0)) for name in ATTRIBUTES}
    edited_sides = dict(sides)
    if kind != "digit":
        edited_sides[kind] = target
    seed = int(torch.randint(2**62, (1,), generator=generator))  # the two captions share their random draws
    caption = make_caption(digit, sides, torch.Generator().manual_seed(seed), p_attribute=1.0,
                           p_plain=0.0)
    edited_digit = target if kind == "digit" else digit
    edited = make_caption(edited_digit, edited_sides, torch.Generator().manual_seed(seed), p_attribute=1.0,
                           p_plain=0.0)
    return Triplet(caption, make_instruction(kind, target, digit, generator), edited, kind, target, digit, sides)


def random_triplets(n: int, generator: torch.Generator | None = None, kinds=KINDS, weights=None,
                    p_side: float = 0.3) -> list[Triplet]:
    """n random word-swap triplets: a random digit and kind (by `weights`, default KIND_WEIGHTS for KINDS,
    uniform otherwise); every other attribute gets a side -1 or +1 with probability p_side each."""
    kinds = tuple(kinds)
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"kinds must be among {KINDS}, got {k!r}")
    if weights is None:
        weights = KIND_WEIGHTS if kinds == KINDS else [1.0] * len(kinds)
    w = torch.tensor(weights, dtype=torch.float)
    g = generator
    out = []
    for _ in range(n):
        kind = kinds[int(torch.multinomial(w, 1, generator=g))]
        digit = int(torch.randint(10, (1,), generator=g))
        u = torch.rand(len(ATTRIBUTES), generator=g).tolist()
        sides = {name: -1 if x < p_side else 1 if x < 2 * p_side else 0 for name, x in zip(ATTRIBUTES, u)}
        if kind == "digit":
            target = (digit + 1 + int(torch.randint(9, (1,), generator=g))) % 10  # any other digit
        else:
            target = 1 if torch.rand(1, generator=g).item() < 0.5 else -1
            sides[kind] = -target
        out.append(make_triplet(kind, target, digit, sides, g))
    return out


def read_instruction(text: str) -> tuple[str, int] | None:
    """What an instruction written from the templates asks for: (kind, target), e.g. "turn it into a 3" ->
    ("digit", 3), "thin the strokes" -> ("thickness", -1); None for any other text. (The img2img baseline
    needs the edited caption, and the evaluation the kind, of a free-form instruction.)"""
    joined = " ".join(words(text))
    for kind, pair in STYLE_TEMPLATES.items():
        for target, options in zip((-1, 1), pair):
            if joined in (" ".join(words(o)) for o in options):
                return kind, target
    digit = "(" + "|".join(DIGIT_WORDS) + r"|\d)"
    for template in DIGIT_TEMPLATES:
        pattern = " ".join(words(template.replace("{src}", "SRC").replace("{dst}", "DST")))
        pattern = pattern.replace("src", digit).replace("dst", "an? " + digit)
        m = re.fullmatch(pattern, joined)
        if m:
            dst = m.groups()[-1]
            return "digit", int(dst) if dst.isdigit() else DIGIT_WORDS.index(dst)
    return None
