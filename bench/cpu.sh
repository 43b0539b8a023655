#!/usr/bin/env bash
# cnnzoo vs PyTorch on this CPU, side by side: every case runs `cnnzoo bench --json` and the
# PyTorch reference (bench/reference/cpu_bench.py) alternately, ROUNDS times (which goes first
# alternates per round), on the same network, batch, input, mode and thread count. Writes
# results/cpu/cpu_bench.jsonl (one line per arm and round) and results/cpu_bench.md (median
# images/s of each arm, the ratio cnnzoo / PyTorch, peak RSS of each).
#
# Usage: bench/cpu.sh [run|report|all]
#   PYTHON (default python3) needs torch and timm; THREADS (default 2); ROUNDS (default 2);
#   CASES: a regular expression picking cases by their name (default: all); LOG: the jsonl
#   file (default results/cpu/cpu_bench.jsonl); BIN: a cnnzoo binary to measure instead of
#   this checkout's (e.g. an earlier commit's build, to compare a change side by side; see
#   bench/reference/cpu_compare.py).
# An interrupted run continues where it stopped: (case, arm, round) lines already in the
# jsonl file are not measured again. Delete the file to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
python=${PYTHON:-python3}
threads=${THREADS:-2}
rounds=${ROUNDS:-2}
pick=${CASES:-.}
log=${LOG:-results/cpu/cpu_bench.jsonl}
bin=${BIN:-target/debug/cnnzoo}

# name | model | mode | batch | CxHxW | classes | extra flags | warm-up | timed iterations
cases="
resnet20-train-b128|resnet20|train|128|3x32x32|10||2|8
resnet56-train-b128|resnet56|train|128|3x32x32|10||1|4
resnext29_8x64d-train-b32|resnext29_8x64d|train|32|3x32x32|10||1|3
seresnet20-train-b128|seresnet20|train|128|3x32x32|10||2|8
densenet_bc100_k12-train-b64|densenet_bc100_k12|train|64|3x32x32|10||1|4
resnet50-infer-b1|resnet50|infer|1|3x224x224|1000||2|10
resnet50-infer-b8|resnet50|infer|8|3x224x224|1000||1|5
resnet50-infer-b8-fused|resnet50|infer|8|3x224x224|1000|--fuse-bn|1|5
seresnext50_32x4d-infer-b8|seresnext50_32x4d|infer|8|3x224x224|1000||1|5
"

done_already() { # case arm round
    [ -f "$log" ] && grep -q "\"case\": \"$1\", \"arm\": \"$2\", \"round\": $3}" "$log"
}

measure() { # case arm round json
    printf '%s\n' "${4%\}}, \"case\": \"$1\", \"arm\": \"$2\", \"round\": $3}" >>"$log"
}

run() {
    # The dev profile builds every dependency with opt-level 3 (see Cargo.toml): as fast as
    # --release, and it shares the test suite's warm build.
    [ -n "${BIN:-}" ] || cargo build -q
    mkdir -p "$(dirname "$log")"
    while IFS='|' read -r name model mode batch input classes extra warmup iters; do
        [ -z "$name" ] && continue
        [[ "$name" =~ $pick ]] || continue
        params=$($bin summary "$model" --input "$input" --classes "$classes" |
            sed -n 's/^parameters: \([0-9,]*\).*/\1/p' | tr -d ,)
        for round in $(seq 1 "$rounds"); do
            arms=(cnnzoo pytorch)
            [ $((round % 2)) -eq 0 ] && arms=(pytorch cnnzoo)
            for arm in "${arms[@]}"; do
                done_already "$name" "$arm" "$round" && continue
                echo "== $name: $arm, round $round/$rounds" >&2
                if [ "$arm" = cnnzoo ]; then
                    # shellcheck disable=SC2086
                    json=$($bin bench --model "$model" --mode "$mode" --batch "$batch" \
                        --input "$input" --classes "$classes" --threads "$threads" \
                        --warmup "$warmup" --iters "$iters" --json $extra)
                else
                    # shellcheck disable=SC2086
                    json=$("$python" bench/reference/cpu_bench.py --model "$model" --mode "$mode" \
                        --batch "$batch" --input "$input" --classes "$classes" \
                        --threads "$threads" --warmup "$warmup" --iters "$iters" \
                        --expect-params "$params" $extra)
                fi
                measure "$name" "$arm" "$round" "$json"
            done
        done
    done <<<"$cases"
}

report() {
    "$python" bench/reference/cpu_report.py --log "$log" --out results/cpu_bench.md \
        --command "bench/cpu.sh all (THREADS=$threads ROUNDS=$rounds)" \
        --notes results/cpu/history.md
    cat results/cpu_bench.md
}

case "$what" in
    run) run ;;
    report) report ;;
    all) run; report ;;
    *) echo "usage: $0 [run|report|all]" >&2; exit 2 ;;
esac
