#!/usr/bin/env python3
"""PyTorch + timm side of the GPU benchmark (bench/gpu.sh): images/s of a training step or an
inference pass of one timm model on one GPU, timed like `cnnzoo bench` (warm-up, then the median
of per-iteration images/s, each iteration ending in a device synchronisation).

Precisions: fp32 (TF32 off: the arithmetic cnnzoo's f32 kernels do), tf32 (PyTorch's default
for convolutions), amp-bf16 / amp-fp16 (autocast, as timm's benchmark.py runs it, fp16 with a
GradScaler). --channels-last converts model and input as timm's benchmark does.
Several cases run in one process (`--case MODEL:MODE:BATCH:PRECISION[:cl]`, repeatable), so
PyTorch and timm are imported once; the CIFAR networks come from cpu_bench.py (parameter counts
equal cnnzoo's). Prints one JSON object per case as soon as it is measured.
"""

import argparse
import json
import statistics
import time

import os
import sys

import timm
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpu_bench  # noqa: E402  (the CIFAR networks)

CIFAR = ("resnet20", "resnet56", "seresnet20", "resnext29_8x64d", "densenet_bc100_k12")


def bench(name, mode, batch, size, precision, channels_last, warmup, iters):
    torch.backends.cudnn.benchmark = True
    tf32 = precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    dev = torch.device("cuda")
    if name in CIFAR:
        model, classes = cpu_bench.build(name, 3, 10), 10
    else:
        model, classes = timm.create_model(name, num_classes=1000), 1000
    model = model.to(dev)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(batch, 3, size, size, device=dev).to(memory_format=fmt)
    y = torch.arange(batch, device=dev) % classes
    amp = precision.startswith("amp")
    dtype = torch.float16 if precision == "amp-fp16" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "amp-fp16")
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    if mode == "train":
        model.train()
    else:
        model.eval()
    times = []
    torch.cuda.reset_peak_memory_stats()
    for i in range(warmup + iters):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=dtype, enabled=amp):
            if mode == "train":
                loss = F.cross_entropy(model(x), y)
            else:
                with torch.no_grad():
                    model(x)
        if mode == "train":
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    rates = sorted(batch / t for t in times)
    return {
        "model": name,
        "mode": mode,
        "batch": batch,
        "input": [3, size, size],
        "precision": precision,
        "channels_last": channels_last,
        "images_per_sec": statistics.median(rates),
        "images_per_sec_min": rates[0],
        "images_per_sec_max": rates[-1],
        "peak_device_bytes": torch.cuda.max_memory_allocated(),
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "timm": timm.__version__,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--mode", choices=["train", "infer"], default="train")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=None, help="input side (default: 224, 32 for CIFAR nets)")
    ap.add_argument("--precision", choices=["fp32", "tf32", "amp-bf16", "amp-fp16"], default="amp-bf16")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--case", action="append", default=[],
                    help="MODEL:MODE:BATCH:PRECISION[:cl], repeatable; replaces the single-case flags")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--tag", help="print {\"case\": TAG-MODEL-MODE-PRECISION, \"result\": ...} lines (bench/gpu.sh)")
    a = ap.parse_args()
    cases = []
    for spec in a.case:
        parts = spec.split(":")
        if len(parts) not in (4, 5) or parts[1] not in ("train", "infer"):
            ap.error(f"--case {spec!r}: expected MODEL:MODE:BATCH:PRECISION[:cl]")
        cases.append((parts[0], parts[1], int(parts[2]), parts[3], len(parts) == 5 and parts[4] == "cl"))
    if not cases:
        cases = [(a.model, a.mode, a.batch, a.precision, a.channels_last)]
    for model, mode, batch, precision, cl in cases:
        size = a.size or (32 if model in CIFAR else 224)
        try:
            r = bench(model, mode, batch, size, precision, cl, a.warmup, a.iters)
        except Exception as e:  # one failing case must not cost the others
            print(f"{model} {mode} {precision}: {e!r}", file=sys.stderr, flush=True)
            continue
        if a.tag:
            r = {"case": f"{a.tag}-{model}-{mode}-{precision}", "result": r}
        print(json.dumps(r), flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
