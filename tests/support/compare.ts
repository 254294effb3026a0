// Our engine against llama.cpp (node-llama-cpp 3.21.1, its CPU backend, F32 KV cache) on a
// random-weight model of a real shape: next-token log-probabilities after a prompt, and a greedy
// continuation. Shared by the parity and the family tests.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { GgmlType, typeName } from "../../src/gguf/types.js";
import type { GgufKv } from "../../src/gguf/format.js";
import { writeRandomModel, type ModelShape } from "../../src/model/random-model.js";
import { loadModel } from "../../src/model/model.js";
import { generate } from "../../src/generate/generate.js";
import { sequenceBatch } from "../../src/engine/batch.js";
import { llamaCppRun } from "../../src/bench/llama-cpp.js";
import { randomTokens, tempDir } from "./tmp.js";

const dir = tempDir();

/** log-softmax of one row of logits, in double. */
export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - lse);
}

export interface Compared { maxDiff: number; ours: number[]; theirs: number[]; margins: number[] }

export interface CompareOptions {
  type?: GgmlType;
  nLayers?: number;
  promptLength: number;
  nGen: number;
  shape?: Partial<ModelShape>;
  metadata?: Array<[string, GgufKv]>;
  /** The context both engines run in (default: llama.cpp's, just above prompt + continuation). */
  contextSize?: number;
  /** The KV cache type of both engines (default f32: exact). */
  kv?: "f16" | "f32";
}

export async function compareWithLlamaCpp(shape: string, o: CompareOptions): Promise<Compared> {
  const type = o.type ?? GgmlType.F32;
  const file = path.join(dir, `${shape}-${typeName(type)}-${o.nLayers ?? "full"}.gguf`);
  const s = writeRandomModel(file, shape, { type, seed: 7, shape: { ...o.shape, ...(o.nLayers ? { nLayers: o.nLayers } : {}) }, metadata: o.metadata });
  try {
    const prompt = randomTokens(o.promptLength, s.nVocab - 2, 11);
    const ref = await llamaCppRun(file, prompt, o.nGen, { nVocab: s.nVocab, contextSize: o.contextSize, kvF32: o.kv !== "f16" });
    const model = loadModel(file, { threads: 2, kvType: o.kv ?? "f32", ctxSize: o.contextSize ?? o.promptLength + o.nGen + 16 });
    try {
      const ours = logSoftmax(model.forward(model.newCache({ capacity: o.promptLength }), sequenceBatch(prompt)));
      let top = 0;
      for (let i = 1; i < ref.logProbs.length; i++) if (ref.logProbs[i] > ref.logProbs[top]) top = i;
      let maxDiff = 0;
      for (let i = 0; i < ours.length; i++) {
        if (ref.logProbs[i] < -30) continue; // below llama.cpp's f32 softmax resolution
        maxDiff = Math.max(maxDiff, Math.abs(ours[i] - ours[top] - (ref.logProbs[i] - ref.logProbs[top])));
      }
      const g = generate(model, prompt, { maxTokens: o.nGen });
      return { maxDiff, ours: g.tokens, theirs: ref.greedy, margins: ref.margins };
    } finally {
      model.close();
    }
  } finally {
    fs.rmSync(file, { force: true });
  }
}

/** Identical greedy tokens, or a parting at a step whose llama.cpp top-2 margin is below tol. */
export function assertSameGreedy(r: Compared, tol: number) {
  const at = r.ours.findIndex((t, i) => t !== r.theirs[i]);
  if (at < 0) return;
  assert.ok(r.margins[at] < tol, `greedy continuations part at step ${at} (${r.ours[at]} vs ${r.theirs[at]}) where llama.cpp's top-2 margin is ${r.margins[at]}, above ${tol}`);
}
