// ParallelComp's mechanics, each a test that fails if the mechanism is wrong, on a small random
// llama model with the TypeScript kernels (the exact-arithmetic reference).

import { test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { writeRandomModel } from "../src/model/random-model.js";
import { loadModel } from "../src/model/model.js";
import { generate } from "../src/generate/generate.js";
import { sequenceBatch } from "../src/engine/batch.js";
import { KvCache } from "../src/engine/kv-cache.js";
import { layerAttentionProbs, type AttentionProbs } from "../src/engine/attention-probs.js";
import { parallelComp, offer, chunkBudget, type TokenRequest } from "../src/method/parallelcomp.js";
import { resolveOptions, scaleLayers, PAPER_RECIPE, type CalibrationStep } from "../src/method/options.js";
import { chunkContext } from "../src/method/chunking.js";
import { snapKvKeep, applyKeep, maxPool } from "../src/method/eviction.js";
import { calibrate } from "../src/method/calibration.js";
import { randomTokens, tempDir } from "./support/tmp.js";

const dir = tempDir();
const file = path.join(dir, "small.gguf");
writeRandomModel(file, "smollm2-135m", { seed: 5, shape: { nLayers: 2, nVocab: 300, nCtxTrain: 128, dim: 128, nHeads: 4, nKvHeads: 2, nFf: 256 } });
const model = loadModel(file, { kernels: "typescript" });
const BOS = 298;

function request(contextLength: number, seed = 1): TokenRequest {
  return { bos: BOS, header: randomTokens(6, 290, seed + 100), context: randomTokens(contextLength, 290, seed), query: randomTokens(7, 290, seed + 200) };
}

test("one chunk with no eviction or calibration gives exactly plain generation", () => {
  const req = request(40);
  const r = parallelComp(model, req, resolveOptions("default", { maxTokens: 12 }));
  assert.equal(r.nChunks, 1);
  const plain = generate(model, [BOS, ...req.header, ...req.context, ...req.query], { maxTokens: 12 });
  assert.deepEqual(r.tokens, plain.tokens);
});

test("query positions start at the longest kept chunk's length and the question sees only kept chunks", () => {
  const req = request(300);
  const o = resolveOptions("default", { keepChunks: 2, maxTokens: 1, chunkTokens: 50 });
  const r = parallelComp(model, req, o);
  assert.equal(r.nChunks, 6);
  // Rebuild stage 1 by hand: each kept chunk prefilled alone (as its own sequence), BOS dropped
  // from all but the first, the query at positions from the longest kept chunk.
  const cache = model.newCache({ nSeqMax: 8 });
  r.kept.forEach((k, i) => {
    model.forward(cache, sequenceBatch([BOS, ...req.header, ...req.context.slice(k.start, k.end)], { seq: i, logits: "none" }));
    if (i > 0) cache.seqRemove(i, 0, 1);
    cache.setVisible(7, i);
  });
  const pos0 = Math.max(...r.kept.map((k) => k.tokens));
  assert.equal(pos0, 1 + 6 + 50);
  const g = generate(model, req.query, { cache, seq: 7, pos0, maxTokens: 1 });
  assert.deepEqual(r.tokens, g.tokens);
  // A different start position would give a different answer distribution: the check has teeth.
  const cache2 = model.newCache({ nSeqMax: 8 });
  const l1 = model.forward(cache2, sequenceBatch(req.query, { pos0: pos0 + 5 }));
  const cache3 = model.newCache({ nSeqMax: 8 });
  const l2 = model.forward(cache3, sequenceBatch(req.query, { pos0 }));
  assert.notDeepEqual(Array.from(l1.slice(0, 5)), Array.from(l2.slice(0, 5)));
});

test("batch prefill of N chunks scores exactly as N separate prefills", () => {
  const req = request(400, 3);
  const together = parallelComp(model, req, resolveOptions("default", { chunkTokens: 60, maxParallelChunks: 4, maxTokens: 0 }));
  const alone = parallelComp(model, req, resolveOptions("default", { chunkTokens: 60, maxParallelChunks: 1, maxTokens: 0 }));
  assert.equal(together.scores.length, 7);
  together.scores.forEach((s, i) => assert.ok(Math.abs(s - alone.scores[i]) < 1e-5, `chunk ${i}: ${s} vs ${alone.scores[i]}`));
});

test("the separator joining question to chunk is not scored: the score is the NLL of the tokens after it", () => {
  const req = request(40, 21);
  const sep = req.query.length - 2; // leave two scored tokens
  const r = parallelComp(model, { ...req, separator: sep }, resolveOptions("default", { maxTokens: 0 }));
  const all = [BOS, ...req.header, ...req.context, ...req.query];
  const logits = model.forward(model.newCache(), sequenceBatch(all, { logits: "all" }));
  const n = model.config.nVocab;
  let nll = 0;
  for (let j = sep; j < req.query.length; j++) {
    const row = all.length - req.query.length + j - 1; // the row that predicts query token j
    const x = logits.subarray(row * n, (row + 1) * n);
    const max = Math.max(...x);
    const lse = max + Math.log(x.reduce((a, v) => a + Math.exp(v - max), 0));
    nll += lse - x[req.query[j]];
  }
  assert.ok(Math.abs(r.scores[0] - nll / 2) < 1e-5, `${r.scores[0]} vs ${nll / 2}`);
});

test("the queue keeps the k lowest scores whatever the arrival order (ties to the earlier chunk) and drops the rest at once", () => {
  const scores = [5, 1, 4, 1, 3, 9, 2, 6];
  const orders = [[0, 1, 2, 3, 4, 5, 6, 7], [7, 6, 5, 4, 3, 2, 1, 0], [3, 5, 1, 7, 0, 2, 6, 4]];
  for (const order of orders) {
    const q: Array<{ score: number; index: number }> = [];
    const dropped: number[] = [];
    for (const i of order) offer(q, { score: scores[i], index: i }, 3, (x) => dropped.push(x.index));
    assert.deepEqual(q.map((x) => x.index), [1, 3, 6]);
    assert.deepEqual(dropped.sort(), [0, 2, 4, 5, 7]);
  }
});

test("stage 0 frees dropped chunks: the cache's peak is bounded by keepChunks + maxParallelChunks chunks, whatever the input length", () => {
  const o = resolveOptions("default", { keepChunks: 2, chunkTokens: 40, maxParallelChunks: 2, maxTokens: 1 });
  const short = parallelComp(model, request(400, 7), o);
  const long = parallelComp(model, request(2000, 7), o);
  assert.equal(long.nChunks, 50);
  assert.equal(long.peakCacheBytes, short.peakCacheBytes);
  const kept = parallelComp(model, request(2000, 7), { ...o, keepChunks: 50 });
  assert.ok(kept.peakCacheBytes > 5 * long.peakCacheBytes, "keeping every chunk should cost far more memory");
});

test("lowMemory holds one chunk's KV less and encodes at most one kept chunk again: same chunks, scores and answer", () => {
  const seqRows = (o: { chunkTokens?: number }) => 1 + 6 + o.chunkTokens! + 7;
  let checked = 0;
  for (const [keepChunks, maxParallelChunks, preset] of [[3, 1, "default"], [2, 2, "default"], [1, 1, "default"], [3, 1, "compress"]] as const) {
    for (const seed of [3, 4, 5, 6]) {
      const o = resolveOptions(preset, { keepChunks, maxParallelChunks, chunkTokens: 40, maxTokens: 6, lowMemory: false });
      const lean = { ...o, lowMemory: true };
      let forwards = 0;
      const counting = Object.create(model) as typeof model;
      counting.forward = (...a: Parameters<typeof model.forward>) => (forwards++, model.forward(...a));
      const req = request(400, seed);
      const a = parallelComp(counting, req, o);
      const plainForwards = forwards;
      forwards = 0;
      const b = parallelComp(counting, req, lean);
      assert.deepEqual(b.scores, a.scores);
      assert.deepEqual(b.kept, a.kept);
      assert.deepEqual(b.tokens, a.tokens);
      assert.equal(b.keptKvBytes, a.keptKvBytes);
      // What the cache was sized to hold, and never outgrew: one chunk's rows less.
      const rowBytes = a.peakCacheBytes / ((keepChunks + maxParallelChunks) * seqRows(o) + 7 + 6);
      assert.equal(b.peakCacheBytes, rowBytes * ((keepChunks + maxParallelChunks - 1) * seqRows(o) + 7 + 6));
      const again = forwards - plainForwards;
      // At most the last kept place is encoded again, and not when it came in the last batch
      // (nor when the last batch pushed it down to that place, its KV still held).
      const last = a.kept.map((k) => k.index).sort((x, y) => a.scores[x] - a.scores[y] || x - y)[keepChunks - 1];
      assert.ok(again === 0 || again === 1, `keepChunks ${keepChunks} parallel ${maxParallelChunks} seed ${seed}: ${again} encoded again`);
      if (last >= a.nChunks - maxParallelChunks) assert.equal(again, 0);
      checked += again;
    }
  }
  assert.ok(checked >= 8, `only ${checked} runs encoded a chunk again`);
});

test("keepWithin keeps, of the keepChunks best, those within the gap of the best score; one left answers as keepChunks 1", () => {
  let single = 0;
  let partial = 0;
  for (const seed of [3, 4, 5, 6, 7, 8]) {
    const req = request(400, seed);
    const o = resolveOptions("default", { keepChunks: 3, chunkTokens: 40, maxTokens: 6, keepWithin: null });
    const all = parallelComp(model, req, o);
    const best = all.kept.map((k) => k.score).sort((a, b) => a - b);
    // Gaps that keep 1, 2 and 3 of them: just below each next score's distance from the best.
    for (const gap of [(best[1] - best[0]) / 2, (best[1] - best[0] + best[2] - best[0]) / 2, best[2] - best[0], 1000]) {
      for (const lowMemory of [true, false]) {
        const r = parallelComp(model, req, { ...o, keepWithin: gap, lowMemory });
        const want = all.kept.filter((k) => k.score <= best[0] + gap);
        assert.deepEqual(r.kept, want, `seed ${seed} gap ${gap}`);
        assert.deepEqual(r.scores, all.scores);
        if (want.length === 3) assert.deepEqual(r.tokens, all.tokens);
        if (want.length === 1) {
          assert.deepEqual(r.tokens, parallelComp(model, req, { ...o, keepChunks: 1, lowMemory }).tokens);
          single++;
        }
        if (want.length === 2) partial++;
      }
    }
  }
  assert.ok(single > 0 && partial > 0, `cases: ${single} with one chunk left, ${partial} with two`);
  assert.throws(() => resolveOptions("default", { keepWithin: -0.1 }), /keepWithin must be a number of nats >= 0 or null, got -0.1/);
  assert.equal(resolveOptions("default").keepWithin, 1);
  assert.equal(resolveOptions("retrieval", { keepWithin: null }).keepWithin, null);
});

test("the kept chunks are the lowest-scoring ones, reported in document order", () => {
  const r = parallelComp(model, request(500, 11), resolveOptions("default", { keepChunks: 3, chunkTokens: 50, maxTokens: 1, keepWithin: null }));
  const best = r.scores.map((s, i) => [s, i]).sort((a, b) => a[0] - b[0] || a[1] - b[1]).slice(0, 3).map((x) => x[1]).sort((a, b) => a - b);
  assert.deepEqual(r.kept.map((k) => k.index), best);
  r.kept.forEach((k) => assert.equal(k.score, r.scores[k.index]));
});

test("eviction keeps exactly capacity rows per KV head per layer, in order, with original positions", () => {
  const req = request(100, 13);
  const o = resolveOptions("compress", { chunkTokens: 100, maxTokens: 0 });
  // Observe the cache right after stage 0 through a generate with no query step: run stage 0 only.
  const r = parallelComp(model, req, { ...o, eviction: { ...o.eviction!, capacity: 30 } });
  assert.equal(r.nChunks, 1);
  // Re-run the same stage by hand to inspect the cache.
  const c = model.config;
  const cache = model.newCache({ nSeqMax: 4 });
  const chunk = [BOS, ...req.header, ...req.context];
  const keepFlags: Uint8Array[][] = [];
  model.forward(cache, sequenceBatch([...chunk, ...req.query], { seq: 0, logits: "none" }), {
    oneStep: true,
    observer: (l, q, b) => {
      const rows = Array.from({ length: 7 }, (_, i) => b.n - 7 + i);
      const flags = snapKvKeep(layerAttentionProbs(c, l, q, b, cache, rows), cache, l, 0, chunk.length, c.nHeads, { capacity: 30, window: 8, kernel: 7, gqa: "sum" });
      keepFlags.push(flags);
      applyKeep(cache, l, 0, flags);
    },
  });
  cache.seqRemove(0, chunk.length);
  for (let l = 0; l < c.nLayers; l++) {
    for (let h = 0; h < c.nKvHeads; h++) {
      assert.equal(cache.rows(l, h), 30, `layer ${l} head ${h}`);
      const pos = Array.from(cache.layers[l].rowPos.subarray(h * cache.cap, h * cache.cap + 30));
      assert.deepEqual(pos, [...pos].sort((a, b) => a - b), "rows stay in order");
      const expected = Array.from(keepFlags[l][h].keys()).filter((p) => keepFlags[l][h][p]);
      assert.deepEqual(pos, expected, "kept rows are the flagged positions");
    }
  }
  // Heads choose differently (per-head eviction), at least somewhere.
  const differ = keepFlags.some((f) => f.some((x) => x.join() !== f[0].join()));
  assert.ok(differ, "all heads kept the same rows: per-head eviction is not exercised");
});

test("max-pool smooths with kernel 7 (padding 3, stride 1)", () => {
  const s = Float64Array.from([0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(maxPool(s, 7)), [0, 0, 5, 5, 5, 5, 5, 5, 5, 0, 0, 0]);
});

test("calibration evicts exactly the keys above threshold in the chosen region, on a constructed attention pattern", () => {
  // One layer, one KV head (two query heads), chunk A (seq 0, 300 rows) and chunk B (seq 1, 250 rows), query seq 5.
  const cache = new KvCache(1, 1, 4, 8, 600);
  const rows: Array<[number, number]> = [];
  for (let p = 0; p < 300; p++) rows.push([0, p]);
  for (let p = 0; p < 250; p++) rows.push([1, p]);
  for (let p = 0; p < 3; p++) rows.push([5, 300 + p]);
  cache.reserve(rows.length);
  cache.append(0, new Float32Array(rows.length * 4), new Float32Array(rows.length * 4), Int32Array.from(rows.map((r) => r[0])), Int32Array.from(rows.map((r) => r[1])), rows.length);
  const n = rows.length;
  const probs = new Float32Array(2 * n); // [1 query row, 2 heads, n]
  const hot = (r: number, head: number, v: number) => { probs[head * n + r] = v; };
  hot(0, 0, 0.3); // A pos 0: sink, above threshold
  hot(5, 1, 0.15); // A pos 5: sink, above (head 1)
  hot(150, 0, 0.2); // A pos 150: middle
  hot(299, 1, 0.12); // A pos 299: recent
  hot(300 + 0, 0, 0.09); // B pos 0: sink but below threshold
  hot(300 + 249, 0, 0.11); // B pos 249: recent
  hot(550, 0, 0.5); // the query's own row: never evicted
  const p: AttentionProbs = { probs, maxRows: n, nRows: Int32Array.from([n]) };
  const lens = new Map([[0, 300], [1, 250]]);
  const run = (bias: "sink" | "recent" | "middle") => {
    const c = new KvCache(1, 1, 4, 8, 600);
    c.reserve(n);
    c.append(0, new Float32Array(n * 4), new Float32Array(n * 4), Int32Array.from(rows.map((r) => r[0])), Int32Array.from(rows.map((r) => r[1])), n);
    const evicted = calibrate(p, c, 0, 2, 5, lens, bias, 0.1, 100);
    const left = new Set(Array.from({ length: c.rows(0, 0) }, (_, r) => `${c.layers[0].rowSeq[r]}:${c.layers[0].rowPos[r]}`));
    return { evicted, gone: rows.map((r) => `${r[0]}:${r[1]}`).filter((k) => !left.has(k)) };
  };
  assert.deepEqual(run("sink"), { evicted: 2, gone: ["0:0", "0:5"] });
  assert.deepEqual(run("recent"), { evicted: 2, gone: ["0:299", "1:249"] });
  assert.deepEqual(run("middle"), { evicted: 1, gone: ["0:150"] });
});

test("the paper's recipe scales by depth: 32 layers as written, 30 and 2 layers proportionally", () => {
  assert.deepEqual(PAPER_RECIPE.map((s) => scaleLayers(s, 32, 32)), [[0, 7], [8, 15], [24, 31]]);
  assert.deepEqual(PAPER_RECIPE.map((s) => scaleLayers(s, 32, 30)), [[0, 7], [7, 14], [22, 29]]);
  assert.deepEqual(PAPER_RECIPE.map((s) => scaleLayers(s, 32, 2)), [[0, 0], [0, 0], [1, 1]]);
});

/**
 * A calibrated request over 6 chunks of 50 tokens (2 kept), watched through `onAttention`: per layer
 * of the question's prefill, the chunk keys calibration evicted and, for every chunk key, the
 * attention of the last query row before calibration (per KV head, the largest over the query
 * heads that share it: one of them above the threshold is enough to evict).
 */
function calibratedRun(recipe: CalibrationStep[], threshold: number, regionTokens: number) {
  const o = resolveOptions("default", { keepChunks: 2, chunkTokens: 50, maxTokens: 2, calibration: { recipe, recipeDepth: 2, threshold, regionTokens, calibrationQueries: 1 } });
  const c = model.config;
  const group = c.nHeads / c.nKvHeads;
  const layers = Array.from({ length: c.nLayers }, () => ({ attention: new Map<string, { pos: number; chunkLen: number; a: number }>(), evicted: [] as string[] }));
  const keys = (cache: KvCache, l: number, querySeq: number) => {
    const out: Array<{ key: string; h: number; r: number; seq: number; pos: number }> = [];
    const L = cache.layers[l];
    for (let h = 0; h < c.nKvHeads; h++) {
      for (let r = 0; r < L.nRows[h]; r++) {
        const cell = h * cache.cap + r;
        if (L.rowSeq[cell] !== querySeq) out.push({ key: `head ${h} seq ${L.rowSeq[cell]} pos ${L.rowPos[cell]}`, h, r, seq: L.rowSeq[cell], pos: L.rowPos[cell] });
      }
    }
    return out;
  };
  const r = parallelComp(model, request(300, 17), o, {
    onAttention: (s) => {
      if (s.stage !== 1) return;
      const querySeq = s.questions[0].seq;
      const at = layers[s.layer];
      if (s.calibration === "before") {
        const p = layerAttentionProbs(c, s.layer, s.q, s.batch, s.cache, [s.batch.n - 1]);
        for (const k of keys(s.cache, s.layer, querySeq)) {
          let a = 0;
          for (let g = 0; g < group; g++) a = Math.max(a, p.probs[(k.h * group + g) * p.maxRows + k.r]);
          at.attention.set(k.key, { pos: k.pos, chunkLen: s.questions[0].chunks.get(k.seq)!, a });
        }
      } else {
        const left = new Set(keys(s.cache, s.layer, querySeq).map((k) => k.key));
        at.evicted = [...at.attention.keys()].filter((k) => !left.has(k));
      }
    },
  });
  return { r, layers };
}

test("calibration inside a request evicts, in each recipe layer, exactly the keys of that layer's region above the threshold, and nothing elsewhere", () => {
  const R = 10;
  // One bias per layer (with two, the second sees the attention renormalised by the first's evictions):
  // recency bias in layer 1, sink bias in layer 2 (1-indexed), regions measured inside each chunk.
  const recipe: CalibrationStep[] = [{ layers: [1, 1], bias: "recent" }, { layers: [2, 2], bias: "sink" }];
  const region = [(pos: number, len: number) => pos >= len - R && pos >= R, (pos: number) => pos < R];
  const { r, layers } = calibratedRun(recipe, 0.02, R);
  assert.deepEqual(layers.map((L) => L.evicted.length > 0), [true, true], "both recipe layers evict");
  assert.equal(layers[0].evicted.length + layers[1].evicted.length, r.evictedByCalibration);
  layers.forEach((L, l) => {
    for (const [key, { pos, chunkLen, a }] of L.attention) {
      const expected = region[l](pos, chunkLen) && a > 0.02;
      assert.equal(L.evicted.includes(key), expected, `layer ${l + 1}, ${key}: attention ${a.toFixed(4)}`);
    }
  });
  // A recipe of layer 2 alone leaves layer 1's keys as they were.
  const only = calibratedRun([{ layers: [2, 2], bias: "sink" }], 0.02, R);
  assert.deepEqual(only.layers[0].evicted, []);
  assert.deepEqual(only.layers[1].evicted, layers[1].evicted);
  assert.equal(only.r.evictedByCalibration, layers[1].evicted.length);
});

// A context of N tokens whose token at cut - 1 carries the boundary kind given for `cut` (a chunk
// ending before token `cut` ends after that boundary); the tokens are their own kinds.
const LINE = 4, SENTENCE = 3, CLAUSE = 2, WORD = 1;
const marked = (N: number, marks: Record<number, number>) => Array.from({ length: N }, (_, i) => marks[i + 1] ?? 0);
const kindIs = (t: number) => t as 0 | 1 | 2 | 3 | 4;
const ends = (ctx: number[], budget: number) => chunkContext(ctx, budget, kindIs).map((s) => s.end);

test("chunking cuts at the strongest boundary within 15% of the budget on either side of an equal share, the nearest among equals, else a clause end or better within 35%", () => {
  // Budget 120: reach 18, far reach 42; 200 tokens fill two chunks, so each share is 100.
  // A line end 10 past the share beats a sentence end 6 before it and a word end at it.
  assert.deepEqual(ends(marked(200, { 110: LINE, 94: SENTENCE, 100: WORD }), 120), [110, 200]);
  // Two sentence ends 7 either side: the earlier; one 12 past loses to both.
  assert.deepEqual(ends(marked(200, { 93: SENTENCE, 107: SENTENCE, 112: SENTENCE }), 120), [93, 200]);
  // 150 tokens (filled: a hard cut at 120), share 75: nothing within reach but a word end 2
  // before, so a clause end 25 before is taken (a JSON pair kept whole); the line end 40 before
  // comes after it in the search.
  assert.deepEqual(ends(marked(150, { 50: CLAUSE, 73: WORD, 35: LINE }), 120), [50, 150]);
  // A line end 43 before the share is past the far reach: the word end stays.
  assert.deepEqual(ends(marked(150, { 73: WORD, 32: LINE }), 120), [73, 150]);
});

test("chunking never makes a chunk longer than the budget or leaves the later chunks more than theirs; equal shares replace the filled chunks only with cuts no weaker than theirs", () => {
  // 200 tokens, budget 120: filled, a hard cut at 120 (nothing within 42 before it) and 80 left.
  // Two shares of 100 cut at the word end 2 before: the clause end at 70 is within the far reach
  // but would leave 130 > 120 to the last chunk.
  assert.deepEqual(ends(marked(200, { 98: WORD, 70: CLAUSE }), 120), [98, 200]);
  // A line end 25 past the share would make the first chunk 125 > 120 tokens: not taken.
  const spans = chunkContext(marked(200, { 125: LINE }), 120, kindIs);
  assert.deepEqual(spans.map((s) => s.end), [100, 200]);
  // Filled: a sentence end at 118, then 7 tokens. Two shares of 62.5 would cut at a word end (the
  // sentence end is 55 away, past the far reach): weaker, so the filled chunks stay.
  const words = Array.from({ length: 125 }, (_, i) => (i === 117 ? SENTENCE : WORD));
  assert.deepEqual(ends(words, 120), [118, 125]);
});

test("chunking: an N just above a multiple of the budget gives equal parts, not full chunks and a sliver", () => {
  assert.deepEqual(chunkContext(Array(101).fill(0), 100), [{ start: 0, end: 51 }, { start: 51, end: 101 }]);
  assert.deepEqual(chunkContext(Array(201).fill(0), 100).map((s) => s.end - s.start), [67, 67, 67]);
  assert.deepEqual(chunkContext(Array(250).fill(0), 100), [{ start: 0, end: 83 }, { start: 83, end: 167 }, { start: 167, end: 250 }]);
  assert.deepEqual(chunkContext(Array(100).fill(0), 100), [{ start: 0, end: 100 }]);
  // Sentence ends every 5 tokens, 203 tokens, budget 100: filled chunks would be 100, 100 and 3;
  // three equal shares of 67.7 cut at the nearest sentence ends instead.
  const every5 = Array.from({ length: 203 }, (_, i) => ((i + 1) % 5 === 0 ? SENTENCE : 0));
  assert.deepEqual(ends(every5, 100), [70, 135, 203]);
  // Without boundaries, lengths differ by at most one token, whatever N and the budget.
  for (const [N, budget] of [[1, 1], [7, 3], [1000, 97], [4097, 512], [99, 100]]) {
    const lengths = chunkContext(Array(N).fill(0), budget).map((s) => s.end - s.start);
    assert.equal(lengths.length, Math.ceil(N / budget));
    assert.ok(Math.max(...lengths) - Math.min(...lengths) <= 1, `${N} / ${budget}: ${lengths}`);
  }
});

test("chunking with sentence ends at most g tokens apart: as many chunks as filling gives, in order, none over the budget, every cut at a sentence end, each within g of an equal share of what is left, all within 2g of each other", () => {
  let state = 12345;
  const random = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  for (let c = 0; c < 200; c++) {
    const budget = 70 + Math.floor(random() * 400); // reach: 10 or more tokens, beyond g - 1
    const N = 1 + Math.floor(random() * 20000);
    const g = 1 + Math.floor(random() * 10);
    const ctx = Array<number>(N).fill(WORD);
    for (let i = Math.floor(random() * g); i < N; i += 1 + Math.floor(random() * g)) ctx[i] = SENTENCE;
    const spans = chunkContext(ctx, budget, kindIs);
    const what = `case ${c}: N ${N}, budget ${budget}, g ${g}`;
    // Filling: each chunk to the budget, cut back to the last sentence end (g - 1 < 15% of the budget back at most).
    let filled = 0;
    for (let at = 0; at < N; filled++) {
      at = Math.min(N, at + budget);
      if (at < N) while (ctx[at - 1] !== SENTENCE) at--;
    }
    assert.equal(spans.length, filled, what);
    let at = 0;
    spans.forEach((s, k) => {
      assert.equal(s.start, at, what);
      assert.ok(s.end - s.start >= 1 && s.end - s.start <= budget, `${what}: chunk ${k} has ${s.end - s.start} tokens`);
      if (k < spans.length - 1) assert.equal(ctx[s.end - 1], SENTENCE, `${what}: cut ${s.end}`);
      const share = (N - s.start) / (spans.length - k);
      assert.ok(Math.abs(s.end - s.start - share) <= g, `${what}: chunk ${k} has ${s.end - s.start} tokens, its share ${share.toFixed(1)}`);
      at = s.end;
    });
    assert.equal(at, N, what);
    const lengths = spans.map((s) => s.end - s.start);
    assert.ok(Math.max(...lengths) - Math.min(...lengths) <= 2 * g, `${what}: lengths ${Math.min(...lengths)}-${Math.max(...lengths)}`);
  }
});

test("bad requests get clear errors: empty context or question, a question longer than the window, keepChunks 0, unknown preset", () => {
  assert.throws(() => parallelComp(model, { ...request(10), context: [] }, resolveOptions()), /context is empty/);
  assert.throws(() => parallelComp(model, { ...request(10), query: [] }, resolveOptions()), /question is empty/);
  assert.throws(() => chunkBudget(128, { ...request(10), query: randomTokens(200, 290, 1) }, 32), /leave -\d+ tokens of the 128-token window/);
  assert.throws(() => resolveOptions("default", { keepChunks: 0 }), /keepChunks must be a positive integer, got 0/);
  assert.throws(() => resolveOptions("fast"), /unknown preset "fast"/);
});

test("topK, the deprecated name of keepChunks, still sets it; an undefined override keeps the preset's value; the two names disagreeing is one error", () => {
  assert.equal(resolveOptions("default", { topK: 5 }).keepChunks, 5);
  assert.equal(resolveOptions("retrieval", { topK: 5, keepChunks: 5 }).keepChunks, 5);
  assert.equal(resolveOptions("retrieval", { keepChunks: undefined, topK: undefined }).keepChunks, 2);
  assert.throws(() => resolveOptions("default", { topK: 0 }), /keepChunks must be a positive integer, got 0/);
  assert.throws(() => resolveOptions("default", { keepChunks: 2, topK: 3 }), /^UsageError: keepChunks 2 and topK 3 disagree: topK is the old name of keepChunks, give one$/);
});
