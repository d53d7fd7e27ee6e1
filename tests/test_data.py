import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from diffusionlab import data


def test_mnist_shapes_and_range():
    x, y = data.load_mnist("test")
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert y.shape == (10000,) and y.dtype == torch.long
    assert x.min() == -1 and x.max() == 1
    assert set(y.tolist()) == set(range(10))


def test_train_statistics_match_readme():
    x, y = data.load_mnist("train")
    assert len(x) == 60000
    mean = ((x + 1) / 2).mean().item()
    assert abs(mean - 0.1307) < 1e-3
    assert torch.bincount(y).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_loader_batches():
    loader = data.mnist_loader("test", batch_size=32, limit=100, generator=torch.Generator().manual_seed(0))
    x0, y = next(iter(loader))
    assert x0.shape == (32, 1, 28, 28) and y.shape == (32,)


def test_bad_split():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load_mnist("validation")


def _copy_data(tmp_path):
    for f in data.DATA_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def test_missing_file_says_which_and_how(tmp_path):
    d = _copy_data(tmp_path)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(data.DataFileError, match="t10k-labels-idx1-ubyte.gz is missing.*git checkout"):
        data.load_mnist("test", data_dir=d)


def test_corrupt_file_detected(tmp_path):
    d = _copy_data(tmp_path)
    f = d / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(f.read_bytes())
    raw[1000] ^= 0xFF
    f.write_bytes(bytes(raw))
    with pytest.raises(data.DataFileError, match="t10k-images-idx3-ubyte.gz is corrupt"):
        data.load_mnist("test", data_dir=d)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_load_image_converts_any_picture():
    # a wide RGB picture, dark ink on white paper: grayscale, centre crop, resize, invert
    img = Image.new("RGB", (120, 60), (255, 255, 255))
    img.paste((0, 0, 0), (55, 10, 65, 50))  # a vertical stroke in the middle
    x = data.load_image(_png(img))
    assert x.shape == (1, 1, 28, 28)
    assert x.min() >= -1 and x.max() <= 1
    assert x[0, 0, 0, 0] < -0.9  # background is black, like MNIST
    assert x[0, 0, 14, 14] > 0.5  # the stroke is white


def test_load_image_rgba_and_arrays():
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    assert data.load_image(rgba).shape == (1, 1, 28, 28)
    arr = np.zeros((50, 30))
    assert data.load_image(arr).shape == (1, 1, 28, 28)


def test_load_image_rejects_non_images_clearly(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("not a picture")
    with pytest.raises(ValueError, match="Could not read .*notes.txt.* as an image"):
        data.load_image(f)
