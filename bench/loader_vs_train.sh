#!/usr/bin/env bash
# The loader alone vs the training step it feeds (issue: the loader must deliver >= 10x the
# training step's images/s). Writes results/loader_vs_train.md.
# Usage: bench/loader_vs_train.sh [DATA_DIR]   (default: ../shared/data/fashion-mnist)
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/data/fashion-mnist}
# The dev profile builds every dependency with opt-level 3 (Cargo.toml): as fast as --release.
cargo build -q
bin=target/debug/cnnzoo
mkdir -p results
run=$(mktemp -d)
loader=$($bin data bench --dataset fashion-mnist --data-dir "$data" --batch-size 128 --epochs 2)
$bin train --model resnet20 --dataset fashion-mnist --data-dir "$data" --epochs 1 \
    --subset 3840 --test-subset 256 --batch-size 128 --out "$run/r20" >/dev/null 2>&1
train_ips=$(python3 -c "import json,sys; print(round(json.loads(open(sys.argv[1]).readline())['images_per_sec'],1))" "$run/r20/metrics.jsonl")
loader_ips=$(echo "$loader" | sed -E 's/.*: ([0-9]+) images\/s/\1/')
ratio=$(python3 -c "print(round($loader_ips/$train_ips,1))")
{
    echo "# Loader vs training step (Fashion-MNIST, resnet20, batch 128)"
    echo
    echo "Command: \`bench/loader_vs_train.sh $data\`"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) threads."
    echo
    echo "| what | images/s |"
    echo "|---|---:|"
    echo "| loader alone (decode, 2-px crop + flip, normalise, batch, prefetch) | $loader_ips |"
    echo "| training step (forward, loss, backward, SGD) | $train_ips |"
    echo "| ratio loader / step | ${ratio}x |"
} > results/loader_vs_train.md
cat results/loader_vs_train.md
rm -rf "$run"
