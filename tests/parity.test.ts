// Parity with llama.cpp: random-weight models with the exact shapes of SmolLM2-135M and
// Qwen2.5-0.5B, in F32, F16, Q8_0 and Q4_K, give the same next-token log-probabilities after a
// 512-token prompt and the same 32-token greedy continuation as llama.cpp (node-llama-cpp 3.21.1).

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { GgmlType } from "../src/gguf/types.js";
import { writeRandomModel } from "../src/model/random-model.js";
import { loadModel } from "../src/model/model.js";
import { generate } from "../src/generate/generate.js";
import { sequenceBatch } from "../src/engine/batch.js";
import { llamaCppRun } from "../src/bench/llama-cpp.js";
import { randomTokens, tempDir } from "./support/tmp.js";

const dir = tempDir();
const PROMPT = 512;
const GEN = 32;

/** log-softmax of one row of logits, in double. */
function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}

// Tolerances on log-probabilities. F32 is the 1e-3. The other types quantize the same
// activations the same way as llama.cpp, so only summation order differs; F16 and the quantized
// types get 1e-2 because a rounding flip of one activation quantum (f16 or int8) can move a
// log-probability by ~1e-3.
const TOLERANCE: Record<string, number> = { F32: 1e-3, F16: 1e-2, Q8_0: 1e-2, Q4_K: 1e-2 };

const cases: Array<[string, keyof typeof TOLERANCE, GgmlType]> = [];
for (const shape of ["smollm2-135m", "qwen2.5-0.5b"]) {
  for (const [name, type] of [["F32", GgmlType.F32], ["F16", GgmlType.F16], ["Q8_0", GgmlType.Q8_0], ["Q4_K", GgmlType.Q4_K]] as const) {
    cases.push([shape, name, type]);
  }
}

for (const [shape, typeName, type] of cases) {
  test(`${shape} ${typeName}: log-probs within ${TOLERANCE[typeName]} of llama.cpp after ${PROMPT} tokens, same ${GEN}-token greedy continuation`, async () => {
    const file = path.join(dir, `${shape}-${typeName}.gguf`);
    const s = writeRandomModel(file, shape, { type, seed: 7 });
    try {
      const prompt = randomTokens(PROMPT, s.nVocab - 2, 11);
      const ref = await llamaCppRun(file, prompt, GEN, { nVocab: s.nVocab });
      const model = loadModel(file, { threads: 2 });
      try {
        const cache = model.newCache({ capacity: PROMPT + GEN });
        const ours = logSoftmax(model.forward(cache, sequenceBatch(prompt)));
        let maxDiff = 0;
        for (let i = 0; i < ours.length; i++) {
          if (ref.logProbs[i] < -30) continue; // below f32 softmax resolution on llama.cpp's side
          maxDiff = Math.max(maxDiff, Math.abs(ours[i] - ref.logProbs[i]));
        }
        const g = generate(model, prompt, { maxTokens: GEN });
        console.log(`${shape} ${typeName}: max |dlogp| ${maxDiff.toExponential(2)}; greedy equal: ${g.tokens.join(",") === ref.greedy.join(",")}`);
        assert.ok(maxDiff < TOLERANCE[typeName], `max |log-prob difference| ${maxDiff} exceeds ${TOLERANCE[typeName]}`);
        assert.deepEqual(g.tokens, ref.greedy);
      } finally {
        model.close();
      }
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
}
