#!/usr/bin/env python3
"""Markdown report of bench/cpu.sh: per case, the median over rounds of each arm's median
images/s, the ratio cnnzoo / PyTorch and the peak resident memory of each arm."""

import argparse
import collections
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess


def cpu_model():
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--command", required=True)
    ap.add_argument("--notes", help="text appended to the report (earlier measurements)")
    a = ap.parse_args()
    runs = collections.defaultdict(lambda: collections.defaultdict(list))
    order, torch_version, threads = [], "?", set()
    for line in pathlib.Path(a.log).read_text().splitlines():
        r = json.loads(line)
        if r["case"] not in order:
            order.append(r["case"])
        runs[r["case"]][r["arm"]].append(r)
        threads.add(r["threads"])
        torch_version = r.get("torch", torch_version)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    mib = lambda b: b / 2**20  # noqa: E731
    lines = [
        "# cnnzoo vs PyTorch on the CPU",
        "",
        f"Command: `{a.command}`",
        "",
        f"Measured {datetime.date.today()} on {cpu_model()} ({os.cpu_count()} cores), "
        f"threads {sorted(threads)}; cnnzoo as of {commit} when this report was written (Burn 0.22.1 flex, dev profile with "
        f"dependencies at opt-level 3), PyTorch {torch_version}. The two arms of a case run "
        "alternately in one invocation; each number is the median over rounds of that arm's "
        "median images/s over its timed iterations. Train: forward, cross-entropy, backward, "
        "SGD momentum step; infer: eval-mode forward. Peak RSS is the whole process's "
        "(PyTorch's includes the Python interpreter and torch, about 300-400 MiB at rest).",
        "",
        "| case | cnnzoo img/s | PyTorch img/s | cnnzoo / PyTorch | cnnzoo peak RSS MiB "
        "| PyTorch peak RSS MiB | rounds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in order:
        arms = runs[case]
        if not arms.get("cnnzoo") or not arms.get("pytorch"):
            lines.append(f"| {case} | incomplete | | | | | |")
            continue
        med = {k: statistics.median(r["images_per_sec"] for r in v) for k, v in arms.items()}
        rss = {k: max(r["peak_rss_bytes"] for r in v) for k, v in arms.items()}
        n = min(len(arms["cnnzoo"]), len(arms["pytorch"]))
        lines.append(
            f"| {case} | {med['cnnzoo']:.1f} | {med['pytorch']:.1f} | "
            f"**{med['cnnzoo'] / med['pytorch']:.2f}x** | {mib(rss['cnnzoo']):.0f} | "
            f"{mib(rss['pytorch']):.0f} | {n} |"
        )
    if a.notes and pathlib.Path(a.notes).exists():
        lines += ["", pathlib.Path(a.notes).read_text().rstrip()]
    pathlib.Path(a.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
