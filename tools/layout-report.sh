#!/usr/bin/env bash
# The bundled model on the prompt layouts people paste (issue 18; `eval --layout`, src/eval/tasks.ts
# LAYOUTS): per layout and task, in-window greedy exact match (500 tokens, plain generation,
# N_IN samples) and ParallelComp with the default preset at LONG tokens (N_LONG samples).
# Rows run two at a time, one kernel thread each; SERIAL=1 runs one at a time.
# Usage: [SERIAL=1] tools/layout-report.sh [model.gguf] [N_IN (200)] [N_LONG (20)] [LONG (16384)]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/parallelcomp-retrieval.gguf}
N_IN=${2:-200}
N_LONG=${3:-20}
LONG=${4:-16384}
OUT=$(mktemp -d)
row() { local layout=$1; shift; node bin/parallelcomp.js eval -m "$MODEL" -t 1 --layout "$layout" "$@" --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
r = "" if j["chunkRecall"] is None else "%.0f%%" % (100 * j["chunkRecall"])
print("| %s | %s | %d | %s | %d | %.1f%% | %s |" % (sys.argv[1], j["task"], j["length"], j["method"], j["samples"], 100 * j["accuracy"], r))' "$layout"; }
n=0
for layout in split published chat no_lead ruler; do
  for t in passkey number_string kv_retrieval; do
    [ "$layout" = ruler ] && [ "$t" = kv_retrieval ] && continue
    n=$((n + 1))
    if [ "${SERIAL:-0}" = 1 ]; then
      row "$layout" --task "$t" --length 500 --samples "$N_IN" --method full > "$OUT/$(printf %02d $n)a"
      row "$layout" --task "$t" --length "$LONG" --samples "$N_LONG" > "$OUT/$(printf %02d $n)b"
    else
      row "$layout" --task "$t" --length 500 --samples "$N_IN" --method full > "$OUT/$(printf %02d $n)a" &
      row "$layout" --task "$t" --length "$LONG" --samples "$N_LONG" > "$OUT/$(printf %02d $n)b" &
      wait
    fi
  done
done
echo "| layout | task | tokens | method | samples | accuracy | chunk recall |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
cat "$OUT"/*
rm -rf "$OUT"
