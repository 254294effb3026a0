#!/usr/bin/env bash
# The llama.cpp backend's device check: ParallelComp over a long document on a random-weight
# model, stage 0's chunks prefilled 1, 8 and 23 at a time (the paper's 23.5x batching headline),
# with prefill tokens/s, the speedup over one at a time, and the peak GPU memory.
#   tools/device-check.sh            on a GPU: Llama-3.1-8B shape, Q4_K, 128K tokens, 8K-token chunks
#   SIZE=small tools/device-check.sh on a CPU: SmolLM2-135M shape, 2 layers, 16K tokens, 1K chunks
# Needs the project built (npm ci) and, for a GPU, node-llama-cpp's GPU package of the pinned
# version (@node-llama-cpp/linux-x64-cuda@3.21.1 or -vulkan); `parallelcomp doctor` says what loads.
# Figures go to $OUT (default /tmp/device-check): doctor.txt, bench.txt, gpu-memory.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device-check}
mkdir -p "$OUT"
[ -f dist/tools/batching-bench.js ] || npm run build >/dev/null

node bin/parallelcomp.js doctor | tee "$OUT/doctor.txt"

if [ "${SIZE:-full}" = small ]; then
  args=(--shape smollm2-135m --type q8_0 --layers 2 --length 16384 --chunk 1024 --parallel 1,8,23)
else
  args=(--shape llama3.1-8b --type q4_k --length 131072 --chunk 8192 --parallel 1,8,23)
fi

# Peak GPU memory: nvidia-smi sampled every 0.2 s while the bench runs.
sampler=
if command -v nvidia-smi >/dev/null; then
  (while :; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits; sleep 0.2; done) > "$OUT/gpu-memory.samples" 2>/dev/null &
  sampler=$!
fi
node dist/tools/batching-bench.js --backend llama.cpp "${args[@]}" | tee "$OUT/bench.txt"
if [ -n "$sampler" ]; then
  kill "$sampler"
  echo "peak GPU memory: $(sort -n "$OUT/gpu-memory.samples" | tail -n 1) MiB" | tee "$OUT/gpu-memory.txt"
fi
