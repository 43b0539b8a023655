#!/usr/bin/env python3
"""Writes Fashion-MNIST (or MNIST) IDX files as an ImageNet-layout image folder, so that the
networks that need larger inputs (Inception: at least 75x75) train on it through
`--dataset folder:OUT --image-size N`.

Usage: python bench/reference/idx_to_folder.py DATA_DIR OUT [--train N] [--test N]
Takes the first N images of each split (evenly spaced), one PNG per image:
OUT/train/<class>/<index>.png and OUT/val/<class>/<index>.png.
"""

import gzip
import pathlib
import sys

import numpy as np
from PIL import Image

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "ankle-boot"]


def read_idx(path):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def find(src, stem):
    for name in (stem, stem + ".gz"):
        if (src / name).is_file():
            return src / name
    sys.exit(f"{src}: no {stem}[.gz]")


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    src, out = pathlib.Path(args[0]), pathlib.Path(args[1])
    limits = {"train": None, "test": None}
    for flag in ("train", "test"):
        if f"--{flag}" in args:
            limits[flag] = int(args[args.index(f"--{flag}") + 1])
    for split, prefix, folder in (("train", "train", "train"), ("test", "t10k", "val")):
        images = read_idx(find(src, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(find(src, f"{prefix}-labels-idx1-ubyte"))
        n = limits[split] or len(images)
        picks = np.linspace(0, len(images) - 1, n).astype(int)
        for i in picks:
            d = out / folder / CLASSES[labels[i]]
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[i]).save(d / f"{i:05d}.png")
        print(f"{folder}: {n} images")


if __name__ == "__main__":
    main()
