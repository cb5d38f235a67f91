#!/usr/bin/env bash
# Bad input gets one clear error line on stderr and exit status 1: never a crash, a hang,
# or output that looks like success. Also checks that generate's stdout holds only text.
# usage: tests/cli_errors.sh ./kvshare
set -u
BIN=${1:-./kvshare}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0; fail=0

"$BIN" init "$T/m.kvs" --preset tiny -s 3 2>/dev/null || { echo "cli: init failed"; exit 1; }
"$BIN" init "$T/m.bin" --preset tiny -s 3 --llama2c 2>/dev/null || { echo "cli: init --llama2c failed"; exit 1; }
"$BIN" init "$T/lckv.kvs" --preset tiny --plan lckv:2 -s 3 2>/dev/null || { echo "cli: init --plan lckv:2 failed"; exit 1; }
head -c 1000 "$T/m.kvs" > "$T/short.kvs"
head -c 3000 "$T/m.bin" > "$T/short.bin"
printf 'just some text, not a model at all, but long enough to have a header\n' > "$T/foreign.bin"
: > "$T/empty.txt"
head -c 100 /dev/zero > "$T/zeros.bin"
printf 'hello world\n' > "$T/text.txt"

# expect_error DESCRIPTION PATTERN -- COMMAND...
expect_error() {
    local what=$1 pattern=$2; shift 3
    local out err rc
    out=$(timeout 60 "$@" 2>"$T/err" </dev/null); rc=$?
    err=$(cat "$T/err")
    local lines; lines=$(grep -c . "$T/err")
    if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && [[ "$err" == "kvshare: error: "* ]] && grep -qi -- "$pattern" "$T/err"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAILED: $what: exit $rc, stderr: $err"
    fi
}

expect_error "missing model"        "cannot open"       -- "$BIN" generate "$T/nope.kvs"
expect_error "truncated model"      "truncated"         -- "$BIN" generate "$T/short.kvs"
expect_error "truncated llama2.c"   "truncated"         -- "$BIN" info "$T/short.bin"
expect_error "foreign file"         "llama2.c"          -- "$BIN" generate "$T/foreign.bin"
expect_error "zero file"            "llama2.c"          -- "$BIN" info "$T/zeros.bin"
expect_error "plan too big"         "1..8"              -- "$BIN" generate "$T/m.kvs" --plan pizza-top:9
expect_error "plan wrong length"    "maps 3 layers"     -- "$BIN" info "$T/m.kvs" --plan 0,0,2
expect_error "plan cycle"           "cycle"             -- "$BIN" info "$T/m.kvs" --plan 1,0,2,3,4,5,6,7
expect_error "unknown plan"         "unknown"           -- "$BIN" info "$T/m.kvs" --plan banana
expect_error "prompt too long"      "more than"         -- "$BIN" generate "$T/m.kvs" -i "$(head -c 200 /dev/zero | tr '\0' a)" -n 0
expect_error "prompt over steps"    "more than -n"      -- "$BIN" generate "$T/m.kvs" -i "a long enough prompt" -n 3
expect_error "unknown option"       "unknown option"    -- "$BIN" generate "$T/m.kvs" --temperature 1
expect_error "option needs value"   "needs a value"     -- "$BIN" generate "$T/m.kvs" -n
expect_error "bad number"           "not a number"      -- "$BIN" generate "$T/m.kvs" -t hot
expect_error "bad integer"          "not an integer"    -- "$BIN" generate "$T/m.kvs" -n 12x
expect_error "bad prefill"          "unknown mode"      -- "$BIN" generate "$T/m.kvs" --prefill fast
expect_error "bad iterations"       "N >= 1"            -- "$BIN" generate "$T/m.kvs" --prefill iterations:0
expect_error "bad device"           "unknown device"    -- "$BIN" generate "$T/m.kvs" --device tpu
expect_error "bad batch"            "batch"             -- "$BIN" generate "$T/m.kvs" --batch 0
expect_error "bad temperature"      "temperature"       -- "$BIN" generate "$T/m.kvs" -t -1
expect_error "unknown command"      "unknown command"   -- "$BIN" frobnicate
expect_error "missing tokenizer"    "cannot open"       -- "$BIN" generate "$T/m.kvs" -z "$T/nope.bin"
expect_error "wrong tokenizer"      "tokenizer"         -- "$BIN" generate "$T/m.kvs" -z "$T/text.txt"
expect_error "eval without data"    "--data"            -- "$BIN" eval "$T/m.kvs"
expect_error "eval empty data"      "empty"             -- "$BIN" eval "$T/m.kvs" --data "$T/empty.txt"
expect_error "plans without layers" "--layers"          -- "$BIN" plans
expect_error "plans bad kv"         "--kv"              -- "$BIN" plans --layers 8 --kv 9
expect_error "init bad shape"       "n_heads"           -- "$BIN" init "$T/x.kvs" --dim 10 --heads 3 --layers 2
expect_error "init unknown preset"  "unknown preset"    -- "$BIN" init "$T/x.kvs" --preset huge
expect_error "bench nothing"        "decode"            -- "$BIN" bench
expect_error "throughput bad size"  "not a size"        -- "$BIN" bench throughput --preset tiny --budget 12X --prompt 8 -n 8
expect_error "throughput too small" "no plan fits"      -- "$BIN" bench throughput --preset tiny --budget 10K --prompt 8 -n 8
expect_error "throughput both"      "fixed batch"       -- "$BIN" bench throughput --preset tiny --batch 2 --budget 1M
expect_error "throughput context"   "exceeds"           -- "$BIN" bench throughput --preset tiny --prompt 60 -n 8
expect_error "throughput bad plan"  "plan"              -- "$BIN" bench throughput --preset tiny --plans "standard cla:0" --prompt 8 -n 8
expect_error "throughput no model"  "MODEL"             -- "$BIN" bench throughput
expect_error "plans bad plan"       "unknown"           -- "$BIN" bench plans --preset tiny --plans "standard banana" --prompt 8 -n 8
expect_error "plans bad number"     "not an integer"    -- "$BIN" bench plans --preset tiny --prompt 8 -n 8 --repeats two
expect_error "plans zero batch"     "at least 1"        -- "$BIN" bench plans --preset tiny --prompt 8 -n 8 --batch 0
expect_error "plans context"        "exceeds"           -- "$BIN" bench plans --preset tiny --prompt 60 -n 8
expect_error "plans bad device"     "unknown device"    -- "$BIN" bench plans --preset tiny --prompt 8 -n 8 --device tpu
expect_error "plans bad copy size"  "not a size"        -- "$BIN" bench plans --preset tiny --prompt 8 -n 8 --copy-size big
expect_error "plans bad gemm size"  "at least 1"        -- "$BIN" bench plans --preset tiny --prompt 8 -n 8 --gemm-size 0
expect_error "plans no model"       "MODEL"             -- "$BIN" bench plans
expect_error "plans model and preset" "not both"        -- "$BIN" bench plans "$T/m.kvs" --preset tiny
expect_error "plans needs standard" "K/V weights" -- "$BIN" bench plans "$T/lckv.kvs" --plans standard --prompt 8 -n 8
expect_error "prefill bad iterations" "at least 1"      -- "$BIN" bench prefill --preset tiny --iterations "1 0"
expect_error "prefill word iterations" "not an integer" -- "$BIN" bench prefill --preset tiny --iterations "1 two"
expect_error "prefill no iterations" "empty"            -- "$BIN" bench prefill --preset tiny --iterations ""
expect_error "prefill takes no -n"  "unknown option"    -- "$BIN" bench prefill --preset tiny -n 8
expect_error "prefill bad plan"     "cla:0"             -- "$BIN" bench prefill --preset tiny --plans "standard cla:0"
expect_error "calibrate too many"   "1..7"              -- "$BIN" calibrate "$T/m.kvs" --shared 8 --sequences 2 --tokens 8 -o "$T/p.plan"
expect_error "calibrate empty data" "empty"             -- "$BIN" calibrate "$T/m.kvs" --shared 2 --data "$T/empty.txt" -o "$T/p.plan"
expect_error "calibrate short data" "fewer than one"    -- "$BIN" calibrate "$T/m.kvs" --shared 2 --data "$T/text.txt" --tokens 64 -o "$T/p.plan"
expect_error "calibrate no target"  "--shared"          -- "$BIN" calibrate "$T/m.kvs"
expect_error "tokenizer no vocab"   "--vocab"           -- "$BIN" tokenizer "$T/t.tok" --stories 10
if ! "$BIN" generate "$T/m.kvs" -n 2 --device cuda >/dev/null 2>"$T/err"; then
    expect_error "cuda without gpu"     "cuda"              -- "$BIN" generate "$T/m.kvs" -n 2 --device cuda
    expect_error "plans cuda without gpu" "cuda"        -- "$BIN" bench plans --preset tiny --prompt 8 -n 8 --device cuda
    expect_error "plans both without gpu" "both"        -- "$BIN" bench plans --preset tiny --prompt 8 -n 8 --device both
    expect_error "prefill cuda without gpu" "cuda"      -- "$BIN" bench prefill --preset tiny --device cuda
fi

# Hugging Face folders: made by export, then damaged one way each
"$BIN" export "$T/m.bin" "$T/hf" 2>/dev/null || { echo "cli: export failed"; exit 1; }
for d in badjson badst rope gqa; do mkdir "$T/$d" && cp "$T/hf/"* "$T/$d/"; done
printf '{"model_type": "llama", "hidden_size": 48,' > "$T/badjson/config.json"
printf '\xff\xff\x00\x00\x00\x00\x00\x00{}' > "$T/badst/model.safetensors"
sed -i 's/"rope_scaling": null/"rope_scaling": {"type": "linear", "factor": 2.0}/' "$T/rope/config.json"
sed -i 's/"num_key_value_heads": 2/"num_key_value_heads": 4/' "$T/gqa/config.json"
printf '{"version": "1.0", "model": {"type": "BPE"}}' > "$T/tokenizer.json"
expect_error "malformed config.json" "not valid JSON"   -- "$BIN" info "$T/badjson"
expect_error "safetensors past end" "past the end"      -- "$BIN" generate "$T/badst"
expect_error "unsupported config"   "rope_scaling"      -- "$BIN" eval "$T/rope" --data "$T/text.txt"
expect_error "misshapen tensor"     "config.json implies" -- "$BIN" info "$T/gqa"
expect_error "folder part alone"    "give the folder"   -- "$BIN" info "$T/hf/model.safetensors"
expect_error "not a model folder"   "without config.json" -- "$BIN" info "$T"
expect_error "tokenizer.json"       "tokenizer.json"    -- "$BIN" generate "$T/m.kvs" -z "$T/tokenizer.json"
expect_error "export onto a file"   "is a file"         -- "$BIN" export "$T/m.kvs" "$T/text.txt"
expect_error "export bad dtype"     "--dtype"           -- "$BIN" export "$T/m.kvs" "$T/x" --dtype f16
expect_error "export no folder"     "OUTDIR"            -- "$BIN" export "$T/m.kvs"
# the folder generates what the llama2.c file does, and keeps its plan through an LCKV export
a=$("$BIN" generate "$T/hf" -i "Once" -n 20 -t 0 2>/dev/null)
b=$("$BIN" generate "$T/m.bin" -i "Once" -n 20 -t 0 2>/dev/null)
"$BIN" export "$T/lckv.kvs" "$T/hf-lckv" 2>/dev/null
if [ -n "$a" ] && [ "$a" == "$b" ] && grep -q '"model_type": "lckv-llama"' "$T/hf-lckv/config.json" &&
   "$BIN" info "$T/hf-lckv" | grep -q "kv layers  3 of 8"; then
    pass=$((pass + 1))
else
    fail=$((fail + 1)); echo "FAILED: export: folder text '$a' vs .bin '$b', or the LCKV export lost its plan"
fi

# generate: stdout is only the text (the prompt echo plus what was sampled); stats go to stderr
out=$("$BIN" generate "$T/m.kvs" -i "Once" -n 12 -t 0 2>"$T/err"); rc=$?
if [ $rc -eq 0 ] && [[ "$out" == Once* ]] && grep -q "tok/s" "$T/err" && grep -q "random weights" "$T/err" && ! grep -q "tok/s" <<<"$out"; then
    pass=$((pass + 1))
else
    fail=$((fail + 1)); echo "FAILED: generate output split: rc $rc, stdout '$out'"
fi
# greedy generation is reproducible, and the same through the llama2.c file
a=$("$BIN" generate "$T/m.kvs" -i "Once" -n 20 -t 0 2>/dev/null)
b=$("$BIN" generate "$T/m.bin" -i "Once" -n 20 -t 0 -s 9 2>/dev/null)
if [ -n "$a" ] && [ "$a" == "$b" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: greedy .kvs vs .bin: '$a' vs '$b'"; fi

# calibrate writes a plan that generate, eval and info accept
if "$BIN" calibrate "$T/m.kvs" --shared 2 --sequences 3 --tokens 16 --threshold -1 -o "$T/k.plan" --layer-types "$T/k.types" >/dev/null 2>&1 &&
   grep -Eq '^[0-9]+(_[0-9]+){7}$' "$T/k.types" &&
   "$BIN" info "$T/m.kvs" --plan "$T/k.plan" | grep -q "kv layers  6 of 8" &&
   "$BIN" generate "$T/m.kvs" --plan "$T/k.plan" -n 8 >/dev/null 2>&1 &&
   "$BIN" eval "$T/m.kvs" --plan "$T/k.plan" --data "$T/text.txt" >/dev/null 2>&1; then
    pass=$((pass + 1))
else
    fail=$((fail + 1)); echo "FAILED: calibrate plan file (or its layer_types) not accepted by info/generate/eval"
fi

# a failed command leaves the files it would have written as they were, and no temporary files
printf 'keep me\n' > "$T/keep.csv"; printf 'keep me\n' > "$T/keep.svg"
expect_error "throughput keeps files" "no plan fits"    -- "$BIN" bench throughput --preset tiny --budget 10K --prompt 8 -n 8 --csv "$T/keep.csv" --svg "$T/keep.svg"
if [ "$(cat "$T/keep.csv")$(cat "$T/keep.svg")" == "keep mekeep me" ] && [ -z "$(ls "$T" | grep -F .tmp-)" ]; then
    pass=$((pass + 1))
else
    fail=$((fail + 1)); echo "FAILED: a failed bench throughput changed --csv/--svg or left a temporary file"
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
