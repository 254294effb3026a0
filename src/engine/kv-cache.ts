// The KV cache. Each row carries its own (seq, pos); the attention mask follows from them and
// from a sequence visibility matrix, so "chunk c sees only itself" and "the question sees every
// kept chunk" are both just data. Rows are stored per (layer, KV head) so that token eviction
// may keep different rows in different heads; the GQA layout is kept (KV is never expanded to
// all query heads). Keys are stored after RoPE: removing rows never re-rotates anything.
//
// Verbs, after llama.cpp's llama-kv-cells (half-open position ranges [p0, p1)):
//   seqRemove(seq, p0, p1)    drop a sequence's rows in a position range (all layers and heads)
//   keepWhere(l, h, keep)     keep the rows of one layer's KV head that pass a (seq, pos) test
//                             (SnapKV eviction, bias calibration)
//   seqShift(seq, p0, p1, d)  move rows by d positions, re-rotating their keys (StreamingLLM only)
//   setVisible(q, k)          let sequence q attend to the rows of sequence k
//   seqShare(src, dst)        the engine interface's name for setVisible(dst, src)
//   seqPosMax(seq), free()    the rest of the engine interface's SeqCache (engine/engine.ts)

import type { CopyRows } from "../kernels/types.js";
import { copyRowsReference } from "../kernels/reference.js";
import { f16BitsToF32, f32ToF16Bits } from "../tensor/f16.js";

/** How K and V rows are stored: F16 (llama.cpp's default, half the memory) or F32. */
export type KvType = "f16" | "f32";

export interface KvLayer {
  k: Float32Array | Uint16Array; // [nKvHeads, cap, headDim] values, or their F16 bits
  v: Float32Array | Uint16Array; // [nKvHeads, cap, headDim]
  rowSeq: Int32Array; // [nKvHeads, cap]
  rowPos: Int32Array; // [nKvHeads, cap]
  nRows: Int32Array; // [nKvHeads]
}

export class KvCache {
  readonly layers: KvLayer[] = [];
  readonly visible: Uint8Array; // [nSeqMax, nSeqMax], visible[querySeq * nSeqMax + keySeq]
  cap: number;

  constructor(
    readonly nLayers: number,
    readonly nKvHeads: number,
    readonly headDim: number,
    readonly nSeqMax = 64,
    initialCap = 256,
    /** The row copy of append (the model passes its kernels'; the default is plain TypeScript). */
    private readonly copyRows: CopyRows = copyRowsReference,
    readonly kvType: KvType = "f32",
  ) {
    this.cap = Math.max(1, initialCap);
    for (let l = 0; l < nLayers; l++) this.layers.push(this.allocLayer(this.cap));
    this.visible = new Uint8Array(nSeqMax * nSeqMax);
    for (let s = 0; s < nSeqMax; s++) this.visible[s * nSeqMax + s] = 1;
  }

  private allocLayer(cap: number): KvLayer {
    const Rows = this.kvType === "f16" ? Uint16Array : Float32Array;
    return {
      k: new Rows(this.nKvHeads * cap * this.headDim),
      v: new Rows(this.nKvHeads * cap * this.headDim),
      rowSeq: new Int32Array(this.nKvHeads * cap),
      rowPos: new Int32Array(this.nKvHeads * cap),
      nRows: new Int32Array(this.nKvHeads),
    };
  }

  private checkSeq(seq: number) {
    if (!Number.isInteger(seq) || seq < 0 || seq >= this.nSeqMax) throw new Error(`sequence id ${seq} is outside [0, ${this.nSeqMax})`);
  }

  /** Most rows held by any (layer, head). */
  maxRows(): number {
    let m = 0;
    for (const L of this.layers) for (let h = 0; h < this.nKvHeads; h++) m = Math.max(m, L.nRows[h]);
    return m;
  }

  /** Rows held by (layer, head); with eviction these differ. */
  rows(l: number, h: number): number {
    return this.layers[l].nRows[h];
  }

  /** Bytes allocated for K and V (what a memory budget counts). */
  bytes(): number {
    return this.nLayers * 2 * this.nKvHeads * this.cap * this.headDim * this.bytesPerValue;
  }

  private get bytesPerValue(): number {
    return this.kvType === "f16" ? 2 : 4;
  }

  /** Bytes of K and V in the rows held (with eviction, fewer than the capacity). */
  usedBytes(): number {
    let rows = 0;
    for (const L of this.layers) for (let h = 0; h < this.nKvHeads; h++) rows += L.nRows[h];
    return rows * 2 * this.headDim * this.bytesPerValue;
  }

  /** Makes room for `n` more rows in every (layer, head). */
  reserve(n: number): void {
    const need = this.maxRows() + n;
    if (need <= this.cap) return;
    this.resize(Math.max(need, Math.ceil(this.cap * 1.5)));
  }

  private resize(cap: number) {
    const hd = this.headDim;
    for (let l = 0; l < this.nLayers; l++) {
      const old = this.layers[l];
      const L = this.allocLayer(cap);
      for (let h = 0; h < this.nKvHeads; h++) {
        const n = old.nRows[h];
        (L.k as Float32Array).set(old.k.subarray(h * this.cap * hd, (h * this.cap + n) * hd) as Float32Array, h * cap * hd);
        (L.v as Float32Array).set(old.v.subarray(h * this.cap * hd, (h * this.cap + n) * hd) as Float32Array, h * cap * hd);
        L.rowSeq.set(old.rowSeq.subarray(h * this.cap, h * this.cap + n), h * cap);
        L.rowPos.set(old.rowPos.subarray(h * this.cap, h * this.cap + n), h * cap);
        L.nRows[h] = n;
      }
      this.layers[l] = L;
    }
    this.cap = cap;
  }

  /**
   * Appends T rows to every head of layer l. k, v: [T, nKvHeads, headDim]; seq, pos: [T].
   * Precondition: reserve(T) was called for this batch (the forward pass does it once).
   */
  append(l: number, k: Float32Array, v: Float32Array, seq: Int32Array, pos: Int32Array, T: number): void {
    const L = this.layers[l];
    const hd = this.headDim;
    const stride = this.nKvHeads * hd;
    for (let h = 0; h < this.nKvHeads; h++) {
      const n = L.nRows[h];
      if (n + T > this.cap) throw new Error(`KV cache append of ${T} rows without reserve (cap ${this.cap}, rows ${n})`);
      const cell0 = h * this.cap + n;
      this.copyRows(L.k, cell0 * hd, hd, k, h * hd, stride, hd, T);
      this.copyRows(L.v, cell0 * hd, hd, v, h * hd, stride, hd, T);
      L.rowSeq.set(seq.subarray(0, T), cell0);
      L.rowPos.set(pos.subarray(0, T), cell0);
      L.nRows[h] = n + T;
    }
  }

  /** Keeps the rows of (l, h) for which keep(row) is true, in order. Returns how many were removed. */
  private filterRows(l: number, h: number, keep: (cell: number) => boolean): number {
    const L = this.layers[l];
    const hd = this.headDim;
    const base = h * this.cap;
    const n = L.nRows[h];
    let w = 0;
    for (let r = 0; r < n; r++) {
      const cell = base + r;
      if (!keep(cell)) continue;
      if (w !== r) {
        const dst = base + w;
        L.k.copyWithin(dst * hd, cell * hd, (cell + 1) * hd);
        L.v.copyWithin(dst * hd, cell * hd, (cell + 1) * hd);
        L.rowSeq[dst] = L.rowSeq[cell];
        L.rowPos[dst] = L.rowPos[cell];
      }
      w++;
    }
    L.nRows[h] = w;
    return n - w;
  }

  /** Removes the rows of `seq` (every sequence if seq < 0) with p0 <= pos < p1. */
  seqRemove(seq: number, p0 = 0, p1 = Infinity): number {
    if (seq >= 0) this.checkSeq(seq);
    let removed = 0;
    for (let l = 0; l < this.nLayers; l++) {
      const L = this.layers[l];
      for (let h = 0; h < this.nKvHeads; h++) {
        removed += this.filterRows(l, h, (c) => !((seq < 0 || L.rowSeq[c] === seq) && L.rowPos[c] >= p0 && L.rowPos[c] < p1));
      }
    }
    return removed;
  }

  /** Keeps the rows of (l, h) for which keep(seq, pos) is true, in order; returns how many went. */
  keepWhere(l: number, h: number, keep: (seq: number, pos: number) => boolean): number {
    const L = this.layers[l];
    return this.filterRows(l, h, (c) => keep(L.rowSeq[c], L.rowPos[c]));
  }

  /**
   * Moves the rows of `seq` with p0 <= pos < p1 by `delta` positions (llama.cpp's seq_add). Their
   * keys were rotated at the old positions, so `rotate(layer, keyRow, delta)` must re-rotate each one:
   * the one verb that touches stored keys, used only by the StreamingLLM baseline's rolling cache.
   */
  seqShift(seq: number, p0: number, p1: number, delta: number, rotate: (layer: number, key: Float32Array, delta: number) => void): void {
    this.checkSeq(seq);
    const hd = this.headDim;
    const key = new Float32Array(hd); // one widened F16 key at a time
    for (const [l, L] of this.layers.entries()) {
      for (let h = 0; h < this.nKvHeads; h++) {
        for (let r = 0; r < L.nRows[h]; r++) {
          const cell = h * this.cap + r;
          if (L.rowSeq[cell] !== seq || L.rowPos[cell] < p0 || L.rowPos[cell] >= p1) continue;
          L.rowPos[cell] += delta;
          if (L.k instanceof Float32Array) {
            rotate(l, L.k.subarray(cell * hd, (cell + 1) * hd), delta);
          } else {
            // an F16 key is widened, rotated, and stored again (one more rounding)
            for (let i = 0; i < hd; i++) key[i] = f16BitsToF32(L.k[cell * hd + i]);
            rotate(l, key, delta);
            for (let i = 0; i < hd; i++) L.k[cell * hd + i] = f32ToF16Bits(key[i]);
          }
        }
      }
    }
  }

  setVisible(querySeq: number, keySeq: number, on = true): void {
    this.checkSeq(querySeq);
    this.checkSeq(keySeq);
    this.visible[querySeq * this.nSeqMax + keySeq] = on ? 1 : 0;
  }

  /** Sequence `dst` attends to `src`'s rows (engine/engine.ts `SeqCache`). */
  seqShare(src: number, dst: number): void {
    this.setVisible(dst, src);
  }

  /** Largest position held for `seq` in any layer and head, or -1. */
  seqPosMax(seq: number): number {
    let m = -1;
    for (const L of this.layers) {
      for (let h = 0; h < this.nKvHeads; h++) {
        for (let r = 0; r < L.nRows[h]; r++) {
          const c = h * this.cap + r;
          if (L.rowSeq[c] === seq && L.rowPos[c] > m) m = L.rowPos[c];
        }
      }
    }
    return m;
  }

  /** The engine interface's end of a run: rows dropped; the buffers go with the cache object. */
  free(): void {
    for (const L of this.layers) L.nRows.fill(0);
  }
}
