#!/usr/bin/env bash
# Measures the bundled model with our own engine, as its model card reports (issue 4's targets):
#   in-window greedy exact match (500 tokens, plain generation, N_IN samples per task), the chunk
#   signal (the needle chunk is the one kept with keepChunks 1 (--preset retrieval --keep-chunks 1) among the 53-67 chunks of 16K tokens,
#   N_LONG samples per task), and plain full attention at 4x the window (N_LONG / 5 samples).
# Rows run two at a time, one kernel thread each (the machine has two cores); SERIAL=1 runs one
# at a time (while something else holds a core).
# Usage: [SERIAL=1] tools/model-report.sh [model.gguf] [N_IN (200)] [N_LONG (50)]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/parallelcomp-retrieval.gguf}
N_IN=${2:-200}
N_LONG=${3:-50}
OUT=$(mktemp -d)
row() { node bin/parallelcomp.js eval -m "$MODEL" -t 1 "$@" --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
r = "" if j["chunkRecall"] is None else "%.0f%%" % (100 * j["chunkRecall"])
print("| %s | %d | %s | %d | %.1f%% | %s |" % (j["task"], j["length"], j["method"], j["samples"], 100 * j["accuracy"], r))'; }
i=0
for t in passkey number_string kv_retrieval; do
  if [ "${SERIAL:-0}" = 1 ]; then
    row --task "$t" --length 500 --samples "$N_IN" --method full > "$OUT/1$t"
    row --task "$t" --length 16384 --samples "$N_LONG" --preset retrieval --keep-chunks 1 > "$OUT/2$t"
  else
    row --task "$t" --length 500 --samples "$N_IN" --method full > "$OUT/1$t" &
    row --task "$t" --length 16384 --samples "$N_LONG" --preset retrieval --keep-chunks 1 > "$OUT/2$t" &
    wait
  fi
  row --task "$t" --length 2048 --samples "$((N_LONG / 5 > 0 ? N_LONG / 5 : 1))" --method full > "$OUT/3$t"
done
echo "| task | tokens | method | samples | accuracy | chunk recall |"
echo "| --- | --- | --- | --- | --- | --- |"
cat "$OUT"/1* "$OUT"/2* "$OUT"/3*
rm -rf "$OUT"
