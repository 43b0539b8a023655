#!/usr/bin/env python3
"""cnnzoo's ONNX exports under onnxruntime, for every registered ImageNet model.

For each model: build it in timm (torchvision for googlenet) with random weights and random
BatchNorm statistics, save its state dict as a `.pth`, then `cnnzoo export --out m.onnx` (plain,
and with --fuse-bn) and run the file under onnxruntime on two random images (a dynamic batch
of 2). Its logits are compared with PyTorch's and with `cnnzoo logits` on the same `.pth`.
Prints one row per model and writes a markdown table.

Usage (needs torch, timm, torchvision, numpy, onnxruntime; a built cnnzoo binary):
    python crates/cnnzoo-interop/reference/onnx_check.py --cnnzoo target/debug/cnnzoo \
        --out results/onnx.md
"""

import argparse
import datetime
import pathlib
import subprocess
import tempfile

import numpy as np
import onnxruntime
import timm
import torch
import torchvision

from make_fixtures import TIMM
from timm_roundtrip import build, randomise_bn, rel, run

# Every registered ImageNet model: timm's (the fixture list) and torchvision's GoogLeNet.
MODELS = TIMM + ["googlenet"]


def damp_residual_branches(model):
    # Random BatchNorm scales of ~1 at the end of every residual branch make 100+-layer nets
    # chaotic (seresnet101's float32 and float64 logits then differ by 30%): scale the branches'
    # last BatchNorm down, as training leaves them, so that the comparison measures the export.
    for m in model.modules():
        last = getattr(m, "bn3", None)
        if last is None and hasattr(m, "conv2") and not hasattr(m, "conv3"):
            last = getattr(m, "bn2", None)
        if isinstance(last, torch.nn.BatchNorm2d):
            last.weight.data.mul_(0.2)


def ort_logits(path, x):
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": x})[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cnnzoo", default="target/debug/cnnzoo")
    ap.add_argument("--out", default="results/onnx.md")
    ap.add_argument("--opset", default="17")
    ap.add_argument("--models", nargs="*", default=MODELS)
    args = ap.parse_args()
    torch.set_num_threads(2)
    gen = torch.Generator().manual_seed(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        for name in args.models:
            model = build(name).eval()
            randomise_bn(model, gen)
            damp_residual_branches(model)
            size = 299 if name.startswith("inception") else 224
            x = torch.randn(2, 3, size, size, generator=gen)
            with torch.no_grad():
                ref = model(x).numpy()
                # How well-conditioned the comparison is: float32 against float64 in PyTorch.
                floor = rel(ref, model.double()(x.double()).numpy())
                model.float()
            pth, xin = tmp / f"{name}.pth", tmp / "x.npy"
            torch.save(model.state_dict(), pth)
            np.save(xin, x.numpy())
            ours = tmp / "ours.npy"
            run([args.cnnzoo, "logits", "--model", name, "--weights", str(pth),
                 "--input", str(xin), "--output", str(ours), "--batch-size", "2"])
            ours = np.load(ours)
            errors = []
            for fuse in [[], ["--fuse-bn"]]:
                onnx = tmp / f"{name}.onnx"
                run([args.cnnzoo, "export", "--model", name, "--weights", str(pth),
                     "--out", str(onnx), "--opset", args.opset, *fuse])
                theirs = ort_logits(onnx, x.numpy())
                errors += [rel(theirs, ours), rel(theirs, ref)]
                size_mb = onnx.stat().st_size / 1e6
            rows.append((name, *errors, floor, size_mb))
            print(f"{name:<20} ort vs cnnzoo {errors[0]:.1e}  ort vs torch {errors[1]:.1e}  "
                  f"fused: {errors[2]:.1e} / {errors[3]:.1e}", flush=True)
    lines = [
        "# ONNX export under onnxruntime",
        "",
        f"Command: `python crates/cnnzoo-interop/reference/onnx_check.py --cnnzoo {args.cnnzoo}"
        f" --out {args.out}`",
        "",
        f"Measured {datetime.date.today()}: opset {args.opset}, onnxruntime "
        f"{onnxruntime.__version__} (CPU), torch {torch.__version__}, timm {timm.__version__}, "
        f"torchvision {torchvision.__version__}. Random weights and BatchNorm statistics (timm's "
        "models, torchvision's googlenet; each residual branch's last BatchNorm scale times 0.2, "
        "so that the deepest nets stay well-conditioned), two random images through the "
        "graph's dynamic batch; error = max |diff| / max |reference logit|.",
        "",
        "- ort vs cnnzoo: the exported graph under onnxruntime vs `cnnzoo logits` on the same "
        "weights",
        "- ort vs torch: the exported graph vs the PyTorch model the weights came from",
        "- fused: the same two for `cnnzoo export --fuse-bn` (BatchNorm folded into the convs)",
        "",
        "- torch f32 vs f64: PyTorch's own float32 logits against float64, the floor of what "
        "float32 arithmetic can agree to on these weights",
        "",
        "| model | ort vs cnnzoo | ort vs torch | fused: ort vs cnnzoo | fused: ort vs torch "
        "| torch f32 vs f64 | file (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {a:.1e} | {b:.1e} | {c:.1e} | {d:.1e} | {f:.1e} | {s:.0f} |"
              for n, a, b, c, d, f, s in rows]
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
