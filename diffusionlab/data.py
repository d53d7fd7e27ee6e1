"""MNIST, loaded offline from the copy vendored in `data/mnist/` (lesson 1 onwards).

The four files are the original IDX files (gzipped). Pixels are scaled to [-1, 1], the range
every model and sampler in the course works in: a sampler that clips to [-1, 1] must see data
in [-1, 1] too. Use `to_unit` to go back to [0, 1] for display.

Also here: `load_image`, which turns any picture a student uploads or draws into a 28x28 digit.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import numbers
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

COURSE_ROOT = Path(__file__).resolve().parent.parent  # the course folder: a clone holds data/, notebooks/, pyproject.toml
DATA_DIR = COURSE_ROOT / "data" / "mnist"
HANDWRITTEN_DIR = DATA_DIR.parent / "handwritten"  # scanned handwritten digits to edit in lesson 6 (its README: source, licence)
FILES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}
_verified: set[Path] = set()  # files whose checksum was checked in this process


class DataFileError(RuntimeError):
    """A data file is missing or damaged."""


def not_in_a_clone_hint() -> str:
    """Why the course's files are missing when the package was installed without its folder (a plain
    `pip install .`, or from a git URL): "" when it runs from a clone."""
    if (COURSE_ROOT / "pyproject.toml").exists():
        return ""
    return (f" diffusionlab runs from {COURSE_ROOT}, which is not the course folder: the package reads MNIST, the "
            "shipped models and the playground from the clone's data/ and notebooks/, which a plain `pip install` "
            "does not copy. Install it editable from a clone of the course instead: `pip install -e .` in the clone "
            "(the README's first command).")


def _restore_hint(data_dir: Path) -> str:
    not_a_clone = not_in_a_clone_hint()
    if not_a_clone:
        return not_a_clone.strip() + f" (Looked in {data_dir}.)"
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


def _open_image(source):
    """A PIL image from a path, bytes (bytearray, or the memoryview an ipywidgets 8 upload holds), a file
    object, a PIL image or a numpy array (H, W), (H, W, 3) or (H, W, 4), in [0, 1] or [0, 255]."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        return source
    if isinstance(source, np.ndarray):
        arr = source.astype(np.float64)
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise ValueError(f"An image array must be (H, W), (H, W, 3) or (H, W, 4); got shape {source.shape}.")
        if arr.size and arr.max() <= 1.0:
            arr = arr * 255
        arr = arr.clip(0, 255).astype(np.uint8)
        return Image.fromarray(arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr)
    raw = isinstance(source, (bytes, bytearray, memoryview))
    if not (raw or isinstance(source, (str, os.PathLike)) or hasattr(source, "read")):
        hint = " (a tensor: pass tensor.squeeze().cpu().numpy(), (H, W) in [0, 1])" if torch.is_tensor(source) else ""
        raise TypeError(f"load_image reads a file path, bytes, a file object, a PIL image or a numpy array, not a "
                        f"{type(source).__name__}{hint}")
    try:
        img = Image.open(io.BytesIO(bytes(source)) if raw else source)
        img.load()
    except (UnidentifiedImageError, OSError) as err:
        name = "the uploaded data" if raw else repr(str(source))
        why = "it is not in an image format PIL knows" if isinstance(err, UnidentifiedImageError) else str(err)
        raise ValueError(f"Could not read {name} as an image ({why}). Use a PNG, JPEG or similar file.") from None
    return img


def _gray(img) -> np.ndarray:
    """Grayscale in [0, 1], (H, W). Transparent pixels become the background of the opaque ones' opposite
    shade, so that ink stays ink: white strokes on transparency are laid on black, dark strokes on white."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba, dtype=np.float64)[..., 3] / 255.0
        gray = np.asarray(rgba.convert("L"), dtype=np.float64) / 255.0
        if alpha.min() < 1.0:
            shade = (gray * alpha).sum() / max(alpha.sum(), 1e-8)  # the mean shade of what is drawn
            background = 0.0 if shade > 0.5 else 1.0
            return alpha * gray + (1 - alpha) * background
        return gray
    if img.mode in ("I", "I;16", "I;16B", "F"):  # 16-bit or float pictures: their own range
        gray = np.asarray(img, dtype=np.float64)
        return gray / gray.max() if gray.max() > 0 else gray
    return np.asarray(img.convert("L"), dtype=np.float64) / 255.0


def _digit_mask(strokes: np.ndarray) -> np.ndarray:
    """Which pixels belong to the digit: the connected strokes (8-neighbours), without those that touch the
    picture's edge (a table, a shadow, the sheet's border) unless only specks are left inside, nor specks
    smaller than a twentieth of the largest stroke kept. strokes: (H, W) bool. Returns a (H, W) bool mask,
    grown by a pixel so that the strokes' soft edges stay."""
    from scipy import ndimage

    labels, n = ndimage.label(strokes, structure=np.ones((3, 3)))
    sizes = dict(zip(range(1, n + 1), ndimage.sum(strokes, labels, index=np.arange(1, n + 1))))  # pixels per stroke
    edge = set(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]).tolist())
    inside = [k for k in sizes if k not in edge]
    candidates = inside if inside and max(sizes[k] for k in inside) >= max(sizes.values()) / 20 else list(sizes)
    largest = max(sizes[k] for k in candidates)
    keep = [k for k in candidates if sizes[k] >= largest / 20]
    return ndimage.binary_dilation(np.isin(labels, keep), structure=np.ones((3, 3)))


def _place_like_mnist(ink: np.ndarray, size: int) -> np.ndarray:
    """As MNIST was made: scale the digit to fit a (20/28 size) box keeping its aspect, then put its centre
    of mass at the centre of a size x size field. ink: (h, w) in [0, 1], already cropped to the digit."""
    import torch.nn.functional as F

    box = round(size * 20 / 28)
    h, w = ink.shape
    scale = box / max(h, w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    t = torch.from_numpy(ink).float()[None, None]  # (1, 1, h, w)
    digit = F.interpolate(t, size=(new_h, new_w), mode="bilinear", antialias=True, align_corners=False)[0, 0]
    digit = digit.clamp(0, 1).numpy()
    mass = digit.sum()
    rows, cols = np.arange(new_h), np.arange(new_w)
    cy = (digit.sum(1) * rows).sum() / mass if mass > 0 else (new_h - 1) / 2
    cx = (digit.sum(0) * cols).sum() / mass if mass > 0 else (new_w - 1) / 2
    top = int(np.clip(round(size / 2 - cy), 0, size - new_h))  # MNIST's centres of mass are at (14, 14)
    left = int(np.clip(round(size / 2 - cx), 0, size - new_w))
    out = np.zeros((size, size), dtype=np.float32)
    out[top : top + new_h, left : left + new_w] = digit
    return out


def load_image(source, size: int = 28, invert: bool | None = None) -> torch.Tensor:
    """Turn any picture into a digit the models understand: (1, 1, size, size) in [-1, 1], white on black.

    source: a file path, raw bytes (also the `memoryview` an ipywidgets 8 upload holds), a file object, a PIL
    image or a numpy array. The steps:
    1. turn the picture upright as its EXIF orientation says (phone photos) and make it grayscale; transparent
       pixels take the opposite shade of what is drawn, so white ink on transparency stays ink;
    2. decide which shade is ink: the background is the commonest shade (the median), so dark ink on light
       paper, the usual photo, is inverted to white on black like MNIST (`invert=True` or `False` forces it);
       then stretch the contrast so that the paper is 0 and the ink 1;
    3. find the digit, wherever it is: the bounding box of its strokes and their soft edges (strokes that touch
       the picture's edge, such as a table around the sheet, and small specks are left out);
    4. place it as MNIST was made (LeCun et al. 1998): scaled to fit a 20x20 box keeping its aspect, its centre
       of mass at the centre of the 28x28 field.
    Warns (and returns an empty field) when the picture holds nothing digit-like: blank, or too small.
    """
    import warnings

    from PIL import ImageOps

    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size is the side of the square result in pixels, a whole number of at least 1 (28 for the "
                         f"course's models), got {size!r}")
    img = ImageOps.exif_transpose(_open_image(source))
    if max(img.size) > 1024:  # a phone photo: the digit survives, the work shrinks
        img = img.copy()
        img.thumbnail((1024, 1024))
    x = _gray(img)  # (H, W) in [0, 1]
    background = np.median(x)  # the paper: most of the picture
    if invert is None:
        invert = background >= (x.min() + x.max()) / 2  # light paper: dark ink
    if invert:
        x, background = 1 - x, 1 - background
    ink_level = x.max()
    if min(x.shape) < 4 or ink_level - background < 0.1:
        why = (f"it is only {x.shape[1]}x{x.shape[0]} pixels" if min(x.shape) < 4
               else "it is blank (no shade stands out from the background)")
        warnings.warn(f"load_image found no digit in the picture: {why}. Use a picture of one digit, drawn darker "
                      "(or lighter) than its background, at least about 20x20 pixels.", stacklevel=2)
        return torch.full((1, 1, size, size), -1.0)
    ink = np.clip((x - background) / (ink_level - background), 0, 1)  # the paper 0, the ink 1
    ink = ink * _digit_mask(ink > 0.3)  # the digit's strokes, with a pixel of margin for their soft edges
    rows, cols = np.nonzero(ink > 0.05)
    digit = _place_like_mnist(ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1], size)
    return (torch.from_numpy(digit) * 2 - 1).view(1, 1, size, size)
