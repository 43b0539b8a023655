#!/usr/bin/env python3
"""Fixture for `Preprocess` (predict / eval preprocessing) against timm's evaluation transform.

Writes tests/fixtures/preprocess/: an RGB PNG with edges, gradients and noise (131x97, so both
sides are resized and the crop offsets round), the same as a JPEG, and for each case of CASES timm's
`create_transform(...)` output on it as raw little-endian float32 (`case{i}.f32`, CHW), with
the cases in `cases.json`. The test `preprocessing_equals_timms` compares them.

Usage (needs timm, torch, numpy, Pillow): python crates/cnnzoo-interop/reference/preprocess_fixture.py
"""

import json
import pathlib

import numpy as np
import timm
from PIL import Image
from timm.data import create_transform

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/preprocess"
CASES = [
    {"size": 64, "interpolation": "bicubic", "crop_pct": 0.95,
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    {"size": 64, "interpolation": "bilinear", "crop_pct": 0.875,
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    {"size": 48, "interpolation": "bicubic", "crop_pct": 0.875,
     "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    {"size": 160, "interpolation": "bicubic", "crop_pct": 1.0,
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    {"size": 64, "interpolation": "bilinear", "crop_pct": 0.875,
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "image": "image.jpg"},
    {"size": 64, "interpolation": "bicubic", "crop_pct": 0.95,
     "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "image": "image.jpg"},
]


def image():
    rng = np.random.default_rng(0)
    h, w = 97, 131
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 120 * np.sin(x / 5.0) * np.cos(y / 7.0)
    g = 255 * (x / w)
    b = np.where((x // 16 + y // 16) % 2 == 0, 230.0, 20.0)
    img = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    img = image()
    img.save(OUT / "image.png")
    # A JPEG with 4:2:0 chroma (PIL's default), decoded by libjpeg-turbo on both sides.
    img.save(OUT / "image.jpg", quality=90)
    for i, c in enumerate(CASES):
        t = create_transform(input_size=(3, c["size"], c["size"]), is_training=False,
                             interpolation=c["interpolation"], crop_pct=c["crop_pct"],
                             mean=c["mean"], std=c["std"])
        x = t(Image.open(OUT / c.get("image", "image.png")).convert("RGB")).numpy().astype("<f4")
        (OUT / f"case{i}.f32").write_bytes(x.tobytes())
    (OUT / "cases.json").write_text(json.dumps({"timm": timm.__version__, "cases": CASES},
                                               indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
