"""The check of lesson 3's guided sampling loop (`checks.check_guided_sample`): the reference and a student's
loop written out pass; the plausible mistakes fail, naming the exercise and the case."""

import pytest
import torch

import exercise_checks
from diffusionlab import checks, guidance, samplers
from diffusionlab.schedules import NoiseSchedule


def loop(unet, schedule, labels, guidance_scale, xT, steps, eta=0.0, generator=None,
         uncond_labels=None, swap=False, last=-1, pass_eta=True):
    """The guided loop as the lesson writes it, with switches for the mistakes below."""
    timesteps = samplers.ddim_timesteps(schedule.T, steps)
    null = torch.full_like(labels, 10) if uncond_labels is None else uncond_labels(labels)
    x = xT
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < steps else last
        t2 = torch.full((2 * len(x),), t)
        eps_uncond, eps_cond = unet(torch.cat([x, x]), t2, torch.cat([null, labels])).chunk(2)
        eps = guidance.cfg_combine(eps_cond, eps_uncond, guidance_scale) if swap else (
            guidance.cfg_combine(eps_uncond, eps_cond, guidance_scale))
        x, _ = samplers.ddim_step(schedule, eps, t, t_prev, x, eta if pass_eta else 0.0, generator=generator)
    return x.clamp(-1, 1)


def written_out(*args):
    with torch.no_grad():
        return loop(*args)


def guidance_wrong_way_round(*args):
    with torch.no_grad():
        return loop(*args, swap=True)


def labels_as_unconditional(*args):
    """No null class: the 'unconditional' pass gets the labels too, so guidance does nothing."""
    with torch.no_grad():
        return loop(*args, uncond_labels=lambda y: y)


def class_zero_as_unconditional(*args):
    with torch.no_grad():
        return loop(*args, uncond_labels=torch.zeros_like)


def stops_at_t0(*args):
    """The last step goes to t = 0, one noise level short of the clean image."""
    with torch.no_grad():
        return loop(*args, last=0)


def ignores_eta(*args):
    with torch.no_grad():
        return loop(*args, pass_eta=False)


def noise_at_the_last_step(unet, schedule, labels, guidance_scale, xT, steps, eta=0.0, generator=None):
    """Adds fresh noise after the last step too, as a loop that draws its own noise every step would."""
    with torch.no_grad():
        x = loop(unet, schedule, labels, guidance_scale, xT, steps, eta, generator)
        a = float(schedule.alpha_bar[samplers.ddim_timesteps(schedule.T, steps)[-1]])
        return (x + eta * (1 - a) ** 0.5 * torch.randn(x.shape, generator=generator)).clamp(-1, 1)


def unguided(unet, schedule, labels, guidance_scale, xT, steps, eta=0.0, generator=None):
    return guidance.guided_sample(unet, schedule, labels, 1.0, xT, steps, eta, generator)


CASES = [(checks.check_guided_sample, guidance.guided_sample,
          [guidance_wrong_way_round, labels_as_unconditional, class_zero_as_unconditional, stops_at_t0,
           ignores_eta, noise_at_the_last_step, unguided])]
test_reference_passes, test_wrong_answers_fail_naming_the_exercise_and_the_case, test_unfinished_exercise = (
    exercise_checks.contract_tests(CASES))


def test_the_loop_written_out_passes(capsys):
    checks.check_guided_sample(written_out)
    assert "PASS guided_sample" in capsys.readouterr().out


def test_guided_sample_is_samplers_sample_with_guided_eps():
    """The reference is the package's one loop: the same numbers as DiffusionModel.sample's path."""
    unet = checks.guidance._random_cond_unet(1)
    schedule = NoiseSchedule(1000, "cosine")
    labels, xT = torch.tensor([1, 2]), torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    got = guidance.guided_sample(unet, schedule, labels, 2.5, xT, steps=4)
    expected = samplers.sample(guidance.guided_eps(unet, schedule, "eps", labels, 2.5), xT.shape, schedule, steps=4,
                               xT=xT, progress=False)
    assert torch.equal(got, expected)
    assert not torch.allclose(got, guidance.guided_sample(unet, schedule, labels, 1.0, xT, steps=4))


def test_guided_sample_refuses_labels_that_do_not_match_the_noise():
    unet = checks.guidance._random_cond_unet(1)
    with pytest.raises(ValueError, match="one class per image"):
        guidance.guided_sample(unet, NoiseSchedule(1000, "cosine"), torch.tensor([1, 2, 3]), 2.0,
                               torch.zeros(2, 1, 28, 28), steps=2)


STUDENT_LOOP = '''
def guided_sample(unet, schedule, labels, guidance_scale, xT, steps, eta=0.0, generator=None):
    null = torch.full_like(labels, 10)
    timesteps = samplers.ddim_timesteps(schedule.T, steps)
    x = xT
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < steps else -1
        eps_uncond, eps_cond = unet(torch.cat([x, x]), torch.full((2 * len(x),), t), torch.cat([null, labels])).chunk(2)
        x, _ = samplers.ddim_step(schedule, cfg_combine(eps_uncond, eps_cond, guidance_scale), t, t_prev, x, eta,
                                  generator=generator)
    return x.clamp(-1, 1)
'''


def test_a_wrong_cfg_combine_of_exercise_2_does_not_fail_the_loop(capsys):
    """In the notebook the loop calls the student's own cfg_combine; the check tests the loop alone."""
    namespace = {"torch": torch, "samplers": samplers, "cfg_combine": lambda u, c, w: c + w * (c - u)}
    exec(STUDENT_LOOP, namespace)
    with torch.no_grad():
        checks.check_guided_sample(namespace["guided_sample"])
    assert "PASS guided_sample" in capsys.readouterr().out
    assert namespace["cfg_combine"](torch.zeros(1), torch.ones(1), 2.0).item() == 3.0  # the student's is back


# a loop decorated with @torch.no_grad(), as lesson 3 writes it: the check still swaps in the course's cfg_combine
DECORATED_LOOP = STUDENT_LOOP.replace("\ndef guided_sample", "\n@torch.no_grad()\ndef guided_sample", 1)


def cfg_combine_not_done(eps_uncond, eps_cond, guidance_scale):
    raise NotImplementedError()


@pytest.mark.parametrize("cfg_combine", [lambda u, c, w: c + w * (c - u), cfg_combine_not_done],
                         ids=["wrong", "not_done"])
def test_a_decorated_loop_is_checked_with_the_courses_cfg_combine(cfg_combine, capsys):
    namespace = {"torch": torch, "samplers": samplers, "cfg_combine": cfg_combine}
    exec(DECORATED_LOOP, namespace)
    checks.check_guided_sample(namespace["guided_sample"])
    assert "PASS guided_sample" in capsys.readouterr().out
    assert namespace["cfg_combine"] is cfg_combine  # the student's is back
