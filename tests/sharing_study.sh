#!/usr/bin/env bash
# bench/sharing-study.sh (make sharing-study, chapter 11) on the shipped 0.7M model in its
# --quick settings: every stage writes its rows, a second run measures nothing again, a
# deleted measurement is made again, and bad arguments are one clear error.
#   bash tests/sharing_study.sh ./kvshare
set -u
BIN=${1:-./kvshare}
cd "$(dirname "$0")/.."
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $1"; fi; }
study() { bash bench/sharing-study.sh --quick --model models/standard.kvs -z models/stories.tok --kvs "$BIN" --out "$T/s" "$@"; }

study > "$T/out" 2> "$T/err"; rc=$?
check "a quick study runs" "[ $rc -eq 0 ]"
rows=$T/s/rows.csv
check "its CSV's header" "[ \"\$(head -n 1 $rows)\" == \"\$($BIN sharing-report --help | tail -n 1)\" ]"
check "4 named plans" "[ \$(grep -c '^plan,' $rows) -eq 4 ]"
check "KVSharer: C = 1, 2 for dissimilar, similar and 2 random seeds" "[ \$(grep -c '^kvsharer,' $rows) -eq 8 ]"
check "3 trained plans, each with its perplexity before" "[ \$(grep -c '^trained,.*,[0-9.]*,[0-9]* steps of 2 x 32 tokens' $rows) -eq 3 ]"
check "standard: 8 KV layers of 2 x 48 floats" "grep -q '^plan,standard,0_1_2_3_4_5_6_7,8,3072,[0-9.]*,[0-9.]*,one pass,' $rows"
check "lckv:3 iterates, cla:2 does not" "grep -q '^plan,lckv:3,0_1_6_6_6_6_6_7,4,1536,.*,iterations:9,' $rows && grep -q '^plan,cla:2,.*,one pass,' $rows"
check "a C=2 plan shares two layers" "grep -q '^kvsharer,dissimilar C=2,[0-9_]*,6,2304,' $rows"
check "the data's sources and token counts" "grep -q '^evaluation: [0-9]* bytes, [0-9]* tokens' $T/s/data/SOURCES && grep -q 'topics.py' $T/s/data/SOURCES"
check "tables and chart" "grep -q '| standard | 8 | 3.0 KB |' $T/s/tables.md && grep -q '</svg>' $T/s/chart.svg"
ppl=$(grep '^plan,cla:2,' "$rows" | cut -d, -f6)
check "the evaluation's perplexity is the row's" "grep -q \"perplexity $ppl\" $T/s/eval/cla_2.txt"

# a second run finds every measurement and makes none; a deleted one is made again
study 2> "$T/err2" >/dev/null; rc=$?
check "a second run measures nothing" "[ $rc -eq 0 ] && ! grep -q '\.txt: \|\.log: \|train standard' $T/err2"
rm "$T/s/eval/cla_2.txt"
study plans report 2> "$T/err3" >/dev/null
check "a deleted measurement is made again, alone" "[ \$(grep -c '\.txt: .* eval ' $T/err3) -eq 1 ] && grep -q 'cla_2.txt' $T/err3"

# bad arguments
bash bench/sharing-study.sh sideways > /dev/null 2> "$T/e1"; rc=$?
check "unknown stage" "[ $rc -ne 0 ] && grep -q \"unknown argument 'sideways'\" $T/e1"
bash bench/sharing-study.sh --kvs "$BIN" --model "$T/none.gguf" --out "$T/x" > /dev/null 2> "$T/e2"; rc=$?
check "missing model" "[ $rc -ne 0 ] && grep -q 'make smollm2' $T/e2"

echo "sharing study checks: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
