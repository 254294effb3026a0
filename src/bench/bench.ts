// `parallelcomp bench`: our prefill and decode speed beside llama.cpp's on the same GGUF, the
// same prompt and the same thread count, in one run, as ratios (absolute times on a shared
// machine are noise; ratios measured side by side are not).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { GgmlType, typeName } from "../gguf/types.js";
import { writeRandomModel, SHAPES } from "../model/random-model.js";
import { loadModel } from "../model/model.js";
import { generate } from "../generate/generate.js";
import { rng } from "../generate/sampler.js";
import { llamaCppSpeed } from "./llama-cpp.js";

export interface BenchOptions {
  shape: string; // a key of SHAPES
  type: GgmlType;
  prompts: number[]; // prompt lengths for prefill
  decode: number; // tokens decoded after the first prompt
  threads: number;
  repeats: number;
  llamaCpp: boolean;
}

export interface BenchRow {
  what: string;
  ours: number;
  llamaCpp: number | null;
  ratio: number | null;
}

/** The benchmark model, made once and kept in the temp folder (random weights, real shape). */
export function benchModel(shape: string, type: GgmlType): string {
  const dir = path.join(os.tmpdir(), "parallelcomp-bench");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${shape}-${typeName(type)}-v1.gguf`);
  if (!fs.existsSync(file)) {
    const partial = `${file}.partial-${process.pid}`;
    writeRandomModel(partial, shape, { type, seed: 1 });
    fs.renameSync(partial, file);
  }
  return file;
}

export async function runBench(o: BenchOptions, log: (line: string) => void = () => {}): Promise<BenchRow[]> {
  if (!SHAPES[o.shape]) throw new Error(`unknown shape "${o.shape}" (known: ${Object.keys(SHAPES).join(", ")})`);
  const file = benchModel(o.shape, o.type);
  const nVocab = SHAPES[o.shape].nVocab;
  const random = rng(42);
  const promptOf = (n: number) => Array.from({ length: n }, () => Math.floor(random() * (nVocab - 2)));
  const rows: BenchRow[] = [];
  const model = loadModel(file, { threads: o.threads });
  log(`model ${path.basename(file)}, ${o.threads} threads, our kernels: ${model.kernels.name}`);
  try {
    for (const [i, n] of o.prompts.entries()) {
      const prompt = promptOf(n);
      let prefill = 0;
      let decode = 0;
      const nDecode = i === 0 ? o.decode : 0;
      for (let r = 0; r < o.repeats; r++) {
        const g = generate(model, prompt, { maxTokens: nDecode + 1 });
        prefill = Math.max(prefill, g.prefillTokensPerSecond);
        decode = Math.max(decode, g.decodeTokensPerSecond);
      }
      const ref = o.llamaCpp ? await llamaCppSpeed(file, prompt, nDecode, o.threads, o.repeats) : null;
      const row = (what: string, ours: number, theirs: number | null): BenchRow => ({ what, ours, llamaCpp: theirs, ratio: theirs ? ours / theirs : null });
      rows.push(row(`prefill ${n} tok/s`, prefill, ref?.prefillTokensPerSecond ?? null));
      log(formatRow(rows[rows.length - 1]));
      if (nDecode > 0) {
        rows.push(row(`decode tok/s (after ${n})`, decode, ref?.decodeTokensPerSecond ?? null));
        log(formatRow(rows[rows.length - 1]));
      }
    }
  } finally {
    model.close();
  }
  return rows;
}

export function formatRow(r: BenchRow): string {
  const f = (x: number | null) => (x === null ? "-" : x.toFixed(1)).padStart(12);
  return `${r.what.padEnd(28)}${f(r.ours)}${f(r.llamaCpp)}${(r.ratio === null ? "-" : r.ratio.toFixed(2) + "x").padStart(9)}`;
}

export const BENCH_HEADER = `${"".padEnd(28)}${"parallelcomp".padStart(12)}${"llama.cpp".padStart(12)}${"ratio".padStart(9)}`;
