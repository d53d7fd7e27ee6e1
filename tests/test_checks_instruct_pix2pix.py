"""The exercise checks of lesson 9: each passes on the package's reference and on the solutions written out as the
notebook writes them, and names the exercise and the failing case's inputs when given a typical wrong answer or an
unfinished one (NotImplementedError)."""


import pytest
import torch

from diffusionlab import checks
from diffusionlab.checks import ExerciseError
from diffusionlab.guidance import dual_cfg_combine
from diffusionlab.models.instruct import drop_conditions
from diffusionlab.pairs import DIGIT_MARGIN, MOVE_MARGIN, directional_test

import exercise_checks  # tests/exercise_checks.py: what every exercise check must do


# --- drop_conditions: the solution written out, and wrong answers ---

def drop_written_out(image_latents, instructions, p, generator=None, two_draws=False, image_first=False,
                     both=True, empty="", image_noise=False):
    B = image_latents.shape[0]
    u = torch.rand(B, generator=generator)
    v = torch.rand(B, generator=generator) if two_draws else u
    text_dropped = u < (2 * p if both else p)
    image_dropped = (v >= p) & (v < 3 * p) if both else (v >= 2 * p) & (v < 3 * p)
    if image_first:  # the image dropped for u < p and the text for 2p <= u < 3p: the kinds swapped
        text_dropped, image_dropped = image_dropped, text_dropped
    mask = (~image_dropped).float().view(B, 1, 1, 1)
    replacement = torch.randn(image_latents.shape) if image_noise else torch.zeros_like(image_latents)
    out = image_latents * mask + replacement * (1 - mask)
    kept = [empty if d else s for s, d in zip(instructions, text_dropped.tolist())]
    return out, kept, text_dropped, image_dropped


def drop_in_place(image_latents, instructions, p, generator=None):
    """The right draws, but the inputs changed in place and returned (the training batch itself is spoiled)."""
    _, kept, t, i = drop_conditions(image_latents, instructions, p, generator)
    image_latents.mul_(0.5)
    return image_latents, kept, t, i


# --- dual guidance: the solution written out, and wrong answers ---

def dual_written_out(eps_uncond, eps_image, eps_full, image_scale, text_scale):
    return eps_uncond + image_scale * (eps_image - eps_uncond) + text_scale * (eps_full - eps_image)


def dual_scales_swapped(eps_uncond, eps_image, eps_full, image_scale, text_scale):
    return dual_written_out(eps_uncond, eps_image, eps_full, text_scale, image_scale)


def dual_text_from_uncond(eps_uncond, eps_image, eps_full, image_scale, text_scale):
    """The text term measured from eps(z, 0, 0) instead of eps(z, c_I, 0)."""
    return eps_uncond + image_scale * (eps_image - eps_uncond) + text_scale * (eps_full - eps_uncond)


def dual_text_only(eps_uncond, eps_image, eps_full, image_scale, text_scale):
    """Lesson 3's CFG on the instruction alone: the image scale is ignored."""
    return eps_image + text_scale * (eps_full - eps_image)


def dual_based_on_full(eps_uncond, eps_image, eps_full, image_scale, text_scale):
    return eps_full + image_scale * (eps_image - eps_uncond) + text_scale * (eps_full - eps_image)


# --- directional test: the solution written out, and wrong answers ---

def directional_written_out(kinds, targets, p_in, p_out, moved, strict=False, abs_move=False, one_margin=False,
                            read_out=False, input_digit=None):
    direction, passed = [], []
    for i, kind in enumerate(kinds):
        if kind == "digit":
            d = int(targets[i]) if input_digit is None else input_digit
            score = p_out[i, d] if read_out else p_out[i, d] - p_in[i, d]
            margin = MOVE_MARGIN if one_margin else DIGIT_MARGIN
        else:
            score = moved[kind][i].abs() if abs_move else moved[kind][i] * targets[i]
            margin = MOVE_MARGIN
        direction.append(float(score))
        passed.append(score > margin if strict else score >= margin)
    return torch.tensor(direction), torch.tensor([bool(x) for x in passed])


CASES = [
    # check, reference, wrong answers
    (checks.check_drop_conditions, drop_conditions,
     [lambda *a: drop_written_out(*a, two_draws=True), lambda *a: drop_written_out(*a, image_first=True),
      lambda *a: drop_written_out(*a, both=False), lambda *a: drop_written_out(*a, empty=None),
      lambda *a: drop_written_out(*a, image_noise=True), drop_in_place,
      lambda x, s, p, g: drop_conditions(x, s, p)]),  # the generator not used
    (checks.check_dual_guidance, dual_cfg_combine,
     [dual_scales_swapped, dual_text_from_uncond, dual_text_only, dual_based_on_full]),
    (checks.check_directional_test, directional_test,
     [lambda *a: directional_written_out(*a, strict=True), lambda *a: directional_written_out(*a, abs_move=True),
      lambda *a: directional_written_out(*a, one_margin=True), lambda *a: directional_written_out(*a, read_out=True),
      lambda *a: directional_written_out(*a)[0]]),  # the direction only, not the verdict
]
test_reference_passes, test_wrong_answers_fail_naming_the_exercise_and_the_case, test_unfinished_exercise = (
    exercise_checks.contract_tests(CASES))


def test_written_out_solutions_pass(capsys):
    """The notebook's solutions, written out as a student would, pass (not only the package's own functions)."""
    checks.check_drop_conditions(drop_written_out)
    checks.check_dual_guidance(dual_written_out)
    checks.check_directional_test(directional_written_out)
    out = capsys.readouterr().out
    assert out.count("PASS ") == 3, out


def test_a_dropped_instruction_of_the_wrong_kind_is_named():
    with pytest.raises(ExerciseError, match=r"Exercise 'drop_conditions', case 1 of 5 \(image_latents: \(24, 4, 8, 8\) "
                       r"tensor, instructions: a list, p=0\.3, generator seeded 2\), result 2 of 4"):
        checks.check_drop_conditions(lambda *a: drop_written_out(*a, empty=None))


def test_the_strict_margin_fails_on_the_case_at_the_margin():
    """Only case 3 puts style edits exactly on MOVE_MARGIN: '>' instead of '>=' fails there and nowhere before."""
    with pytest.raises(ExerciseError, match=r"Exercise 'directional_test', case 3 of 5 .*result 2 of 2"):
        checks.check_directional_test(lambda *a: directional_written_out(*a, strict=True))
