"""Benchmark the course's models on this machine against a public baseline, and print the tables.

Three sections (`--sections`, all by default):

  throughput  training images/s of each course model (`course.RECIPES`: denoiser, ddpm, cond), trained
              by the course's own loop (`train.train`: its losses, AdamW, EMA, mixed precision), of cond
              once more with its network compiled by torch.compile (`--no-compile` leaves it out), and of
              the baseline, Tea Pearce's conditional-MNIST ContextUnet + DDPM (2022, see
              `baseline_contextunet.py`), with its published recipe. Both run with the course's mixed
              precision (`utils.autocast_dtype`; `--no-amp`: fp32). The first `--warmup-steps` steps
              (memory allocation, kernel selection) are left out of the timing.
  quality     quality per minute of training: our `cond` model and the baseline are each trained for
              every budget in `--minutes`, then sample `--n-samples` images with the labels 0..9 in
              turn: ours with DDIM, 50 steps, guidance `course.DEFAULT_GUIDANCE`; the baseline with its
              own guided DDPM sampler (all 400 steps, w = 2). Both are scored by `metrics.SampleScorer`:
              the accuracy of the course classifier at the requested label, and the Frechet distance
              (FD) in its feature space against the MNIST test set, beside the FD of as many real
              held-out images (the floor a perfect generator would reach).
  sampling    time and quality of sampling our `cond` model (guided): DDPM with all 1000 steps and DDIM
              with 10, 20 and 50 steps, from the shipped checkpoint (or `--sample-checkpoint`); then the
              DDIM runs again with the network compiled (`DiffusionModel.compile`, torch.compile), each
              right after its uncompiled run so the two meet the same machine load. The time compiling
              takes is printed apart; a new batch size (the last, smaller batch) compiles again inside
              the first compiled run. `--no-compile` and `--no-ddpm` leave those runs out.

    python benchmarks/benchmark.py --out benchmarks/RESULTS.md        # everything; see the cost below
    python benchmarks/benchmark.py --quick                            # a smoke test with tiny budgets
    python benchmarks/benchmark.py --sections throughput --out benchmarks/RESULTS.md

Cost on a 2-core CPU (estimated from single-thread measurements): throughput ~3 min; quality: 2 x 14 min
of training for the default budgets 1,3,10, ~2 min of our sampling, and the baseline's sampler, 400 steps
at twice the batch through a 6.6 M-parameter network, ~80 min per budget for 1000 images (about 4 hours
in all; `--baseline-samples 200` makes it ~15 min per budget, FD then being compared with the floor for
200 images); sampling ~16 min, mostly DDPM's 1000 steps. On a GPU the whole run takes well under an hour,
most of it the 28 minutes of training. Let it run alone: timings depend on what else the machine is doing,
and the load average is printed with the tables.

Tables go to stdout (Markdown, readable as plain text); progress notes go to stderr.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for baseline_contextunet, when run as a script

from baseline_contextunet import BATCH_SIZE, GUIDE_W, N_T, BaselineDDPM, train_baseline  # noqa: E402

from diffusionlab import course  # noqa: E402
from diffusionlab.checkpoints import CheckpointError  # noqa: E402
from diffusionlab.data import load_mnist  # noqa: E402
from diffusionlab.metrics import SampleScorer  # noqa: E402
from diffusionlab.schedules import NoiseSchedule  # noqa: E402
from diffusionlab.losses import denoiser_loss, diffusion_loss  # noqa: E402
from diffusionlab.train import train  # noqa: E402
from diffusionlab.models.unet import count_parameters  # noqa: E402
from diffusionlab.utils import autocast_dtype, get_device  # noqa: E402

SECTIONS = ("throughput", "quality", "sampling")
BASELINE_NAME = "baseline ContextUnet (Pearce 2022)"
SAMPLE_BATCH = 128  # images per sampling batch of the baseline (doubled inside by guidance); ours: the course default
DDIM_STEPS = 50  # the course's default sampler for the quality section
SAMPLING_RUNS = (("ddpm", 1000), ("ddim", 10), ("ddim", 20), ("ddim", 50))


def note(*parts) -> None:
    """Progress notes go to stderr, so that stdout holds only the tables."""
    print(*parts, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- the machine

def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def precision_name(dtype: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def machine_rows(device: torch.device, dtype: torch.dtype | None) -> list[tuple[str, str]]:
    rows = [("CPU", cpu_name()),
            ("cores / torch threads", f"{os.cpu_count()} / {torch.get_num_threads()}")]
    if device.type == "cuda":
        rows.append(("GPU", torch.cuda.get_device_name(device)))
    rows += [("device", str(device)),
             ("precision", f"{precision_name(dtype)} autocast" if dtype else "fp32"),
             ("torch / python", f"{torch.__version__} / {platform.python_version()}")]
    if hasattr(os, "getloadavg"):
        rows.append(("load average (1 min)", f"{os.getloadavg()[0]:.2f}"))
    return rows


# ---------------------------------------------------------------------------------------------- tables

def table(headers: list[str], rows: list[list]) -> str:
    """A Markdown table with padded columns, readable as plain text."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def fmt_rate(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def fmt_params(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.0f} k"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def fmt_acc(a: float) -> str:
    return f"{100 * a:.1f} %"


# ---------------------------------------------------------------------------------------------- training

def course_loss(name: str):
    """The loss `course.train_model` trains course model `name` with, and its schedule."""
    recipe = course.check_name(name)
    if name == "denoiser":
        return (lambda model, x0, y, g: denoiser_loss(model, x0, y, g, sigma=recipe.sigma)), None
    schedule = NoiseSchedule(**recipe.schedule)
    return (lambda model, x0, y, g: diffusion_loss(model, x0, y, g, schedule, recipe.prediction,
                                                   recipe.p_uncond)), schedule


def steps_per_second(stamps: list[float], warmup: int) -> float:
    """stamps[k]: the time at which step k began. Steps per second after the first `warmup`, from the
    median step time: a moment of load from another process slows a few steps, not the median."""
    timed = stamps[warmup:]
    if len(timed) < 2:
        raise ValueError(f"need at least 2 time stamps after {warmup} warm-up steps, got {len(timed)}")
    return 1 / statistics.median(b - a for a, b in zip(timed, timed[1:]))


def throughput_ours(name: str, images, labels, device, amp: bool, warmup: int, steps: int, seed: int,
                    compiled: bool = False) -> dict:
    """Images/s of `train.train` on course model `name`, timed from the start of each step's loss.
    compiled: the loss calls the network through torch.compile (compiled in the first, untimed step)."""
    recipe = course.check_name(name)
    loss_fn, _ = course_loss(name)
    stamps: list[float] = []

    def timed_loss(model, x0, y, g):
        stamps.append(time.perf_counter())  # train() reads loss.item() every step: the device is in sync here
        return loss_fn(net, x0, y, g)

    torch.manual_seed(seed)
    unet = course.build(name).to(device)
    net = torch.compile(unet) if compiled else unet  # the same parameters: train() updates them either way
    # warmup + steps timed intervals need warmup + steps + 1 stamps
    train(unet, timed_loss, images, labels if recipe.config.num_classes else None, steps=warmup + steps + 1,
          batch_size=recipe.batch_size, lr=recipe.lr, warmup=recipe.warmup, ema_decay=recipe.ema_decay, seed=seed,
          amp=None if amp else False, progress=False)
    rate = steps_per_second(stamps, warmup)
    return {"model": name + (", compiled" if compiled else ""), "params": count_parameters(unet),
            "batch": recipe.batch_size, "img_s": rate * recipe.batch_size, "ms_step": 1000 / rate,
            "first_step_s": stamps[1] - stamps[0]}


def throughput_baseline(images01, labels, device, dtype, warmup: int, steps: int, seed: int) -> dict:
    """Images/s of the baseline's own training loop, timed from the end of each step."""
    stamps: list[float] = []
    torch.manual_seed(seed)
    ddpm = BaselineDDPM().to(device)
    # stamps[k]: the start of step k (the end of step k - 1), as for our models
    stamps.append(time.perf_counter())
    train_baseline(ddpm, images01, labels, steps=warmup + steps, seed=seed, autocast_dtype=dtype,
                   on_step=lambda step: stamps.append(time.perf_counter()))
    rate = steps_per_second(stamps, warmup)
    return {"model": BASELINE_NAME, "params": count_parameters(ddpm.nn_model), "batch": BATCH_SIZE,
            "img_s": rate * BATCH_SIZE, "ms_step": 1000 / rate}


def section_throughput(args, device, dtype) -> str:
    images, labels = load_mnist("train")
    rows = []
    for name in (n for n in course.RECIPES if n not in course.FLOW_MODELS):  # lesson 5's are in flow_matching.py
        note(f"[throughput] {name}: {args.warmup_steps} warm-up + {args.throughput_steps} timed steps")
        rows.append(throughput_ours(name, images, labels, device, args.amp, args.warmup_steps,
                                    args.throughput_steps, args.seed))
    compile_text = ""
    if args.compile and args.warmup_steps > 0:
        note(f"[throughput] cond, compiled: {args.warmup_steps} warm-up + {args.throughput_steps} timed steps")
        rows.append(throughput_ours("cond", images, labels, device, args.amp, args.warmup_steps,
                                    args.throughput_steps, args.seed, compiled=True))
        compile_text = (f"\n\n`cond, compiled`: the network called through torch.compile; its first step, "
                        f"compiling forward and backward, took {rows[-1]['first_step_s']:.1f} s.")
    note(f"[throughput] baseline: {args.warmup_steps} warm-up + {args.throughput_steps} timed steps")
    rows.append(throughput_baseline((images + 1) / 2, labels, device, dtype, args.warmup_steps,
                                    args.throughput_steps, args.seed))
    base = rows[-1]["img_s"]
    body = [[r["model"], fmt_params(r["params"]), r["batch"], f"{r['ms_step']:.1f}", fmt_rate(r["img_s"]),
             f"{r['img_s'] / base:.1f}x"] for r in rows]
    return (f"### Training throughput ({plural(args.throughput_steps, 'step')} timed after "
            f"{plural(args.warmup_steps, 'warm-up step')}, median step time, {precision_name(dtype)})\n\n"
            + table(["model", "parameters", "batch", "ms / step", "images / s", "vs baseline"], body) + compile_text)


# ---------------------------------------------------------------------------------------------- quality

def cycling_labels(n: int) -> torch.Tensor:
    return torch.arange(n) % 10


def sample_ours(model, n: int, sampler: str, steps: int, seed: int, amp: bool) -> tuple[torch.Tensor, float]:
    g = torch.Generator(device=model.device).manual_seed(seed)
    start = time.perf_counter()
    x = model.sample(n, cycling_labels(n), guidance_scale=course.DEFAULT_GUIDANCE, sampler=sampler, steps=steps,
                     generator=g, amp=amp, progress=False)
    return x.cpu(), time.perf_counter() - start


def sample_baseline(ddpm: BaselineDDPM, n: int, seed: int, dtype) -> tuple[torch.Tensor, float]:
    """n images in [-1, 1] from the baseline's own guided DDPM sampler (labels cycling 0..9)."""
    device = ddpm.sqrtab.device
    g = torch.Generator(device=device).manual_seed(seed)
    labels = cycling_labels(n)
    out, start = [], time.perf_counter()
    for i in range(0, n, SAMPLE_BATCH):
        out.append(ddpm.sample(labels[i : i + SAMPLE_BATCH], GUIDE_W, generator=g, autocast_dtype=dtype).cpu())
        if i == 0 and n > SAMPLE_BATCH:
            spent = time.perf_counter() - start
            note(f"[quality] baseline sampling: {spent:.0f} s for the first {SAMPLE_BATCH} images, "
                 f"about {spent * (n / SAMPLE_BATCH - 1) / 60:.0f} min to go")
    return torch.cat(out) * 2 - 1, time.perf_counter() - start  # [0, 1] -> [-1, 1]


def section_quality(args, device, dtype, scorer, trained: dict) -> str:
    n, n_base = args.n_samples, args.baseline_samples
    images, labels = load_mnist("train")
    images01 = (images + 1) / 2  # the baseline trains on [0, 1], as the original
    rows, ratios = [], []
    for minutes in args.minutes:
        note(f"[quality] training cond for {minutes:g} min")
        start = time.perf_counter()
        model, history = course.train_model("cond", minutes=minutes, seed=args.seed, device=device, progress=False,
                                            amp=None if args.amp else False)
        train_s = time.perf_counter() - start
        trained[minutes] = model
        note(f"[quality] sampling {n} images from cond (DDIM {DDIM_STEPS})")
        x, sample_s = sample_ours(model, n, "ddim", DDIM_STEPS, args.seed, args.amp)
        ours = scorer.score(x, cycling_labels(n))
        steps = history["step"][-1]
        seen = steps * course.RECIPES["cond"].batch_size
        rows.append([f"{minutes:g}", "ours: cond", fmt_params(count_parameters(model.unet)), steps, f"{seen:,}",
                     f"{train_s:.0f}", f"DDIM {DDIM_STEPS}, scale {course.DEFAULT_GUIDANCE:g}", n,
                     f"{sample_s:.1f}", fmt_acc(ours["accuracy"]), f"{ours['fd']:.2f}"])

        note(f"[quality] training the baseline for {minutes:g} min")
        torch.manual_seed(args.seed)
        ddpm = BaselineDDPM().to(device)
        result = train_baseline(ddpm, images01, labels, minutes=minutes, seed=args.seed, autocast_dtype=dtype)
        note(f"[quality] sampling {n_base} images from the baseline (DDPM {N_T}, w = {GUIDE_W:g})")
        xb, base_s = sample_baseline(ddpm, n_base, args.seed, dtype)
        theirs = scorer.score(xb, cycling_labels(n_base))
        seen_base = result["steps"] * BATCH_SIZE
        rows.append([f"{minutes:g}", "baseline", fmt_params(count_parameters(ddpm.nn_model)), result["steps"],
                     f"{seen_base:,}", f"{result['seconds']:.0f}",
                     f"its DDPM {N_T}, w {GUIDE_W:g} (scale {1 + GUIDE_W:g})", n_base, f"{base_s:.1f}",
                     fmt_acc(theirs["accuracy"]), f"{theirs['fd']:.2f}"])
        ratios.append([f"{minutes:g}", f"{seen / seen_base:.1f}x", f"{ours['fd']:.2f}", f"{theirs['fd']:.2f}",
                       f"{ours['fd'] / theirs['fd']:.2f}", fmt_acc(ours["accuracy"]), fmt_acc(theirs["accuracy"]),
                       f"{sample_s / n * 1000:.1f} / {base_s / n_base * 1000:.1f}"])
    floors = sorted({n, n_base})
    floor_text = ", ".join(f"{scorer.floor(k):.2f} for {k} images" for k in floors)
    return (f"### Quality vs training time (seed {args.seed}, {precision_name(dtype)})\n\n"
            + table(["minutes", "model", "parameters", "steps", "images seen", "train s", "sampler", "samples",
                     "sample s", "accuracy", "FD"], rows)
            + f"\n\nFD floor (real held-out MNIST images vs the test set): {floor_text}.\n\n"
            + table(["minutes", "images seen ours / baseline", "FD ours", "FD baseline", "FD ours / baseline",
                     "accuracy ours", "accuracy baseline", "sample ms / image ours / baseline"], ratios))


# ---------------------------------------------------------------------------------------------- sampling

def sampling_model(args, device, trained: dict):
    """The cond model to time: --sample-checkpoint, else the shipped one, else one trained here."""
    if args.sample_checkpoint:
        return course.load("cond", args.sample_checkpoint, device=device), str(args.sample_checkpoint)
    try:
        return course.load("cond", device=device), f"shipped {course.shipped_checkpoint('cond').name}"
    except CheckpointError:
        pass
    if trained:
        minutes = max(trained)
        return trained[minutes], f"trained here for {minutes:g} min (no shipped checkpoint)"
    minutes = max(args.minutes)
    note(f"[sampling] no shipped cond checkpoint: training one for {minutes:g} min")
    model, _ = course.train_model("cond", minutes=minutes, seed=args.seed, device=device, progress=False,
                                  amp=None if args.amp else False)
    return model, f"trained here for {minutes:g} min (no shipped checkpoint)"


def section_sampling(args, device, dtype, scorer, trained: dict) -> str:
    model, source = sampling_model(args, device, trained)
    n = args.n_samples
    compiled, compile_text = None, ""
    if args.compile:
        note("[sampling] compiling the network (torch.compile)")
        compiled = copy.copy(model)  # the same network; only the copy calls it through torch.compile
        start = time.perf_counter()
        compiled.compile()
        compile_s = time.perf_counter() - start
        if compiled.compiled is None:
            compiled, compile_text = None, " torch.compile did not work on this machine (see the warning)."
        else:
            compile_text = (f" Compiling the network before the first compiled run took {compile_s:.1f} s (with "
                            "whatever torch's on-disk compile cache held); the first compiled run includes one "
                            "more compile, for the last, smaller batch.")
    rows = []
    for sampler, steps in SAMPLING_RUNS:
        if sampler == "ddpm" and not args.ddpm:
            continue
        if sampler == "ddpm" and args.quick:
            steps = args.quick_ddpm_steps
        name = f"{sampler.upper()} {steps}" + (" (quick; full run: 1000)" if sampler == "ddpm" and args.quick else "")
        for net, m in (("eager", model), ("compiled", compiled)):
            if m is None or (net == "compiled" and sampler == "ddpm"):
                continue
            times = []
            for r in range(1 if sampler == "ddpm" else args.repeats):
                note(f"[sampling] {sampler} {steps} steps, {n} images, {net}" + (f", run {r + 1}" if r else ""))
                x, seconds = sample_ours(m, n, sampler, steps, args.seed, args.amp)  # the same images each run
                times.append(seconds)
            s = scorer.score(x, cycling_labels(n))
            seconds = statistics.median(times)
            spread = f" ({min(times):.1f}-{max(times):.1f})" if len(times) > 1 else ""
            rows.append([name, net, f"{seconds:.1f}{spread}", fmt_rate(n / seconds), fmt_acc(s["accuracy"]),
                         f"{s['fd']:.2f}"])
    repeats = f"; DDIM seconds: median (min-max) of {args.repeats} runs" if args.repeats > 1 else ""
    return (f"### Sampling {n} images from cond ({source}, guidance scale {course.DEFAULT_GUIDANCE:g}, "
            f"{precision_name(dtype)}, batches of {course.default_batch_size(device)}{repeats})\n\n"
            + table(["sampler, steps", "network", "seconds", "images / s", "accuracy", "FD"], rows)
            + f"\n\nFD floor ({n} real held-out images): {scorer.floor(n):.2f}.{compile_text}")


# ---------------------------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated, any of {', '.join(SECTIONS)} (default: all)")
    p.add_argument("--minutes", default=None, help='training budgets for the quality section (default "1,3,10")')
    p.add_argument("--n-samples", type=int, default=None, help="images sampled per measurement (default 1000)")
    p.add_argument("--baseline-samples", type=int, default=None,
                   help="images sampled from the baseline (default: --n-samples; its 400-step sampler is slow "
                        "on a CPU)")
    p.add_argument("--sample-checkpoint", default=None,
                   help="cond checkpoint for the sampling section (default: the shipped data/checkpoints/cond.pt)")
    p.add_argument("--warmup-steps", type=int, default=None, help="untimed first steps (default 10)")
    p.add_argument("--throughput-steps", type=int, default=None, help="timed training steps per model (default 20)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--no-amp", dest="amp", action="store_false",
                   help="fp32 everywhere (default: the course's mixed precision, for both models)")
    p.add_argument("--no-compile", dest="compile", action="store_false",
                   help="leave out the compiled runs (training throughput and sampling)")
    p.add_argument("--no-ddpm", dest="ddpm", action="store_false",
                   help="sampling section: leave out DDPM with 1000 steps (about 11 min on a 2-core CPU)")
    p.add_argument("--repeats", type=int, default=1,
                   help="sampling section: time each DDIM run this many times and print the median (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="a smoke test: 0.05-minute budgets, 50 samples (10 from the baseline), 1+2 training steps, "
                        "DDPM with 100 steps")
    p.add_argument("--out", default=None, help="also append the tables, in Markdown, to this file")
    args = p.parse_args(argv)

    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in args.sections if s not in SECTIONS]
    if bad or not args.sections:
        p.error(f"--sections takes a comma-separated list of {', '.join(SECTIONS)}; got {bad or 'nothing'}")
    quick = args.quick
    defaults = {"minutes": "0.05" if quick else "1,3,10", "n_samples": 50 if quick else 1000,
                "warmup_steps": 1 if quick else 10, "throughput_steps": 2 if quick else 20}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.baseline_samples is None:
        args.baseline_samples = 10 if quick else args.n_samples
    args.quick_ddpm_steps = 100
    try:
        args.minutes = [float(m) for m in args.minutes.split(",")]
    except ValueError:
        p.error(f"--minutes takes comma-separated numbers such as 1,3,10; got {args.minutes!r}")
    if any(not m > 0 for m in args.minutes):
        p.error(f"--minutes must all be positive, got {args.minutes}")
    for key, least in (("n_samples", 2), ("baseline_samples", 2), ("throughput_steps", 1), ("repeats", 1)):
        if getattr(args, key) < least:
            p.error(f"--{key.replace('_', '-')} must be at least {least}, got {getattr(args, key)}")
    if args.warmup_steps < 0:
        p.error(f"--warmup-steps must be 0 or more, got {args.warmup_steps}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    device = get_device(args.device)
    dtype = autocast_dtype(device) if args.amp else None
    started = time.perf_counter()

    header = (f"## diffusionlab benchmark, {datetime.now():%Y-%m-%d %H:%M}" + (" (--quick)" if args.quick else "")
              + "\n\n" + table(["machine", ""], [list(r) for r in machine_rows(device, dtype)]))
    print(header + "\n", flush=True)
    parts = [header]

    trained: dict = {}
    scorer = SampleScorer() if {"quality", "sampling"} & set(args.sections) else None
    for section in SECTIONS:
        if section not in args.sections:
            continue
        if section == "throughput":
            text = section_throughput(args, device, dtype)
        elif section == "quality":
            text = section_quality(args, device, dtype, scorer, trained)
        else:
            text = section_sampling(args, device, dtype, scorer, trained)
        print(text + "\n", flush=True)
        parts.append(text)

    footer = f"Total benchmark time: {(time.perf_counter() - started) / 60:.1f} min."
    print(footer)
    parts.append(footer)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n\n".join(parts) + "\n\n")
        note(f"appended the tables to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
