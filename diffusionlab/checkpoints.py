"""Saving and loading checkpoints safely.

Saving is atomic: the file is written next to its destination and renamed over it, so a run
killed mid-save leaves the previous checkpoint intact. Loading uses `weights_only=True`, which
refuses to run code hidden in a pickle: a checkpoint holds only tensors and plain values.

Two kinds of checkpoint: a training state, written by `train.train` (weights, EMA, optimizer, step, ...),
from which training resumes (`load_training_state`); and a weights-only file (the EMA weights and the
model's metadata, `course.export_weights`), the small file the course ships, for sampling only.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from .data import not_in_a_clone_hint

FORMAT = "diffusionlab-checkpoint-v1"
SAMPLED_MODELS = ("ddpm", "cond", "flow", "reflow", "text", "text-printed")  # the models of `diffusionlab sample`


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or for another model."""


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write `state` (tensors, numbers, strings, lists, dicts) to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"format": FORMAT, **state}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


DATA_FILES = {"reflow-pairs": "reflow's (noise, sample) pairs"}  # files in the checkpoint format that hold data


def train_command(model_name: str | None) -> str:
    """The command line that makes a checkpoint of `model_name`."""
    return {"classifier": "diffusionlab classifier", "text-printed": "diffusionlab train finetune",
            "reflow-pairs": "diffusionlab make-reflow-pairs"}.get(model_name, f"diffusionlab train {model_name or '<model>'}")


def load_checkpoint(path: str | Path, model_name: str | None = None, map_location="cpu") -> dict:
    """Load a checkpoint written by `save_checkpoint`; with `model_name`, check it is that model's."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist. Train one with `{train_command(model_name)}` or "
                              "pass the path of an existing one." + not_in_a_clone_hint())
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # torch's message advises weights_only=False, which is unsafe for a file of unknown origin
        raise CheckpointError(f"could not read {path}: it is not a valid diffusionlab checkpoint (corrupt, cut "
                              f"short, or another kind of file). Use a checkpoint saved by diffusionlab: train "
                              f"one with `{train_command(model_name)}`, or get the course's "
                              "shipped files again from the repository (data/checkpoints/).") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a diffusionlab checkpoint (no '{FORMAT}' marker).")
    if model_name is None:
        return state
    kind, held_name = state.get("kind"), state.get("model_name")  # kind: a data file (training pairs, a record)
    held = f"{kind!r} data" if kind else f"a {held_name!r} model" if held_name else "no model"
    if model_name in DATA_FILES and (kind or held_name != model_name):
        raise CheckpointError(f"{path} holds {held}, not {DATA_FILES[model_name]}; make them with "
                              f"`{train_command(model_name)}`")
    if model_name not in DATA_FILES and kind:
        what = f" (the record of a {held_name!r} run: records.load_record reads it)" if kind == "training-record" else ""
        raise CheckpointError(f"{path} holds {held}{what}, not a model's weights. Pass the checkpoint of a "
                              f"{model_name!r} model.")
    if held_name != model_name:
        raise CheckpointError(f"{path} holds {held}, but a {model_name!r} model was asked for. Pass the checkpoint "
                              f"of a {model_name!r} model.")
    return state


def load_training_state(path: str | Path, model_name: str | None = None, map_location="cpu") -> dict:
    """Load a checkpoint to resume training from: one saved by `train`, not a weights-only file."""
    state = load_checkpoint(path, model_name, map_location)
    if "model" not in state or "optimizer" not in state:
        name = state.get("model_name") or "<model>"
        command = ""  # the command line that uses these weights, for the models it serves
        if name in SAMPLED_MODELS:
            command = f" or `diffusionlab sample --model {name} --checkpoint {path}`"
        elif name == "pix2pix":
            command = f" or `diffusionlab edit --checkpoint {path} --input ... --instruction ...`"
        raise CheckpointError(
            f"{path} holds only a model's weights (a weights-only file, as the course ships in data/checkpoints/), "
            f"not a training state, so training cannot resume from it. To train from scratch, give another "
            f"checkpoint path; to use these weights, load them with diffusionlab.course.load({name!r}, "
            f"{str(path)!r}){command}.")
    return state
