"""Training: one loop for all of the course's models (lessons 1-3, 7, 9); the losses are in `losses.py`.

The loop (`train`): AdamW, linear warm-up then cosine decay of the learning rate, an exponential
moving average (EMA) of the weights that is used for sampling, mixed precision where it helps,
a tqdm progress bar with the live loss, and atomic checkpoints from which an interrupted run
resumes exactly: every step's randomness (which images, which t, which noise) is drawn from a
generator seeded by (seed, step), so the resumed run replays the same steps as an uninterrupted one.
Ctrl-C saves the state of the last finished step before it stops the run.
"""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
import signal
import threading
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from .checkpoints import load_training_state, save_checkpoint
from .utils import autocast_dtype


def lr_at(step: int, total_steps: int, lr: float, warmup: int) -> float:
    """Linear warm-up for `warmup` steps, then cosine decay to 10% of lr at total_steps."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1 - decay)


def _step_generator(seed: int, step: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)


def check_budget(steps: int | None, minutes: float | None) -> None:
    """A training budget is `steps`, `minutes` or both; say clearly what is wrong with a bad one."""
    if steps is None and minutes is None:
        raise ValueError("give a training budget: steps=... or minutes=...")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1):
        raise ValueError(f"steps must be a whole number of optimiser steps, at least 1, got {steps!r}")
    if minutes is not None and minutes <= 0:
        raise ValueError(f"minutes must be positive, got {minutes}")


_orders: dict = {}


def _amp_dtype(amp, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `amp`: None picks it (`autocast_dtype`), True forces it (bf16 where none helps),
    False turns it off, and a dtype (torch.float16 or torch.bfloat16) is used as given."""
    if isinstance(amp, torch.dtype):
        if amp not in (torch.float16, torch.bfloat16):
            raise ValueError(f"amp must be None, True, False, torch.float16 or torch.bfloat16, got {amp}")
        return amp
    if amp is False:
        return None
    dtype = autocast_dtype(device)
    return dtype if dtype is not None or amp is None else torch.bfloat16


@contextlib.contextmanager
def _finish_before_interrupt():
    """Ctrl-C inside this block takes effect at its end, so a step's updates are never left half done."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield  # signal handlers can only be set from the main thread (and restored if set from Python)
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _epoch_order(seed: int, epoch: int, n: int, device) -> torch.Tensor:
    """The random order of the n images in `epoch`, a function of (seed, epoch) alone."""
    key = (seed, epoch, n, str(device))
    if key not in _orders:
        _orders.clear()  # keep only the current epochs
        _orders[key] = torch.randperm(n, generator=_step_generator(seed, -1 - epoch, "cpu")).to(device)
    return _orders[key]


def train(
    model: torch.nn.Module,
    loss_fn: Callable,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    steps: int | None = None,
    minutes: float | None = None,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    warmup: int = 100,
    ema_decay: float = 0.999,
    seed: int = 0,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 500,
    resume: bool = True,
    metadata: dict | None = None,
    amp: bool | torch.dtype | None = None,
    progress: bool = True,
    stop_after: int | None = None,
    callback: Callable[[int, torch.nn.Module], None] | None = None,
):
    """Train `model` on (images, labels) with `loss_fn(model, x0, y, generator) -> loss`.

    Budget: `steps`, or `minutes` (the step count is then estimated from the speed of the first
    steps, so the learning rate still decays to the end of the budget). Both: whichever ends first.
    The budget is the run's total: steps count from step 0, and minutes count the training time of
    every session that trained this checkpoint (it is stored in the checkpoint).
    checkpoint:  where to save (atomically) every `checkpoint_every` steps, at the end and on Ctrl-C; if it
                 exists and resume=True, training continues from it (see Resuming)
    metadata:    extra entries stored in the checkpoint (model name, config, schedule, ...)
    amp:         mixed precision; None picks it where it is measured to help (`autocast_dtype`), True forces
                 it, False turns it off, torch.float16 or torch.bfloat16 uses that dtype. fp16 scales the
                 loss (GradScaler), and the scaler's state is checkpointed too.
    stop_after:  stop abruptly after this many steps, without a final save, as a crash would (tests)
    callback:    `callback(step, ema)` after every finished step (step counts from 1), to watch the run: e.g.
                 `records.py` samples from the EMA weights at a few steps. It must not change `ema`; training
                 draws its randomness from its own generators, so a callback that samples leaves the run unchanged.
    Returns (ema_model, history) with history = {"step": [...], "loss": [...], "lr": [...]} for a loss curve.

    Resuming. With the budget of the interrupted run, the resumed run is bit-exact with an uninterrupted
    one (same weights, EMA, optimizer and GradScaler state, same history). With a new budget (say
    steps=4 after steps=1), training continues to the new budget, and from the step where it resumes the
    learning rate follows the new budget's schedule (`lr_at(step, new_total)`). The steps already taken
    followed the old schedule, so the result is bit-exact with an uninterrupted run of the new budget
    exactly when both schedules gave those steps the same rate: when they were all in the warm-up
    (resumed at step <= warmup), where the rate does not depend on the budget. Resumed later, the old
    schedule had already decayed, and the rate rises again to the new schedule's value. The checkpoint's
    seed is kept (all the randomness derives from it); a different `seed` is ignored, with a warning.
    A checkpoint that already reached the budget trains no further.
    """
    check_budget(steps, minutes)
    if labels is not None and len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    device = next(model.parameters()).device
    images = images.to(device)
    labels = labels.to(device) if labels is not None else None
    n = len(images)
    if n < batch_size:
        raise ValueError(f"batch_size {batch_size} is larger than the {n} training images: give a batch of at most "
                         f"{n} (`--batch-size` on the command line) or more training images")

    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    dtype = _amp_dtype(amp, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    budget = {"steps": steps, "minutes": minutes}
    step, total_steps, history = 0, steps, {"step": [], "loss": [], "lr": []}
    seconds = 0.0  # training time of the earlier sessions
    if checkpoint is not None and resume and Path(checkpoint).exists():
        state = load_training_state(checkpoint, (metadata or {}).get("model_name"), map_location=device)
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        if scaler.is_enabled() and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        step, history, seconds = state["step"], state["history"], state.get("seconds", 0.0)
        history.setdefault("lr", [])
        if state.get("budget") == budget:  # the same budget: the same schedule (estimated, for minutes)
            total_steps = state["total_steps"]
        if seed != state["seed"]:
            warnings.warn(f"seed={seed} was given, but {checkpoint} was trained with seed={state['seed']}: "
                          f"resuming with seed={state['seed']}, so that the run stays exact "
                          f"(resume=False starts afresh with seed={seed})", stacklevel=2)
            seed = state["seed"]
    if minutes is not None and seconds >= minutes * 60:
        total_steps = step  # the time budget is used up

    def save():
        if checkpoint is not None:
            save_checkpoint({**(metadata or {}), "model": model.state_dict(), "ema": ema.state_dict(),
                             "optimizer": opt.state_dict(), "scaler": scaler.state_dict(), "step": step,
                             "total_steps": total_steps, "budget": budget, "seed": seed, "history": history,
                             "seconds": seconds + time.time() - start}, checkpoint)

    start = time.time()
    start_step = step
    bar = tqdm(total=total_steps, initial=step, desc="training", disable=not progress)
    model.train()
    try:
        while total_steps is None or step < total_steps:
            g = _step_generator(seed, step, device)
            # which images: a fresh random permutation each epoch, from (seed, epoch)
            epoch, pos = divmod(step * batch_size, n)
            idx = _epoch_order(seed, epoch, n, device)[pos : pos + batch_size]
            if len(idx) < batch_size:  # the batch runs into the next epoch's order
                idx = torch.cat([idx, _epoch_order(seed, epoch + 1, n, device)[: batch_size - len(idx)]])
            x0, y = images[idx], (labels[idx] if labels is not None else None)

            step_lr = lr_at(step, total_steps or 10**9, lr, warmup)
            for group in opt.param_groups:
                group["lr"] = step_lr
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = loss_fn(model, x0, y, g)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            with _finish_before_interrupt():  # the weights, EMA, step and history change together
                scaler.step(opt)
                scaler.update()
                ema_update(ema, model, min(ema_decay, (1 + step) / (10 + step)))
                step += 1
                history["step"].append(step)
                history["loss"].append(loss.item())
                history["lr"].append(step_lr)

            if callback is not None:
                callback(step, ema)
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{sum(history['loss'][-50:]) / len(history['loss'][-50:]):.4f}")
            if minutes is not None:
                elapsed = seconds + time.time() - start
                if step - start_step == 10:
                    t10 = elapsed  # the first steps are slow (memory allocation, warm-up): time from here
                if total_steps is None and step - start_step == 110:  # estimate the budget in steps
                    estimate = step + int(100 * (minutes * 60 - elapsed) / (elapsed - t10))
                    total_steps = estimate if steps is None else min(steps, estimate)
                    bar.total = total_steps
                    bar.refresh()
                if elapsed > minutes * 60:
                    total_steps = step
            if step % checkpoint_every == 0:
                save()
            if stop_after is not None and step >= stop_after:
                bar.close()
                return ema, history
    except KeyboardInterrupt:
        bar.close()
        if checkpoint is None:
            raise KeyboardInterrupt(f"training interrupted at step {step}; nothing was saved, as no checkpoint "
                                    "path was given (the model passed in holds the weights of that step)") from None
        save()
        raise KeyboardInterrupt(f"training interrupted at step {step}; saved {checkpoint}: train again with "
                                "the same checkpoint and budget to resume exactly") from None
    bar.close()
    if step > start_step:
        save()
    model.eval()
    return ema, history
