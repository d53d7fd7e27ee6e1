"""Lesson 6's measured claims, reproducible: RePaint's resampling, and which hybrid-image pairs work.

    python benchmarks/editing.py resampling --n 1000 --seed 4 --rounds 1 3   # ~4 + 7 min on a 2-core CPU
    python benchmarks/editing.py hybrids --n 40                              # 20 pairs, ~4 min

resampling: the bottom halves of the first n MNIST test digits are repainted (`editing.inpaint`, 20 DDPM steps,
guidance 2, the course's class-conditioned model) as the next digit, with each number of resampling rounds; prints
the fraction the course's classifier reads as the digit asked for.
hybrids: for each (far, near) pair, n hybrids (`editing.hybrid_eps`, blur 1.5 px, 20 DDIM steps); prints how often
the classifier reads them as `near` as they are and as `far` through `editing.seen_from_afar`, and both.
"""

from __future__ import annotations

import argparse
import time

import torch

from diffusionlab import course, editing, metrics, samplers
from diffusionlab.data import load_mnist
from diffusionlab.utils import make_generator

PAIRS = [(1, 7), (8, 3), (6, 0), (7, 1), (0, 6), (3, 8), (4, 9), (9, 4), (0, 8), (8, 0), (1, 4), (7, 9), (9, 7),
         (5, 6), (0, 9), (3, 5), (5, 3), (1, 2), (2, 7), (8, 9)]


def resampling(model, classifier, n: int, seed: int, rounds: list[int], steps: int = 20) -> None:
    test_x, test_y = load_mnist("test")
    sources, labels = test_x[:n].to(model.device), ((test_y[:n] + 1) % 10).to(model.device)
    mask = editing.make_mask("bottom").to(model.device)
    for r in rounds:
        start = time.perf_counter()
        with model.autocast():
            x = editing.inpaint(model.eps_fn(labels, course.DEFAULT_GUIDANCE), sources, mask, model.schedule, steps,
                                sampler="ddpm", resample=r, generator=make_generator(seed, model.device))
        print(f"seed {seed}, {n} digits, resample {r}: {metrics.accuracy(classifier, x, labels):.1%} read as asked "
              f"({time.perf_counter() - start:.0f} s)", flush=True)


def hybrids(model, classifier, n: int, seed: int, steps: int = 20, sigma_px: float = 1.5) -> None:
    for far, near in PAIRS:
        eps = [model.eps_fn(torch.full((n,), c, device=model.device), course.DEFAULT_GUIDANCE) for c in (far, near)]
        with model.autocast():
            x = samplers.sample(editing.hybrid_eps(*eps, sigma_px), (n, 1, 28, 28), model.schedule, steps=steps,
                                generator=make_generator(seed, model.device), device=model.device, progress=False)
        close = metrics.predict(classifier, x)[0] == near
        afar = metrics.predict(classifier, editing.seen_from_afar(x))[0] == far
        print(f"{far}/{near}: up close {close.float().mean():.0%}, from afar {afar.float().mean():.0%}, "
              f"both {(close & afar).float().mean():.0%}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("resampling", "hybrids"))
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None, help="default: 4 (resampling), 8 (hybrids), as the lesson")
    parser.add_argument("--rounds", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    model = course.load("cond", device=args.device)
    classifier = metrics.load_classifier(device=args.device)
    if args.what == "resampling":
        resampling(model, classifier, args.n, 4 if args.seed is None else args.seed, args.rounds)
    else:
        hybrids(model, classifier, args.n, 8 if args.seed is None else args.seed)


if __name__ == "__main__":
    main()
