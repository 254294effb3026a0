// Decode steadiness (issue 16): per-step decode times over several runs in one process, and the
// addon's streaming read repeated, and kernels that touch no DRAM (thread hand-offs, compute) in
// rounds at 1 and N threads, to tell the engine's variance from the machine's. Each run and round
// also prints the machine's steal time (ticks the hypervisor gave another guest) and idle time.
//
//   npm run build && node dist/tools/decode-steadiness.js FILE [threads (2)] [runs (4)]
//
// Each run: a fresh cache, a 512-token prefill, then 32 single-token steps; prints the min,
// median and max step time, and the machine's streaming read just before and just after the
// steps (the decode is bound by memory bandwidth, which other guests on the host share): the
// spread of the medians, and the spread of the decode's read rate as a share of the streaming
// read around it (the engine's own steadiness, with the machine's bandwidth taken out). Then
// twelve streaming reads of 512 MiB at the same thread count.

import { loadModel } from "../src/model/model.js";
import { sequenceBatch } from "../src/engine/batch.js";
import { loadNativeKernels } from "../src/kernels/native.js";
import { spreadFromMedian } from "../src/bench/bench.js";
import fs from "node:fs";

/** The machine's steal and idle time so far, in clock ticks (/proc/stat's first line; 0s off Linux). */
function cpuTicks(): { steal: number; idle: number } {
  try {
    const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3] + f[4], steal: f[7] ?? 0 };
  } catch {
    return { steal: 0, idle: 0 };
  }
}
/** Ticks of steal and idle (all CPUs together) since `t0`, as "steal S idle I". */
const ticksSince = (t0: { steal: number; idle: number }) => {
  const t = cpuTicks();
  return `steal ${t.steal - t0.steal} idle ${t.idle - t0.idle}`;
};

const [file, threadsArg = "2", runsArg = "4"] = process.argv.slice(2);
if (!file) {
  console.error("usage: node dist/tools/decode-steadiness.js FILE [threads] [runs]");
  process.exit(2);
}
const threads = Number(threadsArg);
const model = loadModel(file, { threads });
const native = loadNativeKernels();
const stream = "kernels" in native ? native.kernels : null;
const streamBuf = new Uint8Array(256 * 2 ** 20).fill(1);
/** The machine's streaming read now, at the decode's thread count: the best of three reads of
 *  256 MiB, in GB/s (the same pool the decode uses, so setThreads is already `threads`). */
const streamNow = (): number => {
  let best = 0;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    stream!.streamRead(streamBuf);
    best = Math.max(best, streamBuf.length / ((performance.now() - t0) * 1e6));
  }
  return best;
};
// A decode step reads about the whole file (every weight once; the tied output head reads the
// embedding table), so file bytes / step time is the decode's read rate.
const stepBytes = fs.statSync(file).size;
const n = 512;
const prompt = Array.from({ length: n }, (_, i) => (i * 7919) % (model.config.nVocab - 2));
const medians: number[] = [];
const shares: number[] = [];
const reads: number[] = [];
for (let r = 0; r < Number(runsArg); r++) {
  const cache = model.newCache({ capacity: n + 64 });
  model.forward(cache, sequenceBatch(prompt));
  const before = stream ? streamNow() : 0;
  const ms: number[] = [];
  const ticks = cpuTicks();
  for (let i = 0; i < 32; i++) {
    const t0 = performance.now();
    model.forward(cache, sequenceBatch([5 + i], { pos0: n + i }));
    ms.push(performance.now() - t0);
  }
  const tickText = ticksSince(ticks);
  const after = stream ? streamNow() : 0;
  ms.sort((a, b) => a - b);
  medians.push(ms[16]);
  const rate = stepBytes / (ms[16] * 1e6);
  let share = "";
  if (stream) {
    shares.push(rate / ((before + after) / 2));
    reads.push(before, after);
    share = `; decode reads ${rate.toFixed(1)} GB/s, the streaming read around it ${before.toFixed(1)} and ${after.toFixed(1)} GB/s: ${(100 * shares[r]).toFixed(0)}% of it`;
  }
  console.log(`run ${r}: step min ${ms[0].toFixed(1)} median ${ms[16].toFixed(1)} max ${ms[31].toFixed(1)} ms; ${tickText} ticks${share}`);
}
console.log(`median steps: largest distance from their median ${(100 * spreadFromMedian(medians)).toFixed(1)}%`);
if (reads.length) console.log(`the streaming reads around the runs: ${Math.min(...reads).toFixed(1)}-${Math.max(...reads).toFixed(1)} GB/s, largest distance from their median ${(100 * spreadFromMedian(reads)).toFixed(1)}%`);
if (shares.length) console.log(`decode's share of the streaming read: largest distance from its median ${(100 * spreadFromMedian(shares)).toFixed(1)}%`);
model.close();
if (stream) {
  stream.setThreads(threads);
  const buf = new Uint8Array(512 * 2 ** 20).fill(1);
  const rates: string[] = [];
  for (let i = 0; i < 12; i++) {
    const t0 = performance.now();
    stream.streamRead(buf);
    rates.push((buf.length / ((performance.now() - t0) * 1e6)).toFixed(1));
  }
  console.log(`streaming read 512 MiB, ${threads} threads: ${rates.join(" ")} GB/s`);
  // Work that touches no DRAM, in rounds shaped like decode runs: if these shift round to round
  // at N threads and not at 1, the machine (how its vCPUs are scheduled) moves, not the engine.
  const rounds = (label: string, nIn: number, T: number, calls: number) => {
    const w = new Uint8Array(nIn * nIn * 4);
    new Float32Array(w.buffer).forEach((_, i, a) => (a[i] = ((i * 2654435761) % 1000) / 1000 - 0.5));
    const x = new Float32Array(T * nIn).fill(0.25);
    const y = new Float32Array(T * nIn);
    for (const nth of [1, threads]) {
      stream.setThreads(nth);
      const per: number[] = [];
      const ticks: string[] = [];
      for (let r = 0; r < 8; r++) {
        const t0 = performance.now();
        const k0 = cpuTicks();
        for (let c = 0; c < calls; c++) stream.matmul({ w, type: 0, nOut: nIn, nIn, x, T, y });
        per.push((performance.now() - t0) / calls);
        ticks.push(ticksSince(k0));
      }
      const spread = spreadFromMedian(per);
      console.log(`${label}, ${nth} thread(s), 8 rounds of ${calls} calls: ${per.map((v) => (v * 1000).toFixed(0)).join(" ")} us per call; largest distance from the median ${(100 * spread).toFixed(1)}%`);
      console.log(`  per round: ${ticks.join("; ")} ticks`);
    }
  };
  rounds("F32 matmul 512x512, 1 token (cache-resident, thread hand-offs as in decode)", 512, 1, 4000);
  rounds("F32 matmul 1024x1024, 64 tokens (compute-bound)", 1024, 64, 40);
  stream.setThreads(threads);
}
