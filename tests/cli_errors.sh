#!/usr/bin/env bash
# Bad input gets one clear error line on stderr and exit status 1: never a crash, a hang,
# or output that looks like success. Also checks that generate's stdout holds only text.
# usage: tests/cli_errors.sh ./kvshare
set -u
BIN=${1:-./kvshare}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
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

expect_error "missing model"        "no such file"       -- "$BIN" generate "$T/nope.kvs"
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
expect_error "bad iterations"       "1..1048576"            -- "$BIN" generate "$T/m.kvs" --prefill iterations:0
expect_error "bad upward rule"      "paper, authors"    -- "$BIN" generate "$T/lckv.kvs" --upward-rule both
expect_error "eval bad upward rule" "paper, authors"    -- "$BIN" eval "$T/lckv.kvs" --probes 1 --upward-rule Authors
expect_error "bad device"           "unknown device"    -- "$BIN" generate "$T/m.kvs" --device tpu
expect_error "bad batch"            "batch"             -- "$BIN" generate "$T/m.kvs" --batch 0
expect_error "bad temperature"      "-t must be 0..100"       -- "$BIN" generate "$T/m.kvs" -t -1
expect_error "unknown command"      "unknown command"   -- "$BIN" frobnicate
expect_error "missing tokenizer"    "no such file"       -- "$BIN" generate "$T/m.kvs" -z "$T/nope.bin"
expect_error "wrong tokenizer"      "tokenizer"         -- "$BIN" generate "$T/m.kvs" -z "$T/text.txt"
expect_error "eval without data"    "--data"            -- "$BIN" eval "$T/m.kvs"
# GGUF files written byte by byte: an old version, a tensor count no file holds, another architecture
Z8='\x00\x00\x00\x00\x00\x00\x00\x00'
printf "GGUF\x01\x00\x00\x00$Z8$Z8$Z8$Z8" > "$T/v1.gguf"
printf "GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff$Z8$Z8$Z8" > "$T/many.gguf"
printf "GGUF\x03\x00\x00\x00$Z8\x01\x00\x00\x00\x00\x00\x00\x00\x14\x00\x00\x00\x00\x00\x00\x00general.architecture\x08\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00gpt2" > "$T/gpt2.gguf"
expect_error "GGUF version 1"       "version 1"         -- "$BIN" info "$T/v1.gguf"
expect_error "GGUF tensor count"    "claims 18446744073709551615 tensors" -- "$BIN" generate "$T/many.gguf"
expect_error "GGUF architecture"    "'gpt2' model"      -- "$BIN" info "$T/gpt2.gguf"
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
expect_error "plans zero batch"     "1..65535"        -- "$BIN" bench plans --preset tiny --prompt 8 -n 8 --batch 0
expect_error "plans context"        "exceeds"           -- "$BIN" bench plans --preset tiny --prompt 60 -n 8
expect_error "plans bad device"     "unknown device"    -- "$BIN" bench plans --preset tiny --prompt 8 -n 8 --device tpu
expect_error "plans bad copy size"  "not a size"        -- "$BIN" bench plans --preset tiny --prompt 8 -n 8 --copy-size big
expect_error "plans bad gemm size"  "1..16384"        -- "$BIN" bench plans --preset tiny --prompt 8 -n 8 --gemm-size 0
expect_error "plans no model"       "MODEL"             -- "$BIN" bench plans
expect_error "plans model and preset" "not both"        -- "$BIN" bench plans "$T/m.kvs" --preset tiny
expect_error "plans needs standard" "K/V weights" -- "$BIN" bench plans "$T/lckv.kvs" --plans standard --prompt 8 -n 8
expect_error "prefill bad iterations" "1..1024"      -- "$BIN" bench prefill --preset tiny --iterations "1 0"
expect_error "gemm bad model"        "unknown preset"    -- "$BIN" bench gemm --models "tiny gpt5"
expect_error "gemm zero rows"        "1..65536"          -- "$BIN" bench gemm --rows "0 16"
expect_error "gemm bad product"      "unknown product"   -- "$BIN" bench gemm --products "forward dq"
expect_error "gemm extra argument"   "unexpected"        -- "$BIN" bench gemm tiny
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

# issue 17: memory checked before it is taken, with the size and the flag to change
"$BIN" init "$T/wide.kvs" --dim 1024 --hidden 8 --layers 1 --heads 8 --vocab 259 --seq 65536 2>/dev/null ||
    { echo "cli: init of the wide model failed"; exit 1; }
expect_error "KV cache over memory"   "lower --batch or -n" -- "$BIN" generate "$T/wide.kvs" --batch 4096 -n 65536
expect_error "bench KV over memory"   "lower --batch"     -- "$BIN" bench decode "$T/wide.kvs" --batch 65535 --prompt 8 -n 60000
expect_error "copy ceiling too big"   "a smaller --copy-size" -- "$BIN" bench plans --preset tiny --prompt 8 -n 8 --copy-size 1000T
expect_error "gemm ceiling too big"   "1..16384"          -- "$BIN" bench plans --preset tiny --prompt 8 -n 8 --gemm-size 100000
expect_error "budget over memory"     "more than the"     -- "$BIN" bench throughput --preset tiny --budget 1000T --prompt 8 -n 8
expect_error "absurd init"            "needs"             -- "$BIN" init "$T/x.kvs" --dim 65536 --hidden 262144 --layers 1024 --heads 1
# overflow: every numeric option has a range (tests/test_cli_fuzz.cpp tries them all)
expect_error "batch 1e9"              "allowed: 1..65535" -- "$BIN" bench decode --preset tiny --batch 1e9
expect_error "converge -n -5"         "1..64"             -- "$BIN" bench converge --preset tiny --plan lckv:2 -n -5
expect_error "prompt INT_MAX"         "1..64"             -- "$BIN" bench decode --preset tiny --prompt 2147483647
expect_error "info INT_MAX"           "1..64"             -- "$BIN" info "$T/m.kvs" --context 2147483647 --batch 2147483647
expect_error "iterations overflow"    "0..100"            -- "$BIN" train "$T/x.kvs" --stories 10 --plan lckv:2 --iterations 2147483647,2
expect_error "iterations hang"        "0..100"            -- "$BIN" train "$T/x.kvs" --stories 10 --plan lckv:2 --iterations 1000000000,2
expect_error "absurd learning rate"   "--lr must be 0..1"         -- "$BIN" train "$T/x.kvs" --stories 10 --lr 1e30
expect_error "stories over range"     "1..10000000"       -- "$BIN" train "$T/x.kvs" --stories 2000000000
if out=$("$BIN" info "$T/wide.kvs" --batch 1048576 2>&1) && grep -q "kv total   KV cache 562949.95 GB" <<<"$out"; then
    pass=$((pass + 1))
else
    fail=$((fail + 1)); echo "FAILED: info of a large batch: $out"
fi
# NaN or Inf: refused where it appears, never exit 0
cp "$T/m.kvs" "$T/nan.kvs"
printf '\x00\x00\xc0\x7f' | dd of="$T/nan.kvs" bs=1 seek=300 conv=notrunc 2>/dev/null
expect_error "NaN weights, eval"      "NaN"               -- "$BIN" eval "$T/nan.kvs" --data "$T/text.txt"
expect_error "NaN weights, generate"  "NaN"               -- "$BIN" generate "$T/nan.kvs" -n 4
cp "$T/m.kvs" "$T/overflow.kvs"   # rms_final (the last 48 floats of a tied model) = 3e38: logits overflow
for i in $(seq 48); do printf '\xe6\xb1\x61\x7f'; done | dd of="$T/overflow.kvs" bs=1 seek=$(($(stat -c %s "$T/m.kvs") - 192)) conv=notrunc 2>/dev/null
expect_error "overflowing logits, generate" "logits are" -- "$BIN" generate "$T/overflow.kvs" -n 4 -t 0
expect_error "overflowing logits, eval"     "logits are" -- "$BIN" eval "$T/overflow.kvs" --data "$T/text.txt"
"$BIN" init "$T/long.kvs" --preset tiny --seq 512 -s 3 2>/dev/null || { echo "cli: init --seq 512 failed"; exit 1; }
for i in $(seq 48); do printf '\xe6\xb1\x61\x7f'; done | dd of="$T/long.kvs" bs=1 seek=$(($(stat -c %s "$T/long.kvs") - 192)) conv=notrunc 2>/dev/null
expect_error "overflowing logits, probes"   "logits are" -- "$BIN" eval "$T/long.kvs" --probes 3
expect_error "no probe fits"            "no recall probe fits" -- "$BIN" eval "$T/m.kvs" --probes 3
# messages that say what is wrong
mkdir -p "$T/dir"
expect_error "model is a directory"     "is a directory" -- "$BIN" generate "$T/dir"
expect_error "tokenizer is a directory" "is a directory" -- "$BIN" generate "$T/m.kvs" -z "$T/dir"
expect_error "data is a directory"      "is a directory" -- "$BIN" eval "$T/m.kvs" --data "$T/dir"
expect_error "plan is a directory"      "is a directory" -- "$BIN" info "$T/m.kvs" --plan "$T/dir"
expect_error "plan file missing"        "no such file"   -- "$BIN" info "$T/m.kvs" --plan "$T/nope.plan"
expect_error "output is a directory"    "is a directory" -- "$BIN" init "$T/dir" --preset tiny
expect_error "output folder missing"    "does not exist" -- "$BIN" train "$T/none/x.kvs" --stories 10
expect_error "empty plan"               "empty value"    -- "$BIN" generate "$T/m.kvs" --plan ""
expect_error "empty tokenizer"          "empty value"    -- "$BIN" generate "$T/m.kvs" -z ""
expect_error "option twice"             "given twice"    -- "$BIN" generate "$T/m.kvs" -n 4 -n 8
printf '0,1,2,3\0,4,5,6,7\n' > "$T/nul.plan"
expect_error "plan file with a NUL"     "control byte"   -- "$BIN" info "$T/m.kvs" --plan "$T/nul.plan"
expect_error "model and preset"         "not both"       -- "$BIN" bench decode "$T/m.kvs" --preset tiny
expect_error "converge model and preset" "not both"      -- "$BIN" bench converge "$T/m.kvs" --preset tiny
expect_error "converge no iterations"   "1..32"          -- "$BIN" bench converge --preset tiny --plan lckv:2 --max-iterations 0
expect_error "converge -i and -n"       "not both"       -- "$BIN" bench converge --preset tiny --plan lckv:2 -n 8 -i "Once"
expect_error "kernels bad size"         "kvshare bench kernels" -- "$BIN" bench kernels --size 0
expect_error "kernels no size"          "kvshare bench kernels" -- "$BIN" bench kernels --size
expect_error "info stray argument"      "unexpected argument" -- "$BIN" info "$T/m.kvs" extra
expect_error "stories stray argument"   "unexpected argument" -- "$BIN" stories 3 4
(cd "$T" && expect_error "calibrate stray argument" "goes after -o" -- "$BIN" calibrate m.kvs out.plan --shared 2)
if [ ! -e "$T/kvsharer.plan" ] && [ ! -e "$T/out.plan" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: a refused calibrate wrote a plan"; fi
# -t 1e-45 is a temperature (a tiny one), not "not a number"
if "$BIN" generate "$T/m.kvs" -n 6 -t 1e-45 >/dev/null 2>&1; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: -t 1e-45 refused"; fi
# streams: the first stories of two billion come at once (head closes the pipe)
if [ "$(timeout 10 "$BIN" stories 2000000000 | head -n 2 | wc -l)" -eq 2 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: stories did not stream"; fi

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

# calibrate --each writes the plan after every accepted change, the last one equal to -o's
if "$BIN" calibrate "$T/m.kvs" --shared 3 --sequences 3 --tokens 16 --threshold -1 -o "$T/e.plan" --each "$T/each" >/dev/null 2>&1 &&
   "$BIN" info "$T/m.kvs" --plan "$T/each.1.plan" | grep -q "kv layers  7 of 8" &&
   "$BIN" info "$T/m.kvs" --plan "$T/each.2.plan" | grep -q "kv layers  6 of 8" &&
   [ "$(grep -v '^#' "$T/each.3.plan")" == "$(grep -v '^#' "$T/e.plan")" ] && [ ! -e "$T/each.4.plan" ]; then
    pass=$((pass + 1))
else
    fail=$((fail + 1)); echo "FAILED: calibrate --each did not write one plan per accepted change"
fi
expect_error "calibrate --each into a missing folder" "no-such-dir" -- "$BIN" calibrate "$T/m.kvs" --shared 2 --sequences 2 --tokens 8 -o "$T/p2.plan" --each "$T/no-such-dir/x"

# a failed command leaves the files it would have written as they were, and no temporary files
printf 'keep me\n' > "$T/keep.csv"; printf 'keep me\n' > "$T/keep.svg"
expect_error "throughput keeps files" "no plan fits"    -- "$BIN" bench throughput --preset tiny --budget 10K --prompt 8 -n 8 --csv "$T/keep.csv" --svg "$T/keep.svg"
if [ "$(cat "$T/keep.csv")$(cat "$T/keep.svg")" == "keep mekeep me" ] && [ -z "$(ls "$T" | grep -F .tmp-)" ]; then
    pass=$((pass + 1))
else
    fail=$((fail + 1)); echo "FAILED: a failed bench throughput changed --csv/--svg or left a temporary file"
fi

# tokenize and chat (issue 21): SmolLM2's tokenizer (tests/data/tokenizer) on a random model of its vocabulary
SMOL=$(cd "$(dirname "$0")" && pwd)/data/tokenizer/smollm2-tokenizer.json
ids=$("$BIN" tokenize -z "$SMOL" -i "Hello, world! 12" --ids 2>/dev/null)
if [ "$ids" == "19556 28 905 17 216 33 34" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: tokenize --ids gave '$ids'"; fi
expect_error "tokenize nothing"      "give a MODEL"      -- "$BIN" tokenize -i "x"
expect_error "tokenize no text"      "-i TEXT"           -- "$BIN" tokenize -z "$SMOL"
expect_error "tokenize bin alone"    "vocabulary size"   -- "$BIN" tokenize -z "$T/zeros.bin" -i "x"
expect_error "tokenize wrong vocab"  "49152 tokens"      -- "$BIN" tokenize "$T/m.kvs" -z "$SMOL" -i "x"
expect_error "chat no template"      "--chat-template"   -- "$BIN" chat "$T/m.kvs"
expect_error "chat bad template"     "--chat-template"   -- "$BIN" chat "$T/m.kvs" --chat-template alpaca
expect_error "chat template tokens"  "<|im_start|>"      -- "$BIN" chat "$T/m.kvs" --chat-template chatml
"$BIN" init "$T/s.kvs" --dim 32 --hidden 64 --layers 2 --heads 2 --kv-heads 1 --vocab 49152 --seq 48 -s 5 2>/dev/null
# a reply that never ends fills the context: the text so far, then one clear error
printf 'hi\n' | timeout 60 "$BIN" chat "$T/s.kvs" -z "$SMOL" --chat-template chatml -t 0 >/dev/null 2>"$T/err"; rc=$?
if [ $rc -eq 1 ] && [ "$(grep -c "kvshare: error: the conversation has filled the context of 48" "$T/err")" -eq 1 ]; then
    pass=$((pass + 1))
else
    fail=$((fail + 1)); echo "FAILED: chat context full: rc $rc, stderr $(cat "$T/err")"
fi
# exported with its tokenizer.json, a folder runs without -z; an eos_token_id naming every id
# ends every reply (and generate) at once; no BOS, as the tokenizer asks
"$BIN" export "$T/s.kvs" "$T/hfs" -z "$SMOL" 2>/dev/null
# its config.json names the fast tokenizer class the folder holds, and no EOS: a bare
# tokenizer.json names none (SentencePiece's layout would say 2)
if grep -q '"tokenizer_class": *"PreTrainedTokenizerFast"' "$T/hfs/config.json" && ! grep -q 'eos_token_id' "$T/hfs/generation_config.json" &&
   ! grep -q 'LlamaTokenizer\|eos_token_id' "$T/hfs/config.json"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: a byte-level export's config.json: $(cat "$T/hfs/config.json")"; fi
printf '{"eos_token_id": [%s]}\n' "$(seq -s, 0 49151)" > "$T/hfs/generation_config.json"
printf 'hi\n\nthere\n' | timeout 60 "$BIN" chat "$T/hfs" --chat-template chatml >"$T/out" 2>"$T/err"; rc=$?
out=$(wc -l < "$T/out")
gen=$("$BIN" generate "$T/hfs" -i "Hello" -n 20 -t 0 2>/dev/null)
ids=$("$BIN" tokenize "$T/hfs" -i "Hello" --ids 2>/dev/null)
if [ $rc -eq 0 ] && [ "$out" -eq 2 ] && grep -q "^[0-9]* positions of 48 used; 0 reply tokens" "$T/err" && [ -f "$T/hfs/tokenizer.json" ] &&
   [ -f "$T/hfs/tokenizer_config.json" ] && [ ! -f "$T/hfs/tokenizer.model" ] && [ "$gen" == "Hello" ] && [ "$ids" == "19556" ]; then
    pass=$((pass + 1))
else
    fail=$((fail + 1)); echo "FAILED: chat/generate on an exported byte-level folder: rc $rc, out '$out', generate '$gen', ids '$ids', stderr $(cat "$T/err")"
fi
gen=$("$BIN" generate "$T/s.kvs" -z "$SMOL" -i "Hello" -n 20 -t 0 2>/dev/null)
if [ ${#gen} -gt 5 ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: generate without an EOS stopped early: '$gen'"; fi

# train --init reads --text with the model's own tokenizer (here the folder's tokenizer.json, no
# BOS): before, it wanted a tokenizer.bin for any model without the byte tokenizer's vocabulary
head -c 4000 /usr/share/common-licenses/BSD > "$T/bsd.txt" 2>/dev/null || printf 'Redistribution and use in source and binary forms. %.0s' $(seq 60) > "$T/bsd.txt"
if "$BIN" train "$T/t2.kvs" --init "$T/hfs" --text "$T/bsd.txt" --steps 2 --batch 1 --seq 16 --eval-every 0 --log-every 0 >/dev/null 2>"$T/err" &&
   grep -q "train / [0-9]* validation tokens" "$T/err" && "$BIN" eval "$T/t2.kvs" -z "$SMOL" --data "$T/bsd.txt" --context 16 >/dev/null 2>&1; then
    pass=$((pass + 1))
else
    fail=$((fail + 1)); echo "FAILED: train --init on a folder with a tokenizer.json: $(cat "$T/err")"
fi

# sharing-report (chapter 11): a file that is not its CSV is one error; a good one leaves its files
expect_error "sharing-report not a csv" "header"         -- "$BIN" sharing-report "$T/text.txt" --svg "$T/sr.svg"
[ ! -e "$T/sr.svg" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAILED: a refused sharing-report wrote its SVG"; }
printf '%s\nplan,standard,0_1,2,1024,19.6,40,one pass,,,,,\n' "$("$BIN" sharing-report --help | tail -n 1)" > "$T/rows.csv"
if "$BIN" sharing-report "$T/rows.csv" --svg "$T/sr.svg" --markdown "$T/sr.md" && grep -q "| standard | 2 | 1.0 KB | 19.60 |" "$T/sr.md" &&
   grep -q "</svg>" "$T/sr.svg"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: sharing-report on a good CSV"; fi

# OpenMP's threads spin 1000 rounds while they wait (src/omp_wait.h), not libgomp's 300,000,
# unless the user set GOMP_SPINCOUNT or OMP_WAIT_POLICY, or runs one thread: libgomp prints
# what it read with OMP_DISPLAY_ENV, once per start (kvshare starts twice when it sets it)
spin() { env "$@" OMP_DISPLAY_ENV=verbose "$BIN" --help 2>&1 >/dev/null | grep "GOMP_SPINCOUNT =" | tail -n 1; }
for want in "OMP_NUM_THREADS=2:'1000'" "OMP_NUM_THREADS=2 GOMP_SPINCOUNT=7:'7'" "OMP_NUM_THREADS=2 OMP_WAIT_POLICY=passive:'0'" \
            "OMP_NUM_THREADS=1:'300000'"; do
    got=$(spin ${want%%:*})
    if [[ "$got" == *"= ${want#*:}" ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: spin count with ${want%%:*}: $got"; fi
done

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
