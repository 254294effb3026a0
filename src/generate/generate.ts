// Generation: prefill the prompt as one batch, then decode one token at a time (a batch of one).
// Prefill and decode speed are measured separately.

import { sequenceBatch } from "../engine/batch.js";
import type { Engine, SeqCache } from "../engine/engine.js";
import type { ForwardOptions } from "../model/forward.js";
import { Sampler, type SamplerOptions } from "./sampler.js";
import { UsageError } from "../errors.js";

export interface GenerateOptions extends SamplerOptions {
  maxTokens?: number; // default 64
  stopTokens?: Iterable<number>; // generation ends after emitting one of these (not included)
  cache?: SeqCache; // default: a fresh cache (freed at the end)
  seq?: number;
  /** First position of the prompt (default: after the sequence's last cached row). */
  pos0?: number;
  /** Options for every forward pass (a RoPE base, say). */
  forward?: ForwardOptions;
  /** Options added for the prompt's forward pass (an attention observer, say). */
  prefill?: ForwardOptions;
  onToken?: (token: number) => void;
  signal?: AbortSignal;
}

export interface GenerateResult {
  tokens: number[]; // generated ids (stop token excluded)
  promptTokens: number;
  stoppedBy: "stop" | "length" | "abort";
  prefillSeconds: number;
  decodeSeconds: number;
  prefillTokensPerSecond: number;
  decodeTokensPerSecond: number;
}

const now = () => performance.now() / 1000;

/** Prompt tokens per forward call: the native engine's step and llama.cpp's ubatch, so steps change no result. */
export const PREFILL_STEP_TOKENS = 512;

/** Generation run to the end at once. */
export function generate(model: Engine, prompt: ArrayLike<number>, o: GenerateOptions = {}): GenerateResult {
  return drain(generateSteps(model, prompt, o));
}

/**
 * Generation as steps: it yields after the prefill and after every token, so an async driver
 * (`drainAsync`) can let other work (a server's sockets, a cancellation) in between.
 */
export function* generateSteps(model: Engine, prompt: ArrayLike<number>, o: GenerateOptions = {}): Generator<void, GenerateResult> {
  if (prompt.length === 0) throw new UsageError("the prompt is empty: give at least one token");
  const maxTokens = o.maxTokens ?? 64;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new UsageError(`maxTokens must be an integer >= 0, got ${maxTokens}`);
  const sampler = new Sampler(o);
  const stop = new Set(o.stopTokens ?? []);
  const seq = o.seq ?? 0;
  const cache = o.cache ?? model.newCache({ capacity: prompt.length + maxTokens });
  try {
    return yield* decodeSteps(model, cache, prompt, maxTokens, seq, sampler, stop, o);
  } finally {
    if (!o.cache) cache.free();
  }
}

function* decodeSteps(model: Engine, cache: SeqCache, prompt: ArrayLike<number>, maxTokens: number, seq: number, sampler: Sampler, stop: Set<number>, o: GenerateOptions): Generator<void, GenerateResult> {
  const t0 = now();
  let pos = o.pos0 ?? cache.seqPosMax(seq) + 1;
  // The prompt in pieces, with a step between them, so a long prefill can be stopped; an
  // observer that needs the whole prompt at once (calibration) gets it in one.
  const stepTokens = o.prefill?.oneStep ? prompt.length : PREFILL_STEP_TOKENS;
  let logits: Float32Array = new Float32Array(0);
  for (let i = 0; i < prompt.length; i += stepTokens) {
    const last = i + stepTokens >= prompt.length;
    const part = Array.prototype.slice.call(prompt, i, i + stepTokens) as number[];
    logits = model.forward(cache, sequenceBatch(part, { seq, pos0: pos + i, logits: last ? "last" : "none" }), { ...o.forward, ...o.prefill });
    if (!last) {
      yield;
      if (o.signal?.aborted) throw abortError(o.signal);
    }
  }
  pos += prompt.length;
  const t1 = now();
  yield;

  const tokens: number[] = [];
  let stoppedBy: GenerateResult["stoppedBy"] = "length";
  while (tokens.length < maxTokens) {
    if (o.signal?.aborted) { stoppedBy = "abort"; break; }
    const next = sampler.sample(logits);
    if (stop.has(next)) { stoppedBy = "stop"; break; }
    tokens.push(next);
    o.onToken?.(next);
    if (tokens.length === maxTokens) break;
    logits = model.forward(cache, sequenceBatch([next], { seq, pos0: pos++ }), o.forward);
    yield;
  }
  const t2 = now();
  const decoded = Math.max(0, tokens.length - 1); // the first token comes from the prefill logits
  return {
    tokens,
    promptTokens: prompt.length,
    stoppedBy,
    prefillSeconds: t1 - t0,
    decodeSeconds: t2 - t1,
    prefillTokensPerSecond: prompt.length / (t1 - t0),
    decodeTokensPerSecond: decoded > 0 ? decoded / (t2 - t1) : 0,
  };
}

/** Runs a step generator to its end synchronously. */
export function drain<R>(steps: Generator<void, R>): R {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/**
 * Runs a step generator to its end, returning to the event loop between steps (so timers,
 * sockets and abort events are served); an aborted `signal` stops it with its reason.
 */
export async function drainAsync<R>(steps: Generator<void, R>, signal?: AbortSignal): Promise<R> {
  for (;;) {
    if (signal?.aborted) {
      steps.return(undefined as never);
      throw abortError(signal);
    }
    const r = steps.next();
    if (r.done) return r.value;
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** The error an aborted run ends with: the signal's reason if it is an Error, else an AbortError. */
export function abortError(signal: AbortSignal): Error {
  if (signal.reason instanceof Error) return signal.reason;
  const e = new Error("the request was aborted");
  e.name = "AbortError";
  return e;
}
