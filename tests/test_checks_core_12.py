"""The core exercises of lessons 1-2 (issue 16): the UNet's up block, the time-conditioned residual block,
Algorithm 1's loss and Algorithm 2's sampling loop. Each check passes the reference and fails, naming the
exercise and the case, on mistakes students make; the UNet built from DownBlock/UpBlock is unchanged."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from diffusionlab import checks, samplers
from diffusionlab.checks import ExerciseError
from diffusionlab.models import unet
from exercise_checks import contract_tests


# --- lesson 1: the up block ------------------------------------------------------------------------------------

class ReferenceUpBlock(unet.UpBlock):
    """The course's up block in the exercise's signature: MyUpBlock(c_in, c_skip, c_out, groups), forward(h, skip)."""

    def __init__(self, c_in, c_skip, c_out, groups=8):
        super().__init__(c_in, c_skip, c_out, None, groups)

    def forward(self, h, skip):
        return super().forward(h, skip)


class SkipFirstUpBlock(ReferenceUpBlock):  # concatenates in the other order
    def forward(self, h, skip):
        return self.block(torch.cat([skip, F.interpolate(h, scale_factor=2, mode="nearest")], dim=1), None)


class BilinearUpBlock(ReferenceUpBlock):  # another upsampling than the UNet's
    def forward(self, h, skip):
        return self.block(torch.cat([F.interpolate(h, scale_factor=2, mode="bilinear"), skip], dim=1), None)


class UnfinishedUpBlock(ReferenceUpBlock):
    def forward(self, h, skip):
        raise NotImplementedError()


# --- lesson 2: the time-conditioned block ------------------------------------------------------------------------

class ReferenceTimeBlock(unet.ResBlock):
    def __init__(self, c_in, c_out, emb_dim, groups=8):
        super().__init__(c_in, c_out, emb_dim, groups)


class ScaleWithoutOne(ReferenceTimeBlock):  # h * scale + shift: multiplies the features by ~0
    def forward(self, x, emb):
        h = self.norm2(self.conv1(F.silu(self.norm1(x))))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        return self.conv2(F.silu(h * scale + shift)) + self.skip(x)


class EmbeddingWithoutSiLU(ReferenceTimeBlock):
    def forward(self, x, emb):
        h = self.norm2(self.conv1(F.silu(self.norm1(x))))
        scale, shift = self.emb(emb)[:, :, None, None].chunk(2, dim=1)
        return self.conv2(F.silu(h * (1 + scale) + shift)) + self.skip(x)


class UnfinishedTimeBlock(ReferenceTimeBlock):
    def forward(self, x, emb):
        raise NotImplementedError()


# --- lesson 2: Algorithm 1 ---------------------------------------------------------------------------------------

def loss_x0_target(model, x0, y, generator, schedule):  # predicts the clean image instead of the noise
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    return (model(schedule.q_sample(x0, t, eps), t) - x0).pow(2).mean()


def loss_one_t_per_batch(model, x0, y, generator, schedule):  # one timestep for the whole batch
    t = torch.randint(0, schedule.T, (1,), generator=generator).expand(x0.shape[0])
    eps = torch.randn(x0.shape, generator=generator)
    return (model(schedule.q_sample(x0, t, eps), t) - eps).pow(2).mean()


def loss_without_sqrt(model, x0, y, generator, schedule):  # alpha_bar instead of its square root
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    a = schedule.alpha_bar[t].float().view(-1, 1, 1, 1)
    return (model(a * x0 + (1 - a) * eps, t) - eps).pow(2).mean()


# --- lesson 2: Algorithm 2's loop --------------------------------------------------------------------------------

def ddpm_step(schedule, eps, t, t_prev, xt, noise):  # what the notebook's ddpm_step is during the loop's check
    raise AssertionError("the check must use the course's ddpm_step while it tests the loop")


def loop(eps_fn, schedule, steps, xT, generator, next_t=None, final_step=True, index_as_t=False):
    timesteps = samplers.ddim_timesteps(schedule.T, steps)
    x = xT
    for i, t in enumerate(timesteps):
        t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
        if next_t is not None:
            t_prev = next_t(t)
        if t_prev < 0 and not final_step:
            break
        t_in = steps - 1 - i if index_as_t else t
        eps = eps_fn(x, torch.full((x.shape[0],), t_in))
        noise = torch.randn(x.shape, generator=generator) if t_prev >= 0 else None
        x = ddpm_step(schedule, eps, t, t_prev, x, noise)
    return x


def loop_to_t_minus_1(eps_fn, schedule, steps, xT, generator):  # ignores the stride: always steps to t - 1
    return loop(eps_fn, schedule, steps, xT, generator, next_t=lambda t: t - 1)


def loop_stops_at_t0(eps_fn, schedule, steps, xT, generator):  # leaves out the last step, to the clean image
    return loop(eps_fn, schedule, steps, xT, generator, final_step=False)


def loop_gives_the_step_index(eps_fn, schedule, steps, xT, generator):  # tells the network i, not t
    return loop(eps_fn, schedule, steps, xT, generator, index_as_t=True)


CASES = [
    (checks.check_up_block, ReferenceUpBlock, [SkipFirstUpBlock, BilinearUpBlock]),
    (checks.check_time_res_block, ReferenceTimeBlock, [ScaleWithoutOne, EmbeddingWithoutSiLU]),
    (checks.check_diffusion_loss, checks.reference_diffusion_loss,
     [loss_x0_target, loss_one_t_per_batch, loss_without_sqrt]),
    (checks.check_ddpm_sample, checks.reference_ddpm_sample,
     [loop_to_t_minus_1, loop_stops_at_t0, loop_gives_the_step_index]),
]
UNFINISHED_CLASSES = {checks.check_up_block: UnfinishedUpBlock, checks.check_time_res_block: UnfinishedTimeBlock}

test_reference_passes, test_wrong_answers_fail_naming_the_exercise_and_the_case, _test_unfinished = contract_tests(CASES)


@pytest.mark.parametrize("check, reference, wrong", CASES, ids=[c[0].__name__ for c in CASES])
def test_unfinished_exercise(check, reference, wrong):
    unfinished = UNFINISHED_CLASSES.get(check)
    if unfinished is None:
        _test_unfinished(check, reference, wrong)
    else:
        with pytest.raises(ExerciseError, match="not done yet"):
            check(unfinished)


def test_the_loop_check_catches_the_stride_in_the_strided_case():
    with pytest.raises(ExerciseError, match=r"Exercise 'ddpm_sample', case 2 of 4 \(eps_fn: a function, "
                                            r"schedule=NoiseSchedule\(T=1000, kind='cosine'\), steps=10"):
        checks.check_ddpm_sample(loop_to_t_minus_1)


def test_the_loop_check_uses_the_courses_step_and_gives_the_students_back(capsys):
    """The loop is tested alone: the notebook's ddpm_step (here one that fails) is the course's during the check."""
    student_step = globals()["ddpm_step"]
    checks.check_ddpm_sample(loop)
    assert capsys.readouterr().out.startswith("PASS ddpm_sample")
    assert globals()["ddpm_step"] is student_step


def test_the_loss_check_tests_the_loss_alone(capsys):
    namespace = {}
    exec("import torch\n"
         "def q_sample(schedule, x0, t, eps):\n    return x0\n"  # wrong
         "def diffusion_loss(model, x0, y, generator, schedule):\n"
         "    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator, device=x0.device)\n"
         "    eps = torch.randn(x0.shape, generator=generator, device=x0.device)\n"
         "    return (model(q_sample(schedule, x0, t, eps), t) - eps).pow(2).mean()\n", namespace)
    checks.check_diffusion_loss(namespace["diffusion_loss"])
    assert capsys.readouterr().out.startswith("PASS diffusion_loss")


@pytest.mark.parametrize("check, reference", [(c[0], c[1]) for c in CASES], ids=[c[0].__name__ for c in CASES])
def test_checks_leave_the_global_rng_alone(check, reference):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    check(reference)
    assert torch.equal(torch.rand(3), expected)


def test_yours_or_reference_falls_back_to_the_reference_loop(capsys):
    assert checks.yours_or_reference(checks.check_ddpm_sample, loop_stops_at_t0,
                                     checks.reference_ddpm_sample) is checks.reference_ddpm_sample
    assert "Using the package's ddpm_sample for now (Exercise 'ddpm_sample', case 1 of 4" in capsys.readouterr().out
    assert checks.yours_or_reference(checks.check_ddpm_sample, loop, checks.reference_ddpm_sample) is loop
    assert capsys.readouterr().out == "Using your loop: it passes its check.\n"


def test_up_block_check_names_the_parameters():
    class Renamed(nn.Module):
        def __init__(self, c_in, c_skip, c_out, groups=8):
            super().__init__()
            self.res = unet.ResBlock(c_in + c_skip, c_out, None, groups)

    with pytest.raises(ExerciseError, match="parameters must be named like unet.UpBlock"):
        checks.check_up_block(Renamed)


# --- the UNet, now made of DownBlock and UpBlock -----------------------------------------------------------------

def test_unet_levels_are_down_and_up_blocks_with_the_same_parameter_names():
    model = unet.UNet(unet.UNetConfig())
    assert all(isinstance(level, unet.DownBlock) for level in model.down)
    assert all(isinstance(level, unet.UpBlock) for level in model.up)
    names = set(model.state_dict())
    for name in ("down.0.blocks.0.conv1.weight", "down.0.downsample.weight", "down.2.attn.norm.weight",
                 "up.0.block.conv1.weight", "up.0.attn.norm.weight", "mid.conv1.weight"):
        assert name in names, sorted(names)[:20]


def test_unet_forward_is_its_blocks_written_out():
    """The UNet's forward is stem, the down blocks (keeping their skips), mid, the up blocks and out: the blocks
    a student writes, composed by hand, give the same output."""
    torch.manual_seed(0)
    model = unet.UNet(unet.UNetConfig(channels=(8, 16, 32), attention=(False, False, True))).eval()
    torch.nn.init.normal_(model.out[-1].weight, std=0.1)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 700])
    with torch.no_grad():
        emb = model._embedding(x, t, None)
        h, skips = model.stem(x), []
        for level in model.down:
            h, skip = level(h, emb)
            skips.append(skip)
        h = model.mid(h, emb)
        assert h.shape == (2, 32, 7, 7)
        for level in model.up:
            h = level(h, skips.pop(), emb)
        assert torch.equal(model.out(h), model(x, t))


def test_swap_res_blocks_gives_the_same_network_with_the_students_blocks():
    torch.manual_seed(0)
    model = unet.UNet(unet.UNetConfig(channels=(8, 16), attention=(False, True))).eval()
    torch.nn.init.normal_(model.out[-1].weight, std=0.1)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3, 700])
    with torch.no_grad():
        before = model(x, t)
        unet.swap_res_blocks(model, ReferenceTimeBlock)
        assert torch.equal(model(x, t), before)
        n = sum(type(m) is ReferenceTimeBlock for m in model.modules())
        assert n == 5 and not any(type(m) is unet.ResBlock for m in model.modules())  # 2 down, mid, 2 up
        unet.swap_res_blocks(model, ScaleWithoutOne)  # only ResBlocks are swapped: the subclasses stay
        assert torch.equal(model(x, t), before)


def test_ddpm_step_check_needs_the_clipped_x0_hat():
    """The step is written with the posterior mean of x0_hat clipped to [-1, 1]: the eps form, which cannot clip,
    fails (it is the same step only where x0_hat is within [-1, 1])."""
    def eps_form(schedule, eps, t, t_prev, xt, noise):
        return samplers.ddpm_step(schedule, eps, t, t_prev, xt, clip=None, noise=noise)[0]

    with pytest.raises(ExerciseError, match=r"Exercise 'ddpm_step', case 1 of 7"):
        checks.check_ddpm_step(eps_form)
