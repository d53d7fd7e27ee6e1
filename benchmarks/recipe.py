"""Why the course's recipe: each choice of the `cond` recipe against its alternatives, measured. Prints Markdown.

Two sections (`--sections`, both by default):

  step      the time of one training step of `cond` (batch 128, `losses.diffusion_loss`, backward, AdamW)
            in fp32 and in the course's mixed precision, each with the usual (NCHW) and the channels-last
            memory layout. Median of `--steps` timed steps, the four settings taking turns.
  quality   `cond` trained once per variant for the same wall-clock budget (`--minutes`), then 1000 DDIM-50
            samples at the default guidance, scored as in `benchmark.py`: the course classifier's accuracy
            at the requested label and the Frechet distance (FD) in its feature space, beside the floor of
            as many real held-out images. A variant changes one thing of the course recipe
            (`course.RECIPES["cond"]`) and keeps everything else: network, schedule, batch, learning rate,
            seed and data order. See VARIANTS.

    python benchmarks/recipe.py --minutes 3                           # every variant but v and x0, 3 min each
    python benchmarks/recipe.py --sections quality --minutes 5 --variants course,v,x0   # what to predict
    python benchmarks/recipe.py --minutes 0.05 --steps 2 --n-samples 20 --variants course,fp32   # a smoke test

The quality section costs (minutes + about 0.7) minutes per variant on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time

import torch

from diffusionlab import course
from diffusionlab.metrics import SampleScorer
from diffusionlab.schedules import NoiseSchedule
from diffusionlab.losses import diffusion_loss
from diffusionlab.models.unet import count_parameters
from diffusionlab.utils import autocast_dtype, get_device

COURSE = course.RECIPES["cond"]
# name: (what changes, changes to the recipe, changes to the training call)
VARIANTS = {
    "course": ("the course recipe", {}, {}),
    "wide": ("widths 32, 64, 128 (UNetConfig's default)",
             {"config": dataclasses.replace(COURSE.config, channels=(32, 64, 128))}, {}),
    "attention": ("self-attention at 7x7", {"config": dataclasses.replace(COURSE.config, attention=(False, False, True))}, {}),
    "batch64": ("batch 64", {"batch_size": 64}, {}),
    "batch256": ("batch 256", {"batch_size": 256}, {}),
    "lr1e-3": ("learning rate 1e-3", {"lr": 1e-3}, {}),
    "lr4e-3": ("learning rate 4e-3", {"lr": 4e-3}, {}),
    "no-ema": ("no EMA (samples from the trained weights)", {"ema_decay": 0.0}, {}),
    "fp32": ("fp32, no mixed precision", {}, {"amp": False}),
    "v": ("predict v", {"prediction": "v"}, {}),
    "x0": ("predict x0", {"prediction": "x0"}, {}),
}
DEFAULT_VARIANTS = [name for name in VARIANTS if name not in ("v", "x0")]  # v and x0: run 3 of RESULTS.md


def note(*parts) -> None:
    print(*parts, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- step

def section_step(args, device) -> str:
    """Median ms per training step of `cond`, for each precision and memory layout, taking turns."""
    schedule = NoiseSchedule(**COURSE.schedule)
    dtype = autocast_dtype(device)
    precisions = ["fp32", "bfloat16" if dtype == torch.bfloat16 else "float16"] if dtype else ["fp32"]
    settings = [(p, layout) for p in precisions for layout in ("NCHW", "channels-last")]
    g = torch.Generator().manual_seed(args.seed)
    x0 = torch.randn(COURSE.batch_size, 1, 28, 28, generator=g).to(device)
    y = torch.randint(0, 10, (COURSE.batch_size,), generator=g).to(device)

    def make_step(precision: str, layout: str):
        torch.manual_seed(args.seed)
        unet, x = course.build("cond").to(device), x0
        if layout == "channels-last":
            unet, x = unet.to(memory_format=torch.channels_last), x0.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(unet.parameters(), lr=COURSE.lr)

        def step():
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=precision != "fp32"):
                loss = diffusion_loss(unet, x, y, torch.Generator(device=device).manual_seed(0), schedule)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.item()  # waits for the device
        return step

    steps = {s: make_step(*s) for s in settings}
    times: dict = {s: [] for s in settings}
    for step in steps.values():  # warm-up: memory allocation, kernel selection
        step(), step()
    for _ in range(args.steps):
        for s, step in steps.items():
            start = time.perf_counter()
            step()
            times[s].append(time.perf_counter() - start)
    fastest = min(statistics.median(t) for t in times.values())
    rows = [f"| {p} | {layout} | {1000 * statistics.median(times[(p, layout)]):.1f} | "
            f"{statistics.median(times[(p, layout)]) / fastest:.2f}x |" for p, layout in settings]
    return "\n".join([f"### One training step of cond, batch {COURSE.batch_size} ({device.type}, median of "
                      f"{args.steps} steps)", "", "| precision | memory layout | ms / step | vs fastest |",
                      "|---|---|---|---|", *rows])


# ------------------------------------------------------------------------------------------ quality

def run_variant(name: str, args, device, scorer: SampleScorer) -> dict:
    """Train `cond` with variant `name` for the budget; sample and score it."""
    _, recipe_changes, train_changes = VARIANTS[name]
    course.RECIPES["cond"] = dataclasses.replace(COURSE, **recipe_changes)
    try:
        start = time.perf_counter()
        model, history = course.train_model("cond", minutes=args.minutes, steps=args.train_steps, checkpoint=None,
                                            device=device, seed=args.seed, progress=False, **train_changes)
        train_s = time.perf_counter() - start
    finally:
        course.RECIPES["cond"] = COURSE
    labels = torch.arange(args.n_samples) % 10
    g = torch.Generator(device=device).manual_seed(args.seed)
    x = model.sample(args.n_samples, labels, guidance_scale=course.DEFAULT_GUIDANCE, steps=50, generator=g,
                     progress=False)
    steps = history["step"][-1]
    batch = recipe_changes.get("batch_size", COURSE.batch_size)
    return {"steps": steps, "train_s": train_s, "img_s": steps * batch / train_s,
            "params": count_parameters(model.unet), **scorer.score(x.cpu(), labels)}


def section_quality(args, device) -> str:
    scorer = SampleScorer()
    budget = f"{args.minutes:g} min" if args.minutes else f"{args.train_steps} steps"
    lines = [f"### cond trained {budget} per variant (seed {args.seed}, {device.type})", "",
             "| variant | what changes | parameters | steps | images / s | accuracy | FD |", "|---|---|---|---|---|---|---|"]
    for name in args.variants:
        note(f"[recipe] training cond, variant {name}, for {budget}")
        r = run_variant(name, args, device, scorer)
        lines.append(f"| {name} | {VARIANTS[name][0]} | {r['params'] / 1000:.0f} k | {r['steps']} | {r['img_s']:.0f} | "
                     f"{100 * r['accuracy']:.1f} % | {r['fd']:.2f} |")
    lines += ["", f"DDIM 50 steps, guidance scale {course.DEFAULT_GUIDANCE:g}, {args.n_samples} samples; FD floor "
              f"({args.n_samples} real held-out images): {scorer.floor(args.n_samples):.2f}. Images/s: training "
              "steps x batch / training time, first steps and the final save included."]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", default="step,quality", help="comma-separated: step, quality (default both)")
    p.add_argument("--minutes", type=float, default=None, help="quality: training budget per variant")
    p.add_argument("--train-steps", type=int, default=None,
                   help="quality: training steps per variant instead of (or with) --minutes, for a smoke test")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"quality: comma-separated, any of {', '.join(VARIANTS)} (default: all but v and x0)")
    p.add_argument("--steps", type=int, default=20, help="step: timed steps per setting (default 20)")
    p.add_argument("--n-samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--out", default=None, help="also append the tables to this file")
    args = p.parse_args(argv)
    sections = args.sections.split(",")
    if not sections or any(s not in ("step", "quality") for s in sections):
        p.error(f"--sections takes a comma-separated list of step, quality; got {args.sections!r}")
    args.variants = args.variants.split(",")
    if any(v not in VARIANTS for v in args.variants):
        p.error(f"--variants takes a comma-separated list of {', '.join(VARIANTS)}; got {','.join(args.variants)!r}")
    if "quality" in sections and args.minutes is None and args.train_steps is None:
        p.error("the quality section needs a training budget: --minutes (or --train-steps)")
    if args.steps < 1 or args.n_samples < 2:
        p.error("--steps must be at least 1 and --n-samples at least 2")
    device = get_device(args.device)

    parts = []
    if "step" in sections:
        note(f"[recipe] timing training steps, {args.steps} per setting")
        parts.append(section_step(args, device))
    if "quality" in sections:
        parts.append(section_quality(args, device))
    text = "\n\n".join(parts) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
