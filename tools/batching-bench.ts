// Stage 0's batching speedup (the paper's 23.5x headline: 23 chunks encoded at once against one at
// a time): ParallelComp over a long random-token document on a random-weight model, with chunks
// prefilled 1, 8 and 23 at a time. Prints prefill tokens/s per setting and the speedup over 1.
// Run by tools/device-check.sh (GPU) and, at small sizes, on a CPU.
//   node dist/tools/batching-bench.js --shape llama3.1-8b --type q4_k --length 131072 --chunk 8192 --parallel 1,8,23 --backend llama.cpp

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { loadEngine } from "../src/backends/index.js";
import { parallelComp } from "../src/method/parallelcomp.js";
import { resolveOptions } from "../src/method/options.js";
import { writeRandomModel, SHAPES } from "../src/model/random-model.js";
import { GgmlType } from "../src/gguf/types.js";
import { rng } from "../src/util/rng.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const shape = arg("shape", "smollm2-135m");
const type = arg("type", "q4_k").toUpperCase() as keyof typeof GgmlType;
const length = Number(arg("length", "16384"));
const chunk = Number(arg("chunk", "1024"));
const parallel = arg("parallel", "1,8,23").split(",").map(Number);
const backend = arg("backend", "llama.cpp") as "llama.cpp" | "native";
const layers = arg("layers", "");
const file = arg("model", path.join(os.tmpdir(), `parallelcomp-${shape}-${type}${layers ? `-${layers}l` : ""}.gguf`));
if (!SHAPES[shape]) throw new Error(`unknown --shape ${shape} (known: ${Object.keys(SHAPES).join(", ")})`);
if (GgmlType[type] === undefined) throw new Error(`unknown --type ${type}`);

if (!fs.existsSync(file)) {
  const t0 = performance.now();
  writeRandomModel(file, shape, { type: GgmlType[type], seed: 1, shape: layers ? { nLayers: Number(layers) } : {} });
  console.log(`wrote ${file} (${(fs.statSync(file).size / 2 ** 30).toFixed(2)} GiB) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
}
const t0 = performance.now();
const engine = loadEngine(file, { backend });
console.log(`loaded on ${engine.backend.name} (${engine.backend.device}) in ${((performance.now() - t0) / 1000).toFixed(1)} s${engine.backend.notice ? `; ${engine.backend.notice}` : ""}`);

const random = rng(7);
const nVocab = engine.config.nVocab;
const context = Array.from({ length }, () => Math.floor(random() * (nVocab - 2)));
const query = Array.from({ length: 32 }, () => Math.floor(random() * (nVocab - 2)));
const rows: Array<{ parallel: number; seconds: number; tokensPerSecond: number; speedup: number; peakKvMiB: number }> = [];
for (const p of parallel) {
  const o = resolveOptions("default", { maxTokens: 4, chunkTokens: chunk, maxParallelChunks: p, keepChunks: 3, keepWithin: null });
  const r = parallelComp(engine, { bos: null, header: [], context, query }, o);
  const tps = length / r.prefillSeconds;
  rows.push({ parallel: p, seconds: r.prefillSeconds, tokensPerSecond: tps, speedup: rows.length ? tps / rows[0].tokensPerSecond : 1, peakKvMiB: r.peakCacheBytes / 2 ** 20 });
  const x = rows[rows.length - 1];
  console.log(`parallel ${String(p).padStart(3)}: ${r.nChunks} chunks, prefill ${x.seconds.toFixed(1)} s = ${x.tokensPerSecond.toFixed(0)} tok/s, ${x.speedup.toFixed(2)}x over parallel ${parallel[0]}, KV ${x.peakKvMiB.toFixed(0)} MiB`);
}
console.log(JSON.stringify({ shape, type, length, chunk, backend: engine.backend, rows }));
engine.close();
