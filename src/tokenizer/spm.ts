// SentencePiece (llama / mistral vocabularies), as llama.cpp runs it: spaces become "▁", the text
// starts as one symbol per character, and the adjacent pair whose joined text is the
// highest-scoring token joins first. Characters that end up in no token fall back to their
// UTF-8 bytes as <0xXX> tokens.
//
// The pair table is built once from the vocabulary: for every token, every way to cut it into two
// parts that can be symbols (tokens, or single characters that are not tokens) is a pair.

import { PairTable, mergeSymbols } from "./merge.js";
import type { Vocab } from "./vocab.js";

const SPACE = "▁";
const CACHE_LIMIT = 1 << 16;
const CACHE_MAX_CHUNK = 64;

let symbols = new Int32Array(1024);

export class SpmEncoder {
  private readonly table: PairTable;
  private readonly tokenToId: Map<string, number>;
  private readonly nVocab: number;
  /** Characters that are not tokens but occur inside tokens get ids from nVocab up. */
  private readonly charIds = new Map<string, number>();
  private readonly charOf: string[] = [];
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly unk: number | null;
  /**
   * True when no token contains "x▁" (x not ▁): then no merge can cross the start of a word, so
   * the text can be cut before each "▁" that follows another character and the pieces cached.
   */
  private readonly chunkable: boolean;
  private readonly cache = new Map<string, number[]>();

  constructor(vocab: Vocab) {
    this.tokenToId = vocab.tokenToId;
    this.nVocab = vocab.tokens.length;
    this.unk = vocab.unk;
    const hex = "0123456789ABCDEF";
    for (let b = 0; b < 256; b++) {
      const id = vocab.tokenToId.get(`<0x${hex[b >> 4]}${hex[b & 15]}>`) ?? (b < 0x80 ? vocab.tokenToId.get(String.fromCharCode(b)) : undefined);
      if (id !== undefined) this.byteIds[b] = id;
    }
    let chunkable = true;
    const crossing = /[^▁]▁/u;
    let nPairs = 0;
    for (const t of vocab.tokens) nPairs += t.length - 1;
    this.table = new PairTable(nPairs);
    const idOf = (part: string): number => {
      const id = this.tokenToId.get(part);
      if (id !== undefined) return id;
      const cp = part.codePointAt(0)!;
      if (part.length !== (cp > 0xffff ? 2 : 1)) return -1; // a longer non-token is never a symbol
      return this.charId(part);
    };
    for (let id = 0; id < vocab.tokens.length; id++) {
      const t = vocab.tokens[id];
      if (this.tokenToId.get(t) !== id) continue; // a duplicate text: llama.cpp keeps the last id
      if (chunkable && t.includes(SPACE) && crossing.test(t)) chunkable = false;
      for (let k = 1; k < t.length; k++) {
        const c = t.charCodeAt(k);
        if (c >= 0xdc00 && c <= 0xdfff) continue; // don't cut a surrogate pair
        const l = idOf(t.slice(0, k));
        if (l < 0) continue;
        const r = idOf(t.slice(k));
        if (r < 0) continue;
        this.table.add(l, r, id, vocab.scores[id]);
      }
    }
    this.chunkable = chunkable;
  }

  private charId(ch: string): number {
    let id = this.charIds.get(ch);
    if (id === undefined) {
      id = this.nVocab + this.charOf.length;
      this.charIds.set(ch, id);
      this.charOf.push(ch);
    }
    return id;
  }

  /** Appends the ids for one text fragment (spaces not yet escaped, prefix space already added). */
  encode(text: string, out: number[]): void {
    text = text.replaceAll(" ", SPACE);
    if (!this.chunkable) {
      this.encodeChunk(text, out);
      return;
    }
    let start = 0;
    for (let i = 1; i <= text.length; i++) {
      if (i < text.length && !(text.charCodeAt(i) === 0x2581 && text.charCodeAt(i - 1) !== 0x2581)) continue;
      const chunk = text.slice(start, i);
      start = i;
      const hit = this.cache.get(chunk);
      if (hit !== undefined) {
        for (let j = 0; j < hit.length; j++) out.push(hit[j]);
        continue;
      }
      if (chunk.length > CACHE_MAX_CHUNK) {
        this.encodeChunk(chunk, out);
        continue;
      }
      const ids: number[] = [];
      this.encodeChunk(chunk, ids);
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(chunk, ids);
      for (let j = 0; j < ids.length; j++) out.push(ids[j]);
    }
  }

  private encodeChunk(text: string, out: number[]): void {
    if (symbols.length < text.length) symbols = new Int32Array(text.length * 2);
    let n = 0;
    for (let i = 0; i < text.length; i++) {
      const cp = text.codePointAt(i)!;
      const width = cp > 0xffff ? 2 : 1;
      const ch = text.slice(i, i + width);
      i += width - 1;
      const id = this.tokenToId.get(ch) ?? this.charIds.get(ch);
      symbols[n++] = id ?? -1 - cp; // negative: a character no token contains; never merges
    }
    const m = mergeSymbols(symbols, n, this.table);
    for (let i = 0; i < m; i++) {
      const id = symbols[i];
      if (id >= 0 && id < this.nVocab) out.push(id);
      else this.byteFallback(id < 0 ? String.fromCodePoint(-1 - id) : this.charOf[id - this.nVocab], out);
    }
  }

  private byteFallback(ch: string, out: number[]): void {
    for (const b of Buffer.from(ch, "utf8")) {
      const id = this.byteIds[b];
      if (id >= 0) out.push(id);
      else if (this.unk !== null) out.push(this.unk);
    }
  }
}
