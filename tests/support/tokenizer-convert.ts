// Hugging Face tokenizer.json (+ tokenizer_config.json) -> GGUF tokenizer metadata, written with
// the project's GGUF writer the way llama.cpp's convert_hf_to_gguf.py lays it out, so the
// tokenizer under test reads exactly what it would read from a converted model:
// - byte-level BPE ("gpt2"): tokens as stored in tokenizer.json (byte-level spelling, "Ġhello"),
//   merges as "a b" strings, added tokens as their raw text;
// - SentencePiece-style BPE ("llama"): tokens with "▁", <0xXX> byte tokens typed BYTE, and
//   scores that fall with the id (a SentencePiece BPE model's piece order is its merge order;
//   tokenizer.json keeps the order but not the scores).
// Token types: added special tokens, and added tokens that look special ("<|...|>"), are
// CONTROL; other added tokens USER_DEFINED; ids with no token "[PAD<id>]" UNUSED.

import { kv, writeGguf } from "../../src/gguf/writer.js";
import type { GgufKv } from "../../src/gguf/format.js";

export interface HfTokenizerJson {
  model: { type: string; vocab: Record<string, number>; merges?: Array<string | [string, string]> };
  added_tokens?: Array<{ id: number; content: string; special: boolean }>;
}

export interface HfTokenizerConfig {
  bos_token?: string | { content: string } | null;
  eos_token?: string | { content: string } | null;
  add_bos_token?: boolean;
  chat_template?: string;
}

export interface ConvertOptions {
  /** "gpt2" for byte-level BPE, "llama" for SentencePiece-style vocabularies. */
  model: "gpt2" | "llama";
  /** tokenizer.ggml.pre, e.g. "qwen2" or "llama-bpe" (byte-level BPE only). */
  pre?: string;
  name: string;
  architecture?: string;
}

const T = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 };

function looksSpecial(t: string): boolean {
  return ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].includes(t) || (t.startsWith("<|") && t.endsWith("|>")) ||
    (t.startsWith("<｜") && t.endsWith("｜>")) || (t.startsWith("<unused") && t.endsWith(">"));
}

function tokenContent(t: HfTokenizerConfig["bos_token"]): string | undefined {
  if (t === null || t === undefined) return undefined;
  return typeof t === "string" ? t : t.content;
}

export function hfToGgufMetadata(json: HfTokenizerJson, config: HfTokenizerConfig, opts: ConvertOptions): Array<[string, GgufKv]> {
  const byId = new Map<number, string>();
  for (const [text, id] of Object.entries(json.model.vocab)) byId.set(id, text);
  const added = new Map<number, { content: string; special: boolean }>();
  for (const a of json.added_tokens ?? []) {
    added.set(a.id, a);
    byId.set(a.id, a.content);
  }
  let n = 0;
  for (const id of byId.keys()) n = Math.max(n, id + 1);
  const tokens: string[] = [];
  const types: number[] = [];
  const scores: number[] = [];
  for (let id = 0; id < n; id++) {
    const text = byId.get(id);
    const a = added.get(id);
    scores.push(opts.model === "llama" ? -id : 0);
    if (text === undefined) {
      tokens.push(`[PAD${id}]`);
      types.push(T.UNUSED);
    } else if (a && (a.special || looksSpecial(a.content))) {
      tokens.push(text);
      types.push(opts.model === "llama" && text === "<unk>" ? T.UNKNOWN : T.CONTROL);
      scores[id] = 0;
    } else if (a) {
      tokens.push(opts.model === "llama" ? text.replaceAll("▁", " ") : text);
      types.push(T.USER_DEFINED);
      scores[id] = 0;
    } else {
      tokens.push(text);
      types.push(opts.model === "llama" && /^<0x[0-9A-F]{2}>$/.test(text) ? T.BYTE : T.NORMAL);
    }
  }
  const idOf = (t: HfTokenizerConfig["bos_token"]) => {
    const c = tokenContent(t);
    const id = c === undefined ? -1 : tokens.lastIndexOf(c);
    return id >= 0 ? id : undefined;
  };
  const md: Array<[string, GgufKv]> = [
    ["general.architecture", kv.str(opts.architecture ?? "llama")],
    ["general.name", kv.str(opts.name)],
    ["tokenizer.ggml.model", kv.str(opts.model)],
  ];
  if (opts.pre !== undefined) md.push(["tokenizer.ggml.pre", kv.str(opts.pre)]);
  md.push(["tokenizer.ggml.tokens", kv.strings(tokens)]);
  if (opts.model === "llama") md.push(["tokenizer.ggml.scores", kv.f32s(scores)]);
  md.push(["tokenizer.ggml.token_type", kv.i32s(types)]);
  if (opts.model === "gpt2") {
    const merges = (json.model.merges ?? []).map((m) => (typeof m === "string" ? m : m.join(" ")));
    md.push(["tokenizer.ggml.merges", kv.strings(merges)]);
  }
  const bos = idOf(config.bos_token);
  const eos = idOf(config.eos_token);
  if (bos !== undefined) md.push(["tokenizer.ggml.bos_token_id", kv.u32(bos)]);
  if (eos !== undefined) md.push(["tokenizer.ggml.eos_token_id", kv.u32(eos)]);
  if (opts.model === "llama") {
    const unk = tokens.indexOf("<unk>");
    if (unk >= 0) md.push(["tokenizer.ggml.unknown_token_id", kv.u32(unk)]);
  }
  if (config.add_bos_token !== undefined) md.push(["tokenizer.ggml.add_bos_token", kv.bool(config.add_bos_token)]);
  if (config.chat_template) md.push(["tokenizer.chat_template", kv.str(config.chat_template)]);
  return md;
}

/** Writes a tensor-less GGUF holding only the tokenizer metadata. */
export function writeTokenizerGguf(file: string, json: HfTokenizerJson, config: HfTokenizerConfig, opts: ConvertOptions): void {
  writeGguf(file, hfToGgufMetadata(json, config, opts), []);
}
