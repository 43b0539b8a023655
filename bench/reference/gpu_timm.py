#!/usr/bin/env python3
"""PyTorch + timm side of the GPU benchmark (bench/gpu.sh): images/s of a training step or an
inference pass of one timm model on one GPU, timed like `cnnzoo bench` (warm-up, then the median
of per-iteration images/s, each iteration ending in a device synchronisation).

Precisions: fp32 (TF32 off: the arithmetic cnnzoo's f32 kernels do), tf32 (PyTorch's default
for convolutions), amp-bf16 / amp-fp16 (autocast, as timm's benchmark.py runs it, fp16 with a
GradScaler). --channels-last converts model and input as timm's benchmark does.
Prints one JSON object per case.
"""

import argparse
import json
import statistics
import time

import timm
import torch
import torch.nn.functional as F


def bench(name, mode, batch, size, precision, channels_last, warmup, iters):
    torch.backends.cudnn.benchmark = True
    tf32 = precision != "fp32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    dev = torch.device("cuda")
    model = timm.create_model(name, num_classes=1000).to(dev)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(batch, 3, size, size, device=dev).to(memory_format=fmt)
    y = torch.arange(batch, device=dev) % 1000
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
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--precision", choices=["fp32", "tf32", "amp-bf16", "amp-fp16"], default="amp-bf16")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--iters", type=int, default=20)
    a = ap.parse_args()
    r = bench(a.model, a.mode, a.batch, a.size, a.precision, a.channels_last, a.warmup, a.iters)
    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
