// The tokenizer of a GGUF model, built from its `tokenizer.ggml.*` metadata: SentencePiece
// ("llama": llama / mistral / phi-3 vocabularies) or byte-level BPE ("gpt2": GPT-2, Llama 3,
// Qwen, DeepSeek, ... with the pre-tokenizer named by `tokenizer.ggml.pre`).
//
// Encoding: special tokens are cut out of the text first (special.ts), then each text piece goes
// through the SentencePiece merge (spm.ts) or the pre-tokenizer and BPE (pretokenizers.ts,
// bpe.ts). Ids match llama.cpp's llama_tokenize() on its test vectors and Hugging Face
// tokenizers on a mixed corpus (see tests/tokenizer*.test.ts).
//
// Documented choices where input is odd:
// - A string with lone surrogates (not valid Unicode) has them replaced by U+FFFD first, as
//   TextEncoder does; bytes given as a Uint8Array must be valid UTF-8 or encode() throws,
//   naming the offset of the first bad byte.
// - Merges naming tokens the vocabulary lacks are skipped (listed in `warnings`); a missing
//   merge list or an unknown `tokenizer.ggml.pre` is an error naming the file and key, unless
//   loadTokenizer() is given a fallback pre-tokenizer.

import type { GgufFile } from "../gguf/reader.js";
import { BpeEncoder } from "./bpe.js";
import { ByteSink, PieceTable, newTextDecoder, streamDecoder, type StreamDecoder } from "./decoder.js";
import { PreTokenizer, SUPPORTED_PRE, preTokenizerSpec } from "./pretokenizers.js";
import { SpecialMatcher } from "./special.js";
import { SpmEncoder } from "./spm.js";
import { TokenizerError, eogTokens, loadVocab, type Vocab } from "./vocab.js";

export { TokenizerError, TokenType } from "./vocab.js";
export type { StreamDecoder } from "./decoder.js";

export interface EncodeOptions {
  /** Put the BOS token first. Default: the model's `tokenizer.ggml.add_bos_token`. */
  addBos?: boolean;
  /** Recognise control tokens such as "<|im_start|>" in the text. Default true. */
  parseSpecial?: boolean;
}

export interface Tokenizer {
  readonly nVocab: number;
  readonly bos: number | null;
  readonly eos: number | null;
  readonly addBos: boolean;
  /** End-of-generation ids (eos, eot, <|im_end|>, <|eot_id|> ...). */
  readonly eogTokens: ReadonlySet<number>;
  encode(text: string | Uint8Array, opts?: EncodeOptions): number[];
  /** skipSpecial hides control tokens (BOS, <|im_end|>, ...); user-defined ones always show. */
  decode(ids: ArrayLike<number>, opts?: { skipSpecial?: boolean }): string;
  /** Incremental decoding for generated tokens: never emits half a UTF-8 character. */
  streamDecoder(opts?: { skipSpecial?: boolean }): StreamDecoder;
  /** The token's text as stored in the vocabulary (e.g. "Ġhello", "▁hello", "<0x0A>"). */
  tokenText(id: number): string;
}

export interface LoadOptions {
  /**
   * Pre-tokenizer to use when `tokenizer.ggml.pre` names one we don't know, e.g. "gpt-2" or
   * "llama-bpe"; a warning is recorded. Without it such a file is an error.
   */
  fallbackPre?: string;
}

class GgufTokenizer implements Tokenizer {
  readonly nVocab: number;
  readonly bos: number | null;
  readonly eos: number | null;
  readonly addBos: boolean;
  readonly eogTokens: ReadonlySet<number>;
  /** Things about the file worth knowing that did not stop it loading. */
  readonly warnings: string[];
  private readonly pieces: PieceTable;
  private readonly allSpecial: SpecialMatcher;
  private readonly userDefined: SpecialMatcher;

  constructor(
    private readonly vocab: Vocab,
    private readonly encodeText: (text: string, out: number[]) => void,
  ) {
    this.nVocab = vocab.tokens.length;
    this.bos = vocab.bos;
    this.eos = vocab.eos;
    this.addBos = vocab.addBos && vocab.bos !== null;
    this.eogTokens = eogTokens(vocab);
    this.warnings = vocab.warnings;
    this.pieces = new PieceTable(vocab);
    this.allSpecial = new SpecialMatcher(vocab, true);
    this.userDefined = new SpecialMatcher(vocab, false);
  }

  encode(input: string | Uint8Array, opts: EncodeOptions = {}): number[] {
    const text = typeof input === "string" ? wellFormed(input) : decodeUtf8Strict(input);
    const out: number[] = [];
    const addBos = opts.addBos ?? this.addBos;
    if (addBos) {
      if (this.bos === null) throw new TokenizerError(this.vocab.file, "tokenizer.ggml.bos_token_id", "addBos was asked for but the vocabulary has no BOS token");
      out.push(this.bos);
    }
    const fragments = (opts.parseSpecial ?? true ? this.allSpecial : this.userDefined).split(text);
    const spacePrefix = this.vocab.kind === "spm" && this.vocab.addSpacePrefix;
    let prevSpecial = true; // SentencePiece: a space goes before text at the start and after special tokens
    for (const f of fragments) {
      if (typeof f === "number") {
        out.push(f);
        prevSpecial = true;
      } else {
        this.encodeText(spacePrefix && prevSpecial ? " " + f : f, out);
        prevSpecial = false;
      }
    }
    return out;
  }

  decode(ids: ArrayLike<number>, opts: { skipSpecial?: boolean } = {}): string {
    const skip = opts.skipSpecial ?? false;
    const sink = new ByteSink();
    // SentencePiece: drop the space encode() put before the text (first token, or first after BOS).
    let stripSpace = this.vocab.kind === "spm" && this.vocab.addSpacePrefix;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      this.pieces.check(id);
      if (skip && this.pieces.isHidden(id)) {
        if (!(i === 0 && id === this.bos)) stripSpace = false;
        continue;
      }
      const b = this.pieces.bytes(id);
      sink.push(b, stripSpace && b[0] === 0x20 && !this.pieces.isHidden(id) ? 1 : 0);
      stripSpace = false;
    }
    return newTextDecoder().decode(sink.view());
  }

  streamDecoder(opts: { skipSpecial?: boolean } = {}): StreamDecoder {
    return streamDecoder(this.pieces, opts.skipSpecial ?? false);
  }

  tokenText(id: number): string {
    this.pieces.check(id);
    return this.vocab.tokens[id];
  }
}

export function loadTokenizer(g: GgufFile, opts: LoadOptions = {}): Tokenizer & { readonly warnings: string[] } {
  const vocab = loadVocab(g);
  if (vocab.kind === "spm") {
    const spm = new SpmEncoder(vocab);
    return new GgufTokenizer(vocab, (t, out) => spm.encode(t, out));
  }
  let spec = preTokenizerSpec(vocab.pre);
  if (vocab.pre === "") vocab.warnings.push(`tokenizer.ggml.pre is missing: using llama.cpp's "default" pre-tokenizer (the file predates the key; tokenization may be off)`);
  if (!spec) {
    const fb = opts.fallbackPre !== undefined ? preTokenizerSpec(opts.fallbackPre) : undefined;
    if (!fb) {
      throw new TokenizerError(g.file, "tokenizer.ggml.pre", `"${vocab.pre}" is not a pre-tokenizer we know (known: ${SUPPORTED_PRE.join(", ")})` +
        (opts.fallbackPre !== undefined ? `; the fallback "${opts.fallbackPre}" is not known either` : ""));
    }
    vocab.warnings.push(`tokenizer.ggml.pre "${vocab.pre}" is not known: using "${opts.fallbackPre}" instead`);
    spec = fb;
  }
  const bpe = new BpeEncoder(vocab, new PreTokenizer(spec));
  return new GgufTokenizer(vocab, (t, out) => bpe.encode(t, out));
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

function wellFormed(s: string): string {
  return s.replace(LONE_SURROGATE, "\uFFFD");
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function decodeUtf8Strict(b: Uint8Array): string {
  try {
    return strictUtf8.decode(b);
  } catch {
    throw new TypeError(`encode: input is not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8(b)})`);
  }
}

/** Offset of the first byte that starts an invalid UTF-8 sequence. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    let n: number;
    let min: number;
    if (c < 0x80) { i++; continue; }
    else if (c >= 0xc2 && c <= 0xdf) { n = 1; min = 0x80; }
    else if (c >= 0xe0 && c <= 0xef) { n = 2; min = 0x800; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 3; min = 0x10000; }
    else return i;
    let cp = c & (0x3f >> n);
    for (let k = 1; k <= n; k++) {
      const x = b[i + k];
      if (x === undefined || (x & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (x & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return b.length;
}
