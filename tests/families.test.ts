// Each model family our engine runs, against llama.cpp on a random-weight model of a published
// shape (real widths, head sizes and vocabulary), F32 weights and KV cache: next-token
// log-probabilities after 512 tokens within 1e-3 and the same 32-token greedy continuation (up to
// a near-tie at that tolerance). Depth is cut to keep the files and CI small, but always holds
// every kind of layer the family has: a global layer among Gemma's sliding ones (with the window
// shrunk to 128 so that 512 tokens slide past it), a no-RoPE layer of SmolLM3. Phi-3 runs twice:
// with its short RoPE factors (a context within the original 4096) and its long ones.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { GgmlType, typeName } from "../src/gguf/types.js";
import { writeRandomModel } from "../src/model/random-model.js";
import { loadModel } from "../src/model/model.js";
import { generate } from "../src/generate/generate.js";
import { parallelComp } from "../src/method/parallelcomp.js";
import { resolveOptions } from "../src/method/options.js";
import { assertSameGreedy, compareWithLlamaCpp, type CompareOptions } from "./support/compare.js";
import { randomTokens, tempDir } from "./support/tmp.js";

const dir = tempDir();

interface Case { shape: string; what: string; o: Omit<CompareOptions, "promptLength" | "nGen"> }

const CASES: Case[] = [
  { shape: "qwen3-0.6b", what: "per-head Q/K norms", o: { nLayers: 4 } },
  { shape: "gemma2-2b", what: "soft caps, post-norms, GELU, a sliding and a global layer", o: { nLayers: 2, shape: { slidingWindow: 128 } } },
  { shape: "gemma3-1b", what: "Q/K norms, five sliding layers with their own RoPE base, one global", o: { nLayers: 6, shape: { slidingWindow: 128 } } },
  { shape: "phi3.5-mini", what: "fused QKV and gate+up, short RoPE factors", o: { nLayers: 2 } },
  { shape: "phi3.5-mini", what: "long RoPE factors and attention factor (context 8192)", o: { nLayers: 1, contextSize: 8192 } },
  { shape: "granite3-2b", what: "embedding, residual, attention and logit scales", o: { nLayers: 2 } },
  { shape: "smollm3-3b", what: "a layer without RoPE", o: { nLayers: 4 } },
];

for (const c of CASES) {
  test(`${c.shape} (${c.what}), ${c.o.nLayers} layers F32: log-probs within 1e-3 of llama.cpp after 512 tokens, the same 32 greedy tokens`, async () => {
    const r = await compareWithLlamaCpp(c.shape, { ...c.o, promptLength: 512, nGen: 32 });
    const distinct = new Set(r.theirs).size;
    console.log(`# ${c.shape} ${c.what}: max |dlogp| ${r.maxDiff.toExponential(2)}; greedy ${r.ours.join(",") === r.theirs.join(",") ? "identical" : "differs"}; ${distinct} distinct tokens in llama.cpp's continuation`);
    assert.ok(r.maxDiff < 1e-3, `max |log-prob difference| ${r.maxDiff}`);
    assertSameGreedy(r, 1e-3);
    // A random model whose continuation is one repeated token would hide a wrong block.
    assert.ok(distinct >= 4, `llama.cpp's continuation has only ${distinct} distinct tokens: ${r.theirs.join(",")}`);
  });
}

// Rounded weights: one family with each new kernel path, at the tolerances of the parity test.
const ROUNDED: Array<[string, GgmlType, number, Partial<CompareOptions>]> = [
  ["gemma2-2b", GgmlType.Q8_0, 0.3, { nLayers: 2, shape: { slidingWindow: 128 } }],
  ["phi3.5-mini", GgmlType.Q4_K, 0.3, { nLayers: 2 }],
];
for (const [shape, type, tol, o] of ROUNDED) {
  test(`${shape} ${typeName(type)}: log-probs within ${tol} of llama.cpp, the same greedy tokens up to a near-tie`, async () => {
    const r = await compareWithLlamaCpp(shape, { ...o, type, promptLength: 256, nGen: 16 });
    console.log(`# ${shape} ${typeName(type)}: max |dlogp| ${r.maxDiff.toExponential(2)}`);
    assert.ok(r.maxDiff < tol, `max |log-prob difference| ${r.maxDiff}`);
    assertSameGreedy(r, tol);
  });
}

// ParallelComp on every family (narrow widths, small vocabulary: the method, not the numerics).
const NARROW = { nVocab: 4096, dim: 256, nHeads: 4, nKvHeads: 2, headDim: 64, nFf: 512, slidingWindow: 64 };
const METHOD_CASES: Array<[string, number]> = [["qwen3-0.6b", 2], ["gemma2-2b", 2], ["gemma3-1b", 6], ["phi3.5-mini", 2], ["granite3-2b", 2], ["smollm3-3b", 4]];
for (const [shape, nLayers] of METHOD_CASES) {
  test(`ParallelComp on ${shape}: a one-chunk document gives plain generation's tokens; several chunks run stage 0 and 1`, () => {
    const file = path.join(dir, `${shape}-method.gguf`);
    writeRandomModel(file, shape, { seed: 5, shape: { ...NARROW, nLayers } });
    const model = loadModel(file, { threads: 2 });
    try {
      const doc = randomTokens(90, 4000, 3);
      const query = randomTokens(10, 4000, 4);
      // 90 tokens: longer than the 64-position window of Gemma's sliding layers
      const one = parallelComp(model, { bos: null, header: [], context: doc, query }, resolveOptions("default", { maxTokens: 12 }));
      assert.equal(one.nChunks, 1);
      assert.deepEqual(one.tokens, generate(model, [...doc, ...query], { maxTokens: 12 }).tokens);
      const many = parallelComp(model, { bos: null, header: [], context: randomTokens(600, 4000, 6), query }, resolveOptions("default", { maxTokens: 4, chunkTokens: 100, keepWithin: null }));
      assert.ok(many.nChunks >= 6, `${many.nChunks} chunks`);
      assert.equal(many.kept.length, 3);
      assert.equal(many.tokens.length, 4);
      assert.ok(many.scores.every(Number.isFinite));
    } finally {
      model.close();
      fs.rmSync(file, { force: true });
    }
  });
}
