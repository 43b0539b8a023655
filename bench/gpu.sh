#!/usr/bin/env bash
# GPU benchmark: cnnzoo (Burn's Vulkan backend) against PyTorch + timm on the same GPU, in one
# run, plus a short Fashion-MNIST training on the GPU and on the CPU of the same machine.
#
#   bench/gpu.sh prepare        here: release build with --features vulkan, a 6,000/1,000-image
#                               Fashion-MNIST subset, all copied into .gpu/ (carried to the GPU box)
#   bench/gpu.sh run OUTDIR     on the GPU machine: writes OUTDIR/gpu.jsonl and OUTDIR/gpu.log
#   bench/gpu.sh report JSONL   here: writes results/gpu.md from the JSON lines
#
# The GPU machine needs the Vulkan loader (libvulkan1) and python3 with torch + timm.
set -uo pipefail
cd "$(dirname "$0")/.."

prepare() {
    set -e
    CARGO_TARGET_DIR=target/gpu cargo build --release --features vulkan -p cnnzoo-cli
    mkdir -p .gpu/fmnist
    cp target/gpu/release/cnnzoo .gpu/cnnzoo
    strip .gpu/cnnzoo || true
    python3 - "${1:-../shared/data/fashion-mnist}" .gpu/fmnist <<'PY'
import gzip, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for stem, n in (("train", 6000), ("t10k", 1000)):
    for kind in ("images-idx3-ubyte", "labels-idx1-ubyte"):
        data = gzip.open(f"{src}/{stem}-{kind}.gz").read()
        ndim = data[3]
        dims = list(struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim]))
        item = 1
        for d in dims[1:]:
            item *= d
        dims[0] = n
        head = data[:4] + struct.pack(">" + "I" * ndim, *dims)
        body = data[4 + 4 * ndim: 4 + 4 * ndim + n * item]
        with gzip.open(f"{dst}/{stem}-{kind}.gz", "wb") as f:
            f.write(head + body)
PY
    du -sh .gpu
}

run() {
    local out=$1 bin=.gpu/cnnzoo
    mkdir -p "$out"
    local log=$out/gpu.log jsonl=$out/gpu.jsonl
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$log"
    nproc | sed 's/^/cpu threads: /' | tee -a "$log"
    case_() { # name timeout command...
        local name=$1 limit=$2
        shift 2
        local t0=$SECONDS
        local line
        line=$(timeout "$limit" "$@" 2>>"$log")
        local rc=$?
        echo "$name: rc=$rc $((SECONDS - t0)) s" | tee -a "$log"
        [ $rc -eq 0 ] && [ -n "$line" ] && echo "{\"case\":\"$name\",\"result\":$line}" >> "$jsonl"
    }
    # Most informative first: an interrupted run still leaves the main numbers.
    torch_case() { # mode batch precision
        local cl=()
        [ "$3" = amp-bf16 ] && cl=(--channels-last)
        case_ "pytorch-$1-$3" 90 python3 bench/reference/gpu_timm.py --model resnet50 \
            --mode "$1" --batch "$2" --precision "$3" "${cl[@]}" --warmup 5 --iters 20
    }
    case_ cnnzoo-infer-f32 150 $bin --device vulkan bench --model resnet50 --mode infer \
        --batch 64 --warmup 5 --iters 20 --json
    torch_case infer 64 fp32
    torch_case infer 64 amp-bf16
    case_ cnnzoo-train-f32 200 $bin --device vulkan bench --model resnet50 --mode train \
        --batch 256 --warmup 3 --iters 10 --json
    torch_case train 256 fp32
    torch_case train 256 amp-bf16
    # The trainer end to end on the GPU and on this machine's CPU: same recipe, same data.
    for dev in vulkan cpu; do
        rm -rf "/tmp/fm-$dev"
        timeout 120 $bin --device $dev train --model resnet20 --dataset fashion-mnist \
            --data-dir .gpu/fmnist --epochs 3 --batch-size 128 --nesterov --warmup-epochs 1 \
            --out "/tmp/fm-$dev" >>"$log" 2>&1
        echo "train-$dev: rc=$?" | tee -a "$log"
        [ -f "/tmp/fm-$dev/metrics.jsonl" ] && while read -r l; do
            echo "{\"case\":\"fmnist-resnet20-$dev\",\"result\":$l}" >> "$jsonl"
        done < "/tmp/fm-$dev/metrics.jsonl"
    done
    torch_case infer 64 tf32
    torch_case train 256 tf32
    return 0
}

case "${1:-}" in
    prepare) prepare "${2:-}" ;;
    run) run "${2:?output folder}" ;;
    report) python3 bench/reference/gpu_report.py "${2:?gpu.jsonl}" results/gpu.md ;;
    *) echo "usage: $0 prepare [DATA_DIR] | run OUTDIR | report JSONL" >&2; exit 2 ;;
esac
