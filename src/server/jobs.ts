// The engine side of a server request: a checked job (requests.ts) -> answer text as it is
// decoded, then the counts. It runs where the engine lives: in the server's worker thread
// (worker.ts), or in the caller's thread when `startServer` is given a loaded engine. Limits that
// need the model (tokens, KV memory) are checked here, before any work.

import type { Engine } from "../engine/engine.js";
import { UsageError } from "../errors.js";
import { ask } from "../api.js";
import { encodeChat } from "../tokenizer/chat.js";
import { drainAsync, generateSteps } from "../generate/generate.js";
import { resolveOptions } from "../method/options.js";
import { heldChunks } from "../method/parallelcomp.js";
import { splitConversation, type Job } from "./requests.js";

/** Limits on what one request may ask of the engine; the README's server section states them. */
export interface JobLimits {
  /** full, ntk and pcw cost grows with the square of the input: refused above this many tokens. */
  quadraticTokens: number;
  /** KV cache the chunks in flight and kept may take, in MiB (`parallel` + `keep_chunks` windows). */
  maxKvMiB: number;
}

export const DEFAULT_JOB_LIMITS: JobLimits = { quadraticTokens: 32768, maxKvMiB: 4096 };

export interface JobOutcome {
  promptTokens: number;
  completionTokens: number;
  finish: "stop" | "length";
  details: Record<string, unknown>;
}

export interface JobHandlers {
  onText(s: string): void;
}

const QUADRATIC = new Set(["full", "ntk", "pcw"]);

class Stopped extends Error {} // a stop string was produced: end the run, keep the text

/**
 * Runs one job on `model`: answer text goes to `h.onText` as it is decoded, held back while it
 * might be the start of a stop string; a stop string ends the run there. `signal` stops it between
 * steps (a batch of chunks, a prefill piece, a token) with its reason.
 */
export async function runJob(model: Engine, job: Job, limits: JobLimits, h: JobHandlers, signal: AbortSignal): Promise<JobOutcome> {
  const scanner = new StopScanner(job.stop);
  const local = new AbortController();
  const both = AbortSignal.any([signal, local.signal]);
  let text = "";
  const onText = (s: string) => {
    const r = scanner.push(s);
    if (r.out) { text += r.out; h.onText(r.out); }
    if (r.stopped) local.abort(new Stopped());
  };
  let promptTokens = 0; // known once tokenized; a stop string keeps it
  try {
    const out = await run(model, job, limits, onText, both, (n) => { promptTokens = n; });
    const rest = scanner.flush();
    if (rest) h.onText(rest);
    return out;
  } catch (e) {
    if (!(e instanceof Stopped)) throw e;
    return { promptTokens, completionTokens: countTokens(model, text), finish: "stop", details: {} };
  }
}

async function run(model: Engine, job: Job, limits: JobLimits, onText: (s: string) => void, signal: AbortSignal, onPrompt: (n: number) => void): Promise<JobOutcome> {
  const ids = directPrompt(model, job);
  if (ids !== null) {
    const tok = model.tokenizer;
    onPrompt(ids.length);
    const decoder = tok.streamDecoder({ skipSpecial: true });
    const g = await drainAsync(generateSteps(model, ids, {
      ...job.sampling, maxTokens: job.maxTokens, stopTokens: tok.eogTokens, signal,
      onToken: (t) => onText(decoder.push(t)),
    }), signal);
    onText(decoder.flush());
    return { promptTokens: ids.length, completionTokens: g.tokens.length, finish: g.stoppedBy === "length" ? "length" : "stop", details: {} };
  }
  const split = { ...splitConversation(job.messages), ...definedOnly(job.override) };
  const method = job.override.method ?? "parallelcomp";
  const r = await ask(model, { context: split.context ?? "", question: split.question ?? "", instruction: split.instruction, answerPrefix: split.answerPrefix, parseSpecial: job.override.parseSpecial }, {
    method: job.override.method, preset: job.override.preset, keepChunks: job.override.keepChunks, chunkTokens: job.override.chunkTokens,
    maxParallelChunks: job.override.maxParallelChunks, lowMemory: job.override.lowMemory, keepWithin: job.override.keepWithin, maxTokens: job.maxTokens, sampling: job.sampling, signal, onText,
    onTokenized: (n) => {
      onPrompt(n);
      checkKv(model, job, limits, n);
      if (QUADRATIC.has(method) && n > limits.quadraticTokens) {
        throw new UsageError(`method "${method}" over ${n} tokens: its cost grows with the square of the length, and this server takes it up to ${limits.quadraticTokens} tokens; use "parallelcomp" (the default) or "truncate"`);
      }
    },
  });
  return {
    promptTokens: r.promptTokens, completionTokens: r.tokens.length, finish: r.stoppedBy,
    details: { method: r.method, nChunks: r.nChunks, keptChunks: r.keptChunks, timings: r.timings, backend: r.backend },
  };
}

/**
 * The KV cache a request will hold must fit --max-kv-mib: `parallel` chunks in flight plus
 * `keep_chunks` kept (one less with `low_memory`), each a chunk (at most the trained window, or `chunk_tokens`), no more chunks than the
 * document has.
 */
function checkKv(model: Engine, job: Job, limits: JobLimits, promptTokens: number): void {
  const o = resolveOptions(job.override.preset, { keepChunks: job.override.keepChunks, maxParallelChunks: job.override.maxParallelChunks, lowMemory: job.override.lowMemory });
  const chunk = Math.min(job.override.chunkTokens ?? model.config.nCtxTrain, promptTokens);
  const held = Math.min(heldChunks(o), Math.ceil(promptTokens / chunk));
  const mib = (held * chunk * model.config.kvBytesPerToken) / 2 ** 20;
  if (mib > limits.maxKvMiB) {
    throw new UsageError(`parallel ${o.maxParallelChunks} + keep_chunks ${o.keepChunks}${o.lowMemory ? " - 1 (low_memory)" : ""} chunks of up to ${chunk} tokens need up to ${Math.ceil(mib)} MiB of KV cache; this server allows ${limits.maxKvMiB} MiB (--max-kv-mib): ask for fewer`);
  }
}

/**
 * The prompt to generate from directly, when it fits the window with the answer and no
 * override asks for ParallelComp: a chat rendered with the model's template (models without one
 * take the split, which is the layout such a model was trained on), or a completion's prompt.
 * Control-token text in the user's messages stays text unless `parse_special` asked otherwise.
 */
function directPrompt(model: Engine, job: Job): number[] | null {
  if (job.forceSplit) return null;
  const tok = model.tokenizer;
  const special = job.override.parseSpecial ?? false;
  const chars = job.kind === "completion" ? job.prompt!.length : job.messages.reduce((a, m) => a + m.content.length, 0);
  // A prompt far past the window is not tokenized whole just to learn that (no token is 256 characters).
  if (chars > 256 * model.config.nCtxTrain) return null;
  let ids: number[];
  if (job.kind === "completion") ids = tok.encode(job.prompt!, { addBos: tok.addBos, parseSpecial: special });
  else if (model.gguf.has("tokenizer.chat_template")) {
    ids = encodeChat(tok, model.gguf, job.messages, { addGenerationPrompt: true, parseSpecialUser: special });
    if (tok.addBos && tok.bos !== null && ids[0] !== tok.bos) ids.unshift(tok.bos);
  } else return null;
  return ids.length + job.maxTokens <= model.config.nCtxTrain ? ids : null;
}

function countTokens(model: Engine, s: string): number {
  return model.tokenizer.encode(s, { addBos: false, parseSpecial: false }).length;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Holds back text that might be the start of a stop string; reports the cut when one appears. */
export class StopScanner {
  private held = "";
  constructor(private readonly stops: string[]) {}

  /** Text safe to emit now, and whether a stop string ended the answer. */
  push(text: string): { out: string; stopped: boolean } {
    this.held += text;
    if (this.stops.length === 0) { const out = this.held; this.held = ""; return { out, stopped: false }; }
    let cut = -1;
    for (const s of this.stops) {
      const i = this.held.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) { const out = this.held.slice(0, cut); this.held = ""; return { out, stopped: true }; }
    const keep = Math.max(0, ...this.stops.map((s) => s.length - 1));
    const out = this.held.slice(0, Math.max(0, this.held.length - keep));
    this.held = this.held.slice(out.length);
    return { out, stopped: false };
  }

  flush(): string { const out = this.held; this.held = ""; return out; }
}
