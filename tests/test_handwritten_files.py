"""data/handwritten/: the scanned handwritten digits of lesson 6 are what their README says, and load as digits."""

import re
from pathlib import Path

import torch
from PIL import Image

from diffusionlab.data import load_image

FOLDER = Path(__file__).resolve().parent.parent / "data" / "handwritten"
FILES = sorted(p for p in FOLDER.iterdir() if p.suffix in (".png", ".jpg"))


def test_the_files_are_of_several_sizes_and_modes_as_named():
    assert len(FILES) >= 4
    readme = (FOLDER / "README.md").read_text()
    seen = set()
    for path in FILES:
        digit, width, height, mode = re.fullmatch(r"uci_(\d)_(\d+)x(\d+)_(\w+)", path.stem).groups()
        image = Image.open(path)
        assert image.size == (int(width), int(height)) and image.mode == mode, (path.name, image.size, image.mode)
        assert f"`{path.name}` | {digit} |" in readme
        seen.add((image.size, image.mode))
    assert len({mode for _, mode in seen}) >= 3 and len({size for size, _ in seen}) >= 3
    assert any(w != h for (w, h), _ in seen), "one picture should not be square"


def test_every_file_loads_as_a_digit():
    for path in FILES:
        x = load_image(path)
        assert x.shape == (1, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
        ink = (x > 0).float().mean().item()
        assert 0.05 < ink < 0.5, f"{path.name}: {ink:.0%} of the 28x28 field is ink"
        assert torch.equal(x[..., :2, :], torch.full_like(x[..., :2, :], -1.0)), f"{path.name}: not centred like MNIST"
