"""Seeds, devices, mixed precision and the fast/full budget switch (used from lesson 1 on)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a torch.Generator seeded the same (pass it as generator=)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> torch.Generator | None:
    """A generator on `device` seeded with `seed`, or None (fresh randomness) for seed=None."""
    if seed is None:
        return None
    return torch.Generator(device=device).manual_seed(int(seed))


def available_devices() -> list[str]:
    """The devices torch can use here, e.g. ["cpu"] or ["cpu", "cuda"] (["cpu", "cuda:0", "cuda:1"] with two GPUs)."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        devices += ["cuda"] if n == 1 else [f"cuda:{i}" for i in range(n)]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def get_device(name: str | None = None) -> torch.device:
    """The best device available (CUDA, then Apple MPS, then CPU), or the one named ("cpu", "cuda", "mps")."""
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    here = f"the devices here are: {', '.join(available_devices())} (or auto, the best of them)"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {name!r}; {here}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but no CUDA GPU is available; {here}")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} was asked for, but there are only {torch.cuda.device_count()} GPUs; {here}")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} was asked for, but Apple MPS is not available; {here}")
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device {name!r} is not supported by the course; {here}")
    return device


def _cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype that speeds training up on `device`, or None for plain float32.

    bf16 on CPUs with bf16 instructions (measured on a 2-core Xeon with AMX: about 1.7x faster training,
    1.67x per step and 1.78x images/s, benchmarks/RESULTS.md)
    and on recent GPUs; fp16 on older GPUs such as Colab's T4.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    if device.type == "cpu" and _cpu_has_bf16():
        return torch.bfloat16
    return None


def course_mode() -> str:
    """ "full" on a GPU, "fast" on a CPU; the environment variable DIFFUSIONLAB_MODE=fast|full overrides."""
    mode = os.environ.get("DIFFUSIONLAB_MODE", "").strip().lower()
    if mode in ("fast", "full"):
        return mode
    if mode:
        raise ValueError(f"DIFFUSIONLAB_MODE must be 'fast' or 'full', got {mode!r}")
    return "full" if torch.cuda.is_available() else "fast"


def check_images(x, name: str = "x") -> None:
    """Raise a clear error unless x is a batch of images (B, C, H, W)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a batch of images (B, C, H, W), got {shape}; "
                         "for one image use x[None] or data.load_image(...)")
