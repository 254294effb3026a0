// OpenAI-compatible request bodies -> what the engine runs. Every field is checked here, and a bad
// one becomes a 400 whose message names it (OpenAI's `{ error: { message, type, param } }`).
//
// The rule for long prompts (documented in the README): when the prompt does not fit the model's
// window, the last paragraph of the last user message (after its last blank line) is the
// question, and everything before it is the context that ParallelComp reads in chunks; system
// messages become the instruction. `parallelcomp: { context, question, instruction,
// answer_prefix, method, preset, keep_chunks, chunk_tokens, parallel }` in the body overrides the
// split and the method's options (`top_k` there is the deprecated old name of `keep_chunks`: the
// body's own `top_k` is the sampler's); `parse_special: true` lets control-token text in the request (`</s>`)
// be read as control tokens (by default it stays text).

import type { ChatMessage } from "../tokenizer/chat.js";
import type { AskOptions, AskRequest } from "../api.js";
import { METHODS, type Method } from "../method/baselines.js";
import { ANSWER_TOKENS, PRESETS, renamed } from "../method/options.js";
import type { SamplerOptions } from "../generate/sampler.js";

export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly type = "invalid_request_error", readonly param: string | null = null) {
    super(message);
  }
}

const bad = (param: string, message: string) => new HttpError(400, message, "invalid_request_error", param);

/** What one request asks for, in the engine's terms. */
export interface Job {
  kind: "chat" | "completion";
  stream: boolean;
  includeUsage: boolean;
  maxTokens: number;
  sampling: SamplerOptions;
  stop: string[];
  /** The conversation as given (chat), or the prompt as one user message (completion). */
  messages: ChatMessage[];
  prompt: string | null; // completions: the raw prompt
  /** Split and options from the `parallelcomp` field, if any. */
  override: Partial<AskRequest> & Pick<AskOptions, "method" | "preset" | "keepChunks" | "chunkTokens" | "maxParallelChunks" | "lowMemory" | "keepWithin">;
  forceSplit: boolean; // the override asked for ParallelComp even if the prompt fits
}

export const LIMITS = {
  maxTokens: 4096,
  maxStop: 4,
  maxMessages: 1024,
};

type Body = Record<string, unknown>;

/** A number field from lo to hi; `alsoAllowed` names what else the caller takes (for the message). */
function num(b: Body, key: string, lo: number, hi: number, integer: boolean, alsoAllowed = ""): number | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < lo || v > hi) {
    throw bad(key, `'${key}' must be ${integer ? "an integer" : "a number"} from ${lo} to ${hi}${alsoAllowed}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function str(b: Body, key: string, where = ""): string | undefined {
  const v = b[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw bad(where + key, `'${where}${key}' must be a string`);
  return v;
}

function bool(b: Body, key: string): boolean {
  const v = b[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw bad(key, `'${key}' must be true or false`);
  return v;
}

/** Message content: a string, or OpenAI's array of parts of which only text parts are accepted. */
function content(v: unknown, i: number): string {
  if (typeof v === "string") return v;
  if (Array.isArray(v)) {
    return v.map((p, j) => {
      if (p && typeof p === "object" && (p as Body).type === "text" && typeof (p as Body).text === "string") return (p as Body).text as string;
      throw bad(`messages[${i}].content[${j}]`, `'messages[${i}].content[${j}]' must be a text part ({ "type": "text", "text": "..." }); other kinds are not supported`);
    }).join("");
  }
  throw bad(`messages[${i}].content`, `'messages[${i}].content' must be a string or an array of text parts`);
}

export function parseBody(raw: string): Body {
  let b: unknown;
  try {
    b = JSON.parse(raw);
  } catch (e) {
    throw new HttpError(400, `the request body is not valid JSON: ${(e as Error).message}`);
  }
  if (!b || typeof b !== "object" || Array.isArray(b)) throw new HttpError(400, "the request body must be a JSON object");
  return b as Body;
}

export function parseJob(kind: "chat" | "completion", b: Body): Job {
  let messages: ChatMessage[];
  let prompt: string | null = null;
  if (kind === "chat") {
    const m = b.messages;
    if (!Array.isArray(m) || m.length === 0) throw bad("messages", "'messages' is required: a non-empty array of { role, content }");
    if (m.length > LIMITS.maxMessages) throw bad("messages", `'messages' holds at most ${LIMITS.maxMessages} messages, got ${m.length}`);
    messages = m.map((x, i) => {
      if (!x || typeof x !== "object") throw bad(`messages[${i}]`, `'messages[${i}]' must be an object { role, content }`);
      const role = (x as Body).role;
      if (role !== "system" && role !== "user" && role !== "assistant" && role !== "developer") {
        throw bad(`messages[${i}].role`, `'messages[${i}].role' must be system, developer, user or assistant, got ${JSON.stringify(role)}`);
      }
      return { role: role === "developer" ? "system" : role, content: content((x as Body).content, i) };
    });
    if (!messages.some((x) => x.role === "user")) throw bad("messages", "'messages' needs at least one user message");
  } else {
    const p = b.prompt;
    if (Array.isArray(p) && p.length === 1 && typeof p[0] === "string") prompt = p[0];
    else if (typeof p === "string") prompt = p;
    else throw bad("prompt", "'prompt' is required: a string (or an array of one string)");
    if (prompt.length === 0) throw bad("prompt", "'prompt' is empty");
    messages = [{ role: "user", content: prompt }];
  }
  num(b, "n", 1, 1, true); // one choice per request
  const maxTokens = num(b, "max_completion_tokens", 1, LIMITS.maxTokens, true) ?? num(b, "max_tokens", 1, LIMITS.maxTokens, true) ?? ANSWER_TOKENS;
  const sampling: SamplerOptions = {
    temperature: num(b, "temperature", 0, 2, false) ?? 0,
    topP: num(b, "top_p", Number.MIN_VALUE, 1, false),
    topK: num(b, "top_k", 0, 100000, true),
    seed: num(b, "seed", -(2 ** 53), 2 ** 53, true),
  };
  let stop: string[] = [];
  if (typeof b.stop === "string") stop = [b.stop];
  else if (Array.isArray(b.stop)) {
    if (b.stop.length > LIMITS.maxStop || !b.stop.every((s) => typeof s === "string" && s.length > 0)) throw bad("stop", `'stop' must be a string or up to ${LIMITS.maxStop} non-empty strings`);
    stop = b.stop as string[];
  } else if (b.stop !== undefined && b.stop !== null) throw bad("stop", "'stop' must be a string or an array of strings");
  const stream = bool(b, "stream");
  const so = b.stream_options;
  if (so !== undefined && so !== null && (typeof so !== "object" || Array.isArray(so))) throw bad("stream_options", "'stream_options' must be an object");
  const includeUsage = !!so && (so as Body).include_usage === true;

  const override: Job["override"] = {};
  let forceSplit = false;
  const pc = b.parallelcomp;
  if (pc !== undefined && pc !== null) {
    if (typeof pc !== "object" || Array.isArray(pc)) throw bad("parallelcomp", "'parallelcomp' must be an object");
    const o = pc as Body;
    const known = new Set(["context", "question", "instruction", "answer_prefix", "method", "preset", "keep_chunks", "top_k", "chunk_tokens", "parallel", "low_memory", "keep_within", "parse_special"]);
    for (const k of Object.keys(o)) if (!known.has(k)) throw bad(`parallelcomp.${k}`, `unknown field 'parallelcomp.${k}' (known: ${[...known].join(", ")})`);
    const w = "parallelcomp.";
    override.context = str(o, "context", w);
    override.question = str(o, "question", w);
    override.instruction = str(o, "instruction", w);
    override.answerPrefix = str(o, "answer_prefix", w);
    const method = str(o, "method", w);
    if (method !== undefined && !(METHODS as readonly string[]).includes(method)) throw bad("parallelcomp.method", `'parallelcomp.method' must be one of ${METHODS.join(", ")}, got "${method}"`);
    override.method = method as Method | undefined;
    const preset = str(o, "preset", w);
    if (preset !== undefined && !(preset in PRESETS)) throw bad("parallelcomp.preset", `'parallelcomp.preset' must be one of ${Object.keys(PRESETS).join(", ")}, got "${preset}"`);
    override.preset = preset;
    override.keepChunks = renamed(num(o, "keep_chunks", 1, 4096, true), num(o, "top_k", 1, 4096, true), "'parallelcomp.keep_chunks'", "'parallelcomp.top_k'", (m) => bad("parallelcomp.keep_chunks", m));
    override.chunkTokens = num(o, "chunk_tokens", 16, 1 << 20, true);
    override.maxParallelChunks = num(o, "parallel", 1, 256, true);
    if (o.low_memory !== undefined && typeof o.low_memory !== "boolean") throw bad("parallelcomp.low_memory", "'parallelcomp.low_memory' must be true or false");
    override.lowMemory = o.low_memory as boolean | undefined;
    override.keepWithin = o.keep_within === "all" ? null : num(o, "keep_within", 0, 1000, false, ' or "all"');
    if (o.parse_special !== undefined && typeof o.parse_special !== "boolean") throw bad("parallelcomp.parse_special", "'parallelcomp.parse_special' must be true or false");
    override.parseSpecial = o.parse_special === true;
    forceSplit = Object.keys(o).some((k) => k !== "parse_special");
  }
  return { kind, stream, includeUsage, maxTokens, sampling, stop, messages, prompt, override, forceSplit };
}

/** The longest paragraph ending in "?" that joins a last paragraph asking nothing (see below). */
export const QUESTION_JOIN_CHARS = 300;

/**
 * The long-prompt split: system messages -> instruction; the last user message's last paragraph
 * -> question; everything else before it (earlier messages and paragraphs) -> context. When the
 * last paragraph asks nothing (no "?") and the one before it is a short question (ends in "?", at
 * most QUESTION_JOIN_CHARS characters), both are the question: "What is the pass key?\n\nThe pass
 * key is" (InfiniteBench's published input), "Who wrote it?\n\nAnswer in one word." Otherwise the
 * question would sit in the document's last chunk, where it makes that chunk predict the question
 * best whatever it holds.
 */
export function splitConversation(messages: ChatMessage[]): AskRequest {
  const lastUser = messages.map((m) => m.role).lastIndexOf("user");
  const instruction = messages.filter((m) => m.role === "system").map((m) => m.content).join("\n\n");
  const before = messages.slice(0, lastUser).filter((m) => m.role !== "system").map((m) => m.content);
  let text = messages[lastUser].content.replace(/\s+$/, "");
  const lastBlank = (s: string) => s.search(/\n[ \t]*\n(?![\s\S]*\n[ \t]*\n)/);
  const cut = lastBlank(text);
  if (cut < 0) return { instruction, context: before.join("\n\n"), question: text };
  let question = text.slice(cut).trim();
  text = text.slice(0, cut);
  const cut2 = question.includes("?") ? -1 : lastBlank(text); // a paragraph before, if it may join
  const previous = cut2 < 0 ? "" : text.slice(cut2).trim();
  if (previous.endsWith("?") && previous.length <= QUESTION_JOIN_CHARS) {
    question = `${previous}\n\n${question}`;
    text = text.slice(0, cut2);
  }
  before.push(text);
  return { instruction, context: before.join("\n\n"), question };
}
