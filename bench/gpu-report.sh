#!/usr/bin/env bash
# make gpu-report: checks and measures kvshare's whole CUDA path on this machine's GPU in
# one run, and writes everything into one folder.
#
#   bash bench/gpu-report.sh [--out DIR] [--build DIR] [--jobs N] [--time-limit S]
#                            [--cap STAGE=S]... [--dry-run]
#   bash bench/gpu-report.sh --summarize DIR    # DIR/summary.txt again, from its stage files
#
#   --out DIR         the report folder (default gpu-report); a previous report there is
#                     replaced, any other non-empty folder refused
#   --build DIR       where kvshare and the tests are built for this GPU (default build-gpu)
#   --jobs N          parallel compile jobs (default: nproc)
#   --time-limit S    the whole run's limit (default 350 s); a stage gets what is left, at most
#   --cap STAGE=S     one stage's own limit instead of the one below (a slower GPU, a rerun)
#   --dry-run         print the stages and their commands; needs no GPU, writes nothing
# Environment: CATCH_INCLUDE (the folder holding catch2/catch.hpp where it is not installed,
# passed to make), NVCC, NVIDIA_SMI, COMPUTE_SANITIZER (found next to nvcc when unset), MAKE.
# Without a GPU (nvidia-smi lists none) it says so in one line and exits 1.
#
# Stages, in order. Each one's failure is reported and the later ones still run; the checks
# run side by side (they time nothing), the benchmarks one at a time on an idle GPU.
#   gpu                the GPU as the CUDA runtime reports it (bench/gpu_info.cu) and nvidia-smi
#   build              kvshare and the tests, for this GPU's architecture only
#   tests              every [cuda] test, KVSHARE_CUDA_SYNC=1 (a fault names its kernel)
#   sanitize-TOOL      compute-sanitizer memcheck, racecheck, synccheck and initcheck over the
#                      [sanitize] tests (every kernel and version at small shapes); a sanitizer
#                      that is missing or refuses the device is reported as such
#   kernels            bench kernels (GEMM at 4096^3, the memory-bound kernels, attention)
#   plans-stories15M   bench plans, stories15M shape, --device both (the CPU side is cheap)
#   plans-tinyllama    bench plans, TinyLlama shape (1.1B), cuda: standard, cla:2, lckv:2
#   prefill-stories15M bench prefill, stories15M, --device both
#   prefill-tinyllama  bench prefill, TinyLlama, cuda: standard and lckv:2
#   throughput         bench throughput --sweep --svg, stories110M shape at a 1 GiB budget
# The folder: summary.txt (the GPU, pass or fail and wall time per stage, the headline
# figures), stages.tsv (per stage: name, result, seconds, note; tab-separated), run.txt
# (the whole run's wall time), one STAGE.log per stage (gpu.log: the GPU in full), and
# throughput.svg and throughput.csv.
#
# Headline figures: the benchmarks print lines "headline: KEY VALUE UNIT"; summary.txt holds
# every such line of every log. The keys (B batch, M model, N size, P plan, T iterations;
# a "_cpu" after M marks the CPU's figure, none the GPU's):
#   copy_gbs                          device-to-device copy, read + write (bench kernels)
#   cublas_sgemm_gflops_N             cuBLAS SGEMM at N^3, fp32, no TF32
#   gemm_best_pct_cublas_N            the best hand-written GEMM at N^3, % of cuBLAS
#   gemm_decode_b1_best_pct_copy      the best GEMM at one row (4096 x 11008), % of copy
#   memory_kernels_pct_copy           the weakest of the memory-bound kernels' best versions
#   attention_prefill_best_pct_sgemm  prefill attention at 2048 tokens, % of the SGEMM rate
#   attention_prefill_pct_fma_2048    auto prefill attention at 2048 tokens (TinyLlama heads), % of FMA
#   gemm_dispatch_min_pct_cublas_n32plus  gemm(0)'s weakest TinyLlama projection, 32..2048 rows, % cuBLAS
#   gemm_dispatch_min_pct_copy_n_lt32 gemm(0)'s weakest TinyLlama projection below 32 rows, % of copy
#   attention_decode_best_pct_copy    decode attention's weaker shape at its best version
#   decode_bB_M[_P]_tok_s             decode tokens/s of standard (or P) (bench plans)
#   decode_bB_M[_P]_pct_copy          the bytes a decode step must read, as % of copy
#   decode_bB_M[_P]_host_us_per_step  host time issuing a decode step (GPU only; graphs)
#   prefill_nN_M_tok_s                standard's one-pass prefill of N tokens (bench prefill)
#   prefill_nN_M_P_TT_vs_tbt          an iterating plan's last T, time / its token by token
#   throughput_M_standard_tok_s       tokens/s at the budget (bench throughput)
#   throughput_M_P_batch              the batch that fit the budget
#   throughput_M_P_vs_standard        tokens/s over standard's: the plan's gain at the budget
# Keys are letters, digits and '_' (a plan's ':' and '-' become '_'). A new headline needs
# a line here and one in the README's "On a GPU".
#
# Time, on one H200 (132 SMs, about 4.3 TB/s of measured copy, 67 TFLOP/s of fp32 by the
# datasheet) with 16 cores. No GPU has run this yet, so these are estimates: CPU seconds
# measured on a 2-core EPYC without a GPU (a busy machine inflates wall time, not CPU time),
# and the GPU's share worked out from the datasheet. Each stage's cap (the last column) is
# several times its estimate, to stop a hang, not to fit a budget.
#   gpu                 5 s  nvcc of one small file (6.6 s wall on the EPYC), nvidia-smi   30 s
#   build              35 s  52 files, one architecture: 156 CPU-s (10 s on 16 cores),   240 s
#                            but the longest file bounds it: tests/main.cpp (Catch2's
#                            runner) 25 CPU-s; nvcc's longest, bench_kernels.cu, 8
#   tests, sanitize-*  30 s  side by side: the [cuda] tests (CPU references of small     150 s
#                            models) and four sanitizers over about 200 small launches,
#                            where instrumenting each kernel once dominates
#   kernels            15 s  GEMM v1 at 4096^3: 137 GFLOP at 1 to 3 TFLOP/s, 6 runs; the     60 s
#                            model-shape table: 81 shapes x 8 variants x 4 batches of ~1 ms,
#                            and v1, v2 over 0.6 TFLOP of shapes 4 times
#   plans-stories15M    8 s  5 plans x 2 devices x 4 rounds of 32 + 64 tokens, a step of   40 s
#                            milliseconds on either
#   plans-tinyllama    12 s  3 random 1.1B models: 24 CPU-s of random numbers each on      60 s
#                            the EPYC, about 2 s on 16 cores, and 4.4 GB each to upload;
#                            then 4 rounds of 32 + 32 tokens at 2 to 3 ms a step
#   prefill-stories15M  6 s  like plans-stories15M, prefill only                           40 s
#   prefill-tinyllama  10 s  2 models; lckv:2 runs a 20-layer block up to 9 times          60 s
#   throughput         20 s  stories110M: 0.44 GB of weights, and per sequence 8.4 MB      90 s
#                            for standard (7.1 of it KV at 96 positions), 4.9 for cla:2,
#                            3.1 for lckv:2: batches of about 75, 130 and 200 in 1 GiB;
#                            a step at 200 rows about 10 ms (version 4's 128-row tiles
#                            make 12 to 32 blocks), 64 steps a run, 5 plans and sweeps
# Sum about 140 s. The whole run stops at --time-limit (350 s): a stage that would run past
# it is cut there (TIMEOUT) or not started (skipped), so the report always comes in time.
set -u

NVIDIA_SMI=${NVIDIA_SMI:-nvidia-smi}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
MAKE=${MAKE:-make}
CATCH_INCLUDE=${CATCH_INCLUDE:-}

die() {
    echo "gpu-report: error: $*" >&2
    exit 1
}

# ---- arguments -------------------------------------------------------------------------
OUT=gpu-report
BUILD=build-gpu
JOBS=$(nproc 2>/dev/null || echo 4)
TIME_LIMIT=350
DRY_RUN=0
SUMMARIZE=
declare -A CAP_OVERRIDE=()

need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
is_count() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ]; }

while [ $# -gt 0 ]; do
    case $1 in
        -h|--help) sed -n '2,/^set -u$/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        --out) need_value "$@"; OUT=$2; shift 2 ;;
        --build) need_value "$@"; BUILD=$2; shift 2 ;;
        --jobs) need_value "$@"; is_count "$2" || die "--jobs: '$2' is not a positive number"; JOBS=$2; shift 2 ;;
        --time-limit) need_value "$@"; is_count "$2" || die "--time-limit: '$2' is not a positive number of seconds"
                      TIME_LIMIT=$2; shift 2 ;;
        --cap) need_value "$@"
               [[ $2 =~ ^([a-zA-Z0-9-]+)=([0-9]+)$ ]] && [ "${BASH_REMATCH[2]}" -ge 1 ] ||
                   die "--cap: '$2' is not STAGE=SECONDS"
               CAP_OVERRIDE[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}; shift 2 ;;
        --dry-run) DRY_RUN=1; shift ;;
        --summarize) need_value "$@"; SUMMARIZE=$2; shift 2 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# Paths as given from here, then everything runs from the repository's root.
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
OUT=$(absolute "$OUT"); BUILD=$(absolute "$BUILD")
[ -n "$SUMMARIZE" ] && SUMMARIZE=$(absolute "$SUMMARIZE")
[ -n "$CATCH_INCLUDE" ] && CATCH_INCLUDE=$(absolute "$CATCH_INCLUDE")
cd "$(dirname "$0")/.." || exit 1

# ---- the stages ------------------------------------------------------------------------
# Parallel arrays, in run order. GROUP: stages of one group run side by side.
NAMES=(); CAPS=(); CMDS=(); GROUPS_=()
add_stage() {  # NAME CAP GROUP COMMAND
    NAMES+=("$1"); CAPS+=("${CAP_OVERRIDE[$1]:-$2}"); GROUPS_+=("$3"); CMDS+=("$4")
}

# The GPU's architecture for nvcc: 9.0 -> sm_90; -arch=native where nvidia-smi cannot say.
gpu_arch() {
    local cc
    cc=$("$NVIDIA_SMI" --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
    if [[ $cc =~ ^[0-9]+$ ]]; then echo "-gencode arch=compute_$cc,code=sm_$cc"; else echo "-arch=native"; fi
}

# compute-sanitizer: as given, else next to nvcc, else on the PATH; empty when missing.
find_sanitizer() {
    if [ -n "${COMPUTE_SANITIZER:-}" ]; then echo "$COMPUTE_SANITIZER"; return; fi
    local here f
    here=$(dirname "$(readlink -f "$NVCC" 2>/dev/null || echo "$NVCC")")
    for f in "$here/compute-sanitizer" "$here/../compute-sanitizer/compute-sanitizer"; do
        if [ -x "$f" ]; then echo "$f"; return; fi
    done
    command -v compute-sanitizer || true
}

define_stages() {
    local q_out q_build k t san arch catch=
    q_out=$(printf %q "$OUT"); q_build=$(printf %q "$BUILD")
    k="$q_build/kvshare"; t="$q_build/run_tests"
    arch=$(gpu_arch)
    san=$(find_sanitizer)
    [ -n "$CATCH_INCLUDE" ] && catch=" CATCH_INCLUDE=$(printf %q "$CATCH_INCLUDE")"
    local smi
    smi=$(printf %q "$NVIDIA_SMI")
    add_stage gpu 30 gpu "mkdir -p $q_build && $(printf %q "$NVCC") -O2 -o $q_build/gpu_info bench/gpu_info.cu && $q_build/gpu_info; rc=\$?; $smi --query-gpu=index,name,driver_version,memory.total,clocks.max.sm,clocks.max.memory,power.limit --format=csv,noheader | sed 's/^/nvidia-smi: /'; $smi; exit \$rc"
    add_stage build 240 build "$(printf %q "$MAKE") -j$JOBS BUILD=$q_build BIN=$q_build/kvshare CUDA_ARCH='$arch'$catch $q_build/kvshare $q_build/run_tests"
    # SKIPPED: from tests/skip_without_gpu.h would mean the tests found no usable GPU
    add_stage tests 150 checks "KVSHARE_CUDA_SYNC=1 $t '[cuda]' && ! grep -q '^  SKIPPED: ' $q_out/tests.log"
    local tool
    for tool in memcheck racecheck synccheck initcheck; do
        if [ -n "$san" ]; then
            add_stage "sanitize-$tool" 150 checks "$(printf %q "$san") --tool $tool --error-exitcode 99 $t '[sanitize]'"
        else
            add_stage "sanitize-$tool" 150 checks "echo 'compute-sanitizer: not found next to nvcc or on the PATH'; exit 3"
        fi
    done
    add_stage kernels 60 kernels "$k bench kernels --runs 5 --warmup 1"
    add_stage plans-stories15M 40 plans-s "$k bench plans --preset stories15M --device both --repeats 3"
    add_stage plans-tinyllama 60 plans-t "$k bench plans --preset tinyllama --device cuda --plans 'standard cla:2 lckv:2' -n 32 --repeats 3"
    add_stage prefill-stories15M 40 prefill-s "$k bench prefill --preset stories15M --device both --repeats 3"
    add_stage prefill-tinyllama 60 prefill-t "$k bench prefill --preset tinyllama --device cuda --plans 'standard lckv:2' --repeats 3"
    add_stage throughput 90 throughput "$k bench throughput --preset stories110M --device cuda --prompt 32 -n 64 --budget 1G --max-batch 512 --sweep --svg $q_out/throughput.svg --csv $q_out/throughput.csv"
}

# ---- running a stage -------------------------------------------------------------------
START=$(date +%s.%N)
elapsed() { echo "$(date +%s.%N) $START" | awk '{printf "%.1f", $1 - $2}'; }
left() { echo "$(date +%s.%N) $START $TIME_LIMIT" | awk '{printf "%d", $3 - ($1 - $2)}'; }

# What a sanitizer's exit status means: 0 clean, 99 errors found (--error-exitcode), 3 not
# installed. Otherwise either the sanitizer itself gave up (it prints "========= Error: ...",
# e.g. "Device not supported" where the machine cannot be instrumented) or the tests failed
# under it, after which it still prints its ERROR SUMMARY.
sanitizer_status() {  # RC LOG -> "status<TAB>note"
    local rc=$1 log=$2 first
    case $rc in
        0) printf 'pass\t\n' ;;
        99) printf 'FAIL\t%s\n' "$(grep -m1 'ERROR SUMMARY' "$log" | sed 's/^=* *//')" ;;
        3) printf 'missing\tcompute-sanitizer not found\n' ;;
        124|137) printf 'TIMEOUT\t\n' ;;
        *) first=$(grep -m1 '^=* *Error: ' "$log" | sed 's/^=* *//' | cut -c1-100)
           if [ -n "$first" ] || ! grep -q 'ERROR SUMMARY' "$log"; then
               printf 'refused\t%s\n' "${first:-exit $rc before it ran the tests}"
           else
               printf 'FAIL\tthe tests failed under it (exit %s)\n' "$rc"
           fi ;;
    esac
}

# Runs stage I with its cap (at most the time left), its output in OUT/NAME.log; writes
# "name<TAB>status<TAB>seconds<TAB>note" to OUT/.stages/I.
run_stage() {
    local i=$1 name=${NAMES[$1]} log="$OUT/${NAMES[$1]}.log" cap=${CAPS[$1]} remaining t0 rc status note line
    remaining=$(left)
    [ "$remaining" -lt "$cap" ] && cap=$remaining
    if [ "$remaining" -lt 3 ]; then
        printf '%s\tskipped\t0.0\tout of time (--time-limit %s)\n' "$name" "$TIME_LIMIT" > "$OUT/.stages/$i"
        return
    fi
    t0=$(date +%s.%N)
    timeout -k 10 "$cap" bash -o pipefail -c "${CMDS[$i]}" > "$log" 2>&1 < /dev/null
    rc=$?
    local seconds
    seconds=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1 - $2}')
    note=
    case $name in
        sanitize-*) line=$(sanitizer_status "$rc" "$log"); status=${line%%$'\t'*}; note=${line#*$'\t'} ;;
        *) if [ "$rc" -eq 0 ]; then status=pass
           elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then status=TIMEOUT
           else status=FAIL; note="exit $rc"; fi ;;
    esac
    [ "$status" = TIMEOUT ] && note="stopped at its ${cap} s limit"
    [ "$status" = FAIL ] && [ -z "$note" ] && note="exit $rc"
    if [ "$status" = FAIL ] && [ -z "${note##exit*}" ]; then  # the last error line says more
        line=$(grep -i -m1 -E 'error|FAILED|failed' "$log" | cut -c1-90)
        [ -n "$line" ] && note="$note: $line"
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$seconds" "$note" > "$OUT/.stages/$i"
    echo "gpu-report: $name: $status (${seconds} s)${note:+, $note}"
}

# ---- the summary -----------------------------------------------------------------------
# DIR/stages.tsv and the headline lines of DIR/*.log -> DIR/summary.txt (printed too).
# Exit status: 1 when a stage failed, timed out or was skipped; 0 otherwise (a missing or
# refusing sanitizer is reported, not failed).
summarize() {
    local dir=$1 tsv="$1/stages.tsv" sum="$1/summary.txt"
    [ -f "$tsv" ] || die "$dir has no stages.tsv: not a gpu-report folder"
    {
        echo "kvshare gpu-report, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
        if [ -f "$dir/gpu.log" ]; then
            awk -F': ' '/^device 0: /{name=$2} /^  multiprocessors: /{sms=$2} /^  memory: /{mem=$2}
                       /^  sm clock \(max\): /{sm=$2} /^  memory clock \(max\): /{mc=$2} /^cuda runtime: /{rt=$2}
                       END {if (name != "") printf "GPU: %s, %s SMs, %s, SM clock %s, memory clock %s, CUDA runtime %s\n",
                                                   name, sms, mem, sm, mc, rt}' "$dir/gpu.log"
            awk -F', ' '/^nvidia-smi: 0, / && NF >= 7 {printf "nvidia-smi: driver %s, %s, max clocks SM %s and memory %s, power limit %s\n",
                                                               $3, $4, $5, $6, $7; exit}' "$dir/gpu.log"
        fi
        [ -f "$dir/run.txt" ] && cat "$dir/run.txt"
        echo
        awk -F'\t' 'BEGIN {printf "%-20s %-8s %8s  %s\n", "stage", "result", "seconds", "note"}
                    {printf "%-20s %-8s %8s  %s\n", $1, $2, $3, $4}' "$tsv"
        echo
        echo "headline figures (the benchmarks' \"headline:\" lines):"
        local name found=0 bad=0 line
        while IFS=$'\t' read -r name _; do
            [ -f "$dir/$name.log" ] || continue
            while IFS= read -r line; do
                if [[ $line =~ ^headline:\ ([A-Za-z0-9_.]+)\ (-?[0-9][0-9.e+-]*)\ (.+)$ ]]; then
                    printf '  %-44s %12s %s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"
                    found=$((found + 1))
                else
                    echo "  (unreadable, in $name.log: $line)"
                    bad=$((bad + 1))
                fi
            done < <(grep '^headline: ' "$dir/$name.log")
        done < "$tsv"
        [ "$found" -eq 0 ] && echo "  none: no benchmark finished"
        echo
        local failed
        failed=$(awk -F'\t' '$2 == "FAIL" || $2 == "TIMEOUT" || $2 == "skipped" {printf "%s%s", sep, $1; sep = ", "}' "$tsv")
        if [ -n "$failed" ]; then echo "not passed: $failed (see their .log files)"; else echo "every stage passed"; fi
        local others
        others=$(awk -F'\t' '$2 == "missing" || $2 == "refused" {printf "%s%s (%s)", sep, $1, $2; sep = ", "}' "$tsv")
        [ -n "$others" ] && echo "not run: $others"
    } > "$sum"
    cat "$sum"
    ! grep -q '^not passed: ' "$sum"
}

if [ -n "$SUMMARIZE" ]; then
    [ -d "$SUMMARIZE" ] || die "--summarize: no folder '$SUMMARIZE'"
    summarize "$SUMMARIZE"
    exit
fi

# ---- the run ---------------------------------------------------------------------------
if [ "$DRY_RUN" -eq 1 ]; then
    define_stages
    echo "gpu-report (dry run): report in $OUT/, build in $BUILD/, $JOBS jobs, time limit $TIME_LIMIT s"
    for i in "${!NAMES[@]}"; do
        printf '%-20s group %-10s cap %4s s  %s\n' "${NAMES[$i]}" "${GROUPS_[$i]}" "${CAPS[$i]}" "${CMDS[$i]}"
    done
    exit 0
fi

if ! command -v "$NVIDIA_SMI" > /dev/null; then
    die "no NVIDIA GPU found (no $NVIDIA_SMI here, so no NVIDIA driver); nothing to measure"
fi
gpus=$("$NVIDIA_SMI" -L 2>&1)
if [ $? -ne 0 ] || ! grep -q '^GPU [0-9]' <<< "$gpus"; then
    die "no NVIDIA GPU found ($NVIDIA_SMI -L: $(head -n 1 <<< "${gpus:-no output}" | cut -c1-80)); nothing to measure"
fi
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null)" ] && [ ! -f "$OUT/stages.tsv" ]; then
    die "$OUT exists and is not a gpu-report folder; give another --out"
fi
for name in "${!CAP_OVERRIDE[@]}"; do
    case " gpu build tests sanitize-memcheck sanitize-racecheck sanitize-synccheck sanitize-initcheck kernels plans-stories15M plans-tinyllama prefill-stories15M prefill-tinyllama throughput " in
        *" $name "*) ;;
        *) die "--cap: no stage '$name' (see --dry-run)" ;;
    esac
done
mkdir -p "$OUT" || die "cannot make $OUT"
rm -rf "$OUT/.stages" "$OUT"/*.log "$OUT/stages.tsv" "$OUT/summary.txt" "$OUT/run.txt" "$OUT"/throughput.*
mkdir -p "$OUT/.stages"
define_stages
echo "gpu-report: $(head -n 1 <<< "$gpus"); report in $OUT/, time limit $TIME_LIMIT s"

i=0
while [ "$i" -lt "${#NAMES[@]}" ]; do
    group=${GROUPS_[$i]}
    pids=()
    while [ "$i" -lt "${#NAMES[@]}" ] && [ "${GROUPS_[$i]}" = "$group" ]; do
        run_stage "$i" &
        pids+=($!)
        i=$((i + 1))
    done
    wait "${pids[@]}"
done
for i in "${!NAMES[@]}"; do cat "$OUT/.stages/$i"; done > "$OUT/stages.tsv"
rm -rf "$OUT/.stages"
echo "wall time $(elapsed) s of the $TIME_LIMIT s limit; the checks ran side by side, so the stages' seconds add up to more" > "$OUT/run.txt"
echo "gpu-report: done in $(elapsed) s"
echo
summarize "$OUT"
