// The library's question-answering entry: `ask` (a promise of the whole result) and `askStream`
// (an async iterator of the answer's text as it is generated). Both run the engine in steps and
// return to the event loop between batches of chunks and between tokens, so an AbortSignal,
// a server's sockets and timers are served while a long document is read.

import type { Engine } from "./engine/engine.js";
import { METHODS, runMethodAsync, type Method } from "./method/baselines.js";
import { PRESETS, resolveOptions, type OptionOverrides, type ParallelCompOptions } from "./method/options.js";
import type { Progress } from "./method/parallelcomp.js";
import { boundaryOf, tokenizeRequest, type TextRequest } from "./method/request.js";
import { validateSampler, type SamplerOptions } from "./generate/sampler.js";
import { UsageError } from "./errors.js";

export type AskRequest = TextRequest;

export interface AskOptions extends OptionOverrides {
  /** `parallelcomp` (default) or a baseline: full, truncate, pcw, streaming, ntk. */
  method?: Method;
  /** Named options: default (keepChunks 3), retrieval (keepChunks 2), compress, calibrate. */
  preset?: string;
  /** Sampling; greedy when absent or temperature 0. */
  sampling?: SamplerOptions;
  /** Stops the run at the next batch of chunks or token; `ask` then rejects with the signal's reason. */
  signal?: AbortSignal;
  onProgress?: (p: Progress) => void;
  /** Called once the request is tokenized, with its token count (BOS, header, context, query). */
  onTokenized?: (promptTokens: number) => void;
  /** Every piece of answer text as it is decoded (UTF-8 safe: never half a character). */
  onText?: (text: string) => void;
}

export interface AskChunk {
  index: number;
  start: number; // first context token
  end: number; // exclusive
  score: number; // mean query NLL given the chunk (nats; lower = more relevant)
  kept: boolean;
}

export interface AskResult {
  answer: string;
  tokens: number[];
  method: Method;
  contextTokens: number;
  /** Every token of the request: BOS, header (instruction), context and query. */
  promptTokens: number;
  stoppedBy: "stop" | "length";
  nChunks: number;
  keptChunks: Array<{ index: number; score: number; tokens: number; start: number; end: number }>;
  /** Every chunk in document order (ParallelComp and pcw; empty for single-sequence baselines). */
  chunks: AskChunk[];
  timings: { tokenizeSeconds: number; prefillSeconds: number; decodeSeconds: number };
  peakRssBytes: number;
  /** The engine that ran it: "native" or "llama.cpp", and its device (cpu, cuda, vulkan, metal). */
  backend: { name: string; device: string };
}

/** Checks the options before any work: one error naming the first bad field. */
function resolve(o: AskOptions): { method: Method; options: ParallelCompOptions } {
  const method = o.method ?? "parallelcomp";
  if (!(METHODS as readonly string[]).includes(method)) throw new UsageError(`unknown method "${method}" (known: ${METHODS.join(", ")})`);
  if (o.preset !== undefined && !(o.preset in PRESETS)) throw new UsageError(`unknown preset "${o.preset}" (known: ${Object.keys(PRESETS).join(", ")})`);
  const { method: _m, preset, sampling, signal: _s, onProgress: _p, onText: _t, onTokenized: _k, ...overrides } = o;
  if (sampling) validateSampler(sampling);
  return { method, options: resolveOptions(preset, overrides) };
}

/** Answers a question over a document of any length. */
export async function ask(model: Engine, request: AskRequest, options: AskOptions = {}): Promise<AskResult> {
  const { method, options: opts } = resolve(options);
  options.signal?.throwIfAborted();
  const t0 = performance.now();
  const tok = model.tokenizer;
  const req = tokenizeRequest(tok, model.gguf, request);
  const tokenizeSeconds = (performance.now() - t0) / 1000;
  const promptTokens = (req.bos === null ? 0 : 1) + req.header.length + req.context.length + req.query.length;
  options.onTokenized?.(promptTokens);
  const text = options.onText ? tok.streamDecoder({ skipSpecial: true }) : null;
  const r = await runMethodAsync(method, model, req, opts, {
    boundary: boundaryOf(tok),
    stopTokens: tok.eogTokens,
    sampler: options.sampling,
    signal: options.signal,
    onProgress: options.onProgress,
    onToken: text ? (t) => { const s = text.push(t); if (s) options.onText!(s); } : undefined,
  });
  if (text) { const rest = text.flush(); if (rest) options.onText!(rest); }
  const keptIndex = new Set(r.kept.map((k) => k.index));
  return {
    answer: tok.decode(r.tokens, { skipSpecial: true }),
    tokens: r.tokens,
    method,
    contextTokens: req.context.length,
    promptTokens,
    stoppedBy: r.tokens.length >= opts.maxTokens ? "length" : "stop",
    nChunks: r.nChunks,
    keptChunks: r.kept.map((k) => ({ index: k.index, score: k.score, tokens: k.tokens, start: k.start, end: k.end })),
    chunks: r.spans.map((s, i) => ({ index: i, start: s.start, end: s.end, score: r.scores[i], kept: keptIndex.has(i) })),
    timings: { tokenizeSeconds, prefillSeconds: r.prefillSeconds, decodeSeconds: r.decodeSeconds },
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    backend: { name: model.backend.name, device: model.backend.device },
  };
}

/** The answer's text as an async iterator, and the whole result when it ends. */
export interface AskStream extends AsyncIterable<string> {
  readonly result: Promise<AskResult>;
}

/**
 * Like `ask`, but yields the answer's text as it is generated. Leaving the loop early (break,
 * return, an exception) stops the run.
 */
export function askStream(model: Engine, request: AskRequest, options: AskOptions = {}): AskStream {
  const queue: string[] = [];
  let wake: (() => void) | null = null;
  let finished = false;
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const result = ask(model, request, {
    ...options,
    signal,
    onText: (s) => { options.onText?.(s); queue.push(s); wake?.(); },
  }).finally(() => { finished = true; wake?.(); });
  result.catch(() => {}); // the iterator (or the caller's await of .result) reports it
  return {
    result,
    async *[Symbol.asyncIterator]() {
      try {
        for (;;) {
          while (queue.length > 0) yield queue.shift()!;
          if (finished) break;
          await new Promise<void>((r) => { wake = r; });
          wake = null;
        }
        await result; // rethrows the run's error
      } finally {
        if (!finished) stop.abort(new Error("the answer's reader stopped"));
      }
    },
  };
}
