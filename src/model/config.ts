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
  const positive = (key: string, v: number) => {
    if (!Number.isInteger(v) || v <= 0) throw new GgufError(g.file, `${key} is ${v}, expected a positive integer`);
    return v;
  };
  positive(k("embedding_length"), dim);
  positive(k("attention.head_count"), nHeads);
  positive(k("attention.head_count_kv"), nKvHeads);
  positive(k("attention.key_length"), headDim);
  if (valueDim !== headDim) throw new GgufError(g.file, `${k("attention.value_length")} ${valueDim} differs from key_length ${headDim}: not supported`);
  if (nHeads % nKvHeads !== 0) throw new GgufError(g.file, `${k("attention.head_count")} ${nHeads} is not a multiple of head_count_kv ${nKvHeads}`);
  const scalingType = g.string(k("rope.scaling.type"), "none");
  let ropeFreqScale = 1;
  if (scalingType === "linear") ropeFreqScale = 1 / g.number(k("rope.scaling.factor"), 1);
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
    nVocab: embd.ne[1] ?? 0,
    rmsEps: g.number(k("attention.layer_norm_rms_epsilon"), 1e-5),
    ropeBase: g.number(k("rope.freq_base"), 10000),
    ropeDim: g.number(k("rope.dimension_count"), headDim),
    ropeNeox: arch === "qwen2",
    ropeFreqScale,
    kvBytesPerToken: positive(k("block_count"), g.number(k("block_count"))) * nKvHeads * headDim * 2 * 4,
  };
}
