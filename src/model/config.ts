// Hyper-parameters of a model, read from the GGUF keys `<arch>.*` (names as in llama.cpp's
// llama-arch.cpp). Plain data: no weights, no run state.

import type { GgufFile } from "../gguf/reader.js";
import { GgufError } from "../gguf/reader.js";

export type Architecture = "llama" | "qwen2";
export const SUPPORTED_ARCHITECTURES: readonly Architecture[] = ["llama", "qwen2"];

export interface ModelConfig {
  arch: Architecture;
  name: string;
  nCtxTrain: number; // trained context length
  dim: number; // embedding length
  nLayers: number;
  nFf: number; // feed-forward hidden size
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  nVocab: number;
  rmsEps: number;
  ropeBase: number;
  ropeDim: number; // leading dims of each head that are rotated
  /** NEOX style rotates (x[i], x[i + ropeDim/2]); NORM style rotates (x[2i], x[2i+1]). */
  ropeNeox: boolean;
  ropeFreqScale: number; // 1 / linear scaling factor
  kvBytesPerToken: number; // K and V of one token in every layer (F32)
}

/** Bounds on a model's numbers: far above any model published (Llama 3.1 405B: dim 16384, 126 layers, 131072 context). */
export const LIMITS = { dim: 1 << 16, heads: 1024, headDim: 1024, layers: 1024, ff: 1 << 20, context: 1 << 24 };

export function readConfig(g: GgufFile): ModelConfig {
  const arch = g.string("general.architecture");
  if (!(SUPPORTED_ARCHITECTURES as readonly string[]).includes(arch)) {
    throw new GgufError(g.file, `general.architecture is "${arch}", supported: ${SUPPORTED_ARCHITECTURES.join(", ")}`);
  }
  const k = (name: string) => `${arch}.${name}`;
  const dim = g.number(k("embedding_length"));
  const nHeads = g.number(k("attention.head_count"));
  const nKvHeads = g.number(k("attention.head_count_kv"), nHeads);
  const headDim = g.number(k("attention.key_length"), dim / nHeads);
  const valueDim = g.number(k("attention.value_length"), headDim);
  // Every number is checked before it sizes anything: a broken file gets one error naming the key,
  // not an allocation of terabytes or a kernel's internal message.
  const positive = (key: string, v: number, max = LIMITS.dim) => {
    if (!Number.isInteger(v) || v <= 0 || v > max) throw new GgufError(g.file, `${key} is ${v}, expected an integer from 1 to ${max}`);
    return v;
  };
  const real = (key: string, v: number, lo: number, hi: number) => {
    if (!Number.isFinite(v) || !(v > lo) || !(v < hi)) throw new GgufError(g.file, `${key} is ${v}, expected a finite number above ${lo} and below ${hi}`);
    return v;
  };
  positive(k("embedding_length"), dim);
  positive(k("attention.head_count"), nHeads, LIMITS.heads);
  positive(k("attention.head_count_kv"), nKvHeads, LIMITS.heads);
  positive(k("attention.key_length"), headDim, LIMITS.headDim);
  positive(k("block_count"), g.number(k("block_count")), LIMITS.layers);
  positive(k("feed_forward_length"), g.number(k("feed_forward_length")), LIMITS.ff);
  positive(k("context_length"), g.number(k("context_length")), LIMITS.context);
  const ropeDim = positive(k("rope.dimension_count"), g.number(k("rope.dimension_count"), headDim), headDim);
  if (ropeDim % 2 !== 0) throw new GgufError(g.file, `${k("rope.dimension_count")} is ${ropeDim}, expected an even number (RoPE rotates pairs)`);
  real(k("rope.freq_base"), g.number(k("rope.freq_base"), 10000), 0, 1e12);
  real(k("attention.layer_norm_rms_epsilon"), g.number(k("attention.layer_norm_rms_epsilon"), 1e-5), 0, 1);
  if (valueDim !== headDim) throw new GgufError(g.file, `${k("attention.value_length")} ${valueDim} differs from key_length ${headDim}: not supported`);
  if (nHeads % nKvHeads !== 0) throw new GgufError(g.file, `${k("attention.head_count")} ${nHeads} is not a multiple of head_count_kv ${nKvHeads}`);
  const scalingType = g.string(k("rope.scaling.type"), "none");
  let ropeFreqScale = 1;
  if (scalingType === "linear") ropeFreqScale = 1 / real(k("rope.scaling.factor"), g.number(k("rope.scaling.factor"), 1), 0, 1e6);
  else if (scalingType !== "none") throw new GgufError(g.file, `${k("rope.scaling.type")} "${scalingType}" is not supported (none, linear)`);
  const embd = g.tensor("token_embd.weight");
  return {
    arch: arch as Architecture,
    name: g.string("general.name", arch),
    nCtxTrain: positive(k("context_length"), g.number(k("context_length"))),
    dim,
    nLayers: positive(k("block_count"), g.number(k("block_count"))),
    nFf: positive(k("feed_forward_length"), g.number(k("feed_forward_length"))),
    nHeads,
    nKvHeads,
    headDim,
    nVocab: positive("token_embd.weight's rows (the vocabulary)", embd.ne[1] ?? 0, 1 << 24),
    rmsEps: g.number(k("attention.layer_norm_rms_epsilon"), 1e-5),
    ropeBase: g.number(k("rope.freq_base"), 10000),
    ropeDim: g.number(k("rope.dimension_count"), headDim),
    ropeNeox: arch === "qwen2",
    ropeFreqScale,
    kvBytesPerToken: positive(k("block_count"), g.number(k("block_count"))) * nKvHeads * headDim * 2 * 4,
  };
}
