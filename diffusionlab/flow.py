"""Flow matching and rectified flow: straight paths from noise to data (lesson 5).

Lipman et al. 2023, "Flow Matching for Generative Modeling" (conditional flow matching, the optimal-transport
path of sec. 4.1), and Liu, Gong & Liu 2022, "Flow Straight and Fast: ... Rectified Flow" (eq. 1, and reflow,
sec. 2.3). The course's convention, that of DDPM (lessons 2-4) and of Stable Diffusion 3: t = 0 is data, t = 1 is
noise, and sampling runs from t = 1 down to t = 0.

    interpolant     x_t = (1 - t) x0 + t eps,          x0 ~ data, eps ~ N(0, I), t ~ U[0, 1]
    velocity        v   = dx_t / dt = eps - x0           (the target: constant along each straight path)
    loss            E || v_theta(x_t, t, y) - (eps - x0) ||^2       (conditional flow matching: plain regression)
    sampling        dx/dt = v_theta(x, t), from x_1 = eps ~ N(0, I) at t = 1 to x_0 at t = 0
    Euler step      x_{t'} = x_t + (t' - t) v(x_t, t)          (t' < t: a step towards the data)
    Heun step       x~ = Euler step;  x_{t'} = x_t + (t' - t) (v(x_t, t) + v(x~, t')) / 2
                    (the last step, to t' = 0, stays an Euler step, as in EDM's Algorithm 1)

CS180 (project 5B) and Lipman et al. run time the other way: their t = 0 is noise and t = 1 is data, with
x_t = (1 - t) eps + t x0 and velocity x0 - eps. Their t is our 1 - t, and their velocity is minus ours.
(Lipman et al.'s path, x_t = (1 - (1 - sigma_min) t) eps + t x0, keeps a little noise sigma_min at the data end;
here sigma_min = 0, which is rectified flow's path.)

The same network read three ways: from x_t and v one gets x0_hat = x_t - t v and eps_hat = x_t + (1 - t) v,
so a velocity model is also an eps- or x0-predictor. The Euler step written with them is
x_{t'} = (1 - t') x0_hat + t' eps_hat: DDIM's update (Song et al. 2021, eq. 12, eta = 0) on the path
x_t = a_t x0 + s_t eps with a_t = 1 - t, s_t = t. Both integrate the probability-flow ODE; on straight paths
its solution moves in a straight line as long as x0_hat does not change, so few steps suffice.

Reflow: sample pairs (eps, x0 = ODE(eps)) from a trained flow model and train again on those pairs in place of
random ones. The new paths cross less, so they are straighter (`straightness`), and one or two steps give better
samples. The network sees t scaled by TIME_SCALE (`velocity`), the same in training and sampling.
"""

from __future__ import annotations

from typing import Callable

import torch

from .guidance import cfg_combine, check_guidance_scale, drop_labels

TIME_SCALE = 1000.0  # the UNet's sinusoidal time embedding sees t * 1000: the range of DDPM's integer steps
SOLVERS = ("euler", "heun")

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # velocity_fn(x_t (B, C, H, W), t (B,)) -> v


def _check_t(t: torch.Tensor) -> None:
    if not torch.is_floating_point(t):
        raise ValueError(f"t is continuous in [0, 1] in flow matching, got an integer tensor {t.dtype}; "
                         "pass t as floats (t = 0 is data, t = 1 is noise)")
    if t.numel() and (float(t.min()) < 0 or float(t.max()) > 1):
        raise ValueError(f"t must lie in [0, 1] (0 = data, 1 = noise), got values from {float(t.min()):g} "
                         f"to {float(t.max()):g}")


def _per_image(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """t as a float tensor that broadcasts over x: a number, or (B,) -> (B, 1, 1, 1)."""
    if isinstance(t, torch.Tensor):
        _check_t(t)
    t = torch.as_tensor(t, device=x.device, dtype=torch.float32)
    _check_t(t)
    if t.dim() == 0:
        return t
    if t.numel() not in (1, x.shape[0]):
        raise ValueError(f"t must be one time or one per image: {x.shape[0]} images, got t of shape {tuple(t.shape)}")
    return t.reshape(-1, *([1] * (x.dim() - 1)))


def interpolate(x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
    """x_t = (1 - t) x0 + t eps. t: a number or (B,) in [0, 1]; t = 0 gives x0, t = 1 gives eps."""
    if x0.shape != eps.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and eps {tuple(eps.shape)} must have the same shape")
    t = _per_image(t, x0)
    return (1 - t) * x0 + t * eps


def velocity_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """v = d x_t / dt = eps - x0: the regression target, the same at every t of one path."""
    if x0.shape != eps.shape:
        raise ValueError(f"x0 {tuple(x0.shape)} and eps {tuple(eps.shape)} must have the same shape")
    return eps - x0


def velocity(model, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """The network's velocity at (x_t, t): the UNet reads t * TIME_SCALE. Training and sampling both call this."""
    _check_t(t)
    out = model(xt, t * TIME_SCALE, y) if y is not None else model(xt, t * TIME_SCALE)
    return out.float()


def flow_loss(model, x0: torch.Tensor, y, generator: torch.Generator | None = None, p_uncond: float = 0.1,
              eps: torch.Tensor | None = None) -> torch.Tensor:
    """Conditional flow matching: || v_theta(x_t, t, y) - (eps - x0) ||^2 with t ~ U[0, 1].

    The label is dropped to the null class with probability p_uncond (classifier-free guidance, as in lesson 3).
    eps: the noise paired with each x0 (reflow's pairs); by default fresh noise from `generator`.
    """
    B = x0.shape[0]
    t = torch.rand(B, generator=generator, device=x0.device)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, device=x0.device)
    xt = interpolate(x0, eps, t)
    num_classes = model.config.num_classes
    if num_classes and y is not None:
        y = drop_labels(y, p_uncond, num_classes, generator)
    return (velocity(model, xt, t, y if num_classes else None) - velocity_target(x0, eps)).pow(2).mean()


def reflow_loss(model, pairs: torch.Tensor, y, generator: torch.Generator | None = None, p_uncond: float = 0.1):
    """Flow matching on fixed pairs: `pairs` is (B, 2C, H, W), x0 and its eps side by side in the channels
    (so that `train.train` batches them together as one tensor of images)."""
    x0, eps = pairs.chunk(2, dim=1)
    return flow_loss(model, x0, y, generator, p_uncond, eps=eps)


def x0_eps_from_velocity(xt: torch.Tensor, t, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same network read as x0 and eps: x0_hat = x_t - t v, eps_hat = x_t + (1 - t) v."""
    t = _per_image(t, xt)
    return xt - t * v, xt + (1 - t) * v


def guided_velocity(v_uncond: torch.Tensor, v_cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """Classifier-free guidance on the velocity: v_uncond + w (v_cond - v_uncond). w = 1 gives v_cond."""
    check_guidance_scale(guidance_scale)
    return cfg_combine(v_uncond, v_cond, guidance_scale)


def velocity_fn(model, y: torch.Tensor | None = None, guidance_scale: float = 1.0) -> VelocityFn:
    """Wrap a velocity UNet into velocity_fn(x_t, t) for the solvers, with classifier-free guidance for y."""
    check_guidance_scale(guidance_scale)
    num_classes = getattr(model.config, "num_classes", None)
    if y is not None and not num_classes:
        raise ValueError("this model is not class-conditioned: sample it without y")

    def fn(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not num_classes:
            return velocity(model, xt, t)
        null = torch.full((xt.shape[0],), num_classes, device=xt.device, dtype=torch.long)
        if y is None or guidance_scale == 1.0:
            return velocity(model, xt, t, y if y is not None else null)
        out = velocity(model, torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([null, y]))  # (2B, C, H, W)
        v_uncond, v_cond = out.chunk(2)
        return guided_velocity(v_uncond, v_cond, guidance_scale)

    return fn


def euler_step(v: torch.Tensor, t: float, t_next: float, xt: torch.Tensor) -> torch.Tensor:
    """x_{t'} = x_t + (t' - t) v(x_t, t): one Euler step of dx/dt = v (t' < t moves towards the data)."""
    return xt + (t_next - t) * v


def heun_step(velocity_fn: VelocityFn, t: float, t_next: float, xt: torch.Tensor,
              v: torch.Tensor | None = None) -> torch.Tensor:
    """Heun's method (the trapezoid rule), as in EDM's Algorithm 1: an Euler step, then the step with the average
    of the velocities at both ends. A step that ends at the data (t_next = 0) stays a plain Euler step, as in
    EDM: the network is not asked at t = 0. Two evaluations of velocity_fn (one if v = velocity_fn(x_t, t) is
    given, or if t_next = 0)."""
    B = xt.shape[0]
    if v is None:
        v = velocity_fn(xt, torch.full((B,), t, device=xt.device))
    x_euler = euler_step(v, t, t_next, xt)
    if t_next == 0:
        return x_euler
    v_next = velocity_fn(x_euler, torch.full((B,), t_next, device=xt.device))
    return xt + (t_next - t) * (v + v_next) / 2


def timesteps(steps: int) -> list[float]:
    """steps + 1 evenly spaced times from 1 (noise) to 0 (data)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    return [1 - i / steps for i in range(steps + 1)]


def evaluations(steps: int, solver: str) -> int:
    """Network evaluations of a `steps`-step solve from t = 1 to 0: one per Euler step; two per Heun step but
    the last, which ends at t = 0 and is an Euler step (EDM's Algorithm 1): 2 steps - 1."""
    check_solver(solver)
    return 2 * steps - 1 if solver == "heun" else steps


def check_solver(solver: str) -> None:
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")


@torch.no_grad()
def sample(velocity_fn: VelocityFn, shape=None, steps: int = 10, solver: str = "euler",
           generator: torch.Generator | None = None, device=None, x1: torch.Tensor | None = None,
           callback: Callable | None = None) -> torch.Tensor:
    """Solve dx/dt = velocity_fn(x, t) from x_1 = eps (t = 1) to t = 0 in `steps` steps. Returns x_0 in float32.

    shape:     (B, C, H, W) of the noise drawn from `generator`, or x1: the starting noise itself
    callback:  called after each step as callback(i, t_next, x) (to record trajectories)
    """
    check_solver(solver)
    ts = timesteps(steps)
    if x1 is None:
        if shape is None:
            raise ValueError("give the shape of the noise to start from, or the noise itself as x1")
        x1 = torch.randn(shape, generator=generator, device=device or "cpu")
    x = x1.float()
    B = x.shape[0]
    for i, (t, t_next) in enumerate(zip(ts[:-1], ts[1:])):
        if solver == "euler":
            x = euler_step(velocity_fn(x, torch.full((B,), t, device=x.device)), t, t_next, x)
        else:
            x = heun_step(velocity_fn, t, t_next, x)
        if callback is not None:
            callback(i, t_next, x)
    return x


@torch.no_grad()
def trajectory(velocity_fn: VelocityFn, x1: torch.Tensor, steps: int = 10, solver: str = "euler") -> torch.Tensor:
    """The solver's states from x_1 to x_0: (steps + 1, B, C, H, W)."""
    states = [x1.float()]
    sample(velocity_fn, steps=steps, solver=solver, x1=x1, callback=lambda i, t, x: states.append(x.clone()))
    return torch.stack(states)


def mixture_velocity(means: torch.Tensor, std: float = 0.05) -> VelocityFn:
    """The exact velocity field v(x_t, t) = E[eps - x0 | x_t] of the data "a mixture of Gaussians", equal weights,
    centres `means` (K, D), spread `std`: what a perfectly trained flow model would answer (a toy in 2-D).

    Given component k, x_t ~ N((1 - t) mu_k, s_t^2 I) with s_t^2 = (1 - t)^2 std^2 + t^2, and
        E[x0 | x_t, k]  = mu_k + (1 - t) std^2 / s_t^2 (x_t - (1 - t) mu_k)
        E[eps | x_t, k] = t / s_t^2 (x_t - (1 - t) mu_k);
    the components are weighted by their posterior probability given x_t (Bayes' rule)."""
    if means.dim() != 2:
        raise ValueError(f"means must be (K, D) centres, got shape {tuple(means.shape)}")

    def fn(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1, 1, 1).to(xt.dtype)  # (B, 1, 1)
        var = (1 - t) ** 2 * std**2 + t**2
        diff = xt[:, None, :] - (1 - t) * means[None]  # (B, K, D)
        w = torch.softmax(-diff.pow(2).sum(-1) / (2 * var[..., 0]), dim=1)[..., None]  # (B, K, 1)
        x0 = means[None] + (1 - t) * std**2 / var * diff
        eps = t / var * diff
        return ((eps - x0) * w).sum(1)  # (B, D)

    return fn


def straightness(path: torch.Tensor) -> float:
    """How far a path bends: the mean over its steps of || (x_{k+1} - x_k) / dt - (x_end - x_start) ||^2,
    divided by || x_end - x_start ||^2 (0 for a straight path at constant speed; Liu et al. 2022, eq. 5,
    normalised). path: (K + 1, B, ...) states at evenly spaced times, as `trajectory` returns."""
    K = path.shape[0] - 1
    if K < 1:
        raise ValueError("a path needs at least two states")
    chord = (path[-1] - path[0]).flatten(1)  # (B, D)
    segments = ((path[1:] - path[:-1]) * K).flatten(2)  # (K, B, D): the velocity on each step
    bend = (segments - chord).pow(2).sum(-1).mean(0)  # (B,)
    return float((bend / chord.pow(2).sum(-1).clamp_min(1e-12)).mean())


@torch.no_grad()
def reflow_pairs(velocity_fn: VelocityFn, n: int, shape, steps: int = 20, solver: str = "euler",
                 generator: torch.Generator | None = None, device=None, batch_size: int = 500):
    """n pairs (eps, x0 = ODE(eps)) from a trained model: the coupling that reflow trains on.

    velocity_fn: a function of (x_t, t, rows) -> v, where rows is the slice of the n images in the batch
    (so that each image keeps its label). Returns (eps, x0), each (n, *shape) on `device`."""
    eps_all, x0_all = [], []
    for start in range(0, n, batch_size):
        rows = slice(start, min(n, start + batch_size))
        eps = torch.randn((rows.stop - rows.start, *shape), generator=generator, device=device or "cpu")
        x0 = sample(lambda x, t: velocity_fn(x, t, rows), steps=steps, solver=solver, x1=eps)
        eps_all.append(eps)
        x0_all.append(x0)
    return torch.cat(eps_all), torch.cat(x0_all)
