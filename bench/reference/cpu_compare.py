#!/usr/bin/env python3
"""Compares two bench/cpu.sh logs case by case (a refactor's before and after): each log's
ratio cnnzoo / PyTorch (median over rounds of each arm's median images/s) and the change,
flagged when it is larger than the move between runs (--noise)."""

import argparse
import collections
import json
import pathlib
import statistics


def ratios(log):
    arms = collections.defaultdict(lambda: collections.defaultdict(list))
    order = []
    for line in pathlib.Path(log).read_text().splitlines():
        r = json.loads(line)
        if r["case"] not in order:
            order.append(r["case"])
        arms[r["case"]][r["arm"]].append(r["images_per_sec"])
    out = {}
    for case in order:
        a = arms[case]
        if a["cnnzoo"] and a["pytorch"]:
            out[case] = (
                statistics.median(a["cnnzoo"]) / statistics.median(a["pytorch"]),
                min(len(a["cnnzoo"]), len(a["pytorch"])),
            )
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--noise", type=float, default=0.09)
    a = ap.parse_args()
    before, after = ratios(a.before), ratios(a.after)
    print(f"| case | before ({pathlib.Path(a.before).name}) | after ({pathlib.Path(a.after).name}) "
          "| change | rounds before / after |")
    print("|---|---:|---:|---:|---:|")
    for case, (r0, n0) in before.items():
        if case not in after:
            print(f"| {case} | {r0:.2f}x | not measured | | {n0} / 0 |")
            continue
        r1, n1 = after[case]
        flag = " (beyond noise)" if abs(r1 - r0) > a.noise else ""
        print(f"| {case} | {r0:.2f}x | {r1:.2f}x | {r1 - r0:+.2f}{flag} | {n0} / {n1} |")


if __name__ == "__main__":
    main()
