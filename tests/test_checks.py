"""The exercise checks of lessons 1-2: each passes the reference, and rejects a wrong answer and a stub."""

import pytest
import torch
from torch import nn

from diffusionlab import checks, losses, samplers, schedules
from diffusionlab.models import unet
from diffusionlab.checks import ExerciseError


class ReferenceResBlock(unet.ResBlock):
    """The course's block in the exercise's signature: MyResBlock(c_in, c_out, groups), forward(x)."""

    def __init__(self, c_in, c_out, groups=8):
        super().__init__(c_in, c_out, None, groups)

    def forward(self, x):
        return super().forward(x, None)


class NoSkipResBlock(ReferenceResBlock):
    def forward(self, x):
        return super().forward(x) - self.skip(x)


class StubResBlock(ReferenceResBlock):
    def forward(self, x):
        raise NotImplementedError()


class RenamedResBlock(nn.Module):
    def __init__(self, c_in, c_out, groups=8):
        super().__init__()
        self.first_norm = nn.GroupNorm(min(groups, c_in), c_in)

    def forward(self, x):
        return x


def stub(*args):
    raise NotImplementedError()


def cosine_reference(T, s, max_beta):
    betas = schedules.cosine_betas(T, s, max_beta)
    return betas, torch.cumprod(1 - betas, dim=0)


CASES = {  # check: (reference, a wrong answer, a stub); wrong answers are mistakes students make
    "check_add_noise": (losses.add_noise, lambda x, sigma, g: x + sigma * torch.randn_like(x), stub),
    "check_res_block": (ReferenceResBlock, NoSkipResBlock, StubResBlock),
    "check_denoiser_loss": (
        lambda model, x0, y, g, sigma: losses.denoiser_loss(model, x0, y, g, sigma=sigma),
        lambda model, x0, y, g, sigma: (model(losses.add_noise(x0, sigma, g)) - x0).pow(2).sum(),
        stub,
    ),
    "check_q_sample": (
        lambda schedule, x0, t, eps: schedule.q_sample(x0, t, eps),
        lambda schedule, x0, t, eps: (schedule.alpha_bar[t].view(-1, 1, 1, 1) * x0
                                      + (1 - schedule.alpha_bar[t]).view(-1, 1, 1, 1) * eps),  # no square roots
        stub,
    ),
    "check_cosine_schedule": (
        cosine_reference,
        lambda T, s, max_beta: (schedules.cosine_betas(T, s, 1.0),  # not clipped
                                torch.cumprod(1 - schedules.cosine_betas(T, s, 1.0), dim=0)),
        stub,
    ),
    "check_ddpm_step": (
        lambda schedule, eps, t, t_prev, xt, noise: samplers.ddpm_step(schedule, eps, t, t_prev, xt, clip=1.0,
                                                                       noise=noise)[0],
        # noise added at the last step too
        lambda schedule, eps, t, t_prev, xt, noise: samplers.ddpm_step(schedule, eps, t, t_prev, xt, clip=1.0,
                                                                       noise=noise)[0]
        + (0.01 * noise if t_prev == -1 else 0),
        stub,
    ),
}


@pytest.mark.parametrize("name", CASES)
def test_check_passes_the_reference(name, capsys):
    getattr(checks, name)(CASES[name][0])
    assert capsys.readouterr().out.startswith("PASS ")


@pytest.mark.parametrize("name", CASES)
def test_check_rejects_a_wrong_answer(name):
    with pytest.raises(ExerciseError, match=r"Exercise '\w+', case \d+ of \d+ \(\w+.*\)"):  # the case by its inputs
        getattr(checks, name)(CASES[name][1])


def test_a_failure_names_its_case_by_its_inputs():
    with pytest.raises(ExerciseError) as failure:
        checks.check_add_noise(lambda x, sigma, generator=None: x)  # forgets the noise: case 1 (sigma = 0) passes
    assert str(failure.value).startswith("Exercise 'add_noise', case 2 of 4 (x: (2, 1, 28, 28) tensor, sigma=0.2, "
                                         "generator seeded 2): values differ from the reference")
    with pytest.raises(ExerciseError, match=r"case 1 of 3 \(schedule=NoiseSchedule\(T=1000, kind='cosine'\), "
                                            r"x0: \(4, 1, 28, 28\) tensor, t=\[0, 250, 500, 999\], eps: "):
        checks.check_q_sample(CASES["check_q_sample"][1])


NOTEBOOK = """
import torch

def add_noise(x, sigma, generator=None):  # wrong: the noise is drawn without the generator, twice too strong
    return x + 2 * sigma * torch.randn_like(x)

def denoiser_loss(model, x0, y, generator, sigma=0.5):  # right, but calls the wrong add_noise
    z = add_noise(x0, sigma, generator)
    return (model(z) - x0).pow(2).mean()
"""


def test_denoiser_loss_check_tests_the_loss_alone(capsys):
    """A correct denoiser_loss passes although the notebook's add_noise, which it calls, is wrong; and the
    notebook's add_noise is the student's again afterwards."""
    namespace = {}
    exec(NOTEBOOK, namespace)  # a notebook's globals
    students_add_noise = namespace["add_noise"]
    with pytest.raises(ExerciseError, match="'add_noise'"):
        checks.check_add_noise(students_add_noise)
    checks.check_denoiser_loss(namespace["denoiser_loss"])
    assert capsys.readouterr().out.startswith("PASS denoiser_loss")
    assert namespace["add_noise"] is students_add_noise


def test_others_as_references_reaches_a_class_and_restores_on_error():
    namespace = {}
    exec("def helper():\n    return 'student'\nclass Block:\n    def forward(self):\n        return helper()\n", namespace)
    with checks.others_as_references(namespace["Block"], helper=lambda: "reference"):
        assert namespace["Block"]().forward() == "reference"
    with pytest.raises(RuntimeError), checks.others_as_references(namespace["Block"], helper=lambda: "reference"):
        raise RuntimeError("a student's error")
    assert namespace["Block"]().forward() == "student"


@pytest.mark.parametrize("name", CASES)
def test_check_says_a_stub_is_not_done(name):
    with pytest.raises(ExerciseError, match="is not done yet"):
        getattr(checks, name)(CASES[name][2])


def test_res_block_check_names_the_parameters():
    with pytest.raises(ExerciseError, match="parameters must be named like unet.ResBlock"):
        checks.check_res_block(RenamedResBlock)


@pytest.mark.parametrize("name", CASES)
def test_checks_leave_the_global_rng_alone(name):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    getattr(checks, name)(CASES[name][0])
    assert torch.equal(torch.rand(3), expected)


def test_ddpm_step_check_needs_t_prev():
    """A step that always goes to t - 1 (beta_t from the table) misses the check's skipping case."""
    def always_t_minus_1(schedule, eps, t, t_prev, xt, noise):
        return samplers.ddpm_step(schedule, eps, t, t - 1, xt, clip=1.0, noise=noise)[0]

    with pytest.raises(ExerciseError, match="case 6"):
        checks.check_ddpm_step(always_t_minus_1)


def test_yours_or_reference_uses_the_students_function_only_once_it_passes(capsys):
    def unfinished(x, sigma, generator=None):
        raise NotImplementedError()

    def wrong(x, sigma, generator=None):
        return x

    assert checks.yours_or_reference(checks.check_add_noise, unfinished, losses.add_noise) is losses.add_noise
    assert "not done yet" in capsys.readouterr().out
    assert checks.yours_or_reference(checks.check_add_noise, wrong, losses.add_noise) is losses.add_noise
    assert "Using the package's add_noise" in capsys.readouterr().out
    assert checks.yours_or_reference(checks.check_add_noise, losses.add_noise, wrong) is losses.add_noise
    assert capsys.readouterr().out.startswith("Using your")
