"""Noise schedules and the forward process q(x_t | x_0) (lesson 2).

Ho et al. 2020, "Denoising Diffusion Probabilistic Models" (DDPM):
    beta_t                        the variance added at step t
    alpha_t   = 1 - beta_t
    alpha_bar_t = prod_{s<=t} alpha_s
    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)          (eq. 4)
so  x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,  eps ~ N(0, I).

Timesteps are integers t = 0, ..., T-1 (index 0 is the first, least noisy step), the same
convention as the diffusers schedulers, so training and sampling always use the same range.

Schedules: "linear" (DDPM, beta from 1e-4 to 0.02 for T = 1000) and "cosine" (Nichol & Dhariwal
2021, "Improved DDPM", eq. 17). Both cap beta at max_beta = 0.999, so that every T >= 1 gives
0 < alpha_bar < 1, strictly decreasing.

The tables are float64. The forward process and the samplers compute in float32 at least, whatever
the dtype of x: in bfloat16, alpha_bar_0 = 0.99996 would round to 1 and 1 - alpha_bar_0 to 0.

Models may predict eps, x0 or v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0 (Salimans & Ho
2022, "Progressive Distillation", sec. 4); `NoiseSchedule.to_x0_eps` converts any of them to the
pair (x0, eps) the samplers need. `x0_from_eps` and `eps_from_x0` are eq. 4 solved for x0 and for
eps: the one place where the forward process is inverted.
"""

from __future__ import annotations

import math

import torch

PREDICTIONS = ("eps", "x0", "v")


def linear_betas(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02, max_beta: float = 0.999) -> torch.Tensor:
    """DDPM's linear schedule, scaled by 1000 / T (as Improved DDPM's code does) so that any T gives about
    the same overall noise as T = 1000. For T <= 20 the scaled betas reach 1 (at T = 10, up to 2), which
    would make alpha_bar 0 or negative; like the cosine schedule, beta is capped at max_beta."""
    scale = 1000 / T
    return torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64).clamp(max=max_beta)


def cosine_betas(T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Improved DDPM's cosine schedule: alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2)."""
    def f(t):
        return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - f(t + 1) / f(t), max_beta) for t in range(T)]
    return torch.tensor(betas, dtype=torch.float64)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype the forward process and the samplers compute in for a tensor x: float32, or float64 if x is."""
    return torch.promote_types(x.dtype, torch.float32)


def x0_from_eps(xt: torch.Tensor, eps: torch.Tensor, alpha_bar) -> torch.Tensor:
    """Eq. 4 solved for x0: x0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar).

    alpha_bar: a number, or a tensor that broadcasts against x_t (such as (B, 1, 1, 1)).
    """
    return (xt - (1 - alpha_bar) ** 0.5 * eps) / alpha_bar**0.5


def eps_from_x0(xt: torch.Tensor, x0: torch.Tensor, alpha_bar) -> torch.Tensor:
    """Eq. 4 solved for eps: eps = (x_t - sqrt(alpha_bar) x0) / sqrt(1 - alpha_bar) (alpha_bar < 1)."""
    return (xt - alpha_bar**0.5 * x0) / (1 - alpha_bar) ** 0.5


def _timesteps(t, T: int) -> torch.Tensor:
    """t as a flat long tensor of whole timesteps in 0..T-1; a clear error for anything else."""
    t = torch.as_tensor(t)
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"timesteps t are whole numbers 0..{T - 1} here, got a {t.dtype} tensor; a float t would "
                         "be truncated (0.7 -> 0). Continuous t in [0, 1] is flow matching's time (flow.py), not a "
                         "NoiseSchedule's: pass integer steps, e.g. torch.randint(0, T, (B,))")
    t = t.reshape(-1)
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= T):
        raise ValueError(f"timestep out of range: got t in [{int(t.min())}, {int(t.max())}], valid is 0..{T - 1}")
    return t.long()


def _gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped (B, 1, 1, 1) to broadcast against an image batch `like`, in `compute_dtype(like)`.
    t: one timestep, or (B,) timesteps, one per image of `like`."""
    t = _timesteps(t, len(values))
    if t.numel() not in (1, like.shape[0]):
        raise ValueError(f"t must hold one timestep or one per image: {like.shape[0]} images, got "
                         f"{t.numel()} timesteps")
    out = values[t.to(values.device)].to(device=like.device, dtype=compute_dtype(like))
    return out.view(-1, *([1] * (like.dim() - 1)))


class NoiseSchedule:
    """The table of beta_t, alpha_t, alpha_bar_t for t = 0..T-1, and the forward process."""

    def __init__(self, T: int = 1000, kind: str = "cosine"):
        if not isinstance(T, int) or T < 1:
            raise ValueError(f"T must be a positive integer number of steps, got {T!r}")
        if kind == "linear":
            betas = linear_betas(T)
        elif kind == "cosine":
            betas = cosine_betas(T)
        else:
            raise ValueError(f"schedule kind must be 'linear' or 'cosine', got {kind!r}")
        self.T = T
        self.kind = kind
        self.betas = betas  # float64 (T,): the tables are computed in double precision
        self.alphas = 1.0 - betas
        self.alpha_bar = torch.cumprod(self.alphas, dim=0)

    def __repr__(self):
        return f"NoiseSchedule(T={self.T}, kind={self.kind!r})"

    def alpha_bar_at(self, t: int) -> torch.Tensor:
        """alpha_bar at one integer timestep, as a float64 scalar; t = -1 means the clean image (alpha_bar = 1)."""
        if not -1 <= t < self.T:
            raise ValueError(f"timestep out of range: got t = {t}, valid is -1 (clean) to {self.T - 1}")
        return self.alpha_bar[t] if t >= 0 else torch.tensor(1.0, dtype=self.alpha_bar.dtype)

    def check_t(self, t: torch.Tensor) -> None:
        """Refuse timesteps that are not whole numbers in 0..T-1 (a ValueError that says why)."""
        _timesteps(t, self.T)

    def snr(self) -> torch.Tensor:
        """Signal-to-noise ratio alpha_bar / (1 - alpha_bar) for every t."""
        return self.alpha_bar / (1 - self.alpha_bar)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Forward process, eq. 4: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps.

        x0, eps: (B, C, H, W); t: (B,) integer timesteps. Returns x_t in float32 (float64 if x0 is).
        """
        if x0.shape != eps.shape:
            raise ValueError(f"x0 and eps must have the same shape, got {tuple(x0.shape)} and {tuple(eps.shape)}")
        a = _gather(self.alpha_bar, t, x0)  # checks t: whole timesteps in 0..T-1, one or one per image
        return a.sqrt() * x0 + (1 - a).sqrt() * eps

    def v_target(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The v-prediction target v = sqrt(alpha_bar) eps - sqrt(1 - alpha_bar) x0."""
        a = _gather(self.alpha_bar, t, x0)
        return a.sqrt() * eps - (1 - a).sqrt() * x0

    def target(self, prediction: str, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """What a model trained with `prediction` ("eps", "x0" or "v") should output."""
        if prediction == "eps":
            return eps
        if prediction == "x0":
            return x0
        if prediction == "v":
            return self.v_target(x0, t, eps)
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")

    def to_x0_eps(self, prediction: str, output: torch.Tensor, xt: torch.Tensor, t: torch.Tensor):
        """Convert a model output to (x0, eps) by inverting x_t = sqrt(ab) x0 + sqrt(1 - ab) eps."""
        a = _gather(self.alpha_bar, t, xt)
        if prediction == "eps":
            eps = output
            x0 = x0_from_eps(xt, eps, a)
        elif prediction == "x0":
            x0 = output
            eps = eps_from_x0(xt, x0, a)
        elif prediction == "v":
            x0 = a.sqrt() * xt - (1 - a).sqrt() * output
            eps = (1 - a).sqrt() * xt + a.sqrt() * output
        else:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        return x0, eps
