// The attention-bias analysis against outside references: attention recomputed by hand (float64
// softmax of q.k over keys captured from plain forward passes, regions from token indices), a
// hand-built cache whose shares are known in closed form, and calibration's effect on its region.

import { f16BitsToF32 } from "../src/tensor/f16.js";
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { writeRandomModel } from "../src/model/random-model.js";
import { loadModel, type Model } from "../src/model/model.js";
import { sequenceBatch } from "../src/engine/batch.js";
import { KvCache } from "../src/engine/kv-cache.js";
import type { KvCache as Cache } from "../src/engine/kv-cache.js";
import { parallelComp, type AttentionStep, type TokenRequest } from "../src/method/parallelcomp.js";
import { resolveOptions } from "../src/method/options.js";
import { chunkContext } from "../src/method/chunking.js";
import {
  addStepShares, analyzeAttentionBias, attentionBiasMarkdown, attentionBiasPlots, requestAttentionBias, ShareSums, type LayerShares,
} from "../src/eval/attention-bias.js";
import { randomTokens, tempDir } from "./support/tmp.js";

const dir = tempDir();
const file = path.join(dir, "small.gguf");
// A 512-token window so the real passkey samples (a 150-character instruction) fit in a chunk.
writeRandomModel(file, "smollm2-135m", { seed: 11, shape: { nLayers: 2, nVocab: 300, nCtxTrain: 512, dim: 128, nHeads: 4, nKvHeads: 2, nFf: 256 } });
const model = loadModel(file, { kernels: "typescript" });
const c = model.config;
const BOS = 298;
const R = 10; // region tokens in the request-level tests: chunks of 57 rows have all three regions

function request(seed: number): TokenRequest {
  return { bos: BOS, header: randomTokens(6, 290, seed + 100), context: randomTokens(300, 290, seed), query: randomTokens(7, 290, seed + 200) };
}

/** Per layer: q [T, nHeads, headDim] and the cache's keys with their (seq, pos) as the layer saw them. */
interface Captured { q: Float32Array; T: number; k: Float32Array[]; seq: Int32Array[]; pos: Int32Array[]; qPos: Int32Array }

function capture(m: Model, cache: Cache, tokens: number[], seq: number, pos0: number): Captured[] {
  const out: Captured[] = [];
  m.forward(cache, sequenceBatch(tokens, { seq, pos0, logits: "none" }), {
    oneStep: true,
    observer: (l, q, b, kvc) => {
      const L = kvc.layers[l];
      const k: Float32Array[] = [], s: Int32Array[] = [], p: Int32Array[] = [];
      for (let h = 0; h < kvc.nKvHeads; h++) {
        const n = L.nRows[h];
        const keys = L.k.slice(h * kvc.cap * c.headDim, (h * kvc.cap + n) * c.headDim);
        k.push(keys instanceof Uint16Array ? Float32Array.from(keys, f16BitsToF32) : keys); // an F16 cache: the values it holds
        s.push(L.rowSeq.slice(h * kvc.cap, h * kvc.cap + n));
        p.push(L.rowPos.slice(h * kvc.cap, h * kvc.cap + n));
      }
      out[l] = { q: q.slice(0, b.n * c.nHeads * c.headDim), T: b.n, k, seq: s, pos: p, qPos: b.pos.slice() };
    },
  });
  return out;
}

/**
 * Shares of query rows `rows` by a float64 softmax over every key the row may see;
 * region(seq, pos) names each key's region (or null: not visible).
 */
function naiveShares(x: Captured, rows: number[], visible: (seq: number, pos: number, qPos: number) => boolean, region: (seq: number, pos: number) => keyof LayerShares): Record<string, number> {
  const sums: Record<string, number> = { sink: 0, middle: 0, recent: 0, question: 0, first: 0 };
  const group = c.nHeads / c.nKvHeads;
  let n = 0;
  for (const t of rows) {
    for (let hq = 0; hq < c.nHeads; hq++) {
      const h = Math.floor(hq / group);
      const scores: number[] = [];
      const keys: number[] = [];
      for (let r = 0; r < x.seq[h].length; r++) {
        if (!visible(x.seq[h][r], x.pos[h][r], x.qPos[t])) continue;
        let dot = 0;
        for (let d = 0; d < c.headDim; d++) dot += x.q[(t * c.nHeads + hq) * c.headDim + d] * x.k[h][r * c.headDim + d];
        scores.push(dot / Math.sqrt(c.headDim));
        keys.push(r);
      }
      const max = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - max));
      const z = e.reduce((a, b) => a + b, 0);
      keys.forEach((r, j) => {
        const g = region(x.seq[h][r], x.pos[h][r]);
        sums[g] += e[j] / z;
        if (g !== "question" && x.pos[h][r] === 0) sums.first += e[j] / z;
      });
      n++;
    }
  }
  for (const key of Object.keys(sums)) sums[key] /= n;
  return sums;
}

const byPos = (pos: number, len: number): keyof LayerShares => (pos < R ? "sink" : pos >= len - R ? "recent" : "middle");

function assertShares(got: LayerShares, want: Record<string, number>, what: string) {
  for (const k of ["sink", "middle", "recent", "question", "first"] as const) {
    assert.ok(Math.abs(got[k] - want[k]) < 1e-5, `${what} layer ${got.layer} ${k}: ${got[k]} vs hand-computed ${want[k]}`);
  }
}

test("local and parallel shares equal attention recomputed by hand from q and k of plain forward passes", () => {
  const req = request(3);
  const chunkTokens = 50;
  const r = requestAttentionBias(model, req, { chunkTokens, regionTokens: R, lastRows: 0, calibration: null });
  const spans = chunkContext(req.context, chunkTokens);
  assert.equal(r.nChunks, 6);
  const m = req.query.length;

  // Local: each chunk alone, the question after it; its rows see the chunk and earlier question rows.
  const local = Array.from({ length: c.nLayers }, () => ({ sink: 0, middle: 0, recent: 0, question: 0, first: 0 } as Record<string, number>));
  for (const s of spans) {
    const chunk = [BOS, ...req.header, ...req.context.slice(s.start, s.end)];
    const len = chunk.length;
    const cap = capture(model, model.newCache({ nSeqMax: 1 }), [...chunk, ...req.query], 0, 0);
    cap.forEach((x, l) => {
      const sh = naiveShares(x, Array.from({ length: m }, (_, i) => len + i), (_s, pos, qPos) => pos <= qPos, (_s, pos) => (pos >= len ? "question" : byPos(pos, len)));
      for (const k of Object.keys(sh)) local[l][k] += sh[k] / spans.length;
    });
  }
  r.local.layers().forEach((got, l) => assertShares(got, local[l], "local"));

  // Parallel: every chunk's rows (all but the first without BOS), the question at positions from
  // the longest chunk, seeing every chunk and its own earlier rows.
  const cache = model.newCache({ nSeqMax: 8 });
  const lens = spans.map((s) => 1 + req.header.length + s.end - s.start);
  spans.forEach((s, i) => {
    model.forward(cache, sequenceBatch([BOS, ...req.header, ...req.context.slice(s.start, s.end)], { seq: i, logits: "none" }));
    if (i > 0) cache.seqRemove(i, 0, 1);
    cache.setVisible(7, i);
  });
  const pos0 = Math.max(...lens);
  const cap = capture(model, cache, req.query, 7, pos0);
  cap.forEach((x, l) => {
    const want = naiveShares(x, Array.from({ length: m }, (_, i) => i), (seq, pos, qPos) => seq !== 7 || pos <= qPos, (seq, pos) => (seq === 7 ? "question" : byPos(pos, lens[seq])));
    assertShares(r.parallel.layers()[l], want, "parallel");
  });
  // The two settings differ: the comparison can tell local from parallel attention.
  assert.ok(Math.abs(r.local.layers()[0].question - r.parallel.layers()[0].question) > 0.01);
});

test("shares on a hand-built cache match closed-form counts: uniform attention and a BOS sink", () => {
  // Chunk A: seq 0, positions 0..249; chunk B: seq 1, positions 1..249 (BOS dropped); the
  // question: seq 2, 10 rows at positions 250..259. One KV head shared by two query heads.
  const hd = 2;
  const cache = new KvCache(1, 1, hd, 3, 600);
  const rows: Array<[number, number]> = [];
  for (let p = 0; p < 250; p++) rows.push([0, p]);
  for (let p = 1; p < 250; p++) rows.push([1, p]);
  for (let p = 250; p < 260; p++) rows.push([2, p]);
  const k = new Float32Array(rows.length * hd);
  k[0] = 100; // the BOS key (seq 0, pos 0)
  cache.reserve(rows.length);
  cache.append(0, k, new Float32Array(rows.length * hd), Int32Array.from(rows.map((r) => r[0])), Int32Array.from(rows.map((r) => r[1])), rows.length);
  cache.setVisible(2, 0);
  cache.setVisible(2, 1);
  const batch = sequenceBatch(Array.from({ length: 10 }, () => 0), { seq: 2, pos0: 250, logits: "none" });
  const shape = { nHeads: 2, nKvHeads: 1, headDim: hd };
  const step = (q: Float32Array, lastRows: number) => {
    const s: AttentionStep = { stage: 1, calibration: "off", layer: 0, q, batch, cache, questions: [{ seq: 2, rows: Array.from({ length: 10 }, (_, i) => i), chunks: new Map([[0, 250], [1, 250]]) }] };
    const sums = new ShareSums(1);
    addStepShares(sums, shape, s, 100, lastRows);
    return sums.layers()[0];
  };
  // q = 0: every visible key gets 1 / (500 + t) for question row t (250 + 249 chunk keys, t + 1 question keys).
  const mean = (f: (t: number) => number, ts: number[]) => ts.reduce((a, t) => a + f(t), 0) / ts.length;
  const all = Array.from({ length: 10 }, (_, t) => t);
  const uniform = step(new Float32Array(10 * 2 * hd), 0);
  const expect = (ts: number[]) => ({
    sink: mean((t) => 199 / (500 + t), ts), middle: mean((t) => 100 / (500 + t), ts), recent: mean((t) => 200 / (500 + t), ts),
    question: mean((t) => (t + 1) / (500 + t), ts), first: mean((t) => 1 / (500 + t), ts),
  });
  assertShares(uniform, expect(all), "uniform");
  assertShares(step(new Float32Array(10 * 2 * hd), 1), expect([9]), "uniform, last row");
  // Head 0 looks at the BOS (score 100 / sqrt 2 against 0): all its mass is on it; head 1 stays uniform.
  const q = new Float32Array(10 * 2 * hd);
  for (let t = 0; t < 10; t++) q[t * 2 * hd] = 1;
  const sunk = step(q, 0);
  const u = expect(all);
  assertShares(sunk, { sink: (1 + u.sink) / 2, middle: u.middle / 2, recent: u.recent / 2, question: u.question / 2, first: (1 + u.first) / 2 }, "BOS sink");
});

test("calibration removes attention mass from its region in every layer where it evicts keys", () => {
  const calibration = { recipe: [{ layers: [1, 2] as [number, number], bias: "sink" as const }], recipeDepth: 2, threshold: 0.005, regionTokens: R, calibrationQueries: 1 };
  const r = requestAttentionBias(model, request(17), { chunkTokens: 50, regionTokens: R, lastRows: 0, calibration });
  const cal = r.calibrated!;
  assert.ok(cal.evicted > 0, "the case must have sink keys above the threshold");
  const before = cal.before.layers();
  const after = cal.after.layers();
  // Removing keys of one region renormalises the rest: that region's share can only fall.
  let removed = 0;
  before.forEach((b, l) => {
    assert.ok(after[l].sink <= b.sink + 1e-9, `layer ${l + 1}: sink ${b.sink} -> ${after[l].sink}`);
    removed = Math.max(removed, b.sink - after[l].sink);
  });
  assert.ok(removed > 0.01, `calibration removed at most ${removed} of the sink share`);
  // Keys above the threshold were there to evict: the sink region's largest key exceeded it.
  assert.ok(Math.max(...cal.maxKey.map((m) => m.sink)) > calibration.threshold);
  // Before any eviction, the calibrated run's layer 1 is the plain run's parallel layer 1.
  assertShares(before[0], r.parallel.layers()[0] as unknown as Record<string, number>, "calibrated run before eviction, layer 1");
});

test("on real passkey samples: shares sum to 1 per layer, the chunk count is as asked, and the plots and table name every layer", async () => {
  const r = analyzeAttentionBias(model, model.tokenizer, { samples: 1, chunks: [2], seed: 3, calibration: { recipe: [{ layers: [2, 2], bias: "sink" }], recipeDepth: 2, threshold: 0.02, regionTokens: 100, calibrationQueries: 1 } });
  assert.deepEqual(r.settings.map((s) => s.setting), ["local", "parallel", "parallel+calibration"]);
  assert.equal(r.chunkTokens > 2 * r.regionTokens, true);
  for (const s of r.settings) {
    assert.equal(s.chunks, 2);
    assert.equal(s.layers.length, c.nLayers);
    for (const l of [...s.layers, ...(s.beforeCalibration ?? [])]) {
      assert.ok(Math.abs(l.sink + l.middle + l.recent + l.question - 1) < 1e-5, `${s.setting} layer ${l.layer} sums to ${l.sink + l.middle + l.recent + l.question}`);
      assert.ok(l.first <= l.sink + 1e-12);
    }
  }
  // Local averages every question row of both chunks; parallel those of one question.
  const m = r.settings[1].distributions / c.nHeads;
  assert.equal(r.settings[0].distributions, 2 * m * c.nHeads);
  const plots = await attentionBiasPlots(r);
  assert.equal(plots.length, 1);
  assert.equal(plots[0].file, "attention-bias-2-chunks.svg");
  assert.match(plots[0].svg, /^<svg/);
  for (const label of ["layer 1", "layer 2", "local", "parallel+calibration", "sink", "middle", "recent"]) assert.ok(plots[0].svg.includes(`>${label}<`), `the chart shows "${label}"`);
  const md = attentionBiasMarkdown(r);
  assert.equal(md.split("\n").filter((line) => /^\| (local|parallel|parallel\+calibration) \| 2 \| \d \|/.test(line)).length, 3 * c.nLayers);
});

test("observing attention leaves the run as it was: same scores and answer, also when the batch would be split into steps", () => {
  const small = loadModel(file, { kernels: "typescript", stepTokens: 64 });
  const req = request(5);
  const o = resolveOptions("calibrate", { keepChunks: 2, chunkTokens: 50, maxParallelChunks: 4, maxTokens: 4 });
  const plain = parallelComp(small, req, o);
  let steps = 0;
  const seen = parallelComp(small, req, o, { onAttention: () => { steps++; } });
  assert.deepEqual(seen.scores, plain.scores);
  assert.deepEqual(seen.tokens, plain.tokens);
  assert.equal(seen.evictedByCalibration, plain.evictedByCalibration);
  // Stage 0: 6 chunks in 2 batches x 2 layers; stage 1: 2 layers, before and after calibration.
  assert.equal(steps, 2 * c.nLayers + 2 * c.nLayers);
  small.close();
});

test("the attention-bias command writes the JSON, the markdown and one SVG per chunk count", () => {
  const bin = fileURLToPath(new URL("../../bin/parallelcomp.js", import.meta.url));
  const out = path.join(dir, "out");
  const r = spawnSync(process.execPath, [bin, "attention-bias", "-m", file, "--samples", "1", "--chunks", "2", "--seed", "4", "--out", out, "--json", "-t", "1"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, "attention-bias.json"), "utf8")), j);
  assert.equal(j.seed, 4);
  assert.equal(j.settings.length, 3);
  assert.match(fs.readFileSync(path.join(out, "attention-bias.md"), "utf8"), /\| setting \| chunks \| layer \|/);
  assert.match(fs.readFileSync(path.join(out, "attention-bias-2-chunks.svg"), "utf8"), /^<svg/);
  const bad = spawnSync(process.execPath, [bin, "attention-bias", "-m", file, "--chunks", "4,x"], { encoding: "utf8" });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--chunks <list>.*expected comma-separated integers >= 1, got "4,x"/);
});
