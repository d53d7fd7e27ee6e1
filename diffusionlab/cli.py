"""The `diffusionlab` command: train the course's models and sample from them.

    diffusionlab train cond --minutes 10
    diffusionlab sample --model cond --n 1000 --guidance 2 --sampler ddim --steps 50 --out samples.pt
    diffusionlab train flow --minutes 10                                 # lesson 5: flow matching
    diffusionlab sample --model flow --steps 10 --solver heun --guidance 2 --n 1000 --out samples.pt
    diffusionlab make-reflow-pairs --n 5000 --out reflow_pairs.pt && diffusionlab train reflow --pairs reflow_pairs.pt
    diffusionlab train vae --steps 500 && diffusionlab train text --minutes 10    # lesson 7's latent text model
    diffusionlab sample --model text --prompt "a thick seven" --negative-prompt "a seven leaning right" --n 16
    diffusionlab train finetune --base text --data printed --lora 2 --steps 1000  # lesson 8: -> checkpoints/text-printed.pt
    diffusionlab sample --model text-printed --prompt "a printed seven" --checkpoint checkpoints/text-printed.pt
    diffusionlab p2p --prompt "a thick seven" --edit "a thin seven" --n 8 --out edit.pt   # lesson 8's prompt-to-prompt
    diffusionlab make-pairs --n 2000 --out pairs.pt                      # lesson 9: the InstructPix2Pix training set
    diffusionlab train pix2pix --pairs pairs.pt --minutes 20             # -> checkpoints/pix2pix.pt
    diffusionlab edit --input digit.png --instruction "turn it into a 3" --out edited.pt --png edited.png
    diffusionlab score samples.pt                                        # classifier accuracy and FD of samples
    diffusionlab export checkpoints/cond.pt data/checkpoints/cond.pt     # the small fp16 file the course ships
    diffusionlab classifier                                              # train an MNIST classifier -> checkpoints/classifier.pt
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
import sys
import time
from pathlib import Path

import torch

from . import course, flow, records
from .checkpoints import SAMPLED_MODELS, CheckpointError, load_training_state
from .data import DataFileError
from .editing.prompt_to_prompt import CROSS_FRACTION, SELF_FRACTION, edit_prompt
from .guidance import check_guidance_scale
from .instructions import KIND_WEIGHTS, KINDS
from .pipelines.instruct import VARIANTS
from .pipelines.latent import DEFAULT_TEXT_GUIDANCE, RECOMMENDED_GUIDANCE
from .samplers import SAMPLERS
from .utils import get_device


CONDITIONAL = ("cond", "flow", "reflow", "text", "text-printed")  # the models `sample --guidance` steers
TRAINED_HERE = [m for m in course.MODELS if m != "text-printed"]  # `train finetune` makes text-printed


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction of the sampling steps from 0 to 1, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"is a fraction of the sampling steps, from 0 to 1, got {value:g}")
    return value


def _word_scale(text: str) -> tuple[str, float]:
    word, sep, scale = text.partition("=")
    try:
        value = float(scale)
    except ValueError:
        value = None
    if not sep or not word.strip() or value is None or not value >= 0:
        raise argparse.ArgumentTypeError(f"expected WORD=SCALE with a scale >= 0, such as thick=2, got {text!r}")
    return word.strip().lower(), value


def _guidance(text: str) -> float:
    try:
        return check_guidance_scale(float(text))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


class OneLineErrors(argparse.ArgumentParser):
    """Bad arguments get one line saying what is wrong, not the whole usage text."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


SEED_HELP = "random seed (default 0): the same seed and options give the same output"
DEVICE_HELP = "cpu, cuda, mps or auto (default: the best here)"


def build_parser() -> argparse.ArgumentParser:
    p = OneLineErrors(prog="diffusionlab", description="Train and sample the DiffusionLab course models.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a course model on MNIST")
    t.add_argument("model", choices=[*TRAINED_HERE, "finetune"],
                   help="which model; finetune: the text model fine-tuned on printed digits (lesson 8), saved as "
                        "text-printed (sample it with --model text-printed)")
    budget = t.add_argument_group("budget (give one or both; the default is 2000 steps)")
    budget.add_argument("--steps", type=_positive_int, help="number of optimiser steps")
    budget.add_argument("--minutes", type=_positive_float, help="wall-clock budget in minutes")
    t.add_argument("--batch-size", type=_positive_int, help="images per step (default: the model's recipe)")
    t.add_argument("--seed", type=int, help="random seed (default 0; a resumed run keeps its checkpoint's seed)")
    t.add_argument("--device", default="auto", help=DEVICE_HELP)
    t.add_argument("--checkpoint", type=Path, help="where to save (default: checkpoints/MODEL.pt); "
                   "if it exists, training resumes from it and continues to the budget given now")
    t.add_argument("--no-resume", action="store_true", help="start afresh even if the checkpoint exists")
    t.add_argument("--record", type=Path, metavar="FILE", help="denoiser, ddpm and cond: also save a record of the "
                   "run to FILE, its loss at every step and what the model makes at a few steps (records.py); "
                   "needs --steps and a new checkpoint (a record covers a whole run)")
    t.add_argument("--vae", type=Path, help="text model: the VAE whose latents it learns (default: the shipped vae.pt)")
    ft = t.add_argument_group("reflow (lesson 5), finetune (lesson 8) and pix2pix (lesson 9)")
    ft.add_argument("--base", default="text", help="the text model to start from: text (the shipped text.pt, else "
                    "checkpoints/text.pt) or the path of a text checkpoint; reflow: the flow checkpoint to start "
                    "from (default: the shipped flow.pt)")
    ft.add_argument("--pairs", type=Path, nargs="+", help="pix2pix: the training pairs, one or more files of "
                    "`diffusionlab make-pairs` (joined); reflow: the (noise, sample) pairs of "
                    "`diffusionlab make-reflow-pairs` (one file)")
    ft.add_argument("--data", choices=["printed"],
                    help="finetune: printed (the default and only choice): digits set in matplotlib's fonts, captioned 'a printed seven', 'a serif 3', ...")
    ft.add_argument("--lora", type=_positive_int, metavar="RANK",
                    help="train only LoRA updates: rank RANK on the attention projections, the recipe's rank (3) on "
                         "the UNet's 3x3 convolutions, and the new words (--lora 2: 4.6%% of the weights); default: "
                         "full fine-tuning")
    ft.add_argument("--from-scratch", action="store_true", help="train a fresh model of the same shape on the printed "
                    "digits only (the comparison)")
    ft.add_argument("--n-images", type=_positive_int, help="printed digits to train on (default 500)")

    s = sub.add_parser("sample", help="sample images from a trained model")
    s.add_argument("--model", choices=SAMPLED_MODELS, default="cond",
                   help="cond (default; digits by class, lesson 3), ddpm (unconditional, lesson 2), flow or reflow "
                        "(lesson 5), text or text-printed (captions, lessons 7 and 8)")
    s.add_argument("--n", type=_positive_int, default=100, help="number of images")
    s.add_argument("--guidance", type=_guidance,
                   help=f"classifier-free guidance scale, for the conditional models (default {course.DEFAULT_GUIDANCE} for cond, "
                        f"{course.FLOW_GUIDANCE} for flow, {course.REFLOW_GUIDANCE} for reflow, "
                        f"{RECOMMENDED_GUIDANCE['guidance_scale']} for text)")
    s.add_argument("--guidance-interval", type=int, nargs=2, metavar=("LO", "HI"),
                   help="text models: guide only the timesteps LO <= t < HI (default %d %d, the course's recommended "
                        "setting; 0 1000: every step)" % RECOMMENDED_GUIDANCE["guidance_interval"])
    s.add_argument("--steps", type=_positive_int, help="sampling steps (default 50; 10 for flow and reflow): 1 to 1000 for the "
                   "diffusion models, any number of ODE steps for flow and reflow")
    s.add_argument("--sampler", choices=SAMPLERS, help="ddim (default) or ddpm; the diffusion models' sampler")
    s.add_argument("--solver", choices=flow.SOLVERS, help="flow and reflow: euler (default; one network evaluation "
                   "per step) or heun (two per step, one for the last)")
    s.add_argument("--eta", type=float, default=0.0, help="DDIM noise: 0 deterministic (default), 1 DDPM-like")
    s.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    s.add_argument("--device", default="auto", help=DEVICE_HELP)
    s.add_argument("--checkpoint", type=Path,
                   help="weights to use (default: the course's shipped checkpoint, else checkpoints/MODEL.pt)")
    s.add_argument("--out", type=Path, default=Path("samples.pt"),
                   help="output .pt file (default samples.pt): {'images': (N,1,28,28) in [0,1]}, with 'labels': (N,) "
                        "for cond, flow and reflow, 'prompts': N captions for text and text-printed")
    s.add_argument("--png", type=Path, help="also save a grid of the first 100 images as PNG")
    s.add_argument("--compile", action="store_true",
                   help="compile the network first (torch.compile): faster for many images; compiling takes seconds")
    add_text_sample_arguments(s)

    pp = sub.add_parser("p2p", help="prompt-to-prompt (lesson 8): edit text-model images by editing their prompt",
                        description="Sample --prompt and --edit from the same noise; the edited images take the "
                        "source's attention maps for the first steps. Writes {'source', 'edited', 'baseline'}, each "
                        "(N, 1, 28, 28) in [0, 1]; 'baseline' is --edit sampled from the same noise without control.")
    pp.add_argument("--prompt", required=True, help='the source caption, such as "a thick seven"')
    pp.add_argument("--edit", required=True, help='the edited caption: a word swapped ("a thin seven"), added or removed')
    pp.add_argument("--cross-steps", type=_fraction, default=CROSS_FRACTION,
                    help=f"fraction of the steps with the source's cross-attention maps (default {CROSS_FRACTION}, "
                    "measured: more keeps more of the source, but the edit lands less often)")
    pp.add_argument("--self-steps", type=_fraction, default=SELF_FRACTION,
                    help=f"fraction of the steps with the source's self-attention maps (default {SELF_FRACTION})")
    pp.add_argument("--reweight", type=_word_scale, action="append", metavar="WORD=SCALE",
                    help="scale a word of --edit's attention, such as thick=2 (repeatable; 1 changes nothing)")
    pp.add_argument("--local-blend", action="store_true", help="keep the source outside the changed words' region")
    pp.add_argument("--n", type=_positive_int, default=8, help="number of images (default 8)")
    pp.add_argument("--steps", type=_positive_int, default=50, help="DDIM steps (default 50)")
    pp.add_argument("--guidance", type=_guidance, help=f"classifier-free guidance scale (default {DEFAULT_TEXT_GUIDANCE})")
    pp.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    pp.add_argument("--device", default="auto", help=DEVICE_HELP)
    pp.add_argument("--checkpoint", type=Path, help="the text model (default: the shipped text.pt, else checkpoints/text.pt)")
    pp.add_argument("--vae", type=Path, help="the VAE it was trained with (default: the shipped vae.pt)")
    pp.add_argument("--out", type=Path, default=Path("p2p.pt"), help="output .pt file (default p2p.pt)")
    pp.add_argument("--png", type=Path, help="also save a grid: rows of source, edited and baseline images")

    rp = sub.add_parser("make-reflow-pairs", help="reflow's training set (lesson 5): noise and the flow model's "
                        "sample from it", description="Draws N noise images and solves the flow model's ODE from each "
                        "(labels 0..9 in turn, with guidance); writes {'eps', 'x0', 'labels', ...} for `train reflow`.")
    rp.add_argument("--n", type=_positive_int, required=True, help="number of pairs")
    rp.add_argument("--steps", type=_positive_int, default=20, help="solver steps per sample (default 20)")
    rp.add_argument("--solver", choices=flow.SOLVERS, default="euler",
                    help="euler (default; one network evaluation per step) or heun (two per step, one for the last)")
    rp.add_argument("--guidance", type=_guidance, help=f"guidance scale (default {course.FLOW_GUIDANCE})")
    rp.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    rp.add_argument("--device", default="auto", help=DEVICE_HELP)
    rp.add_argument("--checkpoint", type=Path, help="the flow model (default: the shipped flow.pt, else checkpoints/flow.pt)")
    rp.add_argument("--out", type=Path, required=True, help="output .pt file")

    mp = sub.add_parser("make-pairs", help="the InstructPix2Pix training set (lesson 9): model pairs and exact pairs",
                        description="Pairs made by the text model with prompt-to-prompt (N prompts, several samples "
                        "each, filtered by the course classifier and the attribute measures, at most 4 kept per "
                        "prompt) and pairs made by exact image operations on MNIST training digits, saved to one .pt.")
    mp.add_argument("--n", type=_positive_int, required=True, help="prompts for the text model")
    mp.add_argument("--exact", type=int, help="exact pairs from MNIST training digits (default: N; 0 for none)")
    mp.add_argument("--kinds", nargs="+", choices=KINDS, help="only these kinds of instruction for the model pairs "
                    f"(default: all, weighted {dict(zip(KINDS, KIND_WEIGHTS))})")
    mp.add_argument("--samples-per-prompt", type=_positive_int, default=4, help="image pairs sampled per prompt (4)")
    mp.add_argument("--steps", type=_positive_int, default=20, help="DDIM steps per sample (default 20)")
    mp.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    mp.add_argument("--device", default="auto", help=DEVICE_HELP)
    mp.add_argument("--checkpoint", type=Path, help="the text model (default: the shipped text.pt, else checkpoints/text.pt)")
    mp.add_argument("--vae", type=Path, help="the VAE it was trained with (default: the shipped vae.pt)")
    mp.add_argument("--out", type=Path, required=True, help="output .pt file")

    ed = sub.add_parser("edit", help="edit digits by a written instruction with InstructPix2Pix (lesson 9)",
                        description="Writes {'images': (N, 1, 28, 28) in [0, 1], 'instruction': str}.")
    ed.add_argument("--input", type=Path, required=True, help="a picture of a digit (any size and mode), or a .pt "
                    "holding {'images': (N, 1, 28, 28) in [0, 1]} (all edited with the same instruction)")
    ed.add_argument("--instruction", required=True, help='such as "turn it into a 3" or "make it thicker"')
    ed.add_argument("--negative-prompt", help="an instruction to steer away from (in place of the empty one)")
    ed.add_argument("--text-guidance", type=_guidance, help="s_T, towards the instruction (default: the pipeline's)")
    ed.add_argument("--image-guidance", type=_guidance, help="s_I, towards the input (default: the pipeline's)")
    ed.add_argument("--steps", type=int, default=20, help="sampling steps, 2 to 1000 (default 20)")
    ed.add_argument("--sampler", choices=SAMPLERS, help="ddim or ddpm (default: the variant's)")
    ed.add_argument("--strength", type=float, default=1.0,
                    help="in (0, 1]: how far from the input the edit starts (SDEdit's strength; the 'temperature' "
                         "of the InstructPix2Pix visualizer); 1 starts from pure noise (default 1)")
    ed.add_argument("--variant", default="full", choices=list(VARIANTS), help="full (CFG + DDIM), no-ddim, no-cfg, "
                    "no-cfg-no-ddim, or img2img (SDEdit with the lesson-7 text model and the edited caption)")
    ed.add_argument("--seed", type=int, default=0, help=SEED_HELP)
    ed.add_argument("--device", default="auto", help=DEVICE_HELP)
    ed.add_argument("--checkpoint", type=Path,
                    help="the pix2pix model (default: the shipped pix2pix.pt, else checkpoints/pix2pix.pt)")
    ed.add_argument("--vae", type=Path, help="the VAE it was trained with (default: the shipped vae.pt)")
    ed.add_argument("--text-checkpoint", type=Path, help="img2img: the lesson-7 text model (default: the "
                    "one named by a checkpoint saved by `train pix2pix`, if that file exists, else the shipped text.pt)")
    ed.add_argument("--out", type=Path, default=Path("edited.pt"), help="output .pt file (default edited.pt)")
    ed.add_argument("--png", type=Path, help="also save a grid: the inputs above their edits")

    e = sub.add_parser("export", help="keep only a checkpoint's EMA weights, in fp16 (the shipped format)",
                       description="Write the EMA weights of a training checkpoint in fp16, without the optimiser "
                       "state: the small file the course ships in data/checkpoints/, which `sample --checkpoint` "
                       "and course.load read (training cannot resume from it).")
    e.add_argument("checkpoint", type=Path, help="a checkpoint saved by `diffusionlab train`, such as checkpoints/cond.pt")
    e.add_argument("out", type=Path, help="the file to write, such as cond_small.pt")

    q = sub.add_parser("score", help="measure a samples file: classifier accuracy and Frechet distance (FD)")
    q.add_argument("samples", type=Path, help="a file written by `diffusionlab sample`")

    c = sub.add_parser("classifier", help="train an MNIST classifier of the kind that measures samples (the course's "
                       "own, data/checkpoints/classifier.pt, is left as shipped)")
    c.add_argument("--epochs", type=_positive_int, default=3, help="passes over the MNIST training set (default 3)")
    c.add_argument("--out", type=Path, default=Path("checkpoints/classifier.pt"),
                   help="where to save (default checkpoints/classifier.pt; the course's scorer, "
                        "data/checkpoints/classifier.pt, stays as shipped: every measurement was made with it). "
                        "Use it with diffusionlab.metrics.load_classifier(path)")

    g = sub.add_parser("playground", help="serve the playground (notebooks/playground.ipynb) as a web page with Voila")
    g.add_argument("--port", type=_port, default=8866, help="the port on localhost (default 8866)")
    return p


def _port(text: str) -> int:
    port = int(text) if text.isdigit() else -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 1 to 65535, got {text!r}")
    return port


PLAYGROUND = Path(__file__).resolve().parent.parent / "notebooks" / "playground.ipynb"


def playground_command(port: int, notebook: Path = PLAYGROUND) -> list[str]:
    """The Voila command that serves the playground notebook on localhost:`port`."""
    # port_retries=0: on a busy port Voila would otherwise serve on the next free one, not at the address printed
    return [sys.executable, "-m", "voila", str(notebook), f"--port={port}", "--no-browser", "--Voila.ip=127.0.0.1",
            "--Voila.port_retries=0"]


def check_port_free(port: int) -> None:
    """Refuse a port that a server (an earlier playground, a Jupyter) already listens on, before starting Voila."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Voila binds: a closed server's port is free
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise ValueError(f"port {port} is in use: a playground (then open http://localhost:{port}/) or another "
                             "server already runs there; stop it, or give another port with --port") from None


def cmd_playground(args) -> None:
    import importlib.util
    import subprocess

    if importlib.util.find_spec("voila") is None:
        raise ValueError("Voila is not installed: pip install -e '.[app]' (or '.[dev]')")
    if not PLAYGROUND.exists():
        raise ValueError(f"{PLAYGROUND} is missing: the playground runs from a clone of the course's repository")
    check_port_free(args.port)
    print(f"The playground: http://localhost:{args.port}/  (Ctrl-C stops it)", flush=True)
    subprocess.run(playground_command(args.port), check=False)


def check_writable(path: Path, what: str, example: str) -> None:
    """Fail now, before any work, if `path` cannot be written: a directory, no permission, a read-only disk.
    Missing parent directories are created."""
    if path.is_dir():
        raise ValueError(f"{what} {path} is a directory; give a file name, such as {path / example}")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):  # opens without changing an existing file
            pass
    except OSError as err:
        raise ValueError(f"cannot write {what} {path}: {err.strerror or err}") from None
    if not existed:
        os.remove(path)


def _budget_text(steps, minutes) -> str:
    return " and ".join(([f"step {steps}"] if steps is not None else []) +
                        ([f"{minutes:g} minutes of training in all"] if minutes is not None else []))


def finetune_arguments(args, device) -> dict:
    """The keyword arguments of `finetune.finetune_text` from `train finetune`'s options."""
    from .finetune import FINETUNE_RECIPE

    if args.from_scratch and args.lora is not None:
        raise ValueError("--lora adapts the trained model; --from-scratch trains a fresh one: give one of them")
    if args.base == "text":
        base = course.shipped_checkpoint("text")
        base = base if base.exists() else course.default_checkpoint("text")
    else:
        base = Path(args.base)
    recipe = FINETUNE_RECIPE if args.n_images is None else replace(FINETUNE_RECIPE, n_images=args.n_images)
    return {"base": course.load("text", base, device, vae=args.vae), "lora": args.lora,
            "from_scratch": args.from_scratch, "recipe": recipe}


def cmd_train(args) -> None:
    steps, minutes = args.steps, args.minutes
    if steps is None and minutes is None:
        steps = 2000
    finetuning, pix2pix, reflow = args.model == "finetune", args.model == "pix2pix", args.model == "reflow"
    finetune_only = [name for name, given in (("--data", args.data is not None), ("--lora", args.lora is not None),
                     ("--from-scratch", args.from_scratch), ("--n-images", args.n_images is not None)) if given]
    if not finetuning and finetune_only:
        raise ValueError(f"{', '.join(finetune_only)}: options of `train finetune` (--data, --lora, --from-scratch, "
                         f"--n-images), not of `train {args.model}`")
    if args.base != "text" and not (finetuning or pix2pix or reflow):
        raise ValueError(f"--base is an option of `train finetune`, `train reflow` and `train pix2pix`, not of "
                         f"`train {args.model}`")
    if reflow and (args.pairs is None or len(args.pairs) != 1):
        raise ValueError("`train reflow` needs --pairs FILE, one file (made by `diffusionlab make-reflow-pairs`)")
    if not reflow and pix2pix != (args.pairs is not None):
        raise ValueError("`train pix2pix` needs --pairs FILE (made by `diffusionlab make-pairs`)" if pix2pix else
                         "--pairs is an option of `train pix2pix` and `train reflow`")
    name = "text-printed" if finetuning else args.model
    device = get_device(args.device)
    checkpoint = args.checkpoint or course.default_checkpoint(name)
    check_writable(checkpoint, "checkpoint", f"{name}.pt")
    seed = 0 if args.seed is None else args.seed
    if args.record is not None:
        if name not in records.RECORDED or steps is None or minutes is not None:
            raise ValueError(f"--record records a run of {', '.join(records.RECORDED)} with a --steps budget "
                             f"(no --minutes); got {name!r} with {_budget_text(steps, minutes)}")
        if checkpoint.exists():
            raise ValueError(f"--record: {checkpoint} exists, but a record covers a whole run from step 0; give a "
                             f"new --checkpoint path or delete {checkpoint}")
        check_writable(args.record, "record", f"{name}_record.pt")
    resumed_from, seconds_before = 0, 0.0
    if checkpoint.exists() and not args.no_resume:
        state = load_training_state(checkpoint, name)
        resumed_from, seconds_before = state["step"], state.get("seconds", 0.0)
        trained = seconds_before / 60
        print(f"resuming {name!r} from step {resumed_from} of {checkpoint} ({trained:.1f} minutes trained), "
              f"to {_budget_text(steps, minutes)}")
        if args.seed is not None and args.seed != state["seed"]:
            print(f"note: --seed {args.seed} differs from the checkpoint's seed {state['seed']}; the checkpoint's "
                  f"seed is kept so that the resumed run is exact (--no-resume starts afresh with --seed {args.seed})")
        seed = state["seed"]
        if (steps is not None and resumed_from >= steps) or (minutes is not None and trained >= minutes):
            print("the checkpoint has already reached the budget: nothing to train. Give a larger --steps or "
                  "--minutes to train on (both count from the start of the run).")
            return
    if args.vae is not None and args.model not in ("text", "finetune", "pix2pix"):
        raise ValueError("--vae is an option of the text models only")
    if pix2pix:
        extra = {"pairs": args.pairs, "base": _text_checkpoint(args.base), "vae": args.vae}
    elif reflow:
        extra = {"pairs": args.pairs[0], "base": _flow_checkpoint(args.base if args.base != "text" else None)}
    else:
        extra = finetune_arguments(args, device) if finetuning else {"vae": args.vae} if args.model == "text" else {}
    print(f"training {name!r} on {device} -> {checkpoint}")
    start = time.time()
    if args.record is not None:
        command = f"diffusionlab train {name} --steps {steps} --seed {seed}" + (
            f" --batch-size {args.batch_size}" if args.batch_size else "")
        note = (f"{command} --record (on {device}, {torch.get_num_threads()} thread(s), "
                f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
        model, history, _ = records.record_training(name, steps, args.record, seed=seed, checkpoint=checkpoint,
                                                    device=device, batch_size=args.batch_size, note=note)
        print(f"saved the record of the run to {args.record}")
    else:
        model, history = course.train_model(name, steps=steps, minutes=minutes, checkpoint=checkpoint,
                                            device=device, seed=seed, batch_size=args.batch_size,
                                            resume=not args.no_resume, **extra)
    elapsed = time.time() - start
    done = history["step"][-1] if history["step"] else 0
    batch = args.batch_size or course.recipe_batch_size(name)
    # the steps' own time, saved in the checkpoint: elapsed also counts loading and preparing the data (the text
    # model encodes all 60,000 training digits first) and what follows training (the VAE fits its scale factor)
    saved = load_training_state(checkpoint, name) if checkpoint.exists() else {}
    training = saved.get("seconds", elapsed + seconds_before) - seconds_before
    rate = batch * (done - resumed_from) / max(training, 1e-9)
    print(f"done: step {done}, loss {sum(history['loss'][-100:]) / max(1, len(history['loss'][-100:])):.4f}, "
          f"{training:.1f} s of training ({elapsed:.1f} s in all), {rate:.0f} training images/s; "
          f"saved {checkpoint}")
    if finetuning:
        print(f"trained {history['trainable']:,} of {history['parameters']:,} parameters "
              f"({100 * history['trainable'] / history['parameters']:.1f}%)")


def add_text_sample_arguments(s) -> None:
    """The options of `sample --model text` (lesson 7)."""
    s.add_argument("--prompt", action="append",
                   help='text model: a caption such as "a thick seven"; give it several times to cycle over the images')
    s.add_argument("--negative-prompt", action="append",
                   help="text model: a caption to steer away from (replaces the empty caption in guidance); repeatable")
    s.add_argument("--vae", type=Path, help="text model: the VAE it was trained with (default: the shipped vae.pt)")


def cmd_sample_text(args, device) -> None:
    """`diffusionlab sample --model text`: {"images": (N, 1, 28, 28) in [0, 1], "prompts": N strings}."""
    if not args.prompt:
        raise ValueError('the text model needs a caption: --prompt "a thick seven" (repeat --prompt for several)')
    if args.compile:
        raise ValueError("--compile is not available for the text model")
    if args.sampler == "ddpm" and args.eta != 0.0:
        raise ValueError("--eta is a DDIM setting; leave it out with --sampler ddpm")
    check_writable(args.out, "--out", "samples.pt")
    if args.png:
        check_writable(args.png, "--png", "grid.png")
    path = _checkpoint_to_sample(args)
    guidance = RECOMMENDED_GUIDANCE["guidance_scale"] if args.guidance is None else args.guidance
    interval = tuple(args.guidance_interval or RECOMMENDED_GUIDANCE["guidance_interval"])
    pipe = course.load(args.model, path, device, vae=args.vae)
    prompts = [args.prompt[i % len(args.prompt)] for i in range(args.n)]
    g = torch.Generator(device=device).manual_seed(args.seed)
    start = time.time()
    x = pipe.sample(prompts, negative_prompts=args.negative_prompt, guidance_scale=guidance, sampler=args.sampler,
                    steps=args.steps, eta=args.eta, generator=g, guidance_interval=interval)
    elapsed = time.time() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"images": ((x.float().cpu() + 1) / 2).clamp(0, 1), "prompts": prompts}, args.out)
    if args.png:
        import matplotlib.pyplot as plt

        from .viz import make_grid
        plt.imsave(args.png, make_grid(x[:100], nrow=10), cmap="gray", vmin=0, vmax=1)
    print(f"sampled {args.n} images for {len(set(prompts))} prompt(s) with {args.sampler} {args.steps} steps, guidance "
          f"{guidance:g} at timesteps {interval[0]} <= t < {interval[1]} from {path} in {elapsed:.1f} s ({args.n / elapsed:.1f} images/s) -> {args.out}")


def _checkpoint_to_sample(args) -> Path:
    """--checkpoint, else the course's shipped file, else where `train` saves by default."""
    if args.checkpoint is not None:
        return args.checkpoint
    if course.shipped_checkpoint(args.model).exists():
        return course.shipped_checkpoint(args.model)
    return course.default_checkpoint(args.model)


def cmd_sample(args) -> None:
    device = get_device(args.device)
    flow_model = args.model in course.FLOW_MODELS
    if flow_model and (args.sampler is not None or args.eta != 0.0):
        raise ValueError(f"--sampler and --eta are the diffusion models' options; {args.model} is solved by "
                         "--solver euler or heun")
    if not flow_model and args.solver is not None:
        raise ValueError("--solver is an option of the flow models: add --model flow (or reflow); the diffusion "
                         "models take --sampler ddim or ddpm")
    args.steps = args.steps or (10 if flow_model else 50)
    args.sampler, args.solver = args.sampler or "ddim", args.solver or "euler"
    if args.model in ("text", "text-printed"):
        return cmd_sample_text(args, device)
    if args.prompt or args.negative_prompt or args.vae or args.guidance_interval:
        raise ValueError("--prompt, --negative-prompt, --vae and --guidance-interval are options of the text model: "
                         "add --model text")
    if args.model == "ddpm" and args.guidance is not None:
        raise ValueError(f"--guidance needs a conditional model ({', '.join(CONDITIONAL)}); ddpm is unconditional")
    if args.guidance is None:
        args.guidance = {"flow": course.FLOW_GUIDANCE, "reflow": course.REFLOW_GUIDANCE}.get(args.model,
                                                                                           course.DEFAULT_GUIDANCE)
    path = _checkpoint_to_sample(args)
    if args.sampler == "ddpm" and args.eta != 0.0:
        raise ValueError("--eta is a DDIM setting; leave it out with --sampler ddpm")
    check_writable(args.out, "--out", "samples.pt")
    if args.png:
        check_writable(args.png, "--png", "grid.png")
    model = course.load(args.model, path, device)
    if args.compile:
        start = time.time()
        model.compile(batch_size=min(args.n, course.default_batch_size(device)), n=args.n)
        if model.compiled is not None:
            print(f"compiled the network in {time.time() - start:.1f} s")
    g = torch.Generator(device=device).manual_seed(args.seed)
    labels = torch.arange(args.n) % 10 if args.model in ("cond", *course.FLOW_MODELS) else None
    start = time.time()
    if flow_model:
        x = model.sample(args.n, labels=labels, guidance_scale=args.guidance, steps=args.steps, solver=args.solver,
                         generator=g)
    else:
        x = model.sample(args.n, labels=labels, guidance_scale=args.guidance, sampler=args.sampler, steps=args.steps,
                         eta=args.eta, generator=g)
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.time() - start
    images = ((x.float().cpu() + 1) / 2).clamp(0, 1)
    out = {"images": images}
    if labels is not None:
        out["labels"] = labels.long()
    torch.save(out, args.out)
    if args.png:
        import matplotlib.pyplot as plt

        from .viz import make_grid
        plt.imsave(args.png, make_grid(x[:100], nrow=10), cmap="gray", vmin=0, vmax=1)
    method = (f"{args.solver} {args.steps} steps ({flow.evaluations(args.steps, args.solver)} network evaluations)"
              if flow_model else f"{args.sampler} {args.steps} steps")
    print(f"sampled {args.n} images with {method}"
          f"{f', guidance {args.guidance:g}' if labels is not None else ''} from {path} in {elapsed:.1f} s "
          f"({args.n / elapsed:.1f} images/s) -> {args.out}")


def cmd_p2p(args) -> None:
    """`diffusionlab p2p`: {"source", "edited", "baseline"}, each (N, 1, 28, 28) in [0, 1]."""
    check_writable(args.out, "--out", "p2p.pt")
    if args.png:
        check_writable(args.png, "--png", "p2p.png")
    device = get_device(args.device)
    path = args.checkpoint or (course.shipped_checkpoint("text") if course.shipped_checkpoint("text").exists()
                               else course.default_checkpoint("text"))
    pipe = course.load("text", path, device, vae=args.vae)
    guidance = DEFAULT_TEXT_GUIDANCE if args.guidance is None else args.guidance
    g = torch.Generator(device=device).manual_seed(args.seed)
    start = time.time()
    images = edit_prompt(pipe, args.prompt, args.edit, args.n, args.cross_steps, args.self_steps,
                         dict(args.reweight or []), args.local_blend, args.steps, guidance, g)
    elapsed = time.time() - start
    out = {k: ((x.float().cpu() + 1) / 2).clamp(0, 1) for k, x in zip(("source", "edited", "baseline"), images)}
    torch.save(out, args.out)
    if args.png:
        import matplotlib.pyplot as plt

        from .viz import make_grid
        k = min(args.n, 10)
        plt.imsave(args.png, make_grid(torch.cat([x[:k] for x in images]), nrow=k), cmap="gray", vmin=0, vmax=1)
    print(f"edited {args.n} images {args.prompt!r} -> {args.edit!r} (cross-attention {args.cross_steps:g}, "
          f"self-attention {args.self_steps:g} of {args.steps} steps) from {path} in {elapsed:.1f} s -> {args.out}")


def _text_checkpoint(base: str) -> Path:
    """--base: "text" is the shipped text.pt, else checkpoints/text.pt; anything else is a path."""
    if base != "text":
        return Path(base)
    shipped = course.shipped_checkpoint("text")
    return shipped if shipped.exists() else course.default_checkpoint("text")


def _flow_checkpoint(path: Path | str | None) -> Path:
    """A flow checkpoint: `path`, else the shipped flow.pt, else checkpoints/flow.pt."""
    if path is not None:
        return Path(path)
    shipped = course.shipped_checkpoint("flow")
    return shipped if shipped.exists() else course.default_checkpoint("flow")


def cmd_make_reflow_pairs(args) -> None:
    """`diffusionlab make-reflow-pairs`: reflow's (eps, x0) pairs from a flow model (`pipelines.flow.reflow_data`)."""
    from .pipelines.flow import reflow_data

    check_writable(args.out, "--out", "reflow_pairs.pt")
    device = get_device(args.device)
    model = course.load("flow", _flow_checkpoint(args.checkpoint), device)
    data = reflow_data(model, args.n, steps=args.steps, solver=args.solver, guidance_scale=args.guidance,
                       seed=args.seed, out=args.out)
    print(f"{args.n} reflow pairs ({args.solver} {args.steps} steps, guidance {data['guidance']:g}) in "
          f"{data['seconds']:.1f} s -> {args.out}")


def cmd_make_pairs(args) -> None:
    """`diffusionlab make-pairs`: the lesson-9 training set (`pairs.make_pairs`) in one .pt."""
    from .pairs import make_pairs

    if args.exact is not None and args.exact < 0:
        raise ValueError(f"--exact is a number of pairs, 0 or more, got {args.exact}")
    check_writable(args.out, "--out", "pairs.pt")
    device = get_device(args.device)
    pipe = course.load("text", args.checkpoint or _text_checkpoint("text"), device, vae=args.vae)
    data = make_pairs(args.n, pipe, n_exact=args.exact, seed=args.seed, samples_per_prompt=args.samples_per_prompt,
                      steps=args.steps, out=args.out, kinds=args.kinds)
    c = data["counts"]
    if "model" in c:
        m = c["model"]
        print(f"model pairs: {m['prompts']} prompts, {m['generated']} generated, passed the tests: caption "
              f"{m.get('caption', 0)}, directional {m.get('directional', 0)}, input kept {m.get('kept', 0)}; all three {m['accepted']}, "
              f"{m['kept_per_prompt']} kept (at most 4 per prompt) in {m['seconds']:.1f} s")
    if "exact" in c:
        print(f"exact pairs: {c['exact']['generated']} generated, {c['exact']['accepted']} kept by the filter")
    print(f"{c['pairs']} pairs ({100 * c['exact_share']:.0f}% exact) in {c['seconds']:.1f} s -> {args.out}")


def read_edit_input(path: Path) -> torch.Tensor:
    """`edit --input`: a .pt holding {"images": (N, 1, 28, 28) in [0, 1]}, or a picture of any size and mode.
    Returns (N, 1, 28, 28) in [-1, 1]."""
    from .data import load_image

    if not path.exists():
        raise ValueError(f"--input {path} does not exist")
    if path.suffix == ".pt":
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - any failure to read means: not an images file
            raise ValueError(f"{path} could not be read as a .pt file") from None
        images = data.get("images") if isinstance(data, dict) else None
        if not (isinstance(images, torch.Tensor) and images.ndim == 4 and tuple(images.shape[1:]) == (1, 28, 28)
                and len(images) > 0):
            raise ValueError(f"{path} must hold {{'images': (N, 1, 28, 28) in [0, 1]}} (as `sample` writes)")
        images = images.float()
        if images.min() < 0 or images.max() > 1:
            raise ValueError(f"{path}: 'images' must be in [0, 1], got {float(images.min()):.3g} to {float(images.max()):.3g}")
        return images * 2 - 1
    try:
        return load_image(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"--input {path} is neither a .pt file nor a picture that could be read ({err})") from None


def cmd_edit(args) -> None:
    """`diffusionlab edit`: {"images": (N, 1, 28, 28) in [0, 1], "instruction": str}."""
    from .pipelines.instruct import DEFAULT_IMAGE_GUIDANCE, DEFAULT_TEXT_GUIDANCE as PIX_TEXT_GUIDANCE

    if not args.instruction.strip():
        raise ValueError('--instruction is empty: say what to change, such as "turn it into a 3" or "make it thicker"')
    check_writable(args.out, "--out", "edited.pt")
    if args.png:
        check_writable(args.png, "--png", "edited.png")
    x = read_edit_input(args.input)
    device = get_device(args.device)
    path = _checkpoint_to_sample(argparse.Namespace(checkpoint=args.checkpoint, model="pix2pix"))
    pipe = course.load("pix2pix", path, device, vae=args.vae)
    if args.text_checkpoint is not None:
        pipe.text_checkpoint = str(args.text_checkpoint)
    if args.variant == "img2img" and args.image_guidance is not None:
        raise ValueError("--image-guidance is not used by variant img2img: the text model guides by the edited caption "
                         "only (--text-guidance)")
    if args.variant in ("no-cfg", "no-cfg-no-ddim") and (args.text_guidance, args.image_guidance) != (None, None):
        raise ValueError(f"variant {args.variant!r} samples without guidance: leave out --text-guidance and "
                         "--image-guidance, or use variant 'full'")
    s_T = PIX_TEXT_GUIDANCE if args.text_guidance is None else args.text_guidance
    s_I = DEFAULT_IMAGE_GUIDANCE if args.image_guidance is None else args.image_guidance
    g = torch.Generator(device=device).manual_seed(args.seed)
    start = time.time()
    y = pipe.edit(x.to(device), args.instruction, text_guidance=s_T, image_guidance=s_I, steps=args.steps,
                  sampler=args.sampler, negative_prompt=args.negative_prompt, strength=args.strength,
                  variant=args.variant, generator=g)
    elapsed = time.time() - start
    torch.save({"images": ((y.float().cpu() + 1) / 2).clamp(0, 1), "instruction": args.instruction}, args.out)
    if args.png:
        import matplotlib.pyplot as plt

        from .viz import make_grid
        k = min(len(x), 10)
        plt.imsave(args.png, make_grid(torch.cat([x[:k].cpu(), y[:k].cpu()]), nrow=k), cmap="gray", vmin=0, vmax=1)
    print(f"edited {len(x)} image(s) by {args.instruction!r} ({args.variant}, {args.steps} steps, "
          f"{edit_guidance_text(args.variant, s_T, s_I)}, strength {args.strength:g}) from {path} in {elapsed:.2f} s "
          f"-> {args.out}")


def edit_guidance_text(variant: str, s_T: float, s_I: float) -> str:
    """The guidance a variant of `edit` uses, in words: img2img guides by its caption only, no-cfg by nothing."""
    if variant == "img2img":
        return f"caption guidance {s_T:g}"
    if not VARIANTS[variant][1]:
        return "no guidance"
    return f"text guidance {s_T:g}, image guidance {s_I:g}"


def cmd_export(args) -> None:
    check_writable(args.out, "out", args.checkpoint.name)
    out = course.export_weights(args.checkpoint, args.out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB, sha256 {course.sha256(out)})")


def load_samples(path: Path) -> dict:
    """A samples file written by `diffusionlab sample`, or a clear error saying why it is not one."""
    how = "write one with `diffusionlab sample --out FILE`"
    if not path.exists():
        raise ValueError(f"samples file {path} does not exist; {how}")
    try:
        result = torch.load(path, weights_only=True)
    except Exception:  # noqa: BLE001 - any failure to read means: not a samples file
        raise ValueError(f"{path} is not a samples file (it could not be read as one); {how}") from None
    images = result.get("images") if isinstance(result, dict) else None
    if not (isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[1:] == (1, 28, 28)):
        raise ValueError(f"{path} is not a samples file (no 'images' of shape (N, 1, 28, 28)); {how}")
    return result


def cmd_score(args) -> None:
    from .metrics import SampleScorer

    result = load_samples(args.samples)
    images = result["images"].float()
    if images.min() < 0 or images.max() > 1:
        raise ValueError(f"{args.samples}: 'images' must be in [0, 1], got {float(images.min()):.3g} to "
                         f"{float(images.max()):.3g}")
    images = images * 2 - 1  # the file holds [0, 1]; the classifier reads [-1, 1]
    scorer = SampleScorer()
    scores = scorer.score(images, result.get("labels"))
    line = f"{len(images)} images: FD {scores['fd']:.2f} (real-data floor {scorer.floor(len(images)):.2f})"
    if "accuracy" in scores:
        line += f", classifier reads {100 * scores['accuracy']:.1f}% as the requested digit"
    print(line)


def cmd_classifier(args) -> None:
    from .metrics import accuracy, save_classifier, train_classifier
    from .data import load_mnist

    check_writable(args.out, "--out", "classifier.pt")
    model = train_classifier(epochs=args.epochs)
    x, y = load_mnist("test")
    print(f"test accuracy {accuracy(model, x, y):.4f}")
    path = save_classifier(model, args.out)
    print(f"wrote {path}; score with it by SampleScorer(load_classifier({str(path)!r})) from diffusionlab.metrics "
          "(`diffusionlab score` uses the shipped data/checkpoints/classifier.pt)")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        {"train": cmd_train, "sample": cmd_sample, "export": cmd_export, "score": cmd_score,
         "classifier": cmd_classifier, "p2p": cmd_p2p, "make-pairs": cmd_make_pairs,
         "make-reflow-pairs": cmd_make_reflow_pairs,
         "edit": cmd_edit, "playground": cmd_playground}[args.command](args)
    except (ValueError, CheckpointError, DataFileError) as err:
        print(f"diffusionlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:  # `train` says at which step it stopped and where it saved
        print(f"diffusionlab {args.command}: {str(err) or 'interrupted; nothing was saved'}", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
