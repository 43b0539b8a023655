#!/usr/bin/env python3
"""Writes the side-by-side markdown report of bench/fashion_mnist_resnet20.sh from the two
metrics.jsonl files (standard library only, so it runs without torch)."""

import argparse
import datetime
import json
import platform
import subprocess


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def torch_version():
    try:
        import torch

        return torch.__version__
    except ImportError:
        return "not importable here"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cnnzoo", required=True)
    ap.add_argument("--pytorch", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--target", type=float, default=93.0)
    ap.add_argument("--tolerance", type=float, default=0.3)
    ap.add_argument("--note", default="", help="conditions of the run, appended as written")
    ap.add_argument("--cnnzoo-commit", default="", help="commit the cnnzoo arm ran at (default HEAD)")
    a = ap.parse_args()
    c, p = load(a.cnnzoo), load(a.pytorch)
    rev = a.cnnzoo_commit or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "# ResNet-20 on Fashion-MNIST, 10 epochs on the CPU: cnnzoo vs PyTorch",
        "",
        f"Command: `{a.command}`",
        "",
        f"Measured {datetime.date.today()} on {cpu()}, 2 threads each, one arm after the other; "
        f"cnnzoo at commit {rev}, PyTorch {torch_version()}.",
        "",
        "Recipe (both): 1x28x28, 2-px zero-pad random crop + horizontal flip, mean/std "
        "normalisation, SGD Nesterov 0.9, lr 0.1, wd 5e-4, batch 128, one cycle per run "
        "(linear warm-up over epoch 1, cosine to zero, per iteration), seed 0. "
        "images/s is the training step alone (forward, loss, backward, optimizer).",
        "",
        "| epoch | cnnzoo test top-1 % | PyTorch test top-1 % | cnnzoo train loss | PyTorch train loss | cnnzoo images/s | PyTorch images/s |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i in range(max(len(c), len(p))):
        row = [str(i + 1)]
        for key, fmt, scale in (("test_top1", "{:.2f}", 100.0), ("train_loss", "{:.4f}", 1.0), ("images_per_sec", "{:.1f}", 1.0)):
            for arm in (c, p):
                row.append(fmt.format(scale * arm[i][key]) if i < len(arm) else "-")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    if c and p and len(p) < len(c):
        lines += [
            f"- The PyTorch arm is incomplete ({len(p)} of {len(c)} epochs): no comparison of the "
            "final accuracy yet; rerun `bench/fashion_mnist_resnet20.sh pytorch`, then `report`.",
            f"- cnnzoo final test top-1 **{100.0 * c[-1]['test_top1']:.2f}%** "
            f"(target >= {a.target:.1f}%: {'met' if 100.0 * c[-1]['test_top1'] >= a.target else 'MISSED'}).",
        ]
    elif c and p:
        fc, fp = 100.0 * c[-1]["test_top1"], 100.0 * p[-1]["test_top1"]
        ips_c = sum(m["images_per_sec"] for m in c) / len(c)
        ips_p = sum(m["images_per_sec"] for m in p) / len(p)
        lines += [
            f"- Final test top-1: cnnzoo **{fc:.2f}%**, PyTorch **{fp:.2f}%**, "
            f"difference {fc - fp:+.2f} points.",
            f"- Target >= {a.target:.1f}%: {'met' if fc >= a.target else 'MISSED'}; "
            f"within {a.tolerance} points of PyTorch: {'met' if abs(fc - fp) <= a.tolerance else 'MISSED'}.",
            f"- Mean training-step throughput over the epochs: cnnzoo {ips_c:.1f} images/s, "
            f"PyTorch {ips_p:.1f} images/s (arms run one after the other, not alternated; the "
            "side-by-side speed comparison is bench/cpu.sh, results/cpu_bench.md).",
            f"- Wall time: cnnzoo {sum(m['wall_time_s'] for m in c) / 60:.1f} min, PyTorch "
            f"{sum(m['wall_time_s'] for m in p) / 60:.1f} min.",
        ]
    if a.note:
        lines += ["", a.note]
    with open(a.out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
