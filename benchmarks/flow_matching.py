"""Lesson 5: sample quality against the number of network evaluations, for flow matching (Euler, Heun), reflow
and lesson 3's diffusion model with DDIM; the curvature of the paths before and after reflow; the issue's targets.

    python benchmarks/flow_matching.py                       # the shipped flow.pt, reflow.pt and cond.pt
    python benchmarks/flow_matching.py --n 500 --nfe 1,2,4   # fewer samples and evaluations
    python benchmarks/flow_matching.py --quick               # a smoke test

Sections:
  nfe        for each number of network evaluations in --nfe (1, 2, 4, 8, 16, 50): --n samples of the digits
             0..9 in turn from each method, scored by the course classifier (share read as the requested digit)
             and the Frechet distance (FD) to the test set, beside the floor of --n real held-out digits. A
             Heun step costs two evaluations but the last (an Euler step to t = 0, as in EDM), so Heun runs
             nfe / 2 steps, nfe - 1 evaluations (no entry at 1 or 2: one Heun step is an Euler step). An
             evaluation with guidance runs the network once on the conditional and unconditional batch together.
  straight   the straightness (`flow.straightness`, 0 = straight) of 200 paths solved with 32 Euler steps,
             for the flow model (with guidance) and the reflow model (without)
  targets    the flow model at 10 evaluations (Euler 10 steps, and Heun 5 steps: 9), guidance --guidance: 1000
             samples, timed; reflow at 1 and 2 evaluations.

All the samples share one seed per row (the same noise for each method). Timings depend on the load of the
machine: the load average and CPU are printed with the tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch

from diffusionlab import course, flow
from diffusionlab.metrics import SampleScorer


def note(msg):
    print(msg, file=sys.stderr, flush=True)


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def sample_method(method: str, models: dict, n: int, nfe: int, guidance: float, seed: int) -> torch.Tensor | None:
    """n samples of the digits 0..9 in turn at `nfe` network evaluations, or None where the method has no such entry."""
    labels = torch.arange(n) % 10
    g = torch.Generator().manual_seed(seed)
    if method == "DDIM (cond)":
        return models["cond"].sample(n, labels=labels, guidance_scale=guidance, steps=nfe, generator=g, progress=False)
    if method.startswith("flow"):
        solver = "heun" if "Heun" in method else "euler"
        steps = nfe // 2 if solver == "heun" else nfe  # Heun: nfe / 2 steps cost nfe - 1 evaluations
        if steps < 1 or (solver == "heun" and (nfe % 2 or steps == 1)):
            return None  # Heun needs an even nfe; its 1 step is an Euler step (Euler's entry at 1)
        return models["flow"].sample(n, labels=labels, guidance_scale=guidance, steps=steps, solver=solver, generator=g)
    return models["reflow"].sample(n, labels=labels, guidance_scale=course.REFLOW_GUIDANCE, steps=nfe, generator=g)


METHODS = ("flow, Euler", "flow, Heun", "DDIM (cond)", "reflow, Euler")


def nfe_table(models: dict, scorer: SampleScorer, n: int, nfes: list[int], guidance: float, seed: int,
              methods=METHODS) -> tuple[str, dict]:
    methods = [m for m in methods if m != "reflow, Euler" or "reflow" in models]
    results = {}
    lines = ["| evaluations | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for nfe in nfes:
        cells = []
        for method in methods:
            start = time.time()
            x = sample_method(method, models, n, nfe, guidance, seed)
            if x is None:
                cells.append("—")
                continue
            s = scorer.score(x, torch.arange(n) % 10)
            results[(method, nfe)] = {**s, "seconds": time.time() - start}
            cells.append(f"{100 * s['accuracy']:.1f}% / {s['fd']:.1f}")
            note(f"{method} at {nfe} evaluations: {100 * s['accuracy']:.1f}%, FD {s['fd']:.2f} "
                 f"({time.time() - start:.1f} s)")
        lines.append(f"| {nfe} | " + " | ".join(cells) + " |")
    return "\n".join(lines), results


def straightness_rows(models: dict, guidance: float, seed: int, n: int = 200, steps: int = 32) -> list[tuple[str, float]]:
    g = torch.Generator().manual_seed(seed)
    x1 = torch.randn(n, 1, 28, 28, generator=g)
    labels = torch.arange(n) % 10
    rows = []
    for name, w in (("flow", guidance), ("reflow", course.REFLOW_GUIDANCE)):
        if name not in models:
            continue
        with torch.no_grad(), models[name].autocast():
            path = flow.trajectory(models[name].velocity_fn(labels, w), x1, steps=steps)
        rows.append((f"{name} (guidance {w:g})", flow.straightness(path)))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flow", help="flow checkpoint (default: the shipped flow.pt)")
    p.add_argument("--reflow", help="reflow checkpoint (default: the shipped reflow.pt, if there is one)")
    p.add_argument("--cond", help="lesson 3's model (default: the shipped cond.pt)")
    p.add_argument("--n", type=int, default=1000, help="samples per table entry (default 1000)")
    p.add_argument("--nfe", default="1,2,4,8,16,50", help="network evaluations, comma-separated")
    p.add_argument("--guidance", type=float, default=course.FLOW_GUIDANCE, help="guidance of flow and DDIM (2)")
    p.add_argument("--sections", default="targets,straight,nfe")
    p.add_argument("--methods", default="all", help="columns of the nfe table, separated by ';' "
                   f"(default all: {'; '.join(METHODS)})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="smoke test: 20 samples, 1 and 2 evaluations")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.nfe = 20, "1,2"
    nfes = [int(k) for k in args.nfe.split(",")]
    sections = args.sections.split(",")

    models = {"flow": course.load("flow", args.flow), "cond": course.load("cond", args.cond)}
    reflow_path = args.reflow or course.shipped_checkpoint("reflow")
    if args.reflow or course.shipped_checkpoint("reflow").exists():
        models["reflow"] = course.load("reflow", reflow_path)
    scorer = SampleScorer()
    n_targets = 20 if args.quick else 1000
    out = [f"CPU: {cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
           f"load average at the start {os.getloadavg()[0]:.2f}"]

    if "targets" in sections:
        out += ["", f"### Targets ({n_targets} samples of the digits 0..9 each, seed {args.seed})", "",
                "| model, solver | evaluations | guidance | seconds | accuracy | FD | FD / floor |", "|---|---|---|---|---|---|---|"]
        floor = scorer.floor(n_targets)
        runs = [("flow, Euler 10 steps", "flow, Euler", 10, args.guidance),
                ("flow, Heun 5 steps", "flow, Heun", 10, args.guidance)]
        if "reflow" in models:
            runs += [("reflow, Euler 1 step", "reflow, Euler", 1, 1.0), ("reflow, Euler 2 steps", "reflow, Euler", 2, 1.0)]
        runs += [("flow, Euler 1 step", "flow, Euler", 1, args.guidance), ("flow, Euler 2 steps", "flow, Euler", 2, args.guidance)]
        for title, method, nfe, w in runs:
            start = time.time()
            x = sample_method(method, models, n_targets, nfe, args.guidance, args.seed)
            seconds = time.time() - start
            s = scorer.score(x, torch.arange(n_targets) % 10)
            evaluations = flow.evaluations(nfe // 2, "heun") if "Heun" in method else nfe  # Heun ran nfe / 2 steps
            out.append(f"| {title} | {evaluations} | {w:g} | {seconds:.1f} | {100 * s['accuracy']:.1f}% | {s['fd']:.2f} | "
                       f"{s['fd'] / floor:.2f}x |")
            note(out[-1])
        out += ["", f"FD floor ({n_targets} real held-out digits against the test set): {floor:.2f}. Seconds: "
                "sampling only (the network in bf16 where the CPU has it, batches of 64)."]

    if "straight" in sections:
        out += ["", "### Straightness of the paths (200 paths, 32 Euler steps; 0 = straight lines)", "",
                "| model | straightness |", "|---|---|"]
        out += [f"| {name} | {value:.4f} |" for name, value in straightness_rows(models, args.guidance, args.seed)]

    if "nfe" in sections:
        methods = METHODS if args.methods == "all" else [m.strip() for m in args.methods.split(";")]
        unknown = set(methods) - set(METHODS)
        if unknown:
            p.error(f"unknown --methods {sorted(unknown)}; choose from: {'; '.join(METHODS)}")
        table, _ = nfe_table(models, scorer, args.n, nfes, args.guidance, args.seed, methods)
        out += ["", f"### Accuracy / FD against network evaluations ({args.n} samples each; guidance {args.guidance:g} "
                "for flow and DDIM, 1 for reflow)", "", table, "",
                f"FD floor ({args.n} real held-out digits): {scorer.floor(args.n):.2f}. DDIM: the shipped lesson-3 "
                "`cond` model, trailing timesteps, eta 0."]
    out.append(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
