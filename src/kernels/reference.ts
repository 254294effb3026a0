// Plain TypeScript kernels: the definition of what each kernel computes, and the fallback when
// the native addon cannot be built. Written for clarity first, but with no allocation inside
// the loops (scratch buffers are reused) so the fallback stays usable.

import { TYPE_TRAITS } from "../gguf/types.js";
import { GgmlType } from "../gguf/types.js";
import { dequantizeRow, quantizeRowX86, vecDotType } from "../tensor/quant.js";
import { f16BitsToF32, f32ToF16Bits } from "../tensor/f16.js";
import type { AttentionArgs, CopyRows, Kernels, MatmulArgs } from "./types.js";

let scratch = new Float32Array(0);
let scratchBytes = new Uint8Array(0);

function f32Scratch(n: number): Float32Array {
  if (scratch.length < n) scratch = new Float32Array(n);
  return scratch;
}

/**
 * Rounds activations the way llama.cpp's CPU backend does before a dot product: converted to
 * the weight type's "vec dot type" (F16, BF16, Q8_0, Q8_1 or Q8_K) and back. x: [T, nIn] -> out.
 * The x86 variants of Q8_0 / Q8_1 (ties to even) are what llama.cpp's x64 CPU builds run.
 */
export function roundActivations(type: number, x: Float32Array, T: number, nIn: number, out: Float32Array): void {
  const dotType = vecDotType(type);
  const traits = TYPE_TRAITS.get(dotType)!;
  const bytes = (nIn / traits.blockSize) * traits.typeSize;
  if (scratchBytes.length < bytes) scratchBytes = new Uint8Array(bytes);
  for (let t = 0; t < T; t++) {
    quantizeRowX86(dotType, x, t * nIn, nIn, scratchBytes, 0);
    dequantizeRow(dotType, scratchBytes, 0, nIn, out, t * nIn);
  }
}

export function matmulReference({ w, type, nOut, nIn, x, T, y }: MatmulArgs): void {
  const traits = TYPE_TRAITS.get(type)!;
  const rowBytes = (nIn / traits.blockSize) * traits.typeSize;
  const buf = f32Scratch(T * nIn + nIn);
  const xr = buf.subarray(0, T * nIn); // [T, nIn] activations as the dot product sees them
  const wr = buf.subarray(T * nIn, T * nIn + nIn); // [nIn] one dequantized weight row
  roundActivations(type, x, T, nIn, xr);
  for (let o = 0; o < nOut; o++) {
    dequantizeRow(type, w, o * rowBytes, nIn, wr, 0);
    for (let t = 0; t < T; t++) {
      let acc = 0;
      const base = t * nIn;
      for (let i = 0; i < nIn; i++) acc += wr[i] * xr[base + i];
      y[t * nOut + o] = acc;
    }
  }
  if (vecDotType(type) === GgmlType.Q8_1) q8_1Correction(type, w, x, T, nOut, nIn, y);
}

/**
 * Q4_1 / Q5_1 weights are d*q + m per block; llama.cpp's dot product (ggml_vec_dot_q4_1_q8_1,
 * q5_1) adds m * s per block, where s is the Q8_1 activation block's d * sum(q) stored as f16,
 * instead of m * d * sum(q). This adds the difference, sum over blocks of m * (s - d * sum(q)).
 */
function q8_1Correction(type: number, w: Uint8Array, x: Float32Array, T: number, nOut: number, nIn: number, y: Float32Array): void {
  const nb = nIn / 32;
  const wBlock = type === GgmlType.Q4_1 ? 20 : 24;
  const act = new Uint8Array(nb * 36);
  const diff = new Float64Array(nb);
  const half = (b: Uint8Array, o: number) => f16BitsToF32(b[o] | (b[o + 1] << 8));
  for (let t = 0; t < T; t++) {
    quantizeRowX86(GgmlType.Q8_1, x, t * nIn, nIn, act, 0);
    for (let b = 0; b < nb; b++) {
      let sum = 0;
      for (let j = 0; j < 32; j++) sum += (act[b * 36 + 4 + j] << 24) >> 24;
      diff[b] = half(act, b * 36 + 2) - half(act, b * 36) * sum;
    }
    for (let o = 0; o < nOut; o++) {
      let c = 0;
      for (let b = 0; b < nb; b++) c += half(w, (o * nb + b) * wBlock + 2) * diff[b];
      y[t * nOut + o] += c;
    }
  }
}

let scores = new Float64Array(0);

export function attentionReference(a: AttentionArgs): void {
  const { q, k, v, rowSeq, rowPos, nRows, cap, qSeq, qPos, visible, nSeqMax, T, nHeads, nKvHeads, headDim, scale, out } = a;
  const window = a.window || Infinity;
  // An F16 cache holds bits: widen through a table (every F16 value, exact), decided once per call.
  const f16 = k instanceof Uint16Array ? F16_VALUES() : null;
  const kv = f16 ? (x: Float32Array | Uint16Array, i: number) => f16[x[i]] : (x: Float32Array | Uint16Array, i: number) => x[i];
  const cap1 = a.softcap ? Math.fround(1 / a.softcap) : 0;
  const group = nHeads / nKvHeads;
  if (scores.length < cap) scores = new Float64Array(cap);
  for (let t = 0; t < T; t++) {
    const visRow = qSeq[t] * nSeqMax;
    for (let hq = 0; hq < nHeads; hq++) {
      const h = Math.floor(hq / group);
      const qOff = (t * nHeads + hq) * headDim;
      const n = nRows[h];
      let max = -Infinity;
      for (let r = 0; r < n; r++) {
        const cell = h * cap + r;
        if (!visible[visRow + rowSeq[cell]] || rowPos[cell] > qPos[t] || qPos[t] - rowPos[cell] >= window) {
          scores[r] = -Infinity;
          continue;
        }
        const kOff = cell * headDim;
        let dot = 0;
        for (let i = 0; i < headDim; i++) dot += q[qOff + i] * kv(k, kOff + i);
        scores[r] = dot * scale;
        if (cap1) scores[r] = Math.fround(Math.tanh(Math.fround(Math.fround(scores[r]) * cap1))) * Math.fround(a.softcap!);
        if (scores[r] > max) max = scores[r];
      }
      out.fill(0, qOff, qOff + headDim);
      if (max === -Infinity) continue; // sees no key
      let sum = 0;
      for (let r = 0; r < n; r++) {
        const p = scores[r] === -Infinity ? 0 : Math.exp(scores[r] - max);
        scores[r] = p;
        sum += p;
      }
      for (let r = 0; r < n; r++) {
        const p = scores[r] / sum;
        if (p === 0) continue;
        const vOff = (h * cap + r) * headDim;
        for (let i = 0; i < headDim; i++) out[qOff + i] += p * kv(v, vOff + i);
      }
    }
  }
}

/** RMS norm as ggml: each square rounded to f32, summed in double; mean, scale in f32. */
export function rmsnormReference(y: Float32Array, x: Float32Array, w: Float32Array, T: number, dim: number, eps: number): void {
  for (let t = 0; t < T; t++) {
    const o = t * dim;
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += Math.fround(x[o + i] * x[o + i]);
    const scale = Math.fround(1 / Math.fround(Math.sqrt(Math.fround(Math.fround(ss / dim) + eps))));
    for (let i = 0; i < dim; i++) y[o + i] = Math.fround(x[o + i] * scale) * w[i];
  }
}

/** SwiGLU: gate <- silu(gate) * up, silu(g) = g / (1 + e^-g) with each step rounded to f32. */
export function swigluReference(gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    gate[i] = Math.fround(g / Math.fround(1 + Math.fround(Math.exp(-g)))) * up[i];
  }
}

// ggml's GELU (tanh approximation, f32 constants) and its f16 table (ggml-cpu: GGML_GELU_FP16).
const GELU_COEF_A = Math.fround(0.044715);
const SQRT_2_OVER_PI = Math.fround(0.7978845608028654);
let geluTable: Float32Array | null = null;

function geluF32(x: number): number {
  const inner = Math.fround(Math.fround(SQRT_2_OVER_PI * x) * Math.fround(1 + Math.fround(Math.fround(GELU_COEF_A * x) * x)));
  return Math.fround(Math.fround(Math.fround(0.5 * x) * Math.fround(1 + Math.fround(Math.tanh(inner)))));
}

/** gelu(x) as ggml's CPU backend: x rounded to f16, gelu in f32, the result rounded to f16. */
export function geluF16(x: number): number {
  if (x <= -10) return 0;
  if (x >= 10) return x;
  if (!geluTable) {
    geluTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) geluTable[h] = f16BitsToF32(f32ToF16Bits(geluF32(f16BitsToF32(h))));
  }
  return geluTable[f32ToF16Bits(x)];
}

/** GEGLU: gate <- gelu(gate) * up. */
export function gegluReference(gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) gate[i] = Math.fround(geluF16(gate[i]) * up[i]);
}

export function addReference(x: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) x[i] += y[i];
}

export function ropeReference(x: Float32Array, T: number, nH: number, headDim: number, ropeDim: number, neox: boolean, cos: Float32Array, sin: Float32Array): void {
  const half = ropeDim / 2;
  const stride = neox ? 1 : 2;
  const partner = neox ? half : 1;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < nH; h++) {
      const o = (t * nH + h) * headDim;
      for (let i = 0; i < half; i++) {
        const a = o + i * stride;
        const b = a + partner;
        const x0 = x[a];
        const x1 = x[b];
        const cs = cos[t * half + i];
        const sn = sin[t * half + i];
        x[a] = x0 * cs - x1 * sn;
        x[b] = x0 * sn + x1 * cs;
      }
    }
  }
}

export const copyRowsReference: CopyRows = (dst, dstOffset, dstStride, src, srcOffset, srcStride, rowLen, nRows) => {
  const f16 = dst instanceof Uint16Array;
  for (let r = 0; r < nRows; r++) {
    const d = dstOffset + r * dstStride;
    const s = srcOffset + r * srcStride;
    for (let i = 0; i < rowLen; i++) dst[d + i] = f16 ? f32ToF16Bits(src[s + i]) : src[s + i];
  }
};

let f16Values: Float32Array | null = null;
/** The value of every F16 bit pattern. */
export function F16_VALUES(): Float32Array {
  if (!f16Values) {
    f16Values = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Values[h] = f16BitsToF32(h);
  }
  return f16Values;
}

export const referenceKernels: Kernels = {
  name: "typescript",
  matmul: matmulReference,
  attention: attentionReference,
  rmsnorm: rmsnormReference,
  swiglu: swigluReference,
  geglu: gegluReference,
  add: addReference,
  rope: ropeReference,
  copyRows: copyRowsReference,
  setThreads: () => {},
};
