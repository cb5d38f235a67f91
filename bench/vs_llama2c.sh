#!/usr/bin/env bash
# CPU decode against llama2.c's run.c (DESIGN.md section 7: "at least as fast as run.c built
# with the same flags and threads"). llama2.c is not part of kvshare: point this script at a
# checkout of it. It builds run.c twice, with the flags kvshare's Makefile uses and with
# -Ofast, writes random-weight llama2.c checkpoints of the given shapes with `kvshare init
# --llama2c`, checks that greedy text is the same from both programs, then runs them in
# turn RUNS times per thread count and prints median tokens/s and their ratios.
#
# usage: bench/vs_llama2c.sh LLAMA2C_DIR [KVSHARE_BIN]
#   env: RUNS (default 5), THREADS (default "1 2"), PRESETS (default "stories15M stories110M"),
#        STEPS (positions per run, default 256), TOKENIZER (default LLAMA2C_DIR/tokenizer.bin)
#
# Both programs time every position after the first: run.c counts the prompt positions in
# its "achieved tok/s" (it runs them one at a time, like decode), kvshare's decode rate
# counts the positions after its prefill. The prompt is one word, so the two cover the same
# positions but one or two.
set -eu
if [ $# -lt 1 ] || [ ! -f "$1/run.c" ]; then
    echo "usage: bench/vs_llama2c.sh LLAMA2C_DIR [KVSHARE_BIN]   (LLAMA2C_DIR must hold llama2.c's run.c)" >&2
    exit 1
fi
SRC=$1
KVS=$(realpath "${2:-./kvshare}")
RUNS=${RUNS:-5}
THREADS=${THREADS:-"1 2"}
PRESETS=${PRESETS:-"stories15M stories110M"}
STEPS=${STEPS:-256}
TOKENIZER=$(realpath "${TOKENIZER:-$SRC/tokenizer.bin}")
[ -x "$KVS" ] || { echo "vs_llama2c: no kvshare binary at $KVS (run make first)" >&2; exit 1; }
[ -f "$TOKENIZER" ] || { echo "vs_llama2c: no tokenizer at $TOKENIZER (set TOKENIZER=)" >&2; exit 1; }

T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
SAME_FLAGS="-O3 -march=native -fopenmp"  # kvshare's Makefile: CXXFLAGS -O3 -march=native, -fopenmp
FAST_FLAGS="-Ofast -march=native -fopenmp"
gcc $SAME_FLAGS -o "$T/run_same" "$SRC/run.c" -lm
gcc $FAST_FLAGS -o "$T/run_fast" "$SRC/run.c" -lm
PROMPT="Once"

run_c() {  # binary checkpoint threads -> tokens/s
    OMP_NUM_THREADS=$3 "$1" "$2" -t 0 -n "$STEPS" -i "$PROMPT" -z "$TOKENIZER" 2>&1 >/dev/null |
        sed -n 's/^achieved tok\/s: \([0-9.]*\).*/\1/p'
}
kvshare() {  # checkpoint threads -> decode tokens/s
    OMP_NUM_THREADS=$2 "$KVS" generate "$1" -z "$TOKENIZER" -t 0 -n "$STEPS" -i "$PROMPT" 2>&1 >/dev/null |
        sed -n 's/.*decode: .*(\([0-9.]*\) tok\/s).*/\1/p'
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo "run.c built with '$SAME_FLAGS' (kvshare's flags) and '$FAST_FLAGS'; kvshare: $KVS"
echo "greedy (-t 0), $STEPS positions, prompt \"$PROMPT\", median of $RUNS runs in turn; $(nproc) CPUs"
printf '%-12s %7s %12s %12s %12s %10s %10s\n' shape threads "run.c same" "run.c Ofast" kvshare "vs same" "vs Ofast"
status=0
for preset in $PRESETS; do
    ckpt="$T/$preset.bin"
    "$KVS" init "$ckpt" --preset "$preset" --llama2c -s 1 2>/dev/null
    # the same greedy text, a check that the two compute the same model
    OMP_NUM_THREADS=1 "$T/run_same" "$ckpt" -t 0 -n "$STEPS" -i "$PROMPT" -z "$TOKENIZER" > "$T/run.txt" 2>/dev/null
    OMP_NUM_THREADS=1 "$KVS" generate "$ckpt" -z "$TOKENIZER" -t 0 -n "$STEPS" -i "$PROMPT" > "$T/kvs.txt" 2>/dev/null
    if cmp -s "$T/run.txt" "$T/kvs.txt"; then text="same greedy text ($(wc -c < "$T/kvs.txt") bytes)"
    else text="GREEDY TEXT DIFFERS"; status=1; fi
    for th in $THREADS; do
        same=(); fast=(); kv=()
        for _ in $(seq "$RUNS"); do
            same+=("$(run_c "$T/run_same" "$ckpt" "$th")")
            fast+=("$(run_c "$T/run_fast" "$ckpt" "$th")")
            kv+=("$(kvshare "$ckpt" "$th")")
        done
        s=$(median "${same[@]}"); f=$(median "${fast[@]}"); k=$(median "${kv[@]}")
        printf '%-12s %7s %12.1f %12.1f %12.1f %9sx %9sx\n' "$preset" "$th" "$s" "$f" "$k" "$(ratio "$k" "$s")" "$(ratio "$k" "$f")"
    done
    echo "             $text"
done
exit $status
