#!/usr/bin/env bash
# The trainer on Burn's LibTorch backend without a GPU: a small Fashion-MNIST run (resnet20,
# 2,000 evenly spaced training and test images, 2 epochs, batch 64, seed 0) in f32, bf16 and f16 on
# `--device libtorch-cpu`, written to results/libtorch_cpu.md. It checks the mixed-precision
# code paths end to end (autocast, f16 loss scaling, PyTorch's BatchNorm forward); bf16 and f16
# are emulated on a CPU, so it is slow (about 4 minutes each on 2 cores) and says nothing of
# speed.
#
# Needs the binary from `bench/gpu.sh prepare` (target/gpu/release/cnnzoo). The PyTorch wheel
# it was built against links the CUDA libraries, so they are fetched too (about 2.6 GB of pip
# wheels, once, into target/libtorch/deps) for the binary to load; no GPU is used.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/fashion-mnist}
TORCH_VERSION=${TORCH_VERSION:-2.11.0}
bin=target/gpu/release/cnnzoo
[ -x $bin ] || [ "${REPORT_ONLY:-0}" = 1 ] || { echo "run bench/gpu.sh prepare first" >&2; exit 1; }
deps=target/libtorch/deps
if [ "${REPORT_ONLY:-0}" != 1 ] && [ ! -d $deps/site/nvidia ]; then
    mkdir -p $deps/site
    python3 -m pip download -q "torch==$TORCH_VERSION" -d $deps
    for f in $deps/nvidia_*.whl; do unzip -q -o "$f" -d $deps/site; done
fi
libs=$PWD/target/libtorch/$TORCH_VERSION/torch/lib
for d in $(find "$PWD/$deps/site/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u); do libs=$libs:$d; done
export LD_LIBRARY_PATH=$libs

out=results/libtorch_cpu
mkdir -p $out
# REPORT_ONLY=1 rewrites the table from the kept metrics without training.
[ "${REPORT_ONLY:-0}" = 1 ] || for p in f32 bf16 f16; do
    rm -rf "/tmp/libtorch-cpu-$p"
    $bin --device libtorch-cpu train --model resnet20 --dataset fashion-mnist --data-dir "$DATA" \
        --subset 2000 --test-subset 2000 --epochs 2 --batch-size 64 --seed 0 --precision $p \
        --out "/tmp/libtorch-cpu-$p"
    cp "/tmp/libtorch-cpu-$p/metrics.jsonl" "$out/$p.jsonl"
done
python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
lines = [
    "# The trainer on LibTorch without a GPU: f32, bf16 and f16",
    "",
    "Command: `bench/libtorch_cpu.sh` (after `bench/gpu.sh prepare`). resnet20 on Fashion-MNIST, "
    "2,000 evenly spaced training and 2,000 evenly spaced test images, 2 epochs, batch 64, SGD 0.1 momentum 0.9, "
    "wd 5e-4, cosine, seed 0, `--device libtorch-cpu`. bf16 and f16 are mixed precision (the "
    "convolutions in the low type, f16 with dynamic loss scaling); on a CPU they are emulated, so "
    "images/s says nothing of a GPU. A check that every precision trains, not the 0.3-point "
    "comparison of issue 29, which is the GPU run's (12,000 images, 3 epochs).",
    "",
    "| precision | epoch | train loss | test loss | test top-1 % | images/s |",
    "|---|---:|---:|---:|---:|---:|",
]
for p in ("f32", "bf16", "f16"):
    for l in open(f"{out}/{p}.jsonl"):
        r = json.loads(l)
        lines.append(f"| {p} | {r['epoch']} | {r['train_loss']:.4f} | {r['test_loss']:.4f} | "
                     f"{100 * r['test_top1']:.2f} | {r['images_per_sec']:.1f} |")
open("results/libtorch_cpu.md", "w").write("\n".join(lines) + "\n")
PY
cat results/libtorch_cpu.md
