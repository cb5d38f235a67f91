#!/usr/bin/env bash
# make gpu-report: checks and measures kvshare's whole CUDA path on this machine's GPU in
# one run, and writes everything into one folder, packed into one archive beside its summary.
#
#   bash bench/gpu-report.sh [--out DIR] [--build DIR] [--jobs N] [--time-limit S]
#                            [--cap STAGE=S]... [--dry-run]
#   bash bench/gpu-report.sh --summarize DIR    # DIR/summary.txt and the archive again
#
#   --out DIR         the report folder (default gpu-report; an empty folder such as a borrowed
#                     machine's $OUT is fine); a previous report there is replaced, any other
#                     non-empty folder refused
#   --build DIR       where kvshare and the tests are built for this GPU (default build-gpu)
#   --jobs N          parallel compile jobs, and the threads shared by stages side by side
#                     (default: nproc)
#   --time-limit S    the whole run's limit (default 350 s); a stage gets what is left, at most
#   --cap STAGE=S     one stage's own limit instead of the one below (a slower GPU, a rerun)
#   --dry-run         print the stages and their commands; needs no GPU, writes nothing
# Environment: CATCH_INCLUDE (the folder holding catch2/catch.hpp where it is not installed,
# passed to make), CATCH_DEPS (another such folder to look in, default .deps), CXX (whose
# include path is searched for Catch2), NVCC, NVIDIA_SMI, COMPUTE_SANITIZER (found next to nvcc
# when unset), MAKE. Without a GPU (nvidia-smi lists none) it says so in one line and exits 1.
#
# A borrowed GPU machine has the CUDA toolkit and nothing else: no network, no Catch2. Bring
# Catch2 along (on a machine with it: mkdir -p .deps && cp -r /usr/include/catch2 .deps/) and
# run make gpu-report CATCH_INCLUDE=.deps GPU_REPORT=$OUT. Without Catch2 the benchmarks still
# run; the summary says the tests did not, and gives that line.
#
# Stages, most valuable first, as the time limit may cut the last ones. Each one's failure is
# reported and the later ones still run; a stage whose program was not built is not run. The
# checks of one group run side by side (they time nothing), sharing the --jobs threads
# (OMP_NUM_THREADS); the benchmarks run one at a time on an idle GPU.
#   gpu                the GPU as the CUDA runtime reports it (bench/gpu_info.cu) and nvidia-smi
#   build              kvshare, for this GPU's architecture only: what every benchmark needs
#   build-tests        the tests (needs Catch2: CATCH_INCLUDE, the compiler's include path or
#                      CATCH_DEPS; not run without it)
#   tests              every [cuda] test, KVSHARE_CUDA_SYNC=1 (a fault names its kernel); tests
#                      that print "SKIPPED: no CUDA GPU" saw no GPU: not run, never a pass
#   kernels            bench kernels (GEMM at 4096^3, the model shapes, memory-bound, attention)
#   plans-tinyllama    bench plans, TinyLlama shape (1.1B), cuda: standard, cla:2, lckv:2
#   sanitize-TOOL      compute-sanitizer memcheck, racecheck, synccheck and initcheck over the
#                      [sanitize] tests (every kernel and version at small shapes, and every
#                      kernel of the decode step), side by side; a sanitizer that is missing or
#                      refuses the device is reported as such
#   plans-stories15M   bench plans, stories15M shape, --device both (the CPU side is cheap)
#   prefill-tinyllama  bench prefill, TinyLlama, cuda: standard and lckv:2
#   prefill-stories15M bench prefill, stories15M, --device both
#   throughput         bench throughput --sweep --svg, stories110M shape at a 1 GiB budget
# The folder: summary.txt (the GPU, pass or fail and wall time per stage, the headline figures
# next to DESIGN.md's targets), gpu-report.tar.gz (everything in the folder, summary
# included), stages.tsv (per stage: name, result, seconds, note; tab-separated), run.txt (the
# whole run's wall time), one STAGE.log per stage (gpu.log: the GPU in full), and
# throughput.svg and throughput.csv.
#
# Results: pass, FAIL, TIMEOUT (cut at its limit), skipped (out of time), not-run (its program
# was not built, Catch2 is missing, or its tests saw no GPU), missing or refused (a sanitizer).
# The exit status is 0 only when every stage passed, sanitizers that are missing or refuse
# the device aside.
#
# Headline figures: the benchmarks print lines "headline: KEY VALUE UNIT"; summary.txt holds
# every such line of every log, with DESIGN.md section 7's target where it sets one (TARGETS
# below). The keys (B batch, M model, N size, P plan, T iterations; a "_cpu" after M marks the
# CPU's figure, none the GPU's):
#   copy_gbs                          device-to-device copy, read + write (bench kernels)
#   cublas_sgemm_gflops_N             cuBLAS SGEMM at N^3, fp32, no TF32
#   gemm_best_pct_cublas_N            the best hand-written GEMM at N^3, % of cuBLAS
#   gemm_decode_b1_best_pct_copy      the best GEMM at one row (4096 x 11008), % of copy
#   memory_kernels_pct_copy           the weakest of the memory-bound kernels' best versions
#   attention_prefill_best_pct_sgemm  prefill attention at 2048 tokens, % of the SGEMM rate
#   attention_prefill_pct_fma_2048    auto prefill attention at 2048 tokens (TinyLlama heads), % of FMA
#   gemm_dispatch_min_pct_cublas_n32plus  gemm(0)'s weakest TinyLlama projection, 32..2048 rows, % cuBLAS
#   gemm_dispatch_min_pct_copy_n_lt32 gemm(0)'s weakest TinyLlama projection below 32 rows, % of copy
#   attention_decode_forward_pct_copy the forward's decode attention (at the counter), weaker shape
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
# Time, on one H100 or H200 (132 SMs) with 16 cores. No GPU has run this yet, so these are
# estimates: CPU seconds measured on a 2-core machine without a GPU (a busy machine inflates
# wall time, not CPU time), and the GPU's share worked out from the datasheet. Each stage's cap
# (the last column) is several times its estimate, to stop a hang, not to fit a budget.
#   gpu                 5 s  nvcc of one small file (6.6 s wall on the EPYC), nvidia-smi   30 s
#   build              25 s  kvshare: 36 C++ files and 16 CUDA files for one architecture;  240 s
#                            the longest, bench_kernels.cu and gemm.cu, about 10 CPU-s each
#   build-tests        30 s  27 test files; tests/main.cpp (Catch2's runner) 25 CPU-s      180 s
#   tests              30 s  the [cuda] tests: CPU references of small models, and the    150 s
#                            kernels at many shapes, a wait after every launch
#   kernels            15 s  GEMM v1 at 4096^3: 137 GFLOP at 1 to 3 TFLOP/s, 6 runs; the     60 s
#                            model-shape table: 81 shapes x 8 variants x 4 batches of ~1 ms,
#                            and v1, v2 over 0.6 TFLOP of shapes 4 times
#   plans-tinyllama    12 s  3 random 1.1B models: 24 CPU-s of random numbers each on      60 s
#                            the EPYC, about 2 s on 16 cores, and 4.4 GB each to upload;
#                            then 4 rounds of 32 + 32 tokens at 2 to 3 ms a step
#   sanitize-*         40 s  side by side: four sanitizers over about 250 small launches,  150 s
#                            where instrumenting each kernel once dominates
#   plans-stories15M    8 s  5 plans x 2 devices x 4 rounds of 32 + 64 tokens, a step of   40 s
#                            milliseconds on either
#   prefill-tinyllama  10 s  2 models; lckv:2 runs a 20-layer block up to 9 times          60 s
#   prefill-stories15M  6 s  like plans-stories15M, prefill only                           40 s
#   throughput         20 s  stories110M: 0.44 GB of weights, and per sequence 8.4 MB      90 s
#                            for standard (7.1 of it KV at 96 positions), 4.9 for cla:2,
#                            3.1 for lckv:2: batches of about 75, 130 and 200 in 1 GiB;
#                            a step at 200 rows about 10 ms, 64 steps a run, 5 plans and sweeps
# Sum about 200 s. The whole run stops at --time-limit (350 s): a stage that would run past it
# is cut there (TIMEOUT) or not started (skipped), so the report always comes in time, with
# the most valuable stages in it.
set -u

NVIDIA_SMI=${NVIDIA_SMI:-nvidia-smi}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
MAKE=${MAKE:-make}
CXX=${CXX:-g++}
CATCH_INCLUDE=${CATCH_INCLUDE:-}
CATCH_DEPS=${CATCH_DEPS:-.deps}
CATCH_FIX="on a machine with Catch2 v2: mkdir -p .deps && cp -r /usr/include/catch2 .deps/; bring .deps along, then make gpu-report CATCH_INCLUDE=.deps"
ARCHIVE=gpu-report.tar.gz

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
CATCH_DEPS=$(absolute "$CATCH_DEPS")

# ---- the stages ------------------------------------------------------------------------
# Parallel arrays, in run order. GROUP: stages of one group run side by side. NEEDS: a file
# the stage cannot run without (the program its build stage makes), or a reason it cannot
# run at all ("!why"); empty when none.
NAMES=(); CAPS=(); CMDS=(); GROUPS_=(); NEEDS=()
add_stage() {  # NAME CAP GROUP NEEDS COMMAND
    NAMES+=("$1"); CAPS+=("${CAP_OVERRIDE[$1]:-$2}"); GROUPS_+=("$3"); NEEDS+=("$4"); CMDS+=("$5")
}
ALL_STAGES="gpu build build-tests tests kernels plans-tinyllama sanitize-memcheck sanitize-racecheck sanitize-synccheck
            sanitize-initcheck plans-stories15M prefill-tinyllama prefill-stories15M throughput"

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

# The folder holding catch2/catch.hpp for make's CATCH_INCLUDE: as given, else none when the
# compiler finds it on its own (prints "system"), else CATCH_DEPS; empty when nowhere.
find_catch() {
    if [ -n "$CATCH_INCLUDE" ]; then
        [ -f "$CATCH_INCLUDE/catch2/catch.hpp" ] && echo "$CATCH_INCLUDE"
        return
    fi
    if echo '#include <catch2/catch.hpp>' | "$CXX" -std=c++17 -E -x c++ - > /dev/null 2>&1; then echo system; return; fi
    [ -f "$CATCH_DEPS/catch2/catch.hpp" ] && echo "$CATCH_DEPS"
}

define_stages() {
    local q_build k t san arch make_args catch tests_need
    q_build=$(printf %q "$BUILD")
    k="$q_build/kvshare"; t="$q_build/run_tests"
    arch=$(gpu_arch)
    san=$(find_sanitizer)
    catch=$(find_catch)
    make_args="-j$JOBS BUILD=$q_build BIN=$q_build/kvshare CUDA_ARCH='$arch' NVCC=$(printf %q "$NVCC")"
    case $catch in
        "") tests_need="!Catch2 not found (CATCH_INCLUDE, $CXX's include path, $CATCH_DEPS): $CATCH_FIX" ;;
        system) tests_need="$BUILD/run_tests" ;;
        *) tests_need="$BUILD/run_tests"; make_args="$make_args CATCH_INCLUDE=$(printf %q "$catch")" ;;
    esac
    local smi
    smi=$(printf %q "$NVIDIA_SMI")
    add_stage gpu 30 gpu "" "mkdir -p $q_build && $(printf %q "$NVCC") -O2 -o $q_build/gpu_info bench/gpu_info.cu && $q_build/gpu_info; rc=\$?; $smi --query-gpu=index,name,driver_version,memory.total,clocks.max.sm,clocks.max.memory,power.limit --format=csv,noheader | sed 's/^/nvidia-smi: /'; $smi; exit \$rc"
    add_stage build 240 build "" "$(printf %q "$MAKE") $make_args $q_build/kvshare"
    local build_tests_need=  # Catch2 missing, or nothing
    [ "${tests_need:0:1}" = "!" ] && build_tests_need=$tests_need
    add_stage build-tests 180 build-tests "$build_tests_need" "$(printf %q "$MAKE") $make_args $q_build/run_tests"
    add_stage tests 150 tests "$tests_need" "KVSHARE_CUDA_SYNC=1 $t '[cuda]'"
    add_stage kernels 60 kernels "$BUILD/kvshare" "$k bench kernels --runs 5 --warmup 1"
    add_stage plans-tinyllama 60 plans-t "$BUILD/kvshare" "$k bench plans --preset tinyllama --device cuda --plans 'standard cla:2 lckv:2' -n 32 --repeats 3"
    local tool
    for tool in memcheck racecheck synccheck initcheck; do
        if [ -n "$san" ]; then
            add_stage "sanitize-$tool" 150 sanitize "$tests_need" "$(printf %q "$san") --tool $tool --error-exitcode 99 $t '[sanitize]'"
        else
            add_stage "sanitize-$tool" 150 sanitize "" "echo 'compute-sanitizer: not found next to nvcc or on the PATH'; exit 3"
        fi
    done
    add_stage plans-stories15M 40 plans-s "$BUILD/kvshare" "$k bench plans --preset stories15M --device both --repeats 3"
    add_stage prefill-tinyllama 60 prefill-t "$BUILD/kvshare" "$k bench prefill --preset tinyllama --device cuda --plans 'standard lckv:2' --repeats 3"
    add_stage prefill-stories15M 40 prefill-s "$BUILD/kvshare" "$k bench prefill --preset stories15M --device both --repeats 3"
    add_stage throughput 90 throughput "$BUILD/kvshare" "$k bench throughput --preset stories110M --device cuda --prompt 32 -n 64 --budget 1G --max-batch 512 --sweep --svg $(printf %q "$OUT")/throughput.svg --csv $(printf %q "$OUT")/throughput.csv"
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

# Runs stage I with its cap (at most the time left) and THREADS OpenMP threads, its output
# in OUT/NAME.log; writes "name<TAB>status<TAB>seconds<TAB>note" to OUT/.stages/I.
run_stage() {
    local i=$1 threads=$2 name=${NAMES[$1]} log="$OUT/${NAMES[$1]}.log" cap=${CAPS[$1]} need=${NEEDS[$1]}
    local remaining t0 rc status note line
    if [ -n "$need" ]; then  # a reason not to run, or a program that must exist
        note=
        if [ "${need:0:1}" = "!" ]; then note=${need:1}
        elif [ ! -x "$need" ]; then note="needs $need, which was not built (see the build stages)"; fi
        if [ -n "$note" ]; then
            echo "not run: $note" > "$log"
            printf '%s\tnot-run\t0.0\t%s\n' "$name" "$note" > "$OUT/.stages/$i"
            echo "gpu-report: $name: not run, $note"
            return
        fi
    fi
    remaining=$(left)
    [ "$remaining" -lt "$cap" ] && cap=$remaining
    if [ "$remaining" -lt 3 ]; then
        printf '%s\tskipped\t0.0\tout of time (--time-limit %s)\n' "$name" "$TIME_LIMIT" > "$OUT/.stages/$i"
        return
    fi
    t0=$(date +%s.%N)
    OMP_NUM_THREADS=$threads timeout -k 10 "$cap" bash -o pipefail -c "${CMDS[$i]}" > "$log" 2>&1 < /dev/null
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
    # tests that saw no GPU print SKIPPED (tests/skip_without_gpu.h) and pass: they did not run
    if { [ "$status" = pass ] || [ "$status" = FAIL ]; } && line=$(grep -m1 '^  SKIPPED: no CUDA GPU' "$log"); then
        status=not-run; note="the tests saw no GPU (${line#  SKIPPED: })"
    fi
    if [ "$name" = build ] && [ "$status" = pass ] && grep -q 'building without CUDA' "$log"; then
        status=FAIL; note="make found nvcc but not libcudart and libcublas: a CPU-only build"
    fi
    [ "$status" = FAIL ] && [ -z "$note" ] && note="exit $rc"
    if [ "$status" = FAIL ] && [ -z "${note##exit*}" ]; then  # the last error line says more
        line=$(grep -i -m1 -E 'error|FAILED|failed' "$log" | cut -c1-90)
        [ -n "$line" ] && note="$note: $line"
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$seconds" "$note" > "$OUT/.stages/$i"
    echo "gpu-report: $name: $status (${seconds} s)${note:+, $note}"
}

# ---- the summary -----------------------------------------------------------------------
# DESIGN.md section 7's targets for the headline keys that have one: KEY-PATTERN OP VALUE
# (an extended regular expression for the whole key; OP >= or <; the value in the key's unit).
TARGETS=(
    "gemm_best_pct_cublas_4096 >= 90"
    "gemm_dispatch_min_pct_cublas_n32plus >= 70"
    "gemm_dispatch_min_pct_copy_n_lt32 >= 75"
    "attention_prefill_pct_fma_2048 >= 50"
    "decode_b1_tinyllama_pct_copy >= 80"
    "decode_b1_tinyllama_host_us_per_step < 50"
    "throughput_[A-Za-z0-9]+_(cla|yoco|lckv|pizza|sandwich|lasagna)[A-Za-z0-9_]*_vs_standard > 1"
)

# "  target >= 90 %: met" (or MISSED) for KEY VALUE UNIT, or nothing without a target.
target_of() {
    local key=$1 value=$2 unit=$3 t pattern op want
    for t in "${TARGETS[@]}"; do
        read -r pattern op want <<< "$t"
        [[ $key =~ ^($pattern)$ ]] || continue
        if awk -v v="$value" -v w="$want" -v op="$op" 'BEGIN {exit !((op == ">=" && v >= w) || (op == ">" && v > w) || (op == "<" && v < w))}'; then
            echo "  target $op $want $unit: met"
        else
            echo "  target $op $want $unit: MISSED"
        fi
        return
    done
}

# DIR/stages.tsv and the headline lines of DIR/*.log -> DIR/summary.txt (printed too), and
# everything in DIR packed into DIR/gpu-report.tar.gz.
# Exit status: 0 when every stage passed (a sanitizer that is missing or refuses the device
# is reported, not failed); 1 otherwise.
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
        echo "headline figures (the benchmarks' \"headline:\" lines; targets from DESIGN.md section 7):"
        local name found=0 line
        while IFS=$'\t' read -r name _; do
            [ -f "$dir/$name.log" ] || continue
            while IFS= read -r line; do
                if [[ $line =~ ^headline:\ ([A-Za-z0-9_.]+)\ (-?[0-9][0-9.e+-]*)\ (.+)$ ]]; then
                    printf '  %-44s %12s %s%s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" \
                        "$(target_of "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}")"
                    found=$((found + 1))
                else
                    echo "  (unreadable, in $name.log: $line)"
                fi
            done < <(grep '^headline: ' "$dir/$name.log")
        done < "$tsv"
        [ "$found" -eq 0 ] && echo "  none: no benchmark finished"
        echo
        local failed others
        failed=$(awk -F'\t' '$2 == "FAIL" || $2 == "TIMEOUT" || $2 == "skipped" {printf "%s%s", sep, $1; sep = ", "}' "$tsv")
        others=$(awk -F'\t' '$2 == "missing" || $2 == "refused" || $2 == "not-run" {printf "%s%s", sep, $1; sep = ", "}' "$tsv")
        if [ -n "$failed" ]; then echo "not passed: $failed (see their .log files)"
        elif [ -z "$others" ]; then echo "every stage passed"; fi
        [ -n "$others" ] && echo "not run: $others"
        # why, once per reason (the tests and the four sanitizers share theirs)
        awk -F'\t' '($2 == "not-run" || $2 == "missing" || $2 == "refused") && !seen[$4]++ {print "  " $4}' "$tsv"
    } > "$sum"
    cat "$sum"
    # one archive beside the summary: what a borrowed machine can send back in one file (made
    # outside the folder, which tar reports as changed if the archive grows inside it)
    local packed
    packed=$(mktemp "${TMPDIR:-/tmp}/gpu-report.XXXXXX") &&
        tar -czf "$packed" -C "$dir" --exclude "./$ARCHIVE" . && mv "$packed" "$dir/$ARCHIVE" && chmod 644 "$dir/$ARCHIVE" ||
        echo "gpu-report: could not pack $dir/$ARCHIVE" >&2
    rm -f "$packed"
    ! grep -q '^not passed: ' "$sum" && ! awk -F'\t' '$2 == "not-run" {bad = 1} END {exit !bad}' "$tsv"
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
        printf '%-20s group %-11s cap %4s s  %s%s\n' "${NAMES[$i]}" "${GROUPS_[$i]}" "${CAPS[$i]}" "${CMDS[$i]}" \
            "$([ "${NEEDS[$i]:0:1}" = "!" ] && echo "  (not run: ${NEEDS[$i]:1})")"
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
    case " $(echo $ALL_STAGES) " in
        *" $name "*) ;;
        *) die "--cap: no stage '$name' (see --dry-run)" ;;
    esac
done
mkdir -p "$OUT" || die "cannot make $OUT"
rm -rf "$OUT/.stages" "$OUT"/*.log "$OUT/stages.tsv" "$OUT/summary.txt" "$OUT/run.txt" "$OUT"/throughput.* "$OUT/$ARCHIVE"
mkdir -p "$OUT/.stages"
define_stages
echo "gpu-report: $(head -n 1 <<< "$gpus"); report in $OUT/, time limit $TIME_LIMIT s"

i=0
while [ "$i" -lt "${#NAMES[@]}" ]; do
    group=${GROUPS_[$i]}
    size=0
    while [ $((i + size)) -lt "${#NAMES[@]}" ] && [ "${GROUPS_[$((i + size))]}" = "$group" ]; do size=$((size + 1)); done
    threads=$((JOBS / size)); [ "$threads" -lt 1 ] && threads=1  # side by side, they share the cores
    pids=()
    for ((j = 0; j < size; j++)); do
        run_stage "$((i + j))" "$threads" &
        pids+=($!)
    done
    wait "${pids[@]}"
    i=$((i + size))
done
for i in "${!NAMES[@]}"; do cat "$OUT/.stages/$i"; done > "$OUT/stages.tsv"
rm -rf "$OUT/.stages"
echo "wall time $(elapsed) s of the $TIME_LIMIT s limit; the checks ran side by side, so the stages' seconds add up to more" > "$OUT/run.txt"
echo "gpu-report: done in $(elapsed) s"
echo
summarize "$OUT"
