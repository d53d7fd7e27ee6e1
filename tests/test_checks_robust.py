"""The checks fail, with a message naming the exercise and the case, the answers that would pass a lax check and
then break a later cell of the notebook: an error of the student's own code, a float64 result, an input changed in
place, a step that needs noise where the lesson's loop passes none, a start step truncated instead of rounded. (A loop
decorated with @torch.no_grad() is tested in test_checks_core_34.py.)"""

import pytest
import torch

from diffusionlab import checks, editing, flow, samplers
from diffusionlab.checks import ExerciseError
from diffusionlab.models.instruct import drop_conditions


# --- an error raised by the student's code ------------------------------------------------------------------------

def interpolate_without_reshape(x0, eps, t):
    """t (B,) used as it comes: it does not broadcast against (B, 1, 28, 28)."""
    return (1 - t) * x0 + t * eps


def test_an_error_of_the_students_code_names_the_exercise_and_the_case():
    with pytest.raises(ExerciseError, match=r"^Exercise 'interpolate', case 1 of 3 \(x0: \(2, 1, 28, 28\) tensor, .*\): "
                                            r"your function raised RuntimeError: The size of tensor"):
        checks.check_interpolate(interpolate_without_reshape)


def test_yours_or_reference_falls_back_when_the_students_code_raises(capsys):
    chosen = checks.yours_or_reference(checks.check_interpolate, interpolate_without_reshape, flow.interpolate)
    assert chosen is flow.interpolate
    assert "Using the package's interpolate for now (Exercise 'interpolate', case 1" in capsys.readouterr().out


# --- a float64 result ---------------------------------------------------------------------------------------------

def q_sample_float64(schedule, x0, t, eps):
    """Right values, but alpha_bar's float64 table makes the result float64: the UNet's float32 layers refuse it."""
    a = schedule.alpha_bar[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def test_a_float64_result_fails_naming_the_dtype():
    with pytest.raises(ExerciseError, match=r"Exercise 'q_sample', case 1 of 3 .*expected dtype float32, got float64; "
                                            r"compute in the inputs' dtype or cast the result with \.to\(torch\.float32\)$"):
        checks.check_q_sample(q_sample_float64)  # and nothing after: its values are right, not "float32 rounding"


# --- inputs changed in place --------------------------------------------------------------------------------------

def drop_labels_in_place(y, p_uncond, null_class, generator=None):
    y[torch.rand(y.shape, generator=generator) < p_uncond] = null_class
    return y


def replace_cross_in_place(probs, step, until):
    if step < until:
        n = probs.shape[0] // 4
        probs[3 * n:] = probs[2 * n:3 * n]
    return probs


def drop_conditions_in_place(image_latents, instructions, p, generator=None):
    dropped, kept, text_dropped, image_dropped = drop_conditions(image_latents, instructions, p, generator)
    image_latents.copy_(dropped)
    return image_latents, kept, text_dropped, image_dropped


@pytest.mark.parametrize("check, student, name", [
    (checks.check_drop_labels, drop_labels_in_place, "y"),
    (checks.check_replace_cross, replace_cross_in_place, "probs"),
    (checks.check_drop_conditions, drop_conditions_in_place, "image_latents"),
], ids=["drop_labels", "replace_cross", "drop_conditions"])
def test_an_input_changed_in_place_fails_naming_it(check, student, name):
    exercise = check.__name__.removeprefix("check_")
    with pytest.raises(ExerciseError, match=rf"Exercise '{exercise}', case \d+ of \d+ .*: your function changed its "
                                            rf"input '{name}' in place"):
        check(student)


# --- lesson 4: a DDIM step that needs noise at eta = 0 ------------------------------------------------------------

def ddim_step_always_adds_noise(schedule, eps, t, t_prev, xt, eta=0.0, noise=None):
    """Adds sigma * noise also at eta = 0, where the lesson's loop passes noise=None."""
    ab_t = schedule.alpha_bar[t]
    ab_prev = schedule.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0, dtype=torch.float64)
    x0_hat = (xt - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()
    sigma = eta * ((1 - ab_prev) / (1 - ab_t)).sqrt() * (1 - ab_t / ab_prev).sqrt()
    x_prev = ab_prev.sqrt() * x0_hat + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
    return x_prev + sigma * noise, x0_hat


def test_the_ddim_step_check_passes_no_noise_at_eta_0():
    with pytest.raises(ExerciseError, match=r"Exercise 'ddim_step', case \d+ of \d+ \(.*eta=0\.0, noise=None\)"):
        checks.check_ddim_step(ddim_step_always_adds_noise)


# --- lesson 6: SDEdit's start step, rounded, and strength 0 -------------------------------------------------------

def sdedit_start_truncated(schedule, x0, strength, steps, generator=None):
    """int() in place of round(): one step fewer wherever strength * steps is not whole."""
    n_run = int(strength * steps)
    return editing.sdedit_start(schedule, x0, n_run / steps, steps, generator=generator)


def sdedit_start_without_strength_0(schedule, x0, strength, steps, generator=None):
    """Always noises: at strength 0 it indexes one past the last timestep."""
    timesteps = samplers.ddim_timesteps(schedule.T, steps)
    start_step = steps - round(strength * steps)
    t = torch.full((x0.shape[0],), timesteps[start_step])
    return schedule.q_sample(x0, t, torch.randn(x0.shape, generator=generator)), start_step


@pytest.mark.parametrize("student", [sdedit_start_truncated, sdedit_start_without_strength_0])
def test_the_sdedit_check_has_strength_0_and_a_start_that_rounds_up(student):
    with pytest.raises(ExerciseError, match=r"Exercise 'sdedit_start', case \d+ of \d+"):
        checks.check_sdedit_start(student)



# --- the input itself returned, a NaN result ----------------------------------------------------------------------

def sdedit_start_returning_the_input(schedule, x0, strength, steps, generator=None):
    """Right values, but strength 0 gives back x0 itself: changing the "edited" image would change the input."""
    if round(strength * steps) == 0:
        return x0, steps
    return editing.sdedit_start(schedule, x0, strength, steps, generator=generator)


def test_returning_an_input_itself_fails_where_the_reference_returns_a_new_tensor():
    with pytest.raises(ExerciseError, match=r"^Exercise 'sdedit_start', case 5 of 5 \(.*\), result 1 of 2: your function "
                                            r"returned its input 'x0' itself \(or a view of it\)"):
        checks.check_sdedit_start(sdedit_start_returning_the_input)


def test_a_result_with_nan_says_so():
    def reparameterize_sqrt_of_logvar(mean, logvar, generator=None):
        """logvar is negative in places: its square root is NaN there."""
        return mean + logvar.sqrt() * torch.randn(mean.shape, generator=generator)

    with pytest.raises(ExerciseError, match=r"case 1 of 4 \(.*\): your result has NaN or infinite values where the "
                                            r"reference's are finite"):
        checks.check_reparameterize(reparameterize_sqrt_of_logvar)


# --- a right formula computed in float32 --------------------------------------------------------------------------

def ddpm_step_in_float32(schedule, eps, t, t_prev, xt, noise, variance="beta tilde"):
    """Algorithm 2 with the alpha_bar table cast to x_t's float32 first, as exercise 1 (q_sample) does: at t = 1,
    1 - alpha_bar_t / alpha_bar_t' is about 5e-5 and float32 keeps only some of its digits."""
    ab_t = schedule.alpha_bar[t].to(xt.dtype)
    ab_prev = schedule.alpha_bar[t_prev].to(xt.dtype) if t_prev >= 0 else torch.ones((), dtype=xt.dtype)
    beta = 1 - ab_t / ab_prev
    x0_hat = ((xt - (1 - ab_t).sqrt() * eps) / ab_t.sqrt()).clamp(-1, 1)
    mean = ab_prev.sqrt() * beta / (1 - ab_t) * x0_hat + (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab_t) * xt
    if t_prev < 0:
        return mean
    var = (1 - ab_prev) / (1 - ab_t) * beta if variance == "beta tilde" else beta
    return mean + var.sqrt() * noise


def test_a_right_formula_that_loses_precision_in_float32_is_told_so():
    with pytest.raises(ExerciseError, match=r"case 4 of 7 .*: values differ .* Your function agrees with the reference "
                                            r"when its inputs are float64"):
        checks.check_ddpm_step(ddpm_step_in_float32)


def test_a_wrong_formula_gets_no_precision_hint():
    with pytest.raises(ExerciseError) as failure:
        checks.check_ddpm_step(lambda *args: ddpm_step_in_float32(*args, variance="beta"))
    assert "values differ" in str(failure.value) and "float64" not in str(failure.value)


# --- a forgotten return ---------------------------------------------------------------------------------------------

def test_a_function_that_returns_nothing_is_asked_about_its_return():
    def q_sample_without_return(schedule, x0, t, eps):
        a = schedule.alpha_bar[t].to(x0.dtype).view(-1, 1, 1, 1)
        a.sqrt() * x0 + (1 - a).sqrt() * eps  # the return forgotten

    with pytest.raises(ExerciseError, match=r"case 1 of 3 \(.*\): your function returned None; did you forget "
                                            r"`return`\?"):
        checks.check_q_sample(q_sample_without_return)
