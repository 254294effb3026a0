// GGML tensor formats in plain TypeScript: row (de)quantization for the types the engine
// reads, bit-exact with ggml (llama.cpp's ggml/src/ggml-quants.c).
//
// Block layouts (ggml-common.h; all little-endian, "half" = IEEE f16):
//   Q4_0  32 values, 18 B: d:half | qs[16]   value j = (((qs[j%16] >> 4*(j>=16)) & 15) - 8) * d
//   Q4_1  32 values, 20 B: d:half | m:half | qs[16]   value j = nibble_j * d + m
//   Q5_0  32 values, 22 B: d:half | qh:u32 | qs[16]   value j = ((nibble_j | bit j of qh << 4) - 16) * d
//   Q5_1  32 values, 24 B: d:half | m:half | qh:u32 | qs[16]   value j = (nibble_j | bit j of qh << 4) * d + m
//   Q8_0  32 values, 34 B: d:half | qs[32] int8   value j = qs[j] * d
//   Q8_1  32 values, 36 B: d:half | s:half (d * Σ qs, for dot products) | qs[32] int8   value j = qs[j] * d
//   Q4_K 256 values, 144 B: d:half | dmin:half | scales[12] (8 x 6-bit scale, 8 x 6-bit min) | qs[128] nibbles
//   Q5_K 256 values, 176 B: d:half | dmin:half | scales[12] | qh[32] (5th bits) | qs[128] nibbles
//   Q6_K 256 values, 210 B: ql[128] (low nibbles) | qh[64] (2 high bits) | scales[16] int8 | d:half
//   Q8_K 256 values, 292 B: d:f32 | qs[256] int8 | bsums[16] int16 (sums of 16 qs each)
//
// Quantizers are ports of ggml's reference code (`quantize_row_*_ref`), every float32
// operation rounded with Math.fround, so their bytes equal ggml's, including Q4_K, Q5_K and
// Q6_K: the plain `_ref` search, which is also what llama-quantize runs without an
// importance matrix (not the imatrix-weighted `quantize_*_impl`). A sum, product, quotient
// or square root of f32 values computed in f64 and then rounded once to f32 equals the f32
// operation, which is why one fround per C operation reproduces C exactly (ggml-base is
// built without FMA contraction; the tests check against its compiled code).

import { GgmlType, SUPPORTED_WEIGHT_TYPES, TYPE_TRAITS, rowBytes, typeName } from "../gguf/types.js";
import { f16Table, f32BitsToBf16Bits, f32BitsToF16Bits } from "./f16.js";

const F16 = f16Table();
const fr = Math.fround;
const QK_K = 256;
const GROUP_MAX_EPS = fr(1e-15);
const FLT_MAX = fr(3.4028234663852886e38);

/** Types dequantizeRow/quantizeRow handle: the weight types plus the activation-only Q8_1, Q8_K. */
export const QUANT_TYPES: ReadonlySet<number> = new Set([...SUPPORTED_WEIGHT_TYPES, GgmlType.Q8_1, GgmlType.Q8_K]);

// ---------------------------------------------------------------- shared helpers

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);
const scratchI32 = new Int32Array(scratchF32.buffer);

function unsupported(type: number): Error {
  if (!TYPE_TRAITS.has(type)) return new Error(`unknown tensor type ${type}`);
  return new Error(`tensor type ${typeName(type)} (${type}) is not supported yet`);
}

/**
 * Throws unless `type` is handled and the row fits both buffers (typed arrays read undefined
 * past their end, which would turn into silent NaNs).
 */
function checkRow(what: string, type: number, n: number, bytes: Uint8Array, byteOffset: number, values: Float32Array, valueOffset: number): void {
  if (!QUANT_TYPES.has(type)) throw unsupported(type);
  for (const [name, v] of [["row length", n], ["byte offset", byteOffset], ["value offset", valueOffset]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${what}: bad ${name} ${v}`);
  }
  const need = rowBytes(type, n);
  if (byteOffset + need > bytes.length) throw new RangeError(`${what}: ${typeName(type)} row of ${n} values needs ${need} bytes, buffer has ${Math.max(0, bytes.length - byteOffset)}`);
  if (valueOffset + n > values.length) throw new RangeError(`${what}: row of ${n} values, array has ${Math.max(0, values.length - valueOffset)}`);
}

function readHalf(b: Uint8Array, o: number): number {
  return F16[b[o] | (b[o + 1] << 8)];
}

function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
}

function writeHalf(b: Uint8Array, o: number, x: number): void {
  scratchF32[0] = x;
  writeU16(b, o, f32BitsToF16Bits(scratchU32[0]));
}

/** Little-endian uint32 as a JS int32 (bit 31 becomes the sign; masks and shifts still work). */
function readI32(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24);
}

function readF32(b: Uint8Array, o: number): number {
  scratchU32[0] = b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24);
  return scratchF32[0];
}

function writeU32(b: Uint8Array, o: number, v: number): void {
  b[o] = v & 0xff;
  b[o + 1] = (v >>> 8) & 0xff;
  b[o + 2] = (v >>> 16) & 0xff;
  b[o + 3] = (v >>> 24) & 0xff;
}

/** The same bytes read as int8 (one view per row, not per block). */
function int8View(b: Uint8Array): Int8Array {
  return new Int8Array(b.buffer, b.byteOffset, b.length);
}

function int8(byte: number): number {
  return (byte << 24) >> 24;
}

/**
 * ggml's `nearest_int`: add 1.5 * 2^23 in f32 and read the low mantissa bits, i.e. round
 * half to even for |v| < 2^22 (and ggml's exact garbage beyond). `v` must be f32-valued.
 */
function nearestInt(v: number): number {
  scratchF32[0] = v + 12582912;
  return (scratchI32[0] & 0x007fffff) - 0x00400000;
}

/** C `roundf`: half away from zero. Exact for f32 inputs (|v| + 0.5 is exact in f64). */
function roundAway(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

/** Bit patterns of x[xOffset .. xOffset+n) without copying. */
function bitsOf(x: Float32Array, xOffset: number, n: number): Uint32Array {
  return new Uint32Array(x.buffer, x.byteOffset + 4 * xOffset, n);
}

// Q4_K / Q5_K pack 8 six-bit scales and 8 six-bit mins into 12 bytes (ggml's get_scale_min_k4):
//   bytes 0-3: scale j (j<4) in bits 0-5; bits 6-7 hold bits 4-5 of scale j+4
//   bytes 4-7: min j (j<4) in bits 0-5;   bits 6-7 hold bits 4-5 of min j+4
//   bytes 8-11: low nibble = bits 0-3 of scale j+4, high nibble = bits 0-3 of min j+4
function kScale(b: Uint8Array, s: number, j: number): number {
  return j < 4 ? b[s + j] & 63 : (b[s + j + 4] & 0xf) | ((b[s + j - 4] >> 6) << 4);
}

function kMin(b: Uint8Array, s: number, j: number): number {
  return j < 4 ? b[s + j + 4] & 63 : (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4);
}

function packKScales(b: Uint8Array, s: number, ls: Uint8Array, lm: Uint8Array): void {
  for (let j = 0; j < 4; j++) {
    b[s + j] = ls[j] | ((ls[j + 4] >> 4) << 6);
    b[s + j + 4] = lm[j] | ((lm[j + 4] >> 4) << 6);
    b[s + j + 8] = (ls[j + 4] & 0xf) | ((lm[j + 4] & 0xf) << 4);
  }
}

// ---------------------------------------------------------------- dequantization

function dequantF32(src: Uint8Array, s: number, n: number, out: Float32Array, o: number): void {
  if (LITTLE_ENDIAN && (src.byteOffset + s) % 4 === 0) {
    out.set(new Float32Array(src.buffer, src.byteOffset + s, n), o);
    return;
  }
  for (let i = 0; i < n; i++) out[o + i] = readF32(src, s + 4 * i);
}

function dequantF16(src: Uint8Array, s: number, n: number, out: Float32Array, o: number): void {
  if (LITTLE_ENDIAN && (src.byteOffset + s) % 2 === 0) {
    const h = new Uint16Array(src.buffer, src.byteOffset + s, n);
    for (let i = 0; i < n; i++) out[o + i] = F16[h[i]];
    return;
  }
  for (let i = 0; i < n; i++, s += 2) out[o + i] = F16[src[s] | (src[s + 1] << 8)];
}

function dequantBf16(src: Uint8Array, s: number, n: number, out: Float32Array, o: number): void {
  const bits = bitsOf(out, o, n); // writing bit patterns keeps NaN payloads
  for (let i = 0; i < n; i++, s += 2) bits[i] = (src[s] << 16) | (src[s + 1] << 24);
}

function dequantQ8_0(src: Uint8Array, s: number, nb: number, out: Float32Array, o: number): void {
  const qs = int8View(src);
  for (let b = 0; b < nb; b++, s += 34, o += 32) {
    const d = readHalf(src, s);
    for (let j = 0; j < 32; j++) out[o + j] = qs[s + 2 + j] * d;
  }
}

// Q8_1: the same values as Q8_0 (ggml has no dequantize_row_q8_1; its `s` only serves dot products).
function dequantQ8_1(src: Uint8Array, s: number, nb: number, out: Float32Array, o: number): void {
  const qs = int8View(src);
  for (let b = 0; b < nb; b++, s += 36, o += 32) {
    const d = readHalf(src, s);
    for (let j = 0; j < 32; j++) out[o + j] = qs[s + 4 + j] * d;
  }
}

function dequantQ4_0(src: Uint8Array, s: number, nb: number, out: Float32Array, o: number): void {
  for (let b = 0; b < nb; b++, s += 18, o += 32) {
    const d = readHalf(src, s);
    for (let j = 0; j < 16; j++) {
      const q = src[s + 2 + j];
      out[o + j] = ((q & 0xf) - 8) * d;
      out[o + j + 16] = ((q >> 4) - 8) * d;
    }
  }
}

// Q4_1 / Q5_1: value = q * d + m. q * d is exact (an f16 times a small integer), so the one
// rounding of the store equals C's f32 addition.
function dequantQ4_1(src: Uint8Array, s: number, nb: number, out: Float32Array, o: number): void {
  for (let b = 0; b < nb; b++, s += 20, o += 32) {
    const d = readHalf(src, s), m = readHalf(src, s + 2);
    for (let j = 0; j < 16; j++) {
      const q = src[s + 4 + j];
      out[o + j] = (q & 0xf) * d + m;
      out[o + j + 16] = (q >> 4) * d + m;
    }
  }
}

// Q5_0 / Q5_1: the 5th bit of value j (j < 32) is bit j of the little-endian uint32 qh.
function dequantQ5_0(src: Uint8Array, s: number, nb: number, out: Float32Array, o: number): void {
  for (let b = 0; b < nb; b++, s += 22, o += 32) {
    const d = readHalf(src, s), qh = readI32(src, s + 2);
    for (let j = 0; j < 16; j++) {
      const q = src[s + 6 + j];
      out[o + j] = (((q & 0xf) | (((qh >>> j) & 1) << 4)) - 16) * d;
      out[o + j + 16] = (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - 16) * d;
    }
  }
}

function dequantQ5_1(src: Uint8Array, s: number, nb: number, out: Float32Array, o: number): void {
  for (let b = 0; b < nb; b++, s += 24, o += 32) {
    const d = readHalf(src, s), m = readHalf(src, s + 2), qh = readI32(src, s + 4);
    for (let j = 0; j < 16; j++) {
      const q = src[s + 8 + j];
      out[o + j] = ((q & 0xf) | (((qh >>> j) & 1) << 4)) * d + m;
      out[o + j + 16] = ((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) * d + m;
    }
  }
}

// Q4_K and Q5_K: value = (d * scale_j) * q - (dmin * min_j) for sub-block j of 32 values.
// Each product is rounded to f32 before the subtraction, as C does, to match it bit for bit.
// (Elsewhere one rounding suffices: an f32 times a small integer is exact in f64.)
function dequantQ4_K(src: Uint8Array, s: number, nb: number, out: Float32Array, o: number): void {
  for (let b = 0; b < nb; b++, s += 144) {
    const d = readHalf(src, s);
    const dmin = readHalf(src, s + 2);
    for (let j = 0; j < 8; j += 2, o += 64) {
      const qs = s + 16 + 16 * j; // 32 bytes: sub-block j in low nibbles, j+1 in high
      const d1 = fr(d * kScale(src, s + 4, j)), m1 = fr(dmin * kMin(src, s + 4, j));
      const d2 = fr(d * kScale(src, s + 4, j + 1)), m2 = fr(dmin * kMin(src, s + 4, j + 1));
      for (let l = 0; l < 32; l++) {
        const q = src[qs + l];
        out[o + l] = fr(d1 * (q & 0xf)) - m1;
        out[o + l + 32] = fr(d2 * (q >> 4)) - m2;
      }
    }
  }
}

function dequantQ5_K(src: Uint8Array, s: number, nb: number, out: Float32Array, o: number): void {
  for (let b = 0; b < nb; b++, s += 176) {
    const d = readHalf(src, s);
    const dmin = readHalf(src, s + 2);
    const qh = s + 16;
    for (let j = 0; j < 8; j += 2, o += 64) {
      const ql = s + 48 + 16 * j;
      const d1 = fr(d * kScale(src, s + 4, j)), m1 = fr(dmin * kMin(src, s + 4, j));
      const d2 = fr(d * kScale(src, s + 4, j + 1)), m2 = fr(dmin * kMin(src, s + 4, j + 1));
      for (let l = 0; l < 32; l++) {
        const q = src[ql + l], h = src[qh + l] >> j; // the 5th bit of sub-block j is bit j of qh[l]
        out[o + l] = fr(d1 * ((q & 0xf) | ((h & 1) << 4))) - m1;
        out[o + l + 32] = fr(d2 * ((q >> 4) | ((h & 2) << 3))) - m2;
      }
    }
  }
}

// Q6_K: each 128-value half uses 64 ql bytes, 32 qh bytes and 8 scales. For l < 32, byte
// ql[l] holds values l (low nibble) and l+64 (high), ql[l+32] holds l+32 and l+96, and qh[l]
// holds the 2 high bits of l, l+32, l+64, l+96 (bits 0-1, 2-3, 4-5, 6-7). Scales go per 16.
function dequantQ6_K(src: Uint8Array, s: number, nb: number, out: Float32Array, o: number): void {
  for (let b = 0; b < nb; b++, s += 210) {
    const d = readHalf(src, s + 208);
    for (let half = 0; half < 2; half++, o += 128) {
      const ql = s + 64 * half, qh = s + 128 + 32 * half, sc = s + 192 + 8 * half;
      for (let g = 0; g < 2; g++) {
        // values 16g..16g+15 of each 32-run share scales sc[g], sc[g+2], sc[g+4], sc[g+6]
        const d1 = fr(d * int8(src[sc + g])), d2 = fr(d * int8(src[sc + g + 2]));
        const d3 = fr(d * int8(src[sc + g + 4])), d4 = fr(d * int8(src[sc + g + 6]));
        for (let l = 16 * g; l < 16 * g + 16; l++) {
          const lo = src[ql + l], hi = src[ql + l + 32], h = src[qh + l];
          out[o + l] = d1 * (((lo & 0xf) | ((h & 3) << 4)) - 32);
          out[o + l + 32] = d2 * (((hi & 0xf) | (((h >> 2) & 3) << 4)) - 32);
          out[o + l + 64] = d3 * (((lo >> 4) | (((h >> 4) & 3) << 4)) - 32);
          out[o + l + 96] = d4 * (((hi >> 4) | (((h >> 6) & 3) << 4)) - 32);
        }
      }
    }
  }
}

function dequantQ8_K(src: Uint8Array, s: number, nb: number, out: Float32Array, o: number): void {
  const qs = int8View(src);
  for (let b = 0; b < nb; b++, s += 292, o += QK_K) {
    const d = readF32(src, s);
    for (let j = 0; j < QK_K; j++) out[o + j] = d * qs[s + 4 + j];
  }
}

/**
 * Decodes `n` values of `type` starting at byte `srcOffset` into out[outOffset ..].
 * `n` must be a multiple of the type's block size. Results equal ggml's dequantize_row_*.
 */
export function dequantizeRow(type: number, src: Uint8Array, srcOffset: number, n: number, out: Float32Array, outOffset: number): void {
  checkRow("dequantizeRow", type, n, src, srcOffset, out, outOffset);
  switch (type) {
    case GgmlType.F32: return dequantF32(src, srcOffset, n, out, outOffset);
    case GgmlType.F16: return dequantF16(src, srcOffset, n, out, outOffset);
    case GgmlType.BF16: return dequantBf16(src, srcOffset, n, out, outOffset);
    case GgmlType.Q8_0: return dequantQ8_0(src, srcOffset, n / 32, out, outOffset);
    case GgmlType.Q8_1: return dequantQ8_1(src, srcOffset, n / 32, out, outOffset);
    case GgmlType.Q4_0: return dequantQ4_0(src, srcOffset, n / 32, out, outOffset);
    case GgmlType.Q4_1: return dequantQ4_1(src, srcOffset, n / 32, out, outOffset);
    case GgmlType.Q5_0: return dequantQ5_0(src, srcOffset, n / 32, out, outOffset);
    case GgmlType.Q5_1: return dequantQ5_1(src, srcOffset, n / 32, out, outOffset);
    case GgmlType.Q4_K: return dequantQ4_K(src, srcOffset, n / QK_K, out, outOffset);
    case GgmlType.Q5_K: return dequantQ5_K(src, srcOffset, n / QK_K, out, outOffset);
    case GgmlType.Q6_K: return dequantQ6_K(src, srcOffset, n / QK_K, out, outOffset);
    case GgmlType.Q8_K: return dequantQ8_K(src, srcOffset, n / QK_K, out, outOffset);
  }
  throw unsupported(type);
}

// ---------------------------------------------------------------- plain and 8-bit quantizers

function quantF32(x: Float32Array, xo: number, n: number, dst: Uint8Array, d: number): void {
  const bits = bitsOf(x, xo, n);
  for (let i = 0; i < n; i++, d += 4) writeU32(dst, d, bits[i]);
}

function quantF16(x: Float32Array, xo: number, n: number, dst: Uint8Array, d: number): void {
  const bits = bitsOf(x, xo, n);
  for (let i = 0; i < n; i++, d += 2) writeU16(dst, d, f32BitsToF16Bits(bits[i]));
}

function quantBf16(x: Float32Array, xo: number, n: number, dst: Uint8Array, d: number): void {
  const bits = bitsOf(x, xo, n);
  for (let i = 0; i < n; i++, d += 2) writeU16(dst, d, f32BitsToBf16Bits(bits[i]));
}

function absMax(x: Float32Array, xo: number, n: number): number {
  let amax = 0;
  for (let j = 0; j < n; j++) amax = Math.max(amax, Math.abs(x[xo + j]));
  return amax;
}

/** The signed value of largest magnitude (the first one on ties), or 0. */
function signedAbsMax(x: Float32Array, xo: number, n: number): number {
  let amax = 0, max = 0;
  for (let j = 0; j < n; j++) {
    const v = x[xo + j];
    if (Math.abs(v) > amax) { amax = Math.abs(v); max = v; }
  }
  return max;
}

// quantize_row_q8_0_ref: d = amax/127, q = roundf(x * (1/d)) (ties away from zero).
// ggml-cpu's AVX/AVX2/AVX-512 quantize_row_q8_0 (arch/x86/quants.c): same d, but it scales
// by 127/amax (not 1/d, which can differ by an ulp) and rounds ties to even.
// Q8_1 quantizes its 32 values exactly as Q8_0 does in both variants, and adds
// s = d * Σq (ref: the sum of the stored int8s; x86: of the int32s before they are packed
// to int8, the same numbers for finite input), an f32 product stored as f16.
/** Writes d and qs[32] at dst[d0], dst[q0 ..]; leaves d (f32) and Σq in `q8`. */
function q8Block(x: Float32Array, xo: number, dst: Uint8Array, d0: number, q0: number, x86: boolean): void {
  const amax = absMax(x, xo, 32);
  const d = fr(amax / 127);
  writeHalf(dst, d0, d);
  let sum = 0;
  if (x86) {
    const id = amax !== 0 ? fr(127 / amax) : 0;
    for (let j = 0; j < 32; j++) {
      const q = nearestInt(fr(x[xo + j] * id));
      sum += q;
      dst[q0 + j] = Math.max(-128, Math.min(127, q)) & 0xff;
    }
  } else {
    const id = d ? fr(1 / d) : 0;
    for (let j = 0; j < 32; j++) {
      const q = roundAway(fr(x[xo + j] * id));
      dst[q0 + j] = q & 0xff;
      sum += int8(q);
    }
  }
  q8.d = d;
  q8.sum = sum;
}

const q8 = { d: 0, sum: 0 };

function quantQ8_0(x: Float32Array, xo: number, nb: number, dst: Uint8Array, o: number): void {
  for (let b = 0; b < nb; b++, xo += 32, o += 34) q8Block(x, xo, dst, o, o + 2, false);
}

function quantQ8_0X86(x: Float32Array, xo: number, nb: number, dst: Uint8Array, o: number): void {
  for (let b = 0; b < nb; b++, xo += 32, o += 34) q8Block(x, xo, dst, o, o + 2, true);
}

function quantQ8_1(x: Float32Array, xo: number, nb: number, dst: Uint8Array, o: number, x86 = false): void {
  for (let b = 0; b < nb; b++, xo += 32, o += 36) {
    q8Block(x, xo, dst, o, o + 4, x86);
    writeHalf(dst, o + 2, fr(q8.sum * q8.d));
  }
}

// quantize_row_q4_0_ref: d = max / -8 where max is the signed value of largest magnitude,
// q = min(15, trunc(x/d + 8.5)); values j and j+16 share byte j.
function quantQ4_0(x: Float32Array, xo: number, nb: number, dst: Uint8Array, o: number): void {
  for (let b = 0; b < nb; b++, xo += 32, o += 18) {
    const d = fr(signedAbsMax(x, xo, 32) / -8);
    const id = d ? fr(1 / d) : 0;
    writeHalf(dst, o, d);
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(fr(fr(x[xo + j] * id) + 8.5)));
      const q1 = Math.min(15, Math.trunc(fr(fr(x[xo + j + 16] * id) + 8.5)));
      dst[o + 2 + j] = q0 | (q1 << 4);
    }
  }
}

/** The signed maximum and minimum of x[xo..xo+32), starting from ∓FLT_MAX as ggml does. */
function minMax32(x: Float32Array, xo: number): void {
  let min = FLT_MAX, max = -FLT_MAX;
  for (let j = 0; j < 32; j++) {
    const v = x[xo + j];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  mm.min = min;
  mm.max = max;
}

const mm = { min: 0, max: 0 };

// quantize_row_q4_1_ref: d = (max - min)/15, m = min, q = min(15, trunc((x - min) * (1/d) + 0.5)).
function quantQ4_1(x: Float32Array, xo: number, nb: number, dst: Uint8Array, o: number): void {
  for (let b = 0; b < nb; b++, xo += 32, o += 20) {
    minMax32(x, xo);
    const min = mm.min;
    const d = fr(fr(mm.max - min) / 15);
    const id = d ? fr(1 / d) : 0;
    writeHalf(dst, o, d);
    writeHalf(dst, o + 2, min);
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(15, Math.trunc(fr(fr(fr(x[xo + j] - min) * id) + 0.5)));
      const q1 = Math.min(15, Math.trunc(fr(fr(fr(x[xo + j + 16] - min) * id) + 0.5)));
      dst[o + 4 + j] = q0 | (q1 << 4);
    }
  }
}

// quantize_row_q5_0_ref: like Q4_0 with 32 levels: d = max / -16, q = min(31, trunc(x/d + 16.5)).
function quantQ5_0(x: Float32Array, xo: number, nb: number, dst: Uint8Array, o: number): void {
  for (let b = 0; b < nb; b++, xo += 32, o += 22) {
    const d = fr(signedAbsMax(x, xo, 32) / -16);
    const id = d ? fr(1 / d) : 0;
    writeHalf(dst, o, d);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = Math.min(31, Math.trunc(fr(fr(x[xo + j] * id) + 16.5)));
      const q1 = Math.min(31, Math.trunc(fr(fr(x[xo + j + 16] * id) + 16.5)));
      dst[o + 6 + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
      qh |= ((q0 >> 4) << j) | ((q1 >> 4) << (j + 16));
    }
    writeU32(dst, o + 2, qh);
  }
}

// quantize_row_q5_1_ref: like Q4_1 with 32 levels (d = (max - min)/31), and no clamp to 31:
// q = (uint8_t)((x - min) * (1/d) + 0.5), of which only the low 5 bits are stored.
function quantQ5_1(x: Float32Array, xo: number, nb: number, dst: Uint8Array, o: number): void {
  for (let b = 0; b < nb; b++, xo += 32, o += 24) {
    minMax32(x, xo);
    const min = mm.min;
    const d = fr(fr(mm.max - min) / 31);
    const id = d ? fr(1 / d) : 0;
    writeHalf(dst, o, d);
    writeHalf(dst, o + 2, min);
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = Math.trunc(fr(fr(fr(x[xo + j] - min) * id) + 0.5)) & 0xff;
      const q1 = Math.trunc(fr(fr(fr(x[xo + j + 16] - min) * id) + 0.5)) & 0xff;
      dst[o + 8 + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
      qh |= (((q0 >> 4) & 1) << j) | (((q1 >> 4) & 1) << (j + 16));
    }
    writeU32(dst, o + 4, qh);
  }
}

// quantize_row_q8_K_ref: iscale = -127/max (max signed, largest magnitude), q = nearest_int,
// d = 1/iscale stored as f32, plus the int16 sums of each 16 quants.
function quantQ8_K(x: Float32Array, xo: number, nb: number, dst: Uint8Array, o: number): void {
  for (let b = 0; b < nb; b++, xo += QK_K, o += 292) {
    const max = signedAbsMax(x, xo, QK_K);
    if (max === 0) {
      dst.fill(0, o, o + 292); // ggml leaves bsums untouched here; zero is their true value
      continue;
    }
    const iscale = fr(-127 / max);
    for (let j = 0; j < QK_K; j++) dst[o + 4 + j] = Math.min(127, nearestInt(fr(iscale * x[xo + j]))) & 0xff;
    for (let g = 0; g < 16; g++) {
      let sum = 0;
      for (let j = 0; j < 16; j++) sum += int8(dst[o + 4 + 16 * g + j]);
      writeU16(dst, o + 260 + 2 * g, sum & 0xffff);
    }
    scratchF32[0] = 1 / iscale;
    writeU32(dst, o, scratchU32[0]);
  }
}

// ---------------------------------------------------------------- k-quant search (ports of ggml)

// Module-level scratch: quantization is synchronous and each worker has its own module.
const L = new Uint8Array(QK_K); // chosen quant per value
const Laux = new Uint8Array(32);
const weights = new Float32Array(32);
const subScales = new Float32Array(16);
const subMins = new Float32Array(16);
const Ls = new Uint8Array(8);
const Lm = new Uint8Array(8);
const qkx = { min: 0 };

/**
 * ggml's make_qkx2_quants: fit x[xo..xo+n) ≈ scale * L - min with L in [0, nmax], trying
 * nstep+1 candidate scales around nmax/(max-min) and keeping the least weighted squared
 * error. Returns scale; writes L[lo..lo+n) and qkx.min (the positive offset subtracted).
 */
function makeQkx2Quants(n: number, nmax: number, x: Float32Array, xo: number, lo: number, rmin: number, rdelta: number, nstep: number): number {
  let min = x[xo], max = x[xo];
  let sumW = weights[0];
  let sumX = fr(sumW * x[xo]);
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i], w = weights[i];
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    sumW = fr(sumW + w);
    sumX = fr(sumX + fr(w * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lo, lo + n);
    qkx.min = -min;
    return 0;
  }
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = clamp(nearestInt(fr(iscale * fr(x[xo + i] - min))), 0, nmax);
    L[lo + i] = l;
    const diff = fr(fr(fr(scale * l) + min) - x[xo + i]);
    bestError = fr(bestError + fr(weights[i] * fr(diff * diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    // `min` moves to the best fit so far, so later candidates are scaled to the new range
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i];
      const l = clamp(nearestInt(fr(iscale * fr(xi - min))), 0, nmax);
      Laux[i] = l;
      const wl = fr(weights[i] * l);
      sumL = fr(sumL + wl);
      sumL2 = fr(sumL2 + fr(wl * l));
      sumXL = fr(sumXL + fr(wl * xi));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (!(D > 0)) continue;
    let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
    let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
    if (thisMin > 0) {
      thisMin = 0;
      thisScale = fr(sumXL / sumL2);
    }
    let curError = 0;
    for (let i = 0; i < n; i++) {
      const diff = fr(fr(fr(thisScale * Laux[i]) + thisMin) - x[xo + i]);
      curError = fr(curError + fr(weights[i] * fr(diff * diff)));
    }
    if (curError < bestError) {
      L.set(Laux.subarray(0, n), lo);
      bestError = curError;
      scale = thisScale;
      min = thisMin;
    }
  }
  qkx.min = -min;
  return scale;
}

/**
 * ggml's make_qx_quants with rmse_type 1 and no importance weights (what Q6_K's ref uses):
 * symmetric fit x ≈ scale * (L - nmax), L in [0, 2*nmax), weights x², trying 19 scales.
 */
function makeQxQuants(n: number, nmax: number, x: Float32Array, xo: number, lo: number): number {
  const max = signedAbsMax(x, xo, n);
  if (Math.abs(max) < GROUP_MAX_EPS) {
    L.fill(0, lo, lo + n);
    return 0;
  }
  let iscale = fr(-nmax / max);
  qxSums(n, nmax, x, xo, lo, iscale, true);
  let scale = qx.suml2 ? fr(qx.sumlx / qx.suml2) : 0;
  let best = fr(scale * qx.sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(fr(0.1) * is)) / max);
    qxSums(n, nmax, x, xo, lo, iscale, false);
    if (qx.suml2 > 0 && fr(qx.sumlx * qx.sumlx) > fr(best * qx.suml2)) {
      qxSums(n, nmax, x, xo, lo, iscale, true);
      scale = fr(qx.sumlx / qx.suml2);
      best = fr(scale * qx.sumlx);
    }
  }
  return scale;
}

const qx = { sumlx: 0, suml2: 0 };

/** Sums Σ w·x·l and Σ w·l² (w = x²) for l = nearest(iscale·x); stores L when `store`. */
function qxSums(n: number, nmax: number, x: Float32Array, xo: number, lo: number, iscale: number, store: boolean): void {
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i];
    const l = clamp(nearestInt(fr(iscale * xi)), -nmax, nmax - 1);
    if (store) L[lo + i] = l + nmax;
    const w = fr(xi * xi);
    sumlx = fr(sumlx + fr(fr(w * xi) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  qx.sumlx = sumlx;
  qx.suml2 = suml2;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

// ---------------------------------------------------------------- Q4_K / Q5_K / Q6_K

/**
 * First pass shared by Q4_K and Q5_K (quantize_row_q{4,5}_K_ref): fit each 32-value
 * sub-block with weights |x| + rms(x), then quantize the 8 scales and 8 mins to 6 bits
 * against their maxima. Writes d, dmin and the packed scales at dst[o..o+16).
 */
function kQuantScales(x: Float32Array, xo: number, nmax: number, rmin: number, nstep: number, dst: Uint8Array, o: number): void {
  let maxScale = 0, maxMin = 0;
  for (let j = 0; j < 8; j++) {
    const xs = xo + 32 * j;
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(x[xs + l] * x[xs + l]));
    const avX = fr(Math.sqrt(fr(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = avX + Math.abs(x[xs + l]);
    subScales[j] = makeQkx2Quants(32, nmax, x, xs, 32 * j, rmin, fr(0.1), nstep);
    subMins[j] = qkx.min;
    if (subScales[j] > maxScale) maxScale = subScales[j];
    if (subMins[j] > maxMin) maxMin = subMins[j];
  }
  const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
  for (let j = 0; j < 8; j++) {
    Ls[j] = Math.min(63, nearestInt(fr(invScale * subScales[j])) & 0xff); // C stores to uint8_t first
    Lm[j] = Math.min(63, nearestInt(fr(invMin * subMins[j])) & 0xff);
  }
  writeHalf(dst, o, fr(maxScale / 63));
  writeHalf(dst, o + 2, fr(maxMin / 63));
  packKScales(dst, o + 4, Ls, Lm);
}

/** Second pass: requantize each value against the stored (rounded) scales and mins into L. */
function kQuantValues(x: Float32Array, xo: number, nmax: number, dst: Uint8Array, o: number): void {
  const d = readHalf(dst, o), dmin = readHalf(dst, o + 2);
  for (let j = 0; j < 8; j++) {
    const dj = fr(d * kScale(dst, o + 4, j));
    if (!dj) continue; // keep the first pass's L, as ggml does
    const mj = fr(dmin * kMin(dst, o + 4, j));
    for (let i = 32 * j; i < 32 * j + 32; i++) L[i] = clamp(nearestInt(fr(fr(x[xo + i] + mj) / dj)), 0, nmax);
  }
}

function quantQ4_K(x: Float32Array, xo: number, nb: number, dst: Uint8Array, o: number): void {
  for (let b = 0; b < nb; b++, xo += QK_K, o += 144) {
    kQuantScales(x, xo, 15, -1, 20, dst, o);
    kQuantValues(x, xo, 15, dst, o);
    for (let j = 0; j < 4; j++) {
      const qs = o + 16 + 32 * j;
      for (let l = 0; l < 32; l++) dst[qs + l] = L[64 * j + l] | (L[64 * j + l + 32] << 4);
    }
  }
}

function quantQ5_K(x: Float32Array, xo: number, nb: number, dst: Uint8Array, o: number): void {
  for (let b = 0; b < nb; b++, xo += QK_K, o += 176) {
    kQuantScales(x, xo, 31, -0.5, 15, dst, o);
    kQuantValues(x, xo, 31, dst, o);
    const qh = o + 16;
    dst.fill(0, qh, qh + 32);
    for (let j = 0; j < 4; j++) {
      const ql = o + 48 + 32 * j;
      for (let l = 0; l < 32; l++) {
        const l1 = L[64 * j + l], l2 = L[64 * j + l + 32];
        dst[ql + l] = (l1 & 0xf) | ((l2 & 0xf) << 4);
        dst[qh + l] |= ((l1 >> 4) << (2 * j)) | ((l2 >> 4) << (2 * j + 1));
      }
    }
  }
}

// quantize_row_q6_K_ref: 16 symmetric sub-blocks of 16 (make_qx_quants, nmax 32); their
// scales become int8 against the largest-magnitude scale, then values are requantized.
function quantQ6_K(x: Float32Array, xo: number, nb: number, dst: Uint8Array, o: number): void {
  for (let b = 0; b < nb; b++, xo += QK_K, o += 210) {
    let maxScale = 0, maxAbsScale = 0;
    for (let ib = 0; ib < 16; ib++) {
      subScales[ib] = makeQxQuants(16, 32, x, xo + 16 * ib, 16 * ib);
      if (Math.abs(subScales[ib]) > maxAbsScale) { maxAbsScale = Math.abs(subScales[ib]); maxScale = subScales[ib]; }
    }
    if (maxAbsScale < GROUP_MAX_EPS) {
      dst.fill(0, o, o + 210);
      continue;
    }
    const iscale = fr(-128 / maxScale);
    writeHalf(dst, o + 208, fr(1 / iscale));
    for (let ib = 0; ib < 16; ib++) dst[o + 192 + ib] = Math.min(127, nearestInt(fr(iscale * subScales[ib]))) & 0xff;
    q6Values(x, xo, dst, o);
    packQ6(dst, o);
  }
}

function q6Values(x: Float32Array, xo: number, dst: Uint8Array, o: number): void {
  const d = readHalf(dst, o + 208);
  for (let j = 0; j < 16; j++) {
    const dj = fr(d * int8(dst[o + 192 + j]));
    if (!dj) continue;
    for (let i = 16 * j; i < 16 * j + 16; i++) L[i] = clamp(nearestInt(fr(x[xo + i] / dj)), -32, 31) + 32;
  }
}

function packQ6(dst: Uint8Array, o: number): void {
  for (let half = 0; half < 2; half++) {
    const ql = o + 64 * half, qh = o + 128 + 32 * half, v = 128 * half;
    for (let l = 0; l < 32; l++) {
      const q1 = L[v + l], q2 = L[v + l + 32], q3 = L[v + l + 64], q4 = L[v + l + 96];
      dst[ql + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
      dst[ql + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
      dst[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
    }
  }
}

// ---------------------------------------------------------------- public API

/**
 * Encodes x[xOffset .. xOffset+n) as `type` into dst[dstOffset ..], byte-identical to ggml's
 * reference quantizers (quantize_row_*_ref; F16 as F16C, BF16 as ggml_compute_fp32_to_bf16).
 */
export function quantizeRow(type: number, x: Float32Array, xOffset: number, n: number, dst: Uint8Array, dstOffset: number): void {
  checkRow("quantizeRow", type, n, dst, dstOffset, x, xOffset);
  switch (type) {
    case GgmlType.F32: return quantF32(x, xOffset, n, dst, dstOffset);
    case GgmlType.F16: return quantF16(x, xOffset, n, dst, dstOffset);
    case GgmlType.BF16: return quantBf16(x, xOffset, n, dst, dstOffset);
    case GgmlType.Q8_0: return quantQ8_0(x, xOffset, n / 32, dst, dstOffset);
    case GgmlType.Q8_1: return quantQ8_1(x, xOffset, n / 32, dst, dstOffset);
    case GgmlType.Q4_0: return quantQ4_0(x, xOffset, n / 32, dst, dstOffset);
    case GgmlType.Q4_1: return quantQ4_1(x, xOffset, n / 32, dst, dstOffset);
    case GgmlType.Q5_0: return quantQ5_0(x, xOffset, n / 32, dst, dstOffset);
    case GgmlType.Q5_1: return quantQ5_1(x, xOffset, n / 32, dst, dstOffset);
    case GgmlType.Q4_K: return quantQ4_K(x, xOffset, n / QK_K, dst, dstOffset);
    case GgmlType.Q5_K: return quantQ5_K(x, xOffset, n / QK_K, dst, dstOffset);
    case GgmlType.Q6_K: return quantQ6_K(x, xOffset, n / QK_K, dst, dstOffset);
    case GgmlType.Q8_K: return quantQ8_K(x, xOffset, n / QK_K, dst, dstOffset);
  }
  throw unsupported(type);
}

/**
 * What ggml-cpu's `from_float` for `type` produces on x86-64 builds with AVX, AVX2 or
 * AVX-512 (every x64 CPU variant node-llama-cpp ships except `sse42`). That is quantizeRow
 * except for Q8_0 and Q8_1, whose SIMD quantizers round ties to even and scale by 127/amax;
 * use this for activations when matching llama.cpp's logits on such a machine.
 */
export function quantizeRowX86(type: number, x: Float32Array, xOffset: number, n: number, dst: Uint8Array, dstOffset: number): void {
  if (type !== GgmlType.Q8_0 && type !== GgmlType.Q8_1) return quantizeRow(type, x, xOffset, n, dst, dstOffset);
  checkRow("quantizeRowX86", type, n, dst, dstOffset, x, xOffset);
  if (type === GgmlType.Q8_0) quantQ8_0X86(x, xOffset, n / 32, dst, dstOffset);
  else quantQ8_1(x, xOffset, n / 32, dst, dstOffset, true);
}

/** Quantizes a row-major [nRows, nCols] matrix row by row (nCols a multiple of the block size). */
export function quantizeTensor(type: number, data: Float32Array, nRows: number, nCols: number): Uint8Array {
  if (data.length < nRows * nCols) throw new RangeError(`quantizeTensor: ${nRows}x${nCols} needs ${nRows * nCols} values, got ${data.length}`);
  if (!QUANT_TYPES.has(type)) throw unsupported(type);
  const rb = rowBytes(type, nCols);
  const out = new Uint8Array(rb * nRows);
  for (let r = 0; r < nRows; r++) quantizeRow(type, data, r * nCols, nCols, out, r * rb);
  return out;
}

/**
 * The type llama.cpp's CPU backend converts activations to before a dot product with
 * weights of `type` (type_traits_cpu[type].vec_dot_type in ggml-cpu.c).
 */
export function vecDotType(type: number): GgmlType {
  switch (type) {
    case GgmlType.F32: return GgmlType.F32;
    case GgmlType.F16: return GgmlType.F16;
    case GgmlType.BF16: return GgmlType.BF16;
    case GgmlType.Q8_0:
    case GgmlType.Q4_0:
    case GgmlType.Q5_0: return GgmlType.Q8_0;
    case GgmlType.Q8_1:
    case GgmlType.Q4_1:
    case GgmlType.Q5_1: return GgmlType.Q8_1;
    case GgmlType.Q4_K:
    case GgmlType.Q5_K:
    case GgmlType.Q6_K: return GgmlType.Q8_K;
  }
  throw unsupported(type);
}
