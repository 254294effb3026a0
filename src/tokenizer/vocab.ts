// Vocabulary loading: everything the tokenizer needs from a GGUF file's `tokenizer.ggml.*`
// metadata, checked once here so the encoders can trust it. Defaults follow llama.cpp
// (llama-vocab.cpp), so a file loads the same way in both.

import * as path from "node:path";
import type { GgufFile } from "../gguf/reader.js";

/** `tokenizer.ggml.token_type` values (gguf-py's TokenType). */
export const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

export class TokenizerError extends Error {
  constructor(file: string, key: string | null, message: string) {
    super(`${path.basename(file)}: ${key ? `${key}: ` : ""}${message}`);
    this.name = "TokenizerError";
  }
}

export type VocabKind = "spm" | "bpe";

export interface Vocab {
  readonly file: string;
  readonly kind: VocabKind;
  /** `tokenizer.ggml.pre` as written ("" when absent). */
  readonly pre: string;
  readonly tokens: string[];
  readonly types: Uint8Array;
  readonly scores: Float32Array;
  /** text -> id; when two ids share a text the later one wins, as in llama.cpp. */
  readonly tokenToId: Map<string, number>;
  readonly merges: string[] | null;
  readonly bos: number | null;
  readonly eos: number | null;
  readonly unk: number | null;
  readonly eot: number | null;
  readonly eom: number | null;
  readonly addBos: boolean;
  readonly addEos: boolean;
  readonly addSpacePrefix: boolean;
  /** Per-token "strip whitespace on this side when matched in text" flags (bit 1 left, bit 2 right). */
  readonly strip: Uint8Array;
  readonly modelName: string;
  readonly warnings: string[];
}

export const STRIP_LEFT = 1;
export const STRIP_RIGHT = 2;

const K = "tokenizer.ggml.";

function stringArray(g: GgufFile, key: string, required: true): string[];
function stringArray(g: GgufFile, key: string, required: false): string[] | null;
function stringArray(g: GgufFile, key: string, required: boolean): string[] | null {
  const v = g.value(key);
  if (v === undefined) {
    if (required) throw new TokenizerError(g.file, key, "missing (the file has no tokenizer vocabulary)");
    return null;
  }
  if (!Array.isArray(v) || (v.length > 0 && typeof v[0] !== "string")) {
    throw new TokenizerError(g.file, key, "expected an array of strings");
  }
  return v as string[];
}

function numberArray(g: GgufFile, key: string, n: number): ArrayLike<number> | null {
  const v = g.value(key);
  if (v === undefined) return null;
  if (!ArrayBuffer.isView(v) || v instanceof BigInt64Array || v instanceof BigUint64Array || v instanceof DataView) {
    throw new TokenizerError(g.file, key, "expected an array of numbers");
  }
  const arr = v as unknown as ArrayLike<number>;
  if (arr.length < n) throw new TokenizerError(g.file, key, `has ${arr.length} entries for ${n} tokens`);
  return arr;
}

/** An optional token id: absent -> fallback; out of range -> fallback with a warning (llama.cpp does the same). */
function tokenId(g: GgufFile, key: string, n: number, fallback: number | null, warnings: string[]): number | null {
  if (!g.has(key)) return fallback !== null && fallback < n ? fallback : null;
  const id = g.number(key);
  if (!Number.isInteger(id) || id < 0 || id >= n) {
    warnings.push(`${key} = ${id} is outside the vocabulary (${n} tokens); ignored`);
    return fallback !== null && fallback < n ? fallback : null;
  }
  return id;
}

// Pre-tokenizers for which llama.cpp turns on add_bos by default.
const ADD_BOS_PRE = new Set(["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano", "chameleon"]);

// End-of-generation texts, as llama.cpp lists them (llama-vocab.cpp, special_eog_ids).
const EOG_TEXTS = new Set([
  "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
  "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
  "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~[",
]);
const EOT_TEXTS = ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"];
// Fill-in-the-middle markers (llama.cpp's FIM_PRE/SUF/MID lists): control tokens too.
const FIM_TEXTS = [
  "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>",
  "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>",
  "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>",
  "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>",
];
// FIM pad / repo / file-separator tokens also end generation in llama.cpp.
const FIM_EOG_TEXTS = ["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>"];

export function loadVocab(g: GgufFile): Vocab {
  const file = g.file;
  const warnings: string[] = [];
  const model = g.string(K + "model", "");
  if (model === "") throw new TokenizerError(file, K + "model", "missing (the file has no tokenizer)");
  let kind: VocabKind;
  if (model === "llama") kind = "spm";
  else if (model === "gpt2") kind = "bpe";
  else throw new TokenizerError(file, K + "model", `"${model}" is not supported (supported: "llama" (SentencePiece), "gpt2" (byte-level BPE))`);

  const tokens = stringArray(g, K + "tokens", true);
  const n = tokens.length;
  if (n === 0) throw new TokenizerError(file, K + "tokens", "is empty");
  const rawTypes = numberArray(g, K + "token_type", n);
  const rawScores = numberArray(g, K + "scores", n);
  const types = new Uint8Array(n);
  const scores = new Float32Array(n);
  const tokenToId = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    let t = tokens[i];
    if (t === "") {
      // llama.cpp renames empty tokens so they can never match text.
      t = `[EMPTY_${i}]`;
      tokens[i] = t;
      warnings.push(`token ${i} is empty`);
    }
    const seen = tokenToId.get(t);
    // llama.cpp stops at a duplicate too (its vocabulary load asserts one id per text); taking
    // either id would make the other unreachable and drop input silently.
    if (seen !== undefined) throw new TokenizerError(file, K + "tokens", `holds ${JSON.stringify(t.slice(0, 40))} twice (ids ${seen} and ${i}): a vocabulary needs one id per token`);
    tokenToId.set(t, i);
    const ty = rawTypes ? rawTypes[i] : TokenType.NORMAL;
    types[i] = ty >= 1 && ty <= 6 ? ty : 0; // 0: undefined type, treated as a control token
    scores[i] = rawScores ? rawScores[i] : 0;
  }

  let merges: string[] | null = null;
  const pre = g.string(K + "pre", "");
  if (kind === "bpe") {
    merges = stringArray(g, K + "merges", false);
    if (!merges) throw new TokenizerError(file, K + "merges", "missing: a byte-level BPE vocabulary needs its merge list");
  } else if (kind === "spm" && !rawScores) {
    throw new TokenizerError(file, K + "scores", "missing: a SentencePiece vocabulary needs token scores");
  }

  const spm = kind === "spm";
  const bos = tokenId(g, K + "bos_token_id", n, spm ? 1 : null, warnings);
  const eos = tokenId(g, K + "eos_token_id", n, spm ? 2 : null, warnings);
  const unk = tokenId(g, K + "unknown_token_id", n, spm ? 0 : null, warnings);
  let eot = tokenId(g, K + "eot_token_id", n, null, warnings);
  let eom = tokenId(g, K + "eom_token_id", n, null, warnings);
  if (eot === null) eot = firstByText(tokenToId, types, EOT_TEXTS);
  if (eom === null) eom = firstByText(tokenToId, types, ["<|eom_id|>"]);

  const addBos = g.boolean(K + "add_bos_token", spm || ADD_BOS_PRE.has(pre));
  const addEos = g.boolean(K + "add_eos_token", false);
  const addSpacePrefix = g.boolean(K + "add_space_prefix", spm);

  // End tokens that a converter typed user-defined become control tokens, as llama.cpp makes
  // them: no longer matched in text unless special tokens are parsed, hidden by skipSpecial.
  // (llama.cpp promotes normal tokens too, e.g. Qwen 3's plain-text "</s>"; we leave those
  // alone, as Hugging Face does, so such text still tokenizes as text.)
  const promote = (id: number | null | undefined) => {
    if (id !== null && id !== undefined && types[id] === TokenType.USER_DEFINED) types[id] = TokenType.CONTROL;
  };
  promote(eot);
  promote(eom);
  for (const t of EOG_TEXTS) promote(tokenToId.get(t));
  for (const t of FIM_TEXTS) promote(tokenToId.get(t));

  const modelName = g.string("general.name", "");
  const strip = new Uint8Array(n);
  // Phi-3's added tokens swallow the whitespace after them (its tokenizer.json says rstrip);
  // GGUF has no field for that, so llama.cpp recognises the model by name. We do the same.
  const lname = modelName.toLowerCase();
  if (lname.includes("phi-3") || lname.includes("phi3")) {
    for (let i = 0; i < n; i++) if (isSpecialType(types[i])) strip[i] |= STRIP_RIGHT;
    const s = tokenToId.get("</s>");
    if (s !== undefined) strip[s] |= STRIP_RIGHT;
    for (const t of ["<unk>", "<s>", "<|endoftext|>"]) {
      const id = tokenToId.get(t);
      if (id !== undefined) strip[id] &= ~STRIP_RIGHT;
    }
  }

  return { file, kind, pre, tokens, types, scores, tokenToId, merges, bos, eos, unk, eot, eom, addBos, addEos, addSpacePrefix, strip, modelName, warnings };
}

/** Tokens matched whole in text (before pre-tokenization): control, user-defined, unknown. */
export function isSpecialType(t: number): boolean {
  return t === TokenType.CONTROL || t === TokenType.USER_DEFINED || t === TokenType.UNKNOWN;
}

function firstByText(map: Map<string, number>, types: Uint8Array, texts: string[]): number | null {
  for (const t of texts) {
    const id = map.get(t);
    if (id !== undefined && types[id] !== TokenType.NORMAL) return id;
  }
  return null;
}

/** End-of-generation ids: eos, eot, eom, the known end texts and FIM pad/repo/separator tokens. */
export function eogTokens(v: Vocab): Set<number> {
  const out = new Set<number>();
  for (const id of [v.eos, v.eot, v.eom]) if (id !== null) out.add(id);
  for (const t of [...EOG_TEXTS, ...FIM_EOG_TEXTS]) {
    const id = v.tokenToId.get(t);
    if (id !== undefined && v.types[id] !== TokenType.NORMAL) out.add(id); // a normal token is just text
  }
  // gpt-oss / solar-open: "<|end|>" ends a message, not the generation, when these exist.
  const has = (t: string) => v.tokenToId.has(t);
  const end = v.tokenToId.get("<|end|>");
  if (end !== undefined && ((has("<|return|>") && has("<|call|>")) || (has("<|calls|>") && has("<|flush|>")))) out.delete(end);
  // Gemma 4: "</s>" is not an end token when "<|tool_response>" exists.
  const s = v.tokenToId.get("</s>");
  if (s !== undefined && has("<|tool_response>") && s !== v.eos) out.delete(s);
  return out;
}
