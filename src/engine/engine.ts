// The engine interface the method talks to. ParallelComp needs four things of an engine: prefill
// a batch of sequences (each token with its own position and sequence id), the logits of chosen
// rows, freeing a sequence's rows, and letting a new sequence share the rows of others. Our own
// engine (model/model.ts) and llama.cpp's (backends/llama-cpp.ts) both provide them; the method
// never asks which one it runs on.
//
// Work inside the attention layers (SnapKV eviction, bias calibration, the attention analysis,
// StreamingLLM's key re-rotation, NTK's RoPE base) needs the engine's own layers and cache:
// `layers` gives them where the engine exposes them; `layerAccess` says clearly where not.

import type { Batch } from "./batch.js";
import type { KvCache } from "./kv-cache.js";
import type { GgufFile } from "../gguf/reader.js";
import type { Tokenizer } from "../tokenizer/index.js";
import type { ModelConfig } from "../model/config.js";
import type { ForwardOptions } from "../model/forward.js";
import { UsageError } from "../errors.js";

/** What the method reads of a model's shape. */
export interface EngineConfig {
  arch: string;
  nCtxTrain: number; // trained window
  nVocab: number;
  nLayers: number;
  kvBytesPerToken: number; // K and V of one token, all layers, in the engine's KV type
}

/** A KV cache as the method uses it: rows carry (seq, pos); verbs on half-open position ranges. */
export interface SeqCache {
  /** Drops sequence `seq`'s rows at positions [p0, p1). */
  seqRemove(seq: number, p0?: number, p1?: number): void;
  /** Sequence `dst` attends to the rows `src` holds now (shared, not copied). */
  seqShare(src: number, dst: number): void;
  /** Largest position `seq` holds, or -1. */
  seqPosMax(seq: number): number;
  /** KV bytes allocated. */
  bytes(): number;
  /** KV bytes of the rows held. */
  usedBytes(): number;
  /** Gives the memory back now (a run's last step; llama.cpp's buffers live outside the JS heap). */
  free(): void;
}

export const BACKENDS = ["native", "llama.cpp", "auto"] as const;
export type BackendChoice = (typeof BACKENDS)[number];

/** Which engine runs a model, on which device, and why another was not used. */
export interface BackendInfo {
  name: "native" | "llama.cpp";
  device: "cpu" | "cuda" | "vulkan" | "metal" | string;
  /** One line: why `auto` (or a GPU build) fell back, if it did. */
  notice?: string;
}

/** The engine's own layers and cache, for methods that work inside attention. */
export interface LayerAccess {
  config: ModelConfig;
  /** Moves one cached key [headDim] of layer l by delta positions (a no-op in a layer without RoPE). */
  rotateKey(l: number, key: Float32Array, delta: number): void;
  /** The engine's cache behind a `SeqCache` it made. */
  cache(c: SeqCache): KvCache;
}

export interface Engine {
  readonly file: string;
  readonly backend: BackendInfo;
  readonly config: EngineConfig;
  readonly gguf: GgufFile;
  readonly tokenizer: Tokenizer;
  /** Present when the engine exposes its attention layers (see the header). */
  readonly layers?: LayerAccess;
  /**
   * A cache for up to `nSeqMax` sequences and `capacity` rows (the llama.cpp engine cannot grow
   * it). `seqRows`, the most rows one sequence holds before any is shared, lets an engine give each
   * sequence a buffer of its own until then (llama.cpp: attention over a chunk's own cells only).
   */
  newCache(opts?: { nSeqMax?: number; capacity?: number; seqRows?: number }): SeqCache;
  /** Runs a batch; returns logits [nWanted, nVocab] of the entries that want them, in batch order. */
  forward(cache: SeqCache, batch: Batch, opts?: ForwardOptions): Float32Array;
  close(): void;
}

/** The engine's layers for `what`, or one clear error saying which backend has them. */
export function layerAccess(engine: Engine, what: string): LayerAccess {
  if (engine.layers) return engine.layers;
  throw new UsageError(`${what} works inside the attention layers, which the ${engine.backend.name} backend does not expose: use --backend native`);
}
