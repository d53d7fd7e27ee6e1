"""What should the network predict: eps, v or x0? Train the course's `cond` model once per choice, for the
same wall-clock budget, and score DDIM-50 samples at the default guidance. Prints a Markdown table.

    python benchmarks/prediction.py --minutes 5                       # eps, v and x0, 5 minutes each
    python benchmarks/prediction.py --minutes 10 --predictions eps,v --out benchmarks/RESULTS.md
    python benchmarks/prediction.py --steps 3 --n-samples 20          # a smoke test

Everything but the target is the course recipe (`course.RECIPES["cond"]`): same network, schedule, batch,
learning rate, seed and data order. The loss is the plain MSE to each target (`schedules.NoiseSchedule.target`),
so the choice also changes how the timesteps are weighted (Salimans & Ho 2022, sec. 4). Quality is measured as
in `benchmark.py`: the course classifier's accuracy at the requested label and the Frechet distance in its
feature space against the MNIST test set, beside the floor of as many real held-out images.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from diffusionlab import course
from diffusionlab.metrics import SampleScorer
from diffusionlab.utils import get_device

PREDICTIONS = ("eps", "v", "x0")


def run(prediction: str, minutes: float | None, steps: int | None, n_samples: int, seed: int, device,
        scorer: SampleScorer) -> dict:
    """Train `cond` to predict `prediction` for the budget; sample and score it."""
    recipe = course.RECIPES["cond"]
    course.RECIPES["cond"] = dataclasses.replace(recipe, prediction=prediction)
    try:
        start = time.perf_counter()
        model, history = course.train_model("cond", steps=steps, minutes=minutes, checkpoint=None, device=device,
                                            seed=seed, progress=False)
        train_s = time.perf_counter() - start
    finally:
        course.RECIPES["cond"] = recipe
    labels = torch.arange(n_samples) % 10
    g = torch.Generator(device=device).manual_seed(seed)
    x = model.sample(n_samples, labels, guidance_scale=course.DEFAULT_GUIDANCE, steps=50, generator=g, progress=False)
    return {"prediction": prediction, "steps": history["step"][-1], "train_s": train_s,
            **scorer.score(x.cpu(), labels)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--minutes", type=float, help="training budget per prediction type")
    budget.add_argument("--steps", type=int, help="training steps per prediction type (for a smoke test)")
    p.add_argument("--predictions", default=",".join(PREDICTIONS), help="comma-separated, any of eps, v, x0")
    p.add_argument("--n-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="also append the table to this file")
    args = p.parse_args(argv)
    predictions = args.predictions.split(",")
    if not predictions or any(q not in PREDICTIONS for q in predictions):
        p.error(f"--predictions takes a comma-separated list of {', '.join(PREDICTIONS)}; got {args.predictions!r}")
    device = get_device(args.device)
    scorer = SampleScorer()
    budget = f"{args.minutes:g} min" if args.minutes else f"{args.steps} steps"
    lines = [f"### eps, v or x0 prediction: `cond` trained {budget} each (seed {args.seed}, {device.type})", "",
             "| prediction | steps | train s | accuracy | FD |", "|---|---|---|---|---|"]
    for prediction in predictions:
        print(f"[prediction] training cond to predict {prediction} for {budget}", file=sys.stderr, flush=True)
        r = run(prediction, args.minutes, args.steps, args.n_samples, args.seed, device, scorer)
        lines.append(f"| {prediction} | {r['steps']} | {r['train_s']:.0f} | {100 * r['accuracy']:.1f} % | {r['fd']:.2f} |")
    lines += ["", f"DDIM 50 steps, guidance scale {course.DEFAULT_GUIDANCE:g}, {args.n_samples} samples; "
              f"FD floor ({args.n_samples} real held-out images): {scorer.floor(args.n_samples):.2f}.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
