// Native kernels (native/, loaded by src/kernels/native.ts) against the TypeScript reference
// kernels (src/kernels/reference.ts) on random inputs: every weight type, several shapes,
// thread counts and instruction-set levels (AVX-512, AVX2 and scalar code paths where the CPU
// has them), attention with random masks, several sequences, GQA groups, rows that see
// nothing and a long cache.
//
// Agreement: |native - reference| <= 1e-4 * max |reference| over the whole output (plus 1e-30
// for all-zero outputs). Both sides quantize the activations identically (bit for bit); what
// remains is float summation order.
//
// The addon must be built (npm run build:native): without it these tests fail, unless
// PARALLELCOMP_NO_NATIVE=1 is set, in which case they are skipped.

import { rng } from "../src/util/rng.js";
import { test } from "node:test";
import assert from "node:assert/strict";

import { GgmlType, rowBytes, typeName } from "../src/gguf/types.js";
import { loadNativeKernels, type NativeIsa, type NativeKernels } from "../src/kernels/native.js";
import { referenceKernels } from "../src/kernels/reference.js";
import type { AttentionArgs, MatmulArgs } from "../src/kernels/types.js";
import { quantizeTensor } from "../src/tensor/quant.js";
import { f16BitsToF32, f32ToF16Bits } from "../src/tensor/f16.js";

const SKIP = process.env.PARALLELCOMP_NO_NATIVE === "1" ? "PARALLELCOMP_NO_NATIVE=1" : false;
const TOL = 1e-4;

function native(): NativeKernels {
  const r = loadNativeKernels();
  if ("error" in r) assert.fail(`native kernels unavailable: ${r.error} (run npm run build:native, or set PARALLELCOMP_NO_NATIVE=1 to skip)`);
  return r.kernels;
}

/** Instruction-set levels this CPU can run, best first. */
function isaLevels(k: NativeKernels): NativeIsa[] {
  const all: NativeIsa[] = ["avx512", "avx2", "scalar"];
  return all.slice(all.indexOf(k.info().detectedIsa));
}

const makeRng = rng; // the project's seeded PRNG (generate/sampler.ts)

function randomArray(rng: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng() * 2 - 1) * scale;
  return a;
}

/** max |a - b| / max |b|, checked against TOL with a readable message. */
function assertClose(got: Float32Array, want: Float32Array, n: number, what: string): void {
  let maxRef = 0, maxErr = 0, at = -1;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(got[i])) assert.fail(`${what}: non-finite value ${got[i]} at ${i}`);
    maxRef = Math.max(maxRef, Math.abs(want[i]));
    const e = Math.abs(got[i] - want[i]);
    if (e > maxErr) { maxErr = e; at = i; }
  }
  if (maxErr > TOL * maxRef + 1e-30) {
    assert.fail(`${what}: max error ${maxErr.toExponential(3)} at ${at} (native ${got[at]}, reference ${want[at]}), ` +
      `${(maxErr / maxRef).toExponential(3)} of max |reference| ${maxRef.toExponential(3)}`);
  }
}

// ---------------------------------------------------------------- matmul

const FLOAT_TYPES = [GgmlType.F32, GgmlType.F16, GgmlType.BF16];
const Q32_TYPES = [GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q5_0, GgmlType.Q4_1, GgmlType.Q5_1];
const K_TYPES = [GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K];

function encodeWeights(type: number, data: Float32Array, nOut: number, nIn: number): Uint8Array {
  if (type === GgmlType.F32) return new Uint8Array(data.buffer, data.byteOffset, nOut * nIn * 4);
  return quantizeTensor(type, data, nOut, nIn);
}

/** Activations with the awkward cases mixed in: an all-zero token, a token with one huge
 *  value, tiny values, and otherwise uniform values of varying scale. */
function randomActivations(rng: () => number, T: number, nIn: number): Float32Array {
  const x = new Float32Array(T * nIn);
  for (let t = 0; t < T; t++) {
    const scale = t % 4 === 1 ? 1e-3 : t % 4 === 2 ? 30 : 1;
    for (let i = 0; i < nIn; i++) x[t * nIn + i] = (rng() * 2 - 1) * scale;
  }
  if (T > 1) x.fill(0, nIn, 2 * nIn); // token 1: all zero
  if (T > 2) x[2 * nIn + 5] = 1000; // token 2: an outlier
  return x;
}

function checkMatmul(k: NativeKernels, type: number, T: number, nOut: number, nIn: number, seed: number, threads: number[]): void {
  const rng = makeRng(seed);
  const w = encodeWeights(type, randomArray(rng, nOut * nIn), nOut, nIn);
  const x = randomActivations(rng, T, nIn);
  const want = new Float32Array(T * nOut);
  referenceKernels.matmul({ w, type, nOut, nIn, x, T, y: want });
  for (const isa of isaLevels(k)) {
    k.setIsa(isa);
    for (const n of threads) {
      k.setThreads(n);
      const y = new Float32Array(T * nOut).fill(Number.NaN);
      k.matmul({ w, type, nOut, nIn, x, T, y });
      assertClose(y, want, T * nOut, `${typeName(type)} T=${T} nOut=${nOut} nIn=${nIn} ${isa} threads=${n}`);
    }
  }
  k.setIsa(k.info().detectedIsa);
}

const TS = [1, 3, 17, 64];
const OUTS = [7, 33, 100];
const THREADS = [[1], [2], [3, 1]];

for (const type of [...FLOAT_TYPES, ...Q32_TYPES, ...K_TYPES]) {
  const nIns = K_TYPES.includes(type) ? [256, 512, 1536] : [256, 576, 1536];
  test(`matmul ${typeName(type)}: native equals the reference (T in ${TS}, nIn in ${nIns})`, { skip: SKIP }, () => {
    const k = native();
    let i = 0;
    for (const T of TS) {
      for (const nIn of nIns) {
        checkMatmul(k, type, T, OUTS[i % OUTS.length], nIn, 1000 * type + i, THREADS[i % THREADS.length]);
        i++;
      }
    }
  });
}

test("matmul: larger shapes (several packed panels per thread, token remainders)", { skip: SKIP }, () => {
  const k = native();
  checkMatmul(k, GgmlType.F16, 131, 300, 576, 7, [2, 1]);
  checkMatmul(k, GgmlType.BF16, 40, 129, 320, 8, [2]); // nIn not a multiple of 16 or 8 blocks
  checkMatmul(k, GgmlType.F32, 9, 70, 100, 9, [2]); // nIn = 100: tails everywhere
  checkMatmul(k, GgmlType.Q8_0, 70, 260, 576, 10, [2]);
  checkMatmul(k, GgmlType.Q8_0, 9, 37, 800, 15, [2]); // 25 blocks: the 512-bit tile's odd last block
  checkMatmul(k, GgmlType.Q4_K, 70, 130, 768, 11, [2]);
  checkMatmul(k, GgmlType.Q6_K, 5, 1000, 256, 12, [2, 3]);
});

test("matmul: T = 0, nOut = 0 and tiny shapes are fine", { skip: SKIP }, () => {
  const k = native();
  const y = new Float32Array(4).fill(7);
  k.matmul({ w: new Uint8Array(0), type: GgmlType.F16, nOut: 0, nIn: 256, x: new Float32Array(256), T: 1, y });
  k.matmul({ w: new Uint8Array(2 * 256 * 2), type: GgmlType.F16, nOut: 2, nIn: 256, x: new Float32Array(0), T: 0, y });
  assert.deepEqual([...y], [7, 7, 7, 7]);
  checkMatmul(k, GgmlType.F16, 2, 1, 16, 13, [2]);
  checkMatmul(k, GgmlType.Q8_0, 1, 1, 32, 14, [2]);
});

test("matmul: argument errors name the argument and the sizes", { skip: SKIP }, () => {
  const k = native();
  const nIn = 64, nOut = 3, T = 2;
  const w = new Uint8Array(rowBytes(GgmlType.Q8_0, nIn) * nOut);
  const base: MatmulArgs = { w, type: GgmlType.Q8_0, nOut, nIn, x: new Float32Array(T * nIn), T, y: new Float32Array(T * nOut) };
  assert.throws(() => k.matmul({ ...base, w: w.subarray(1) }), /matmul: w has length 203, expected at least 204/);
  assert.throws(() => k.matmul({ ...base, x: new Float32Array(10) }), /matmul: x has length 10, expected at least 128/);
  assert.throws(() => k.matmul({ ...base, y: new Float32Array(5) }), /matmul: y has length 5, expected at least 6/);
  assert.throws(() => k.matmul({ ...base, nIn: 48, w: new Uint8Array(1000) }), /not a multiple of Q8_0's block size 32/);
  assert.throws(() => k.matmul({ ...base, type: GgmlType.Q2_K }), /Q2_K is not supported/);
  assert.throws(() => k.matmul({ ...base, T: 1.5 }), /T must be an integer/);
  assert.throws(() => k.matmul({ ...base, x: new Float64Array(T * nIn) as unknown as Float32Array }), /x must be a Float32Array/);
});

test("setThreads: safe to call repeatedly, results unchanged", { skip: SKIP }, () => {
  const k = native();
  const rng = makeRng(99);
  const nOut = 96, nIn = 256, T = 20;
  const w = encodeWeights(GgmlType.F16, randomArray(rng, nOut * nIn), nOut, nIn);
  const x = randomArray(rng, T * nIn);
  const first = new Float32Array(T * nOut);
  k.setThreads(1);
  k.matmul({ w, type: GgmlType.F16, nOut, nIn, x, T, y: first });
  for (const n of [2, 2, 5, 1, 3, 8, 2]) {
    k.setThreads(n);
    assert.equal(k.info().threads, n);
    const y = new Float32Array(T * nOut);
    k.matmul({ w, type: GgmlType.F16, nOut, nIn, x, T, y });
    assertClose(y, first, T * nOut, `threads=${n}`);
  }
  assert.throws(() => k.setThreads(0), /setThreads: n must be an integer >= 1/);
});

// ---------------------------------------------------------------- element-wise ops

test("swiglu: native within 4 ulp of the reference (exact exp), every ISA, tails and extremes", { skip: SKIP }, () => {
  const k = native();
  const rng = makeRng(5);
  const specials = [0, -0, 1e-30, -1e-30, 1, -1, 20, -20, 87.3, -87.3, 88, -88, 88.5, -88.5, 89, -89, 200, -200, 3e38, -3e38];
  try {
    for (const isa of isaLevels(k)) {
      k.setIsa(isa);
      for (const n of [0, 1, 7, 8, 9, 15, 16, 17, 33, 1000]) {
        const gate = randomArray(rng, n, 20);
        specials.forEach((v, i) => { if (i < n) gate[(i * 7) % n] = v; });
        const up = randomArray(rng, n, 3);
        const want = gate.slice();
        referenceKernels.swiglu(want, up, n);
        const got = gate.slice();
        k.swiglu(got, up, n);
        for (let i = 0; i < n; i++) {
          const err = Math.abs(got[i] - want[i]);
          // 4 ulp of the result; beyond |g| = 88.37 the vector exp saturates to inf where the
          // exact one is still finite (up to 88.72): silu is below 4e-37 there either way.
          if (got[i] !== want[i] && !(err <= 4 * 2 ** -23 * Math.abs(want[i]) + 1e-36)) {
            assert.fail(`${isa}, n=${n}: swiglu(${gate[i]}, ${up[i]}) = ${got[i]}, reference ${want[i]}`);
          }
        }
      }
      const nan = new Float32Array([NaN, 1]);
      k.swiglu(nan, new Float32Array([1, 1]), 2);
      assert.ok(Number.isNaN(nan[0]), `${isa}: NaN in, NaN out`);
    }
  } finally {
    k.setIsa(k.info().detectedIsa);
  }
});

test("rmsnorm, add, rope, copyRows: native equals the reference bit for bit", { skip: SKIP }, () => {
  const k = native();
  const rng = makeRng(6);
  for (const [T, dim] of [[1, 7], [3, 576], [5, 64]]) {
    const x = randomArray(rng, T * dim, 4);
    const w = randomArray(rng, dim, 2);
    const a = new Float32Array(T * dim), b = new Float32Array(T * dim);
    referenceKernels.rmsnorm(a, x, w, T, dim, 1e-5);
    k.rmsnorm(b, x, w, T, dim, 1e-5);
    assert.deepEqual(b, a, `rmsnorm T=${T} dim=${dim}`);
    const y = randomArray(rng, T * dim);
    const s1 = x.slice(), s2 = x.slice();
    referenceKernels.add(s1, y, T * dim);
    k.add(s2, y, T * dim);
    assert.deepEqual(s2, s1, "add");
  }
  for (const neox of [false, true]) {
    for (const [T, nH, hd, rd] of [[4, 9, 64, 64], [3, 2, 8, 4], [1, 1, 2, 2]]) {
      const x = randomArray(rng, T * nH * hd, 3);
      const cos = randomArray(rng, T * rd / 2), sin = randomArray(rng, T * rd / 2);
      const a = x.slice(), b = x.slice();
      referenceKernels.rope(a, T, nH, hd, rd, neox, cos, sin);
      k.rope(b, T, nH, hd, rd, neox, cos, sin);
      assert.deepEqual(b, a, `rope neox=${neox} T=${T} nH=${nH} hd=${hd} ropeDim=${rd}`);
      assert.notDeepEqual(a, x, "rope changed something");
    }
  }
  const src = randomArray(rng, 100);
  const d1 = new Float32Array(60), d2 = new Float32Array(60);
  referenceKernels.copyRows(d1, 3, 10, src, 5, 12, 7, 6);
  k.copyRows(d2, 3, 10, src, 5, 12, 7, 6);
  assert.deepEqual(d2, d1);
  assert.equal(d1[3 + 2 * 10 + 4], src[5 + 2 * 12 + 4]);
  assert.equal(d1[3 + 7], 0, "the gap between rows is untouched");
});

test("element-wise ops: size errors name the argument", { skip: SKIP }, () => {
  const k = native();
  const f = (n: number) => new Float32Array(n);
  assert.throws(() => k.swiglu(f(4), f(3), 4), /swiglu: up has 3 elements, expected at least 4/);
  assert.throws(() => k.swiglu(f(4), f(4), 1.5), /swiglu: n must be an integer/);
  assert.throws(() => k.add(f(4), new Int32Array(4) as unknown as Float32Array, 4), /add: y must be a Float32Array/);
  assert.throws(() => k.rmsnorm(f(10), f(9), f(5), 2, 5, 1e-5), /rmsnorm: x has 9 elements, expected at least 10/);
  assert.throws(() => k.rmsnorm(f(10), f(10), f(5), 2, 5, -1), /rmsnorm: eps must be a finite number >= 0/);
  assert.throws(() => k.rope(f(8), 1, 1, 8, 9, false, f(4), f(4)), /rope: ropeDim must be an integer in \[0, 8\]/);
  assert.throws(() => k.rope(f(8), 1, 1, 8, 8, false, f(3), f(4)), /rope: cos has 3 elements, expected at least 4/);
  assert.throws(() => k.copyRows(f(10), 0, 5, f(20), 0, 10, 5, 3), /copyRows: dst has 10 elements, expected at least 15/);
  assert.throws(() => k.copyRows(f(20), 0, 5, f(20), 0, 10, 5, 3), /copyRows: src has 20 elements, expected at least 25/);
});

// ---------------------------------------------------------------- attention

interface AttnCase {
  T: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  cap: number;
  nSeqMax: number;
}

/** A case with a random cache layout: per KV head, nRows[h] rows with random (seq, pos), a
 *  random visibility matrix (each sequence sees itself), random query (seq, pos). */
function randomAttention(rng: () => number, c: AttnCase, opts: { causal?: boolean; nRows?: number[] } = {}): AttentionArgs {
  const { T, nHeads, nKvHeads, headDim, cap, nSeqMax } = c;
  const rowSeq = new Int32Array(nKvHeads * cap).fill(-7); // garbage beyond nRows must be ignored
  const rowPos = new Int32Array(nKvHeads * cap).fill(-7);
  const nRows = new Int32Array(nKvHeads);
  const visible = new Uint8Array(nSeqMax * nSeqMax);
  for (let a = 0; a < nSeqMax; a++) for (let b = 0; b < nSeqMax; b++) visible[a * nSeqMax + b] = a === b || rng() < 0.4 ? 1 : 0;
  const qSeq = new Int32Array(T), qPos = new Int32Array(T);
  for (let h = 0; h < nKvHeads; h++) {
    nRows[h] = opts.nRows?.[h] ?? cap;
    for (let r = 0; r < nRows[h]; r++) {
      rowSeq[h * cap + r] = opts.causal ? 0 : Math.floor(rng() * nSeqMax);
      rowPos[h * cap + r] = opts.causal ? r : Math.floor(rng() * 200);
    }
  }
  for (let t = 0; t < T; t++) {
    qSeq[t] = opts.causal ? 0 : Math.floor(rng() * nSeqMax);
    qPos[t] = opts.causal ? (opts.nRows?.[0] ?? cap) - T + t : Math.floor(rng() * 220) - 10;
  }
  const k = randomArray(rng, nKvHeads * cap * headDim);
  const v = randomArray(rng, nKvHeads * cap * headDim);
  // garbage (NaN) in unused cache rows: must never be read
  for (let h = 0; h < nKvHeads; h++) {
    k.fill(Number.NaN, (h * cap + nRows[h]) * headDim, (h + 1) * cap * headDim);
    v.fill(Number.NaN, (h * cap + nRows[h]) * headDim, (h + 1) * cap * headDim);
  }
  return {
    q: randomArray(rng, T * nHeads * headDim, 2), k, v, rowSeq, rowPos, nRows, cap, qSeq, qPos, visible, nSeqMax,
    T, nHeads, nKvHeads, headDim, scale: 1 / Math.sqrt(headDim), out: new Float32Array(T * nHeads * headDim),
  };
}

function checkAttention(k: NativeKernels, a: AttentionArgs, what: string, threads = [1, 2, 3]): void {
  const n = a.T * a.nHeads * a.headDim;
  const want = new Float32Array(n);
  referenceKernels.attention({ ...a, out: want });
  for (const isa of isaLevels(k)) {
    k.setIsa(isa);
    for (const th of threads) {
      k.setThreads(th);
      const out = new Float32Array(n).fill(Number.NaN);
      k.attention({ ...a, out });
      assertClose(out, want, n, `${what} ${isa} threads=${th}`);
    }
  }
  k.setIsa(k.info().detectedIsa);
}

test("attention: causal prefill, GQA 9/3, headDim 64", { skip: SKIP }, () => {
  const k = native();
  const rng = makeRng(1);
  checkAttention(k, randomAttention(rng, { T: 150, nHeads: 9, nKvHeads: 3, headDim: 64, cap: 160, nSeqMax: 1 }, { causal: true, nRows: [150, 150, 150] }), "causal T=150");
  // a chunk of queries at the end of a longer cache
  checkAttention(k, randomAttention(rng, { T: 40, nHeads: 9, nKvHeads: 3, headDim: 64, cap: 300, nSeqMax: 1 }, { causal: true, nRows: [290, 290, 290] }), "causal chunk");
});

test("attention: several sequences, random visibility and positions, rows that see nothing", { skip: SKIP }, () => {
  const k = native();
  const rng = makeRng(2);
  for (const [i, c] of ([
    { T: 37, nHeads: 9, nKvHeads: 3, headDim: 64, cap: 150, nSeqMax: 4 },
    { T: 20, nHeads: 4, nKvHeads: 1, headDim: 32, cap: 90, nSeqMax: 3 },
    { T: 33, nHeads: 6, nKvHeads: 6, headDim: 48, cap: 70, nSeqMax: 5 },
    { T: 9, nHeads: 8, nKvHeads: 2, headDim: 128, cap: 130, nSeqMax: 2 },
    { T: 11, nHeads: 2, nKvHeads: 1, headDim: 20, cap: 50, nSeqMax: 3 }, // headDim 20: no SIMD path
    { T: 64, nHeads: 64, nKvHeads: 1, headDim: 16, cap: 40, nSeqMax: 2 }, // group of 64 heads
  ] as AttnCase[]).entries()) {
    const a = randomAttention(rng, c, { nRows: Array.from({ length: c.nKvHeads }, (_, h) => c.cap - 7 * h) });
    // one query sees no sequence at all, one sits before every position
    if (c.nSeqMax > 1) {
      a.visible.fill(0, (c.nSeqMax - 1) * c.nSeqMax, c.nSeqMax * c.nSeqMax);
      a.qSeq[0] = c.nSeqMax - 1;
    }
    a.qPos[c.T - 1] = -100;
    checkAttention(k, a, `case ${i} ${JSON.stringify(c)}`);
  }
});

test("attention: a query that sees nothing gets exact zeros", { skip: SKIP }, () => {
  const k = native();
  const a = randomAttention(makeRng(3), { T: 3, nHeads: 4, nKvHeads: 2, headDim: 64, cap: 100, nSeqMax: 2 });
  a.qPos[1] = -1000;
  for (const isa of isaLevels(k)) {
    k.setIsa(isa);
    a.out.fill(Number.NaN);
    k.attention(a);
    const row = a.out.subarray(1 * 4 * 64, 2 * 4 * 64);
    assert.ok(row.every((x) => x === 0), `${isa}: zeros expected`);
  }
  k.setIsa(k.info().detectedIsa);
});

test("attention: T = 1 over a long cache (split keys), and T = 2", { skip: SKIP }, () => {
  const k = native();
  const rng = makeRng(4);
  checkAttention(k, randomAttention(rng, { T: 1, nHeads: 9, nKvHeads: 3, headDim: 64, cap: 3000, nSeqMax: 1 }, { causal: true, nRows: [2950, 2950, 2950] }), "decode causal");
  checkAttention(k, randomAttention(rng, { T: 1, nHeads: 9, nKvHeads: 3, headDim: 64, cap: 2100, nSeqMax: 3 }, { nRows: [2100, 2000, 1000] }), "decode mixed seqs");
  checkAttention(k, randomAttention(rng, { T: 2, nHeads: 8, nKvHeads: 2, headDim: 128, cap: 1500, nSeqMax: 2 }), "T=2");
});

test("attention: argument errors", { skip: SKIP }, () => {
  const k = native();
  const a = randomAttention(makeRng(5), { T: 2, nHeads: 4, nKvHeads: 2, headDim: 16, cap: 10, nSeqMax: 2 });
  assert.throws(() => k.attention({ ...a, q: a.q.subarray(1) }), /attention: q has length 127, expected at least 128/);
  assert.throws(() => k.attention({ ...a, k: a.k.subarray(0, 5) }), /attention: k has length 5, expected at least 320/);
  assert.throws(() => k.attention({ ...a, nHeads: 3 }), /not a multiple of nKvHeads/);
  assert.throws(() => k.attention({ ...a, qSeq: Int32Array.of(0, 2) }), /qSeq\[1\] = 2 is outside/);
  assert.throws(() => k.attention({ ...a, nRows: Int32Array.of(10, 11) }), /nRows\[1\] = 11/);
  const bad = { ...a, rowSeq: a.rowSeq.slice() };
  bad.rowSeq[3] = 9;
  assert.throws(() => k.attention(bad), /rowSeq value/);
});

// ---------------------------------------------------------------- family kernels (Gemma, sliding windows)

test("attention with a sliding window and a soft cap: native equals the reference, every ISA and thread count", { skip: SKIP }, () => {
  const k = native();
  const rng = makeRng(6);
  // causal prefill past the window (blocks fully inside, fully outside and across its edge)
  checkAttention(k, { ...randomAttention(rng, { T: 150, nHeads: 8, nKvHeads: 4, headDim: 64, cap: 300, nSeqMax: 1 }, { causal: true, nRows: [290, 290, 290, 290] }), window: 100, softcap: 50 }, "causal window 100 cap 50");
  checkAttention(k, { ...randomAttention(rng, { T: 1, nHeads: 4, nKvHeads: 1, headDim: 256, cap: 2100, nSeqMax: 1 }, { causal: true, nRows: [2000] }), window: 512 }, "decode window 512");
  checkAttention(k, { ...randomAttention(rng, { T: 37, nHeads: 9, nKvHeads: 3, headDim: 64, cap: 150, nSeqMax: 4 }), window: 30, softcap: 5 }, "several sequences, window 30, cap 5");
  checkAttention(k, { ...randomAttention(rng, { T: 11, nHeads: 2, nKvHeads: 1, headDim: 20, cap: 50, nSeqMax: 3 }), window: 7, softcap: 1 }, "scalar path");
});

test("a sliding window of W: the query sees exactly the last W positions (reference against attention over those rows only)", () => {
  const rng = makeRng(7);
  const c = { T: 1, nHeads: 2, nKvHeads: 1, headDim: 16, cap: 40, nSeqMax: 1 };
  const a = randomAttention(rng, c, { causal: true, nRows: [40] }); // keys at 0..39, query at 39
  const W = 10;
  const windowed = new Float32Array(32);
  referenceKernels.attention({ ...a, window: W, out: windowed });
  // The same attention over a cache holding only positions 30..39.
  const rows = (x: Float32Array) => x.slice((40 - W) * 16, 40 * 16);
  const only = new Float32Array(32);
  referenceKernels.attention({
    ...a, k: rows(a.k as Float32Array), v: rows(a.v as Float32Array), rowSeq: a.rowSeq.slice(40 - W), rowPos: a.rowPos.slice(40 - W), nRows: Int32Array.of(W), cap: W, out: only,
  });
  assertClose(windowed, only, 32, "window vs last W rows");
  const full = new Float32Array(32);
  referenceKernels.attention({ ...a, out: full });
  assert.ok(full.some((x, i) => Math.abs(x - windowed[i]) > 1e-3), "the window changes the result");
});

test("soft cap: scores pass through cap * tanh(s / cap) (reference against scores capped by hand)", () => {
  // Two keys, one query: softmax over the capped scores, by hand.
  const q = Float32Array.of(3, 0), kk = Float32Array.of(4, 0, -2, 0), v = Float32Array.of(1, 0, 0, 1);
  const out = new Float32Array(2);
  referenceKernels.attention({
    q, k: kk, v, rowSeq: Int32Array.of(0, 0), rowPos: Int32Array.of(0, 1), nRows: Int32Array.of(2), cap: 2,
    qSeq: Int32Array.of(0), qPos: Int32Array.of(1), visible: Uint8Array.of(1), nSeqMax: 1, T: 1, nHeads: 1, nKvHeads: 1, headDim: 2, scale: 1, softcap: 5, out,
  });
  const s0 = 5 * Math.tanh(12 / 5), s1 = 5 * Math.tanh(-6 / 5);
  const p0 = 1 / (1 + Math.exp(s1 - s0));
  assert.ok(Math.abs(out[0] - p0) < 1e-6 && Math.abs(out[1] - (1 - p0)) < 1e-6, `got ${out[0]}, ${out[1]}; by hand ${p0}, ${1 - p0}`);
});

test("geglu: the reference is GELU (tanh form) to f16 precision; native equals it bit for bit", { skip: SKIP }, () => {
  const k = native();
  const rng = makeRng(8);
  const n = 5000;
  const gate = randomArray(rng, n, 6);
  [0, -0, 1, -1, -9.99, 9.99, -10, 10, -12, 12, 1e-8, 65504, -70000].forEach((v, i) => (gate[i * 11] = v));
  const up = randomArray(rng, n, 2);
  const want = gate.slice();
  referenceKernels.geglu(want, up, n);
  const got = gate.slice();
  k.geglu(got, up, n);
  for (let i = 0; i < n; i++) if (got[i] !== want[i]) assert.fail(`geglu(${gate[i]}, ${up[i]}) = ${got[i]}, reference ${want[i]}`);
  for (let i = 0; i < n; i++) {
    const x = gate[i];
    const gelu = x <= -10 ? 0 : x >= 10 ? x : 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
    // x and the result each rounded to f16: a relative error of ~2^-11 on each, plus the slope
    assert.ok(Math.abs(want[i] - gelu * up[i]) <= 2e-3 * (Math.abs(gelu * up[i]) + Math.abs(x * up[i])) + 1e-6, `geglu(${x}) = ${want[i] / up[i]}, GELU ${gelu}`);
  }
});

test("attention over an F16 cache (Uint16Array K, V): native equals the reference on every ISA, and both equal F32 attention over the widened values", { skip: SKIP }, () => {
  const k = native();
  const rng = makeRng(9);
  for (const [what, c, o] of [
    ["causal prefill", { T: 120, nHeads: 8, nKvHeads: 2, headDim: 64, cap: 200, nSeqMax: 1 }, { causal: true, nRows: [180, 180] }],
    ["several sequences", { T: 30, nHeads: 9, nKvHeads: 3, headDim: 64, cap: 140, nSeqMax: 4 }, {}],
    ["decode over a long cache", { T: 1, nHeads: 8, nKvHeads: 2, headDim: 128, cap: 2100, nSeqMax: 1 }, { causal: true, nRows: [2000, 2000] }],
    ["no SIMD path (headDim 20)", { T: 11, nHeads: 2, nKvHeads: 1, headDim: 20, cap: 50, nSeqMax: 3 }, {}],
  ] as Array<[string, AttnCase, { causal?: boolean; nRows?: number[] }]>) {
    const a = randomAttention(rng, c, o);
    const bits = (x: Float32Array | Uint16Array) => Uint16Array.from(x as Float32Array, (v) => (Number.isNaN(v) ? 0x7e00 : f32ToF16Bits(v)));
    const k16 = bits(a.k), v16 = bits(a.v);
    const widened = { ...a, k: Float32Array.from(k16, f16BitsToF32), v: Float32Array.from(v16, f16BitsToF32) };
    const n = a.T * a.nHeads * a.headDim;
    const want = new Float32Array(n);
    referenceKernels.attention({ ...widened, out: want });
    const ref16 = new Float32Array(n);
    referenceKernels.attention({ ...a, k: k16, v: v16, out: ref16 });
    assertClose(ref16, want, n, `${what}: reference over F16 bits vs over widened F32`);
    checkAttention(k, { ...a, k: k16, v: v16 }, `${what} F16`);
  }
});

test("copyRows into a Uint16Array stores F16 bits (nearest even) on every ISA, as the reference", { skip: SKIP }, () => {
  const k = native();
  const src = Float32Array.from({ length: 3 * 37 }, (_, i) => Math.sin(i) * 70000 * (i % 5 === 0 ? 1e-6 : 1));
  src[4] = 1 + 2 ** -11; // a tie: rounds to even (1)
  src[7] = 1 + 3 * 2 ** -11; // a tie: rounds up
  for (const isa of isaLevels(k)) {
    k.setIsa(isa);
    const got = new Uint16Array(3 * 40), want = new Uint16Array(3 * 40);
    k.copyRows(got, 2, 40, src, 0, 37, 37, 3);
    referenceKernels.copyRows(want, 2, 40, src, 0, 37, 37, 3);
    assert.deepEqual(got, want, isa);
    assert.equal(got[2 + 4], 0x3c00);
    assert.equal(got[2 + 7], 0x3c02);
  }
  k.setIsa(k.info().detectedIsa);
});
