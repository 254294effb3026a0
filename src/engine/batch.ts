// A batch is a struct of parallel arrays, one entry per token: which token, at which position,
// in which sequence, and whether its logits are wanted. Positions and sequences are chosen by the
// caller: ParallelComp prefills many chunks in one batch, each its own sequence with positions 0..L-1.

export interface Batch {
  tokens: Int32Array; // [n]
  pos: Int32Array; // [n]
  seqId: Int32Array; // [n]
  wantLogits: Uint8Array; // [n]
  n: number;
}

export function emptyBatch(capacity: number): Batch {
  return {
    tokens: new Int32Array(capacity),
    pos: new Int32Array(capacity),
    seqId: new Int32Array(capacity),
    wantLogits: new Uint8Array(capacity),
    n: 0,
  };
}

/** Appends one token; the batch must have room. */
export function batchAdd(b: Batch, token: number, pos: number, seq: number, wantLogits: boolean): void {
  if (b.n >= b.tokens.length) throw new Error(`batch is full (${b.tokens.length} tokens)`);
  b.tokens[b.n] = token;
  b.pos[b.n] = pos;
  b.seqId[b.n] = seq;
  b.wantLogits[b.n] = wantLogits ? 1 : 0;
  b.n++;
}

/** A batch holding one sequence's tokens at positions pos0, pos0+1, ...; logits as asked. */
export function sequenceBatch(tokens: ArrayLike<number>, opts: { seq?: number; pos0?: number; logits?: "last" | "all" | "none" } = {}): Batch {
  const b = emptyBatch(tokens.length);
  const { seq = 0, pos0 = 0, logits = "last" } = opts;
  for (let i = 0; i < tokens.length; i++) {
    batchAdd(b, tokens[i], pos0 + i, seq, logits === "all" || (logits === "last" && i === tokens.length - 1));
  }
  return b;
}

/** The entries [from, to) as a batch sharing the same arrays (no copy). */
export function sliceBatch(b: Batch, from: number, to: number): Batch {
  return {
    tokens: b.tokens.subarray(from, to),
    pos: b.pos.subarray(from, to),
    seqId: b.seqId.subarray(from, to),
    wantLogits: b.wantLogits.subarray(from, to),
    n: to - from,
  };
}
