"""The exercise checks of lesson 2, DDPM.

Each exercise has its reference here in the exercise's own signature (`reference_q_sample`, ...), built on the
package's functions: the check compares the student's function with it, and `yours_or_reference` falls back to it.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..losses import diffusion_loss
from ..models.unet import ResBlock, UNet, UNetConfig
from ..samplers import ddpm_step, sample
from ..schedules import NoiseSchedule, cosine_betas
from ..utils import make_generator
from .common import compare, load_reference_weights, others_as_references, seeded
from .denoising import _random_parameters


def reference_q_sample(schedule, x0, t, eps):
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps (`NoiseSchedule.q_sample`)."""
    return schedule.q_sample(x0, t, eps)


def reference_diffusion_loss(model, x0, y, generator, schedule):
    """Algorithm 1 of DDPM, the eps-prediction loss (`losses.diffusion_loss` for an unconditional model)."""
    return diffusion_loss(model, x0, y, generator, schedule)


def reference_ddpm_step(schedule, eps, t, t_prev, xt, noise):
    """One step of Algorithm 2 from t to t_prev with the given noise z, x0_hat clipped to [-1, 1]
    (`samplers.ddpm_step`)."""
    return ddpm_step(schedule, eps, t, t_prev, xt, clip=1.0, noise=noise)[0]


def reference_ddpm_sample(eps_fn, schedule, steps, xT, generator):
    """Algorithm 2 on the `steps` timesteps `samplers.ddim_timesteps(T, steps)`, from xT (`samplers.sample`,
    sampler="ddpm"; its last step returns the clipped x0_hat, so its final clamp changes nothing)."""
    return sample(eps_fn, None, schedule, sampler="ddpm", steps=steps, xT=xT, generator=generator, clip=1.0,
                  progress=False)


# Named like the exercises, so that `yours_or_reference` says "the package's ddpm_step".
for _fn, _name in ((reference_q_sample, "q_sample"), (reference_diffusion_loss, "diffusion_loss"),
                   (reference_ddpm_step, "ddpm_step"), (reference_ddpm_sample, "ddpm_sample")):
    _fn.__name__ = _name


def check_q_sample(student_fn: Callable) -> None:
    """Lesson 2. student_fn(schedule, x0, t, eps) -> x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps."""
    def case(kind, t, seed):
        schedule = NoiseSchedule(1000, kind)
        return lambda: (schedule, seeded(seed, len(t), 1, 28, 28), torch.tensor(t), seeded(seed + 1, len(t), 1, 28, 28))

    def weighted(weights):
        def fn(schedule, x0, t, eps):
            a, b = weights(schedule, t)
            return a.to(x0.dtype).view(-1, 1, 1, 1) * x0 + b.to(x0.dtype).view(-1, 1, 1, 1) * eps
        return fn

    mistakes = {
        "you used alpha_t (schedule.alphas) where the formula has alpha_bar_t (schedule.alpha_bar), the product of "
        "the alphas up to t": weighted(lambda s, t: (s.alphas[t].sqrt(), (1 - s.alphas[t]).sqrt())),
        "the square roots are missing: the weights are sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t)":
            weighted(lambda s, t: (s.alpha_bar[t], 1 - s.alpha_bar[t])),
    }
    cases = [case("cosine", [0, 250, 500, 999], 1), case("linear", [10, 10, 700], 2), case("cosine", [42], 3)]
    compare("q_sample", student_fn, reference_q_sample, cases, mistakes=mistakes)


def check_cosine_schedule(student_fn: Callable) -> None:
    """Lesson 2. student_fn(T, s, max_beta) -> (betas, alpha_bar), both (T,): Improved DDPM's cosine schedule."""
    def reference(T, s, max_beta):
        betas = cosine_betas(T, s, max_beta)
        return betas, torch.cumprod(1 - betas, dim=0)

    cases = [lambda T=T, s=s: (T, s, 0.999) for T, s in ((1000, 0.008), (50, 0.008), (10, 0.1))]
    compare("cosine_schedule", student_fn, reference, cases)


def check_time_res_block(student_class: type) -> None:
    """Lesson 2. student_class(c_in, c_out, emb_dim, groups) is lesson 1's residual block with the time
    embedding added (FiLM): forward(x, emb), x (B, c_in, H, W), emb (B, emb_dim). Its parameters are named like
    `unet.ResBlock`'s (norm1, conv1, emb, norm2, conv2, skip); the check loads the same random weights into
    both and compares the outputs."""

    def run(block_class):
        def fn(c_in, c_out, emb_dim, seed):
            reference = _random_parameters(ResBlock(c_in, c_out, emb_dim, 8), seed)
            x, emb = seeded(seed + 100, 2, c_in, 8, 8), seeded(seed + 200, 2, emb_dim)
            if block_class is None:
                return reference(x, emb)
            block = block_class(c_in, c_out, emb_dim, 8)
            load_reference_weights(block, reference, "time_res_block")
            return block(x, emb)

        return fn

    cases = [lambda c=c, seed=seed: (*c, seed) for c, seed in (((16, 16, 32), 1), ((8, 16, 64), 2), ((32, 16, 16), 3))]
    with torch.no_grad(), torch.random.fork_rng():  # building blocks draws initial weights: keep the notebook's RNG
        compare("time_res_block", run(student_class), run(None), cases)


def check_diffusion_loss(student_fn: Callable) -> None:
    """Lesson 2. student_fn(model, x0, y, generator, schedule) -> Algorithm 1's loss ||eps - model(x_t, t)||^2
    (the mean), with t (B,) drawn first, `torch.randint(0, T, ...)`, then eps, both from `generator`, and
    x_t = q_sample(schedule, x0, t, eps). If it calls the notebook's `q_sample`, the course's is used during the
    check: this check tests the loss alone."""
    with torch.random.fork_rng():  # fixed weights, whatever ran before, and the notebook's RNG left alone
        torch.manual_seed(0)
        model = UNet(UNetConfig(channels=(8, 16), attention=(False, False))).eval()
        torch.nn.init.normal_(model.out[-1].weight, std=0.1)  # not the all-zero start
    cases = [lambda kind=kind, seed=seed: (model, seeded(seed, 4, 1, 28, 28).clamp(-1, 1), None, make_generator(seed),
                                           NoiseSchedule(1000, kind))
             for kind, seed in (("cosine", 1), ("linear", 2), ("cosine", 3))]
    with torch.no_grad(), others_as_references(student_fn, q_sample=reference_q_sample):
        compare("diffusion_loss", student_fn, reference_diffusion_loss, cases)


def check_ddpm_step(student_fn: Callable) -> None:
    """Lesson 2. student_fn(schedule, eps, t, t_prev, xt, noise) -> x_{t_prev}: one step of Algorithm 2 of DDPM
    written with the posterior q(x_{t_prev} | x_t, x0_hat), x0_hat clipped to [-1, 1], for any t_prev < t
    (beta = 1 - alpha_bar_t / alpha_bar_{t_prev}), sigma^2 = beta tilde and no noise at the last step,
    t_prev = -1 (compared with `samplers.ddpm_step(..., clip=1.0)`)."""
    def case(kind, t, t_prev, seed):
        schedule = NoiseSchedule(1000, kind)
        return lambda: (schedule, seeded(seed, 2, 1, 28, 28), t, t_prev, seeded(seed + 1, 2, 1, 28, 28),
                        seeded(seed + 2, 2, 1, 28, 28))

    mistakes = {
        "x0_hat is not clipped to [-1, 1] before the posterior mean": _step_with_mistake(clip=False),
        "the noise has variance beta instead of beta tilde = (1 - alpha_bar_prev) / (1 - alpha_bar_t) beta":
            _step_with_mistake(variance="beta"),
        "beta is schedule.betas[t], right only when t_prev = t - 1: use beta = 1 - alpha_bar_t / alpha_bar_prev":
            _step_with_mistake(beta="table"),
    }
    cases = [case("cosine", 900, 899, 10), case("cosine", 500, 499, 20), case("linear", 300, 299, 30),
             case("cosine", 1, 0, 40), case("cosine", 0, -1, 50), case("cosine", 500, 480, 60),
             case("cosine", 999, 749, 70)]
    compare("ddpm_step", student_fn, reference_ddpm_step, cases, mistakes=mistakes)


def _step_with_mistake(clip: bool = True, variance: str = "beta tilde", beta: str = "strided") -> Callable:
    """Algorithm 2 as `reference_ddpm_step`, written out with one of the mistakes students make."""
    def step(schedule, eps, t, t_prev, xt, noise):
        ab_t = schedule.alpha_bar[t].item()
        ab_prev = schedule.alpha_bar[t_prev].item() if t_prev >= 0 else 1.0
        b = schedule.betas[t].item() if beta == "table" else 1 - ab_t / ab_prev
        x0 = (xt - (1 - ab_t) ** 0.5 * eps) / ab_t ** 0.5
        x0 = x0.clamp(-1, 1) if clip else x0
        mean = ab_prev ** 0.5 * b / (1 - ab_t) * x0 + (1 - b) ** 0.5 * (1 - ab_prev) / (1 - ab_t) * xt
        if t_prev < 0:
            return mean
        var = (1 - ab_prev) / (1 - ab_t) * b if variance == "beta tilde" else b
        return mean + var ** 0.5 * noise

    return step


def _toy_eps_fn(schedule: NoiseSchedule) -> Callable:
    """A stand-in for a trained network that depends on x_t and t: eps = sqrt(1 - alpha_bar_t) x_t."""
    def eps_fn(x, t):
        t = torch.as_tensor(t, device=x.device).reshape(-1)
        return (1 - schedule.alpha_bar.to(x.device)[t]).sqrt().to(x.dtype).view(-1, 1, 1, 1) * x

    eps_fn.__name__ = "eps_fn"
    return eps_fn


def check_ddpm_sample(student_fn: Callable) -> None:
    """Lesson 2. student_fn(eps_fn, schedule, steps, xT, generator) -> x0: Algorithm 2 as a loop over the timesteps
    `samplers.ddim_timesteps(T, steps)`, each step to the next timestep (the last one to t_prev = -1), with the
    noise z drawn from `generator` only where it is used (t_prev >= 0). If it calls the notebook's `ddpm_step`,
    the course's is used during the check: this check tests the loop alone."""
    def case(kind, steps, seed):
        schedule = NoiseSchedule(1000, kind)
        return lambda: (_toy_eps_fn(schedule), schedule, steps, seeded(seed, 2, 1, 28, 28), make_generator(seed))

    cases = [case("cosine", 1000, 1), case("cosine", 10, 2), case("linear", 50, 3), case("cosine", 1, 4)]
    with torch.no_grad(), others_as_references(student_fn, ddpm_step=reference_ddpm_step):
        compare("ddpm_sample", student_fn, reference_ddpm_sample, cases)
