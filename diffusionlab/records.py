"""Training records: the loss curve of a whole run and what the model made at a few points of it (lessons 1-3).

CS180's project asks for samples after 1, 5 and 20 epochs and for the training loss curve. A lesson run in fast
mode trains for a few dozen steps only, so the course ships, beside each of the lessons' checkpoints, the record
of a run of the full recipe (`data/checkpoints/NAME_record.pt`, a few hundred KB), and `viz.show_record` draws
it beside the student's own short run.

`record_training(name, steps, out)` trains course model `name` with its recipe (`course.train_model`) and, through
`train`'s `callback`, takes a snapshot of the EMA weights at the steps of `snapshot_steps`: the same 20 samples
(the same starting noise, DDIM, `SAMPLE_STEPS` steps; for cond two of each digit at the default guidance) or, for
the one-step denoiser, the same 10 noisy test digits (one per class, sigma = 0.5) denoised. One epoch of MNIST's
60,000 training images is 469 steps of the recipes' batch of 128, so the recipes' 1,000 to 4,000 steps are 2 to
8.5 epochs, and the snapshots are at steps 20 and 100 (the warm-up), 469 (one epoch), 1000, 2000, 3000, 4000 and
the last step, where the run gets there.

A record holds only tensors and plain values (it loads with weights_only=True), and it is saved atomically:
    model_name, steps, seed, batch_size, n_train        the run
    history   {"step": int32, "loss": float32, "lr": float32}, one value per step
    snapshot_steps (S,) int64, snapshots (S, N, 28, 28) uint8 (pixel 0 black, 255 white)
    snapshot_labels (N,) or None, inputs {"clean", "noisy"} (N, 28, 28) uint8 for the denoiser, else None
    sampler   how the snapshots were made (a sentence)
    weights_sha256   `weights_digest` of the final EMA weights in fp16, to compare with a shipped checkpoint's
    same_as_shipped  whether they are the shipped checkpoint's weights (`compare_with_shipped`; the note says so)
    note, machine, threads, torch_version, seconds   provenance: what the run is, where and how it ran
"""

from __future__ import annotations

import hashlib
import platform
import time
from pathlib import Path

import torch

from . import course
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .data import load_mnist
from .losses import add_noise
from .pipelines.pixel import DEFAULT_GUIDANCE, DiffusionModel
from .schedules import NoiseSchedule

RECORDED = ("denoiser", "ddpm", "cond")  # the course models a record can be made of
SNAPSHOT_STEPS = (20, 100, 469, 1000, 2000, 3000, 4000)
SAMPLE_STEPS = 50  # DDIM steps per snapshot sample
N_SAMPLES = 20


def snapshot_steps(total: int) -> list[int]:
    """The steps of `SNAPSHOT_STEPS` within a run of `total` steps, and its last step."""
    return sorted({s for s in SNAPSHOT_STEPS if s < total} | {total})


def shipped_record(name: str) -> Path:
    return course.CHECKPOINT_DIR / f"{name}_record.pt"


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Images (N, 1, 28, 28) in [-1, 1] -> (N, 28, 28) uint8, 0 black and 255 white (clamped)."""
    return ((x.detach().float().cpu().squeeze(1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


def weights_digest(state_dict: dict) -> str:
    """SHA-256 of a network's weights in fp16 (the shipped precision), in the order of their names."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        v = state_dict[key].detach().cpu()
        h.update(key.encode())
        h.update((v.half() if v.is_floating_point() else v).contiguous().numpy().tobytes())
    return h.hexdigest()


def epochs(step: int, record: dict) -> float:
    """How many passes over the training images `step` steps of the record's run made."""
    return step * record["batch_size"] / record["n_train"]


class Snapshots:
    """The `callback(step, ema)` of `train` that keeps what the EMA network makes at `steps`."""

    def __init__(self, name: str, steps, n: int = N_SAMPLES, sample_steps: int = SAMPLE_STEPS, seed: int = 0):
        if name not in RECORDED:
            raise ValueError(f"records are made of {', '.join(RECORDED)}; got {name!r}")
        self.name, self.steps, self.sample_steps, self.seed = name, set(steps), sample_steps, seed
        self.taken: dict[int, torch.Tensor] = {}
        recipe = course.check_name(name)
        self.schedule = NoiseSchedule(**recipe.schedule) if name != "denoiser" else None
        self.prediction = recipe.prediction
        self.labels = torch.arange(n) % 10 if recipe.config.num_classes else None
        self.inputs = None
        if name == "denoiser":  # the first test digit of each class, noised once with a fixed generator
            x, y = load_mnist("test")
            clean = torch.stack([x[(y == c).nonzero()[0, 0]] for c in range(10)])
            noisy = add_noise(clean, recipe.sigma, torch.Generator().manual_seed(seed))
            self.inputs = {"clean": clean, "noisy": noisy}
            self.sampler = f"the first test digit of each class, noised at sigma = {recipe.sigma} (seed {seed}), denoised"
        else:
            guided = f", labels 0, 1, ..., 9 in turn, guidance {DEFAULT_GUIDANCE}" if self.labels is not None else ""
            self.sampler = f"{n} samples, DDIM {sample_steps} steps (eta 0) from the same noise (seed {seed}){guided}"
        self.n = n

    @torch.no_grad()
    def __call__(self, step: int, ema: torch.nn.Module) -> None:
        if step not in self.steps:
            return
        device = next(ema.parameters()).device
        if self.inputs is not None:
            out = ema(self.inputs["noisy"].to(device))
        else:
            model = DiffusionModel(self.name, ema, self.schedule, self.prediction)
            out = model.sample(self.n, self.labels, steps=self.sample_steps, progress=False,
                               generator=torch.Generator(device).manual_seed(self.seed))
        self.taken[step] = to_uint8(out)


def record_training(name: str, steps: int, out=None, *, seed: int = 0, checkpoint=None, device=None,
                    note: str = "", snapshots: Snapshots | None = None, limit: int | None = None,
                    batch_size: int | None = None, progress: bool = True):
    """Train course model `name` for `steps` steps with its recipe (as `course.train_model`) and record the run.

    Returns (model, history, record); the record is also saved to `out` if given. `checkpoint` is the training
    checkpoint (as in `train_model`); a record covers a whole run, so it must not exist yet (no resuming).
    `snapshots` (default: `Snapshots(name, snapshot_steps(steps))`), `limit` and `batch_size` are for tests.
    `note` says what the run is (e.g. which command made it), for whoever reads the record.
    """
    if checkpoint is not None and Path(checkpoint).exists():
        raise ValueError(f"{checkpoint} exists: a record covers a whole run from step 0, so it cannot resume one. "
                         "Give a new checkpoint path, or delete the old checkpoint first.")
    snapshots = snapshots or Snapshots(name, snapshot_steps(steps), seed=0)
    start = time.time()
    model, history = course.train_model(name, steps=steps, checkpoint=checkpoint, device=device, seed=seed,
                                        limit=limit, batch_size=batch_size, progress=progress, callback=snapshots)
    seconds = time.time() - start
    taken = sorted(snapshots.taken)
    recipe = course.check_name(name)
    record = {
        "model_name": name, "steps": steps, "seed": seed, "batch_size": batch_size or recipe.batch_size,
        "n_train": limit or 60_000,
        "history": {"step": torch.tensor(history["step"], dtype=torch.int32),
                    "loss": torch.tensor(history["loss"], dtype=torch.float32),
                    "lr": torch.tensor(history["lr"], dtype=torch.float32)},
        "snapshot_steps": torch.tensor(taken, dtype=torch.int64),
        "snapshots": torch.stack([snapshots.taken[s] for s in taken]),
        "snapshot_labels": snapshots.labels,
        "inputs": {k: to_uint8(v) for k, v in snapshots.inputs.items()} if snapshots.inputs else None,
        "sampler": snapshots.sampler,
        "weights_sha256": weights_digest(model.unet.state_dict()),
        "note": note, "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "threads": torch.get_num_threads(), "torch_version": str(torch.__version__), "seconds": round(seconds, 1),
    }
    record["same_as_shipped"], record["note"] = compare_with_shipped(record)
    if out is not None:
        save_checkpoint({"kind": "training-record", **record}, out)
    return model, history, record


def compare_with_shipped(record: dict) -> tuple[bool, str]:
    """Whether the record's final EMA weights are the shipped checkpoint's (in fp16), and its note saying so."""
    name, note = record["model_name"], record["note"].split(" || ")[0]
    path = course.shipped_checkpoint(name)
    shipped = weights_digest(load_checkpoint(path, name)["ema"]) if path.exists() else None
    same = shipped == record["weights_sha256"]
    if same:
        return True, f"{note} || its final EMA weights are those of the shipped {path.name}: the run that made them"
    return False, (f"{note} || a run of the same recipe and seed on {record['machine']} with {record['threads']} "
                   f"thread(s), not the run that made the shipped weights: its final EMA weights differ from the "
                   f"shipped {path.name} (floating-point results differ between CPUs and thread counts)")


def load_record(name_or_path) -> dict:
    """A training record: the shipped one of course model `name` ("denoiser", "ddpm", "cond"), or a file."""
    path = shipped_record(name_or_path) if name_or_path in RECORDED else Path(name_or_path)
    if not path.exists():
        raise CheckpointError(f"no training record {str(name_or_path)!r}: the course ships the records of "
                              f"{', '.join(RECORDED)}; or pass the path of a file made by `diffusionlab train MODEL "
                              "--steps N --record FILE`")
    record = load_checkpoint(path)
    if record.get("kind") != "training-record":
        raise CheckpointError(f"{path} is a checkpoint, not a training record (made by `diffusionlab train "
                              "MODEL --record FILE` or records.record_training)")
    return record
