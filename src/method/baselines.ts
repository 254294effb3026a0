// The baselines of ../shared/method.md, through the same engine and the same request, so every
// method is measured on identical tokens.
//   full       plain causal attention over everything, ordinary positions (breaks past the window)
//   truncate   the context's head and tail, cut to fit the window (the paper's "FullKV" row)
//   pcw        Parallel Context Windows: every chunk kept, local positions, no selection
//   streaming  StreamingLLM: 4 sink tokens plus a rolling window, positions inside the cache
//   ntk        dynamic NTK-aware RoPE scaling over the whole input

import { sequenceBatch } from "../engine/batch.js";
import { abortError, drain, drainAsync, generateSteps } from "../generate/generate.js";
import { layerAccess, type Engine } from "../engine/engine.js";
import { chunkBudget, parallelCompSteps, type ParallelCompResult, type RunHooks, type TokenRequest } from "./parallelcomp.js";
import { chunkContext } from "./chunking.js";
import type { ParallelCompOptions } from "./options.js";
import { UsageError } from "../errors.js";

export const METHODS = ["parallelcomp", "full", "truncate", "pcw", "streaming", "ntk"] as const;
export type Method = (typeof METHODS)[number];

const now = () => performance.now() / 1000;

function wholePrompt(req: TokenRequest, context: number[] = req.context): number[] {
  return [...(req.bos === null ? [] : [req.bos]), ...req.header, ...context, ...req.query];
}

/** A single-sequence run reported in ParallelComp's result shape (one "chunk": everything). */
function* single(model: Engine, prompt: number[], o: ParallelCompOptions, hooks: RunHooks, ropeBase?: number): Generator<void, ParallelCompResult> {
  hooks.onProgress?.({ chunksDone: 0, chunks: 1, tokensDone: 0, tokens: prompt.length });
  const cache = model.newCache({ capacity: prompt.length + o.maxTokens });
  try {
    const g = yield* generateSteps(model, prompt, {
      ...hooks.sampler, maxTokens: o.maxTokens, cache, stopTokens: hooks.stopTokens, onToken: hooks.onToken, signal: hooks.signal,
      forward: ropeBase ? { ropeBase } : undefined,
    });
    return {
      tokens: g.tokens, nChunks: 1, chunkTokens: prompt.length, kept: [], scores: [], spans: [],
      prefillSeconds: g.prefillSeconds, decodeSeconds: g.decodeSeconds,
      peakCacheBytes: cache.bytes(), keptKvBytes: cache.usedBytes(), evictedByCalibration: 0,
    };
  } finally {
    cache.free();
  }
}

/** A method run to the end at once. */
export function runMethod(method: Method, model: Engine, req: TokenRequest, o: ParallelCompOptions, hooks: RunHooks = {}): ParallelCompResult {
  return drain(runMethodSteps(method, model, req, o, hooks));
}

/**
 * A method run that returns to the event loop after every batch of chunks and every answer
 * token; `hooks.signal` aborts it there with the signal's reason.
 */
export function runMethodAsync(method: Method, model: Engine, req: TokenRequest, o: ParallelCompOptions, hooks: RunHooks = {}): Promise<ParallelCompResult> {
  return drainAsync(runMethodSteps(method, model, req, o, hooks), hooks.signal);
}

export function* runMethodSteps(method: Method, model: Engine, req: TokenRequest, o: ParallelCompOptions, hooks: RunHooks = {}): Generator<void, ParallelCompResult> {
  if (req.context.length === 0) throw new UsageError("the context is empty");
  if (req.query.length === 0) throw new UsageError("the question is empty");
  const c = model.config;
  switch (method) {
    case "parallelcomp":
      return yield* parallelCompSteps(model, req, o, hooks);
    case "full":
      return yield* single(model, wholePrompt(req), o, hooks);
    case "truncate": {
      const budget = chunkBudget(c.nCtxTrain, req, o.maxTokens);
      if (req.context.length <= budget) return yield* single(model, wholePrompt(req), o, hooks);
      const head = Math.floor(budget / 2);
      return yield* single(model, wholePrompt(req, [...req.context.slice(0, head), ...req.context.slice(req.context.length - (budget - head))]), o, hooks);
    }
    case "pcw": {
      const chunkTokens = o.chunkTokens ?? chunkBudget(c.nCtxTrain, req, o.maxTokens);
      const nChunks = chunkContext(req.context, chunkTokens, hooks.boundary).length;
      return yield* parallelCompSteps(model, req, { ...o, keepChunks: nChunks, keepWithin: null, eviction: null, calibration: null }, hooks);
    }
    case "ntk": {
      // Dynamic NTK (as in Hugging Face transformers' "dynamic" rope scaling, factor 1):
      // base' = base * (L / L_train) ^ (d / (d - 2)) once the input L exceeds the trained length.
      const lc = layerAccess(model, "NTK RoPE scaling (a RoPE base per pass)").config;
      const L = wholePrompt(req).length + o.maxTokens;
      const scale = Math.max(1, L / c.nCtxTrain);
      return yield* single(model, wholePrompt(req), o, hooks, lc.ropeBase * Math.pow(scale, lc.ropeDim / (lc.ropeDim - 2)));
    }
    case "streaming":
      return yield* streaming(model, wholePrompt(req), o, hooks);
  }
}

/**
 * StreamingLLM: the first 4 tokens stay as attention sinks, then a window of the most recent
 * tokens; positions are those inside the cache, so when old rows leave, the rest shift down
 * (their keys are re-rotated). Prefill runs in steps so the cache never exceeds the window.
 */
function* streaming(model: Engine, prompt: number[], o: ParallelCompOptions, hooks: RunHooks): Generator<void, ParallelCompResult> {
  const layers = layerAccess(model, "StreamingLLM (it re-rotates cached keys)");
  const c = layers.config;
  const SINKS = 4;
  const STEP = 256;
  const capacity = c.nCtxTrain - o.maxTokens; // rows held before the answer
  if (capacity < SINKS + STEP) throw new UsageError(`window ${c.nCtxTrain} too small for streaming with ${o.maxTokens} answer tokens`);
  const cache = layers.cache(model.newCache({ nSeqMax: 1, capacity }));
  const t0 = now();
  let rows = 0;
  const makeRoom = (n: number) => {
    const excess = rows + n - capacity;
    if (excess <= 0) return;
    cache.seqRemove(0, SINKS, SINKS + excess);
    cache.seqShift(0, SINKS + excess, Infinity, -excess, layers.rotateKey);
    rows -= excess;
  };
  // Everything but the query's last token; that one is the prefill of the answer.
  const body = prompt.slice(0, -1);
  for (let i = 0; i < body.length; i += STEP) {
    if (hooks.signal?.aborted) throw abortError(hooks.signal);
    const step = body.slice(i, i + STEP);
    makeRoom(step.length);
    model.forward(cache, sequenceBatch(step, { pos0: rows, logits: "none" }));
    rows += step.length;
    hooks.onProgress?.({ chunksDone: Math.ceil((i + step.length) / STEP), chunks: Math.ceil(body.length / STEP), tokensDone: i + step.length, tokens: body.length });
    yield;
  }
  makeRoom(1);
  const t1 = now();
  const g = yield* generateSteps(model, prompt.slice(-1), {
    ...hooks.sampler, maxTokens: o.maxTokens, cache, pos0: rows, stopTokens: hooks.stopTokens, onToken: hooks.onToken, signal: hooks.signal,
  });
  return {
    tokens: g.tokens, nChunks: 1, chunkTokens: capacity, kept: [], scores: [], spans: [],
    prefillSeconds: t1 - t0 + g.prefillSeconds, decodeSeconds: g.decodeSeconds,
    peakCacheBytes: cache.bytes(), keptKvBytes: cache.usedBytes(), evictedByCalibration: 0,
  };
}
