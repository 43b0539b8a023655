#!/usr/bin/env python3
"""Turns the JSON lines of `bench/gpu.sh run` into results/gpu.md (standard library only)."""

import datetime
import json
import sys


def main():
    src, dst = sys.argv[1], sys.argv[2]
    cases = {}
    fm = {}
    for line in open(src):
        if not line.strip():
            continue
        r = json.loads(line)
        if r["case"].startswith("fmnist-"):
            fm.setdefault(r["case"], []).append(r["result"])
        else:
            cases[r["case"]] = r["result"]
    gpu = next((r.get("gpu") for r in cases.values() if r.get("gpu")), "the GPU")
    lines = [
        "# ResNet-50 on one GPU: cnnzoo (Burn 0.22.1, Vulkan backend) vs PyTorch + timm",
        "",
        "Command: `bench/gpu.sh prepare` here, then `bench/gpu.sh run OUT` on the GPU machine, "
        "then `bench/gpu.sh report OUT/gpu.jsonl`.",
        "",
        f"Measured {datetime.date.today()} on {gpu}, all cases in one run, one after the other. "
        "images/s is the median over timed iterations after a warm-up, each iteration ending in a "
        "device synchronisation. Training: forward, cross-entropy, backward, SGD momentum step. "
        "cnnzoo runs f32 (no mixed precision yet).",
        "",
        "| case | batch | precision | images/s (median) | min | max | peak device memory (GiB) | cnnzoo / this |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for mode in ("infer", "train"):
        ours = cases.get(f"cnnzoo-{mode}-f32")
        rows = [(f"cnnzoo-{mode}-f32", ours)] + [
            (f"pytorch-{mode}-{p}", cases.get(f"pytorch-{mode}-{p}")) for p in ("fp32", "tf32", "amp-bf16")
        ]
        for name, r in rows:
            if r is None:
                lines.append(f"| {name} | | | did not finish (see gpu.log) | | | | |")
                continue
            prec = r.get("precision", "f32") + (" channels_last" if r.get("channels_last") else "")
            mem = r.get("peak_device_bytes")
            mem = f"{mem / 2**30:.1f}" if mem else "-"
            ratio = (
                f"{ours['images_per_sec'] / r['images_per_sec']:.2f}x"
                if ours and name.startswith("pytorch")
                else ""
            )
            lines.append(
                f"| {name} | {r['batch']} | {prec} | {r['images_per_sec']:.1f} | "
                f"{r['images_per_sec_min']:.1f} | {r['images_per_sec_max']:.1f} | {mem} | {ratio} |"
            )
    versions = next((r for r in cases.values() if r.get("torch")), None)
    if versions:
        lines += ["", f"PyTorch {versions['torch']}, timm {versions['timm']}."]
    if fm:
        lines += [
            "",
            "## The trainer end to end on the GPU and on the CPU",
            "",
            "resnet20, Fashion-MNIST subset (first 6,000 training and 1,000 test images), 3 epochs, "
            "batch 128, SGD Nesterov 0.1, wd 5e-4, warm-up 1 epoch + cosine, seed 0.",
            "",
            "| device | epoch | train loss | test top-1 % | images/s |",
            "|---|---:|---:|---:|---:|",
        ]
        for case, rows in sorted(fm.items()):
            for r in rows:
                lines.append(
                    f"| {case.split('-')[-1]} | {r['epoch']} | {r['train_loss']:.4f} | "
                    f"{100 * r['test_top1']:.2f} | {r['images_per_sec']:.1f} |"
                )
    open(dst, "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
