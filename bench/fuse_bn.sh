#!/usr/bin/env bash
# Folded BatchNorm for inference: ResNet-50, batch 8, 224x224, CPU, unfused and fused runs
# alternating (ROUNDS times each). Writes results/fuse_bn.md.
# Usage: bench/fuse_bn.sh   (THREADS default 2, ROUNDS default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${THREADS:-2}
rounds=${ROUNDS:-3}
# The dev profile builds every dependency with opt-level 3 (see Cargo.toml): as fast as --release.
cargo build -q
bin=target/debug/cnnzoo
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in $(seq 1 "$rounds"); do
    for mode in plain fused; do
        flag=()
        [ "$mode" = fused ] && flag=(--fuse-bn)
        echo "== round $r/$rounds: $mode" >&2
        "$bin" bench --model resnet50 --mode infer --batch 8 --threads "$threads" --warmup 2 \
            --iters 8 --json "${flag[@]}" >>"$tmp/$mode.jsonl"
    done
done
python3 - "$tmp" "$threads" "$rounds" <<'PY' >results/fuse_bn.md
import json, statistics, subprocess, sys, datetime
tmp, threads, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
runs = {m: [json.loads(l) for l in open(f"{tmp}/{m}.jsonl")] for m in ("plain", "fused")}
med = {m: statistics.median(r["images_per_sec"] for r in v) for m, v in runs.items()}
cpu = subprocess.run("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2", shell=True,
                     capture_output=True, text=True).stdout.strip()
print("# Folded BatchNorm: ResNet-50 inference, batch 8, 224x224, CPU\n")
print("Command: `bench/fuse_bn.sh`\n")
print(f"Measured {datetime.date.today()} on {cpu}, {threads} threads, Burn 0.22.1 flex (dev "
      f"profile, dependencies at opt-level 3). {rounds} rounds alternating unfused / fused; each "
      "run is the median of 8 timed batches after 2 warm-up batches; the table gives the median "
      "over rounds and every round's value.\n")
print("| model | images/s (median of rounds) | rounds |\n|---|---:|---|")
for m, label in (("plain", "BatchNorm as is"), ("fused", "BatchNorm folded (`--fuse-bn`)")):
    vals = ", ".join(f"{r['images_per_sec']:.2f}" for r in runs[m])
    print(f"| {label} | {med[m]:.2f} | {vals} |")
print(f"\nSpeed-up from folding: **{med['fused'] / med['plain']:.3f}x**. Logits stay within 1e-4 "
      "of the unfused model (tested in cnnzoo-models; results/timm_roundtrip.md shows the folded "
      "model within 1.7e-6 of PyTorch).")
PY
cat results/fuse_bn.md
