"""The exercise checks of lesson 3, class conditioning and classifier-free guidance."""

from __future__ import annotations

from typing import Callable

import torch

from ..course import RECIPES
from ..guidance import cfg_combine, drop_labels, guided_sample
from ..models.unet import UNet, UNetConfig
from ..schedules import NoiseSchedule
from .common import ExerciseError, compare, others_as_references, seeded


NULL_CLASS = RECIPES["cond"].config.num_classes  # the course's cond model: digits 0..9, label 10 = "no class"


def _dropout_rate(fn: Callable) -> Callable:
    """Run a condition-dropout function and return the fraction of labels it replaced.

    The random draws may be made in any way, so what is compared is what must hold for every correct
    answer: a tensor of labels of the same shape, changed only to the null class, at the right rate.
    """
    def run(y: torch.Tensor, p_uncond: float, null_class: int) -> float:
        out = fn(y, p_uncond, null_class, torch.Generator().manual_seed(7))  # y changed in place: compare says so
        if not isinstance(out, torch.Tensor) or out.shape != y.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ExerciseError(f"Exercise 'drop_labels': return a tensor of labels shaped like y {tuple(y.shape)}, "
                                f"got {got}")
        changed = out != y
        if (out[changed] != null_class).any():
            raise ExerciseError(f"Exercise 'drop_labels' (p_uncond={p_uncond}): a label may only be replaced by the "
                                f"null class {null_class}, but some became {sorted(set(out[changed].tolist()) - {null_class})[:5]}")
        return changed.float().mean().item()

    return run


def check_drop_labels(student_fn: Callable) -> None:
    """Lesson 3. student_fn(y, p_uncond, null_class, generator) -> y with labels dropped to null_class.

    On 50,000 labels the fraction replaced must be within 1.5 points of the reference's (p_uncond).
    """
    def labels():
        return torch.randint(0, 10, (50_000,), generator=torch.Generator().manual_seed(1))

    cases = [lambda p=p: (labels(), p, NULL_CLASS) for p in (0.0, 0.1, 0.5, 1.0)]
    compare("drop_labels", _dropout_rate(student_fn), _dropout_rate(drop_labels), cases, atol=0.015, rtol=0.0,
            what="the fraction of labels replaced")


def check_cfg_combine(student_fn: Callable) -> None:
    """Lesson 3. student_fn(eps_uncond, eps_cond, guidance_scale) -> the guided noise estimate."""
    cases = [lambda w=w: (seeded(1, 2, 1, 28, 28), seeded(2, 2, 1, 28, 28), w) for w in (0.0, 1.0, 3.5, 7.5)]
    compare("cfg_combine", student_fn, cfg_combine, cases, mistakes=guidance_mistakes("eps"))


def guidance_mistakes(name: str) -> dict[str, Callable]:
    """The mistakes of classifier-free guidance on eps (lesson 3) or v (lesson 5), with their words."""
    formula = f"{name}_uncond + w ({name}_cond - {name}_uncond)"
    return {f"you have the two predictions swapped: the formula is {formula}": lambda u, c, w: c + w * (u - c),
            f"you used Ho & Salimans' form (1 + w) {name}_cond - w {name}_uncond; in the course's convention w = 1 means "
            f"no guidance: {formula}": lambda u, c, w: (1 + w) * c - w * u}


def _random_cond_unet(seed: int = 0) -> UNet:
    """A tiny class-conditioned UNet with random weights everywhere (also in its last layer, which training
    starts at zero), so that its predictions differ from label to label and every mistake shows. The notebook's
    global RNG, which building the UNet draws from, is left as it was."""
    with torch.random.fork_rng():
        net = UNet(UNetConfig(channels=(8, 16), attention=(False, False), num_classes=NULL_CLASS)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return net


def check_guided_sample(student_fn: Callable) -> None:
    """Lesson 3. student_fn(unet, schedule, labels, guidance_scale, xT, steps, eta, generator) -> samples:
    the classifier-free guided DDIM loop, compared with `guidance.guided_sample` on a tiny random UNet,
    with and without guidance, with eta = 0 and with eta = 1 (seeded noise). While it runs, the notebook's
    `cfg_combine` (exercise 2) is the package's, so that only the loop is tested."""
    unet, schedule = _random_cond_unet(), NoiseSchedule(1000, "cosine")

    def case(w, steps, eta, seed):
        labels = torch.tensor([3, 7, 0])
        return lambda: (unet, schedule, labels.clone(), w, seeded(seed, 3, 1, 28, 28), steps, eta,
                        torch.Generator().manual_seed(seed + 1))

    cases = [case(1.0, 3, 0.0, 10), case(3.0, 4, 0.0, 20), case(0.0, 3, 0.0, 30), case(2.0, 5, 1.0, 40)]
    with others_as_references(student_fn, cfg_combine=cfg_combine):
        compare("guided_sample", student_fn, guided_sample, cases, atol=1e-4, rtol=1e-4)
