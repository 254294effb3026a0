// `parallelcomp sweep`: every cell (task x length x method) of the evaluation, each run by the
// single-cell command (`parallelcomp eval ... --json`) in its own process, so peak RSS is the
// cell's own; OUT/results.json is rewritten after every cell, so an interrupted sweep keeps what
// it did and `resume` skips the cells already there with the same settings. Cells too slow to run
// are skipped by two stated rules (`skipReason`) and kept in the file with their reason.

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { GgufFile } from "../gguf/reader.js";
import { readConfig } from "../model/config.js";
import { METHODS, type Method } from "../method/baselines.js";
import { resolveOptions } from "../method/options.js";
import type { TaskName } from "./tasks.js";
import type { SampleResult } from "./run.js";

const BIN = fileURLToPath(new URL("../../../bin/parallelcomp.js", import.meta.url));
export const RESULTS_FORMAT = "parallelcomp-sweep/1";

/** Answer tokens left free when "window" stands for the longest sample inside the trained window. */
export const WINDOW_MARGIN = 32;

/** A length in tokens, or "window": the model's trained window less WINDOW_MARGIN. */
export type LengthSpec = number | "window";

/**
 * Methods whose cost grows with the square of the input on this engine, and why.
 * Measured at -t 1 on the bundled model, one passkey sample, on the project's shared 2-core
 * machine: prefill of full 7.1 s at 16K and 25.7 s at 32K; pcw 13.1 s at 32K, 41.4 s at 64K,
 * 165.9 s (540 MB RSS) at 128K; parallelcomp 16.8 s at 128K.
 */
export const QUADRATIC: Readonly<Record<Method, string | null>> = {
  full: "every token attends to every earlier token",
  ntk: "every token attends to every earlier token",
  pcw: "every chunk stays in the cache and each batch of chunks scans all cached rows under the mask",
  parallelcomp: null,
  truncate: null,
  streaming: null,
};

export const SWEEP_DEFAULTS = {
  // needle_multikey needs ~600 tokens, more than the bundled model's window column.
  tasks: ["passkey", "number_string", "kv_retrieval", "needle"] as TaskName[],
  lengths: ["window", 1024, 4096, 16384, 32768, 65536, 131072] as LengthSpec[],
  methods: [...METHODS] as Method[],
  preset: "retrieval",
  samples: 5,
  seed: 1,
  maxCellSeconds: 600,
  quadraticLimit: 32768,
};

export interface SweepSettings {
  tasks: TaskName[];
  lengthSpec: LengthSpec[]; // as given
  lengths: number[]; // resolved, ascending
  methods: Method[];
  preset: string;
  samples: number;
  seed: number;
  threads: number;
  maxCellSeconds: number; // a cell estimated to take longer is skipped; one running 3x longer is stopped
  quadraticLimit: number; // QUADRATIC methods above this many tokens are skipped
  force: boolean; // run every cell: no skip rule, no stop
  out: string; // as given, for the regenerate command
  backend?: string; // the engine when not native
  /** What the preset kept, recorded at run time so a later default cannot change an older page:
   * the top `keepChunks`, of them those scored within `keepWithin` nats of the best (null: all).
   * Absent in files written before it was recorded (then: the top keepChunks, no keepWithin). */
  keep?: { keepChunks: number; keepWithin: number | null };
}

export interface ModelInfo {
  file: string; // as given (relative to the working directory when inside it)
  bundled: boolean;
  sha256: string;
  name: string;
  nCtxTrain: number;
}

export interface MachineInfo {
  cpu: string;
  cores: number;
  threads: number;
  node: string;
  platform: string;
}

interface CellId {
  task: TaskName;
  length: number;
  method: Method;
  preset: string;
  samples: number;
  seed: number;
  threads: number;
  modelSha256: string;
  /** The engine, when not the native one (results before the llama.cpp backend have none). */
  backend?: string;
}

export interface DoneCell extends CellId {
  status: "done";
  accuracy: number;
  chunkRecall: number | null;
  prefillTokensPerSecond: number;
  peakRssBytes: number;
  wallSeconds: number; // the child process, model load included
  finishedAt: string;
  results: SampleResult[];
}

export interface SkippedCell extends CellId {
  status: "skipped";
  reason: string;
}

export interface FailedCell extends CellId {
  status: "failed";
  reason: string;
  wallSeconds: number;
  finishedAt: string;
}

export type Cell = DoneCell | SkippedCell | FailedCell;

export interface SweepFile {
  format: typeof RESULTS_FORMAT;
  model: ModelInfo;
  machine: MachineInfo;
  settings: SweepSettings;
  started: string;
  updated: string;
  cells: Cell[];
}

export const cellKey = (c: CellId) => [c.task, c.length, c.method, c.preset, c.samples, c.seed, c.threads, c.modelSha256, c.backend ?? "native"].join("|");

export function sha256File(file: string): string {
  const h = createHash("sha256");
  const fd = fs.openSync(file, "r");
  try {
    const buf = Buffer.alloc(1 << 22);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest("hex");
}

export function modelInfo(file: string, bundled: boolean): ModelInfo {
  const g = GgufFile.open(file);
  try {
    const c = readConfig(g);
    const rel = path.relative(process.cwd(), file);
    return { file: rel.startsWith("..") || path.isAbsolute(rel) ? file : rel, bundled, sha256: sha256File(file), name: c.name, nCtxTrain: c.nCtxTrain };
  } finally {
    g.close();
  }
}

export function machineInfo(threads: number): MachineInfo {
  const cpus = os.cpus();
  return { cpu: cpus[0]?.model.trim() ?? "unknown", cores: cpus.length, threads, node: process.version, platform: `${os.platform()} ${os.arch()}` };
}

export function resolveLengths(spec: LengthSpec[], nCtxTrain: number): number[] {
  const window = nCtxTrain - WINDOW_MARGIN;
  if (spec.includes("window") && window < 64) throw new Error(`the trained window (${nCtxTrain} tokens) is too short for a "window" length`);
  return [...new Set(spec.map((l) => (l === "window" ? window : l)))].sort((a, b) => a - b);
}

export interface Estimate {
  seconds: number;
  from: DoneCell;
  power: number; // cost ~ length ^ power
}

/**
 * A cell's time from the longest shorter cell of the same method already done (of the same
 * task if there is one): its wall time x (L / L')^p x (samples / samples'), p = 2 for the
 * QUADRATIC methods and 1 for the others. It overestimates at short lengths, where the
 * process start and the linear terms dominate; that errs towards skipping.
 */
export function estimateSeconds(c: { task: TaskName; length: number; method: Method; samples: number }, done: readonly DoneCell[]): Estimate | null {
  const shorter = done.filter((d) => d.method === c.method && d.length < c.length);
  const sameTask = shorter.filter((d) => d.task === c.task);
  const pool = sameTask.length > 0 ? sameTask : shorter;
  if (pool.length === 0) return null;
  const from = pool.reduce((a, b) => (b.length > a.length ? b : a));
  const power = QUADRATIC[c.method] ? 2 : 1;
  return { seconds: from.wallSeconds * Math.pow(c.length / from.length, power) * (c.samples / from.samples), from, power };
}

/** Why a cell is not run, or null to run it. */
export function skipReason(
  c: { task: TaskName; length: number; method: Method; samples: number },
  done: readonly DoneCell[],
  rules: { maxCellSeconds: number; quadraticLimit: number; force: boolean },
): string | null {
  if (rules.force) return null;
  const est = estimateSeconds(c, done);
  const from = est && `estimated ${est.seconds.toFixed(0)} s: the ${est.from.length}-token ${est.from.task} cell took ${est.from.wallSeconds.toFixed(1)} s for ${est.from.samples} samples, x (${c.length}/${est.from.length})^${est.power}` +
    (c.samples === est.from.samples ? "" : ` x ${c.samples}/${est.from.samples} samples`);
  const why = QUADRATIC[c.method];
  if (why && c.length > rules.quadraticLimit) {
    return `${c.method}'s cost grows with the square of the length (${why}); lengths above --quadratic-limit ${rules.quadraticLimit} are skipped unless --force` + (from ? ` (${from})` : "");
  }
  if (est && est.seconds > rules.maxCellSeconds) return `${from}, over --max-cell-seconds ${rules.maxCellSeconds}`;
  return null;
}

export function resultsPath(out: string): string {
  return path.join(out, "results.json");
}

export function readResults(out: string): SweepFile {
  const file = resultsPath(out);
  if (!fs.existsSync(file)) throw new Error(`${file} not found: run \`parallelcomp sweep --out ${out}\` first`);
  let f: SweepFile;
  try {
    f = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (f?.format !== RESULTS_FORMAT) throw new Error(`${file}: format is ${JSON.stringify(f?.format)}, expected "${RESULTS_FORMAT}"`);
  if (!Array.isArray(f.cells)) throw new Error(`${file}: "cells" is not an array`);
  return f;
}

/** Pretty at the top, one line per cell; written beside and renamed, so a kill never leaves half a file. */
export function writeResults(out: string, f: SweepFile): void {
  const head = JSON.stringify({ ...f, cells: undefined }, null, 2);
  const text = head.slice(0, head.lastIndexOf("}")).trimEnd() + ',\n  "cells": [\n' + f.cells.map((c) => "    " + JSON.stringify(c)).join(",\n") + "\n  ]\n}\n";
  fs.mkdirSync(out, { recursive: true });
  const tmp = resultsPath(out) + ".tmp";
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, resultsPath(out));
}

export interface SweepOptions {
  model: string; // GGUF file
  bundled: boolean; // the model is the bundled one (the regenerate command then has no -m)
  tasks: TaskName[];
  lengths: LengthSpec[];
  methods: Method[];
  preset: string;
  samples: number;
  seed: number;
  threads: number;
  maxCellSeconds: number;
  quadraticLimit: number;
  force: boolean;
  resume: boolean;
  out: string;
  /** "llama.cpp" or "auto"; absent: the native engine. */
  backend?: string;
  onLine?: (line: string) => void; // one progress line per cell
}

interface ChildRun {
  code: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
  stopped: boolean;
}

function runChild(args: string[], stopAfterSeconds: number): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let stopped = false;
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = Number.isFinite(stopAfterSeconds) ? setTimeout(() => { stopped = true; child.kill("SIGKILL"); }, stopAfterSeconds * 1000) : null;
    child.on("error", (e) => { if (timer) clearTimeout(timer); reject(e); });
    child.on("close", (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code, stdout, stderr, seconds: (performance.now() - t0) / 1000, stopped });
    });
  });
}

/** The single-cell command for a cell: the sweep's outside reference. */
export function evalArgs(id: CellId, model: string): string[] {
  return ["eval", "-m", model, "--task", id.task, "--length", String(id.length), "--samples", String(id.samples), "--method", id.method,
    "--preset", id.preset, "--seed", String(id.seed), "-t", String(id.threads), "--json", ...(id.backend ? ["--backend", id.backend] : [])];
}

const pct = (x: number) => `${Math.round(100 * x)}%`;

function cellLine(c: Cell): string {
  const what = `${c.task} ${c.length} ${c.method}`;
  if (c.status === "skipped") return `${what}: skipped (${c.reason})`;
  if (c.status === "failed") return `${what}: FAILED after ${c.wallSeconds.toFixed(1)} s (${c.reason})`;
  return `${what}: ${pct(c.accuracy)} of ${c.samples}` + (c.chunkRecall === null ? "" : `, chunk recall ${pct(c.chunkRecall)}`) +
    `, ${Math.round(c.prefillTokensPerSecond)} tok/s, ${(c.peakRssBytes / 2 ** 20).toFixed(0)} MiB, ${c.wallSeconds.toFixed(1)} s`;
}

export async function runSweep(o: SweepOptions): Promise<SweepFile> {
  const say = o.onLine ?? ((s: string) => process.stderr.write(s + "\n"));
  if (o.tasks.length === 0 || o.methods.length === 0 || o.lengths.length === 0) throw new Error("the sweep needs at least one task, one length and one method");
  const model = modelInfo(o.model, o.bundled);
  const resolved = resolveOptions(o.preset);
  const settings: SweepSettings = {
    tasks: o.tasks, lengthSpec: o.lengths, lengths: resolveLengths(o.lengths, model.nCtxTrain), methods: o.methods, preset: o.preset,
    samples: o.samples, seed: o.seed, threads: o.threads, maxCellSeconds: o.maxCellSeconds, quadraticLimit: o.quadraticLimit, force: o.force, out: o.out,
    ...(o.backend && o.backend !== "native" ? { backend: o.backend } : {}),
    keep: { keepChunks: resolved.keepChunks, keepWithin: resolved.keepWithin },
  };
  const earlier = new Map<string, DoneCell>();
  let started = new Date().toISOString();
  if (o.resume && fs.existsSync(resultsPath(o.out))) {
    const f = readResults(o.out);
    started = f.started;
    // A cell's key names its preset, not what the preset kept then: a file that kept otherwise
    // (or did not record it: before keepWithin) has no cell of this run.
    if (JSON.stringify(f.settings.keep) === JSON.stringify(settings.keep)) {
      for (const c of f.cells) if (c.status === "done") earlier.set(cellKey(c), c);
    } else {
      say(`the cells of ${resultsPath(o.out)} kept other chunks (${JSON.stringify(f.settings.keep ?? "top N, no keepWithin")}) and are dropped`);
    }
  }
  const file: SweepFile = { format: RESULTS_FORMAT, model, machine: machineInfo(o.threads), settings, started, updated: started, cells: [] };
  const plan: CellId[] = [];
  for (const length of settings.lengths) {
    for (const task of o.tasks) {
      for (const method of o.methods) plan.push({ task, length, method, preset: o.preset, samples: o.samples, seed: o.seed, threads: o.threads, modelSha256: model.sha256, ...(o.backend && o.backend !== "native" ? { backend: o.backend } : {}) });
    }
  }
  const planned = new Set(plan.map(cellKey));
  const dropped = [...earlier.keys()].filter((k) => !planned.has(k)).length;
  if (dropped > 0) say(`${dropped} cells of ${resultsPath(o.out)} have other settings (task, length, method, preset, samples, seed, threads or model) and are dropped`);
  const done: DoneCell[] = [];
  const t0 = performance.now();
  for (const [i, id] of plan.entries()) {
    const tag = `[${i + 1}/${plan.length}]`;
    const kept = earlier.get(cellKey(id));
    let cell: Cell;
    if (kept) {
      cell = kept;
      say(`${tag} ${id.task} ${id.length} ${id.method}: kept from ${resultsPath(o.out)}`);
    } else {
      const reason = skipReason(id, done, o);
      if (reason !== null) cell = { ...id, status: "skipped", reason };
      else cell = await runCell(id, o.model, o.force ? Infinity : 3 * o.maxCellSeconds);
      say(`${tag} ${cellLine(cell)}  [sweep ${((performance.now() - t0) / 60000).toFixed(1)} min]`);
    }
    if (cell.status === "done") done.push(cell);
    file.cells.push(cell);
    file.updated = new Date().toISOString();
    writeResults(o.out, file);
  }
  return file;
}

async function runCell(id: CellId, model: string, stopAfterSeconds: number): Promise<Cell> {
  const r = await runChild(evalArgs(id, model), stopAfterSeconds);
  const finishedAt = new Date().toISOString();
  const fail = (reason: string): FailedCell => ({ ...id, status: "failed", reason, wallSeconds: r.seconds, finishedAt });
  if (r.stopped) return fail(`stopped after ${r.seconds.toFixed(0)} s (3 x --max-cell-seconds)`);
  if (r.code !== 0) return fail(r.stderr.trim().split("\n").pop() || `eval exited with code ${r.code}`);
  let j;
  try {
    j = JSON.parse(r.stdout);
  } catch {
    return fail(`eval printed no JSON: ${JSON.stringify(r.stdout.slice(0, 200))}`);
  }
  return {
    ...id, status: "done", accuracy: j.accuracy, chunkRecall: j.chunkRecall, prefillTokensPerSecond: j.prefillTokensPerSecond,
    peakRssBytes: j.peakRssBytes, wallSeconds: r.seconds, finishedAt, results: j.results,
  };
}
