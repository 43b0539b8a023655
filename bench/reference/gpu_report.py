#!/usr/bin/env python3
"""Turns the JSON lines of `bench/gpu.sh run` into results/gpu.md (standard library only).

Usage: gpu_report.py GPU_JSONL OUT_MD [EARLIER_MD_SECTION]
"""

import datetime
import json
import sys


def load(src):
    cases, fm = {}, {}
    for line in open(src):
        line = line.strip()
        if not line.startswith("{"):
            continue
        r = json.loads(line)
        if r["case"].startswith("fmnist-"):
            fm.setdefault(r["case"], []).append(r["result"])
        else:
            cases[r["case"]] = r
    return cases, fm


def parse(name):
    """cnnzoo-BACKEND-MODEL-MODE-PRECISION or pytorch-MODEL-MODE-PRECISION."""
    parts = name.split("-")
    if parts[0] == "cnnzoo":
        return "cnnzoo", parts[1], parts[2], parts[3], "-".join(parts[4:])
    return "pytorch", "pytorch", parts[1], parts[2], "-".join(parts[3:])


def speed_table(cases):
    groups = {}
    for name, r in cases.items():
        who, backend, model, mode, precision = parse(name)
        groups.setdefault((model, mode), []).append((who, backend, precision, name, r))
    lines = []
    order = sorted(groups, key=lambda k: (k[0] != "resnet50", k[0], k[1] != "infer"))
    for model, mode in order:
        rows = groups[(model, mode)]
        ref = {p: r["result"]["images_per_sec"] for who, _, p, _, r in rows if who == "pytorch"}
        batch = rows[0][4]["result"]["batch"]
        what = "inference" if mode == "infer" else "training step"
        lines += [
            "",
            f"### {model} {what}, batch {batch}",
            "",
            "| run | precision | images/s (median) | min | max | peak memory, allocator (GiB) "
            "| peak memory, nvidia-smi (GiB) | / PyTorch fp32 | / PyTorch TF32 | / PyTorch AMP bf16 |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        rows.sort(key=lambda x: (x[0] != "cnnzoo", -x[4]["result"]["images_per_sec"]))
        for who, backend, precision, name, r in rows:
            res = r["result"]
            ips = res["images_per_sec"]
            alloc = res.get("peak_device_bytes")
            alloc = f"{alloc / 2**30:.1f}" if alloc else "-"
            smi = r.get("smi_peak_mib")
            smi = f"{smi / 1024:.1f}" if smi and who == "cnnzoo" else "-"
            label = f"cnnzoo, {backend}" if who == "cnnzoo" else "PyTorch + timm"
            label = label.replace("libtorch+burnbn", "libtorch, Burn's composed BatchNorm")
            label = label.replace("libtorch+nativebn", "libtorch, PyTorch's BatchNorm backward too")
            prec = precision + (" channels_last" if res.get("channels_last") else "")

            def ratio(p):
                return f"{ips / ref[p]:.2f}x" if who == "cnnzoo" and p in ref else ""

            lines.append(
                f"| {label} | {prec} | {ips:.1f} | {res['images_per_sec_min']:.1f} | "
                f"{res['images_per_sec_max']:.1f} | {alloc} | {smi} | {ratio('fp32')} | {ratio('tf32')} | {ratio('amp-bf16')} |"
            )
    return lines


def fmnist_table(fm):
    if not fm:
        return []
    lines = [
        "",
        "## The trainer end to end: Fashion-MNIST in f32 and bf16",
        "",
        "resnet20, the first 12,000 training images and all 10,000 test images, 3 epochs, batch 128, "
        "SGD 0.1 momentum 0.9, wd 5e-4, cosine, 2-px crop + flip, seed 0, LibTorch backend.",
        "",
        "| precision (bn-: PyTorch's BatchNorm backward too) | epoch | train loss | test top-1 % | images/s |",
        "|---|---:|---:|---:|---:|",
    ]
    last = {}
    for case, rows in sorted(fm.items()):
        p = case.split("libtorch-")[-1]
        for r in rows:
            lines.append(
                f"| {p} | {r['epoch']} | {r['train_loss']:.4f} | {100 * r['test_top1']:.2f} | "
                f"{r['images_per_sec']:.1f} |"
            )
        last[p] = 100 * rows[-1]["test_top1"]
    for a, b in (("bf16", "f32"), ("bn-bf16", "bn-f32"), ("bn-f32", "f32")):
        if a in last and b in last:
            lines += ["", f"Final test top-1: {a} - {b} = {last[a] - last[b]:+.2f} points."]
    return lines


def main():
    src, dst = sys.argv[1], sys.argv[2]
    cases, fm = load(src)
    gpu = next((r["result"].get("gpu") for r in cases.values() if r["result"].get("gpu")), "the GPU")
    versions = next((r["result"] for r in cases.values() if r["result"].get("torch")), None)
    lines = [
        "# cnnzoo on one GPU against PyTorch + timm",
        "",
        "Command: `bench/gpu.sh prepare` here, then `bench/gpu.sh run OUT` on the GPU machine, "
        "then `bench/gpu.sh report OUT/gpu.jsonl`.",
        "",
        f"Measured {datetime.date.today()} on {gpu}, all cases in one run, one after the other. "
        "images/s is the median over 20 timed iterations after 5 warm-up ones, each iteration ending "
        "in a device synchronisation. Training: forward, cross-entropy, backward, SGD momentum step. "
        "cnnzoo's bf16 / f16 are mixed precision: convolutions in the low type, weights, BatchNorm, "
        "optimizer and loss in f32 (f16 with dynamic loss scaling). cnnzoo's f32 on LibTorch runs its "
        "convolutions through cuDNN with LibTorch's default, TF32 on, so its like is PyTorch's tf32 "
        "row. PyTorch fp32 has TF32 off; AMP "
        "is autocast with channels_last, as timm's benchmark runs it. Peak memory: PyTorch's "
        "allocator peak (`max_memory_allocated`); for cnnzoo the GPU memory nvidia-smi showed in "
        "use while the case ran (the whole process: CUDA context and cached blocks included, so it "
        "overstates an allocator peak).",
    ]
    if versions:
        lines += ["", f"PyTorch {versions['torch']}, timm {versions['timm']}."]
    lines += speed_table(cases)
    lines += fmnist_table(fm)
    if len(sys.argv) > 3:
        lines += ["", open(sys.argv[3]).read().rstrip()]
    open(dst, "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
