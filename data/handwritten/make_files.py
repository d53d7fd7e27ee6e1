"""Write the pictures in this folder from scikit-learn's copy of the UCI handwritten digits (see README.md).

    pip download scikit-learn --no-deps -d /tmp/wheel && unzip -o -q /tmp/wheel/scikit_learn-*.whl \
        'sklearn/datasets/data/digits.csv.gz' -d /tmp/wheel
    python data/handwritten/make_files.py /tmp/wheel/sklearn/datasets/data/digits.csv.gz

Each picture is one scanned handwritten digit of that data set (8x8 blocks, each the count 0..16 of inked pixels
in a 4x4 block of the 32x32 scan), shown as dark ink on light paper, enlarged and saved in a different size and
mode, so that the lessons' `load_image` is tried on the kinds of file a student uploads.
"""

import gzip
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
# (row in digits.csv.gz, file name, size (width, height), how it is saved)
FILES = [
    (2, "uci_2_8x8_L.png", (8, 8), "L"),              # the data as it is: 8x8, 17 grey levels
    (3, "uci_3_96x96_L.png", (96, 96), "L"),          # grey, enlarged
    (5, "uci_5_120x160_RGB.jpg", (120, 160), "RGB"),  # blue ink on cream paper, a portrait JPEG
    (7, "uci_7_64x64_RGBA.png", (64, 64), "RGBA"),    # black ink on a transparent background
]


def main(csv_gz: str) -> None:
    rows = np.loadtxt(gzip.open(csv_gz, "rt"), delimiter=",")
    for row, name, size, mode in FILES:
        ink, label = rows[row, :64].reshape(8, 8) / 16.0, int(rows[row, 64])
        assert name.startswith(f"uci_{label}_"), (name, label)
        small = Image.fromarray(np.uint8(255 * ink))
        # enlarge the 8x8 blocks smoothly into the middle 80% of the sheet, keeping the digit's aspect
        side = int(0.8 * min(size)) if size != (8, 8) else 8
        big = np.asarray(small.resize((side, side), Image.BICUBIC), dtype=np.float64) / 255.0
        canvas = np.zeros((size[1], size[0]))
        top, left = (size[1] - side) // 2, (size[0] - side) // 2
        canvas[top:top + side, left:left + side] = big.clip(0, 1)
        if mode == "L":
            image = Image.fromarray(np.uint8(255 * (1 - canvas)))  # dark ink on white paper
        elif mode == "RGB":
            paper, pen = np.array([245, 238, 220]), np.array([30, 40, 150])
            image = Image.fromarray(np.uint8(paper + canvas[..., None] * (pen - paper)), "RGB")
        else:  # RGBA: black ink whose opacity is the ink, on nothing
            rgba = np.zeros((size[1], size[0], 4), np.uint8)
            rgba[..., 3] = np.uint8(255 * canvas)
            image = Image.fromarray(rgba, "RGBA")
        image.save(HERE / name, quality=90) if name.endswith(".jpg") else image.save(HERE / name)
        print(f"{name}: digit {label}, {image.size[0]}x{image.size[1]} {image.mode}")


if __name__ == "__main__":
    main(sys.argv[1])
