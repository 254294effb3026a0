// GGML tensor formats against two outside references:
//  - gguf-py's numpy implementation (llama.cpp's gguf-py/gguf/quants.py, run with python3),
//  - the real compiled ggml: node-llama-cpp's prebuilt libggml-base.so (the quantize_row_*_ref
//    and dequantize_row_* functions) and libggml-cpu-haswell.so (the AVX2/F16C activation
//    converters; libggml-cpu-sandybridge.so for the AVX-only ones), called through python's
//    ctypes. Linux x64 only; skipped elsewhere.
// Plus reference-free checks: hand-computed blocks, round-trip error bounds, API errors.

import { rng } from "../src/util/rng.js";
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { GgmlType, rowBytes, typeName } from "../src/gguf/types.js";
import {
  bf16BitsToF32,
  f16BitsToF32,
  f32BitsToBf16Bits,
  f32BitsToF16Bits,
  f32ToBf16Bits,
  f32ToF16Bits,
  roundToBf16,
  roundToF16,
} from "../src/tensor/f16.js";
import { roundActivations } from "../src/kernels/reference.js";
import { dequantizeRow, quantizeRow, quantizeRowX86, quantizeTensor, vecDotType } from "../src/tensor/quant.js";
import { llamaCppPrebuiltBins, llamaCppSource } from "./support/llamacpp.js";
import { PYTHON } from "./support/tmp.js";

// ---------------------------------------------------------------- data

const makeRng = rng; // the project's seeded PRNG (generate/sampler.ts)

function gaussian(rng: () => number): number {
  const u = 1 - rng(), v = rng();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

const COLS = 512; // 2 super-blocks of 256, 16 blocks of 32
const GAUSSIAN_ROWS = 8; // rows 0..7 are plain N(0, σ) for the error bounds

/** Rows that exercise the quantizers' branches: see the comment on each kind. */
function testMatrix(seed: number): { data: Float32Array; rows: number } {
  const rng = makeRng(seed);
  const rows: Array<(j: number) => number> = [];
  for (let r = 0; r < GAUSSIAN_ROWS; r++) {
    const sigma = [1, 0.02, 3, 0.5, 1e-3, 10, 0.1, 1][r];
    rows.push(() => sigma * gaussian(rng));
  }
  rows.push((j) => (j % 32 === 0 ? 20 : 1) * 0.02 * gaussian(rng)); // outliers, like real weights
  rows.push((j) => (j % 32 === 5 ? 127 : Math.round(rng() * 200 - 100) + 0.5)); // Q8 ties: |max|=127 makes x/d = x
  rows.push((j) => (j % 256 === 7 ? -127 : Math.round(rng() * 200 - 100) + 0.5)); // Q8_K ties (iscale = 1)
  rows.push((j) => (j < 256 ? 0 : 0.75)); // an all-zero block and constant blocks
  rows.push(() => 0.5 + rng()); // all positive: K-quant min clamps to 0
  rows.push(() => -0.5 - rng()); // all negative
  rows.push(() => 1e-6 * gaussian(rng)); // scales that are f16 subnormals
  rows.push((j) => (j % 64 < 32 ? 1e-9 : 1) * gaussian(rng)); // tiny sub-blocks next to normal ones
  rows.push((j) => Math.round(rng() * 16 - 8)); // integers in [-8, 8]
  rows.push((j) => (j % 16 === 0 ? 0 : 300) * gaussian(rng)); // large values
  rows.push((j) => { // Q4_1 / Q5_1 ties: half steps of d = 1 (range 15 or 31), x - min exact
    const range = (j >> 5) % 2 ? 15 : 31;
    return -7.25 + (j % 32 === 0 ? 0 : j % 32 === 1 ? range : Math.round(rng() * 2 * range) / 2);
  });
  let id127 = 0; // Q8 x86 vs ref scaling: fr(127/amax) and fr(1/fr(amax/127)) differ by an ulp
  rows.push((j) => { // for such an amax, x near (k + 0.5)/id often rounds differently with each
    if (j % 32 === 0) {
      let amax: number;
      do {
        amax = Math.fround(0.5 + rng());
        id127 = Math.fround(127 / amax);
      } while (id127 === Math.fround(1 / Math.fround(amax / 127)));
      return rng() < 0.5 ? amax : -amax;
    }
    return (Math.floor(rng() * 252) - 126 + 0.5) / id127;
  });
  for (let r = 0; r < 16; r++) { // weight-like rows: every 32-block at its own scale, 1e-3..10
    const scales = Array.from({ length: COLS / 32 }, () => 10 ** (4 * rng() - 3));
    rows.push((j) => scales[j >> 5] * gaussian(rng));
  }
  const data = new Float32Array(rows.length * COLS);
  rows.forEach((fn, r) => {
    for (let j = 0; j < COLS; j++) data[r * COLS + j] = fn(j);
  });
  return { data, rows: rows.length };
}

const MATRIX = testMatrix(1234);
const LEGACY_TYPES = [GgmlType.Q8_0, GgmlType.Q8_1, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1]; // 32-value blocks
const ALL_TYPES = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, ...LEGACY_TYPES, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q8_K];
const BLOCK_TYPES = [...LEGACY_TYPES, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.Q8_K];
const GGML_DEQUANTIZE = BLOCK_TYPES.filter((t) => t !== GgmlType.Q8_1); // ggml has no dequantize_row_q8_1

function quantizeOurs(type: number, m = MATRIX): Uint8Array {
  return quantizeTensor(type, m.data, m.rows, COLS);
}

function dequantizeOurs(type: number, bytes: Uint8Array, rows: number): Float32Array {
  const out = new Float32Array(rows * COLS);
  const rb = rowBytes(type, COLS);
  for (let r = 0; r < rows; r++) dequantizeRow(type, bytes, r * rb, COLS, out, r * COLS);
  return out;
}

function u8(a: Float32Array | Uint32Array | Uint16Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

// ---------------------------------------------------------------- python bridge

type PyJob =
  | { op: "np_quantize" | "np_dequantize"; type: number; rows: number; input: Uint8Array }
  | { op: "ggml"; lib: "base" | "cpu" | "cpu-avx"; fn: string; n: number; outBytes: number; input: Uint8Array };

const PY_SCRIPT = String.raw`
import ctypes, json, os, sys
import numpy as np
from gguf import quants, GGMLQuantizationType as T

req = json.load(sys.stdin)
libs = {}
def lib(which):
    if which not in libs:
        if "base" not in libs:
            libs["base"] = ctypes.CDLL(os.path.join(req["bins"], "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
        if which == "cpu":
            libs["cpu"] = ctypes.CDLL(os.path.join(req["bins"], "libggml-cpu-haswell.so"))
        if which == "cpu-avx":
            libs["cpu-avx"] = ctypes.CDLL(os.path.join(req["bins"], "libggml-cpu-sandybridge.so"))
    return libs[which]

for i, job in enumerate(req["jobs"]):
    src = np.fromfile(os.path.join(req["dir"], "in%d" % i), dtype=np.uint8)
    if job["op"] == "np_quantize":
        x = src.view(np.float32).reshape(job["rows"], -1)
        out = np.ascontiguousarray(quants.quantize(x, T(job["type"]))).view(np.uint8)
    elif job["op"] == "np_dequantize":
        out = np.ascontiguousarray(quants.dequantize(src.reshape(job["rows"], -1), T(job["type"])), dtype=np.float32)
    else:
        fn = getattr(lib(job["lib"]), job["fn"])
        fn.restype = None
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        out = np.zeros(job["outBytes"], dtype=np.uint8)
        fn(src.ctypes.data, out.ctypes.data, job["n"])
    out.tofile(os.path.join(req["dir"], "out%d" % i))
`;

function checkPython(): string | undefined {
  const r = spawnSync(PYTHON, ["-c", "import numpy"], { encoding: "utf8" });
  if (r.error || r.status !== 0) return "python3 with numpy is not available";
  return undefined;
}

function checkGgml(): string | undefined {
  if (NO_PYTHON) return NO_PYTHON;
  if (!llamaCppPrebuiltBins()) return "node-llama-cpp's prebuilt linux-x64 ggml libraries are not installed";
  let flags = "";
  try {
    flags = readFileSync("/proc/cpuinfo", "utf8").match(/^flags\s*:(.*)$/m)?.[1] ?? "";
  } catch { /* no cpuinfo: treat as lacking features */ }
  const have = new Set(flags.trim().split(/\s+/));
  const missing = ["avx2", "fma", "f16c", "bmi2"].filter((f) => !have.has(f));
  return missing.length ? `CPU lacks ${missing.join(", ")} needed by libggml-cpu-haswell.so` : undefined;
}

const NO_PYTHON = checkPython();
const NO_GGML = checkGgml();
/** libggml-cpu-sandybridge.so (AVX without AVX2: a second SIMD path in arch/x86/quants.c). */
const NO_AVX_ONLY = NO_GGML ?? (existsSync(join(llamaCppPrebuiltBins()!, "libggml-cpu-sandybridge.so")) ? undefined : "libggml-cpu-sandybridge.so is not installed");

/** Runs the jobs in one python3 process; returns each job's output bytes. */
function runPython(jobs: PyJob[]): Uint8Array[] {
  const dir = mkdtempSync(join(tmpdir(), "parallelcomp-quant-"));
  try {
    jobs.forEach((j, i) => writeFileSync(join(dir, `in${i}`), j.input));
    const req = { dir, bins: llamaCppPrebuiltBins() ?? "", jobs: jobs.map(({ input: _input, ...rest }) => rest) };
    const r = spawnSync(PYTHON, ["-c", PY_SCRIPT], {
      input: JSON.stringify(req),
      encoding: "utf8",
      env: { ...process.env, PYTHONPATH: join(llamaCppSource(), "gguf-py") },
      maxBuffer: 1 << 26,
    });
    if (r.status !== 0) throw new Error(`python3 failed (${r.status ?? r.signal}): ${r.stderr}`);
    return jobs.map((_, i) => new Uint8Array(readFileSync(join(dir, `out${i}`))));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let referenceOutputs: Map<string, Uint8Array> | undefined;

/**
 * Output of the reference job `key` (see referenceJobs). Every job runs in a single python3
 * process on first use: starting python with numpy costs ~0.5 s, so one start per test is slow.
 */
function reference(key: string): Uint8Array {
  if (!referenceOutputs) {
    const jobs = referenceJobs();
    const outs = runPython([...jobs.values()]);
    referenceOutputs = new Map([...jobs.keys()].map((k, i) => [k, outs[i]]));
  }
  const out = referenceOutputs.get(key);
  if (!out) throw new Error(`no reference job ${key}`);
  return out;
}

function asF32(b: Uint8Array): Float32Array {
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

function asU16(b: Uint8Array): Uint16Array {
  return new Uint16Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

// ---------------------------------------------------------------- comparisons

function assertSameBytes(ours: Uint8Array, theirs: Uint8Array, what: string, blockBytes: number): void {
  assert.equal(ours.length, theirs.length, `${what}: length`);
  let diffs = 0, first = -1;
  for (let i = 0; i < ours.length; i++) {
    if (ours[i] !== theirs[i]) {
      if (first < 0) first = i;
      diffs++;
    }
  }
  if (diffs) {
    const b = Math.floor(first / blockBytes);
    assert.fail(`${what}: ${diffs} bytes differ; first at byte ${first} (block ${b}, byte ${first - b * blockBytes} of it): ours ${ours[first]}, theirs ${theirs[first]}`);
  }
}

/** Exact f32 equality (bit patterns, with every NaN equal to every NaN). */
function assertSameFloats(ours: Float32Array, theirs: Float32Array, what: string): void {
  assert.equal(ours.length, theirs.length, `${what}: length`);
  for (let i = 0; i < ours.length; i++) {
    const a = ours[i], b = theirs[i];
    if (Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b))) continue;
    assert.fail(`${what}: value ${i} differs: ours ${a}, theirs ${b}`);
  }
}

const TYPE_SIZE: Record<number, number> = { 0: 4, 1: 2, 30: 2, 8: 34, 9: 36, 2: 18, 3: 20, 6: 22, 7: 24, 12: 144, 13: 176, 14: 210, 15: 292 }; // bytes per block

// ---------------------------------------------------------------- reference jobs

const GGML_NAME: Record<number, string> = { 8: "q8_0", 9: "q8_1", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 12: "q4_K", 13: "q5_K", 14: "q6_K", 15: "q8_K" };
const NUMPY_LEGACY = [GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1]; // gguf-py has no Q8_1
const NUMPY_QUANTIZE = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, ...NUMPY_LEGACY]; // gguf-py has no K quantizers
const NUMPY_DEQUANTIZE = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, ...NUMPY_LEGACY, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K]; // nor Q8_K

function referenceJobs(): Map<string, PyJob> {
  const jobs = new Map<string, PyJob>();
  const all = f32Patterns();
  jobs.set("f16 numpy", { op: "np_quantize", type: GgmlType.F16, rows: 1, input: u8(all) });
  jobs.set("f16 decode numpy", { op: "np_dequantize", type: GgmlType.F16, rows: 1, input: u8(ALL_16BIT) });
  jobs.set("bf16 numpy", { op: "np_quantize", type: GgmlType.BF16, rows: 1, input: u8(all) });
  jobs.set("bf16 decode numpy", { op: "np_dequantize", type: GgmlType.BF16, rows: 1, input: u8(ALL_16BIT) });
  for (const type of NUMPY_QUANTIZE) jobs.set(`quantize numpy ${type}`, { op: "np_quantize", type, rows: MATRIX.rows, input: u8(MATRIX.data) });
  for (const type of NUMPY_DEQUANTIZE) {
    const { bytes, rows } = dequantInput(type);
    jobs.set(`dequantize numpy ${type}`, { op: "np_dequantize", type, rows, input: bytes });
  }
  if (NO_GGML) return jobs;
  const ggml = (lib: "base" | "cpu" | "cpu-avx", fn: string, n: number, outBytes: number, input: Uint8Array): PyJob => ({ op: "ggml", lib, fn, n, outBytes, input });
  jobs.set("f16 ggml-cpu", ggml("cpu", "ggml_cpu_fp32_to_fp16", all.length, 2 * all.length, u8(all)));
  jobs.set("bf16 ggml", ggml("base", "ggml_fp32_to_bf16_row", all.length, 2 * all.length, u8(all)));
  const n = MATRIX.data.length;
  for (const type of BLOCK_TYPES) jobs.set(`quantize ggml ${type}`, ggml("base", `quantize_row_${GGML_NAME[type]}_ref`, n, rowBytes(type, n), u8(MATRIX.data)));
  for (const type of GGML_DEQUANTIZE) {
    const { bytes, rows } = dequantInput(type);
    jobs.set(`dequantize ggml ${type}`, ggml("base", `dequantize_row_${GGML_NAME[type]}`, rows * COLS, 4 * rows * COLS, bytes));
  }
  // ggml-cpu's from_float for the other 32-value weight types is the _ref quantizer
  for (const type of [GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1]) {
    jobs.set(`${GGML_NAME[type]} ggml-cpu`, ggml("cpu", `quantize_row_${GGML_NAME[type]}`, n, rowBytes(type, n), u8(MATRIX.data)));
  }
  jobs.set("q8_0 ggml-cpu", ggml("cpu", "quantize_row_q8_0", n, rowBytes(GgmlType.Q8_0, n), u8(MATRIX.data)));
  jobs.set("q8_1 ggml-cpu", ggml("cpu", "quantize_row_q8_1", n, rowBytes(GgmlType.Q8_1, n), u8(MATRIX.data)));
  if (!NO_AVX_ONLY) {
    jobs.set("q8_0 ggml-cpu-avx", ggml("cpu-avx", "quantize_row_q8_0", n, rowBytes(GgmlType.Q8_0, n), u8(MATRIX.data)));
    jobs.set("q8_1 ggml-cpu-avx", ggml("cpu-avx", "quantize_row_q8_1", n, rowBytes(GgmlType.Q8_1, n), u8(MATRIX.data)));
  }
  jobs.set("q8_K ggml-cpu", ggml("cpu", "quantize_row_q8_K", n, rowBytes(GgmlType.Q8_K, n), u8(MATRIX.data)));
  return jobs;
}

const ALL_16BIT = new Uint16Array(65536).map((_, i) => i);
let patternsMemo: Uint32Array | undefined;

/**
 * f32 bit patterns for the f16/bf16 conversions: 200k random ones (NaNs included), every
 * half's value and its neighbours just around the f16 rounding ties, and fixed edge cases.
 * The count is a multiple of 16 so ggml_cpu_fp32_to_fp16 converts all of them with F16C
 * (its scalar tail uses ggml's portable conversion, which writes every NaN as 0x7E00).
 */
function f32Patterns(): Uint32Array {
  if (patternsMemo) return patternsMemo;
  const rng = makeRng(7);
  const pats: number[] = [];
  for (let i = 0; i < 200000; i++) pats.push(Math.floor(rng() * 2 ** 32));
  const one = new Float32Array(1), oneBits = new Uint32Array(one.buffer);
  for (let h = 0; h < 0x7c00; h++) {
    one[0] = f16BitsToF32(h);
    const u = oneBits[0];
    pats.push(u, u | 0x80000000, u + 0x1000, u + 0xfff, u + 0x1001, u - 1);
  }
  pats.push(0x33000000, 0x33000001, 0x477fefff, 0x477ff000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffffffff);
  pats.push(0x3f808000, 0x3f818000, 0x7f7fffff, 0xffbfffff, 0x00008000, 0x00018000); // bf16 ties and edges
  while (pats.length % 16) pats.push(0);
  patternsMemo = new Uint32Array(pats.map((p) => p >>> 0));
  return patternsMemo;
}

// ---------------------------------------------------------------- f16 / bf16

const f32 = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0];

test("f32ToF16Bits: hand-checked ties-to-even, subnormals, overflow, inf and NaN", () => {
  const cases: Array<[number, number]> = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff],
    [65519.99, 0x7bff], [65520, 0x7c00], [1e10, 0x7c00], [-Infinity, 0xfc00],
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], // ties go to the even mantissa
    [2 ** -14, 0x0400], [2 ** -24, 0x0001], [2 ** -25, 0x0000], // 2^-25 is a tie between 0 and 2^-24
    [f32(0x33000001), 0x0001], [1.5 * 2 ** -24, 0x0002], [2.5 * 2 ** -24, 0x0002],
    [2 ** -14 - 2 ** -25, 0x0400], // rounds up out of the subnormals into the smallest normal
    [NaN, 0x7e00],
  ];
  for (const [x, h] of cases) assert.equal(f32ToF16Bits(x), h, `f32ToF16Bits(${x})`);
  assert.equal(f32BitsToF16Bits(0xff800001), 0xfe00, "signalling NaN is quieted, sign kept");
  assert.equal(f32BitsToF16Bits(0x7fc02000), 0x7e01, "NaN keeps its top payload bits (F16C)");
});

test("f32ToF16Bits matches numpy's float16 cast on ~400k f32 patterns (ties, subnormals, overflow, inf, NaN)", { skip: NO_PYTHON }, () => {
  const pats = f32Patterns();
  const theirs = asU16(reference("f16 numpy"));
  const isNaN16 = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
  let nans = 0;
  for (let i = 0; i < pats.length; i++) {
    const ours = f32BitsToF16Bits(pats[i]);
    if (ours === theirs[i]) continue;
    // numpy keeps a NaN's payload without setting the quiet bit; F16C sets it. Both are NaNs of the same sign.
    if (isNaN16(ours) && isNaN16(theirs[i]) && (ours & 0x8000) === (theirs[i] & 0x8000)) { nans++; continue; }
    assert.fail(`0x${pats[i].toString(16)}: ours 0x${ours.toString(16)}, numpy 0x${theirs[i].toString(16)}`);
  }
  assert.ok(nans > 0, "the patterns include NaNs whose payload numpy leaves unquieted");
});

test("F16 quantizeRow equals ggml-cpu's F16C conversion (ggml_cpu_fp32_to_fp16) incl. NaN payloads", { skip: NO_GGML }, () => {
  const pats = f32Patterns();
  const ours = new Uint8Array(2 * pats.length);
  quantizeRow(GgmlType.F16, new Float32Array(pats.buffer), 0, pats.length, ours, 0);
  assertSameBytes(ours, reference("f16 ggml-cpu"), "F16 row", 2);
});

test("f16BitsToF32 decodes all 65536 halves exactly like numpy (NaNs stay NaN)", { skip: NO_PYTHON }, () => {
  const ours = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) ours[h] = f16BitsToF32(h);
  assertSameFloats(ours, asF32(reference("f16 decode numpy")), "f16 -> f32");
});

test("f32ToBf16Bits matches gguf-py's BF16 and ggml_fp32_to_bf16_row (ties to even, NaN forced quiet)", { skip: NO_PYTHON }, () => {
  const pats = f32Patterns();
  const ours = new Uint16Array(pats.length);
  for (let i = 0; i < pats.length; i++) ours[i] = f32BitsToBf16Bits(pats[i]);
  assertSameBytes(u8(ours), reference("bf16 numpy"), "bf16 vs gguf-py", 2);
  const row = new Uint8Array(2 * pats.length);
  quantizeRow(GgmlType.BF16, new Float32Array(pats.buffer), 0, pats.length, row, 0);
  assertSameBytes(row, u8(ours), "quantizeRow(BF16) vs f32BitsToBf16Bits", 2);
  if (!NO_GGML) assertSameBytes(u8(ours), reference("bf16 ggml"), "bf16 vs ggml", 2);
  assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80, "tie to even (down)");
  assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82, "tie to even (up)");
  assert.equal(f32BitsToBf16Bits(0x7f800001), 0x7fc0, "signalling NaN is quieted");
});

test("bf16BitsToF32 decodes all 65536 bf16 values exactly like gguf-py", { skip: NO_PYTHON }, () => {
  const ours = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) ours[h] = bf16BitsToF32(h);
  assertSameFloats(ours, asF32(reference("bf16 decode numpy")), "bf16 -> f32");
});

test("roundToF16 / roundToBf16 return the nearest representable value, in place too", () => {
  const x = new Float32Array([1 + 2 ** -11, 1 + 2 ** -10 + 2 ** -12, 1e6, -3.14159, 2 ** -26]);
  const h = new Float32Array(x.length);
  roundToF16(x, h);
  assert.deepEqual([...h], [1, 1 + 2 ** -10, Infinity, f16BitsToF32(f32ToF16Bits(-3.14159)), 0]);
  const b = Float32Array.from(x);
  roundToBf16(b, b);
  assert.deepEqual([...b], [1, 1, bf16BitsToF32(f32ToBf16Bits(1e6)), bf16BitsToF32(f32ToBf16Bits(-3.14159)), 2 ** -26]);
  for (const v of b) assert.equal(bf16BitsToF32(f32ToBf16Bits(v)), v, "bf16 values are fixed points");
});

// ---------------------------------------------------------------- against gguf-py

for (const type of NUMPY_QUANTIZE) {
  test(`${typeName(type)}: quantizeRow bytes equal gguf-py's quantize (bit-exact with ggml's ref)`, { skip: NO_PYTHON }, () => {
    assertSameBytes(quantizeOurs(type), reference(`quantize numpy ${type}`), typeName(type), TYPE_SIZE[type]);
  });
}

/** Our quantized bytes plus random-byte rows (with finite scales) to reach every bit pattern. */
function dequantInput(type: number): { bytes: Uint8Array; rows: number } {
  const ours = quantizeOurs(type);
  const rb = rowBytes(type, COLS);
  const rng = makeRng(99 + type);
  const randRows = 4;
  const rand = new Uint8Array(randRows * rb).map(() => Math.floor(rng() * 256));
  sanitizeScales(type, rand);
  const bytes = new Uint8Array(ours.length + rand.length);
  bytes.set(ours);
  bytes.set(rand, ours.length);
  return { bytes, rows: MATRIX.rows + randRows };
}

/** Overwrite the f16/f32 scale fields of random blocks with finite values (exponent not all ones). */
function sanitizeScales(type: number, b: Uint8Array): void {
  const size = TYPE_SIZE[type];
  const finiteHalf = (o: number) => { b[o + 1] &= 0x7b; };
  for (let o = 0; o < b.length; o += size) {
    if (type === GgmlType.F32 || type === GgmlType.Q8_K) b[o + 3] &= 0x7b;
    else if (type === GgmlType.BF16) b[o + 1] &= 0x7b;
    else if (type === GgmlType.Q6_K) finiteHalf(o + 208);
    else if (type === GgmlType.Q4_K || type === GgmlType.Q5_K) { finiteHalf(o); finiteHalf(o + 2); }
    else if (type === GgmlType.Q4_1 || type === GgmlType.Q5_1 || type === GgmlType.Q8_1) { finiteHalf(o); finiteHalf(o + 2); } // d, m (Q8_1: d, s)
    else finiteHalf(o); // F16 values, Q8_0, Q4_0 and Q5_0 scales
  }
}

for (const type of NUMPY_DEQUANTIZE) {
  test(`${typeName(type)}: dequantizeRow equals gguf-py's dequantize of the same bytes, exactly`, { skip: NO_PYTHON }, () => {
    const { bytes, rows } = dequantInput(type);
    assertSameFloats(dequantizeOurs(type, bytes, rows), asF32(reference(`dequantize numpy ${type}`)), typeName(type));
  });
}

// ---------------------------------------------------------------- against compiled ggml

for (const type of BLOCK_TYPES) {
  const name = GGML_NAME[type];
  test(`${typeName(type)}: quantizeRow bytes equal ggml's quantize_row_${name}_ref (prebuilt libggml-base)`, { skip: NO_GGML }, () => {
    assertSameBytes(quantizeOurs(type), reference(`quantize ggml ${type}`), typeName(type), TYPE_SIZE[type]);
  });
  if (type === GgmlType.Q8_1) continue; // no dequantize_row_q8_1 in ggml: see the Q8_1 tests below
  test(`${typeName(type)}: dequantizeRow equals ggml's dequantize_row_${name}, exactly`, { skip: NO_GGML }, () => {
    const { bytes, rows } = dequantInput(type);
    assertSameFloats(dequantizeOurs(type, bytes, rows), asF32(reference(`dequantize ggml ${type}`)), typeName(type));
  });
}

test("Q8_0: quantizeRowX86 equals ggml-cpu's AVX2 quantize_row_q8_0 (ties to even, 127/amax)", { skip: NO_GGML }, () => {
  const n = MATRIX.data.length;
  const ours = new Uint8Array(rowBytes(GgmlType.Q8_0, n));
  quantizeRowX86(GgmlType.Q8_0, MATRIX.data, 0, n, ours, 0);
  assertSameBytes(ours, reference("q8_0 ggml-cpu"), "Q8_0 x86", 34);
});

test("Q8_1: quantizeRowX86 equals ggml-cpu's AVX2 quantize_row_q8_1 (ties to even, 127/amax, s from the int32 sum)", { skip: NO_GGML }, () => {
  const n = MATRIX.data.length;
  const ours = new Uint8Array(rowBytes(GgmlType.Q8_1, n));
  quantizeRowX86(GgmlType.Q8_1, MATRIX.data, 0, n, ours, 0);
  assertSameBytes(ours, reference("q8_1 ggml-cpu"), "Q8_1 x86", 36);
  const ref = quantizeOurs(GgmlType.Q8_1);
  assert.ok(ours.some((b, i) => b !== ref[i]), "the test data tells the x86 quantizer from the ref one");
});

test("Q8_0 / Q8_1: the AVX-only quantizers (libggml-cpu-sandybridge) equal quantizeRowX86 too", { skip: NO_AVX_ONLY }, () => {
  const n = MATRIX.data.length;
  for (const [type, key] of [[GgmlType.Q8_0, "q8_0 ggml-cpu-avx"], [GgmlType.Q8_1, "q8_1 ggml-cpu-avx"]] as const) {
    const ours = new Uint8Array(rowBytes(type, n));
    quantizeRowX86(type, MATRIX.data, 0, n, ours, 0);
    assertSameBytes(ours, reference(key), `${typeName(type)} AVX`, TYPE_SIZE[type]);
  }
});

for (const type of [GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1]) {
  test(`${typeName(type)}: ggml-cpu's from_float (quantize_row_${GGML_NAME[type]}) is the ref one, and so is quantizeRowX86`, { skip: NO_GGML }, () => {
    const n = MATRIX.data.length;
    const ours = new Uint8Array(rowBytes(type, n));
    quantizeRowX86(type, MATRIX.data, 0, n, ours, 0);
    assertSameBytes(ours, reference(`${GGML_NAME[type]} ggml-cpu`), `${typeName(type)} cpu`, TYPE_SIZE[type]);
  });
}

test("Q8_K: ggml-cpu's activation quantizer (quantize_row_q8_K) is the ref one we match", { skip: NO_GGML }, () => {
  const n = MATRIX.data.length;
  const ours = new Uint8Array(rowBytes(GgmlType.Q8_K, n));
  quantizeRowX86(GgmlType.Q8_K, MATRIX.data, 0, n, ours, 0);
  assertSameBytes(ours, reference("q8_K ggml-cpu"), "Q8_K cpu", 292);
});

// ---------------------------------------------------------------- reference-free checks

test("Q8_0: ref rounds ties away from zero, the x86 variant to even", () => {
  const x = new Float32Array(32);
  x[0] = 127; x[1] = 2.5; x[2] = -2.5; x[3] = 3.5;
  const ref = new Uint8Array(34), avx = new Uint8Array(34);
  quantizeRow(GgmlType.Q8_0, x, 0, 32, ref, 0);
  quantizeRowX86(GgmlType.Q8_0, x, 0, 32, avx, 0);
  assert.equal(ref[0] | (ref[1] << 8), 0x3c00, "d = 127/127 = 1");
  assert.deepEqual([...new Int8Array(ref.buffer, 2, 4)], [127, 3, -3, 4]);
  assert.deepEqual([...new Int8Array(avx.buffer, 2, 4)], [127, 2, -2, 4]);
});

test("Q8_1: ref rounds ties away from zero, the x86 variant to even; s = d * Σq as f16", () => {
  const x = new Float32Array(64);
  x[0] = 127; x[1] = 2.5; x[2] = -2.5; x[3] = 3.5; x[20] = -0.5; x[31] = 1.5;
  x[32] = -0.25; x[33] = 0.125; // second block: amax 0.25, d = 0.25/127
  const ref = new Uint8Array(72), avx = new Uint8Array(72);
  quantizeRow(GgmlType.Q8_1, x, 0, 64, ref, 0);
  quantizeRowX86(GgmlType.Q8_1, x, 0, 64, avx, 0);
  const view = (b: Uint8Array) => new DataView(b.buffer);
  const half = (b: Uint8Array, o: number) => f16BitsToF32(view(b).getUint16(o, true));
  assert.equal(half(ref, 0), 1, "d = 127/127 = 1");
  assert.deepEqual([...new Int8Array(ref.buffer, 4, 32)].filter((q) => q), [127, 3, -3, 4, -1, 2]);
  assert.deepEqual([...new Int8Array(avx.buffer, 4, 32)].filter((q) => q), [127, 2, -2, 4, 2]); // -0.5 -> -0, 1.5 -> 2
  assert.equal(half(ref, 2), 132, "ref s = 127 + 3 - 3 + 4 - 1 + 2");
  assert.equal(half(avx, 2), 133, "x86 s = 127 + 2 - 2 + 4 + 2");
  const d2 = Math.fround(0.25 / 127);
  assert.equal(half(ref, 36), f16BitsToF32(f32ToF16Bits(d2)));
  assert.deepEqual([...new Int8Array(ref.buffer, 40, 2)], [-127, 64], "0.125/d = 63.5 rounds away from zero");
  assert.deepEqual([...new Int8Array(avx.buffer, 40, 2)], [-127, 64], "and 63.5 * (1 ± ulp) is not a tie after 127/amax");
  assert.equal(half(ref, 38), f16BitsToF32(f32ToF16Bits(Math.fround(-63 * d2))), "s is the f32 product -63 * d, then f16");
});

test("Q8_1: dequantizeRow gives q * d, as Q8_0 does for the same d and quants (s is not a value)", () => {
  const n = MATRIX.data.length;
  for (const quant of [quantizeRow, quantizeRowX86]) {
    const q81 = new Uint8Array(rowBytes(GgmlType.Q8_1, n));
    quant(GgmlType.Q8_1, MATRIX.data, 0, n, q81, 0);
    const q80 = new Uint8Array(rowBytes(GgmlType.Q8_0, n));
    quant(GgmlType.Q8_0, MATRIX.data, 0, n, q80, 0);
    for (let b = 0; b < n / 32; b++) { // same d and quants: the layouts differ only by the s field
      assert.deepEqual(q81.subarray(36 * b, 36 * b + 2), q80.subarray(34 * b, 34 * b + 2), `block ${b} d`);
      assert.deepEqual(q81.subarray(36 * b + 4, 36 * b + 36), q80.subarray(34 * b + 2, 34 * b + 34), `block ${b} qs`);
    }
    const a = new Float32Array(n), c = new Float32Array(n);
    dequantizeRow(GgmlType.Q8_1, q81, 0, n, a, 0);
    dequantizeRow(GgmlType.Q8_0, q80, 0, n, c, 0);
    assertSameFloats(a, c, "Q8_1 vs Q8_0 values");
    for (let b = 0; b < n / 32; b++) q81[36 * b + 2] ^= 0x55; // a different s changes nothing
    dequantizeRow(GgmlType.Q8_1, q81, 0, n, a, 0);
    assertSameFloats(a, c, "Q8_1 values ignore s");
  }
});

test("Q4_1 / Q5_0 / Q5_1: hand-computed blocks (ties, the 5th bits in qh, no clamp needed)", () => {
  // Values 0, 1, ..., 31 then 31.5 - 32: Q5_1 has d = 1, m = 0 and q = value for the first 31.
  const x = new Float32Array(32);
  for (let j = 0; j < 32; j++) x[j] = j;
  x[17] = 16.5; // a tie: trunc(16.5 + 0.5) = 17
  const q51 = new Uint8Array(24);
  quantizeRow(GgmlType.Q5_1, x, 0, 32, q51, 0);
  const v = new DataView(q51.buffer);
  assert.equal(f16BitsToF32(v.getUint16(0, true)), 1, "d = 31/31");
  assert.equal(f16BitsToF32(v.getUint16(2, true)), 0, "m = min");
  const qh = v.getUint32(4, true);
  const qs51 = Array.from({ length: 32 }, (_, j) => ((q51[8 + (j % 16)] >> (j < 16 ? 0 : 4)) & 15) | (((qh >>> j) & 1) << 4));
  assert.deepEqual(qs51, Array.from({ length: 32 }, (_, j) => j), "q = value, and 16.5 goes up to 17");
  assert.equal(qh, 0xffff0000 >>> 0, "values 16..31 have the 5th bit");
  const back = new Float32Array(32);
  dequantizeRow(GgmlType.Q5_1, q51, 0, 32, back, 0);
  assert.deepEqual([...back], qs51);

  // Q4_1 on 0..15 (twice): d = 1, exact.
  const y = new Float32Array(32).map((_, j) => (j % 16) - 3);
  const q41 = new Uint8Array(20);
  quantizeRow(GgmlType.Q4_1, y, 0, 32, q41, 0);
  assert.equal(f16BitsToF32(new DataView(q41.buffer).getUint16(2, true)), -3, "m = min");
  assert.deepEqual([...q41.subarray(4)], Array.from({ length: 16 }, (_, j) => j | (j << 4)));
  dequantizeRow(GgmlType.Q4_1, q41, 0, 32, back, 0);
  assert.deepEqual([...back], [...y]);

  // Q5_0: the signed max -16 gives d = 1; q = trunc(x + 16.5), so -16 -> 0 and 15.9 -> 32 -> clamped 31.
  const z = new Float32Array(32);
  z[0] = -16; z[1] = 15.9; z[2] = 0.5; z[3] = -0.5; z[16] = 3; z[31] = -7.25;
  const q50 = new Uint8Array(22);
  quantizeRow(GgmlType.Q5_0, z, 0, 32, q50, 0);
  assert.equal(f16BitsToF32(new DataView(q50.buffer).getUint16(0, true)), 1, "d = -16 / -16");
  dequantizeRow(GgmlType.Q5_0, q50, 0, 32, back, 0);
  // ties of x + 16.5 go up: 0.5 -> 17 (1), -0.5 -> 16 (0); -7.25 -> 9.25 -> 9 (-7)
  assert.deepEqual([back[0], back[1], back[2], back[3], back[4], back[16], back[31]], [-16, 15, 1, 0, 0, 3, -7]);
});

test("Q8_K: a hand-computed block (nearest_int ties to even, f32 d, bsums)", () => {
  // max = -254 (largest magnitude, negative): iscale = -127/-254 = 0.5, d = 1/iscale = 2.
  const x = new Float32Array(256);
  x[0] = -254; x[1] = 3; x[2] = 5; x[3] = -1; x[16] = 100; x[17] = 7; x[255] = 254;
  const q = new Uint8Array(292);
  quantizeRow(GgmlType.Q8_K, x, 0, 256, q, 0);
  const view = new DataView(q.buffer);
  assert.equal(view.getFloat32(0, true), 2, "d");
  const qs = new Int8Array(q.buffer, 4, 256);
  // 3*0.5 = 1.5 -> 2 (even), 5*0.5 = 2.5 -> 2 (even), -0.5 -> -0 = 0, 3.5 -> 4, 127, -127
  assert.deepEqual([qs[0], qs[1], qs[2], qs[3], qs[16], qs[17], qs[255]], [-127, 2, 2, 0, 50, 4, 127]);
  const bsums = Array.from({ length: 16 }, (_, g) => view.getInt16(260 + 2 * g, true));
  assert.deepEqual(bsums, [-123, 54, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 127]);
  const back = new Float32Array(256);
  dequantizeRow(GgmlType.Q8_K, q, 0, 256, back, 0);
  assert.deepEqual([back[0], back[1], back[16], back[255]], [-254, 4, 100, 254]);
  const zero = new Uint8Array(292).fill(0xaa);
  quantizeRow(GgmlType.Q8_K, new Float32Array(256), 0, 256, zero, 0);
  assert.ok(zero.every((b) => b === 0), "an all-zero block is all-zero bytes, bsums included");
});

// Relative RMS error bounds on N(0, σ) rows of 512: about 1.3x the worst row measured, which
// is what the bits predict: Q8_0 ~0.006 (±d/2, d = amax/127 per 32), Q8_K ~0.008 (the same
// over 256 values, so a larger amax), Q6_K ~0.02, Q5_K ~0.04, Q4_K ~0.075 (asymmetric
// 16 levels), Q4_0 ~0.09 (symmetric 16 levels, one of them wasted); F16/BF16 half an ulp.
// Q5_1 ~0.04 and Q5_0 ~0.046 (32 levels, asymmetric / symmetric), Q4_1 ~0.082; Q8_1 as Q8_0.
const RMS_BOUND: Record<number, number> = { 0: 0, 1: 2 ** -11, 30: 2 ** -8, 8: 0.01, 9: 0.01, 2: 0.12, 3: 0.11, 6: 0.06, 7: 0.052, 12: 0.09, 13: 0.045, 14: 0.025, 15: 0.012 };

for (const type of ALL_TYPES) {
  test(`${typeName(type)}: round trip error on Gaussian rows is within ${RMS_BOUND[type]} relative RMS`, () => {
    const back = dequantizeOurs(type, quantizeOurs(type), MATRIX.rows);
    for (let r = 0; r < GAUSSIAN_ROWS; r++) {
      let se = 0, ss = 0;
      for (let j = r * COLS; j < (r + 1) * COLS; j++) {
        se += (back[j] - MATRIX.data[j]) ** 2;
        ss += MATRIX.data[j] ** 2;
      }
      const rel = Math.sqrt(se / ss);
      assert.ok(rel <= RMS_BOUND[type], `row ${r}: relative RMS error ${rel.toExponential(3)} > ${RMS_BOUND[type]}`);
    }
  });
}

test("Q8_0 / Q8_1 / Q4_0 / Q5_0 / Q4_1 / Q5_1 / Q8_K: every value is within one step of its block's scale", () => {
  // Storing d (and m) as f16 moves it by at most half an f16 ulp: 2^-11 relative, or 2^-25
  // absolute once subnormal; q * d then errs by up to |q| times that. Q4_1 / Q5_1 round half
  // a step of d = (max - min)/levels, plus the f16 error of d and of m = min.
  const halfErr = (d: number) => Math.max(d * 2 ** -11, 2 ** -25);
  const asym = (levels: number) => (amax: number, min: number, max: number) => {
    const d = (max - min) / levels;
    return 0.5 * d * (1 + 1e-5) + levels * halfErr(d) + halfErr(Math.abs(min));
  };
  const bounds: Array<[number, number, (amax: number, min: number, max: number) => number]> = [
    [GgmlType.Q8_0, 32, (a) => 0.5 * (a / 127) + 127 * halfErr(a / 127)],
    [GgmlType.Q8_1, 32, (a) => 0.5 * (a / 127) + 127 * halfErr(a / 127)],
    [GgmlType.Q4_0, 32, (a) => a / 8 + 8 * halfErr(a / 8)], // the far end clamps at q=7 instead of 8
    [GgmlType.Q5_0, 32, (a) => a / 16 + 16 * halfErr(a / 16)], // and at q=15 instead of 16
    [GgmlType.Q4_1, 32, asym(15)],
    [GgmlType.Q5_1, 32, asym(31)],
    // f32 d; near half steps, rounding iscale, iscale * x and d * q (each 2^-24 relative, of
    // values up to 127 steps) adds up to ~3 * 127 * 2^-24 of a step
    [GgmlType.Q8_K, 256, (a) => (a / 127) * (0.5 + 4 * 127 * 2 ** -24)],
  ];
  for (const [type, block, bound] of bounds) {
    const back = dequantizeOurs(type, quantizeOurs(type), MATRIX.rows);
    for (let b = 0; b < MATRIX.data.length; b += block) {
      let amax = 0, min = Infinity, max = -Infinity;
      for (let j = b; j < b + block; j++) {
        const v = MATRIX.data[j];
        amax = Math.max(amax, Math.abs(v));
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
      const limit = bound(amax, min, max);
      for (let j = b; j < b + block; j++) {
        const err = Math.abs(back[j] - MATRIX.data[j]);
        if (!(err <= limit + 1e-30)) assert.fail(`${typeName(type)} value ${j}: error ${err} > ${limit}`);
      }
    }
  }
});

test("Q4_K / Q5_K / Q6_K: an all-zero block comes back as zeros, a constant one within 2e-3", () => {
  const x = new Float32Array(512);
  x.fill(0.75, 256);
  for (const type of [GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K]) {
    const q = new Uint8Array(rowBytes(type, 512));
    quantizeRow(type, x, 0, 512, q, 0);
    const back = new Float32Array(512);
    dequantizeRow(type, q, 0, 512, back, 0);
    for (let j = 0; j < 256; j++) assert.ok(back[j] === 0, `${typeName(type)} zero block, value ${j}: ${back[j]}`); // -0 allowed
    for (let j = 256; j < 512; j++) assert.ok(Math.abs(back[j] - 0.75) < 2e-3, `${typeName(type)} constant block, value ${j}: ${back[j]}`);
  }
});

test("quantizeRow / dequantizeRow honour offsets, including an unaligned F32 source", () => {
  for (const type of ALL_TYPES) {
    const rb = rowBytes(type, 256);
    const x = new Float32Array(256 + 3);
    x.set(MATRIX.data.subarray(0, 256), 3);
    const dst = new Uint8Array(rb + 5).fill(0xee);
    quantizeRow(type, x, 3, 256, dst, 5);
    assert.deepEqual(dst.subarray(0, 5), new Uint8Array(5).fill(0xee), `${typeName(type)}: bytes before dstOffset untouched`);
    const direct = quantizeTensor(type, MATRIX.data.subarray(0, 256), 1, 256);
    assert.deepEqual(dst.subarray(5), direct, `${typeName(type)}: same bytes at an offset`);
    const out = new Float32Array(256 + 7).fill(-1);
    dequantizeRow(type, dst, 5, 256, out, 7);
    assert.deepEqual([...out.subarray(0, 7)], new Array(7).fill(-1), `${typeName(type)}: values before outOffset untouched`);
    const expect = new Float32Array(256);
    dequantizeRow(type, direct, 0, 256, expect, 0);
    assert.deepEqual(out.subarray(7), expect, `${typeName(type)}: same values from an offset`);
  }
});

test("quantizeTensor equals row-by-row quantizeRow", () => {
  for (const type of ALL_TYPES) {
    const all = quantizeTensor(type, MATRIX.data, MATRIX.rows, COLS);
    const rb = rowBytes(type, COLS);
    const row = new Uint8Array(rb);
    for (let r = 0; r < MATRIX.rows; r++) {
      quantizeRow(type, MATRIX.data, r * COLS, COLS, row, 0);
      assert.deepEqual(all.subarray(r * rb, (r + 1) * rb), row, `${typeName(type)} row ${r}`);
    }
  }
});

test("vecDotType follows ggml-cpu's type_traits_cpu table", () => {
  const expected: Array<[GgmlType, GgmlType]> = [
    [GgmlType.F32, GgmlType.F32], [GgmlType.F16, GgmlType.F16], [GgmlType.BF16, GgmlType.BF16],
    [GgmlType.Q8_0, GgmlType.Q8_0], [GgmlType.Q4_0, GgmlType.Q8_0], [GgmlType.Q5_0, GgmlType.Q8_0],
    [GgmlType.Q8_1, GgmlType.Q8_1], [GgmlType.Q4_1, GgmlType.Q8_1], [GgmlType.Q5_1, GgmlType.Q8_1],
    [GgmlType.Q4_K, GgmlType.Q8_K], [GgmlType.Q5_K, GgmlType.Q8_K], [GgmlType.Q6_K, GgmlType.Q8_K],
  ];
  for (const [w, a] of expected) assert.equal(vecDotType(w), a, typeName(w));
  assert.throws(() => vecDotType(GgmlType.Q2_K), /tensor type Q2_K \(10\) is not supported yet/);
});

test("unsupported types, bad lengths and short buffers fail with clear errors", () => {
  const x = new Float32Array(256);
  const dst = new Uint8Array(1024);
  assert.throws(() => quantizeRow(GgmlType.Q2_K, x, 0, 256, dst, 0), /^Error: tensor type Q2_K \(10\) is not supported yet$/);
  assert.throws(() => dequantizeRow(GgmlType.Q3_K, dst, 0, 256, x, 0), /tensor type Q3_K \(11\) is not supported yet/);
  assert.throws(() => dequantizeRow(99, dst, 0, 32, x, 0), /unknown tensor type 99/);
  assert.throws(() => quantizeRow(GgmlType.Q8_0, x, 0, 48, dst, 0), /not a multiple of Q8_0's block size 32/);
  assert.throws(() => quantizeRow(GgmlType.Q6_K, x, 0, 256, dst, 900), /needs 210 bytes/);
  assert.throws(() => dequantizeRow(GgmlType.Q8_0, dst, 0, 512, x, 0), /row of 512 values, array has 256/);
  assert.throws(() => dequantizeRow(GgmlType.Q8_0, dst, -34, 32, x, 0), /bad byte offset -34/);
  assert.throws(() => quantizeTensor(GgmlType.Q2_K, x, 1, 256), /Q2_K \(10\) is not supported yet/);
});

test("roundActivations: Q4_1 / Q5_1 weights see activations through x86 Q8_1, Q5_0 through Q8_0", () => {
  const T = 3, nIn = COLS;
  const x = MATRIX.data.subarray(0, T * nIn);
  for (const [w, dot] of [[GgmlType.Q4_1, GgmlType.Q8_1], [GgmlType.Q5_1, GgmlType.Q8_1], [GgmlType.Q5_0, GgmlType.Q8_0]] as const) {
    const out = new Float32Array(T * nIn);
    roundActivations(w, x, T, nIn, out);
    const expect = new Float32Array(T * nIn);
    const bytes = new Uint8Array(rowBytes(dot, nIn));
    for (let t = 0; t < T; t++) {
      quantizeRowX86(dot, x, t * nIn, nIn, bytes, 0);
      dequantizeRow(dot, bytes, 0, nIn, expect, t * nIn);
    }
    assertSameFloats(out, expect, typeName(w));
  }
});
