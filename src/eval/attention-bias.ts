// Attention-bias analysis (section 4 of the paper): where the question's attention goes, per
// layer, under local attention (the question over one chunk, as in stage 0 scoring) and parallel
// attention (the question over the concatenation of N chunks' KV caches, as in stage 1 / PCW),
// the latter also with attention-bias calibration. Each chunk is cut into the regions calibration
// uses (method/calibration.ts `inRegion`): sink = its first `regionTokens` rows, recent = its last
// `regionTokens`, middle = the rest; the question's own rows are a fourth region, so the four
// shares of a layer sum to 1. `first` is the share on rows at position 0 (the BOS when the model
// adds one; in stage 1 only the first chunk keeps it), a part of `sink`.
// The numbers come from ParallelComp's own run through its `onAttention` hook: nothing here
// re-implements stage 0 or stage 1.

import * as path from "node:path";
import { layerAttentionProbs } from "../engine/attention-probs.js";
import type { Model } from "../model/model.js";
import type { Tokenizer } from "../tokenizer/index.js";
import { inRegion } from "../method/calibration.js";
import { chunkContext, type BoundaryOf } from "../method/chunking.js";
import { PRESETS, resolveOptions, scaleLayers, type Bias, type CalibrationOptions } from "../method/options.js";
import { chunkBudget, parallelComp, type AttentionStep, type TokenRequest } from "../method/parallelcomp.js";
import { boundaryOf, tokenizeRequest } from "../method/request.js";
import { makeSample, type TaskName } from "./tasks.js";
import { renderSvg, type PlotSpec } from "./plot.js";

export const REGIONS = ["sink", "middle", "recent", "question"] as const;
export type Region = (typeof REGIONS)[number];

export interface RegionShares {
  sink: number;
  middle: number;
  recent: number;
  question: number; // the question's own rows (earlier question tokens and itself)
  first: number; // rows at position 0 (BOS), included in sink
}

export interface LayerShares extends RegionShares {
  layer: number; // 1-indexed, as the paper and the calibration recipe count
}

export type SettingName = "local" | "parallel" | "parallel+calibration";

export interface BiasSetting {
  setting: SettingName;
  chunks: number; // chunks per sample (local: each is measured alone; parallel: all at once)
  requests: number; // samples
  distributions: number; // attention rows averaged per layer: (question row, head) pairs over all samples (and chunks)
  layers: LayerShares[];
  /** parallel+calibration: the same run's attention in each layer before that layer's keys were evicted. */
  beforeCalibration?: LayerShares[];
  evicted?: number; // (layer, KV head, row) cells evicted by calibration, over all samples
  /**
   * parallel+calibration: per layer and region, the largest attention one chunk key drew from
   * the last `calibrationQueries` question rows (averaged over them, per query head) before
   * eviction, over all samples: what calibration compares with its threshold.
   */
  maxKey?: KeyMax[];
}

export interface AttentionBiasResult {
  model: string;
  nLayers: number;
  nCtxTrain: number;
  task: TaskName;
  samples: number;
  seed: number;
  chunkTokens: number; // context tokens per chunk
  regionTokens: number;
  lastRows: number; // question rows averaged: the last N, 0 = all
  calibration: { threshold: number; calibrationQueries: number; steps: Array<{ layers: [number, number]; bias: Bias }> }; // layers 1-indexed, scaled to this model
  settings: BiasSetting[];
}

export interface AttentionBiasOptions {
  samples?: number; // per chunk count, needle depths spread from 0 to 1 (default 8)
  chunks?: number[]; // chunk counts N of the parallel settings (default [4, 8])
  seed?: number; // default 1
  task?: TaskName; // default passkey
  lastRows?: number; // default 0: every question row
  /** Context tokens per chunk; default what the trained window leaves (as `eval` chunks). */
  chunkTokens?: number;
  /** Default: the `calibrate` preset (the paper's recipe, threshold 0.1, regions of 100 tokens). */
  calibration?: CalibrationOptions;
  onProgress?: (done: number, total: number) => void;
}

/** Attention mass per (layer, region) summed over attention rows, and the rows counted per layer. */
export class ShareSums {
  readonly mass: Float64Array; // [nLayers, 5]: sink, middle, recent, question, first
  readonly rows: Float64Array; // [nLayers]

  constructor(readonly nLayers: number) {
    this.mass = new Float64Array(nLayers * 5);
    this.rows = new Float64Array(nLayers);
  }

  addAll(o: ShareSums): void {
    for (let i = 0; i < this.mass.length; i++) this.mass[i] += o.mass[i];
    for (let i = 0; i < this.rows.length; i++) this.rows[i] += o.rows[i];
  }

  /** Mean shares per layer. */
  layers(): LayerShares[] {
    return Array.from({ length: this.nLayers }, (_, l) => {
      const m = (i: number) => (this.rows[l] > 0 ? this.mass[l * 5 + i] / this.rows[l] : 0);
      return { layer: l + 1, sink: m(0), middle: m(1), recent: m(2), question: m(3), first: m(4) };
    });
  }
}

/**
 * Adds one layer step's attention to `sums`: for each question, the probabilities of its rows
 * (the last `lastRows`, 0 = all) over the layer's cache, each (row, query head) pair one row of
 * the average, its mass split by the region of each key row.
 */
export function addStepShares(sums: ShareSums, c: { nHeads: number; nKvHeads: number; headDim: number }, s: AttentionStep, regionTokens: number, lastRows: number): void {
  const group = c.nHeads / c.nKvHeads;
  const L = s.cache.layers[s.layer];
  const cap = s.cache.cap;
  const regionIndex = (seq: number, pos: number, chunks: ReadonlyMap<number, number>): number => {
    const len = chunks.get(seq);
    if (len === undefined || pos >= len) return 3;
    return inRegion("sink", pos, len, regionTokens) ? 0 : inRegion("recent", pos, len, regionTokens) ? 2 : 1;
  };
  for (const qn of s.questions) {
    const rows = lastRows > 0 ? qn.rows.slice(-lastRows) : qn.rows;
    const p = layerAttentionProbs(c, s.layer, s.q, s.batch, s.cache, rows);
    for (let i = 0; i < rows.length; i++) {
      for (let hq = 0; hq < c.nHeads; hq++) {
        const h = Math.floor(hq / group);
        const off = (i * c.nHeads + hq) * p.maxRows;
        for (let r = 0; r < p.nRows[h]; r++) {
          const a = p.probs[off + r];
          if (a === 0) continue; // masked: another chunk's row, or a later question row
          const cell = h * cap + r;
          const k = regionIndex(L.rowSeq[cell], L.rowPos[cell], qn.chunks);
          sums.mass[s.layer * 5 + k] += a;
          if (k !== 3 && L.rowPos[cell] === 0) sums.mass[s.layer * 5 + 4] += a;
        }
        sums.rows[s.layer] += 1;
      }
    }
  }
}

/** Per chunk region, the largest attention one key drew (calibration's a_j); -1 where a region has no key. */
export interface KeyMax {
  sink: number;
  middle: number;
  recent: number;
}

/**
 * The largest attention a chunk key of layer `s.layer` draws from the question's last `nRows`
 * rows, averaged over those rows, per query head (calibration's a_j), in each region.
 */
export function maxKeyAttention(c: { nHeads: number; nKvHeads: number; headDim: number }, s: AttentionStep, nRows: number, regionTokens: number): KeyMax {
  const group = c.nHeads / c.nKvHeads;
  const L = s.cache.layers[s.layer];
  const best: KeyMax = { sink: -1, middle: -1, recent: -1 };
  for (const qn of s.questions) {
    const rows = qn.rows.slice(-nRows);
    const p = layerAttentionProbs(c, s.layer, s.q, s.batch, s.cache, rows);
    for (let hq = 0; hq < c.nHeads; hq++) {
      const h = Math.floor(hq / group);
      for (let r = 0; r < p.nRows[h]; r++) {
        const cell = h * s.cache.cap + r;
        const pos = L.rowPos[cell];
        const len = qn.chunks.get(L.rowSeq[cell]);
        if (len === undefined || pos >= len) continue;
        let a = 0;
        for (let i = 0; i < rows.length; i++) a += p.probs[(i * c.nHeads + hq) * p.maxRows + r];
        const region = inRegion("sink", pos, len, regionTokens) ? "sink" : inRegion("recent", pos, len, regionTokens) ? "recent" : "middle";
        best[region] = Math.max(best[region], a / rows.length);
      }
    }
  }
  return best;
}

const maxOf = (a: KeyMax, b: KeyMax): KeyMax => ({ sink: Math.max(a.sink, b.sink), middle: Math.max(a.middle, b.middle), recent: Math.max(a.recent, b.recent) });
const noKeys = (n: number): KeyMax[] => Array.from({ length: n }, () => ({ sink: -1, middle: -1, recent: -1 }));

export interface RequestBiasOptions {
  chunkTokens: number;
  regionTokens: number;
  lastRows: number;
  calibration: CalibrationOptions | null; // null: no calibrated run
  boundary?: BoundaryOf;
}

export interface RequestBias {
  nChunks: number;
  local: ShareSums; // stage 0: each chunk's question over that chunk
  parallel: ShareSums; // stage 1 over every chunk, no calibration
  calibrated: { before: ShareSums; after: ShareSums; evicted: number; maxKey: KeyMax[] } | null;
}

/**
 * One request's shares: a PCW run (every chunk kept, so stage 1 attends to all of them) gives the
 * local and parallel settings; a second run with calibration the calibrated one (its stage 0 is
 * the same as the first run's, so only its stage 1 is recorded). Only the question's prefill is run.
 */
export function requestAttentionBias(model: Model, req: TokenRequest, o: RequestBiasOptions): RequestBias {
  const c = model.config;
  const nChunks = chunkContext(req.context, o.chunkTokens, o.boundary).length;
  const base = { keepChunks: nChunks, keepWithin: null, chunkTokens: o.chunkTokens, maxTokens: 0 };
  const local = new ShareSums(c.nLayers);
  const parallel = new ShareSums(c.nLayers);
  parallelComp(model, req, resolveOptions("default", base), {
    boundary: o.boundary,
    onAttention: (s) => addStepShares(s.stage === 0 ? local : parallel, c, s, o.regionTokens, o.lastRows),
  });
  if (!o.calibration) return { nChunks, local, parallel, calibrated: null };
  const before = new ShareSums(c.nLayers);
  const after = new ShareSums(c.nLayers);
  const maxKey = noKeys(c.nLayers);
  const cal = o.calibration;
  const r = parallelComp(model, req, resolveOptions("default", { ...base, calibration: cal }), {
    boundary: o.boundary,
    onAttention: (s) => {
      if (s.stage !== 1) return;
      addStepShares(s.calibration === "before" ? before : after, c, s, o.regionTokens, o.lastRows);
      if (s.calibration === "before") maxKey[s.layer] = maxKeyAttention(c, s, cal.calibrationQueries, cal.regionTokens);
    },
  });
  return { nChunks, local, parallel, calibrated: { before, after, evicted: r.evictedByCalibration, maxKey } };
}

/** Answer room the chunk budget leaves by default: what `eval` gives retrieval answers. */
const ANSWER_TOKENS = 16;

/**
 * A sample whose context falls into exactly `nChunks` chunks: about n - 1/2 chunks of tokens,
 * corrected while the cuts (moved back to sentence ends) give another count.
 */
function sampleWithChunks(model: Model, tok: Tokenizer, task: TaskName, nChunks: number, chunkTokens: number, depth: number, seed: number, boundary: BoundaryOf): TokenRequest {
  const count = (s: string) => tok.encode(s, { addBos: false, parseSpecial: false }).length;
  let want = Math.round((nChunks - 0.5) * chunkTokens);
  let length = want + 64;
  for (let attempt = 0; attempt < 12; attempt++) {
    const req = tokenizeRequest(tok, model.gguf, makeSample(task, length, depth, seed, count).request);
    const n = chunkContext(req.context, chunkTokens, boundary).length;
    if (n === nChunks) return req;
    want += Math.round(((nChunks - n) * chunkTokens) / 4);
    length += want - req.context.length;
  }
  throw new Error(`could not build a ${task} sample of exactly ${nChunks} chunks of ${chunkTokens} tokens`);
}

export function analyzeAttentionBias(model: Model, tok: Tokenizer, options: AttentionBiasOptions = {}): AttentionBiasResult {
  const c = model.config;
  const samples = options.samples ?? 8;
  const chunkCounts = options.chunks ?? [4, 8];
  const seed = options.seed ?? 1;
  const task = options.task ?? "passkey";
  const lastRows = options.lastRows ?? 0;
  const calibration = options.calibration ?? PRESETS.calibrate.calibration;
  if (!Number.isInteger(samples) || samples < 1) throw new Error(`samples must be a positive integer, got ${samples}`);
  if (chunkCounts.length === 0 || chunkCounts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`chunks must be positive integers, got ${chunkCounts.join(", ")}`);
  if (!Number.isInteger(lastRows) || lastRows < 0) throw new Error(`lastRows must be an integer >= 0, got ${lastRows}`);
  resolveOptions("default", { calibration, chunkTokens: options.chunkTokens }); // the same checks as a run

  const count = (s: string) => tok.encode(s, { addBos: false, parseSpecial: false }).length;
  const boundary = boundaryOf(tok);
  // The header and question do not depend on the length: a short probe gives the budget.
  const probe = tokenizeRequest(tok, model.gguf, makeSample(task, 256, 0.5, seed, count).request);
  const chunkTokens = options.chunkTokens ?? chunkBudget(c.nCtxTrain, probe, ANSWER_TOKENS);

  const settings: BiasSetting[] = [];
  const total = samples * chunkCounts.length;
  let done = 0;
  for (const n of chunkCounts) {
    const local = new ShareSums(c.nLayers);
    const parallel = new ShareSums(c.nLayers);
    const before = new ShareSums(c.nLayers);
    const after = new ShareSums(c.nLayers);
    let evicted = 0;
    let maxKey = noKeys(c.nLayers);
    for (let i = 0; i < samples; i++) {
      const depth = samples === 1 ? 0.5 : i / (samples - 1);
      const req = sampleWithChunks(model, tok, task, n, chunkTokens, depth, seed * 100003 + i, boundary);
      const r = requestAttentionBias(model, req, { chunkTokens, regionTokens: calibration.regionTokens, lastRows, calibration, boundary });
      local.addAll(r.local);
      parallel.addAll(r.parallel);
      before.addAll(r.calibrated!.before);
      after.addAll(r.calibrated!.after);
      evicted += r.calibrated!.evicted;
      maxKey = maxKey.map((m, l) => maxOf(m, r.calibrated!.maxKey[l]));
      options.onProgress?.(++done, total);
    }
    const common = { chunks: n, requests: samples };
    settings.push(
      { setting: "local", ...common, distributions: local.rows[0], layers: local.layers() },
      { setting: "parallel", ...common, distributions: parallel.rows[0], layers: parallel.layers() },
      { setting: "parallel+calibration", ...common, distributions: after.rows[0], layers: after.layers(), beforeCalibration: before.layers(), evicted, maxKey },
    );
  }
  return {
    model: path.basename(model.file), nLayers: c.nLayers, nCtxTrain: c.nCtxTrain, task, samples, seed,
    chunkTokens, regionTokens: calibration.regionTokens, lastRows,
    calibration: {
      threshold: calibration.threshold, calibrationQueries: calibration.calibrationQueries,
      steps: calibration.recipe.map((s) => {
        const [a, z] = scaleLayers(s, calibration.recipeDepth, c.nLayers);
        return { layers: [a + 1, z + 1] as [number, number], bias: s.bias };
      }),
    },
    settings,
  };
}

// ---- the report: a markdown table and SVG charts ----

const pct = (x: number) => (100 * x).toFixed(1);
const keyMax = (m: KeyMax) => [m.sink, m.middle, m.recent].map((x) => (x < 0 ? "-" : pct(x))).join(" / ");

/** Biases calibration evicts in a 1-indexed layer, by the scaled recipe. */
function biasesIn(r: AttentionBiasResult, layer: number): string {
  const b = r.calibration.steps.filter((s) => layer >= s.layers[0] && layer <= s.layers[1]).map((s) => s.bias);
  return b.length === 0 ? "-" : b.join(", ");
}

/** A markdown fragment for a results page: the setup, a table of shares, and calibration's effect. */
export function attentionBiasMarkdown(r: AttentionBiasResult): string {
  const rows = r.lastRows > 0 ? `the question's last ${r.lastRows} rows` : "every question row";
  const lines = [
    `Attention of the question (${rows}, mean over heads) on ${r.model} (${r.nLayers} layers, ${r.nCtxTrain}-token window), ` +
      `${r.samples} ${r.task} sample(s) per chunk count, seed ${r.seed}, ${r.chunkTokens} context tokens per chunk. ` +
      `Shares in %: sink = a chunk's first ${r.regionTokens} tokens, recent = its last ${r.regionTokens}, middle = the rest, ` +
      `question = the question's own tokens (the four sum to 100); first = the token at position 0 (BOS), part of sink. ` +
      `local: the question over one chunk (stage 0); parallel: over all chunks at once (stage 1, PCW); ` +
      `parallel+calibration: the same with bias calibration (threshold ${r.calibration.threshold}, ${r.calibration.steps.map((s) => `${s.bias} in layers ${s.layers[0]}-${s.layers[1]}`).join(", ")}).`,
    "",
    "| setting | chunks | layer | sink | middle | recent | question | first |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const s of r.settings) {
    for (const l of s.layers) lines.push(`| ${s.setting} | ${s.chunks} | ${l.layer} | ${pct(l.sink)} | ${pct(l.middle)} | ${pct(l.recent)} | ${pct(l.question)} | ${pct(l.first)} |`);
  }
  const calibrated = r.settings.filter((s) => s.beforeCalibration);
  if (calibrated.length > 0) {
    lines.push("", "Calibration's effect inside its own run: each layer's shares before -> after its keys were evicted.", "");
    lines.push(`max key: the largest attention one key of each region (sink / middle / recent) drew from the question's last ${r.calibration.calibrationQueries} row(s), in %, before eviction; calibration evicts the keys of the layer's region above ${pct(r.calibration.threshold)}.`, "");
    lines.push("| chunks | layer | evicts | max key | sink | middle | recent | question | first |", "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (const s of calibrated) {
      s.layers.forEach((a, i) => {
        const b = s.beforeCalibration![i];
        const cell = (k: keyof RegionShares) => `${pct(b[k])} -> ${pct(a[k])}`;
        lines.push(`| ${s.chunks} | ${a.layer} | ${biasesIn(r, a.layer)} | ${keyMax(s.maxKey![i])} | ${cell("sink")} | ${cell("middle")} | ${cell("recent")} | ${cell("question")} | ${cell("first")} |`);
      });
      lines.push(`| ${s.chunks} | all | | | ${s.evicted} (layer, KV head, row) cells evicted over ${s.requests} sample(s) | | | | |`);
    }
  }
  return lines.join("\n") + "\n";
}

const COLOURS: Record<Region, string> = { sink: "#d62728", middle: "#7f7f7f", recent: "#1f77b4", question: "#2ca02c" };

/** One stacked-bar chart per chunk count: a panel per setting, layers on x, region shares stacked. */
export function attentionBiasSpecs(r: AttentionBiasResult): Array<{ file: string; spec: PlotSpec }> {
  const counts = [...new Set(r.settings.map((s) => s.chunks))];
  return counts.map((n) => {
    const settings = r.settings.filter((s) => s.chunks === n);
    const values = settings.flatMap((s) => s.layers.flatMap((l) => REGIONS.map((region, order) => ({
      setting: s.setting, layer: `layer ${l.layer}`, region, order, share: l[region],
    }))));
    const spec: PlotSpec = {
      $schema: "https://vega.github.io/schema/vega-lite/v5.json",
      title: `Where the question's attention goes: ${r.model}, ${n} chunks, ${r.samples} ${r.task} sample(s)`,
      data: { values },
      facet: { column: { field: "setting", type: "nominal", sort: settings.map((s) => s.setting), title: null } },
      spec: {
        width: 150,
        height: 220,
        mark: "bar",
        encoding: {
          x: { field: "layer", type: "ordinal", sort: settings[0].layers.map((l) => `layer ${l.layer}`), title: null, axis: { labelAngle: -45 } },
          y: { field: "share", type: "quantitative", stack: "zero", scale: { domain: [0, 1] }, title: "share of attention", axis: { format: "%" } },
          color: { field: "region", type: "nominal", sort: [...REGIONS], scale: { domain: [...REGIONS], range: REGIONS.map((g) => COLOURS[g]) }, title: "region" },
          order: { field: "order", type: "quantitative" },
          tooltip: [{ field: "setting" }, { field: "layer" }, { field: "region" }, { field: "share", type: "quantitative", format: ".3f" }],
        },
      },
    };
    return { file: `attention-bias-${n}-chunks.svg`, spec };
  });
}

/** The charts as SVG text, with the file names they are written under. */
export async function attentionBiasPlots(r: AttentionBiasResult): Promise<Array<{ file: string; svg: string }>> {
  const out: Array<{ file: string; svg: string }> = [];
  for (const { file, spec } of attentionBiasSpecs(r)) out.push({ file, svg: await renderSvg(spec) });
  return out;
}
