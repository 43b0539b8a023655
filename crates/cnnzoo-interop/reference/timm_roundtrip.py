#!/usr/bin/env python3
"""Round trip through the real PyTorch libraries: PyTorch weights -> cnnzoo -> timm.

For each model: build it in timm (torchvision for googlenet), give it random weights and random
BatchNorm statistics, save its state dict as a `.pth`, then
  1. `cnnzoo logits` on that `.pth` must match PyTorch's logits (loading),
  2. `cnnzoo export` writes a timm-keyed `.safetensors`, which
     `timm.create_model(name, checkpoint_path=...)` (torchvision: `load_state_dict`) loads
     strictly, and its logits must match the originals (saving),
  3. `cnnzoo logits --fuse-bn` on the export must match too (folded BatchNorm).
Prints one row per model and writes a markdown table.

Usage (needs torch, timm, torchvision, numpy; a built cnnzoo binary):
    python crates/cnnzoo-interop/reference/timm_roundtrip.py --cnnzoo target/debug/cnnzoo \
        --out results/timm_roundtrip.md
"""

import argparse
import datetime
import pathlib
import subprocess
import tempfile

import numpy as np
import timm
import torch
import torchvision

MODELS = [
    "resnet18", "resnet50", "resnext50_32x4d", "seresnet50", "seresnext50_32x4d",
    "densenet121", "inception_v3", "googlenet",
]


def build(name):
    if name == "googlenet":
        return torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
    return timm.create_model(name, pretrained=False)


def randomise_bn(model, gen):
    # Fresh models have mean 0 / var 1 statistics, which would hide a BN mapping error.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            m.weight.data.copy_(1 + 0.1 * torch.randn(c, generator=gen))
            m.bias.data.copy_(0.1 * torch.randn(c, generator=gen))


def rel(a, b):
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def run(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cnnzoo", default="target/debug/cnnzoo")
    ap.add_argument("--out", default="results/timm_roundtrip.md")
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
            size = 299 if name == "inception_v3" else 224
            x = torch.randn(2, 3, size, size, generator=gen)
            with torch.no_grad():
                ref = model(x).numpy()
            pth, xin = tmp / f"{name}.pth", tmp / "x.npy"
            torch.save(model.state_dict(), pth)
            np.save(xin, x.numpy())
            loaded = tmp / "loaded.npy"
            run([args.cnnzoo, "logits", "--model", name, "--weights", str(pth),
                 "--input", str(xin), "--output", str(loaded), "--batch-size", "2"])
            exported = tmp / f"{name}.safetensors"
            run([args.cnnzoo, "export", "--model", name, "--weights", str(pth),
                 "--out", str(exported)])
            if name == "googlenet":
                back = build(name)
                from safetensors.torch import load_file
                back.load_state_dict(load_file(exported), strict=True)
            else:
                back = timm.create_model(name, pretrained=False, checkpoint_path=str(exported))
            with torch.no_grad():
                again = back.eval()(x).numpy()
            fused = tmp / "fused.npy"
            run([args.cnnzoo, "logits", "--model", name, "--weights", str(exported),
                 "--input", str(xin), "--output", str(fused), "--batch-size", "2", "--fuse-bn"])
            row = (name, rel(np.load(loaded), ref), rel(again, ref), rel(np.load(fused), ref))
            rows.append(row)
            print(f"{row[0]:<20} load {row[1]:.2e}  export->timm {row[2]:.2e}  fused {row[3]:.2e}",
                  flush=True)
    lines = [
        "# PyTorch -> cnnzoo -> timm round trip",
        "",
        f"Command: `python crates/cnnzoo-interop/reference/timm_roundtrip.py --cnnzoo {args.cnnzoo}"
        f" --out {args.out}`",
        "",
        f"Measured {datetime.date.today()}, torch {torch.__version__}, timm {timm.__version__}, "
        f"torchvision {torchvision.__version__}. Random weights and BatchNorm statistics, two "
        "random images; error = max |diff| / max |PyTorch logit|.",
        "",
        "- load: `cnnzoo logits` on the PyTorch `.pth` vs PyTorch",
        "- export -> timm: `cnnzoo export` to safetensors, loaded strictly by "
        "`timm.create_model(name, checkpoint_path=...)` (torchvision `load_state_dict` for "
        "googlenet), vs the original model",
        "- fused: `cnnzoo logits --fuse-bn` on the export vs PyTorch",
        "",
        "| model | load | export -> timm | fused BN |",
        "|---|---|---|---|",
    ]
    lines += [f"| {n} | {a:.1e} | {b:.1e} | {c:.1e} |" for n, a, b, c in rows]
    pathlib.Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
