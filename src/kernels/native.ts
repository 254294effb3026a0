// The native kernels: the C addon in native/ (SIMD + a persistent thread pool), loaded with
// createRequire. Arguments are validated here, with errors that name the argument and give the
// expected and actual sizes, before anything reaches C (the addon re-checks the essentials).
// loadNativeKernels never throws: when the addon is missing or fails to load, it returns the
// reason and the caller falls back to the TypeScript kernels.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { TYPE_TRAITS, typeName } from "../gguf/types.js";
import type { AttentionArgs, Kernels, MatmulArgs } from "./types.js";

/** The addon's raw interface (native/src/binding.c). */
interface NativeAddon {
  matmul(w: Uint8Array, type: number, nOut: number, nIn: number, x: Float32Array, T: number, y: Float32Array): void;
  attention(
    q: Float32Array, k: Float32Array | Uint16Array, v: Float32Array | Uint16Array, rowSeq: Int32Array, rowPos: Int32Array, nRows: Int32Array,
    cap: number, qSeq: Int32Array, qPos: Int32Array, visible: Uint8Array, nSeqMax: number, T: number,
    nHeads: number, nKvHeads: number, headDim: number, scale: number, out: Float32Array, softcap: number, window: number,
  ): void;
  rmsnorm(y: Float32Array, x: Float32Array, w: Float32Array, T: number, dim: number, eps: number): void;
  swiglu(gate: Float32Array, up: Float32Array, n: number): void;
  geglu(gate: Float32Array, up: Float32Array, n: number): void;
  add(x: Float32Array, y: Float32Array, n: number): void;
  rope(x: Float32Array, T: number, nH: number, headDim: number, ropeDim: number, neox: number, cos: Float32Array, sin: Float32Array): void;
  copyRows(dst: Float32Array | Uint16Array, dstOffset: number, dstStride: number, src: Float32Array, srcOffset: number, srcStride: number, rowLen: number, nRows: number): void;
  blasSgemm(lib: string, x: Float32Array, w: Float32Array, y: Float32Array, T: number, nOut: number, nIn: number, threads: number): void;
  setThreads(n: number): number;
  getThreads(): number;
  setIsa(name: string): string;
  info(): NativeInfo;
  trimMemory(): boolean;
  mapFile(path: string, offset: number, length: number): ArrayBuffer;
  streamRead(buffer: Uint8Array): number;
}

export type NativeIsa = "avx512" | "avx2" | "scalar";

export interface NativeInfo {
  /** Instruction set the kernels use now. */
  isa: NativeIsa;
  /** Best instruction set this CPU supports. */
  detectedIsa: NativeIsa;
  /** Thread pool size (the calling thread included). */
  threads: number;
}

export interface NativeKernels extends Kernels {
  readonly name: "native";
  info(): NativeInfo;
  /** Returns the C heap's free pages to the OS (glibc's malloc_trim); true if any were. */
  trimMemory(): boolean;
  /** Bytes [offset, offset + length) of a file (offset page-aligned, length at most 4 GiB) mapped
   *  copy-on-write, every page mapped at once; unmapped when collected. */
  mapFile(path: string, offset: number, length: number): ArrayBuffer;
  /** Reads `buffer` once on every pool thread (a contiguous share each) and returns a checksum:
   *  the machine's streaming read, the yardstick of bandwidth-bound decoding. */
  streamRead(buffer: Uint8Array): number;
  /** Restricts the instruction set (for tests and benchmarks); clamped to what the CPU has. */
  setIsa(isa: NativeIsa): NativeIsa;
  /** The benchmark's yardstick: y[T, nOut] = x . w^T with `lib`'s cblas_sgemm (dlopen'ed;
   *  throws, naming the library, when it cannot be loaded). */
  blasSgemm(lib: string, x: Float32Array, w: Float32Array, y: Float32Array, T: number, nOut: number, nIn: number, threads: number): void;
}

/** Weight types the addon's matmul handles. */
export const NATIVE_MATMUL_TYPES: ReadonlySet<number> = new Set([0, 1, 30, 8, 2, 3, 6, 7, 12, 13, 14]);

const ADDON_RELATIVE = join("native", "build", "Release", "parallelcomp_native.node");

let cached: { kernels: NativeKernels } | { error: string } | undefined;

/** Finds the addon: $PARALLELCOMP_NATIVE_ADDON, else native/build/Release/ in the package
 *  root, looked for upwards from this file (works from src/ and from dist/src/). */
function findAddon(): string | undefined {
  const fromEnv = process.env.PARALLELCOMP_NATIVE_ADDON;
  if (fromEnv) return resolve(fromEnv);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, ADDON_RELATIVE);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return undefined;
}

export function loadNativeKernels(): { kernels: NativeKernels } | { error: string } {
  if (cached) return cached;
  const path = findAddon();
  if (!path) {
    cached = { error: `addon not found (${ADDON_RELATIVE} was not built)` };
    return cached;
  }
  try {
    const require = createRequire(import.meta.url);
    const addon = require(path) as NativeAddon;
    if (typeof addon.matmul !== "function" || typeof addon.attention !== "function") {
      cached = { error: `${path} is not the parallelcomp addon` };
    } else if (typeof addon.copyRows !== "function" || typeof addon.trimMemory !== "function" || typeof addon.mapFile !== "function" || typeof addon.geglu !== "function" || typeof addon.streamRead !== "function") {
      cached = { error: `${path} was built from older sources; rebuild it: npm run build:native` };
    } else {
      cached = { kernels: wrap(addon) };
    }
  } catch (e) {
    cached = { error: `cannot load ${path}: ${e instanceof Error ? e.message : String(e)}` };
  }
  return cached;
}

// ---------------------------------------------------------------------------------------------
// Validation

function checkInt(fn: string, name: string, v: number, min = 0): void {
  if (!Number.isInteger(v) || v < min || v > 0x7fffffff) {
    throw new RangeError(`${fn}: ${name} must be an integer >= ${min}, got ${v}`);
  }
}

function checkArray(fn: string, name: string, a: unknown, ctor: { name: string; prototype: object }): void {
  if (!(a instanceof (ctor as unknown as new () => object))) {
    const got = a === null ? "null" : typeof a === "object" ? (a as object).constructor?.name ?? "object" : typeof a;
    throw new TypeError(`${fn}: ${name} must be a ${ctor.name}, got ${got}`);
  }
}

function checkLength(fn: string, name: string, got: number, expected: number, what: string): void {
  if (got < expected) {
    throw new RangeError(`${fn}: ${name} has length ${got}, expected at least ${expected} (${what})`);
  }
}

function validateMatmul(a: MatmulArgs): void {
  const fn = "matmul";
  const { w, type, nOut, nIn, x, T, y } = a;
  const traits = TYPE_TRAITS.get(type);
  if (!traits || !NATIVE_MATMUL_TYPES.has(type)) {
    throw new RangeError(`${fn}: weight type ${typeName(type)} is not supported by the native kernels`);
  }
  checkInt(fn, "nOut", nOut);
  checkInt(fn, "nIn", nIn);
  checkInt(fn, "T", T);
  if (nIn % traits.blockSize !== 0) {
    throw new RangeError(`${fn}: nIn = ${nIn} is not a multiple of ${traits.name}'s block size ${traits.blockSize}`);
  }
  checkArray(fn, "w", w, Uint8Array);
  checkArray(fn, "x", x, Float32Array);
  checkArray(fn, "y", y, Float32Array);
  const rowBytes = (nIn / traits.blockSize) * traits.typeSize;
  checkLength(fn, "w", w.length, nOut * rowBytes, `nOut ${nOut} x ${rowBytes} bytes per ${traits.name} row of ${nIn}`);
  checkLength(fn, "x", x.length, T * nIn, `T ${T} x nIn ${nIn}`);
  checkLength(fn, "y", y.length, T * nOut, `T ${T} x nOut ${nOut}`);
}

function validateAttention(a: AttentionArgs): void {
  const fn = "attention";
  const { T, nHeads, nKvHeads, headDim, cap, nSeqMax } = a;
  checkInt(fn, "T", T);
  checkInt(fn, "nHeads", nHeads, 1);
  checkInt(fn, "nKvHeads", nKvHeads, 1);
  checkInt(fn, "headDim", headDim, 1);
  checkInt(fn, "cap", cap);
  checkInt(fn, "nSeqMax", nSeqMax, 1);
  if (nHeads % nKvHeads !== 0) throw new RangeError(`${fn}: nHeads ${nHeads} is not a multiple of nKvHeads ${nKvHeads}`);
  if (!Number.isFinite(a.scale)) throw new RangeError(`${fn}: scale must be finite, got ${a.scale}`);
  if (a.softcap !== undefined && !(Number.isFinite(a.softcap) && a.softcap >= 0)) throw new RangeError(`${fn}: softcap must be a finite number >= 0, got ${a.softcap}`);
  if (a.window !== undefined) checkInt(fn, "window", a.window);
  for (const name of ["q", "out"] as const) checkArray(fn, name, a[name], Float32Array);
  const KvRows = a.k instanceof Uint16Array ? Uint16Array : Float32Array; // an F16 or an F32 cache
  for (const name of ["k", "v"] as const) checkArray(fn, name, a[name], KvRows);
  for (const name of ["rowSeq", "rowPos", "nRows", "qSeq", "qPos"] as const) checkArray(fn, name, a[name], Int32Array);
  checkArray(fn, "visible", a.visible, Uint8Array);
  const qLen = T * nHeads * headDim;
  const kvLen = nKvHeads * cap * headDim;
  checkLength(fn, "q", a.q.length, qLen, `T ${T} x nHeads ${nHeads} x headDim ${headDim}`);
  checkLength(fn, "out", a.out.length, qLen, `T ${T} x nHeads ${nHeads} x headDim ${headDim}`);
  checkLength(fn, "k", a.k.length, kvLen, `nKvHeads ${nKvHeads} x cap ${cap} x headDim ${headDim}`);
  checkLength(fn, "v", a.v.length, kvLen, `nKvHeads ${nKvHeads} x cap ${cap} x headDim ${headDim}`);
  checkLength(fn, "rowSeq", a.rowSeq.length, nKvHeads * cap, `nKvHeads ${nKvHeads} x cap ${cap}`);
  checkLength(fn, "rowPos", a.rowPos.length, nKvHeads * cap, `nKvHeads ${nKvHeads} x cap ${cap}`);
  checkLength(fn, "nRows", a.nRows.length, nKvHeads, `nKvHeads ${nKvHeads}`);
  checkLength(fn, "qSeq", a.qSeq.length, T, `T ${T}`);
  checkLength(fn, "qPos", a.qPos.length, T, `T ${T}`);
  checkLength(fn, "visible", a.visible.length, nSeqMax * nSeqMax, `nSeqMax ${nSeqMax} squared`);
  for (let h = 0; h < nKvHeads; h++) {
    const n = a.nRows[h];
    if (n < 0 || n > cap) throw new RangeError(`${fn}: nRows[${h}] = ${n} is outside [0, cap ${cap}]`);
  }
  for (let t = 0; t < T; t++) {
    const s = a.qSeq[t];
    if (s < 0 || s >= nSeqMax) throw new RangeError(`${fn}: qSeq[${t}] = ${s} is outside [0, nSeqMax ${nSeqMax})`);
  }
  // rowSeq values of the rows in use are checked in C, where the rows are read anyway.
}

function wrap(addon: NativeAddon): NativeKernels {
  return {
    name: "native",
    matmul(a: MatmulArgs): void {
      validateMatmul(a);
      addon.matmul(a.w, a.type, a.nOut, a.nIn, a.x, a.T, a.y);
    },
    attention(a: AttentionArgs): void {
      validateAttention(a);
      addon.attention(
        a.q, a.k, a.v, a.rowSeq, a.rowPos, a.nRows, a.cap, a.qSeq, a.qPos, a.visible, a.nSeqMax, a.T,
        a.nHeads, a.nKvHeads, a.headDim, a.scale, a.out, a.softcap ?? 0, a.window ?? 0,
      );
    },
    // The element-wise ops are checked in C (types, integer sizes, lengths), with messages that
    // name the argument: nothing here would add to them.
    rmsnorm: (y, x, w, T, dim, eps) => addon.rmsnorm(y, x, w, T, dim, eps),
    swiglu: (gate, up, n) => addon.swiglu(gate, up, n),
    geglu: (gate, up, n) => addon.geglu(gate, up, n),
    add: (x, y, n) => addon.add(x, y, n),
    rope: (x, T, nH, headDim, ropeDim, neox, cos, sin) => addon.rope(x, T, nH, headDim, ropeDim, neox ? 1 : 0, cos, sin),
    copyRows: (dst, dstOffset, dstStride, src, srcOffset, srcStride, rowLen, nRows) =>
      addon.copyRows(dst, dstOffset, dstStride, src, srcOffset, srcStride, rowLen, nRows),
    setThreads(n: number): void {
      checkInt("setThreads", "n", n, 1);
      addon.setThreads(n);
    },
    info: () => addon.info(),
    trimMemory: () => addon.trimMemory(),
    mapFile: (path, offset, length) => addon.mapFile(path, offset, length),
    streamRead: (buffer) => addon.streamRead(buffer),
    blasSgemm: (lib, x, w, y, T, nOut, nIn, threads) => addon.blasSgemm(lib, x, w, y, T, nOut, nIn, threads),
    setIsa: (isa: NativeIsa) => addon.setIsa(isa) as NativeIsa,
  };
}
