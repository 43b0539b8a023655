#!/usr/bin/env bash
# GPU benchmark: cnnzoo on Burn's LibTorch (cuDNN) and Vulkan backends, f32 and mixed precision,
# against PyTorch + timm on the same GPU in the same run; then a short Fashion-MNIST training
# in f32 and bf16.
#
#   bench/gpu.sh prepare [DATA_DIR]   here: release build with --features vulkan,tch against
#                                     PyTorch's libraries (pip wheel, fetched once into
#                                     target/libtorch), a Fashion-MNIST subset (12,000 training,
#                                     10,000 test images) and the Vulkan loader, all into .gpu/
#   bench/gpu.sh run OUTDIR           on the GPU machine: OUTDIR/gpu.jsonl and OUTDIR/gpu.log
#   bench/gpu.sh report JSONL         here: writes results/gpu.md from the JSON lines and the
#                                     hand-written results/gpu/notes.md
#
# The GPU machine needs python3 with torch 2.11 (its torch/lib is what the LibTorch build loads)
# and timm. GPU_BUDGET_S (default 450) stops starting new cases after that many seconds;
# GPU_GROUPS picks case groups (default: resnet50 fmnist bn cifar half tf32 vulkan).
set -uo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=${TORCH_VERSION:-2.11.0}

# PyTorch's own libraries and headers, from its pip wheel (torch-sys builds against them).
libtorch() {
    local dir=target/libtorch/$TORCH_VERSION
    if [ ! -f "$dir/torch/lib/libtorch_cpu.so" ]; then
        mkdir -p "$dir"
        python3 -m pip download -q --no-deps "torch==$TORCH_VERSION" -d "$dir" >&2
        (cd "$dir" && unzip -q -o torch-*.whl 'torch/lib/*' 'torch/include/*' 'torch/share/*' && rm -f torch-*.whl)
    fi
    echo "$PWD/$dir/torch"
}

prepare() {
    set -e
    local torch
    torch=$(libtorch)
    LIBTORCH=$torch LIBTORCH_BYPASS_VERSION_CHECK=1 LIBTORCH_CXX11_ABI=1 CARGO_TARGET_DIR=target/gpu \
        cargo build --release --features vulkan,tch -p cnnzoo-cli
    rm -rf .gpu && mkdir -p .gpu/fmnist
    # Compressed: the stripped binary (LibTorch's generated API and wgpu) is over 100 MB.
    strip -o .gpu/cnnzoo target/gpu/release/cnnzoo || cp target/gpu/release/cnnzoo .gpu/cnnzoo
    gzip -6 .gpu/cnnzoo
    # Debian's Vulkan loader, unpacked on the GPU machine when it has none.
    (cd .gpu && apt-get download libvulkan1 >/dev/null 2>&1) || echo "no libvulkan1 package fetched"
    python3 - "${1:-../shared/data/fashion-mnist}" .gpu/fmnist <<'PY'
import gzip, struct, sys
src, dst = sys.argv[1], sys.argv[2]
for stem, n in (("train", 12000), ("t10k", 10000)):
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
    local out=$1 bin=/tmp/cnnzoo-gpu budget=${GPU_BUDGET_S:-450}
    mkdir -p "$out"
    local log=$out/gpu.log jsonl=$out/gpu.jsonl
    gunzip -c .gpu/cnnzoo.gz >$bin && chmod +x $bin || { echo "no .gpu/cnnzoo.gz: run prepare first" | tee -a "$log"; return 1; }
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$log"
    nproc | sed 's/^/cpu threads: /' | tee -a "$log"
    if ! ldconfig -p | grep -q libvulkan.so.1; then
        for f in .gpu/*.deb; do dpkg -x "$f" /; done
        ldconfig
    fi
    local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    [ -z "${VK_DRIVER_FILES:-}" ] && [ -f $icd ] && export VK_DRIVER_FILES=$icd
    local torch_lib
    torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
    export LD_LIBRARY_PATH=$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    python3 -c 'import torch, timm; print("torch", torch.__version__, "timm", timm.__version__)' | tee -a "$log"

    # Peak GPU memory of a command as nvidia-smi sees it (whole process, context included).
    sample_memory() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 >"$1" 2>/dev/null; }
    case_() { # name timeout command...
        local name=$1 limit=$2
        shift 2
        if [ $SECONDS -ge "$budget" ]; then
            echo "$name: skipped, budget of $budget s spent" | tee -a "$log"
            return
        fi
        local t0=$SECONDS mem=/tmp/mem-$name line rc
        sample_memory "$mem" &
        local sampler=$!
        line=$(timeout "$limit" "$@" 2>>"$log")
        rc=$?
        kill $sampler 2>/dev/null
        wait $sampler 2>/dev/null
        local peak
        peak=$(sort -n "$mem" | tail -1)
        echo "$name: rc=$rc $((SECONDS - t0)) s, peak nvidia-smi ${peak:-?} MiB" | tee -a "$log"
        if [ $rc -eq 0 ] && [ -n "$line" ]; then
            echo "{\"case\":\"$name\",\"smi_peak_mib\":${peak:-null},\"result\":$line}" >>"$jsonl"
        fi
    }
    torch_cases() { # timeout case...
        local limit=$1
        shift
        [ $SECONDS -ge "$budget" ] && { echo "pytorch $*: skipped, budget spent" | tee -a "$log"; return; }
        local args=() c
        for c in "$@"; do args+=(--case "$c"); done
        local t0=$SECONDS
        timeout "$limit" python3 bench/reference/gpu_timm.py --tag pytorch --warmup 5 --iters 20 \
            "${args[@]}" 2>>"$log" >>"$jsonl"
        echo "pytorch $*: rc=$? $((SECONDS - t0)) s" | tee -a "$log"
    }
    bench() { # backend[+burnbn|+nativebn] model mode batch precision timeout
        local dev=${1%%+*} env=()
        case $1 in
            *+burnbn) env=(env CNNZOO_TORCH_BN=burn) ;;
            *+nativebn) env=(env CNNZOO_TORCH_BN=native) ;;
        esac
        case_ "cnnzoo-$1-$2-$3-$5" "$6" "${env[@]}" $bin --device "$dev" bench --model "$2" \
            --mode "$3" --batch "$4" --precision "$5" --warmup 5 --iters 20 --json
    }
    # PyTorch's BatchNorm forward on LibTorch (crates/cnnzoo-kernels/src/torch.rs, the default):
    # if a short training step fails with it, the run goes on with Burn's composed BatchNorm.
    if ! timeout 60 $bin --device libtorch bench --model resnet20 --batch 8 --warmup 1 --iters 2 \
        --json >>"$log" 2>&1; then
        echo "LibTorch smoke test failed: CNNZOO_TORCH_BN=burn from here on" | tee -a "$log"
        export CNNZOO_TORCH_BN=burn
    fi
    # Most informative first: an interrupted run still leaves the main numbers.
    local groups=${GPU_GROUPS:-"resnet50 fmnist bn cifar half tf32 vulkan"} group p
    for group in $groups; do
        case $group in
            resnet50)
                bench libtorch resnet50 infer 64 f32 75
                bench libtorch resnet50 infer 64 bf16 75
                torch_cases 150 resnet50:infer:64:fp32 resnet50:infer:64:amp-bf16:cl \
                    resnet50:train:256:fp32 resnet50:train:256:amp-bf16:cl
                bench libtorch resnet50 train 256 bf16 100
                bench libtorch resnet50 train 256 f32 100
                ;;
            bn) # BatchNorm all Burn's, and all PyTorch's (backward too, opt-in), for the difference
                bench libtorch+nativebn resnet50 train 256 f32 100
                bench libtorch+nativebn resnet50 train 256 bf16 100
                bench libtorch+burnbn resnet50 train 256 f32 100
                bench libtorch+burnbn resnet50 infer 64 f32 60
                ;;
            cifar)
                bench libtorch resnet20 train 512 bf16 60
                bench libtorch resnet56 train 512 bf16 60
                bench libtorch resnet20 train 512 f32 60
                bench libtorch resnet56 train 512 f32 60
                torch_cases 90 resnet20:train:512:fp32 resnet20:train:512:amp-bf16:cl \
                    resnet56:train:512:fp32 resnet56:train:512:amp-bf16:cl
                ;;
            fmnist) # the trainer end to end: the same short Fashion-MNIST run in f32 and bf16
                # (bn-p: PyTorch's BatchNorm backward too, the check that lets it be the default)
                for p in f32 bf16 bn-f32 bn-bf16; do
                    if [ $SECONDS -ge "$budget" ]; then echo "train-$p: skipped" | tee -a "$log"; continue; fi
                    rm -rf "/tmp/fm-$p"
                    local mode=forward
                    [ "${p#bn-}" != "$p" ] && mode=native
                    CNNZOO_TORCH_BN=${CNNZOO_TORCH_BN:-$mode} timeout 100 $bin --device libtorch train \
                        --model resnet20 --dataset fashion-mnist --data-dir .gpu/fmnist --subset 12000 \
                        --epochs 3 --seed 0 --precision "${p#bn-}" --out "/tmp/fm-$p" >>"$log" 2>&1
                    echo "train-$p: rc=$?" | tee -a "$log"
                    [ -f "/tmp/fm-$p/metrics.jsonl" ] && while read -r l; do
                        echo "{\"case\":\"fmnist-resnet20-libtorch-$p\",\"result\":$l}" >>"$jsonl"
                    done <"/tmp/fm-$p/metrics.jsonl"
                done
                ;;
            half)
                bench libtorch resnet50 infer 64 f16 60
                bench libtorch resnet50 train 256 f16 90
                ;;
            vulkan)
                { ldconfig -p | grep -i vulkan; ls /usr/share/vulkan/icd.d /etc/vulkan/icd.d \
                    /usr/local/nvidia/share/vulkan/icd.d; echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"; } >>"$log" 2>&1
                bench vulkan resnet50 infer 64 f32 90
                bench vulkan resnet50 infer 64 f16 90
                ;;
            tf32) torch_cases 60 resnet50:infer:64:tf32 resnet50:train:256:tf32 ;;
            *) echo "unknown group $group" | tee -a "$log" ;;
        esac
    done
    return 0
}

case "${1:-}" in
    prepare) prepare "${2:-}" ;;
    run) run "${2:?output folder}" ;;
    report) python3 bench/reference/gpu_report.py "${2:?gpu.jsonl}" results/gpu.md results/gpu/notes.md ;;
    *) echo "usage: $0 prepare [DATA_DIR] | run OUTDIR | report JSONL" >&2; exit 2 ;;
esac
