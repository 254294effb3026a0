// `parallelcomp bench`: every performance target of the project as a ratio measured side by
// side in one run (absolute times on a shared machine are noise; ratios measured together are
// not): prefill and decode beside llama.cpp on the same GGUF (this file), the matmul kernel
// beside OpenBLAS, long inputs beside llama.cpp's plain prefill, and the paper's batching and
// memory headline (sections.ts).

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { GgmlType, typeName } from "../gguf/types.js";
import { writeRandomModel, SHAPES } from "../model/random-model.js";
import { loadModel } from "../model/model.js";
import { generate } from "../generate/generate.js";
import { rng } from "../util/rng.js";
import { llamaCppSpeed } from "./llama-cpp.js";

/** A weight type, or llama-quantize's Q4_K_M mix of them. */
export type BenchType = GgmlType | "Q4_K_M";
const benchTypeName = (t: BenchType) => (t === "Q4_K_M" ? t : typeName(t));

export interface EngineBenchOptions {
  shape: string; // a key of SHAPES
  type: BenchType;
  prompts: number[]; // prompt lengths for prefill
  decode: number; // tokens decoded after the first prompt
  threads: number;
  repeats: number;
  llamaCpp: boolean;
  /** The decode row's target (default 0.8x llama.cpp). */
  decodeTarget?: number;
  /** Also decode this many times in a row and report the largest distance from their median. */
  spreadRuns?: number;
}

export interface BenchRow {
  what: string;
  ours: number;
  reference: number | null;
  referenceName: string;
  /** How many times better ours is (higher is better, or lower for `target.max` rows). */
  ratio: number | null;
  target: { min?: number; max?: number } | null;
  note?: string;
}

/** The largest distance of one value from the values' median, as a share of the median. */
export function spreadFromMedian(values: number[]): number {
  const median = [...values].sort((a, b) => a - b)[values.length >> 1];
  return Math.max(...values.map((v) => Math.abs(v / median - 1)));
}

/**
 * Times `fn`: one warm-up call, then runs until at least 3 were timed and `minMs` have passed
 * (at most `maxRuns`). The best run is the figure the benchmarks report (least disturbed by
 * other load); the median says how noisy the machine was.
 */
export function timeRuns(fn: () => void, minMs = 1000, maxRuns = 200): { best: number; median: number } {
  fn();
  const times: number[] = [];
  const start = performance.now();
  while (times.length < 3 || (performance.now() - start < minMs && times.length < maxRuns)) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { best: times[0], median: times[times.length >> 1] };
}

/** The benchmark model, made once and kept in the temp folder (random weights, real shape). */
export function benchModel(shape: string, type: BenchType): string {
  const dir = path.join(os.tmpdir(), "parallelcomp-bench");
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${shape}-${benchTypeName(type)}-v2.gguf`);
  if (!fs.existsSync(file)) {
    const partial = `${file}.partial-${process.pid}`;
    writeRandomModel(partial, shape, type === "Q4_K_M" ? { mix: type, seed: 1 } : { type, seed: 1 });
    fs.renameSync(partial, file);
  }
  return file;
}

/** Prefill at each prompt length and decode after the first, ours and llama.cpp's. */
export async function engineRows(o: EngineBenchOptions, log: (line: string) => void = () => {}): Promise<BenchRow[]> {
  if (!SHAPES[o.shape]) throw new Error(`unknown shape "${o.shape}" (known: ${Object.keys(SHAPES).join(", ")})`);
  const file = benchModel(o.shape, o.type);
  const nVocab = SHAPES[o.shape].nVocab;
  const random = rng(42);
  const promptOf = (n: number) => Array.from({ length: n }, () => Math.floor(random() * (nVocab - 2)));
  const rows: BenchRow[] = [];
  const model = loadModel(file, { threads: o.threads });
  const label = `${o.shape} ${benchTypeName(o.type)}`;
  log(`${label}: ${path.basename(file)}, ${o.threads} threads, our kernels: ${model.kernels.name}`);
  const row = (what: string, ours: number, theirs: number | null, min: number): BenchRow =>
    ({ what: `${label} ${what}`, ours, reference: theirs, referenceName: "llama.cpp", ratio: theirs ? ours / theirs : null, target: { min } });
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
      rows.push(row(`prefill ${n} tok/s`, prefill, ref?.prefillTokensPerSecond ?? null, 1.0));
      log(formatRow(rows[rows.length - 1]));
      if (nDecode > 0) {
        rows.push(row(`decode tok/s`, decode, ref?.decodeTokensPerSecond ?? null, o.decodeTarget ?? 0.8));
        log(formatRow(rows[rows.length - 1]));
        if (o.spreadRuns) {
          rows.push(decodeSpread(label, o.spreadRuns, () => generate(model, prompt, { maxTokens: nDecode + 1 }).decodeTokensPerSecond));
          log(formatRow(rows[rows.length - 1]));
        }
      }
    }
  } finally {
    model.close();
  }
  return rows;
}

/**
 * Decode steadiness: `runs` decodes in a row, the largest distance of one from their median as a
 * share of it (target: within 10%). The spread is its own yardstick, so it sits in the ratio.
 */
function decodeSpread(label: string, runs: number, decode: () => number): BenchRow {
  const rates = Array.from({ length: runs }, decode);
  const spread = spreadFromMedian(rates);
  return {
    what: `${label} decode spread %, ${runs} runs`, ours: 100 * spread, reference: null, referenceName: `${rates.map((r) => r.toFixed(1)).join(" ")} tok/s`,
    ratio: spread, target: { max: 0.1 },
  };
}

/** "met", "MISSED" or "" for a row without a target or a reference. */
export function verdict(r: BenchRow): string {
  if (!r.target || r.ratio === null) return "";
  const ok = (r.target.min === undefined || r.ratio >= r.target.min) && (r.target.max === undefined || r.ratio <= r.target.max);
  return ok ? "met" : "MISSED";
}

const num = (x: number | null) => (x === null ? "-" : x >= 100 || Number.isInteger(x) ? x.toFixed(0) : x.toFixed(1));

export function formatRow(r: BenchRow): string {
  const target = !r.target ? "" : r.target.min !== undefined ? `>= ${r.target.min}x` : `<= ${r.target.max}x`;
  const ratio = r.ratio === null ? "-" : `${r.ratio.toFixed(2)}x`;
  const line = `${r.what.padEnd(42)}${num(r.ours).padStart(10)}${num(r.reference).padStart(10)}  ${r.referenceName.padEnd(22)}${ratio.padStart(8)}  ${target.padEnd(8)} ${verdict(r)}`;
  return r.note ? `${line}\n${"".padEnd(44)}${r.note}` : line;
}

export const BENCH_HEADER = `${"".padEnd(42)}${"ours".padStart(10)}${"ref".padStart(10)}  ${"reference".padEnd(22)}${"ratio".padStart(8)}  target`;
