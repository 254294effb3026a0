// Random-weight GGUF models with the exact shapes of real ones. No pretrained weights can be
// fetched here, so parity tests and benchmarks run on these: the arithmetic is the same as a
// real model of that shape, only the weights are noise. Scales keep activations O(1) and the
// logits spread over a few units, so a wrong kernel shows up in the log-probabilities.

import { GgmlType } from "../gguf/types.js";
import { kv, writeGguf, type TensorToWrite } from "../gguf/writer.js";
import type { GgufKv } from "../gguf/format.js";
import { quantizeTensor } from "../tensor/quant.js";
import { f32ToF16Bits } from "../tensor/f16.js";
import { rowBytes } from "../gguf/types.js";
import { rng } from "../util/rng.js";

export interface ModelShape {
  name: string;
  /** A family of src/model/families/; the tensors and keys are those llama.cpp's converter writes for it. */
  arch: string;
  nLayers: number;
  dim: number;
  nHeads: number;
  nKvHeads: number;
  nFf: number;
  nVocab: number;
  nCtxTrain: number;
  ropeBase: number;
  rmsEps: number;
  /** When not dim / nHeads (Qwen3: 128 with dim 1024 and 16 heads). */
  headDim?: number;
  /** A separate output.weight (else the embedding is reused, as in tied models). */
  untied?: boolean;
  /** Sliding window of the sliding layers (gemma2, gemma3). */
  slidingWindow?: number;
  /** Trained context before long-RoPE scaling (phi3's original_max_position_embeddings). */
  originalCtx?: number;
  /** Spread of the embedding (default 0.1). Gemma multiplies it by sqrt(dim) and ties the output
   *  to it: at 0.1 each token predicts itself (greedy repeats one token), so its shapes use less. */
  embdStd?: number;
  /** Control tokens the tokenizer loader looks up by name (llama.cpp's vocabulary code asks a
   *  model named Phi-3 for <unk>, <s>, </s> and <|endoftext|>). */
  controlTokens?: string[];
}

/** Shapes from the models' published configs (config.json of SmolLM2-135M and Qwen2.5-0.5B). */
export const SHAPES: Record<string, ModelShape> = {
  "smollm2-135m": {
    name: "SmolLM2-135M-shaped (random weights)", arch: "llama",
    nLayers: 30, dim: 576, nHeads: 9, nKvHeads: 3, nFf: 1536, nVocab: 49152, nCtxTrain: 8192, ropeBase: 100000, rmsEps: 1e-5,
  },
  "qwen2.5-0.5b": {
    name: "Qwen2.5-0.5B-shaped (random weights)", arch: "qwen2",
    nLayers: 24, dim: 896, nHeads: 14, nKvHeads: 2, nFf: 4864, nVocab: 151936, nCtxTrain: 32768, ropeBase: 1000000, rmsEps: 1e-6,
  },
  // Llama-3.2-1B's config.json (tied embeddings; its rope_freqs scaling left out, as below).
  "llama3.2-1b": {
    name: "Llama-3.2-1B-shaped (random weights)", arch: "llama",
    nLayers: 16, dim: 2048, nHeads: 32, nKvHeads: 8, nFf: 8192, nVocab: 128256, nCtxTrain: 131072, ropeBase: 500000, rmsEps: 1e-5,
  },
  // Llama-3.1-8B's config.json (its rope_freqs scaling is left out: random weights either way).
  "llama3.1-8b": {
    name: "Llama-3.1-8B-shaped (random weights)", arch: "llama",
    nLayers: 32, dim: 4096, nHeads: 32, nKvHeads: 8, nFf: 14336, nVocab: 128256, nCtxTrain: 131072, ropeBase: 500000, rmsEps: 1e-5, untied: true,
  },
  // Qwen3-0.6B's config.json: head_dim 128 (not 1024 / 16), tied embeddings, q_norm / k_norm.
  "qwen3-0.6b": {
    name: "Qwen3-0.6B-shaped (random weights)", arch: "qwen3",
    nLayers: 28, dim: 1024, nHeads: 16, nKvHeads: 8, nFf: 3072, nVocab: 151936, nCtxTrain: 40960, ropeBase: 1000000, rmsEps: 1e-6, headDim: 128,
  },
  // The configs of the other families people run (config.json of each published model).
  "gemma2-2b": {
    name: "Gemma-2-2B-shaped (random weights)", arch: "gemma2",
    nLayers: 26, dim: 2304, nHeads: 8, nKvHeads: 4, nFf: 9216, nVocab: 256000, nCtxTrain: 8192, ropeBase: 10000, rmsEps: 1e-6, headDim: 256, slidingWindow: 4096, embdStd: 1 / 2304,
  },
  "gemma3-1b": {
    name: "Gemma-3-1B-shaped (random weights)", arch: "gemma3",
    nLayers: 26, dim: 1152, nHeads: 4, nKvHeads: 1, nFf: 6912, nVocab: 262144, nCtxTrain: 32768, ropeBase: 1000000, rmsEps: 1e-6, headDim: 256, slidingWindow: 512, embdStd: 4 / 1152,
  },
  "phi3.5-mini": {
    name: "Phi-3.5-mini-shaped (random weights)", arch: "phi3",
    nLayers: 32, dim: 3072, nHeads: 32, nKvHeads: 32, nFf: 8192, nVocab: 32064, nCtxTrain: 131072, ropeBase: 10000, rmsEps: 1e-5, untied: true, originalCtx: 4096,
    controlTokens: ["<unk>", "<|endoftext|>"],
  },
  // Granite-3.1-2B ties its output to the embedding; this shape does not: with the embedding
  // times 12 and each block's output times 0.22, a tied random model only ever repeats its input
  // token, which would hide a wrong block.
  "granite3-2b": {
    name: "Granite-3.1-2B-shaped (random weights)", arch: "granite",
    nLayers: 40, dim: 2048, nHeads: 32, nKvHeads: 8, nFf: 8192, nVocab: 49155, nCtxTrain: 131072, ropeBase: 5000000, rmsEps: 1e-5, untied: true,
  },
  "smollm3-3b": {
    name: "SmolLM3-3B-shaped (random weights)", arch: "smollm3",
    nLayers: 36, dim: 2048, nHeads: 16, nKvHeads: 4, nFf: 11008, nVocab: 128256, nCtxTrain: 65536, ropeBase: 5000000, rmsEps: 1e-6,
  },
};

/**
 * What llama.cpp's converter writes for a family beyond the common keys (conversion/gemma.py,
 * phi.py, granite.py): Gemma's caps and window, Phi-3's long-RoPE keys, Granite's four scales
 * (Granite-3.1-2B's multipliers: embedding 12, residual 0.22, attention 1/64, logits 8).
 */
function familyMetadata(s: ModelShape): Array<[string, GgufKv]> {
  const a = s.arch;
  switch (a) {
    case "gemma2":
      return [[`${a}.attn_logit_softcapping`, kv.f32(50)], [`${a}.final_logit_softcapping`, kv.f32(30)], [`${a}.attention.sliding_window`, kv.u32(s.slidingWindow ?? 4096)]];
    case "gemma3":
      return [[`${a}.attention.sliding_window`, kv.u32(s.slidingWindow ?? 512)]];
    case "phi3": {
      const orig = s.originalCtx ?? s.nCtxTrain;
      const scale = s.nCtxTrain / orig;
      return [
        [`${a}.rope.scaling.original_context_length`, kv.u32(orig)],
        [`${a}.rope.scaling.attn_factor`, kv.f32(scale > 1 ? Math.sqrt(1 + Math.log(scale) / Math.log(orig)) : 1)],
        [`${a}.attention.sliding_window`, kv.u32(262144)],
      ];
    }
    case "granite":
      return [[`${a}.embedding_scale`, kv.f32(12)], [`${a}.residual_scale`, kv.f32(0.22)], [`${a}.attention.scale`, kv.f32(0.015625)], [`${a}.logit_scale`, kv.f32(8)]];
    default:
      return [];
  }
}

/** GPT-2's byte-to-unicode table: printable bytes map to themselves, the rest to U+0100 on. */
export function byteLevelChars(): string[] {
  const chars: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars[b] = String.fromCodePoint(printable ? b : 0x100 + extra++);
  }
  return chars;
}

/**
 * A byte-level "gpt2" vocabulary padded to nVocab with placeholder tokens; BOS and EOS are the
 * last two ids. llama.cpp refuses an empty merges list, so it holds one merge that never applies
 * (its parts are multi-character; byte-level symbols start as single characters).
 */
export function placeholderVocab(nVocab: number, controlTokens: string[] = []): Array<[string, GgufKv]> {
  const tokens = byteLevelChars();
  for (let i = tokens.length; i < nVocab; i++) tokens.push(`tok${i}`);
  const types = new Array(nVocab).fill(1);
  controlTokens.forEach((t, i) => {
    tokens[nVocab - 3 - i] = t;
    types[nVocab - 3 - i] = 3;
  });
  types[nVocab - 2] = 3; // control
  types[nVocab - 1] = 3;
  tokens[nVocab - 2] = "<s>";
  tokens[nVocab - 1] = "</s>";
  return [
    ["tokenizer.ggml.model", kv.str("gpt2")],
    ["tokenizer.ggml.pre", kv.str("default")],
    ["tokenizer.ggml.tokens", kv.strings(tokens)],
    ["tokenizer.ggml.token_type", kv.i32s(types)],
    ["tokenizer.ggml.merges", kv.strings(["<s> </s>"])],
    ["tokenizer.ggml.bos_token_id", kv.u32(nVocab - 2)],
    ["tokenizer.ggml.eos_token_id", kv.u32(nVocab - 1)],
    ["tokenizer.ggml.add_bos_token", kv.bool(false)],
  ];
}

export interface RandomModelOptions {
  type?: GgmlType; // type of the 2-D weights; norms stay F32 as llama.cpp's quantizer leaves them
  embdType?: GgmlType; // type of token_embd (default: `type`), as mixed files like Q4_K_M have
  seed?: number;
  /** Override a few shape fields (tests use a smaller vocabulary or fewer layers). */
  shape?: Partial<ModelShape>;
  /** llama-quantize's type mix instead of one type: "Q4_K_M" (what most downloads are). */
  mix?: "Q4_K_M";
  /** More metadata, or replacements for the generated keys (a chat template, a broken value). */
  metadata?: Array<[string, GgufKv]>;
}

export function writeRandomModel(file: string, shapeName: string, o: RandomModelOptions = {}): ModelShape {
  const base = SHAPES[shapeName];
  if (!base) throw new Error(`unknown model shape "${shapeName}" (known: ${Object.keys(SHAPES).join(", ")})`);
  const s: ModelShape = { ...base, ...o.shape };
  const random = rng(o.seed ?? 1);
  const headDim = s.headDim ?? s.dim / s.nHeads;
  // Uniform noise of a given standard deviation (uniform on [-a, a] has std a / sqrt(3)).
  const noise = (n: number, std: number, mean = 0) => {
    const out = new Float32Array(n);
    const a = std * Math.sqrt(3);
    for (let i = 0; i < n; i++) out[i] = mean + (2 * random() - 1) * a;
    return out;
  };
  const asBytes = (f: Float32Array) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  const mixed = o.mix ? q4kmType(s) : null;
  const matrix = (name: string, nOut: number, nIn: number, std: number, wanted = mixed?.(name) ?? o.type ?? GgmlType.F32): TensorToWrite => {
    const type = fallbackType(wanted, nIn);
    return { name, ne: [nIn, nOut], type, data: () => {
      if (type === GgmlType.F32) return pieces(nOut, nIn, (n) => asBytes(noise(n, std)));
      if (K_QUANT_SPREAD[type] !== undefined) return randomKQuantBlocks(type, nOut, nIn, std, random);
      return quantizeTensor(type, noise(nOut * nIn, std), nOut, nIn);
    } };
  };
  // Row blocks of at most 2^26 values, so that no typed array exceeds what one can hold.
  function* pieces(nOut: number, nIn: number, make: (n: number) => Uint8Array): Iterable<Uint8Array> {
    const rowsPer = Math.max(1, Math.floor((1 << 26) / nIn));
    for (let r = 0; r < nOut; r += rowsPer) yield make(Math.min(rowsPer, nOut - r) * nIn);
  }
  const vector = (name: string, n: number, std: number, mean: number): TensorToWrite => ({
    name, ne: [n], type: GgmlType.F32, data: () => asBytes(noise(n, std, mean)),
  });

  const tensors: TensorToWrite[] = [matrix("token_embd.weight", s.nVocab, s.dim, s.embdStd ?? 0.1, mixed?.("token_embd.weight") ?? o.embdType ?? o.type)];
  const qDim = s.nHeads * headDim;
  const kvDim = s.nKvHeads * headDim;
  const inStd = 1 / Math.sqrt(s.dim);
  // The converter's quirks: Phi-3 fuses Q, K, V into attn_qkv and gate, up into one ffn_up (gate
  // rows first); Qwen3 and Gemma 3 norm each head's Q and K; Gemma 2 and 3 norm each block's
  // output too; Qwen2 has Q/K/V biases.
  const fused = s.arch === "phi3";
  const qkNorm = s.arch === "qwen3" || s.arch === "gemma3";
  const postNorms = s.arch === "gemma2" || s.arch === "gemma3";
  for (let l = 0; l < s.nLayers; l++) {
    const p = `blk.${l}.`;
    tensors.push(vector(p + "attn_norm.weight", s.dim, 0.1, 1));
    if (fused) tensors.push(matrix(p + "attn_qkv.weight", qDim + 2 * kvDim, s.dim, inStd));
    else tensors.push(matrix(p + "attn_q.weight", qDim, s.dim, inStd), matrix(p + "attn_k.weight", kvDim, s.dim, inStd), matrix(p + "attn_v.weight", kvDim, s.dim, inStd));
    if (s.arch === "qwen2") {
      tensors.push(vector(p + "attn_q.bias", qDim, 0.5, 0), vector(p + "attn_k.bias", kvDim, 0.5, 0), vector(p + "attn_v.bias", kvDim, 0.5, 0));
    }
    if (qkNorm) tensors.push(vector(p + "attn_q_norm.weight", headDim, 0.1, 1), vector(p + "attn_k_norm.weight", headDim, 0.1, 1));
    tensors.push(matrix(p + "attn_output.weight", s.dim, qDim, 1 / Math.sqrt(qDim)));
    if (postNorms) tensors.push(vector(p + "post_attention_norm.weight", s.dim, 0.1, 1));
    tensors.push(vector(p + "ffn_norm.weight", s.dim, 0.1, 1));
    if (fused) tensors.push(matrix(p + "ffn_up.weight", 2 * s.nFf, s.dim, inStd));
    else tensors.push(matrix(p + "ffn_gate.weight", s.nFf, s.dim, inStd), matrix(p + "ffn_up.weight", s.nFf, s.dim, inStd));
    tensors.push(matrix(p + "ffn_down.weight", s.dim, s.nFf, 1 / Math.sqrt(s.nFf)));
    if (postNorms) tensors.push(vector(p + "post_ffw_norm.weight", s.dim, 0.1, 1));
  }
  tensors.push(vector("output_norm.weight", s.dim, 0.1, 1));
  if (s.untied) tensors.push(matrix("output.weight", s.nVocab, s.dim, s.embdStd ?? 0.1));
  if (s.arch === "phi3" && s.originalCtx) {
    // Long RoPE: per-frequency divisors rising from 1, far more for the long context.
    const half = headDim / 2;
    const factors = (top: number) => Float32Array.from({ length: half }, (_, i) => 1 + (top - 1) * Math.pow(i / (half - 1), 3));
    tensors.push(
      { name: "rope_factors_long.weight", ne: [half], type: GgmlType.F32, data: () => asBytes(factors(40)) },
      { name: "rope_factors_short.weight", ne: [half], type: GgmlType.F32, data: () => asBytes(factors(1.5)) },
    );
  }

  const a = s.arch;
  const metadata: Array<[string, GgufKv]> = [
    ["general.architecture", kv.str(a)],
    ["general.name", kv.str(s.name)],
    [`${a}.context_length`, kv.u32(s.nCtxTrain)],
    [`${a}.embedding_length`, kv.u32(s.dim)],
    [`${a}.block_count`, kv.u32(s.nLayers)],
    [`${a}.feed_forward_length`, kv.u32(s.nFf)],
    [`${a}.attention.head_count`, kv.u32(s.nHeads)],
    [`${a}.attention.head_count_kv`, kv.u32(s.nKvHeads)],
    [`${a}.attention.layer_norm_rms_epsilon`, kv.f32(s.rmsEps)],
    [`${a}.rope.freq_base`, kv.f32(s.ropeBase)],
    [`${a}.rope.dimension_count`, kv.u32(headDim)],
    ...(s.headDim ? [[`${a}.attention.key_length`, kv.u32(headDim)], [`${a}.attention.value_length`, kv.u32(headDim)]] as Array<[string, GgufKv]> : []),
    ...familyMetadata(s),
    ...placeholderVocab(s.nVocab, s.controlTokens),
  ];
  const extra = new Map(o.metadata ?? []);
  writeGguf(file, [...metadata.filter(([k]) => !extra.has(k)), ...extra], tensors);
  return s;
}

/**
 * llama-quantize's Q4_K_M (llama.cpp src/llama-quant.cpp, llama_tensor_get_type): Q4_K, except
 * Q6_K for the output (the embedding when the model ties them) and for attn_v and ffn_down in
 * the layers use_more_bits picks (the first and last eighth, and every third between), Q5_K for
 * a fused attn_qkv; the K-quant fallbacks for rows that are not a multiple of 256 apply after.
 */
function q4kmType(s: ModelShape): (name: string) => GgmlType {
  const n = s.nLayers;
  const eighth = Math.floor(n / 8), sevenEighths = Math.floor((7 * n) / 8); // C's integer division
  const moreBits = (l: number) => l < eighth || l >= sevenEighths || (l - eighth) % 3 === 2;
  return (name) => {
    if (name === "output.weight" || (name === "token_embd.weight" && !s.untied)) return GgmlType.Q6_K;
    const m = /^blk\.(\d+)\.(attn_v|ffn_down|attn_qkv)\.weight$/.exec(name);
    if (m?.[2] === "attn_qkv") return GgmlType.Q5_K;
    if (m && moreBits(Number(m[1]))) return GgmlType.Q6_K;
    return GgmlType.Q4_K;
  };
}

/**
 * The type llama-quantize writes when a row is not a multiple of the 256-value K-quant block
 * (llama.cpp src/llama-quant.cpp, tensor_type_fallback): SmolLM2's 576 and Qwen2.5-0.5B's 896
 * columns take this path, so a "Q4_K" file of these shapes is mostly Q5_0, as real downloads are.
 */
export function fallbackType(type: GgmlType, nIn: number): GgmlType {
  if (nIn % 256 === 0) return type;
  const fallback: Partial<Record<GgmlType, GgmlType>> = { [GgmlType.Q4_K]: GgmlType.Q5_0, [GgmlType.Q5_K]: GgmlType.Q5_1, [GgmlType.Q6_K]: GgmlType.Q8_0 };
  return fallback[type] ?? type;
}

// Standard deviation of a K-quant weight in units of the block scale d, for uniformly random
// codes (derived from the formulas below), and the min scale that centres it.
const K_QUANT_SPREAD: Partial<Record<GgmlType, { std: number; dminOverD: number }>> = {
  [GgmlType.Q4_K]: { std: 263, dminOverD: 7.5 }, // w = d*sc*q - dmin*m, sc, m in 0..63, q in 0..15
  [GgmlType.Q5_K]: { std: 540, dminOverD: 15.5 }, // q in 0..31
  [GgmlType.Q6_K]: { std: 1367, dminOverD: 0 }, // w = d*sc*(q - 32), sc int8, q in 0..63
};

/**
 * Random K-quant blocks written directly: uniformly random codes and 6-bit scales with d chosen
 * for the wanted spread. ggml's K-quant search runs at ~2M values/s in TypeScript, far too slow
 * for a 0.5B model in a test, and random codes are as good a random weight as quantized noise.
 */
function randomKQuantBlocks(type: GgmlType, nRows: number, nCols: number, std: number, random: () => number): Uint8Array {
  const spread = K_QUANT_SPREAD[type]!;
  const bytes = rowBytes(type, nCols) * nRows;
  const out = new Uint8Array(bytes);
  const words = new Uint32Array(out.buffer, 0, bytes >>> 2);
  for (let i = 0; i < words.length; i++) words[i] = (random() * 4294967296) >>> 0;
  const view = new DataView(out.buffer);
  const d = f32ToF16Bits(std / spread.std);
  const dmin = f32ToF16Bits((std / spread.std) * spread.dminOverD);
  const blockBytes = type === GgmlType.Q4_K ? 144 : type === GgmlType.Q5_K ? 176 : 210;
  for (let b = 0; b < bytes; b += blockBytes) {
    if (type === GgmlType.Q6_K) {
      view.setUint16(b + 208, d, true); // d is the last field of block_q6_K
    } else {
      view.setUint16(b, d, true);
      view.setUint16(b + 2, dmin, true);
    }
  }
  return out;
}
