// The kernel interface. Two implementations: `reference.ts` (plain TypeScript, the
// definition of what each kernel computes) and `native.ts` (the C addon, SIMD + threads).
// Tests run both on random inputs and require agreement within 1e-4 relative.

export interface MatmulArgs {
  /** Raw GGML data of a weight matrix, row-major: [nOut, nIn] in blocks of `type`. */
  w: Uint8Array;
  type: number; // GgmlType
  nOut: number;
  nIn: number;
  /** Activations [T, nIn]. */
  x: Float32Array;
  T: number;
  /** Output [T, nOut]: y[t, o] = dot(w[o, :], x[t, :]). */
  y: Float32Array;
}

/**
 * Attention of a batch of queries over one layer's KV cache.
 * Rows of the cache carry their own (seq, pos); a query row t may attend to a cache row r
 * (of its KV head h) iff visible[qSeq[t] * nSeqMax + rowSeq[h, r]] and rowPos[h, r] <= qPos[t].
 * The mask is derived from those arrays here, never materialised as a [T, nRows] matrix.
 */
export interface AttentionArgs {
  q: Float32Array; // [T, nHeads, headDim] (RoPE already applied)
  /** [nKvHeads, cap, headDim]: values, or (Uint16Array, an F16 cache) their F16 bits; v alike. */
  k: Float32Array | Uint16Array;
  v: Float32Array | Uint16Array; // [nKvHeads, cap, headDim]
  rowSeq: Int32Array; // [nKvHeads, cap]
  rowPos: Int32Array; // [nKvHeads, cap]
  nRows: Int32Array; // [nKvHeads] rows in use per KV head (rows 0..nRows[h]-1)
  cap: number;
  qSeq: Int32Array; // [T]
  qPos: Int32Array; // [T]
  visible: Uint8Array; // [nSeqMax, nSeqMax] visible[querySeq * nSeqMax + keySeq]
  nSeqMax: number;
  T: number;
  nHeads: number;
  nKvHeads: number; // query head i uses KV head floor(i / (nHeads / nKvHeads))
  headDim: number;
  scale: number; // usually 1 / sqrt(headDim)
  /** Soft cap: each score s becomes cap * tanh(s / cap) before the softmax (Gemma 2); 0 = none. */
  softcap?: number;
  /** Sliding window: a key is also hidden when qPos - rowPos >= window (llama.cpp's standard SWA); 0 = none. */
  window?: number;
  out: Float32Array; // [T, nHeads, headDim]; a query row that sees no key gets zeros
}

/** Copies nRows rows of rowLen floats: dst[dstOffset + r * dstStride + i] = src[srcOffset + r * srcStride + i];
 *  into a Uint16Array, each value rounded to F16 (nearest even) and stored as its bits. */
export type CopyRows = (dst: Float32Array | Uint16Array, dstOffset: number, dstStride: number, src: Float32Array, srcOffset: number, srcStride: number, rowLen: number, nRows: number) => void;

export interface Kernels {
  readonly name: "native" | "typescript";
  matmul(a: MatmulArgs): void;
  attention(a: AttentionArgs): void;
  /** y[t] = x[t] / rms(x[t]) * w for T rows of dim, as ggml: squares in f32 summed in double,
   *  scale = 1 / sqrt(mean + eps) in f32, then (x * scale) * w. */
  rmsnorm(y: Float32Array, x: Float32Array, w: Float32Array, T: number, dim: number, eps: number): void;
  /** gate[i] = silu(gate[i]) * up[i] for i < n, silu(g) = g / (1 + e^-g) in f32. */
  swiglu(gate: Float32Array, up: Float32Array, n: number): void;
  /** gate[i] = gelu(gate[i]) * up[i] for i < n, gelu as ggml's CPU backend computes it: the tanh
   *  approximation looked up in an f16 table (x rounded to f16; 0 below -10, x above 10). */
  geglu(gate: Float32Array, up: Float32Array, n: number): void;
  /** x[i] += y[i] for i < n. */
  add(x: Float32Array, y: Float32Array, n: number): void;
  /** Rotates the first ropeDim dims of each of nH heads of x [T, nH, headDim] by the angles of
   *  cos / sin [T, ropeDim / 2]; neox pairs dims (i, i + ropeDim / 2), else (2i, 2i + 1). */
  rope(x: Float32Array, T: number, nH: number, headDim: number, ropeDim: number, neox: boolean, cos: Float32Array, sin: Float32Array): void;
  copyRows: CopyRows;
  setThreads(n: number): void;
}
