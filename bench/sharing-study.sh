#!/usr/bin/env bash
# What sharing a pretrained model's KV cache costs, which layers to share, and what training
# buys back: every row of walkthrough chapter 11, measured on the CPU (make sharing-study).
#
#   bench/sharing-study.sh [options] [STAGE ...]
#
# Stages, in order (default: all of them):
#   data      the evaluation, calibration and training texts, from files every Debian machine
#             has (/usr/share/common-licenses, Python's pydoc_data/topics.py), split by document
#   plans     perplexity of the model under every plan family at about 90%, 75% and 50% of its
#             KV layers, each applied at load, no training
#   kvsharer  kvshare calibrate at C = 1, 2, 3, 5, 10 shared layers, orders dissimilar, similar
#             and random (5 seeds), and the perplexity of each plan found
#   train     the model trained further under standard (the control), cla:2 and an LCKV plan
#             with the same steps each, and the perplexity after
#   speed     CPU decode tokens/s of every named plan (kvshare bench plans)
#   report    rows.csv, tables.md and chart.svg (kvshare sharing-report)
# Every measurement is a file under the output folder; one that is there is not measured
# again, so a stopped run resumes where it stopped (delete a file to measure it again).
#
# Options:
#   --model M       the model (default models/SmolLM2-135M-Instruct.Q4_1.gguf: make smollm2)
#   -z TOKENIZER    its tokenizer (default: the model's own), also for the models training writes
#                   (.kvs files keep none; without -z: SmolLM2's, tests/data/tokenizer/smollm2-tokenizer.json)
#   --out DIR       where everything goes (default sharing-study)
#   --kvs BIN       the kvshare binary (default ./kvshare)
#   --context N     eval window, tokens (default 512)
#   --shared "C.."  KVSharer's targets (default "1 2 3 5 10"); --seeds S random seeds (default 5)
#   --train-steps N --train-batch B --train-seq T --train-lr LR   (defaults 40, 8, 256, 1e-4)
#   --lckv PLAN     the LCKV-style plan trained (default lckv:W with half the KV layers kept)
#   --quick         tiny settings, for tests/sharing_study.sh on the shipped 0.7M model
set -uo pipefail

MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
TOK=""
OUT=sharing-study
KVS=./kvshare
CONTEXT=512
SHARED="1 2 3 5 10"
SEEDS=5
TRAIN_STEPS=40 TRAIN_BATCH=8 TRAIN_SEQ=256 TRAIN_LR=1e-4
LCKV=""
SEQUENCES=30 CAL_TOKENS=64
SPEED="--prompt 32 -n 64 --repeats 3"
QUICK=0
STAGES=()
while [ $# -gt 0 ]; do
    case "$1" in
        --model) MODEL=$2; shift 2 ;;
        -z) TOK=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --kvs) KVS=$2; shift 2 ;;
        --context) CONTEXT=$2; shift 2 ;;
        --shared) SHARED=$2; shift 2 ;;
        --seeds) SEEDS=$2; shift 2 ;;
        --train-steps) TRAIN_STEPS=$2; shift 2 ;;
        --train-batch) TRAIN_BATCH=$2; shift 2 ;;
        --train-seq) TRAIN_SEQ=$2; shift 2 ;;
        --train-lr) TRAIN_LR=$2; shift 2 ;;
        --lckv) LCKV=$2; shift 2 ;;
        --quick) QUICK=1; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        data|plans|kvsharer|train|speed|report) STAGES+=("$1"); shift ;;
        *) echo "sharing-study: unknown argument '$1' (see --help)" >&2; exit 1 ;;
    esac
done
[ ${#STAGES[@]} -eq 0 ] && STAGES=(data plans kvsharer train speed report)
if [ $QUICK -eq 1 ]; then  # seconds, not hours: the script's own test
    SHARED="1 2"; SEEDS=2; SEQUENCES=4; CAL_TOKENS=16
    TRAIN_STEPS=2 TRAIN_BATCH=2 TRAIN_SEQ=32
    SPEED="--prompt 8 -n 8 --repeats 1"
    CONTEXT=64
fi
HERE=$(cd "$(dirname "$0")" && pwd)
TOK_ARGS=()                      # for the model: -z when given, else its own tokenizer
[ -n "$TOK" ] && TOK_ARGS=(-z "$TOK")
TRAINED_TOK=${TOK:-"$HERE/../tests/data/tokenizer/smollm2-tokenizer.json"}

die() { echo "sharing-study: $*" >&2; exit 1; }
[ -x "$KVS" ] || die "no kvshare binary at '$KVS' (make, or --kvs BIN)"
[ -e "$MODEL" ] || die "no model at '$MODEL' (make smollm2 fetches SmolLM2-135M-Instruct, or --model M)"
mkdir -p "$OUT"/data "$OUT"/eval "$OUT"/info "$OUT"/kvsharer "$OUT"/train || die "cannot make '$OUT'"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
key_of() { echo "$1" | tr ':,=/' '____'; }   # a plan's name as a file name

# A command's stdout into FILE, all or nothing; its stderr into FILE.err.
measure() {
    local file=$1; shift
    [ -s "$file" ] && return 0
    log "$(basename "$file"): $*"
    local start=$SECONDS
    if "$@" > "$file.tmp" 2> "$file.err"; then
        mv "$file.tmp" "$file"
        echo "seconds $((SECONDS - start))" >> "$file.err"
    else
        rm -f "$file.tmp"; cat "$file.err" >&2; die "failed: $*"
    fi
}

# ---------------------------------------------------------------------------------------
# data: three texts that share no document

TOPICS=$(ls -1 /usr/lib/python3*/pydoc_data/topics.py 2>/dev/null | sort -V | tail -n 1)
LICENSES=/usr/share/common-licenses
EVAL_LICENSES="Apache-2.0 MPL-2.0"
CAL_LICENSES="BSD Artistic"
TRAIN_LICENSES="GPL-1 GPL-2 GPL-3 LGPL-2 LGPL-2.1 LGPL-3 GFDL-1.2 GFDL-1.3 CC0-1.0 MPL-1.1"

# Python's topics.py as text, topic by topic: a dict of adjacent string literals per key.
# Topic i (in file order) is printed when i % 10 is in the comma-separated list.
topics() {
    perl -e '
        my %keep = map { $_ => 1 } split /,/, $ARGV[0];
        local $/; my $s = <STDIN>;
        $s =~ s/^#[^\n]*\n//mg;
        my @topics;
        while ($s =~ /(\x27(?:[^\x27\\]|\\.)*\x27|"(?:[^"\\]|\\.)*")(\s*:)?/gs) {
            my ($lit, $colon) = ($1, $2);
            if (defined $colon) { push @topics, ""; next; }   # a key: a new topic
            my $t = substr($lit, 1, -1);
            $t =~ s/\\(n|t|\\|\x27|"|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})/
                $1 eq "n" ? "\n" : $1 eq "t" ? "\t" : length($1) == 1 ? $1 :
                do { my $c = hex(substr($1, 1)); my $u = chr($c); utf8::encode($u) if $c >= 128; $u }/ge;
            $topics[-1] .= $t;
        }
        for my $i (0 .. $#topics) { print $topics[$i], "\n" if $keep{$i % 10}; }
    ' "$1" < "$TOPICS"
}

stage_data() {
    local d=$OUT/data
    if [ -s "$d/evaluation.txt" ] && [ -s "$d/calibration.txt" ] && [ -s "$d/training.txt" ]; then return 0; fi
    [ -n "$TOPICS" ] || die "no /usr/lib/python3*/pydoc_data/topics.py (Debian's libpython3-stdlib)"
    for f in $EVAL_LICENSES $CAL_LICENSES $TRAIN_LICENSES; do [ -f "$LICENSES/$f" ] || die "no $LICENSES/$f (Debian's base-files)"; done
    log "data: $TOPICS and $LICENSES"
    { topics 0; for f in $EVAL_LICENSES; do cat "$LICENSES/$f"; echo; done; } > "$d/evaluation.tmp"
    { topics 5; for f in $CAL_LICENSES; do cat "$LICENSES/$f"; echo; done; } > "$d/calibration.tmp"
    { topics 1,2,3,4,6,7,8,9; for f in $TRAIN_LICENSES; do cat "$LICENSES/$f"; echo; done; } > "$d/training.tmp"
    if [ $QUICK -eq 1 ]; then  # a few windows of each
        for part in evaluation calibration training; do head -c 3000 "$d/$part.tmp" > "$d/$part.cut" && mv "$d/$part.cut" "$d/$part.tmp"; done
    fi
    {
        echo "# what went where: part, source, bytes, sha256 of the source file"
        for f in $EVAL_LICENSES; do echo "evaluation $LICENSES/$f $(wc -c < "$LICENSES/$f") $(sha256sum < "$LICENSES/$f" | cut -c1-16)"; done
        for f in $CAL_LICENSES; do echo "calibration $LICENSES/$f $(wc -c < "$LICENSES/$f") $(sha256sum < "$LICENSES/$f" | cut -c1-16)"; done
        for f in $TRAIN_LICENSES; do echo "training $LICENSES/$f $(wc -c < "$LICENSES/$f") $(sha256sum < "$LICENSES/$f" | cut -c1-16)"; done
        echo "all $TOPICS $(wc -c < "$TOPICS") $(sha256sum < "$TOPICS" | cut -c1-16) (topic i: evaluation i%10=0, calibration 5, training the rest)"
        for part in evaluation calibration training; do
            echo "$part: $(wc -c < "$d/$part.tmp") bytes, $("$KVS" tokenize "$MODEL" "${TOK_ARGS[@]}" --file "$d/$part.tmp" --ids 2>&1 >/dev/null | tail -n 1)"
        done
    } > "$d/SOURCES"
    for part in evaluation calibration training; do mv "$d/$part.tmp" "$d/$part.txt"; done
    cat "$d/SOURCES" >&2
}

# ---------------------------------------------------------------------------------------
# plans at load

# The model's layer count and K/V width, from kvshare info.
model_shape() {
    "$KVS" info "$MODEL" > "$OUT/info/model.txt" || die "kvshare info $MODEL failed"
    LAYERS=$(sed -n 's/.*layers \([0-9]*\),.*/\1/p' "$OUT/info/model.txt" | head -n 1)
    [ -n "$LAYERS" ] || die "cannot read the layer count from kvshare info"
}

# Named plans at about 90%, 75% and 50% of the layers keeping KV.
named_plans() {
    [ $QUICK -eq 1 ] && { echo standard cla:2 lckv:3 pizza-top:4; return; }
    local L=$LAYERS
    local l90=$(( (9 * L + 5) / 10 )) l75=$(( (3 * L + 2) / 4 )) l50=$(( (L + 1) / 2 ))
    echo standard cla:2 yoco
    for l in $l90 $l75 $l50; do echo "lckv:$((l - 1))"; done
    for family in pizza sandwich lasagna; do
        for where in bottom middle top; do
            for l in $l90 $l75 $l50; do echo "$family-$where:$l"; done
        done
    done
}

eval_plan() {  # KEY then eval's options
    local key=$1; shift
    measure "$OUT/eval/$key.txt" "$KVS" eval "$@" --data "$OUT/data/evaluation.txt" --context "$CONTEXT"
}

stage_plans() {
    model_shape
    for p in $(named_plans); do
        local key; key=$(key_of "$p")
        measure "$OUT/info/$key.txt" "$KVS" info "$MODEL" --plan "$p"
        eval_plan "$key" "$MODEL" "${TOK_ARGS[@]}" --plan "$p"
    done
}

# ---------------------------------------------------------------------------------------
# KVSharer

searches() {
    echo dissimilar similar
    for s in $(seq 1 "$SEEDS"); do echo "random-s$s"; done
}

stage_kvsharer() {
    local max=0
    for c in $SHARED; do [ "$c" -gt "$max" ] && max=$c; done
    for search in $(searches); do
        local order=${search%%-s*} seed=1
        [ "$order" != "$search" ] && seed=${search#random-s}
        local prefix=$OUT/kvsharer/$search
        measure "$prefix.log" "$KVS" calibrate "$MODEL" "${TOK_ARGS[@]}" --data "$OUT/data/calibration.txt" --sequences "$SEQUENCES" \
            --tokens "$CAL_TOKENS" --shared "$max" --order "$order" -s "$seed" -o "$prefix.plan" --each "$prefix"
        for c in $SHARED; do
            [ -f "$prefix.$c.plan" ] || { log "kvsharer $search: no plan for C=$c (fewer pairs passed the threshold)"; continue; }
            measure "$OUT/info/kvsharer-$search-C$c.txt" "$KVS" info "$MODEL" --plan "$prefix.$c.plan"
            eval_plan "kvsharer-$search-C$c" "$MODEL" "${TOK_ARGS[@]}" --plan "$prefix.$c.plan"
        done
    done
}

# ---------------------------------------------------------------------------------------
# training further

trained_plans() {
    [ -n "$LCKV" ] && { echo standard cla:2 "$LCKV"; return; }
    echo standard cla:2 "lckv:$(( (LAYERS + 1) / 2 - 1 ))"
}

stage_train() {
    model_shape
    for p in $(trained_plans); do
        local key; key=$(key_of "$p")
        local out=$OUT/train/$key.kvs
        if [ ! -s "$out" ]; then
            log "train $p: $TRAIN_STEPS steps of $TRAIN_BATCH x $TRAIN_SEQ tokens"
            local start=$SECONDS
            "$KVS" train "$out" --init "$MODEL" "${TOK_ARGS[@]}" --plan "$p" --text "$OUT/data/training.txt" --val-frac 0 --eval-every 0 \
                --steps "$TRAIN_STEPS" --batch "$TRAIN_BATCH" --seq "$TRAIN_SEQ" --lr "$TRAIN_LR" --log-every $(( TRAIN_STEPS < 5 ? TRAIN_STEPS : 5 )) -s 1 \
                > "$OUT/train/$key.log" 2>&1 || { cat "$OUT/train/$key.log" >&2; rm -f "$out"; die "training $p failed"; }
            echo "seconds $((SECONDS - start))" >> "$OUT/train/$key.log"
        fi
        measure "$OUT/info/trained-$key.txt" "$KVS" info "$out"
        eval_plan "trained-$key" "$out" -z "$TRAINED_TOK"
    done
}

# ---------------------------------------------------------------------------------------
# decode speed, and the report

stage_speed() {
    model_shape
    measure "$OUT/speed.txt" "$KVS" bench plans "$MODEL" --plans "$(named_plans | tr '\n' ' ')" $SPEED
}

field() { sed -n "s/^$2 *\(.*\)/\1/p" "$1" | head -n 1; }   # a line of kvshare info's output

# One CSV line: SECTION LABEL INFO_FILE EVAL_FILE ORDER SHARED SEED BEFORE NOTE
csv_row() {
    local section=$1 label=$2 info=$3 ev=$4 order=$5 shared=$6 seed=$7 before=$8 note=$9
    local plan kv hs kvh bytes ppl speed="" prefill
    plan=$(field "$info" source | tr ',' '_')
    kv=$(field "$info" "kv layers" | cut -d' ' -f1)
    kvh=$(sed -n 's/.*kv heads \([0-9]*\),.*/\1/p' "$info")
    hs=$(sed -n 's/.*head size \([0-9]*\),.*/\1/p' "$info")
    bytes=$(( kv * 2 * kvh * hs * 4 ))
    ppl=$(sed -n 's/.*perplexity \([0-9.]*\).*/\1/p' "$ev")
    [ -n "$ppl" ] || die "no perplexity in $ev"
    if grep -q "cyclic blocks: none" "$info"; then prefill="one pass"; else prefill="iterations:9"; fi
    if [ "$section" = plan ] && [ -s "$OUT/speed.txt" ]; then
        speed=$(awk -v p="$label" '$1 == p && $2 == "cpu" { print $5 }' "$OUT/speed.txt")
    fi
    echo "$section,$label,$plan,$kv,$bytes,$ppl,$speed,$prefill,$order,$shared,$seed,$before,$note"
}

stage_report() {
    model_shape
    local rows=$OUT/rows.csv
    {
        "$KVS" sharing-report --help | tail -n 1
        for p in $(named_plans); do
            local key; key=$(key_of "$p")
            [ -s "$OUT/eval/$key.txt" ] && csv_row plan "$p" "$OUT/info/$key.txt" "$OUT/eval/$key.txt" "" "" "" "" ""
        done
        for search in $(searches); do
            local order=${search%%-s*} seed=""
            [ "$order" != "$search" ] && seed=${search#random-s}
            for c in $SHARED; do
                local k=kvsharer-$search-C$c
                [ -s "$OUT/eval/$k.txt" ] && csv_row kvsharer "$order C=$c${seed:+ seed $seed}" "$OUT/info/$k.txt" "$OUT/eval/$k.txt" "$order" "$c" "$seed" "" ""
            done
        done
        for p in $(trained_plans); do
            local key; key=$(key_of "$p")
            [ -s "$OUT/eval/trained-$key.txt" ] || continue
            local before secs
            before=$(sed -n 's/.*perplexity \([0-9.]*\).*/\1/p' "$OUT/eval/$key.txt")
            [ -n "$before" ] || die "trained $p: no untrained perplexity ($OUT/eval/$key.txt): run the plans stage"
            secs=$(sed -n 's/^seconds //p' "$OUT/train/$key.log")
            csv_row trained "$p" "$OUT/info/trained-$key.txt" "$OUT/eval/trained-$key.txt" "" "" "" "$before" \
                "$TRAIN_STEPS steps of $TRAIN_BATCH x $TRAIN_SEQ tokens in ${secs}s"
        done
    } > "$rows.tmp" && mv "$rows.tmp" "$rows"
    "$KVS" sharing-report "$rows" --markdown "$OUT/tables.md" --svg "$OUT/chart.svg" \
        --title "$(basename "$MODEL"): perplexity against KV cache per token" || die "sharing-report failed"
    log "wrote $rows, $OUT/tables.md and $OUT/chart.svg"
}

for stage in "${STAGES[@]}"; do
    start=$SECONDS
    "stage_$stage"
    log "stage $stage: $((SECONDS - start)) s"
done
