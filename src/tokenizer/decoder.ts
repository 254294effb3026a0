// Ids back to text. Each token maps to bytes (not text): a byte-level token may hold half of a
// UTF-8 character, and SentencePiece byte tokens <0xE4> hold one byte each. Bytes are turned
// into text only when whole characters are there: decode() decodes all bytes at once, and the
// stream decoder keeps an unfinished character's bytes until the rest arrives.

import { CHAR_TO_BYTE } from "./bpe.js";
import { TokenType, type Vocab } from "./vocab.js";

const enc = new TextEncoder();

export class PieceTable {
  private readonly pieces: Array<Uint8Array | undefined>;

  constructor(private readonly vocab: Vocab) {
    this.pieces = new Array(vocab.tokens.length);
  }

  check(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.pieces.length) {
      throw new RangeError(`token id ${id} is outside the vocabulary (0..${this.pieces.length - 1})`);
    }
  }

  /** True for tokens hidden by skipSpecial: control, unknown, unused and untyped ones. */
  isHidden(id: number): boolean {
    const t = this.vocab.types[id];
    return t !== TokenType.NORMAL && t !== TokenType.BYTE && t !== TokenType.USER_DEFINED;
  }

  /** The bytes a token stands for. */
  bytes(id: number): Uint8Array {
    let p = this.pieces[id];
    if (p === undefined) {
      p = this.compute(id);
      this.pieces[id] = p;
    }
    return p;
  }

  private compute(id: number): Uint8Array {
    const text = this.vocab.tokens[id];
    const type = this.vocab.types[id];
    if (type === TokenType.BYTE) {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(text);
      if (m) return Uint8Array.of(parseInt(m[1], 16));
    }
    if (type !== TokenType.NORMAL && type !== TokenType.BYTE) return enc.encode(text); // special tokens: their text as is
    if (this.vocab.kind === "spm") return enc.encode(text.replaceAll("▁", " "));
    // Byte-level: each character is one byte. A character outside the byte alphabet (possible
    // only in a hand-made vocabulary) stands for its own UTF-8 bytes rather than being lost.
    const out: number[] = [];
    for (const ch of text) {
      const b = CHAR_TO_BYTE.get(ch);
      if (b !== undefined) out.push(b);
      else for (const x of enc.encode(ch)) out.push(x);
    }
    return Uint8Array.from(out);
  }
}

/** Growable byte buffer. */
export class ByteSink {
  private buf = new Uint8Array(256);
  length = 0;

  push(b: Uint8Array, skip = 0): void {
    const n = b.length - skip;
    if (n <= 0) return;
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      this.buf = next;
    }
    this.buf.set(skip ? b.subarray(skip) : b, this.length);
    this.length += n;
  }

  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

export function newTextDecoder(): TextDecoder {
  // ignoreBOM: a U+FEFF the model produced is text like any other
  return new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
}

export interface StreamDecoder {
  /** Text that became complete with this token ("" while a character is unfinished). */
  push(id: number): string;
  /** The rest: an unfinished character comes out as U+FFFD. The decoder can be reused after. */
  flush(): string;
}

export function streamDecoder(pieces: PieceTable, skipSpecial: boolean): StreamDecoder {
  let dec = newTextDecoder();
  return {
    push(id: number): string {
      pieces.check(id);
      if (skipSpecial && pieces.isHidden(id)) return "";
      return dec.decode(pieces.bytes(id), { stream: true });
    },
    flush(): string {
      const rest = dec.decode();
      dec = newTextDecoder();
      return rest;
    },
  };
}
