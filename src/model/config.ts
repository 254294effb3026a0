// Hyper-parameters of a model, read from the GGUF keys `<arch>.*` (names as in llama.cpp's
// llama-arch.cpp), and its family's description of the block (src/model/families/). Plain data:
// no weights, no run state.

import type { GgufFile } from "../gguf/reader.js";
import { GgufError } from "../gguf/reader.js";
import { defaultBlock, type BlockSpec, type FamilyInput, type LayerSpec, type RopePlan } from "./family.js";
import { FAMILIES } from "./families/index.js";

export const SUPPORTED_ARCHITECTURES: readonly string[] = [...FAMILIES.keys()];

export interface ModelConfig {
  arch: string;
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
  kvBytesPerToken: number; // K and V of one token in every layer (as the cache stores them)
  block: BlockSpec;
  layers: LayerSpec[]; // [nLayers] RoPE and attention window of each layer
}

export interface ConfigOptions {
  /** The context the model runs in (default: its trained context, as llama.cpp's n_ctx = 0). */
  ctxSize?: number;
  /** Bytes of one cached K or V value: 2 for an F16 cache (the default), 4 for F32. */
  kvBytesPerValue?: number;
}

/** Bounds on a model's numbers: far above any model published (Llama 3.1 405B: dim 16384, 126 layers, 131072 context). */
export const LIMITS = { dim: 1 << 16, heads: 1024, headDim: 1024, layers: 1024, ff: 1 << 20, context: 1 << 24 };

export function readConfig(g: GgufFile, o: ConfigOptions = {}): ModelConfig {
  const arch = g.string("general.architecture");
  const family = FAMILIES.get(arch);
  if (!family) {
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
  else if (scalingType !== "none" && scalingType !== "longrope") throw new GgufError(g.file, `${k("rope.scaling.type")} "${scalingType}" is not supported (none, linear, longrope)`);
  const nCtxTrain = positive(k("context_length"), g.number(k("context_length")), LIMITS.context);
  const nLayers = positive(k("block_count"), g.number(k("block_count")), LIMITS.layers);
  const ctxSize = o.ctxSize ?? nCtxTrain;
  const input: FamilyInput = {
    arch, nLayers, dim, nHeads, headDim, nCtxTrain, ctxSize,
    rope: {
      base: g.number(k("rope.freq_base"), 10000),
      freqScale: ropeFreqScale,
      factors: ropeFactors(g, ctxSize, g.number(k("rope.scaling.original_context_length"), nCtxTrain)),
      mscale: real(k("rope.scaling.attn_factor"), g.number(k("rope.scaling.attn_factor"), 1), 0, 100),
    },
    number: (key, fallback) => {
      const v = g.number(k(key), fallback);
      if (!Number.isFinite(v)) throw new GgufError(g.file, `${k(key)} is ${v}, expected a finite number`);
      return v;
    },
    has: (key) => g.has(k(key)),
    hasTensor: (name) => g.tensors.has(name),
  };
  const d = family.describe(input);
  const block = { ...defaultBlock(headDim), ...d.block };
  const layers = Array.from({ length: nLayers }, (_, l) => d.layer?.(l) ?? { rope: input.rope, window: 0 });
  for (const [l, spec] of layers.entries()) {
    if (!Number.isInteger(spec.window) || spec.window < 0) throw new GgufError(g.file, `${k("attention.sliding_window")} gives layer ${l} a window of ${spec.window}, expected a whole number of positions`);
  }
  const embd = g.tensor("token_embd.weight");
  return {
    arch,
    name: g.string("general.name", arch),
    nCtxTrain,
    dim,
    nLayers,
    nFf: positive(k("feed_forward_length"), g.number(k("feed_forward_length"))),
    nHeads,
    nKvHeads,
    headDim,
    nVocab: positive("token_embd.weight's rows (the vocabulary)", embd.ne[1] ?? 0, 1 << 24),
    rmsEps: g.number(k("attention.layer_norm_rms_epsilon"), 1e-5),
    ropeBase: g.number(k("rope.freq_base"), 10000),
    ropeDim: g.number(k("rope.dimension_count"), headDim),
    ropeNeox: d.ropeNeox,
    ropeFreqScale,
    kvBytesPerToken: nLayers * nKvHeads * headDim * 2 * (o.kvBytesPerValue ?? 2),
    block,
    layers,
  };
}

/**
 * The per-frequency divisors of an ordinary layer, as llama.cpp picks them (llama-model.cpp,
 * get_rope_factors): rope_freqs when the file has it (Llama 3), else Phi-3's long factors when the
 * context exceeds the original one, else its short factors.
 */
function ropeFactors(g: GgufFile, ctxSize: number, originalCtx: number): RopePlan["factors"] {
  if (g.tensors.has("rope_freqs.weight")) return "rope_freqs.weight";
  const long = "rope_factors_long.weight", short = "rope_factors_short.weight";
  if (ctxSize > originalCtx && g.tensors.has(long)) return long;
  return g.tensors.has(short) ? short : null;
}
