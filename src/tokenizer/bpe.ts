// Byte-level BPE (GPT-2 style): a word's UTF-8 bytes become one symbol each (the vocabulary
// spells byte b as the printable character BYTE_TO_CHAR[b]), then merges join adjacent symbols
// in rank order. Results are cached per word, since natural text repeats its words a lot.

import { PairTable, mergeSymbols } from "./merge.js";
import type { PreTokenizer } from "./pretokenizers.js";
import { TokenizerError, type Vocab } from "./vocab.js";

/** GPT-2's bytes_to_unicode(): printable bytes map to themselves, the rest to U+0100 onwards. */
export const BYTE_TO_CHAR: string[] = (() => {
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out[b] = String.fromCharCode(printable ? b : 256 + n++);
  }
  return out;
})();

export const CHAR_TO_BYTE: Map<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

const CACHE_LIMIT = 1 << 16; // words; the cache is emptied when it fills up
const CACHE_MAX_WORD = 64; // longer words are rare enough not to be worth keeping

let utf8 = new Uint8Array(1024);
let symbols = new Int32Array(1024);

/**
 * UTF-8 bytes of `s` into the shared `utf8` buffer; returns the byte count. Lone surrogates
 * become U+FFFD, as TextEncoder does (the caller has already replaced them; this is a guard).
 */
function encodeUtf8(s: string): number {
  if (utf8.length < s.length * 3) utf8 = new Uint8Array(s.length * 3 * 2);
  const b = utf8;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      b[n++] = c;
      continue;
    }
    if (c < 0x800) {
      b[n++] = 0xc0 | (c >> 6);
      b[n++] = 0x80 | (c & 63);
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        i++;
        b[n++] = 0xf0 | (c >> 18);
        b[n++] = 0x80 | ((c >> 12) & 63);
        b[n++] = 0x80 | ((c >> 6) & 63);
        b[n++] = 0x80 | (c & 63);
        continue;
      }
      c = 0xfffd;
    }
    b[n++] = 0xe0 | (c >> 12);
    b[n++] = 0x80 | ((c >> 6) & 63);
    b[n++] = 0x80 | (c & 63);
  }
  return n;
}

export class BpeEncoder {
  private readonly table: PairTable;
  private readonly byteIds = new Int32Array(256);
  private readonly cache = new Map<string, number[]>();
  private readonly tokenToId: Map<string, number>;
  private readonly unk: number | null;

  constructor(vocab: Vocab, private readonly pre: PreTokenizer) {
    this.tokenToId = vocab.tokenToId;
    this.unk = vocab.unk;
    const missing: number[] = [];
    for (let b = 0; b < 256; b++) {
      const id = vocab.tokenToId.get(BYTE_TO_CHAR[b]);
      this.byteIds[b] = id ?? -1;
      if (id === undefined) missing.push(b);
    }
    if (missing.length === 256) {
      throw new TokenizerError(vocab.file, "tokenizer.ggml.tokens", "no byte-level tokens (Ġ, Ċ, ...): this is not a byte-level BPE vocabulary");
    }
    if (missing.length > 0) {
      vocab.warnings.push(`no token for ${missing.length} byte value(s) (${missing.slice(0, 8).map((b) => "0x" + b.toString(16)).join(", ")}...): ` +
        (vocab.unk !== null ? "they encode as the unknown token" : "they are dropped from the input"));
    }
    this.table = buildMergeTable(vocab);
  }

  /** Appends the ids of one pre-tokenized text fragment (no special tokens in it). */
  encode(text: string, out: number[]): void {
    for (const word of this.pre.split(text)) {
      const hit = this.cache.get(word);
      if (hit !== undefined) {
        for (let i = 0; i < hit.length; i++) out.push(hit[i]);
        continue;
      }
      const ids = this.encodeWord(word);
      if (word.length <= CACHE_MAX_WORD) {
        if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
        this.cache.set(word, ids);
      }
      for (let i = 0; i < ids.length; i++) out.push(ids[i]);
    }
  }

  private encodeWord(word: string): number[] {
    const n = encodeUtf8(word);
    if (this.pre.ignoreMerges) {
      let enc = "";
      for (let i = 0; i < n; i++) enc += BYTE_TO_CHAR[utf8[i]];
      const whole = this.tokenToId.get(enc);
      if (whole !== undefined) return [whole];
    }
    if (symbols.length < n) symbols = new Int32Array(n * 2);
    for (let i = 0; i < n; i++) symbols[i] = this.byteIds[utf8[i]];
    const m = mergeSymbols(symbols, n, this.table);
    const out: number[] = [];
    for (let i = 0; i < m; i++) {
      const id = symbols[i];
      if (id >= 0) out.push(id);
      else if (this.unk !== null) out.push(this.unk);
    }
    return out;
  }
}

/**
 * Merge list -> pair table. Entries that are malformed or name tokens the vocabulary lacks are
 * skipped with one warning (Hugging Face refuses such a file; llama.cpp would merge into
 * strings that then fall apart into bytes).
 */
function buildMergeTable(vocab: Vocab): PairTable {
  const merges = vocab.merges ?? [];
  const table = new PairTable(merges.length);
  const ids = vocab.tokenToId;
  let bad = 0;
  let firstBad = "";
  for (let rank = 0; rank < merges.length; rank++) {
    const m = merges[rank];
    const sp = m.indexOf(" ", 1);
    const l = sp > 0 ? ids.get(m.slice(0, sp)) : undefined;
    const r = sp > 0 ? ids.get(m.slice(sp + 1)) : undefined;
    const joined = sp > 0 ? ids.get(m.slice(0, sp) + m.slice(sp + 1)) : undefined;
    if (l === undefined || r === undefined || joined === undefined) {
      if (bad++ === 0) firstBad = `#${rank} ${JSON.stringify(m)}`;
      continue;
    }
    table.add(l, r, joined, -rank);
  }
  if (bad > 0) vocab.warnings.push(`tokenizer.ggml.merges: ${bad} merge(s) skipped (malformed or naming tokens not in the vocabulary), first ${firstBad}`);
  return table;
}
