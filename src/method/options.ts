// Every knob of the method in one typed object, with documented defaults; the paper's recipes
// are named presets of it (../shared/method.md).

import { UsageError } from "../errors.js";

export type Bias = "sink" | "recent" | "middle" | "all";

export interface CalibrationStep {
  /** 1-indexed, inclusive, in units of `recipeDepth` layers (scaled to the model's depth). */
  layers: [number, number];
  bias: Bias;
}

export interface EvictionOptions {
  /** Context rows kept per KV head per layer in each chunk: a count, or a fraction of the chunk if < 1. */
  capacity: number;
  window: number; // query rows observed (default 8)
  kernel: number; // max-pool kernel over key scores (default 7, padding kernel/2)
  /** How the query heads sharing a KV head combine their scores. */
  gqa: "sum" | "max";
}

export interface CalibrationOptions {
  recipe: CalibrationStep[];
  recipeDepth: number; // depth the recipe's layer numbers refer to (the paper's: 32)
  threshold: number; // attention above which a key in the region is evicted (default 0.1)
  regionTokens: number; // sink = first N tokens of a chunk, recent = last N (default 100)
  calibrationQueries: number; // last query rows whose attention is averaged (default 1)
}

export interface ParallelCompOptions {
  keepChunks: number; // chunks kept for the answer (default 3; the paper uses 1 for pure retrieval, our `retrieval` preset 2)
  maxParallelChunks: number; // chunks prefilled in one batch: bounds memory (default 1, see DEFAULTS)
  /**
   * Hold at most keepChunks - 1 chunks' KV while reading, besides the batch in flight, and encode
   * the last kept chunk again at the end: one window of KV less at the peak (keepChunks windows
   * instead of keepChunks + 1 with one chunk per batch) for one more chunk's prefill. The same
   * chunks and answer; scores move by float rounding only (natively a chunk's rows then sit
   * elsewhere in the cache, and attention sums keys in other blocks), exact with the TypeScript
   * kernels and through llama.cpp's per-sequence streams.
   */
  lowMemory: boolean;
  /**
   * Keep fewer chunks when one is far ahead: of the `keepChunks` best, only those whose score is
   * within this many nats of the best one's stay for the answer (default 1; null: all of them).
   * Not in the paper; issue 18's drift case (a UUID copied right from one chunk, drifting into
   * another's with three in view) is what it is for (models/README.md).
   */
  keepWithin: number | null;
  /** Context tokens per chunk; default: the trained window less header, query and maxTokens. */
  chunkTokens?: number;
  /** Score only the last N query tokens (0 = all, the default: the last ones are template text). */
  queryRecentTokens: number;
  eviction: EvictionOptions | null;
  calibration: CalibrationOptions | null;
  maxTokens: number; // answer tokens generated (default ANSWER_TOKENS: 88)
}

/**
 * The default answer length, for the library, the CLI's `ask` and `demo` and the server (a
 * request's own max_tokens is taken as given). It holds the longest answer the bundled model
 * gives: with no answer prefix the model writes the lead itself, and kv_retrieval's "The value
 * associated with the specified key is: <UUID>" is 84 of its byte tokens, then EOS (the CLI's old
 * 32 cut the UUID, even after the lead). Every answer token is taken from each chunk's share of
 * the window, so it is no larger.
 */
export const ANSWER_TOKENS = 88;

export const DEFAULTS: ParallelCompOptions = {
  keepChunks: 3,
  // One chunk per batch on a CPU: batching 8 chunks of 512 tokens ran at 0.95x the speed of one
  // at a time (`parallelcomp bench --sections batching`; a 512-token step already keeps the
  // matmuls at their peak rate), while every chunk in flight holds a window of KV: with 4, peak
  // RSS at 128K was 2.7x that at 16K on the SmolLM2-135M shape. Larger values stay available.
  maxParallelChunks: 1,
  // On: memory is what a long input must be provisioned for. It costs at most one chunk's
  // prefill per question, none up to keepChunks chunks, a quarter of stage 0 at 4 chunks, a
  // seventeenth at 128K tokens on the SmolLM2-135M shape, where peak RSS fell from 1116 to 937 MiB
  // for 1.03x the time (docs/performance.md).
  lowMemory: true,
  // 1 nat: a chunk whose presence makes each question token e times likelier than the next best's
  // does is the one the answer comes from; the others only share out the question's attention
  // (issue 18's drift: a UUID copied right, then continued from another chunk's). On the bundled
  // model's kv_retrieval at 128K every gap from 0.1 to 2.3 nats was 50/50 where three chunks made
  // 49 and the seventh run's 48 and 44 of 47 rose to 50 and 46 (models/README.md); the value's
  // chunk scored 0.02-0.10, the others 2.4 and more. Questions that need several chunks score
  // them close together, and they all stay.
  keepWithin: 1,
  queryRecentTokens: 0,
  eviction: null,
  calibration: null,
  maxTokens: ANSWER_TOKENS,
};

/** The paper's best recipe for a 32-layer model: middle bias in 1-8, recency in 9-16, sinks in 25-32. */
export const PAPER_RECIPE: CalibrationStep[] = [
  { layers: [1, 8], bias: "middle" },
  { layers: [9, 16], bias: "recent" },
  { layers: [25, 32], bias: "sink" },
];

export const PRESETS = {
  default: {},
  // The paper keeps 1 chunk for pure retrieval. We keep 2: a needle cut by a chunk boundary has
  // its value in two chunks, and with only one kept the question sees half of it. On the bundled
  // model, 50 samples per length: number_string 88% / 92% / 90% at 16K / 64K / 128K with 1 chunk,
  // 100% at all three with 2; passkey 100% with either (models/README.md). One more window of KV.
  retrieval: { keepChunks: 2 },
  compress: { eviction: { capacity: 0.5, window: 8, kernel: 7, gqa: "sum" } },
  calibrate: { calibration: { recipe: PAPER_RECIPE, recipeDepth: 32, threshold: 0.1, regionTokens: 100, calibrationQueries: 1 } },
} satisfies Record<string, Partial<ParallelCompOptions>>;

export type PresetName = keyof typeof PRESETS;

/** Options a caller sets over a preset; `topK` is the old name of `keepChunks`. */
export interface OptionOverrides extends Partial<ParallelCompOptions> {
  /** @deprecated The old name of `keepChunks` (top-k is the sampler's word); still accepted. */
  topK?: number;
}

/**
 * The value of an option that also has a deprecated old name: the new one, else the old one; both
 * given with different values is an error naming both.
 */
export function renamed<T>(value: T | undefined, oldValue: T | undefined, name: string, oldName: string, fail = (message: string): Error => new UsageError(message)): T | undefined {
  if (value !== undefined && oldValue !== undefined && value !== oldValue) {
    throw fail(`${name} ${value} and ${oldName} ${oldValue} disagree: ${oldName} is the old name of ${name}, give one`);
  }
  return value ?? oldValue;
}

/** The preset's options with `overrides` over them (an undefined override keeps the preset's value), checked. */
export function resolveOptions(preset: string = "default", overrides: OptionOverrides = {}): ParallelCompOptions {
  if (!(preset in PRESETS)) throw new UsageError(`unknown preset "${preset}" (known: ${Object.keys(PRESETS).join(", ")})`);
  const { topK, ...given } = overrides;
  const set = Object.fromEntries(Object.entries(given).filter(([, v]) => v !== undefined)) as Partial<ParallelCompOptions>;
  const keepChunks = renamed(set.keepChunks, topK, "keepChunks", "topK");
  if (keepChunks !== undefined) set.keepChunks = keepChunks;
  const o: ParallelCompOptions = { ...DEFAULTS, ...(PRESETS[preset as PresetName] as Partial<ParallelCompOptions>), ...set };
  const positiveInt = (name: string, v: number) => {
    if (!Number.isInteger(v) || v < 1) throw new UsageError(`${name} must be a positive integer, got ${v}`);
  };
  positiveInt("keepChunks", o.keepChunks);
  positiveInt("maxParallelChunks", o.maxParallelChunks);
  if (o.chunkTokens !== undefined) positiveInt("chunkTokens", o.chunkTokens);
  if (typeof o.lowMemory !== "boolean") throw new UsageError(`lowMemory must be true or false, got ${JSON.stringify(o.lowMemory)}`);
  if (o.keepWithin !== null && !(typeof o.keepWithin === "number" && o.keepWithin >= 0)) throw new UsageError(`keepWithin must be a number of nats >= 0 or null, got ${JSON.stringify(o.keepWithin)}`);
  if (!Number.isInteger(o.queryRecentTokens) || o.queryRecentTokens < 0) throw new UsageError(`queryRecentTokens must be an integer >= 0, got ${o.queryRecentTokens}`);
  if (!Number.isInteger(o.maxTokens) || o.maxTokens < 0) throw new UsageError(`maxTokens must be an integer >= 0, got ${o.maxTokens}`);
  if (o.eviction && !(o.eviction.capacity > 0)) throw new UsageError(`eviction.capacity must be > 0, got ${o.eviction.capacity}`);
  if (o.calibration && !(o.calibration.threshold > 0 && o.calibration.threshold < 1)) throw new UsageError(`calibration.threshold must be in (0, 1), got ${o.calibration.threshold}`);
  return o;
}

/** A recipe step's layers for a model of `nLayers`, 0-indexed inclusive, scaled by depth fraction. */
export function scaleLayers(step: CalibrationStep, recipeDepth: number, nLayers: number): [number, number] {
  const from = Math.floor(((step.layers[0] - 1) / recipeDepth) * nLayers);
  const to = Math.max(from, Math.ceil((step.layers[1] / recipeDepth) * nLayers) - 1);
  return [from, Math.min(nLayers - 1, to)];
}
