// Kernel micro-benchmark: GFLOP/s of the native matmul and attention at SmolLM2-135M shapes,
// with 1 and 2 threads (or the counts given as arguments).
//
//   npm run build && node dist/tools/bench-kernels.js [threads...] [--isa avx2|scalar] [--real]
//
// --real: the widths of the files people run (Llama-3.2-1B 2048 / 8192, Llama-3.1-8B 4096 /
// 14336) in the Q4_K_M types (Q4_K, Q6_K) and Q8_0: prefill tiles at T = 256, and decode (T = 1)
// in GB/s of weights beside the machine's streaming read of the same threads (`streamRead`), on
// copies of the weights that together exceed the last-level cache, so each call reads DRAM.
//
// matmul FLOPs = 2 T nOut nIn. attention FLOPs = 4 headDim nHeads (visible query-key pairs):
// Q K^T and P V, the softmax not counted. Each case runs for about a second; the best and the
// median time are reported. Other processes on the machine skew the numbers: look at "best".

import { GgmlType, typeName } from "../src/gguf/types.js";
import { loadNativeKernels, type NativeIsa, type NativeKernels } from "../src/kernels/native.js";
import type { AttentionArgs } from "../src/kernels/types.js";
import { quantizeTensor } from "../src/tensor/quant.js";
import { timeRuns as time } from "../src/bench/bench.js";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 * 2 - 1;
  };
}

function randomF32(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r();
  return a;
}

function fmt(flops: number, t: { best: number; median: number }): string {
  const g = (ms: number) => (flops / (ms * 1e6)).toFixed(1).padStart(7);
  return `${g(t.best)} GFLOP/s (best ${t.best.toFixed(2)} ms)  ${g(t.median)} GFLOP/s median`;
}

function benchMatmul(k: NativeKernels, type: number, T: number, nOut: number, nIn: number, threads: number[]): void {
  const wf = randomF32(nOut * nIn, 1);
  const w = type === GgmlType.F32 ? new Uint8Array(wf.buffer) : quantizeTensor(type, wf, nOut, nIn);
  const x = randomF32(T * nIn, 2);
  const y = new Float32Array(T * nOut);
  for (const n of threads) {
    k.setThreads(n);
    const t = time(() => k.matmul({ w, type, nOut, nIn, x, T, y }));
    const name = `matmul ${typeName(type).padEnd(5)} T=${String(T).padEnd(4)} nOut=${String(nOut).padEnd(5)} nIn=${String(nIn).padEnd(5)} threads=${n}`;
    console.log(`${name.padEnd(62)} ${fmt(2 * T * nOut * nIn, t)}`);
  }
}

/** Prefill GFLOP/s and decode GB/s (against a streaming read) at real model widths. */
function benchReal(k: NativeKernels, threads: number[]): void {
  const shapes: [number, number][] = [[2048, 2048], [8192, 2048], [2048, 8192], [14336, 4096], [4096, 14336]];
  const T = 256;
  for (const type of [GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q8_0]) {
    for (const [nOut, nIn] of shapes) {
      const wf = randomF32(nOut * nIn, 1);
      const w = quantizeTensor(type, wf, nOut, nIn);
      const x = randomF32(T * nIn, 2);
      const y = new Float32Array(T * nOut);
      for (const n of threads) {
        k.setThreads(n);
        const t = time(() => k.matmul({ w, type, nOut, nIn, x, T, y }), 1000, 20);
        const name = `prefill ${typeName(type).padEnd(5)} T=${T} nOut=${String(nOut).padEnd(5)} nIn=${String(nIn).padEnd(5)} threads=${n}`;
        console.log(`${name.padEnd(62)} ${fmt(2 * T * nOut * nIn, t)}`);
      }
    }
  }
  // Decode: copies of the weights filling 512 MiB, called in turn.
  const gb = (bytes: number, ms: number) => bytes / (ms * 1e6);
  const stream = new Uint8Array(512 * 2 ** 20).fill(1);
  for (const n of threads) {
    k.setThreads(n);
    const s = time(() => k.streamRead(stream), 1000, 20);
    console.log(`${`streaming read 512 MiB threads=${n}`.padEnd(62)} ${gb(stream.length, s.best).toFixed(1).padStart(7)} GB/s (best)`);
    for (const type of [GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q8_0]) {
      for (const [nOut, nIn] of shapes.slice(1)) {
        const one = quantizeTensor(type, randomF32(nOut * nIn, 3), nOut, nIn);
        const copies = Array.from({ length: Math.max(2, Math.ceil(stream.length / one.length)) }, () => one.slice());
        const x = randomF32(nIn, 4);
        const y = new Float32Array(nOut);
        let c = 0;
        const t = time(() => k.matmul({ w: copies[c++ % copies.length], type, nOut, nIn, x, T: 1, y }), 1000, 400);
        const rate = gb(one.length, t.median);
        const name = `decode  ${typeName(type).padEnd(5)} T=1   nOut=${String(nOut).padEnd(5)} nIn=${String(nIn).padEnd(5)} threads=${n}`;
        console.log(`${name.padEnd(62)} ${rate.toFixed(1).padStart(7)} GB/s median = ${(rate / gb(stream.length, s.best)).toFixed(2)} of the streaming read`);
      }
    }
  }
}

function benchAttention(k: NativeKernels, T: number, nCache: number, threads: number[]): void {
  const nHeads = 9, nKvHeads = 3, headDim = 64, cap = nCache;
  const rowSeq = new Int32Array(nKvHeads * cap);
  const rowPos = new Int32Array(nKvHeads * cap);
  for (let h = 0; h < nKvHeads; h++) for (let r = 0; r < cap; r++) rowPos[h * cap + r] = r;
  const qPos = new Int32Array(T);
  for (let t = 0; t < T; t++) qPos[t] = nCache - T + t;
  const a: AttentionArgs = {
    q: randomF32(T * nHeads * headDim, 3), k: randomF32(nKvHeads * cap * headDim, 4), v: randomF32(nKvHeads * cap * headDim, 5),
    rowSeq, rowPos, nRows: new Int32Array(nKvHeads).fill(nCache), cap, qSeq: new Int32Array(T), qPos,
    visible: Uint8Array.of(1), nSeqMax: 1, T, nHeads, nKvHeads, headDim, scale: 1 / Math.sqrt(headDim),
    out: new Float32Array(T * nHeads * headDim),
  };
  // visible pairs: query t sees keys 0..qPos[t]
  let pairs = 0;
  for (let t = 0; t < T; t++) pairs += qPos[t] + 1;
  for (const n of threads) {
    k.setThreads(n);
    const t = time(() => k.attention(a));
    const name = `attention causal T=${T} cache=${nCache} 9/3 heads hd=64 threads=${n}`;
    console.log(`${name.padEnd(62)} ${fmt(4 * headDim * nHeads * pairs, t)}`);
  }
}

function main(): void {
  const args = process.argv.slice(2);
  const isaAt = args.indexOf("--isa");
  const isa = isaAt >= 0 ? (args.splice(isaAt, 2)[1] as NativeIsa) : undefined;
  const realAt = args.indexOf("--real");
  const real = realAt >= 0 && args.splice(realAt, 1).length > 0;
  const threads = args.length ? args.map(Number) : [1, 2];
  const r = loadNativeKernels();
  if ("error" in r) {
    console.error(`native kernels unavailable: ${r.error}`);
    process.exit(1);
  }
  const k = r.kernels;
  if (isa) k.setIsa(isa);
  const info = k.info();
  console.log(`native kernels: isa ${info.isa} (detected ${info.detectedIsa}), threads ${threads.join(", ")}`);
  if (real) {
    benchReal(k, threads);
    return;
  }
  // Prefill shapes: SmolLM2-135M's gate/up projection (1536 x 576). K-quants need nIn to be
  // a multiple of 256, so Q4_K is measured on the down projection (576 x 1536) instead.
  benchMatmul(k, GgmlType.F16, 512, 1536, 576, threads);
  benchMatmul(k, GgmlType.Q8_0, 512, 1536, 576, threads);
  benchMatmul(k, GgmlType.Q4_K, 512, 576, 1536, threads);
  // Decode: the output projection (49152 x 576; Q4_K again on nIn = 512).
  benchMatmul(k, GgmlType.F16, 1, 49152, 576, threads);
  benchMatmul(k, GgmlType.Q8_0, 1, 49152, 576, threads);
  benchMatmul(k, GgmlType.Q4_K, 1, 49152, 512, threads);
  benchAttention(k, 2048, 2048, threads);
  benchAttention(k, 1, 4096, threads);
}

main();
