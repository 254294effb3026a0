// ParallelComp over token ids (../shared/method.md). Stage 0: chunks are prefilled in batches,
// each its own sequence with local positions 0..L-1 followed by the query; each is scored by the
// query's mean negative log-likelihood; a bounded queue keeps the `keepChunks` most relevant and frees the
// others at once. Stage 1: the question, as a sequence that sees every kept chunk, is prefilled at
// positions starting at the longest kept chunk's length, then the answer is decoded.
// Everything goes through the engine interface (engine/engine.ts): batches with positions and
// sequence ids, logits of chosen rows, and cache verbs (remove a sequence's rows, share them).
// SnapKV, calibration and the attention analysis also need the engine's layers (`layerAccess`).

import { batchAdd, emptyBatch, type Batch } from "../engine/batch.js";
import type { KvCache } from "../engine/kv-cache.js";
import { layerAccess, type Engine, type SeqCache } from "../engine/engine.js";
import { layerAttentionProbs } from "../engine/attention-probs.js";
import type { ModelConfig } from "../model/config.js";
import type { AttentionObserver } from "../model/forward.js";
import { abortError, drain, generateSteps } from "../generate/generate.js";
import type { SamplerOptions } from "../generate/sampler.js";
import { chunkContext, type BoundaryOf, type ChunkSpan } from "./chunking.js";
import { applyKeep, snapKvKeep } from "./eviction.js";
import { calibrate } from "./calibration.js";
import { scaleLayers, type ParallelCompOptions } from "./options.js";
import { UsageError } from "../errors.js";

/** A request already tokenized: chunk c is [bos] header slice_c, then the query. */
export interface TokenRequest {
  bos: number | null;
  header: number[];
  context: number[];
  query: number[]; // separator + question + answer prefix
  /**
   * Leading query tokens that only join the question to the chunk ("\n\n"). They are not
   * scored: their likelihood says whether the chunk happened to end at a paragraph break, not
   * whether it is relevant (measured on our model: passkey chunk recall among 32 chunks rose
   * from 30% to 90% without them).
   */
  separator?: number;
}

export interface KeptChunk {
  index: number; // chunk number in document order
  start: number; // first context token
  end: number; // exclusive
  tokens: number; // rows it contributes (bos + header + slice)
  score: number; // mean query NLL given the chunk, in nats (lower = more relevant)
}

export interface Progress {
  chunksDone: number;
  chunks: number;
  tokensDone: number;
  tokens: number;
}

/**
 * One layer's attention step as an analysis sees it (eval/attention-bias.ts): the forward
 * observer's arguments and, for each question in the step, its sequence id, its batch rows and
 * the chunks it sees. A key row (seq, pos) belongs to chunk `seq` when pos < chunks.get(seq);
 * every other row it sees is the question's own. Stage 0 has one question per chunk, seeing that
 * chunk only (local attention); stage 1 one question over every kept chunk (parallel attention).
 * With calibration on, stage 1 reports each layer before and after its keys are evicted.
 */
export interface AttentionStep {
  stage: 0 | 1;
  calibration: "off" | "before" | "after";
  layer: number;
  q: Float32Array; // [batch.n, nHeads, headDim], RoPE applied
  batch: Batch;
  cache: KvCache;
  questions: Array<{ seq: number; rows: number[]; chunks: ReadonlyMap<number, number> }>;
}

export interface RunHooks {
  boundary?: BoundaryOf;
  /** Sees every layer's attention in stage 0 and in the question's prefill; must not change the cache. */
  onAttention?: (step: AttentionStep) => void;
  onProgress?: (p: Progress) => void;
  onToken?: (token: number) => void;
  signal?: AbortSignal;
  stopTokens?: Iterable<number>;
  sampler?: SamplerOptions;
}

export interface ParallelCompResult {
  tokens: number[]; // the answer
  nChunks: number;
  chunkTokens: number; // context tokens per chunk (the budget)
  kept: KeptChunk[]; // in document order
  scores: number[]; // every chunk's score, in document order
  spans: ChunkSpan[]; // every chunk's context tokens, in document order
  prefillSeconds: number; // stage 0 + the query's prefill
  decodeSeconds: number;
  peakCacheBytes: number;
  /** K and V bytes of the kept chunks' rows after stage 0 (what eviction shrinks). */
  keptKvBytes: number;
  evictedByCalibration: number;
}

/** Context tokens per chunk: what the trained window leaves after bos, header, query and answer. */
export function chunkBudget(nCtxTrain: number, req: TokenRequest, maxTokens: number): number {
  const fixed = (req.bos === null ? 0 : 1) + req.header.length + req.query.length + maxTokens;
  const budget = nCtxTrain - fixed;
  if (budget < 16) {
    throw new UsageError(`the question (${req.query.length} tokens), instruction (${req.header.length}) and answer (${maxTokens}) leave ${budget} tokens of the ${nCtxTrain}-token window for context: shorten them`);
  }
  return budget;
}

/** Most chunks whose KV is in the cache at once: the kept ones and the batch in flight. */
export function heldChunks(o: Pick<ParallelCompOptions, "keepChunks" | "maxParallelChunks" | "lowMemory">): number {
  return o.keepChunks + o.maxParallelChunks - (o.lowMemory ? 1 : 0);
}

/** The free chunk sequence ids among 0..n-1. */
function slotPool(n: number) {
  const free = Array.from({ length: n }, (_, i) => n - 1 - i);
  return { take: () => free.pop()!, give: (s: number) => free.push(s) };
}

const now = () => performance.now() / 1000;

export function parallelComp(model: Engine, req: TokenRequest, o: ParallelCompOptions, hooks: RunHooks = {}): ParallelCompResult {
  return drain(parallelCompSteps(model, req, o, hooks));
}

/** What the steps of one run share. */
interface Run {
  model: Engine;
  req: TokenRequest;
  o: ParallelCompOptions;
  hooks: RunHooks;
  cache: SeqCache;
  lc: ModelConfig | undefined; // the engine's layers, present when a step works inside attention
  chunkTokens: number; // context tokens per chunk
  spans: ChunkSpan[];
  prefix: number[]; // [bos] header: the start of every chunk
  m: number; // query tokens
  scored: number; // the last `scored` query tokens count in a chunk's score
  querySeq: number; // stage 1's sequence id
}

/** A chunk of stage 0's batch: its context span, document index, sequence id and rows before the query. */
interface InFlight {
  span: ChunkSpan;
  index: number;
  slot: number;
  len: number; // [bos] header slice
}

type SlottedChunk = KeptChunk & { slot: number };

/**
 * ParallelComp as steps: it yields after every batch of chunks and every answer token.
 * Stage 0 (`encodeChunks`, `scoreChunks`, `keepTopChunks`, SnapKV's `evictTokens`), then stage 1
 * (`joinKeptChunks`, bias `calibration`, `decodeAnswer`).
 */
export function* parallelCompSteps(model: Engine, req: TokenRequest, o: ParallelCompOptions, hooks: RunHooks = {}): Generator<void, ParallelCompResult> {
  if (req.context.length === 0) throw new UsageError("the context is empty");
  if (req.query.length === 0) throw new UsageError("the question is empty");
  const chunkTokens = o.chunkTokens ?? chunkBudget(model.config.nCtxTrain, req, o.maxTokens);
  const spans = chunkContext(req.context, chunkTokens, hooks.boundary);
  const prefix = req.bos === null ? req.header : [req.bos, ...req.header];
  const m = req.query.length;
  const unscored = Math.min(m - 1, req.separator ?? 0);
  const scored = o.queryRecentTokens > 0 ? Math.min(m - unscored, o.queryRecentTokens) : m - unscored;

  const inside = [o.eviction && "SnapKV eviction", o.calibration && "bias calibration", hooks.onAttention && "the attention analysis"].filter(Boolean);
  const layers = inside.length > 0 ? layerAccess(model, inside.join(" and ")) : undefined;

  // Sequence ids: chunks use slots 0..nSeqMax-2 (never more at once than `heldChunks`); the question uses the last id.
  const nSeqMax = heldChunks(o) + 1;
  const cache = model.newCache({ nSeqMax, capacity: heldChunks(o) * (prefix.length + chunkTokens + m) + m + o.maxTokens, seqRows: prefix.length + chunkTokens + m });
  const run: Run = { model, req, o, hooks, cache, lc: layers?.config, chunkTokens, spans, prefix, m, scored, querySeq: nSeqMax - 1 };
  try {
    const t0 = now();
    const stage0 = yield* selectChunks(run, slotPool(nSeqMax - 1));
    const keptKvBytes = cache.usedBytes();
    const inOrder = joinKeptChunks(run, stage0.kept);
    const chunkLen = new Map(inOrder.map((k) => [k.slot, k.tokens]));
    const calib = calibration(run, chunkLen);
    const stage0Seconds = now() - t0;
    const gen = yield* decodeAnswer(run, Math.max(...inOrder.map((k) => k.tokens)), stage1Observer(run, chunkLen, calib?.observer));
    return {
      tokens: gen.tokens,
      nChunks: spans.length,
      chunkTokens,
      kept: inOrder.map(({ slot: _slot, ...k }) => k),
      scores: stage0.scores,
      spans,
      prefillSeconds: stage0Seconds + gen.prefillSeconds,
      decodeSeconds: gen.decodeSeconds,
      peakCacheBytes: Math.max(stage0.peakCacheBytes, cache.bytes()),
      keptKvBytes,
      evictedByCalibration: calib?.evicted() ?? 0,
    };
  } finally {
    cache.free();
  }
}

/**
 * Stage 0: chunks stream through in batches of `maxParallelChunks`; each batch is encoded, scored
 * and offered to the bounded queue, which frees the chunks it drops at once. With `lowMemory` the
 * queue's last place holds a score only (its KV is freed) until the last batch, and the chunk
 * that ends there without its KV is encoded again. With `keepWithin` the chunks far behind the
 * best leave first (and are not encoded again).
 */
function* selectChunks(run: Run, slots: ReturnType<typeof slotPool>): Generator<void, { kept: SlottedChunk[]; scores: number[]; peakCacheBytes: number }> {
  const { o, spans, hooks } = run;
  const kept: SlottedChunk[] = []; // sorted by (score, index): best first
  const scores: number[] = [];
  let peakCacheBytes = 0;
  for (let g = 0; g < spans.length; g += o.maxParallelChunks) {
    if (hooks.signal?.aborted) throw abortError(hooks.signal);
    const group = spans.slice(g, g + o.maxParallelChunks).map((span, i) => ({ span, index: g + i, slot: slots.take(), len: run.prefix.length + span.end - span.start }));
    const logits = encodeChunks(run, group);
    peakCacheBytes = Math.max(peakCacheBytes, run.cache.bytes());
    const groupScores = scoreChunks(run, group, logits);
    scores.push(...groupScores);
    keepTopChunks(run, kept, group, groupScores, slots);
    const done = g + group.length;
    if (o.lowMemory && done < spans.length) releaseLastPlace(run, kept, slots);
    hooks.onProgress?.({ chunksDone: done, chunks: spans.length, tokensDone: spans[done - 1].end, tokens: run.req.context.length });
    yield;
  }
  if (o.keepWithin !== null) dropFarBehind(run, kept, slots, o.keepWithin);
  for (const k of kept) {
    if (k.slot >= 0) continue;
    if (hooks.signal?.aborted) throw abortError(hooks.signal);
    // Encoded as in its batch (same tokens and positions, alone): the same rows as before.
    k.slot = slots.take();
    const x = { span: spans[k.index], index: k.index, slot: k.slot, len: k.tokens };
    encodeChunks(run, [x], false);
    peakCacheBytes = Math.max(peakCacheBytes, run.cache.bytes());
    run.cache.seqRemove(x.slot, x.len);
    yield;
  }
  return { kept, scores, peakCacheBytes };
}

/** keepWithin: the kept chunks scored more than `gap` nats behind the best leave, with their KV and slots. */
function dropFarBehind(run: Run, kept: SlottedChunk[], slots: ReturnType<typeof slotPool>, gap: number): void {
  const limit = kept[0].score + gap; // kept is sorted best first and never empty here
  while (kept.length > 1 && kept[kept.length - 1].score > limit) {
    const x = kept.pop()!;
    if (x.slot < 0) continue; // lowMemory's last place: no KV held, and now not encoded again
    run.cache.seqRemove(x.slot);
    slots.give(x.slot);
  }
}

/** lowMemory: the queue's last place keeps its score but gives back its KV and slot (slot -1). */
function releaseLastPlace(run: Run, kept: SlottedChunk[], slots: ReturnType<typeof slotPool>): void {
  const last = kept[run.o.keepChunks - 1];
  if (last === undefined || last.slot < 0) return;
  run.cache.seqRemove(last.slot);
  slots.give(last.slot);
  last.slot = -1;
}

/**
 * Encodes a batch of chunks, each its own sequence at local positions 0..len-1 followed by the
 * query; SnapKV (when on) trims each layer as it goes. Returns the logits of the scored query rows,
 * `scored` rows per chunk in group order.
 */
function encodeChunks(run: Run, group: InFlight[], observed = true): Float32Array {
  const { req, prefix, m, scored } = run;
  const batch = emptyBatch(group.reduce((a, x) => a + x.len + m, 0));
  for (const x of group) {
    const tokens = [...prefix, ...req.context.slice(x.span.start, x.span.end), ...req.query];
    // Logits at row i predict token i+1: rows len-1 .. len+m-2 predict the query tokens.
    tokens.forEach((t, i) => batchAdd(batch, t, i, x.slot, i >= x.len - 1 + (m - scored) && i < x.len + m - 1));
  }
  const evict = run.o.eviction ? evictTokens(run.lc!, group, m, run.o) : undefined;
  const tap = observed ? run.hooks.onAttention : undefined; // a chunk encoded again is not analysed twice
  const observer: AttentionObserver | undefined = tap
    ? (l, q, b, kvc) => {
        tap({ stage: 0, calibration: "off", layer: l, q, batch: b, cache: kvc, questions: stage0Questions(group, m) });
        evict?.(l, q, b, kvc);
      }
    : evict;
  // Observers need all of a chunk's rows in one step.
  return run.model.forward(run.cache, batch, { observer, oneStep: observer !== undefined });
}

/** Each chunk's score: the mean NLL of the scored query tokens given the chunk (lower = more relevant). */
function scoreChunks(run: Run, group: InFlight[], logits: Float32Array): number[] {
  const targets = run.req.query.slice(run.m - run.scored);
  return group.map((_, i) => meanNll(logits, i * run.scored, targets, run.model.config.nVocab));
}

/**
 * Offers each scored chunk to the bounded queue `kept`. A chunk keeps only its own rows (the query
 * is encoded again in stage 1); one the queue drops leaves the cache and gives back its slot.
 */
function keepTopChunks(run: Run, kept: SlottedChunk[], group: InFlight[], scores: number[], slots: ReturnType<typeof slotPool>): void {
  group.forEach((x, i) => {
    run.cache.seqRemove(x.slot, x.len);
    offer(kept, { index: x.index, start: x.span.start, end: x.span.end, tokens: x.len, score: scores[i], slot: x.slot }, run.o.keepChunks, (dropped) => {
      if (dropped.slot < 0) return; // lowMemory's last place: its KV is already gone
      run.cache.seqRemove(dropped.slot);
      slots.give(dropped.slot);
    });
  });
}

/** Stage 1's keys: the kept chunks in document order, shared with the question; only the first keeps its BOS row. */
function joinKeptChunks(run: Run, kept: SlottedChunk[]): SlottedChunk[] {
  const inOrder = [...kept].sort((a, b) => a.index - b.index);
  inOrder.forEach((k, i) => {
    if (i > 0 && run.req.bos !== null) run.cache.seqRemove(k.slot, 0, 1);
    run.cache.seqShare(k.slot, run.querySeq);
  });
  return inOrder;
}

/**
 * Attention-bias calibration during the question's prefill: in the recipe's layers, the keys of
 * the step's region that the last query rows attend to above the threshold leave that layer.
 */
function calibration(run: Run, chunkLen: ReadonlyMap<number, number>): { observer: AttentionObserver; evicted: () => number } | undefined {
  const cal = run.o.calibration;
  if (!cal) return undefined;
  const lc = run.lc!;
  let evicted = 0;
  const observer: AttentionObserver = (l, q, b, kvc) => {
    const steps = cal.recipe.filter((s) => { const [a, z] = scaleLayers(s, cal.recipeDepth, lc.nLayers); return l >= a && l <= z; });
    if (steps.length === 0) return false;
    const rows = Array.from({ length: Math.min(cal.calibrationQueries, b.n) }, (_, i) => b.n - 1 - i);
    let n = 0;
    for (const s of steps) n += calibrate(layerAttentionProbs(lc, l, q, b, kvc, rows), kvc, l, lc.nHeads, run.querySeq, chunkLen, s.bias, cal.threshold, cal.regionTokens);
    evicted += n;
    return n > 0;
  };
  return { observer, evicted: () => evicted };
}

/** The question's prefill observer: calibration, with the attention analysis around it when asked. */
function stage1Observer(run: Run, chunkLen: ReadonlyMap<number, number>, calib: AttentionObserver | undefined): AttentionObserver | undefined {
  const tap = run.hooks.onAttention;
  if (!tap) return calib;
  return (l, q, b, kvc) => {
    const step = { stage: 1 as const, layer: l, q, batch: b, cache: kvc, questions: [{ seq: run.querySeq, rows: Array.from({ length: b.n }, (_, i) => i), chunks: chunkLen }] };
    if (!calib) return tap({ ...step, calibration: "off" });
    tap({ ...step, calibration: "before" });
    const changed = calib(l, q, b, kvc);
    tap({ ...step, calibration: "after" });
    return changed;
  };
}

/**
 * The question, as a sequence that sees every kept chunk, prefilled at positions from `pos0` (the
 * longest kept chunk's length, so every position stays inside the trained window), then the answer.
 */
function decodeAnswer(run: Run, pos0: number, observer: AttentionObserver | undefined) {
  const { hooks } = run;
  return generateSteps(run.model, run.req.query, {
    ...hooks.sampler, maxTokens: run.o.maxTokens, cache: run.cache, seq: run.querySeq, pos0, prefill: { observer, oneStep: true },
    stopTokens: hooks.stopTokens, onToken: hooks.onToken, signal: hooks.signal,
  });
}

/** Mean negative log-likelihood of `targets` from consecutive logit rows starting at `row0`. */
export function meanNll(logits: Float32Array, row0: number, targets: ArrayLike<number>, nVocab: number): number {
  let total = 0;
  for (let j = 0; j < targets.length; j++) {
    const off = (row0 + j) * nVocab;
    let max = -Infinity;
    for (let v = 0; v < nVocab; v++) max = Math.max(max, logits[off + v]);
    let sum = 0;
    for (let v = 0; v < nVocab; v++) sum += Math.exp(logits[off + v] - max);
    total += max + Math.log(sum) - logits[off + targets[j]];
  }
  return total / targets.length;
}

/**
 * The bounded queue: keeps the k lowest scores (ties to the earlier chunk), best first. A chunk
 * that does not make it, or that is pushed out, goes to `drop` at once.
 */
export function offer<T extends { score: number; index: number }>(queue: T[], item: T, k: number, drop: (x: T) => void): void {
  const better = (a: T, b: T) => a.score < b.score || (a.score === b.score && a.index < b.index);
  let at = queue.length;
  while (at > 0 && better(item, queue[at - 1])) at--;
  if (at >= k) return drop(item);
  queue.splice(at, 0, item);
  if (queue.length > k) drop(queue.pop()!);
}

/** Stage 0's questions: chunk i's query follows its len rows in the batch, which holds (len + m) rows per chunk. */
function stage0Questions(group: Array<{ slot: number; len: number }>, m: number): AttentionStep["questions"] {
  let start = 0;
  return group.map((x) => {
    const rows = Array.from({ length: m }, (_, i) => start + x.len + i);
    start += x.len + m;
    return { seq: x.slot, rows, chunks: new Map([[x.slot, x.len]]) };
  });
}

/** SnapKV per chunk: observes each layer's window rows and trims that layer after the forward step. */
function evictTokens(c: ModelConfig, group: Array<{ slot: number; len: number }>, m: number, o: ParallelCompOptions): AttentionObserver {
  const ev = o.eviction!;
  return (l, q, b, cache) => {
    // Batch rows of each chunk are contiguous: chunk i starts at the sum of earlier (len + m).
    let start = 0;
    for (const x of group) {
      const end = start + x.len + m;
      const w = Math.min(ev.window, m);
      const rows = Array.from({ length: w }, (_, i) => end - w + i);
      const p = layerAttentionProbs(c, l, q, b, cache, rows);
      applyKeep(cache, l, x.slot, snapKvKeep(p, cache, l, x.slot, x.len, c.nHeads, ev));
      start = end;
    }
  };
}
