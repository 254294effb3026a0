// The long-input rows of `parallelcomp bench`: ParallelComp end to end over a long random
// document against llama.cpp's plain prefill of the same tokens, and ParallelComp's peak memory
// at 128K against 16K. Each ParallelComp run is its own process (`runLongChild`, started by
// `longRun`), so that its peak RSS is its own and not the benchmark's.

import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadModel } from "../model/model.js";
import { rng } from "../util/rng.js";
import { resolveOptions } from "../method/options.js";
import { runMethod } from "../method/baselines.js";
import type { TokenRequest } from "../method/parallelcomp.js";

export interface LongRun {
  tokens: number; // context tokens
  seconds: number; // end to end: every chunk, the question, the answer (model load excluded)
  prefillSeconds: number;
  chunks: number;
  chunkTokens: number;
  peakRssMiB: number; // of the whole process, model included
}

export interface LongArgs {
  model: string;
  tokens: number;
  threads: number;
  preset: string;
  maxParallelChunks?: number;
  lowMemory?: boolean;
}

/** Random context and question ids (a benchmark of cost, not of answers). */
export function randomRequest(nVocab: number, contextTokens: number, queryTokens: number, seed = 7): TokenRequest {
  const r = rng(seed);
  const id = () => 2 + Math.floor(r() * (nVocab - 2));
  return {
    bos: 1,
    header: [],
    context: Array.from({ length: contextTokens }, id),
    query: Array.from({ length: queryTokens }, id),
  };
}

/** Runs in the child: one ParallelComp request, its figures as JSON on stdout. */
export function runLongChild(a: LongArgs): LongRun {
  const model = loadModel(a.model, { threads: a.threads });
  try {
    const req = randomRequest(model.config.nVocab, a.tokens, 24);
    const o = resolveOptions(a.preset, { maxTokens: 8, maxParallelChunks: a.maxParallelChunks, lowMemory: a.lowMemory });
    const t0 = performance.now();
    const r = runMethod("parallelcomp", model, req, o);
    const seconds = (performance.now() - t0) / 1000;
    return {
      tokens: a.tokens, seconds, prefillSeconds: r.prefillSeconds, chunks: r.nChunks, chunkTokens: r.chunkTokens,
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
    };
  } finally {
    model.close();
  }
}

/** Starts a child process for one long run and returns its figures. */
export function longRun(a: LongArgs): Promise<LongRun> {
  const script = fileURLToPath(new URL("./long-child.js", import.meta.url));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, JSON.stringify(a)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("error", reject);
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`long run of ${a.tokens} tokens failed (exit ${code})`));
      try {
        resolve(JSON.parse(out) as LongRun);
      } catch {
        reject(new Error(`long run of ${a.tokens} tokens printed no result: ${out.slice(0, 200)}`));
      }
    });
  });
}
