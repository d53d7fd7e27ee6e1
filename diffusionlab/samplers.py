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

x0_hat is clipped to [-1, 1], the data range, and eps is recomputed from the clipped x0_hat.
"""

from __future__ import annotations

from typing import Callable

import torch
from tqdm.auto import tqdm

from .schedules import NoiseSchedule

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


def _alpha_bar(schedule: NoiseSchedule, t: int, like: torch.Tensor) -> torch.Tensor:
    """alpha_bar at an integer t, with alpha_bar(-1) = 1 (the clean image), as a scalar tensor."""
    return schedule.alpha_bar_at(t).to(device=like.device, dtype=like.dtype)


def _noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, device=like.device, dtype=like.dtype)


def predict_x0(schedule: NoiseSchedule, eps: torch.Tensor, t: int, xt: torch.Tensor, clip: bool = True):
    """x0_hat from x_t and eps (eq. 4 solved for x0); clipped to [-1, 1] with eps made consistent."""
    a = _alpha_bar(schedule, t, xt)
    x0 = (xt - (1 - a).sqrt() * eps) / a.sqrt()
    if clip:
        x0 = x0.clamp(-1, 1)
        eps = (xt - a.sqrt() * x0) / (1 - a).sqrt()
    return x0, eps


def ddpm_step(schedule: NoiseSchedule, eps: torch.Tensor, t: int, xt: torch.Tensor, t_prev: int | None = None,
              generator: torch.Generator | None = None, clip: bool = True, noise: torch.Tensor | None = None):
    """One ancestral step x_t -> x_{t_prev} (Algorithm 2). Returns (x_prev, x0_hat).

    t_prev defaults to t - 1; -1 means "the clean image", the last step, where no noise is added.
    """
    t_prev = t - 1 if t_prev is None else t_prev
    if not 0 <= t < schedule.T or not -1 <= t_prev < t:
        raise ValueError(f"need 0 <= t < T={schedule.T} and -1 <= t_prev < t, got t={t}, t_prev={t_prev}")
    # 1. names from the paper
    ab_t, ab_prev = _alpha_bar(schedule, t, xt), _alpha_bar(schedule, t_prev, xt)
    beta = 1 - ab_t / ab_prev
    # 2. the clean image the model sees in x_t
    x0, _ = predict_x0(schedule, eps, t, xt, clip)
    # 3. posterior mean and variance (eq. 7)
    mean = (ab_prev.sqrt() * beta / (1 - ab_t)) * x0 + ((1 - beta).sqrt() * (1 - ab_prev) / (1 - ab_t)) * xt
    if t_prev < 0:
        return mean, x0  # the last step adds no noise
    var = ((1 - ab_prev) / (1 - ab_t) * beta).clamp(min=1e-20)
    # 4. sample
    z = _noise(xt, generator) if noise is None else noise
    return mean + var.sqrt() * z, x0


def ddim_step(schedule: NoiseSchedule, eps: torch.Tensor, t: int, t_prev: int, xt: torch.Tensor, eta: float = 0.0,
              generator: torch.Generator | None = None, clip: bool = True, noise: torch.Tensor | None = None):
    """One DDIM step x_t -> x_{t_prev} (eq. 12). Returns (x_prev, x0_hat). t_prev = -1: the clean image."""
    if not 0 <= t < schedule.T or not -1 <= t_prev < t:
        raise ValueError(f"need 0 <= t < T={schedule.T} and -1 <= t_prev < t, got t={t}, t_prev={t_prev}")
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be between 0 (deterministic DDIM) and 1 (DDPM-like), got {eta}")
    # 1. names from the paper
    ab_t, ab_prev = _alpha_bar(schedule, t, xt), _alpha_bar(schedule, t_prev, xt)
    # 2. predicted x0, and the noise direction consistent with it
    x0, eps = predict_x0(schedule, eps, t, xt, clip)
    # 3. sigma (eq. 16)
    sigma = eta * ((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev)).sqrt()
    # 4. eq. 12: jump to t_prev along the predicted direction, plus fresh noise if eta > 0
    x_prev = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0 and t_prev >= 0:
        z = _noise(xt, generator) if noise is None else noise
        x_prev = x_prev + sigma * z
    return x_prev, x0


def step(sampler: str, schedule: NoiseSchedule, eps: torch.Tensor, t: int, t_prev: int, xt: torch.Tensor,
         eta: float = 0.0, generator: torch.Generator | None = None):
    """One reverse step of `sampler` ("ddpm" or "ddim") from t to t_prev. Returns (x_prev, x0_hat)."""
    if sampler == "ddpm":
        return ddpm_step(schedule, eps, t, xt, t_prev, generator=generator)
    if sampler == "ddim":
        return ddim_step(schedule, eps, t, t_prev, xt, eta, generator=generator)
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")


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
):
    """Run the reverse process from noise to images in [-1, 1].

    eps_fn:     (x_t (B, C, H, W), t (B,)) -> eps (B, C, H, W)
    sampler:    "ddpm" (ancestral, Algorithm 2) or "ddim" (eq. 12 with `eta`)
    steps:      number of steps, 1..T, on the timesteps `ddim_timesteps(T, steps, spacing)`
    xT:         the starting point (default: fresh noise of `shape` from `generator` on `device`)
    start_step: skip the first `start_step` timesteps, starting from xT at the timestep after them
                (SDEdit, lesson 6)
    callback:   callback(i, t, t_prev, x_prev, x0_hat) after every step; if it returns a tensor,
                that replaces x_prev (inpainting, lesson 6)
    Returns x0 (B, C, H, W), or (x0, trajectory) where trajectory = {"t": [...], "xt": (S+1, B, C, H, W),
    "x0": (S, B, C, H, W)} on the CPU when return_trajectory=True.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    timesteps = ddim_timesteps(schedule.T, steps, spacing)
    if not 0 <= start_step < len(timesteps):
        raise ValueError(f"start_step must be in 0..{len(timesteps) - 1} for {steps} steps, got {start_step}")
    if xT is None:
        x = torch.randn(shape, generator=generator, device=device)
    else:
        x = xT
    traj = {"t": [], "xt": [x.cpu()], "x0": []}
    run = timesteps[start_step:]
    for i, t in enumerate(tqdm(run, desc=f"{sampler} sampling", disable=not progress, leave=False)):
        t_prev = run[i + 1] if i + 1 < len(run) else -1
        eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
        x, x0 = step(sampler, schedule, eps, t, t_prev, x, eta=eta, generator=generator)
        if callback is not None:
            replaced = callback(i, t, t_prev, x, x0)
            if replaced is not None:
                x = replaced
        if return_trajectory:
            traj["t"].append(t)
            traj["xt"].append(x.cpu())
            traj["x0"].append(x0.cpu())
    x = x.clamp(-1, 1)
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
    x = x0
    traj = {"t": [], "xt": [x.cpu()]}
    t_prev = -1  # the clean image
    for t in tqdm(timesteps, desc="ddim inversion", disable=not progress, leave=False):
        # 1. names from the paper: alpha_bar where we are (t_prev) and where we go (t)
        ab_prev, ab_t = _alpha_bar(schedule, t_prev, x), _alpha_bar(schedule, t, x)
        # 2. the model's noise estimate, at the current point but with the label of the next timestep
        eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)).to(x.dtype)
        # 3. eq. 12 (eta = 0) solved the other way round
        x0_hat = (x - (1 - ab_prev).sqrt() * eps) / ab_prev.sqrt()
        x = ab_t.sqrt() * x0_hat + (1 - ab_t).sqrt() * eps
        t_prev = t
        if return_trajectory:
            traj["t"].append(t)
            traj["xt"].append(x.cpu())
    if return_trajectory:
        traj["xt"] = torch.stack(traj["xt"])
        return x, traj
    return x
