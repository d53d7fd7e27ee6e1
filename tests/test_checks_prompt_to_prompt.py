"""The exercise checks of lesson 8: each passes on the package's reference and on the answer written out as a
student would, and names the exercise and the failing case's inputs when given a typical wrong answer or an
unfinished one (NotImplementedError)."""


import pytest
from diffusionlab import checks
from diffusionlab.checks import ExerciseError
from diffusionlab.editing.prompt_to_prompt import Reweight
from diffusionlab.models.lora import LoRALinear

import exercise_checks  # tests/exercise_checks.py: what every exercise check must do


# --- replace_cross: the answer written out, and wrong answers ---

def replace_cross(probs, step, until, rows=None):
    """The word swap written out: the last n rows (edited prompt) := rows 2n..3n-1 (source prompt)."""
    if step >= until:
        return probs
    n = probs.shape[0] // 4
    out = probs.clone()
    out[3 * n:] = probs[2 * n:3 * n]
    return out


def replace_cross_off_by_one(probs, step, until):
    """Controls one step too many (step <= until)."""
    return replace_cross(probs, step, until + 1)


def replace_cross_unconditional_too(probs, step, until):
    """Also copies the unconditional source rows onto the unconditional edited rows."""
    if step >= until:
        return probs
    n = probs.shape[0] // 4
    out = probs.clone()
    out[n:2 * n] = probs[:n]
    out[3 * n:] = probs[2 * n:3 * n]
    return out


def replace_cross_reversed(probs, step, until):
    """Copies the edited prompt's maps onto the source's."""
    if step >= until:
        return probs
    n = probs.shape[0] // 4
    out = probs.clone()
    out[2 * n:3 * n] = probs[3 * n:]
    return out


def replace_cross_first_half(probs, step, until):
    """Reads the layout as [source, edited] (unguided): copies the first half onto the second."""
    if step >= until:
        return probs
    half = probs.shape[0] // 2
    out = probs.clone()
    out[half:] = probs[:half]
    return out


def replace_cross_always(probs, step, until):
    """Forgets the steps: replaces at every step."""
    return replace_cross(probs, 0, 1)


# --- reweight: the answer written out, and wrong answers ---

def reweight(maps, token, scale):
    out = maps.clone()
    out[..., token] = out[..., token] * scale
    return out


def reweight_renormalised(maps, token, scale):
    """Renormalises every row to sum to 1 afterwards (the paper's code does not)."""
    out = reweight(maps, token, scale)
    return out / out.sum(-1, keepdim=True)


def reweight_query_axis(maps, token, scale):
    """Scales the token-th image position (dim -2) instead of the token's column."""
    out = maps.clone()
    out[..., token, :] = out[..., token, :] * scale
    return out


def reweight_others(maps, token, scale):
    """Scales every column but the token's."""
    out = maps * scale
    out[..., token] = maps[..., token]
    return out


def reweight_added(maps, token, scale):
    """Adds the scale instead of multiplying."""
    out = maps.clone()
    out[..., token] = out[..., token] + scale
    return out


# --- lora_linear: the answer written out, and wrong answers ---

def lora_linear(x, base, A, B, alpha):
    r = A.shape[0]
    return base(x) + (alpha / r) * (x @ A.T @ B.T)


def lora_scale_alpha(x, base, A, B, alpha):
    """Scales by alpha instead of alpha / r."""
    return base(x) + alpha * (x @ A.T @ B.T)


def lora_no_base(x, base, A, B, alpha):
    """Forgets the frozen layer: only the update."""
    return (alpha / A.shape[0]) * (x @ A.T @ B.T)


def lora_no_bias(x, base, A, B, alpha):
    """Uses the base weight but drops its bias."""
    return x @ base.weight.T + (alpha / A.shape[0]) * (x @ A.T @ B.T)


def lora_only_base(x, base, A, B, alpha):
    """Ignores the update (right only where B = 0)."""
    return base(x)


CASES = [
    # check, reference, wrong answers
    (checks.check_replace_cross, replace_cross,
     [replace_cross_off_by_one, replace_cross_unconditional_too, replace_cross_reversed, replace_cross_first_half,
      replace_cross_always]),
    (checks.check_reweight, lambda maps, token, scale: Reweight(token, scale, steps=1).edit(maps, maps, None),
     [reweight_renormalised, reweight_query_axis, reweight_others, reweight_added]),
    (checks.check_lora_linear, lora_linear, [lora_scale_alpha, lora_no_base, lora_no_bias, lora_only_base]),
]
test_reference_passes, test_wrong_answers_fail_naming_the_exercise_and_the_case, test_unfinished_exercise = (
    exercise_checks.contract_tests(CASES))


def test_written_out_answers_pass_and_the_package_layer_is_the_reference(capsys):
    """The notebook's solutions, written out as a student would, pass; and the LoRA check's reference is the
    package's layer itself (its forward with A and B set), so the written-out formula agrees with it."""
    checks.check_replace_cross(replace_cross)
    checks.check_reweight(reweight)
    checks.check_lora_linear(lambda x, base, A, B, alpha: LoRALinear.forward(
        type("L", (), {"base": base, "scale": alpha / A.shape[0], "A": A, "B": B})(), x))
    out = capsys.readouterr().out
    assert "PASS replace_cross" in out and "PASS reweight" in out and "PASS lora_linear" in out


def test_an_off_by_one_is_named_at_the_boundary_step():
    """step == until is the first step that is no longer controlled: the failure names that case."""
    with pytest.raises(ExerciseError, match=r"case 4 of 6 \(probs: \(8, 2, 4, 12\) tensor, step=8, until=8\)"):
        checks.check_replace_cross(replace_cross_off_by_one)


def test_the_lora_check_fails_an_update_ignored_on_its_first_case():
    """Ignoring the update is right only where B = 0 (case 4); the first case, with B random, names it."""
    with pytest.raises(ExerciseError, match=r"Exercise 'lora_linear', case 1 of 5 \(x: \(2, 16, 32\) tensor"):
        checks.check_lora_linear(lora_only_base)
