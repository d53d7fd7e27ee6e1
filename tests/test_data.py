import io
import shutil

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

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
    with pytest.warns(UserWarning, match="no digit"):
        assert data.load_image(rgba).shape == (1, 1, 28, 28)
    arr = np.zeros((50, 30))
    arr[10:40, 12:16] = 1.0
    assert data.load_image(arr).shape == (1, 1, 28, 28)


def test_load_image_rejects_non_images_clearly(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("not a picture")
    with pytest.raises(ValueError, match="Could not read .*notes.txt.* as an image"):
        data.load_image(f)



@pytest.mark.parametrize("source, error, message", [
    (torch.rand(1, 28, 28), TypeError, r"not a Tensor \(a tensor: pass tensor.squeeze\(\).cpu\(\).numpy\(\)"),
    (42, TypeError, "load_image reads a file path, bytes, a file object, a PIL image or a numpy array, not a int"),
])
def test_load_image_names_the_sources_it_reads(source, error, message):
    with pytest.raises(error, match=message):
        data.load_image(source)


@pytest.mark.parametrize("size", [0, -3, 2.5])
def test_load_image_refuses_a_size_that_is_no_picture(size):
    with pytest.raises(ValueError, match=f"size is the side .* got {size}"):
        data.load_image(_seven(), size=size)

# --- Real pictures: where the digit is, which way up, which shade is ink -------------------------------------


def _seven(size=(60, 60), paper=255, ink=0, mode="L", offset=(0, 0), width=5):
    """A hand-drawn-like 7 (a top bar and a slanted stem) on a plain background; `offset` moves it."""
    img = Image.new(mode, size, paper)
    pen = ImageDraw.Draw(img)
    dx, dy = offset
    pen.line([(15 + dx, 12 + dy), (45 + dx, 12 + dy), (28 + dx, 50 + dy)], fill=ink, width=width)
    return img


def _ink_box(x: torch.Tensor) -> tuple[int, int]:
    """(height, width) of the ink's bounding box in a (1, 1, H, W) image in [-1, 1]."""
    rows, cols = torch.nonzero(x[0, 0] > 0).unbind(1)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def _centre_of_mass(x: torch.Tensor) -> tuple[float, float]:
    ink = (x[0, 0] + 1) / 2
    rows, cols = torch.arange(ink.shape[0]).float(), torch.arange(ink.shape[1]).float()
    return float((ink.sum(1) * rows).sum() / ink.sum()), float((ink.sum(0) * cols).sum() / ink.sum())


def test_load_image_finds_a_digit_near_the_edge_of_a_wide_picture():
    wide = Image.new("L", (400, 100), 255)
    wide.paste(_seven(), (5, 20))  # at the left edge: a centre crop would miss it
    x = data.load_image(_png(wide))
    assert x.max() > 0.5, "the digit was lost"
    height, width = _ink_box(x)
    assert 19 <= max(height, width) <= 21, (height, width)  # scaled to fit a 20x20 box, as MNIST was made
    cy, cx = _centre_of_mass(x)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5, (cy, cx)  # centred by mass in 28x28, as in MNIST


def test_load_image_puts_an_mnist_digit_back_where_it_was():
    """MNIST digits were made by the same steps, so a test digit (white on black, in [0, 1]) comes back almost
    unchanged."""
    x, _ = data.load_mnist("test")
    for digit in x[:50]:
        back = data.load_image(data.to_unit(digit[0]).numpy())
        assert (back[0, 0] - digit[0]).abs().mean() < 0.01


def test_load_image_honours_exif_orientation():
    upright = _seven()
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a phone stores a photo taken sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    stored.convert("RGB").save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    x = data.load_image(buf.getvalue())
    expected = data.load_image(_png(upright))
    sideways = data.load_image(_png(stored))
    assert (x - expected).abs().mean() < 0.05
    assert (sideways - expected).abs().mean() > 0.2  # the test can tell the two apart


def test_load_image_keeps_ink_on_a_transparent_background_either_shade():
    expected = data.load_image(_png(_seven()))  # black ink on white paper
    for ink in ((255, 255, 255, 255), (0, 0, 0, 255)):  # white ink, then black ink, on transparency
        drawn = _seven(paper=(0, 0, 0, 0), ink=ink, mode="RGBA")
        x = data.load_image(_png(drawn))
        assert (x - expected).abs().mean() < 0.05, f"ink {ink} on transparency"


def test_load_image_tells_ink_from_paper_by_the_commonest_shade():
    """A photo of grey paper with dark ink, its border darkened (a table around the sheet): still dark ink."""
    photo = _seven(size=(80, 80), paper=170, ink=40, offset=(10, 10))
    pen = ImageDraw.Draw(photo)
    pen.rectangle((0, 0, 79, 79), outline=20, width=4)
    x = data.load_image(_png(photo), size=28)
    expected = data.load_image(_png(_seven()))
    assert x[0, 0, 0, 0] < -0.9  # the background is black, like MNIST
    assert (x - expected).abs().mean() < 0.15


def test_load_image_warns_when_there_is_no_digit():
    with pytest.warns(UserWarning, match="no digit.*1x1 pixels"):
        x = data.load_image(_png(Image.new("L", (1, 1), 0)))
    assert x.shape == (1, 1, 28, 28) and (x == -1).all()
    with pytest.warns(UserWarning, match="no digit.*blank"):
        data.load_image(_png(Image.new("RGB", (200, 120), (240, 240, 230))))


def test_load_image_accepts_an_ipywidgets_upload():
    content = _png(_seven())
    x = data.load_image(memoryview(content))  # ipywidgets 8: value[0]["content"]
    assert torch.equal(x, data.load_image(content))
    assert torch.equal(x, data.load_image(io.BytesIO(content)))


def test_a_package_installed_without_the_course_folder_says_to_install_it_from_a_clone(tmp_path, monkeypatch):
    """As after a plain `pip install .`: the package's folder has no data/ and no pyproject.toml beside it."""
    from diffusionlab import course
    from diffusionlab.checkpoints import CheckpointError, load_checkpoint

    assert data.not_in_a_clone_hint() == ""  # the tests run from a clone
    monkeypatch.setattr(data, "COURSE_ROOT", tmp_path)
    with pytest.raises(data.DataFileError, match=r"not the course folder.*`pip install -e \.` in the clone"):
        data.load_mnist("test", data_dir=tmp_path / "data" / "mnist")
    with pytest.raises(CheckpointError, match=r"not the course folder.*`pip install -e \.` in the clone"):
        load_checkpoint(tmp_path / "data" / "checkpoints" / "text.pt", "text")
    monkeypatch.setattr(course, "CHECKPOINT_DIR", tmp_path / "data" / "checkpoints")
    with pytest.raises(CheckpointError, match=r"no shipped checkpoint.*not the course folder"):
        course.load("cond")
