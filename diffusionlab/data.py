"""MNIST, loaded offline from the copy vendored in `data/mnist/` (lesson 1 onwards).

The four files are the original IDX files (gzipped). Pixels are scaled to [-1, 1], the range
every model and sampler in the course works in: a sampler that clips to [-1, 1] must see data
in [-1, 1] too. Use `to_unit` to go back to [0, 1] for display.

Also here: `load_image`, which turns any picture a student uploads or draws into a 28x28 digit.
"""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "mnist"
FILES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}
_verified: set[Path] = set()  # files whose checksum was checked in this process


class DataFileError(RuntimeError):
    """A data file is missing or damaged."""


def _restore_hint(data_dir: Path) -> str:
    return (
        f"Restore it with `git checkout -- data/mnist` in the course folder, or re-clone the course. "
        f"(Looked in {data_dir}.)"
    )


def _expected_sha256(data_dir: Path) -> dict[str, str]:
    sums = data_dir / "SHA256SUMS"
    if not sums.exists():
        raise DataFileError(f"Checksum file {sums} is missing. " + _restore_hint(data_dir))
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            out[name.lstrip("*")] = digest
    return out


def _read_idx(path: Path, data_dir: Path) -> np.ndarray:
    """Read one gzipped IDX file (checksum verified once per process)."""
    if not path.exists():
        raise DataFileError(f"MNIST file {path.name} is missing. " + _restore_hint(data_dir))
    raw = path.read_bytes()
    if path not in _verified:
        expected = _expected_sha256(data_dir).get(path.name)
        if hashlib.sha256(raw).hexdigest() != expected:
            raise DataFileError(
                f"MNIST file {path.name} is corrupt (its SHA-256 does not match SHA256SUMS). "
                + _restore_hint(data_dir)
            )
        _verified.add(path)
    data = gzip.decompress(raw)
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load_mnist(split: str = "train", data_dir: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (images, labels): images float32 (N, 1, 28, 28) in [-1, 1], labels int64 (N,).

    split: "train" (60,000 images) or "test" (10,000 images).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    data_dir = Path(data_dir) if data_dir is not None else DATA_DIR
    images = _read_idx(data_dir / FILES[(split, "images")], data_dir)
    labels = _read_idx(data_dir / FILES[(split, "labels")], data_dir)
    x = torch.from_numpy(images.copy()).float().div_(127.5).sub_(1.0).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.from_numpy(labels.copy()).long()  # (N,)
    return x, y


def mnist_loader(
    split: str = "train",
    batch_size: int = 128,
    shuffle: bool = True,
    limit: int | None = None,
    generator: torch.Generator | None = None,
    data_dir: str | Path | None = None,
) -> DataLoader:
    """A DataLoader over MNIST in [-1, 1], yielding (x0, y) batches. `limit` keeps the first N images."""
    x, y = load_mnist(split, data_dir)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=shuffle)


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Map images from the model range [-1, 1] to display range [0, 1] (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def load_image(source, size: int = 28, invert: bool | None = None) -> torch.Tensor:
    """Turn any picture into a digit the models understand: (1, 1, size, size) in [-1, 1].

    source: a file path, raw bytes (for example from an upload widget), a PIL image or a numpy array.
    The picture is converted to grayscale, centre-cropped to a square and resized. MNIST digits are
    white on black; a picture with a light background (ink on paper) is inverted, unless `invert`
    says otherwise.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        img = source
    elif isinstance(source, np.ndarray):
        arr = source.astype(np.float64)
        if arr.max() <= 1.0:
            arr = arr * 255
        img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    else:
        try:
            img = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
            img.load()
        except (UnidentifiedImageError, OSError) as err:
            name = "the uploaded data" if isinstance(source, (bytes, bytearray)) else repr(str(source))
            why = "it is not in an image format PIL knows" if isinstance(err, UnidentifiedImageError) else str(err)
            raise ValueError(f"Could not read {name} as an image ({why}). Use a PNG, JPEG or similar file.") from None
    if img.mode in ("RGBA", "LA", "P"):  # paint transparent pixels white, like paper
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    img = img.convert("L")
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)  # (size, size) in [0, 1]
    if invert is None:
        border = torch.cat([x[0], x[-1], x[:, 0], x[:, -1]])
        invert = bool(border.mean() > 0.5)
    if invert:
        x = 1 - x
    return (x * 2 - 1).view(1, 1, size, size)
