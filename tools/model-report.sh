#!/usr/bin/env bash
# Measures the bundled model with our own engine, as its model card reports:
#   in-window exact match (500 tokens, plain generation), chunk signal (needle chunk kept with
#   topK 1 among 32 chunks at 16K tokens), and plain full attention at 4x the window.
# Usage: tools/model-report.sh [model.gguf] [samples]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/parallelcomp-retrieval.gguf}
N=${2:-50}
row() { node bin/parallelcomp.js eval -m "$MODEL" "$@" --json | python3 -c '
import json, sys
j = json.load(sys.stdin)
r = "" if j["chunkRecall"] is None else " | chunk recall %.0f%%" % (100 * j["chunkRecall"])
print("| %s | %d | %s | %d | %.0f%%%s |" % (j["task"], j["length"], j["method"], j["samples"], 100 * j["accuracy"], r))'; }
echo "| task | tokens | method | samples | accuracy |"
echo "| --- | --- | --- | --- | --- |"
for t in passkey number_string kv_retrieval; do row --task "$t" --length 500 --samples "$N" --method full; done
for t in passkey number_string kv_retrieval; do row --task "$t" --length 16384 --samples "$N" --preset retrieval; done
for t in passkey number_string kv_retrieval; do row --task "$t" --length 2048 --samples "$((N / 5 > 0 ? N / 5 : 1))" --method full; done
