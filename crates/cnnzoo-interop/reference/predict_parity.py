#!/usr/bin/env python3
"""`cnnzoo predict` against timm's own pipeline on a real JPEG: class probabilities.

For each tag (a bicubic one and a bilinear one): a ResNet-50 with random weights and BatchNorm
statistics, its classifier scaled so the logits on the image have a standard deviation of
about 3 (like a trained model's), saved as a `.pth`; then `cnnzoo predict --model <tag>
--weights model.pth --json --top 1000` (preprocessing from the tag's pretrained_cfg) and timm
(`resolve_data_config` + `create_transform` of the same tag, PIL decode) give probabilities
for the same image. Prints and writes the largest difference.

The image is scikit-image's `chelsea` photograph (a cat, bundled with the package) saved as a
JPEG, or --image.

Usage (needs torch, timm, numpy, Pillow, scikit-image; a built cnnzoo binary):
    python crates/cnnzoo-interop/reference/predict_parity.py --cnnzoo target/debug/cnnzoo \
        --out results/predict_parity.md
"""

import argparse
import datetime
import json
import pathlib
import subprocess
import tempfile

import numpy as np
import timm
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config

from timm_roundtrip import randomise_bn

TAGS = ["resnet50.a1_in1k", "resnet50.tv_in1k"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cnnzoo", default="target/debug/cnnzoo")
    ap.add_argument("--image")
    ap.add_argument("--out", default="results/predict_parity.md")
    args = ap.parse_args()
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        image = args.image
        if image is None:
            import skimage.data
            image = tmp / "chelsea.jpg"
            Image.fromarray(skimage.data.chelsea()).save(image, quality=90)
        for tag in TAGS:
            model = timm.create_model(tag, pretrained=False).eval()
            randomise_bn(model, gen)
            cfg = resolve_data_config({}, model=model)
            x = create_transform(**cfg)(Image.open(image).convert("RGB")).unsqueeze(0)
            with torch.no_grad():
                logits = model(x)
                model.fc.weight.mul_(3.0 / float(logits.std()))
                model.fc.bias.zero_()
                logits = model(x)
            ref = torch.softmax(logits, -1)[0].numpy()
            pth = tmp / "model.pth"
            torch.save(model.state_dict(), pth)
            done = subprocess.run(
                [args.cnnzoo, "predict", "--model", tag, "--weights", str(pth), "--json",
                 "--top", "1000", str(image)], capture_output=True, text=True, check=True)
            ours = np.zeros(1000)
            for g in json.loads(done.stdout)[0]["top"]:
                ours[g["index"]] = g["probability"]
            diff = float(np.abs(ours - ref).max())
            rows.append((tag, cfg["interpolation"], cfg["crop_pct"], float(logits.std()), diff,
                         float(ref.max())))
            print(f"{tag}: {cfg['interpolation']}, max |p_cnnzoo - p_timm| = {diff:.1e}")
    lines = [
        "# predict vs timm on a real JPEG",
        "",
        f"Command: `python crates/cnnzoo-interop/reference/predict_parity.py --cnnzoo "
        f"{args.cnnzoo} --out {args.out}`",
        "",
        f"Measured {datetime.date.today()}, timm {timm.__version__}, torch {torch.__version__}. "
        "Image: scikit-image's `chelsea` photograph (451x300) saved as JPEG (quality 90), "
        "decoded by PIL for timm and by the `image` crate for cnnzoo. ResNet-50 with random "
        "weights and BatchNorm statistics, classifier scaled to logits of standard deviation 3; "
        "preprocessing from each tag's pretrained_cfg on both sides.",
        "",
        "| tag | interpolation | crop_pct | logit std | max abs probability difference | top probability |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {t} | {i} | {c} | {s:.1f} | {d:.1e} | {p:.3f} |" for t, i, c, s, d, p in rows]
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
