// IEEE half (F16) and bfloat16 (BF16) conversions, bit-exact with ggml on x86-64:
//  - f32 -> f16 is what F16C's `vcvtps2ph` computes (round to nearest, ties to even;
//    overflow to inf; subnormal halves kept; a NaN keeps its sign and top payload bits and
//    is made quiet), which ggml-cpu uses for whole runs of 8 or 16 values. ggml's portable
//    `ggml_compute_fp32_to_fp16` (used for single values and row tails) agrees except that
//    it writes every NaN as sign | 0x7E00.
//  - f32 -> bf16 is `ggml_compute_fp32_to_bf16` (ggml-impl.h): ties to even on the bits,
//    NaN forced quiet by or-ing 64 into the truncated bits, subnormals kept.
// Conversions work on bit patterns through one shared scratch word, so no call allocates.

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** Bit pattern of `x` rounded to f32 (the value as a C `float` would hold it). */
export function f32Bits(x: number): number {
  scratchF32[0] = x;
  return scratchU32[0];
}

/** The f32 whose bit pattern is `bits` (as a JS number). */
export function f32FromBits(bits: number): number {
  scratchU32[0] = bits;
  return scratchF32[0];
}

// ---- F16 ----

const F16_INF = 0x7c00;
const F16_QUIET = 0x0200;
const F32_INF_BITS = 0x7f800000;
const F32_MIN_F16_NORMAL_BITS = 0x38800000; // 2^-14, the smallest normal half
const F32_F16_OVERFLOW_BITS = 0x477ff000; // 65520 = 65504 + half an ulp: ties round up to inf
const F32_HALF_MIN_SUBNORMAL_BITS = 0x33000000; // 2^-25: at or below it rounds to 0 (tie -> even 0)
const EXP_REBIAS = (127 - 15) << 23; // f32 exponent bias minus f16 exponent bias, in place

/** f16 bit pattern nearest (ties to even) to the f32 with bit pattern `bits`. */
export function f32BitsToF16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs >= F32_INF_BITS) {
    if (abs === F32_INF_BITS) return sign | F16_INF;
    return sign | F16_INF | F16_QUIET | ((abs >>> 13) & 0x3ff); // NaN: quiet, keep payload top
  }
  if (abs >= F32_F16_OVERFLOW_BITS) return sign | F16_INF;
  if (abs >= F32_MIN_F16_NORMAL_BITS) {
    // Drop 13 mantissa bits with ties-to-even; a carry out of the mantissa bumps the
    // exponent, which is exactly right (and cannot reach inf below the overflow bound).
    const rounded = abs + 0x0fff + ((abs >>> 13) & 1);
    return sign | ((rounded - EXP_REBIAS) >>> 13);
  }
  if (abs <= F32_HALF_MIN_SUBNORMAL_BITS) return sign;
  return sign | f32BitsToF16Subnormal(abs);
}

/** Half subnormal (in units of 2^-24) nearest to a positive f32 in (2^-25, 2^-14). */
function f32BitsToF16Subnormal(abs: number): number {
  const exp = abs >>> 23; // 102..112 here
  const mant = (abs & 0x7fffff) | 0x800000; // value = mant * 2^(exp - 150)
  const shift = 126 - exp; // value / 2^-24 = mant / 2^shift, shift in 14..24
  let q = mant >>> shift;
  const rem = mant - (q << shift);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (q & 1) === 1)) q += 1; // q may reach 0x400: the smallest normal, correctly encoded
  return q;
}

/** f32 value of the half with bit pattern `h` (exact; every half is representable). */
function f16BitsToF32Slow(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : NaN;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

// 64K-entry table (256 KiB): dequantization reads a half per block or per value, and a
// table load beats the bit arithmetic in the hot loop.
const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = f16BitsToF32Slow(h);
  return t;
})();

export function f32ToF16Bits(x: number): number {
  return f32BitsToF16Bits(f32Bits(x));
}

export function f16BitsToF32(h: number): number {
  return F16_TABLE[h & 0xffff];
}

/** The shared f16 -> f32 table, for hot loops that index it directly. */
export function f16Table(): Float32Array {
  return F16_TABLE;
}

// ---- BF16 ----

/** bf16 bit pattern for the f32 with bit pattern `bits`, as ggml_compute_fp32_to_bf16. */
export function f32BitsToBf16Bits(bits: number): number {
  if ((bits & 0x7fffffff) > F32_INF_BITS) return ((bits >>> 16) | 64) & 0xffff;
  // No NaN gets here, so bits + 0x8000 stays below 2^32 and >>> is exact.
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

export function f32ToBf16Bits(x: number): number {
  return f32BitsToBf16Bits(f32Bits(x));
}

export function bf16BitsToF32(h: number): number {
  scratchU32[0] = (h & 0xffff) << 16;
  return scratchF32[0];
}

// ---- whole arrays ----

function bitsView(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** out[i] = x[i] rounded to the nearest half, as f32 (`out` may be `x`). */
export function roundToF16(x: Float32Array, out: Float32Array): void {
  if (out.length < x.length) throw new RangeError(`roundToF16: out has ${out.length} values, needs ${x.length}`);
  const bits = bitsView(x); // bit patterns keep NaN payloads that a JS number might not
  for (let i = 0; i < x.length; i++) out[i] = F16_TABLE[f32BitsToF16Bits(bits[i])];
}

/** out[i] = x[i] rounded to the nearest bf16, as f32 (`out` may be `x`). */
export function roundToBf16(x: Float32Array, out: Float32Array): void {
  if (out.length < x.length) throw new RangeError(`roundToBf16: out has ${out.length} values, needs ${x.length}`);
  const src = bitsView(x);
  const dst = bitsView(out);
  for (let i = 0; i < x.length; i++) dst[i] = f32BitsToBf16Bits(src[i]) << 16;
}
