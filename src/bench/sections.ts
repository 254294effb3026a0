// The sections of `parallelcomp bench` beyond the engine rows (bench.ts): the matmul kernel
// against OpenBLAS, long inputs against llama.cpp, and the paper's batching and memory headline.
// Every row is a ratio measured side by side in the same run, with the target.

import { GgmlType } from "../gguf/types.js";
import { loadNativeKernels } from "../kernels/native.js";
import { loadModel } from "../model/model.js";
import { loadEngine } from "../backends/index.js";
import type { BackendChoice } from "../engine/engine.js";
import { resolveOptions, PRESETS } from "../method/options.js";
import { runMethod } from "../method/baselines.js";
import { rng } from "../util/rng.js";
import { llamaCppSpeed } from "./llama-cpp.js";
import { benchModel, engineRows, formatRow, timeRuns, type BenchRow } from "./bench.js";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { longRun, randomRequest } from "./long.js";

/** Our F32 matmul against OpenBLAS's sgemm (loaded with dlopen if installed) on n x n x n. */
export function kernelRows(threads: number, n = 1024, blasLib = "libopenblas.so.0"): BenchRow[] {
  const native = loadNativeKernels();
  if ("error" in native) throw new Error(`the kernel comparison needs the native addon: ${native.error}`);
  const k = native.kernels;
  k.setThreads(threads);
  const random = rng(12345);
  const r = () => random() * 2 - 1;
  const w = Float32Array.from({ length: n * n }, r);
  const x = Float32Array.from({ length: n * n }, r);
  const wBytes = new Uint8Array(w.buffer);
  const ours = new Float32Array(n * n);
  const theirs = new Float32Array(n * n);
  const flops = 2 * n * n * n;
  const oursMs = timeRuns(() => k.matmul({ w: wBytes, type: GgmlType.F32, nOut: n, nIn: n, x, T: n, y: ours }), 1500).best;
  let blasMs: number | null = null;
  let note = "";
  try {
    blasMs = timeRuns(() => k.blasSgemm(blasLib, x, w, theirs, n, n, n, threads), 1500).best;
  } catch (e) {
    note = `OpenBLAS not measured: ${(e as Error).message} (apt-get install libopenblas0)`;
  }
  if (blasMs !== null) {
    let maxErr = 0, maxRef = 0;
    for (let i = 0; i < n * n; i++) {
      maxErr = Math.max(maxErr, Math.abs(ours[i] - theirs[i]));
      maxRef = Math.max(maxRef, Math.abs(theirs[i]));
    }
    if (maxErr > 1e-4 * maxRef) throw new Error(`our matmul and sgemm disagree: max error ${maxErr} of ${maxRef}`);
  }
  const gf = (ms: number) => flops / (ms * 1e6);
  return [{
    what: `matmul F32 ${n}^3 GFLOP/s`, ours: gf(oursMs), reference: blasMs === null ? null : gf(blasMs),
    referenceName: "OpenBLAS sgemm", ratio: blasMs === null ? null : blasMs / oursMs, target: { min: 0.6 }, note,
  }];
}

/**
 * Long inputs on the SmolLM2-135M shape: ParallelComp over `long` tokens end to end against
 * llama.cpp's plain prefill of the same number of tokens, and ParallelComp's peak RSS at `big`
 * against `small` tokens (each run its own process).
 */
export async function longRows(o: { threads: number; long: number; small: number; big: number; llamaCpp: boolean; log: (s: string) => void }): Promise<BenchRow[]> {
  const file = benchModel("smollm2-135m", GgmlType.F16);
  const rows: BenchRow[] = [];
  const pc = await longRun({ model: file, tokens: o.long, threads: o.threads, preset: "default" });
  o.log(`  parallelcomp ${o.long} tokens: ${pc.seconds.toFixed(1)} s end to end (${pc.chunks} chunks of ${pc.chunkTokens}), peak RSS ${pc.peakRssMiB.toFixed(0)} MiB`);
  let ref: number | null = null;
  if (o.llamaCpp) {
    const model = loadModel(file);
    const prompt = randomRequest(model.config.nVocab, o.long, 0).context;
    model.close();
    // llama.cpp's own default batch of 2048 tokens (a 32K batch would only cost it memory).
    const s = await llamaCppSpeed(file, prompt, 0, o.threads, 1, 2048);
    ref = o.long / s.prefillTokensPerSecond;
    o.log(`  llama.cpp prefill of ${o.long} tokens: ${ref.toFixed(1)} s`);
  }
  rows.push({
    what: `${o.long / 1024}K tokens, seconds`, ours: pc.seconds, reference: ref, referenceName: "llama.cpp prefill",
    ratio: ref === null ? null : ref / pc.seconds, target: { min: 4 },
  });
  const small = await longRun({ model: file, tokens: o.small, threads: o.threads, preset: "default" });
  const big = await longRun({ model: file, tokens: o.big, threads: o.threads, preset: "default" });
  o.log(`  parallelcomp ${o.small} tokens: peak RSS ${small.peakRssMiB.toFixed(0)} MiB (${small.seconds.toFixed(1)} s); ${o.big} tokens: ${big.peakRssMiB.toFixed(0)} MiB (${big.seconds.toFixed(1)} s, ${(o.big / big.seconds).toFixed(0)} tok/s)`);
  rows.push({
    what: `peak RSS MiB ${o.big / 1024}K vs ${o.small / 1024}K`, ours: big.peakRssMiB, reference: small.peakRssMiB,
    referenceName: `parallelcomp at ${o.small / 1024}K`, ratio: big.peakRssMiB / small.peakRssMiB, target: { max: 1.2 }, // issue 16, with the F16 KV cache
  });
  // Without lowMemory (the default) every kept chunk's KV is held while reading: one window more.
  const held = await longRun({ model: file, tokens: o.big, threads: o.threads, preset: "default", lowMemory: false });
  o.log(`  parallelcomp ${o.big} tokens without lowMemory: peak RSS ${held.peakRssMiB.toFixed(0)} MiB (${held.seconds.toFixed(1)} s)`);
  rows.push({
    what: `peak RSS MiB ${o.big / 1024}K, lowMemory vs without`, ours: big.peakRssMiB, reference: held.peakRssMiB,
    referenceName: "lowMemory false", ratio: big.peakRssMiB / held.peakRssMiB, target: null,
    note: `${(big.seconds / held.seconds).toFixed(2)}x the time (${big.seconds.toFixed(1)} vs ${held.seconds.toFixed(1)} s)`,
  });
  // The bound itself: keepChunks kept chunks + maxParallelChunks in flight, each a window of KV; it is
  // reached once the document has that many chunks, and from there memory stays flat.
  rows.push({
    what: `peak RSS MiB ${o.big / 1024}K vs ${o.long / 1024}K`, ours: big.peakRssMiB, reference: pc.peakRssMiB,
    referenceName: `parallelcomp at ${o.long / 1024}K`, ratio: big.peakRssMiB / pc.peakRssMiB, target: null,
  });
  return rows;
}

/**
 * The paper's headline, our way (SmolLM2-135M shape): stage 0 with `chunks` chunks of
 * `chunkTokens` encoded in one parallel batch against one chunk at a time, and how many chunks'
 * KV fit in `budgetMiB` with and without SnapKV compression (the compress preset's capacity).
 */
export function batchingRows(o: { threads: number; chunks: number; chunkTokens: number; budgetMiB: number; model?: string; backend?: BackendChoice }): BenchRow[] {
  const model = loadEngine(o.model ?? benchModel("smollm2-135m", GgmlType.F16), { threads: o.threads, backend: o.backend });
  try {
    const req = randomRequest(model.config.nVocab, o.chunks * o.chunkTokens, 24);
    // keepWithin null: the KV per chunk below divides by the chunks asked for, so every one stays.
    const run = (preset: string, over: Record<string, number>) => runMethod("parallelcomp", model, req, resolveOptions(preset, { chunkTokens: o.chunkTokens, maxTokens: 1, keepWithin: null, ...over }));
    const rate = (parallel: number) => {
      let bestRate = 0;
      for (let i = 0; i < 2; i++) bestRate = Math.max(bestRate, req.context.length / run("default", { keepChunks: 1, maxParallelChunks: parallel }).prefillSeconds);
      return bestRate;
    };
    const batched = rate(o.chunks);
    const serial = rate(1);
    const stage0: BenchRow = {
      what: `stage 0 tok/s, ${o.chunks} x ${o.chunkTokens} in 1 batch (${model.backend.name})`, ours: batched, reference: serial, referenceName: "1 chunk at a time",
      ratio: batched / serial, target: null,
    };
    if (!model.layers) return [stage0]; // SnapKV compression needs the engine's layers
    const plain = run("default", { keepChunks: o.chunks, maxParallelChunks: o.chunks }).keptKvBytes / o.chunks;
    const compressed = run("compress", { keepChunks: o.chunks, maxParallelChunks: o.chunks }).keptKvBytes / o.chunks;
    const budget = o.budgetMiB * 2 ** 20;
    const fit = (perChunk: number) => Math.floor(budget / perChunk);
    const capacity = PRESETS.compress.eviction.capacity;
    return [
      stage0,
      {
        what: `chunks in ${o.budgetMiB} MiB of KV`, ours: fit(compressed), reference: fit(plain), referenceName: "without compression",
        ratio: plain / compressed, target: null, note: `SnapKV capacity ${capacity}: ${(compressed / 2 ** 20).toFixed(2)} vs ${(plain / 2 ** 20).toFixed(2)} MiB per chunk of ${o.chunkTokens}`,
      },
    ];
  } finally {
    model.close();
  }
}

/**
 * The files people run: llama-quantize's Q4_K_M mix at the Llama-3.2-1B shape (prefill 512,
 * decode 32) and the Llama-3.1-8B shape (prefill 128, decode 8), beside llama.cpp: prefill and
 * decode (the engine rows), then the load time and peak RSS of each engine, each alone in a child
 * process that loads the file and prefills the prompt.
 */
export async function realRows(o: { threads: number; llamaCpp: boolean; log: (s: string) => void }): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const child = (engine: string, file: string, n: number): { loadSeconds: number; peakRssBytes: number } => {
    const r = spawnSync(process.execPath, [fileURLToPath(new URL("./load-child.js", import.meta.url)), engine, file, String(n), String(o.threads)], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`the ${engine} load run failed: ${r.stderr.trim().split("\n").pop()}`);
    return JSON.parse(r.stdout.trim().split("\n").pop()!);
  };
  for (const [shape, prompt, decode] of [["llama3.2-1b", 512, 32], ["llama3.1-8b", 128, 8]] as const) {
    rows.push(...(await engineRows({ shape, type: "Q4_K_M", prompts: [prompt], decode, threads: o.threads, repeats: 1, llamaCpp: o.llamaCpp, decodeTarget: 0.9, spreadRuns: 5 }, o.log)));
    const file = benchModel(shape, "Q4_K_M");
    const ours = child("ours", file, prompt);
    const theirs = o.llamaCpp ? child("llama.cpp", file, prompt) : null;
    const row = (what: string, a: number, b: number | null, max: number): BenchRow =>
      ({ what: `${shape} Q4_K_M ${what}`, ours: a, reference: b, referenceName: "llama.cpp", ratio: b ? a / b : null, target: { max } });
    rows.push(row("load s", ours.loadSeconds, theirs?.loadSeconds ?? null, 1.0));
    o.log(formatRow(rows[rows.length - 1]));
    rows.push(row("peak RSS GiB", ours.peakRssBytes / 2 ** 30, theirs ? theirs.peakRssBytes / 2 ** 30 : null, 1.2));
    o.log(formatRow(rows[rows.length - 1]));
  }
  return rows;
}
