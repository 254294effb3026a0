// Parity with llama.cpp (node-llama-cpp 3.21.1, its CPU backend) on random-weight models with the
// exact shapes of SmolLM2-135M and Qwen2.5-0.5B.
//
// Why two depths. With F16 and quantized weights, activations are rounded (to f16 or int8) before
// each matmul, exactly as llama.cpp does. Two engines that sum in different orders differ by ~1e-7,
// and now and then that moves an activation across a rounding boundary: one quantum flips, and the
// deep random network amplifies it (our own engine, perturbed by 1e-7, moves its log-probabilities
// by 0.07-0.09 in Q8_0: `node dist/tools/experiments.js perturb 8`). So:
//   - depth 1 (real widths and vocabulary, one layer): the first layer's input is bit-identical on
//     both sides and int8 flips are too rare to occur: every type within 1e-4, except F16 and
//     BF16, whose rounding steps are fine enough (2^-11, 2^-8) that a few of the last rows'
//     rounded activations flip. F16: 1e-2, twice our own engine's floor (one layer, 128 tokens,
//     four 1e-7 nudge patterns: up to 5.0e-3 on SmolLM2, 3.8e-3 on Qwen2.5; `node
//     dist/tools/experiments.js perturb 1 smollm2-135m 1 128`); against llama.cpp below 2e-3 on
//     the AVX-512 machines of earlier runs, 2.2e-3 / 2.5e-3 on an AVX2 one (sums in other orders).
//     BF16: 2e-3; it has matched llama.cpp to 4e-6 on both machines (its floor is 2.8e-2: were
//     a third CPU's sums to flip one, that is the scale to expect);
//   - full depth (the issue's check): F32 within 1e-3; rounded types within a stated tolerance.
//     The 32-token greedy continuation must be identical, except that a rounded type may part
//     ways at a step where llama.cpp's own top two tokens are closer than that tolerance (a tie
//     at the precision the type allows); the comparison ends there.
// Log-probabilities are compared relative to each side's top token: node-llama-cpp normalises
// with a float sum over the vocabulary, which shifts all its log-probabilities by up to ~4e-4.

import { test } from "node:test";
import assert from "node:assert/strict";
import { GgmlType, typeName } from "../src/gguf/types.js";
import { loadModel } from "../src/model/model.js";
import { generate } from "../src/generate/generate.js";
import { sequenceBatch } from "../src/engine/batch.js";
import { llamaCppRun } from "../src/bench/llama-cpp.js";
import { assertSameGreedy, compareWithLlamaCpp, logSoftmax } from "./support/compare.js";

const SHAPES = ["smollm2-135m", "qwen2.5-0.5b"];
const compare = (shape: string, type: GgmlType, nLayers: number | undefined, promptLength: number, nGen: number) =>
  compareWithLlamaCpp(shape, { type, nLayers, promptLength, nGen });

const ALL_TYPES = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K];

for (const shape of SHAPES) {
  for (const type of ALL_TYPES) {
    const tol = type === GgmlType.F16 ? 1e-2 : type === GgmlType.BF16 ? 2e-3 : 1e-4;
    test(`depth 1, ${shape} widths, ${typeName(type)} (K-quants with llama-quantize's fallbacks): log-probs within ${tol} of llama.cpp`, async () => {
      const r = await compare(shape, type, 1, 128, 4);
      console.log(`# depth 1 ${shape} ${typeName(type)}: max |dlogp| ${r.maxDiff.toExponential(2)}`);
      assert.ok(r.maxDiff < tol, `max |log-prob difference| ${r.maxDiff}`);
      assertSameGreedy(r, tol);
    });
  }
}

// Full depth. Tolerances for rounded types measured as stated above, with headroom.
// Our own engine, every matmul output nudged by 1e-7, moves these full-depth log-probabilities by
// 0.24 (Q8_0) and 0.27 (Q4_K) on the SmolLM2 shape (`node dist/tools/experiments.js perturb 8
// smollm2-135m 30 512`, and 12): the floor for any two engines that sum in different orders; the
// bounds sit about twice above it.
const FULL: Array<[GgmlType, number]> = [[GgmlType.F32, 1e-3], [GgmlType.F16, 0.05], [GgmlType.Q8_0, 0.5], [GgmlType.Q4_K, 0.5]];
for (const shape of SHAPES) {
  for (const [type, tol] of FULL) {
    test(`full depth ${shape} ${typeName(type)}: log-probs within ${tol} of llama.cpp after 512 tokens, the same 32-token greedy continuation up to a near-tie`, async () => {
      const r = await compare(shape, type, undefined, 512, 32);
      console.log(`# full ${shape} ${typeName(type)}: max |dlogp| ${r.maxDiff.toExponential(2)}; greedy ${r.ours.join(",") === r.theirs.join(",") ? "identical" : `parts at step ${r.ours.findIndex((t, i) => t !== r.theirs[i])}, llama.cpp margin there ${r.margins[r.ours.findIndex((t, i) => t !== r.theirs[i])]?.toExponential(2)}`}`);
      assert.ok(r.maxDiff < tol, `max |log-prob difference| ${r.maxDiff}`);
      assertSameGreedy(r, tol);
    });
  }
}

// The default F16 KV cache against llama.cpp's F16 cache (flash attention off): both store K and V
// rounded to F16; llama.cpp also rounds the query and the attention probabilities to F16 for its
// F16 matmuls, which ours keeps in F32, so the two part by more than F32's 1e-3 (measured: 3.7e-3
// on SmolLM2, 9.4e-4 on Qwen2.5).
for (const shape of SHAPES) {
  test(`full depth ${shape} F32 weights, F16 KV cache (our default): log-probs within 1e-2 of llama.cpp's F16 cache, the same greedy tokens up to a near-tie`, async () => {
    const r = await compareWithLlamaCpp(shape, { type: GgmlType.F32, promptLength: 512, nGen: 32, kv: "f16" });
    console.log(`# F16 KV ${shape}: max |dlogp| ${r.maxDiff.toExponential(2)}`);
    assert.ok(r.maxDiff < 1e-2, `max |log-prob difference| ${r.maxDiff}`);
    assertSameGreedy(r, 1e-2);
  });
}

test("the bundled model loads in llama.cpp with next-token log-probs within 1e-3 of ours", async () => {
  const { BUNDLED_MODEL } = await import("../src/model/bundled.js");
  const { loadTokenizer } = await import("../src/tokenizer/index.js");
  const model = loadModel(BUNDLED_MODEL, { kvType: "f32" });
  try {
    const tok = loadTokenizer(model.gguf);
    const prompt = tok.encode("The grass is green. The pass key is 71432. Remember it. 71432 is the pass key. The sky is blue.\n\nWhat is the pass key?\nThe pass key is");
    const ref = await llamaCppRun(BUNDLED_MODEL, prompt, 7, { nVocab: model.config.nVocab });
    const ours = logSoftmax(model.forward(model.newCache(), sequenceBatch(prompt)));
    let top = 0;
    for (let i = 1; i < ours.length; i++) if (ref.logProbs[i] > ref.logProbs[top]) top = i;
    let maxDiff = 0;
    for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i] - ours[top] - (ref.logProbs[i] - ref.logProbs[top])));
    assert.ok(maxDiff < 1e-3, `max |log-prob difference| ${maxDiff}`);
    assert.deepEqual(generate(model, prompt, { maxTokens: 7 }).tokens, ref.greedy);
  } finally {
    model.close();
  }
});
