#!/usr/bin/env bash
# ResNet-20 on Fashion-MNIST for 10 epochs on the CPU, cnnzoo and a PyTorch reference of the
# same recipe side by side; writes results/fashion_mnist_resnet20.md (per-epoch test accuracy
# and images/s of both).
#
# Recipe: 1x28x28 input, random crop with 2-px zero padding + horizontal flip, normalised by
# the training set's mean/std; SGD with Nesterov momentum 0.9, lr 0.1, weight decay 5e-4 on all
# parameters; one learning-rate cycle per run, stepped per iteration: linear warm-up over the
# first epoch, then cosine to zero; batch 128 (last partial batch kept); seed 0; 2 threads.
#
# Usage: bench/fashion_mnist_resnet20.sh [cnnzoo|pytorch|report|all] [DATA_DIR]
#   PYTHON (default python3) must have torch and numpy for the reference arm.
# An interrupted cnnzoo arm resumes from its last checkpoint when the script is run again.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
data=${2:-../shared/data/fashion-mnist}
python=${PYTHON:-python3}
runs=runs/bench-fmnist-r20
epochs=${EPOCHS:-10}
threads=${THREADS:-2}

cnnzoo_arm() {
    # The dev profile builds every dependency with opt-level 3 (see Cargo.toml), so it trains
    # as fast as --release and shares the warm build of the test suite.
    cargo build -q
    local resume=()
    [ -f "$runs/cnnzoo/last/state.json" ] && resume=(--resume)
    target/debug/cnnzoo train --threads "$threads" --model resnet20 --dataset fashion-mnist \
        --data-dir "$data" --epochs "$epochs" --batch-size 128 --optimizer sgd --lr 0.1 \
        --momentum 0.9 --nesterov --weight-decay 5e-4 --schedule cosine --warmup-epochs 1 \
        --pad-crop 2 --seed 0 --out "$runs/cnnzoo" "${resume[@]}"
}

pytorch_arm() {
    mkdir -p "$runs/pytorch"
    "$python" bench/reference/fashion_mnist_resnet20.py --data-dir "$data" --epochs "$epochs" \
        --threads "$threads" --out "$runs/pytorch/metrics.jsonl"
}

report() {
    "$python" bench/reference/report.py --cnnzoo "$runs/cnnzoo/metrics.jsonl" \
        --pytorch "$runs/pytorch/metrics.jsonl" --command "bench/fashion_mnist_resnet20.sh all $data" \
        --out results/fashion_mnist_resnet20.md --note "${NOTE:-}" \
        --cnnzoo-commit "${CNNZOO_COMMIT:-}"
    cat results/fashion_mnist_resnet20.md
}

case "$what" in
    cnnzoo) cnnzoo_arm ;;
    pytorch) pytorch_arm ;;
    report) report ;;
    all) cnnzoo_arm; pytorch_arm; report ;;
    *) echo "usage: $0 [cnnzoo|pytorch|report|all] [DATA_DIR]" >&2; exit 2 ;;
esac
