#!/usr/bin/env bash
# bench/gpu-report.sh on a machine without a GPU: what it does before and around the GPU work.
# Without a GPU it says so in one line; bad arguments get one error line; --dry-run lists the
# stages; and whole runs on a fake GPU (stand-ins for nvidia-smi, nvcc, make, a compiler,
# compute-sanitizer and the two programs it builds, with canned outputs) check the folder it
# writes and its one archive, the order of the stages, that a failed or hung stage is reported
# and the later ones still run, the threads of stages side by side, the time limit, the
# summary with its headline figures next to their targets, and --summarize; then a machine
# without Catch2 (the benchmarks still run, the summary says how to bring it), one where the
# tests see no GPU (not run, never a pass), and one where kvshare does not build.
# With a kvshare binary, also the real benchmarks' headline lines (tiny shapes, on the CPU)
# through the summary: the format the C++ prints is the one the script reads.
# usage: bash tests/gpu_report.sh [./kvshare]   (from the repository root; a few seconds)
set -u
SCRIPT=bench/gpu-report.sh
BIN=${1:-}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0

ok() {  # DESCRIPTION CONDITION...
    local what=$1; shift
    if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $what"; fi
}
in_archive() { tar -tzf "$1" "$2" > /dev/null 2>&1; }  # ARCHIVE FILE
one_error_line() {  # FILE PATTERN: exactly one line, "gpu-report: error: ..." matching PATTERN
    [ "$(grep -c . "$1")" -eq 1 ] && grep -q '^gpu-report: error: ' "$1" && grep -qi -- "$2" "$1"
}
expect_error() {  # DESCRIPTION PATTERN -- ARGS...
    local what=$1 pattern=$2; shift 3
    NVIDIA_SMI="$T/fake/nvidia-smi" timeout 30 bash "$SCRIPT" "$@" > "$T/err" 2>&1 < /dev/null
    local rc=$?
    ok "$what: exit $rc, output: $(head -c 300 "$T/err")" test "$rc" -eq 1 -a "$(one_error_line "$T/err" "$pattern" && echo y)" = y
}

# ---- the stand-ins ---------------------------------------------------------------------
mkdir -p "$T/fake"
cat > "$T/fake/nvidia-smi" <<'EOF'
#!/usr/bin/env bash
case "$*" in
    -L) echo "GPU 0: Fake H200 (UUID: GPU-0)" ;;
    *compute_cap*) echo "9.0" ;;
    *--query-gpu=*) echo "0, Fake H200, 570.12, 143771 MiB, 1980 MHz, 3201 MHz, 700.00 W" ;;
    *) echo "(the nvidia-smi table)" ;;
esac
EOF
cat > "$T/fake/nvcc" <<'EOF'
#!/usr/bin/env bash
# nvcc -O2 -o OUT bench/gpu_info.cu: OUT prints what gpu_info would
while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
printf '#!/bin/sh\nprintf "cuda runtime: 13.0\\ndevices: 1\\ndevice 0: Fake H200\\n  multiprocessors: 132\\n  memory: 139.8 GiB, bus 6144 bits\\n  sm clock (max): 1980 MHz\\n  memory clock (max): 3201 MHz\\n"\n' > "$out"
chmod +x "$out"
EOF
cat > "$T/fake/make" <<EOF
#!/usr/bin/env bash
# make -jN BUILD=DIR BIN=... CUDA_ARCH=... NVCC=... [CATCH_INCLUDE=...] TARGET: copies the fake
# program the target names; FAKE_MAKE_FAIL=kvshare fails that one
echo "make \$*"
for a in "\$@"; do case \$a in BUILD=*) build=\${a#BUILD=} ;; */kvshare|*/run_tests) target=\$(basename "\$a") ;; esac; done
if [ "\$target" = "\${FAKE_MAKE_FAIL:-}" ]; then echo "src/main.cpp:1: error: something"; exit 2; fi
mkdir -p "\$build" && cp "$T/fake/\$target" "\$build/"
EOF
cat > "$T/fake/run_tests" <<'EOF'
#!/usr/bin/env bash
# FAKE_NO_GPU=1: as tests/skip_without_gpu.h prints where the CUDA runtime sees no GPU
echo "run_tests $* (KVSHARE_CUDA_SYNC=${KVSHARE_CUDA_SYNC:-}, OMP_NUM_THREADS=${OMP_NUM_THREADS:-})"
if [ "${FAKE_NO_GPU:-}" = 1 ]; then
    echo "tests/test_cuda_kernels.cpp:250: warning:"
    echo "  SKIPPED: no CUDA GPU is available (no CUDA-capable device is detected)"
fi
echo "All tests passed (1234 assertions in 20 test cases)"
EOF
printf '#!/bin/sh\nexit 1\n' > "$T/fake/no-compiler"  # a compiler that finds no Catch2
mkdir -p "$T/deps/catch2" && echo "// Catch2" > "$T/deps/catch2/catch.hpp"
cat > "$T/fake/kvshare" <<'EOF'
#!/usr/bin/env bash
# canned benchmark outputs: kernels and plans-stories15M give headlines (one unreadable),
# plans-tinyllama gives one and then hangs (FAKE_HANG=1), prefill-stories15M fails,
# throughput writes its files
case "$2 $4" in
    "kernels "*) echo "GPU: Fake H200"; echo "headline: gemm_best_pct_cublas_4096 87.3 %"
                 echo "headline: memory_kernels_pct_copy 91.5 %"; echo "headline: attention_prefill_pct_fma_2048 61.0 %" ;;
    "plans stories15M") echo "headline: decode_b1_stories15M_tok_s 2100 tok/s"; echo "headline: broken" ;;
    "plans tinyllama") echo "headline: decode_b1_tinyllama_host_us_per_step 31.2 us"
                       if [ "${FAKE_HANG:-}" = 1 ]; then sleep 30; fi ;;
    "prefill stories15M") echo "kvshare: error: something went wrong" >&2; exit 1 ;;
    "prefill tinyllama") echo "headline: prefill_n64_tinyllama_tok_s 5120 tok/s" ;;
    "throughput stories110M")
        while [ $# -gt 0 ]; do case $1 in --svg) echo "<svg/>" > "$2" ;; --csv) echo "plan" > "$2" ;; esac; shift; done
        echo "headline: throughput_stories110M_lckv_2_vs_standard 2.41 x" ;;
    *) echo "unexpected: $*" >&2; exit 2 ;;
esac
EOF
cat > "$T/fake/compute-sanitizer" <<'EOF'
#!/usr/bin/env bash
# --tool TOOL --error-exitcode N PROGRAM ARGS: memcheck clean, racecheck finds hazards, the
# tests fail under synccheck, initcheck refuses the device (as on a machine it cannot
# instrument: it says so, the program's calls fail, and it still sums up)
tool=$2; shift 4
case $tool in
    racecheck) "$@"; echo "========= ERROR SUMMARY: 2 errors"; exit 99 ;;
    synccheck) echo "test cases: 3 | 2 passed | 1 failed"; echo "========= ERROR SUMMARY: 0 errors"; exit 1 ;;
    initcheck) echo "========= Error: Device not supported"; echo "========= ERROR SUMMARY: 0 errors"; exit 1 ;;
    *) "$@"; echo "========= ERROR SUMMARY: 0 errors" ;;
esac
EOF
chmod +x "$T/fake"/*

# ---- no GPU, bad arguments, dry run ----------------------------------------------------
NVIDIA_SMI=false bash "$SCRIPT" --out "$T/r0" > "$T/out" 2>&1
rc=$?
ok "no GPU: exit 1 (got $rc)" test "$rc" -eq 1
ok "no GPU: one line that says so: $(cat "$T/out")" one_error_line "$T/out" "no NVIDIA GPU found"
ok "no GPU: nothing written" test ! -e "$T/r0"
NVIDIA_SMI="$T/none/nvidia-smi" bash "$SCRIPT" --out "$T/r0" > "$T/out" 2>&1
ok "no nvidia-smi at all: one line: $(cat "$T/out")" one_error_line "$T/out" "no NVIDIA GPU found"

expect_error "unknown argument"     "unknown argument '--bogus'" -- --bogus
expect_error "--out without value"  "--out needs a value"        -- --out
expect_error "--jobs 0"             "--jobs: '0'"                -- --jobs 0
expect_error "--time-limit x"       "--time-limit: 'x'"          -- --time-limit x
expect_error "--cap without ="      "--cap: 'tests' is not"      -- --cap tests
expect_error "--cap unknown stage"  "--cap: no stage 'nope'"     -- --out "$T/r0" --cap nope=5
expect_error "--summarize no folder" "no folder"                 -- --summarize "$T/none"
mkdir -p "$T/notreport" && echo keep > "$T/notreport/file.txt"
expect_error "--summarize a folder that is no report" "not a gpu-report folder" -- --summarize "$T/notreport"
expect_error "--out a folder that is no report" "not a gpu-report folder" -- --out "$T/notreport"
ok "a refused folder is left as it was" test "$(ls "$T/notreport")" = file.txt

NVIDIA_SMI=false bash "$SCRIPT" --dry-run --out "$T/r0" > "$T/out" 2>&1
rc=$?
ok "dry run: exit 0 without a GPU (got $rc)" test "$rc" -eq 0
STAGES="gpu build build-tests tests kernels plans-tinyllama sanitize-memcheck sanitize-racecheck sanitize-synccheck
        sanitize-initcheck plans-stories15M prefill-tinyllama prefill-stories15M throughput"
ok "dry run: every stage, most valuable first" test "$(awk '{print $1}' "$T/out" | sed 1d | tr '\n' ' ')" = "$(echo $STAGES) "
ok "dry run: tinyllama benches on cuda only" grep -q "plans --preset tinyllama --device cuda" "$T/out"
ok "dry run: throughput sweeps and draws" grep -q "throughput .*--sweep --svg" "$T/out"
ok "dry run: writes nothing" test ! -e "$T/r0"

# ---- a whole run on the fake GPU -------------------------------------------------------
run_fake() {  # OUT [ARGS...]: the environment may add FAKE_* and CATCH_* settings
    local out=$1; shift
    NVIDIA_SMI="$T/fake/nvidia-smi" NVCC="$T/fake/nvcc" MAKE="$T/fake/make" COMPUTE_SANITIZER="$T/fake/compute-sanitizer" \
        timeout 120 bash "$SCRIPT" --out "$out" --build "$T/build" --jobs 8 --cap plans-tinyllama=2 "$@" > "$T/run.out" 2>&1
}
t0=$(date +%s.%N)
CATCH_INCLUDE=$T/deps FAKE_HANG=1 run_fake "$T/r1"
rc=$?
t1=$(date +%s.%N)
R=$T/r1
ok "fake run: exit 1, since stages failed (got $rc)" test "$rc" -eq 1
for f in summary.txt gpu-report.tar.gz stages.tsv run.txt gpu.log build.log build-tests.log tests.log sanitize-memcheck.log \
         kernels.log plans-tinyllama.log throughput.log throughput.svg throughput.csv; do
    ok "fake run wrote $f" test -s "$R/$f"
done
ok "stages.tsv: one line per stage, in run order" test "$(cut -f1 "$R/stages.tsv" | tr '\n' ' ')" = "$(echo $STAGES) "
status() { awk -F'\t' -v s="$1" '$1 == s {print $2}' "$R/stages.tsv"; }
ok "gpu passes"                   test "$(status gpu)" = pass
ok "build passes"                 test "$(status build)" = pass
ok "build-tests passes"           test "$(status build-tests)" = pass
ok "tests pass"                   test "$(status tests)" = pass
ok "memcheck passes"              test "$(status sanitize-memcheck)" = pass
ok "racecheck's hazards: FAIL"    test "$(status sanitize-racecheck)" = FAIL
ok "the tests failed under synccheck: FAIL" test "$(status sanitize-synccheck)" = FAIL
ok "initcheck refused the device" test "$(status sanitize-initcheck)" = refused
ok "a hung bench: TIMEOUT"        test "$(status plans-tinyllama)" = TIMEOUT
ok "a failing bench: FAIL"        test "$(status prefill-stories15M)" = FAIL
ok "the stages after it still ran" test "$(status prefill-tinyllama) $(status throughput)" = "pass pass"
ok "kvshare was built alone first, for sm_90, with CATCH_INCLUDE" \
    grep -q "CUDA_ARCH=-gencode arch=compute_90,code=sm_90 NVCC=$T/fake/nvcc CATCH_INCLUDE=$T/deps $T/build/kvshare\$" "$R/build.log"
ok "then the tests, with CATCH_INCLUDE" grep -q "CATCH_INCLUDE=$T/deps $T/build/run_tests\$" "$R/build-tests.log"
ok "the [cuda] tests ran with KVSHARE_CUDA_SYNC=1, alone: all 8 threads" \
    grep -q "run_tests \[cuda\] (KVSHARE_CUDA_SYNC=1, OMP_NUM_THREADS=8)" "$R/tests.log"
ok "the sanitizers ran the [sanitize] tests side by side, 2 threads each of 8" \
    grep -q "run_tests \[sanitize\] (KVSHARE_CUDA_SYNC=, OMP_NUM_THREADS=2)" "$R/sanitize-memcheck.log"
S=$R/summary.txt
ok "summary: the GPU" grep -q "^GPU: Fake H200, 132 SMs, 139.8 GiB" "$S"
ok "summary: the driver" grep -q "^nvidia-smi: driver 570.12" "$S"
ok "summary: a failure's note" grep -q "^prefill-stories15M .*FAIL .*exit 1: kvshare: error: something went wrong" "$S"
ok "summary: the timeout's limit" grep -q "^plans-tinyllama .*TIMEOUT .*stopped at its 2 s limit" "$S"
ok "summary: racecheck's count" grep -q "^sanitize-racecheck .*FAIL .*ERROR SUMMARY: 2 errors" "$S"
for h in "gemm_best_pct_cublas_4096 *87.3 %  target >= 90 %: MISSED" "memory_kernels_pct_copy *91.5 %" \
         "attention_prefill_pct_fma_2048 *61.0 %  target >= 50 %: met" "decode_b1_stories15M_tok_s *2100 tok/s" \
         "decode_b1_tinyllama_host_us_per_step *31.2 us  target < 50 us: met" "prefill_n64_tinyllama_tok_s *5120 tok/s" \
         "throughput_stories110M_lckv_2_vs_standard *2.41 x  target > 1 x: met"; do
    ok "summary: headline $h" grep -q "^  $h$" "$S"
done
ok "summary: an unreadable headline is shown as such" grep -q "unreadable, in plans-stories15M.log: headline: broken" "$S"
ok "summary: what did not pass" \
    grep -q "^not passed: plans-tinyllama, sanitize-racecheck, sanitize-synccheck, prefill-stories15M" "$S"
ok "summary: what did not run" grep -q "^not run: sanitize-initcheck$" "$S"
ok "summary: why initcheck did not run" grep -q "^sanitize-initcheck .*refused .*Error: Device not supported" "$S"
ok "summary: the wall time" grep -q "^wall time [0-9.]* s of the 350 s limit" "$S"
ok "the run printed the summary" grep -q "^not passed: " "$T/run.out"
mkdir -p "$T/unpacked" && tar -xzf "$R/gpu-report.tar.gz" -C "$T/unpacked"
ok "the archive holds the summary as written" cmp -s "$T/unpacked/summary.txt" "$S"
ok "the archive holds every log and the chart" \
    test -s "$T/unpacked/kernels.log" -a -s "$T/unpacked/tests.log" -a -s "$T/unpacked/throughput.svg" -a -s "$T/unpacked/stages.tsv"
ok "the archive does not hold itself" test ! -e "$T/unpacked/gpu-report.tar.gz"

cp "$S" "$T/first-summary.txt"
bash "$SCRIPT" --summarize "$R" > /dev/null 2>&1
rc=$?
ok "--summarize: exit 1 for a report with failures (got $rc)" test "$rc" -eq 1
ok "--summarize: the same summary, but for its date line" \
    diff <(sed 1d "$T/first-summary.txt") <(sed 1d "$S")
printf 'gpu\tpass\t1.0\t\nkernels\tpass\t2.0\t\n' > "$T/r2.tsv"
mkdir -p "$T/r2" && mv "$T/r2.tsv" "$T/r2/stages.tsv" && echo "headline: copy_gbs 4012 GB/s" > "$T/r2/kernels.log"
bash "$SCRIPT" --summarize "$T/r2" > "$T/out" 2>&1
rc=$?
ok "--summarize of canned stages that passed: exit 0 (got $rc)" test "$rc" -eq 0
ok "--summarize: every stage passed" grep -q "^every stage passed" "$T/r2/summary.txt"
ok "--summarize: its headline" grep -q "^  copy_gbs  *4012 GB/s$" "$T/r2/summary.txt"
ok "--summarize: packs the archive" in_archive "$T/r2/gpu-report.tar.gz" ./summary.txt

# a second run replaces the first report; a short time limit skips what does not fit
echo stale > "$R/kernels.log"
CATCH_INCLUDE=$T/deps FAKE_HANG=1 run_fake "$R" --time-limit 4
ok "rerun: the old logs are gone" test "$(grep -c stale "$R/kernels.log")" -eq 0
ok "time limit: a stage past it is skipped" grep -q "^throughput .*skipped .*out of time (--time-limit 4)" "$R/summary.txt"

# ---- a bare GPU machine: no Catch2 anywhere ----------------------------------------------
R=$T/r4
CXX="$T/fake/no-compiler" CATCH_DEPS="$T/nodeps" run_fake "$R"
rc=$?
S=$R/summary.txt
ok "no Catch2: exit 1, the tests did not run (got $rc)" test "$rc" -eq 1
ok "no Catch2: kvshare built" test "$(status build)" = pass
for stage in build-tests tests sanitize-memcheck sanitize-racecheck sanitize-synccheck sanitize-initcheck; do
    ok "no Catch2: $stage not run" test "$(status $stage)" = not-run
done
ok "no Catch2: make was never asked for the tests" test "$(grep -c "^make " "$R/build-tests.log")" -eq 0
for stage in kernels plans-tinyllama plans-stories15M prefill-tinyllama throughput; do
    ok "no Catch2: the benchmark $stage still ran" test "$(status $stage)" = pass
done
ok "no Catch2: the summary says which stages did not run" \
    grep -q "^not run: build-tests, tests, sanitize-memcheck, sanitize-racecheck, sanitize-synccheck, sanitize-initcheck$" "$S"
ok "no Catch2: and why, with the fix, once" \
    test "$(grep -c "^  Catch2 not found (CATCH_INCLUDE, .*: on a machine with Catch2 v2: mkdir -p .deps && cp -r /usr/include/catch2 .deps/; bring .deps along, then make gpu-report CATCH_INCLUDE=.deps$" "$S")" -eq 1
ok "no Catch2: the headlines are there" grep -q "^  gemm_best_pct_cublas_4096 " "$S"
ok "no Catch2: packed" in_archive "$R/gpu-report.tar.gz" ./kernels.log
# the same folder found in CATCH_DEPS (.deps by default)
CXX="$T/fake/no-compiler" CATCH_DEPS="$T/deps" run_fake "$R"
ok "Catch2 in CATCH_DEPS: the tests built with it" grep -q "CATCH_INCLUDE=$T/deps $T/build/run_tests\$" "$R/build-tests.log"
ok "Catch2 in CATCH_DEPS: the tests ran" test "$(status tests)" = pass

# ---- the GPU is there, but the tests do not see it ---------------------------------------
R=$T/r5
CATCH_INCLUDE=$T/deps FAKE_NO_GPU=1 run_fake "$R"
rc=$?
ok "tests that saw no GPU: exit 1 (got $rc)" test "$rc" -eq 1
ok "tests that saw no GPU: not run, not pass" test "$(status tests)" = not-run
ok "the sanitizers' tests too" test "$(status sanitize-memcheck)" = not-run
ok "the summary says why" grep -q "^tests .*not-run .*the tests saw no GPU (no CUDA GPU is available" "$R/summary.txt"
ok "and lists them as not run" grep -q "^not run: tests, sanitize-memcheck" "$R/summary.txt"

# ---- kvshare does not build ----------------------------------------------------------------
R=$T/r6
rm -rf "$T/build"
CATCH_INCLUDE=$T/deps FAKE_MAKE_FAIL=kvshare run_fake "$R"
ok "a failed build: FAIL, with its error" grep -q "^build .*FAIL .*exit 2: src/main.cpp:1: error: something" "$R/summary.txt"
ok "a failed build: the benchmarks are not run, not failed" test "$(status kernels) $(status throughput)" = "not-run not-run"
ok "a failed build: and say why" grep -q "^kernels .*not-run .*needs $T/build/kvshare, which was not built" "$R/summary.txt"
ok "a failed build: the tests, built apart, still ran" test "$(status tests)" = pass

# ---- the benchmarks' own headline lines -----------------------------------------------
if [ -n "$BIN" ]; then
    R=$T/r3
    mkdir -p "$R"
    export OMP_NUM_THREADS=1  # tiny shapes: threads would only wait for each other
    "$BIN" bench plans --preset tiny --device cpu --repeats 1 -n 2 --prompt 2 --copy-size 1M --gemm-size 64 \
        > "$R/plans-tiny.log" 2>&1
    "$BIN" bench prefill --preset tiny --repeats 1 --prompt 4 --iterations "1 2" > "$R/prefill-tiny.log" 2>&1
    "$BIN" bench throughput --preset tiny --budget 8M --max-batch 4 -n 2 --prompt 2 > "$R/throughput.log" 2>&1
    printf 'plans-tiny\tpass\t0.1\t\nprefill-tiny\tpass\t0.1\t\nthroughput\tpass\t0.1\t\n' > "$R/stages.tsv"
    bash "$SCRIPT" --summarize "$R" > /dev/null 2>&1
    for key in decode_b1_tiny_cpu_tok_s decode_b1_tiny_cpu_pct_copy prefill_n4_tiny_cpu_tok_s \
               prefill_n4_tiny_cpu_lckv_2_T2_vs_tbt throughput_tiny_cpu_standard_tok_s throughput_tiny_cpu_lckv_2_batch \
               throughput_tiny_cpu_cla_2_vs_standard; do
        ok "kvshare's headline $key reaches the summary" grep -q "^  $key  *[0-9][0-9.]* [a-z%/]" "$R/summary.txt"
    done
    ok "kvshare's headlines: none unreadable" test "$(grep -c unreadable "$R/summary.txt")" -eq 0
fi

echo "gpu report checks: $pass passed, $fail failed ($(echo "$t1 $t0" | awk '{printf "%.1f", $1 - $2}') s for a whole fake run)"
[ "$fail" -eq 0 ]
