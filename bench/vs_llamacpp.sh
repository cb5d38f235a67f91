#!/usr/bin/env bash
# CPU prefill and decode against llama.cpp on the same model shape (DESIGN.md section 7).
# llama.cpp is not part of kvshare: build it yourself (CPU only) and point this script at its
# llama-bench and at an F32 GGUF of the model (llama-quantize --allow-requantize IN OUT F32
# makes one from any GGUF). kvshare runs MODEL: a file of the same shape (`kvshare init
# smol.kvs --preset smollm2-135m` for SmolLM2-135M; speed does not depend on the weights'
# values), or a checkpoint of the same model. Each round runs llama-bench (-p PROMPT -n
# STEPS, one repetition) and `kvshare bench decode` (--prompt PROMPT -n STEPS, one repeat
# after its warm-up) in turn, per thread count; the table has the medians of RUNS rounds and
# their ratios. With OLD=path/to/another/kvshare it times that binary too, in the same
# rounds (a before-and-after).
#
# usage: bench/vs_llamacpp.sh LLAMA_BENCH MODEL.gguf KVSHARE_MODEL [KVSHARE_BIN]
#   env: RUNS (default 3), THREADS (default "1 2"), PROMPT (default 128), STEPS (default 32),
#        OLD (a second kvshare binary, optional)
#
# llama-bench's tg test decodes STEPS tokens from an empty context; kvshare's decode follows
# its PROMPT-token prefill, so its attention reads a little more (at 128 + 32 positions, a
# few percent of a step of a 135M model).
set -eu
if [ $# -lt 3 ] || [ ! -x "$1" ] || [ ! -f "$2" ]; then
    echo "usage: bench/vs_llamacpp.sh LLAMA_BENCH MODEL.gguf KVSHARE_MODEL [KVSHARE_BIN]" >&2
    exit 1
fi
LB=$1
GGUF=$2
MODEL=$3
KVS=$(realpath "${4:-./kvshare}")
RUNS=${RUNS:-3}
THREADS=${THREADS:-"1 2"}
PROMPT=${PROMPT:-128}
STEPS=${STEPS:-32}
OLD=${OLD:-}
[ -x "$KVS" ] || { echo "vs_llamacpp: no kvshare binary at $KVS (run make first)" >&2; exit 1; }

llama() {  # threads -> "prefill decode" tokens/s
    "$LB" -m "$GGUF" -p "$PROMPT" -n "$STEPS" -t "$1" -r 1 -o csv 2>/dev/null |
        awk -F, '{gsub(/"/, "")}
                 NR == 1 {for (i = 1; i <= NF; i++) col[$i] = i; next}
                 $col["n_gen"] == 0 {p = $col["avg_ts"]} $col["n_prompt"] == 0 {d = $col["avg_ts"]}
                 END {print p, d}'
}
kvs() {  # binary threads -> "prefill decode" tokens/s
    OMP_NUM_THREADS=$2 "$1" bench decode "$MODEL" --prompt "$PROMPT" -n "$STEPS" --repeats 1 2>/dev/null |
        awk '/^prefill/ {p = $2} /^decode/ {d = $2} END {print p, d}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo "llama.cpp: $LB on $GGUF; kvshare: $KVS on $MODEL${OLD:+; before: $OLD}"
echo "prefill of $PROMPT tokens and decode of $STEPS, tokens/s, median of $RUNS rounds in turn; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-7s %-8s %10s %10s %10s %10s %10s\n' threads what llama.cpp kvshare ratio before "after/before"
for th in $THREADS; do
    lp=(); ld=(); kp=(); kd=(); op=(); od=()
    for _ in $(seq "$RUNS"); do
        read -r a b <<< "$(llama "$th")"; lp+=("$a"); ld+=("$b")
        read -r a b <<< "$(kvs "$KVS" "$th")"; kp+=("$a"); kd+=("$b")
        if [ -n "$OLD" ]; then read -r a b <<< "$(kvs "$OLD" "$th")"; op+=("$a"); od+=("$b"); fi
    done
    for what in prefill decode; do
        if [ $what = prefill ]; then l=$(median "${lp[@]}"); k=$(median "${kp[@]}"); o=${op[*]:+$(median "${op[@]}")}
        else l=$(median "${ld[@]}"); k=$(median "${kd[@]}"); o=${od[*]:+$(median "${od[@]}")}; fi
        printf '%-7s %-8s %10.1f %10.1f %9sx %10s %10s\n' "$th" "$what" "$l" "$k" "$(ratio "$k" "$l")" "${o:--}" \
            "$([ -n "$o" ] && echo "$(ratio "$k" "$o")x" || echo -)"
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
