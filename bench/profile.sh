#!/usr/bin/env bash
# Where a ResNet-20 training step (batch 128, 3x32x32, 2 threads) spends its time, in cnnzoo
# (perf samples by call chain) and in PyTorch (torch.profiler by operator), grouped into the same
# categories. Writes results/cpu_profile.md. Needs `perf` and PYTHON with torch.
# Usage: bench/profile.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
threads=${THREADS:-2}
# The dev profile builds every dependency with opt-level 3 (see Cargo.toml): as fast as
# --release, with the symbols perf needs.
cargo build -q
bin=target/debug/cnnzoo
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case=(bench --model resnet20 --mode train --batch 128 --threads "$threads" --warmup 2 --iters 6)
"$bin" "${case[@]}" --json >"$tmp/bench.json"
# DWARF call graphs: the kernels' loops are inlined into rayon's closures, so a sample is
# attributed by its call chain (inlined frames included), not by its leaf symbol.
perf record -F 199 --call-graph dwarf,16384 -o "$tmp/perf.data" -- "$bin" "${case[@]}" \
    >/dev/null 2>&1
perf script -i "$tmp/perf.data" --inline -F ip,sym 2>/dev/null >"$tmp/script.txt"
cd bench/reference
"$python" profile_report.py --perf-script "$tmp/script.txt" --cnnzoo-json "$tmp/bench.json" \
    --threads "$threads" --out ../../results/cpu_profile.md --command "bench/profile.sh"
