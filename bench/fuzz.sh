#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser (fuzz/fuzz_targets/*.rs) with cargo-fuzz on the
# nightly toolchain, RUNS executions per target, and the table in results/fuzz.md.
#   bench/fuzz.sh                      # all targets, 10^6 executions each
#   RUNS=100000 bench/fuzz.sh idx npy  # some targets, fewer executions
# Needs: rustup's nightly toolchain and `cargo install cargo-fuzz`. Built without a sanitizer
# (Rust's own checks catch out-of-bounds and overflow: -a turns debug assertions and overflow
# checks on); every crash lands in fuzz/artifacts/TARGET/ and fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-1000000}
ALL=(idx cifar image folder npy state_dict checkpoint hub_config)
TARGETS=("${@:-${ALL[@]}}")
command -v cargo-fuzz >/dev/null || { echo "needs cargo-fuzz: cargo install cargo-fuzz"; exit 1; }
FLAGS=(-s none -a)
cargo +nightly fuzz build "${FLAGS[@]}"

# Largest input per target: enough for the seeds, small enough to stay fast.
max_len() {
    case $1 in
        state_dict) echo 8192 ;;
        checkpoint) echo 16384 ;;
        image) echo 4096 ;;
        cifar) echo 8192 ;;
        *) echo 2048 ;;
    esac
}

log=$(mktemp -d)
rows=()
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
    echo "== $t: $RUNS executions"
    start=$(date +%s)
    status=0
    cargo +nightly fuzz run "${FLAGS[@]}" "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
        -runs="$RUNS" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 >"$log/$t.txt" 2>&1 || status=$?
    secs=$(( $(date +%s) - start ))
    tail -n 25 "$log/$t.txt"
    execs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log/$t.txt" || echo 0)
    cov=$(grep -oP '#[0-9]+\s+DONE\s+cov: \K[0-9]+' "$log/$t.txt" | tail -1 || true)
    crashes=$(find "fuzz/artifacts/$t" -type f 2>/dev/null | wc -l)
    rows+=("| \`$t\` | $execs | $secs | ${cov:-?} | $(ls "fuzz/corpus/$t" | wc -l) | $crashes |")
    if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        echo "$t: crash or failure (exit $status); inputs in fuzz/artifacts/$t"
        exit 1
    fi
done

{
    echo "# Fuzzing the parsers"
    echo
    echo "Command: \`RUNS=$RUNS bench/fuzz.sh ${TARGETS[*]}\` ($(date -u +%Y-%m-%d), $(nproc) cores,"
    echo "$(cargo +nightly --version | cut -d' ' -f1-2), cargo-fuzz $(cargo fuzz --version | cut -d' ' -f2), no sanitizer, debug"
    echo "assertions and overflow checks on). Each target starts from \`fuzz/seeds/TARGET\` (valid"
    echo "files of the format) and its saved corpus in \`fuzz/corpus/TARGET\`."
    echo
    echo "| target | executions | seconds | coverage (edges) | corpus | crashes |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
} > "$log/table.md"
cat "$log/table.md"
echo "(table in $log/table.md; results/fuzz.md keeps it with the findings)"
