// The baselines share the engine and the request; each is checked against what it must equal.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { writeRandomModel } from "../src/model/random-model.js";
import { loadModel } from "../src/model/model.js";
import { generate } from "../src/generate/generate.js";
import { applyRope, ropeTables, shiftKeys } from "../src/model/forward.js";
import { runMethod } from "../src/method/baselines.js";
import { parallelComp, type TokenRequest } from "../src/method/parallelcomp.js";
import { resolveOptions } from "../src/method/options.js";
import { randomTokens, tempDir } from "./support/tmp.js";

const dir = tempDir();
const file = path.join(dir, "small.gguf");
writeRandomModel(file, "smollm2-135m", { seed: 9, shape: { nLayers: 2, nVocab: 300, nCtxTrain: 400, dim: 128, nHeads: 4, nKvHeads: 2, nFf: 256 } });
const model = loadModel(file, { kernels: "typescript" });
const BOS = 298;
const req = (n: number, seed = 1): TokenRequest => ({ bos: BOS, header: randomTokens(5, 290, seed + 1), context: randomTokens(n, 290, seed), query: randomTokens(6, 290, seed + 2) });
const o = resolveOptions("default", { maxTokens: 6 });
const plain = (r: TokenRequest, context = r.context) => generate(model, [BOS, ...r.header, ...context, ...r.query], { maxTokens: 6 }).tokens;

test("full is plain generation over the whole input", () => {
  const r = req(700);
  assert.deepEqual(runMethod("full", model, r, o).tokens, plain(r));
});

test("full reports the KV it held: every prompt and answer row, K and V, in F16 (counted by hand)", () => {
  const r = req(300, 5);
  const res = runMethod("full", model, r, o);
  const c = model.config;
  const rows = 1 + r.header.length + r.context.length + r.query.length + res.tokens.length - 1; // stopped at maxTokens: the last answer token is never fed back
  assert.equal(res.keptKvBytes, rows * c.nLayers * c.nKvHeads * c.headDim * 2 * 2);
  assert.ok(res.peakCacheBytes >= res.keptKvBytes);
});

test("truncate keeps the context's head and tail to fit the window, and is full when it fits", () => {
  const short = req(100, 3);
  assert.deepEqual(runMethod("truncate", model, short, o).tokens, plain(short));
  const long = req(1000, 4);
  const budget = 400 - (1 + 5 + 6 + 6);
  const head = Math.floor(budget / 2);
  assert.deepEqual(runMethod("truncate", model, long, o).tokens, plain(long, [...long.context.slice(0, head), ...long.context.slice(1000 - (budget - head))]));
});

test("pcw keeps every chunk: parallelcomp with keepChunks = number of chunks", () => {
  const r = req(900, 5);
  const p = runMethod("pcw", model, r, { ...o, chunkTokens: 200 });
  assert.equal(p.kept.length, 5);
  assert.deepEqual(p.tokens, parallelComp(model, r, { ...o, chunkTokens: 200, keepChunks: 5, keepWithin: null }).tokens);
});

test("streaming equals full while the input fits its window", () => {
  const r = req(250, 6);
  assert.deepEqual(runMethod("streaming", model, r, o).tokens, plain(r));
});

test("streaming runs past its window with a bounded cache", () => {
  const r = runMethod("streaming", model, req(2000, 7), o);
  assert.equal(r.tokens.length, 6);
  assert.ok(r.peakCacheBytes <= 2 * 2 * 2 * 400 * 64 * 4 * 1.5);
});

test("shifting a rotated key by -d equals rotating it at the shifted position", () => {
  const c = model.config;
  const key = Float32Array.from({ length: c.headDim }, (_, i) => Math.sin(i + 1));
  const at = (p: number) => {
    const cos = new Float32Array(c.ropeDim / 2);
    const sin = new Float32Array(c.ropeDim / 2);
    ropeTables(c, c.layers[0].rope!, null, Int32Array.from([p]), 1, cos, sin);
    const k = key.slice();
    applyRope(c, k, 1, 1, cos, sin);
    return k;
  };
  const moved = at(300);
  shiftKeys(c, c.layers[0].rope!, null, moved, 1, -123);
  const direct = at(177);
  for (let i = 0; i < c.headDim; i++) assert.ok(Math.abs(moved[i] - direct[i]) < 1e-4, `dim ${i}: ${moved[i]} vs ${direct[i]}`);
});

test("ntk equals full inside the window and rescales RoPE beyond it", () => {
  const r = req(200, 8);
  assert.deepEqual(runMethod("ntk", model, r, o).tokens, plain(r));
  const long = req(1200, 9);
  const c = model.config;
  const L = 1 + 5 + 1200 + 6 + 6;
  const base = c.ropeBase * Math.pow(L / c.nCtxTrain, c.ropeDim / (c.ropeDim - 2));
  const expected = generate(model, [BOS, ...long.header, ...long.context, ...long.query], { maxTokens: 6, forward: { ropeBase: base } }).tokens;
  assert.deepEqual(runMethod("ntk", model, long, o).tokens, expected);
  // The scaled base changes the logits (the comparison above is not vacuous).
  const cache1 = model.newCache(), cache2 = model.newCache();
  const prompt = [BOS, ...long.context.slice(0, 50)];
  const l1 = model.forward(cache1, { tokens: Int32Array.from(prompt), pos: Int32Array.from(prompt.keys()), seqId: new Int32Array(prompt.length), wantLogits: Uint8Array.from(prompt, (_, i) => (i === prompt.length - 1 ? 1 : 0)), n: prompt.length }, { ropeBase: base });
  const l2 = model.forward(cache2, { tokens: Int32Array.from(prompt), pos: Int32Array.from(prompt.keys()), seqId: new Int32Array(prompt.length), wantLogits: Uint8Array.from(prompt, (_, i) => (i === prompt.length - 1 ? 1 : 0)), n: prompt.length });
  assert.ok(l1.some((v, i) => Math.abs(v - l2[i]) > 1e-3));
});
