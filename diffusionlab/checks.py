"""Exercise checks: compare a student's function with the package's reference (every lesson).

Each `check_...(student_fn)` runs both functions on fixed, seeded inputs and prints a one-line
verdict that does not depend on the machine, so nbval can compare it with the verdict stored in
the lesson. A wrong answer raises `ExerciseError`, naming the exercise and the first case that
differs; an unfinished exercise (NotImplementedError) says so.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch


class ExerciseError(AssertionError):
    """The student's function does not (yet) match the reference."""


def compare(exercise: str, student_fn: Callable, reference_fn: Callable, cases: Sequence[Callable[[], tuple]],
            atol: float = 1e-5, rtol: float = 1e-4) -> None:
    """Run student_fn(*args) and reference_fn(*args) for each case and compare the results.

    cases: functions returning a fresh tuple of arguments each (so that a function that changes its
    inputs in place cannot spoil the reference's run). Results may be tensors, numbers or tuples of them.
    """
    for i, make_args in enumerate(cases, start=1):
        try:
            got = student_fn(*make_args())
        except NotImplementedError:
            raise ExerciseError(f"Exercise '{exercise}' is not done yet: replace `raise NotImplementedError()` "
                                "with your code.") from None
        expected = reference_fn(*make_args())
        _assert_close(exercise, i, got, expected, atol, rtol)
    print(f"PASS {exercise}: matches the reference on {len(cases)} seeded cases.")


def _assert_close(exercise: str, case: int, got, expected, atol: float, rtol: float) -> None:
    if isinstance(expected, (tuple, list)):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            raise ExerciseError(f"Exercise '{exercise}', case {case}: expected {len(expected)} results, "
                                f"got {type(got).__name__}")
        for g, e in zip(got, expected):
            _assert_close(exercise, case, g, e, atol, rtol)
        return
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            raise ExerciseError(f"Exercise '{exercise}', case {case}: expected a tensor, got {type(got).__name__}")
        if got.shape != expected.shape:
            raise ExerciseError(f"Exercise '{exercise}', case {case}: expected shape {tuple(expected.shape)}, "
                                f"got {tuple(got.shape)}")
        if not torch.allclose(got.double(), expected.double(), atol=atol, rtol=rtol):
            diff = (got.double() - expected.double()).abs().max().item()
            raise ExerciseError(f"Exercise '{exercise}', case {case}: values differ from the reference "
                                f"(largest difference {diff:.3g})")
        return
    if abs(float(got) - float(expected)) > atol + rtol * abs(float(expected)):
        raise ExerciseError(f"Exercise '{exercise}', case {case}: expected {expected}, got {got}")


def seeded(seed: int, *shape: int) -> torch.Tensor:
    """A reproducible standard-normal tensor for check inputs."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --- Lesson 1: denoising as a learning problem ----------------------------------------------------------


def check_add_noise(student_fn: Callable) -> None:
    """Lesson 1. student_fn(x, sigma, generator) -> x + sigma * eps with eps = torch.randn(x.shape, generator=...)."""
    from .train import add_noise
    from .utils import make_generator

    cases = [lambda s=s, seed=seed: (seeded(seed, 2, 1, 28, 28), s, make_generator(seed))
             for s, seed in ((0.0, 1), (0.2, 2), (0.5, 3), (1.0, 4))]
    compare("add_noise", student_fn, add_noise, cases)


def _random_resblock(c_in: int, c_out: int, seed: int, groups: int = 8):
    """A `unet.ResBlock` without embedding (lesson 1's), every parameter random (norms included)."""
    from .unet import ResBlock
    from .utils import make_generator

    block = ResBlock(c_in, c_out, None, groups)
    g = make_generator(seed)
    with torch.no_grad():
        for name, p in block.named_parameters():
            scale = 1.0 if name.startswith("norm") and name.endswith("weight") else 0.0  # GroupNorm scales near 1
            p.copy_(scale + 0.1 * torch.randn(p.shape, generator=g))
    return block


def check_res_block(student_class: type) -> None:
    """Lesson 1. student_class(c_in, c_out, groups) is a residual block with the parameter names of
    `unet.ResBlock` (norm1, conv1, norm2, conv2, skip) whose forward(x) is checked with the same weights."""

    def run(block_class):
        def fn(c_in, c_out, seed):
            reference = _random_resblock(c_in, c_out, seed)
            x = seeded(seed + 100, 2, c_in, 8, 8)
            if block_class is None:
                return reference(x, None)
            block = block_class(c_in, c_out, 8)
            try:
                block.load_state_dict(reference.state_dict())
            except RuntimeError as err:
                raise ExerciseError(f"Exercise 'res_block': the block's parameters must be named like unet.ResBlock's "
                                    f"({str(err).splitlines()[-1].strip()})") from None
            return block(x)

        return fn

    cases = [lambda c=c, seed=seed: (*c, seed) for c, seed in (((16, 16), 1), ((8, 16), 2), ((32, 16), 3))]
    with torch.no_grad(), torch.random.fork_rng():  # building blocks draws initial weights: keep the notebook's RNG
        compare("res_block", run(student_class), run(None), cases)


def check_denoiser_loss(student_fn: Callable) -> None:
    """Lesson 1. student_fn(model, x0, y, generator, sigma) -> the mean squared error ||model(z) - x0||^2,
    z = add_noise(x0, sigma, generator) (compared with `train.denoiser_loss`)."""
    from .train import denoiser_loss
    from .unet import UNet, UNetConfig
    from .utils import make_generator

    with torch.random.fork_rng():  # fixed weights, whatever ran before, and the notebook's RNG left alone
        torch.manual_seed(0)
        model = UNet(UNetConfig(channels=(8, 16), attention=(False, False), time_conditioning=False)).eval()
        torch.nn.init.normal_(model.out[-1].weight, std=0.1)  # not the all-zero start
    cases = [lambda s=s, seed=seed: (model, seeded(seed, 4, 1, 28, 28).clamp(-1, 1), None, make_generator(seed), s)
             for s, seed in ((0.5, 1), (0.2, 2), (1.0, 3))]
    with torch.no_grad():
        compare("denoiser_loss", student_fn, lambda m, x0, y, g, s: denoiser_loss(m, x0, y, g, sigma=s), cases)


# --- Lesson 2: DDPM -------------------------------------------------------------------------------------


def check_q_sample(student_fn: Callable) -> None:
    """Lesson 2. student_fn(schedule, x0, t, eps) -> x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps."""
    from .schedules import NoiseSchedule

    def case(kind, t, seed):
        schedule = NoiseSchedule(1000, kind)
        return lambda: (schedule, seeded(seed, len(t), 1, 28, 28), torch.tensor(t), seeded(seed + 1, len(t), 1, 28, 28))

    cases = [case("cosine", [0, 250, 500, 999], 1), case("linear", [10, 10, 700], 2), case("cosine", [42], 3)]
    compare("q_sample", student_fn, lambda schedule, x0, t, eps: schedule.q_sample(x0, t, eps), cases)


def check_cosine_schedule(student_fn: Callable) -> None:
    """Lesson 2. student_fn(T, s, max_beta) -> (betas, alpha_bar), both (T,): Improved DDPM's cosine schedule."""
    from .schedules import cosine_betas

    def reference(T, s, max_beta):
        betas = cosine_betas(T, s, max_beta)
        return betas, torch.cumprod(1 - betas, dim=0)

    cases = [lambda T=T, s=s: (T, s, 0.999) for T, s in ((1000, 0.008), (50, 0.008), (10, 0.1))]
    compare("cosine_schedule", student_fn, reference, cases)


def check_ddpm_step(student_fn: Callable) -> None:
    """Lesson 2. student_fn(schedule, eps, t, xt, noise) -> x_{t-1}: one step of Algorithm 2 of DDPM with
    sigma_t^2 = beta tilde_t and no noise at t = 0 (compared with `samplers.ddpm_step(..., clip=False)`)."""
    from .samplers import ddpm_step
    from .schedules import NoiseSchedule

    def case(kind, t, seed):
        schedule = NoiseSchedule(1000, kind)
        return lambda: (schedule, seeded(seed, 2, 1, 28, 28), t, seeded(seed + 1, 2, 1, 28, 28),
                        seeded(seed + 2, 2, 1, 28, 28))

    cases = [case("cosine", 900, 10), case("cosine", 500, 20), case("linear", 300, 30), case("cosine", 1, 40),
             case("cosine", 0, 50)]
    compare("ddpm_step", student_fn,
            lambda schedule, eps, t, xt, noise: ddpm_step(schedule, eps, t, xt, clip=False, noise=noise)[0], cases)


# --- Lesson 3: class conditioning and classifier-free guidance ------------------------------------------

NULL_CLASS = 10  # the course's cond model: digits 0..9, label 10 = "no class"


def _dropout_rate(fn: Callable) -> Callable:
    """Run a condition-dropout function and return the fraction of labels it replaced.

    The random draws may be made in any way, so what is compared is what must hold for every correct
    answer: a tensor of labels of the same shape, changed only to the null class, at the right rate.
    """
    def run(y: torch.Tensor, p_uncond: float, seed: int) -> float:
        out = fn(y.clone(), p_uncond, NULL_CLASS, torch.Generator().manual_seed(seed))
        if not isinstance(out, torch.Tensor) or out.shape != y.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ExerciseError(f"Exercise 'drop_labels': return a tensor of labels shaped like y {tuple(y.shape)}, "
                                f"got {got}")
        changed = out != y
        if (out[changed] != NULL_CLASS).any():
            raise ExerciseError(f"Exercise 'drop_labels' (p_uncond={p_uncond}): a label may only be replaced by the "
                                f"null class {NULL_CLASS}, but some became {sorted(set(out[changed].tolist()) - {NULL_CLASS})[:5]}")
        return changed.float().mean().item()

    return run


def check_drop_labels(student_fn: Callable) -> None:
    """Lesson 3. student_fn(y, p_uncond, null_class, generator) -> y with labels dropped to null_class.

    On 50,000 labels the fraction replaced must be within 1.5 points of the reference's (p_uncond).
    """
    from .guidance import drop_labels

    def labels():
        return torch.randint(0, 10, (50_000,), generator=torch.Generator().manual_seed(1))

    cases = [lambda p=p: (labels(), p, 7) for p in (0.0, 0.1, 0.5, 1.0)]
    compare("drop_labels", _dropout_rate(student_fn), _dropout_rate(drop_labels), cases, atol=0.015, rtol=0.0)


def check_cfg_combine(student_fn: Callable) -> None:
    """Lesson 3. student_fn(eps_uncond, eps_cond, guidance_scale) -> the guided noise estimate."""
    from .guidance import cfg_combine

    cases = [lambda w=w: (seeded(1, 2, 1, 28, 28), seeded(2, 2, 1, 28, 28), w) for w in (0.0, 1.0, 3.5, 7.5)]
    compare("cfg_combine", student_fn, cfg_combine, cases)


# --- Lesson 4: DDIM and fast sampling -------------------------------------------------------------------


def _as_int_list(exercise: str, fn: Callable) -> Callable:
    """Accept a list, tuple, array or tensor of timesteps; compare them as a list of ints."""
    def run(*args):
        out = fn(*args)
        try:
            return [int(t) for t in out]
        except (TypeError, ValueError):
            raise ExerciseError(f"Exercise '{exercise}': return a list of integer timesteps, "
                                f"got {type(out).__name__}") from None

    return run


def check_ddim_timesteps(student_fn: Callable) -> None:
    """Lesson 4. student_fn(T, steps) -> the trailing timesteps [round(T - 1 - i T / steps) for i < steps]."""
    from .samplers import ddim_timesteps

    cases = [lambda T=T, s=s: (T, s) for T, s in ((1000, 1), (1000, 3), (1000, 10), (1000, 50), (1000, 1000), (100, 7))]
    compare("ddim_timesteps", _as_int_list("ddim_timesteps", student_fn),
            lambda T, steps: ddim_timesteps(T, steps, "trailing"), cases, atol=0, rtol=0)


def check_ddim_step(student_fn: Callable) -> None:
    """Lesson 4. student_fn(schedule, eps, t, t_prev, xt, eta, noise) -> (x_prev, x0_hat), eq. 12 and 16
    of DDIM without clipping x0_hat (compared with `samplers.ddim_step(..., clip=False)`)."""
    from .samplers import ddim_step
    from .schedules import NoiseSchedule

    schedule = NoiseSchedule(1000, "cosine")

    def case(t, t_prev, eta, seed):
        return lambda: (schedule, seeded(seed, 2, 1, 28, 28), t, t_prev, seeded(seed + 1, 2, 1, 28, 28), eta,
                        seeded(seed + 2, 2, 1, 28, 28))

    cases = [case(960, 940, 0.0, 10), case(500, 480, 0.0, 20), case(500, 300, 0.5, 30), case(40, 20, 1.0, 40),
             case(20, -1, 1.0, 50)]

    def reference(schedule, eps, t, t_prev, xt, eta, noise):
        return ddim_step(schedule, eps, t, t_prev, xt, eta, clip=False, noise=noise)

    compare("ddim_step", student_fn, reference, cases)


# --- Lesson 5: editing ----------------------------------------------------------------------------------


def check_sdedit_start(student_fn: Callable) -> None:
    """Lesson 5. student_fn(schedule, x0, strength, steps, generator) -> (x_t_start, start_step), as
    `editing.sdedit_start` with trailing timesteps: the noise is torch.randn(x0.shape, generator=generator)."""
    from .editing import sdedit_start
    from .schedules import NoiseSchedule

    schedule = NoiseSchedule(1000, "cosine")

    def case(strength, steps, seed):
        return lambda: (schedule, seeded(seed, 2, 1, 28, 28).clamp(-1, 1), strength, steps,
                        torch.Generator().manual_seed(seed + 1))

    cases = [case(0.5, 50, 1), case(0.3, 20, 2), case(1.0, 10, 3), case(0.04, 50, 4), case(0.75, 40, 5)]
    compare("sdedit_start", student_fn, lambda s, x0, strength, steps, g: sdedit_start(s, x0, strength, steps,
                                                                                      generator=g), cases)


def check_inpaint_replace(student_fn: Callable) -> None:
    """Lesson 5. student_fn(schedule, x, x_known, mask, t, generator) -> the model's x where mask = 1 and
    x_known noised to t elsewhere (t = -1: x_known itself), as `editing.inpaint_replace`."""
    from .editing import inpaint_replace, make_mask
    from .schedules import NoiseSchedule

    schedule = NoiseSchedule(1000, "cosine")

    def case(kind, t, seed):
        return lambda: (schedule, seeded(seed, 2, 1, 28, 28), seeded(seed + 1, 2, 1, 28, 28).clamp(-1, 1),
                        make_mask(kind), t, torch.Generator().manual_seed(seed + 2))

    cases = [case("top", 900, 1), case("center", 500, 2), case("right", 20, 3), case("bottom", -1, 4)]
    compare("inpaint_replace", student_fn, inpaint_replace, cases)


def check_anagram_combine(student_fn: Callable) -> None:
    """Lesson 5. student_fn(eps_a, eps_b_seen, view) -> 1/2 (eps_a + inverse_view(eps_b_seen)), as
    `editing.anagram_combine`, for every view in `editing.VIEWS`."""
    from .editing import VIEWS, anagram_combine

    cases = [lambda v=v, k=k: (seeded(10 + k, 2, 1, 28, 28), seeded(20 + k, 2, 1, 28, 28), v)
             for k, v in enumerate(VIEWS)]
    compare("anagram_combine", student_fn, anagram_combine, cases)


def check_split_frequencies(student_fn: Callable) -> None:
    """Lesson 5. student_fn(x, sigma_px) -> (low, high): the Gaussian blur of x and what is left, as
    `editing.split_frequencies`."""
    from .editing import split_frequencies

    cases = [lambda s=s, k=k: (seeded(30 + k, 2, 1, 28, 28), s) for k, s in enumerate((0.5, 1.0, 2.0, 3.5))]
    compare("split_frequencies", student_fn, split_frequencies, cases)
