"""Samplers: the reverse process, kept apart from the model (lessons 2 and 4).

A sampler only needs a function eps_fn(x_t, t) -> eps, the model's estimate of the noise in x_t
(see `guidance.guided_eps`, which wraps a trained UNet, its prediction type and classifier-free
guidance into one). Each step function works on one step; `sample` writes out the loop.

DDPM, Ho et al. 2020, Algorithm 2, with the posterior q(x_{t'} | x_t, x0) of eq. 6-7
(t' is the previous timestep; t' = t - 1 when every step is taken):
    x0_hat  = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)            (from eq. 4)
    beta    = 1 - alpha_bar_t / alpha_bar_t'                                    (= beta_t for t' = t - 1)
    mean    = sqrt(alpha_bar_t') beta / (1 - alpha_bar_t) x0_hat
            + sqrt(1 - beta) (1 - alpha_bar_t') / (1 - alpha_bar_t) x_t          (eq. 7)
    var     = (1 - alpha_bar_t') / (1 - alpha_bar_t) beta                        (beta tilde)
    x_t'    = mean + sqrt(var) z,   with no noise at the last step (t' = -1, alpha_bar = 1)

DDIM, Song et al. 2021, eq. 12 (and eq. 16 for sigma):
    sigma   = eta sqrt((1 - alpha_bar_t') / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_t')
    x_t'    = sqrt(alpha_bar_t') x0_hat + sqrt(1 - alpha_bar_t' - sigma^2) eps + sigma z
eta = 0 is deterministic; eta = 1 gives DDPM's variance.

x0_hat is clipped to [-clip, clip], the data range (clip = 1 for images in [-1, 1]), and eps is
recomputed from the clipped x0_hat; clip = None turns clipping off (a latent model's data has no
fixed range). The returned sample is clamped to the same range.

Precision: the schedule's tables stay in float64 and each step's coefficients are computed from them
as Python floats; the tensors are computed in float32 (float64 if x is float64), whatever the dtype
of x_T or of the network's output. In bfloat16, alpha_bar_0 = 0.99996 rounds to 1 and a 1000-step
sample divides by 1 - alpha_bar_0 = 0. The samples come back in float32 (float64 for float64 x_T).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from tqdm.auto import tqdm

from .schedules import NoiseSchedule, compute_dtype, eps_from_x0, x0_from_eps

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # eps_fn(x_t (B, C, H, W), t (B,)) -> eps

SAMPLERS = ("ddpm", "ddim")
SPACINGS = ("trailing", "leading", "linspace")


def ddim_timesteps(T: int, steps: int, spacing: str = "trailing") -> list[int]:
    """The decreasing subsequence of 0..T-1 that a `steps`-step sampler visits.

    "trailing" starts at T-1 (pure noise, even for steps=1); "leading" is DDIM's original
    t = 0, T/steps, 2T/steps, ...; "linspace" spreads the steps evenly from T-1 to 0.
    """
    if not isinstance(steps, int) or not 1 <= steps <= T:
        raise ValueError(f"steps must be an integer from 1 to T={T}, got {steps!r}")
    if spacing == "trailing":
        ts = [round(T - 1 - i * T / steps) for i in range(steps)]
    elif spacing == "leading":
        ts = [i * (T // steps) for i in reversed(range(steps))]
    elif spacing == "linspace":
        ts = torch.linspace(0, T - 1, steps).round().long().flip(0).tolist()
    else:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    return [int(t) for t in ts]


def _alpha_bar(schedule: NoiseSchedule, t: int) -> float:
    """alpha_bar at an integer t as a Python float (float64), with alpha_bar(-1) = 1 (the clean image)."""
    return float(schedule.alpha_bar_at(t))


def check_clip(clip: float | None) -> float | None:
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float)) or not clip > 0):
        raise ValueError(f"clip must be a positive bound (x0_hat is clipped to [-clip, clip]; 1.0 for images "
                         f"in [-1, 1]) or None for no clipping, got {clip!r}")
    return clip


def _check_step(schedule: NoiseSchedule, t: int, t_prev: int, generator, noise) -> None:
    if not 0 <= t < schedule.T or not -1 <= t_prev < t:
        raise ValueError(f"need 0 <= t < T={schedule.T} and -1 <= t_prev < t, got t={t}, t_prev={t_prev}")
    if generator is not None and noise is not None:
        raise ValueError("pass either noise or generator, not both: the noise would be used and the generator "
                         "silently ignored")


def _as_compute(xt: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t and eps in the samplers' precision (float32, or float64 if x_t is float64). eps must have x_t's shape:
    an eps of another shape, such as (B, 1, H, W) for 4-channel latents, would broadcast into a wrong sample."""
    if eps.shape != xt.shape:
        raise ValueError(f"eps must have the shape of x_t {tuple(xt.shape)}, got {tuple(eps.shape)}: the eps_fn must "
                         "answer one noise estimate per image, with the image's channels")
    dtype = compute_dtype(xt)
    return xt.to(dtype), eps.to(dtype)


def _noise(like: torch.Tensor, generator: torch.Generator | None, noise: torch.Tensor | None) -> torch.Tensor:
    if noise is not None:
        return noise.to(like.dtype)
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def predict_x0(schedule: NoiseSchedule, eps: torch.Tensor, t: int, xt: torch.Tensor, clip: float | None = 1.0):
    """x0_hat from x_t and eps (eq. 4 solved for x0); clipped to [-clip, clip] with eps made consistent.
    Returns (x0_hat, eps); clip=None: no clipping."""
    check_clip(clip)
    xt, eps = _as_compute(xt, eps)
    a = _alpha_bar(schedule, t)
    x0 = x0_from_eps(xt, eps, a)
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
        eps = eps_from_x0(xt, x0, a)
    return x0, eps


def ddpm_step(schedule: NoiseSchedule, eps: torch.Tensor, t: int, t_prev: int, xt: torch.Tensor,
              generator: torch.Generator | None = None, clip: float | None = 1.0, noise: torch.Tensor | None = None):
    """One ancestral step x_t -> x_{t_prev} (Algorithm 2; t_prev = t - 1 unless steps are skipped).
    Returns (x_prev, x0_hat).

    t_prev = -1 means "the clean image", the last step, where no noise is added. The noise z comes from
    `generator`, or is given as `noise` (not both).
    """
    _check_step(schedule, t, t_prev, generator, noise)
    xt, eps = _as_compute(xt, eps)
    # 1. names from the paper (Python floats, from the float64 tables)
    ab_t, ab_prev = _alpha_bar(schedule, t), _alpha_bar(schedule, t_prev)
    beta = 1 - ab_t / ab_prev
    # 2. the clean image the model sees in x_t
    x0, _ = predict_x0(schedule, eps, t, xt, clip)
    # 3. posterior mean and variance (eq. 7)
    mean = (math.sqrt(ab_prev) * beta / (1 - ab_t)) * x0 + (math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab_t)) * xt
    if t_prev < 0:
        return mean, x0  # the last step adds no noise
    var = max((1 - ab_prev) / (1 - ab_t) * beta, 1e-20)
    # 4. sample
    return mean + math.sqrt(var) * _noise(xt, generator, noise), x0


def ddim_step(schedule: NoiseSchedule, eps: torch.Tensor, t: int, t_prev: int, xt: torch.Tensor, eta: float = 0.0,
              generator: torch.Generator | None = None, clip: float | None = 1.0, noise: torch.Tensor | None = None):
    """One DDIM step x_t -> x_{t_prev} (eq. 12). Returns (x_prev, x0_hat). t_prev = -1: the clean image.
    The noise z (eta > 0) comes from `generator`, or is given as `noise` (not both)."""
    _check_step(schedule, t, t_prev, generator, noise)
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be between 0 (deterministic DDIM) and 1 (DDPM-like), got {eta}")
    xt, eps = _as_compute(xt, eps)
    # 1. names from the paper (Python floats, from the float64 tables)
    ab_t, ab_prev = _alpha_bar(schedule, t), _alpha_bar(schedule, t_prev)
    # 2. predicted x0, and the noise direction consistent with it
    x0, eps = predict_x0(schedule, eps, t, xt, clip)
    # 3. sigma (eq. 16)
    sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev))
    # 4. eq. 12: jump to t_prev along the predicted direction, plus fresh noise if eta > 0
    x_prev = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
    if eta > 0 and t_prev >= 0:
        x_prev = x_prev + sigma * _noise(xt, generator, noise)
    return x_prev, x0


def check_sampler(sampler: str, eta: float = 0.0) -> None:
    """A known sampler, and eta only where it means something: DDPM has no eta (its noise is always the
    posterior's, which DDIM gives at eta = 1), so an eta other than the default 0 with "ddpm" is refused
    rather than silently ignored."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "ddpm" and eta != 0:
        raise ValueError(f"eta is a DDIM setting and sampler='ddpm' has none (it always adds DDPM's noise, which "
                         f"DDIM adds at eta=1); got eta={eta!r}: leave eta out with 'ddpm', or use sampler='ddim'")


def step(sampler: str, schedule: NoiseSchedule, eps: torch.Tensor, t: int, t_prev: int, xt: torch.Tensor,
         eta: float = 0.0, generator: torch.Generator | None = None, clip: float | None = 1.0):
    """One reverse step of `sampler` ("ddpm" or "ddim") from t to t_prev. Returns (x_prev, x0_hat).
    eta is DDIM's; with "ddpm" it must stay 0."""
    check_sampler(sampler, eta)
    if sampler == "ddpm":
        return ddpm_step(schedule, eps, t, t_prev, xt, generator=generator, clip=clip)
    return ddim_step(schedule, eps, t, t_prev, xt, eta, generator=generator, clip=clip)


@torch.no_grad()
def sample(
    eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    shape: tuple[int, ...],
    schedule: NoiseSchedule,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    spacing: str = "trailing",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    xT: torch.Tensor | None = None,
    start_step: int = 0,
    callback: Callable | None = None,
    return_trajectory: bool = False,
    progress: bool = True,
    clip: float | None = 1.0,
):
    """Run the reverse process from noise to samples in [-clip, clip] (images in [-1, 1] by default).

    eps_fn:     (x_t (B, C, H, W), t (B,)) -> eps (B, C, H, W)
    sampler:    "ddpm" (ancestral, Algorithm 2) or "ddim" (eq. 12 with `eta`)
    eta:        DDIM's noise level, 0 (deterministic) to 1 (DDPM's noise); "ddpm" takes no eta (leave it 0)
    steps:      number of steps, 1..T, on the timesteps `ddim_timesteps(T, steps, spacing)`
    xT:         the starting point (default: fresh noise of `shape` from `generator` on `device`); with xT,
                shape is None or xT's shape, and the samples are on xT's device
    start_step: skip the first `start_step` timesteps, starting from xT at the timestep after them
                (SDEdit, lesson 6)
    callback:   callback(i, t, t_prev, x_prev, x0_hat) after every step; if it returns a tensor,
                that replaces x_prev (inpainting, lesson 6)
    clip:       the data range bound: x0_hat and the result are clipped to [-clip, clip]; None: not at all
    Returns x0 (B, C, H, W) in float32 (float64 if xT is float64), or (x0, trajectory) where trajectory = {"t": [...], "xt": (S+1, B, C, H, W),
    "x0": (S, B, C, H, W)} on the CPU when return_trajectory=True.
    """
    check_sampler(sampler, eta)
    check_clip(clip)
    timesteps = ddim_timesteps(schedule.T, steps, spacing)
    if not 0 <= start_step < len(timesteps):
        raise ValueError(f"start_step must be in 0..{len(timesteps) - 1} for {steps} steps, got {start_step}")
    if xT is None:
        x = torch.randn(shape, generator=generator, device=device)
    else:
        if shape is not None and tuple(shape) != tuple(xT.shape):
            raise ValueError(f"xT has shape {tuple(xT.shape)} but shape is {tuple(shape)}: the samples start from "
                             "xT, so pass shape=None (or xT's shape) with it")
        x = xT.to(compute_dtype(xT))
    traj = {"t": [], "xt": [x.cpu()], "x0": []}
    run = timesteps[start_step:]
    # the bar is left in place: with leave=False tqdm hides a notebook bar without its last refresh (989/1000 stayed)
    for i, t in enumerate(tqdm(run, desc=f"{sampler} sampling", disable=not progress)):
        t_prev = run[i + 1] if i + 1 < len(run) else -1
        eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
        x, x0 = step(sampler, schedule, eps, t, t_prev, x, eta=eta, generator=generator, clip=clip)
        if callback is not None:
            replaced = callback(i, t, t_prev, x, x0)
            if replaced is not None:
                x = replaced
        if return_trajectory:
            traj["t"].append(t)
            traj["xt"].append(x.cpu())
            traj["x0"].append(x0.cpu())
    if clip is not None:
        x = x.clamp(-clip, clip)
    if return_trajectory:
        traj["xt"] = torch.stack(traj["xt"])
        traj["x0"] = torch.stack(traj["x0"])
        return x, traj
    return x


@torch.no_grad()
def ddim_invert(
    eps_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    schedule: NoiseSchedule,
    steps: int = 50,
    spacing: str = "trailing",
    return_trajectory: bool = False,
    progress: bool = False,
):
    """Deterministic DDIM inversion (lesson 4): image x0 -> the noise x_T that DDIM (eta = 0) maps back to x0.

    DDIM with eta = 0 is a discretised ODE (Song et al. 2021, sec. 4.3), so it can be run backwards:
    eq. 12 with sigma = 0, from t' (less noise) up to t (more noise) on the same timesteps that
    `sample(..., steps, spacing)` visits, in reverse order:
        x0_hat = (x_t' - sqrt(1 - alpha_bar_t') eps) / sqrt(alpha_bar_t')
        x_t    = sqrt(alpha_bar_t) x0_hat + sqrt(1 - alpha_bar_t) eps,      eps = eps_fn(x_t', t)
    The exact step would need eps at x_t, which is not known yet; using it at x_t' instead (as
    diffusers' DDIMInverseScheduler does) makes the round trip approximate. With an exact eps the error
    shrinks like 1/steps (tests/test_inversion.py); with a trained model it is largest near t = T, where
    sampling divides by sqrt(alpha_bar_t) ~ 0. Nothing is clipped here: clipping cannot be undone.

    eps_fn: (x_t (B, C, H, W), t (B,)) -> eps, as for `sample`; x0: (B, C, H, W) images in [-1, 1].
    Returns x_T (B, C, H, W), or (x_T, trajectory) with trajectory = {"t": [...], "xt": (S+1, B, C, H, W)}
    on the CPU (from x0 to x_T) when return_trajectory=True.
    """
    timesteps = ddim_timesteps(schedule.T, steps, spacing)[::-1]  # increasing: least noise first
    x = x0.to(compute_dtype(x0))
    traj = {"t": [], "xt": [x.cpu()]}
    t_prev = -1  # the clean image
    for t in tqdm(timesteps, desc="ddim inversion", disable=not progress):
        # 1. names from the paper: alpha_bar where we are (t_prev) and where we go (t)
        ab_prev, ab_t = _alpha_bar(schedule, t_prev), _alpha_bar(schedule, t)
        # 2. the model's noise estimate, at the current point but with the label of the next timestep
        eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
        eps = _as_compute(x, eps)[1]  # checks the shape
        # 3. eq. 12 (eta = 0) solved the other way round
        x0_hat = x0_from_eps(x, eps, ab_prev)
        x = math.sqrt(ab_t) * x0_hat + math.sqrt(1 - ab_t) * eps
        t_prev = t
        if return_trajectory:
            traj["t"].append(t)
            traj["xt"].append(x.cpu())
    if return_trajectory:
        traj["xt"] = torch.stack(traj["xt"])
        return x, traj
    return x
