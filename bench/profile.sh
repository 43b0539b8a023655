#!/usr/bin/env bash
# Where one case's time goes, in cnnzoo (perf samples by call chain) and in PyTorch
# (torch.profiler by operator), grouped into the same categories. Needs `perf` and PYTHON with
# torch (and timm for the ImageNet models).
# Usage: bench/profile.sh            ResNet-20 training, batch 128 -> results/cpu_profile.md
#        MODEL=resnet50 MODE=infer BATCH=8 INPUT=3x224x224 CLASSES=1000 FUSE_BN=1 bench/profile.sh
#                                    -> results/cpu_profile-resnet50-infer.md
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
threads=${THREADS:-2}
model=${MODEL:-resnet20}
mode=${MODE:-train}
batch=${BATCH:-128}
input=${INPUT:-3x32x32}
classes=${CLASSES:-10}
fuse=()
[ -n "${FUSE_BN:-}" ] && fuse=(--fuse-bn)
out=results/cpu_profile.md
[ "$model-$mode" != resnet20-train ] && out=results/cpu_profile-$model-$mode.md
# The dev profile builds every dependency with opt-level 3 (see Cargo.toml): as fast as
# --release, with the symbols perf needs.
cargo build -q
bin=target/debug/cnnzoo
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case=(bench --model "$model" --mode "$mode" --batch "$batch" --input "$input" --classes "$classes"
    --threads "$threads" --warmup 2 --iters 6 "${fuse[@]}")
"$bin" "${case[@]}" --json >"$tmp/bench.json"
# DWARF call graphs: the kernels' loops are inlined into rayon's closures, so a sample is
# attributed by its call chain (inlined frames included), not by its leaf symbol.
perf record -F 199 --call-graph dwarf,16384 -o "$tmp/perf.data" -- "$bin" "${case[@]}" \
    >/dev/null 2>&1
perf script -i "$tmp/perf.data" --inline -F ip,sym 2>/dev/null >"$tmp/script.txt"
command="bench/profile.sh"
[ "$out" != results/cpu_profile.md ] &&
    command="MODEL=$model MODE=$mode BATCH=$batch INPUT=$input CLASSES=$classes${FUSE_BN:+ FUSE_BN=1} bench/profile.sh"
cd bench/reference
"$python" profile_report.py --perf-script "$tmp/script.txt" --cnnzoo-json "$tmp/bench.json" \
    --threads "$threads" --classes "$classes" --out "../../$out" --command "$command"
