// The engine's batch and cache mechanics, on a small random llama model with the TypeScript
// kernels: independent sequences in one batch, cross-sequence visibility, cache verbs.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { writeRandomModel } from "../src/model/random-model.js";
import { loadModel, type Model } from "../src/model/model.js";
import { batchAdd, emptyBatch, sequenceBatch } from "../src/engine/batch.js";
import { layerAttentionProbs } from "../src/engine/attention-probs.js";
import { KvCache } from "../src/engine/kv-cache.js";
import { f32ToF16Bits } from "../src/tensor/f16.js";
import { randomTokens, tempDir } from "./support/tmp.js";

const dir = tempDir();
const file = path.join(dir, "small.gguf");
writeRandomModel(file, "smollm2-135m", { seed: 3, shape: { nLayers: 3, nVocab: 512 } });

function open(stepTokens = 512): Model {
  return loadModel(file, { kernels: "typescript", stepTokens });
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const chunks = [randomTokens(40, 510, 1), randomTokens(33, 510, 2), randomTokens(47, 510, 3)];

test("three sequences with local positions in one batch give the logits of three separate runs", () => {
  const m = open();
  const separate = chunks.map((c) => m.forward(m.newCache(), sequenceBatch(c, { logits: "all" })));
  const b = emptyBatch(120);
  // Interleave the sequences' tokens so a wrong mask could not hide behind contiguity.
  for (let i = 0; i < 47; i++) chunks.forEach((c, s) => { if (i < c.length) batchAdd(b, c[i], i, s, true); });
  const joint = m.forward(m.newCache(), b);
  const perSeq = chunks.map((c) => new Float32Array(c.length * m.config.nVocab));
  let row = 0;
  for (let i = 0; i < 47; i++) chunks.forEach((c, s) => {
    if (i < c.length) perSeq[s].set(joint.subarray(row++ * m.config.nVocab, row * m.config.nVocab), i * m.config.nVocab);
  });
  for (let s = 0; s < 3; s++) assert.ok(maxAbsDiff(perSeq[s], separate[s]) < 1e-5, `sequence ${s} differs by ${maxAbsDiff(perSeq[s], separate[s])}`);
});

test("a batch split into several forward steps equals one step", () => {
  const whole = open();
  const one = whole.forward(whole.newCache(), sequenceBatch(chunks[2], { logits: "all" }));
  const m = open(7);
  const split = m.forward(m.newCache(), sequenceBatch(chunks[2], { logits: "all" }));
  assert.ok(maxAbsDiff(one, split) < 1e-5);
});

test("a question that sees one other sequence equals the plain continuation of that sequence", () => {
  const m = open();
  const question = randomTokens(9, 510, 9);
  const plain = m.forward(m.newCache(), sequenceBatch([...chunks[0], ...question], { logits: "all" }));
  const cache = m.newCache();
  m.forward(cache, sequenceBatch(chunks[0], { seq: 0, logits: "none" }));
  cache.setVisible(5, 0);
  const q = m.forward(cache, sequenceBatch(question, { seq: 5, pos0: chunks[0].length, logits: "all" }));
  assert.ok(maxAbsDiff(plain.subarray(chunks[0].length * m.config.nVocab), q) < 1e-5);
});

test("a sequence that sees two others attends exactly to their rows (and its own), never to a third", () => {
  const m = open();
  const cache = m.newCache();
  chunks.forEach((c, s) => m.forward(cache, sequenceBatch(c, { seq: s, logits: "none" })));
  cache.setVisible(3, 0);
  cache.setVisible(3, 1);
  const question = randomTokens(5, 510, 4);
  const qPos0 = 50;
  const seen: number[] = [];
  m.forward(cache, sequenceBatch(question, { seq: 3, pos0: qPos0 }), {
    observer: (l, q, b) => {
      const p = layerAttentionProbs(m.config, l, q, b, cache, [b.n - 1]);
      const L = cache.layers[l];
      for (let hq = 0; hq < m.config.nHeads; hq++) {
        const h = Math.floor(hq / (m.config.nHeads / m.config.nKvHeads));
        let total = 0;
        for (let r = 0; r < L.nRows[h]; r++) {
          const pr = p.probs[hq * p.maxRows + r];
          const seq = L.rowSeq[h * cache.cap + r];
          total += pr;
          if (seq === 2) assert.equal(pr, 0, `layer ${l} head ${hq} attends to sequence 2`);
          else assert.ok(pr > 0, `layer ${l} head ${hq} ignores row ${r} of sequence ${seq}`);
        }
        assert.ok(Math.abs(total - 1) < 1e-6);
      }
      seen.push(l);
    },
  });
  assert.deepEqual(seen, [0, 1, 2]);
});

test("cache verbs: remove a position range, keep one head's rows by (seq, pos), share a sequence, free", () => {
  const c = new KvCache(2, 2, 4, 8, 4);
  const T = 6;
  const k = Float32Array.from({ length: T * 2 * 4 }, (_, i) => i); // token t, head h, dim d holds t*8 + h*4 + d
  const seq = Int32Array.from([0, 0, 0, 1, 1, 1]);
  const pos = Int32Array.from([0, 1, 2, 0, 1, 2]);
  c.reserve(T);
  for (let l = 0; l < 2; l++) c.append(l, k, k, seq, pos, T);
  assert.equal(c.maxRows(), 6);
  assert.equal(c.seqRemove(0, 1, 2), 2 * 2); // one row per (layer, head)
  const L = c.layers[0];
  assert.deepEqual([...L.rowPos.subarray(0, 5)], [0, 2, 0, 1, 2]);
  // Key of (seq 0, pos 2), head 1, is token 2's head-1 slice: values 2*8+4 .. 2*8+7.
  assert.deepEqual([...L.k.subarray((1 * c.cap + 1) * 4, (1 * c.cap + 2) * 4)], [20, 21, 22, 23]);
  // Eviction in layer 1, head 0 only: sequence 0's rows and (seq 1, pos 1) stay, in order, with their keys.
  assert.equal(c.keepWhere(1, 0, (s, p) => s === 0 || p === 1), 2);
  assert.equal(c.rows(1, 0), 3);
  assert.equal(c.rows(1, 1), 5);
  assert.equal(c.rows(0, 0), 5);
  assert.deepEqual([...c.layers[1].rowSeq.subarray(0, 3)], [0, 0, 1]);
  assert.deepEqual([...c.layers[1].rowPos.subarray(0, 3)], [0, 2, 1]);
  assert.deepEqual([...c.layers[1].k.subarray(2 * 4, 3 * 4)], [32, 33, 34, 35]); // token 4, head 0
  c.seqShare(1, 5); // sequence 5 sees 1's rows; 1 does not see 5's
  assert.equal(c.visible[5 * 8 + 1], 1);
  assert.equal(c.visible[1 * 8 + 5], 0);
  assert.equal(c.seqPosMax(1), 2);
  assert.equal(c.seqPosMax(5), -1);
  assert.throws(() => c.seqRemove(9), /outside/);
  c.free();
  assert.equal(c.usedBytes(), 0);
  assert.equal(c.seqPosMax(0), -1);
});

test("the KV cache stores F16 by default (half the bytes of F32) and holds what an F32 cache holds, rounded to F16", () => {
  const f16 = loadModel(file, { kernels: "typescript" });
  const f32 = loadModel(file, { kernels: "typescript", kvType: "f32" });
  const [a, b] = [f16.newCache(), f32.newCache()];
  assert.equal(a.kvType, "f16");
  assert.equal(a.bytes() * 2, b.bytes());
  assert.equal(f16.config.kvBytesPerToken * 2, f32.config.kvBytesPerToken);
  const la = f16.forward(a, sequenceBatch(chunks[0]));
  const lb = f32.forward(b, sequenceBatch(chunks[0]));
  assert.equal(a.usedBytes() * 2, b.usedBytes());
  const k16 = a.layers[0].k as Uint16Array, k32 = b.layers[0].k as Float32Array; // layer 0: the same inputs
  assert.ok(k16 instanceof Uint16Array && k32 instanceof Float32Array);
  for (let i = 0; i < 40 * a.headDim; i++) assert.equal(k16[i], f32ToF16Bits(k32[i]), `key value ${i}`);
  // the logits move by the rounding of K and V only
  const d = maxAbsDiff(la, lb);
  assert.ok(d > 0 && d < 0.05, `logits differ by ${d}`);
  assert.throws(() => loadModel(file, { kvType: "f8" as never }), /kvType must be "f16" or "f32"/);
});
