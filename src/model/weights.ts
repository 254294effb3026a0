// Weights of a model, as the matmul kernels read them: raw GGML rows, never expanded to f32 up
// front. Norm vectors and biases (small) are converted to f32. Fused tensors (Phi-3's attn_qkv
// and gate+up) are split here into views of their rows, so the forward step sees one layout.

import { GgufError, type GgufFile } from "../gguf/reader.js";
import { rowBytes, SUPPORTED_WEIGHT_TYPES, typeName } from "../gguf/types.js";
import { dequantizeRow } from "../tensor/quant.js";
import type { ModelConfig } from "./config.js";

/** A weight matrix of PyTorch shape [nOut, nIn] (GGUF ne = [nIn, nOut]). */
export interface Matrix {
  data: Uint8Array; // [nOut, nIn] in blocks of `type`
  type: number;
  nOut: number;
  nIn: number;
}

export interface LayerWeights {
  attnNorm: Float32Array; // [dim]
  wq: Matrix; // [nHeads * headDim, dim]
  wk: Matrix; // [nKvHeads * headDim, dim]
  wv: Matrix; // [nKvHeads * headDim, dim]
  wo: Matrix; // [dim, nHeads * headDim]
  bq: Float32Array | null; // [nHeads * headDim] (qwen2)
  bk: Float32Array | null; // [nKvHeads * headDim]
  bv: Float32Array | null; // [nKvHeads * headDim]
  qNorm: Float32Array | null; // [headDim] per-head RMS norm of Q (qwen3, gemma3)
  kNorm: Float32Array | null; // [headDim]
  postAttnNorm: Float32Array | null; // [dim] norm of the attention output (gemma2/3)
  ffnNorm: Float32Array; // [dim]
  postFfnNorm: Float32Array | null; // [dim] norm of the feed-forward output (gemma2/3)
  wGate: Matrix; // [nFf, dim]
  wUp: Matrix; // [nFf, dim]
  wDown: Matrix; // [dim, nFf]
}

export interface ModelWeights {
  tokenEmbd: Matrix; // [nVocab, dim]
  layers: LayerWeights[];
  outputNorm: Float32Array; // [dim]
  output: Matrix; // [nVocab, dim]; the embedding itself when the model ties them
  /** Per-frequency RoPE divisors [ropeDim / 2] by tensor name (rope_freqs, Phi-3's long/short factors). */
  ropeFactors: Map<string, Float32Array>;
}

function expectShape(g: GgufFile, name: string, ne: number[]) {
  const t = g.tensor(name);
  if (t.ne.length !== ne.length || t.ne.some((d, i) => d !== ne[i])) {
    throw new GgufError(g.file, `tensor ${name} has shape [${t.ne.join(", ")}], expected [${ne.join(", ")}] (shape mismatch)`);
  }
  return t;
}

function matrix(g: GgufFile, name: string, nOut: number, nIn: number): Matrix {
  const t = expectShape(g, name, [nIn, nOut]);
  if (!SUPPORTED_WEIGHT_TYPES.has(t.type)) {
    throw new GgufError(g.file, `tensor ${name} has type ${t.type} (${typeName(t.type)}), not supported yet (supported: ${[...SUPPORTED_WEIGHT_TYPES].map(typeName).join(", ")})`);
  }
  return { data: g.tensorData(name), type: t.type, nOut, nIn };
}

/** Rows [from, from + n) of a matrix, without a copy (rows are whole blocks). */
function rows(m: Matrix, from: number, n: number): Matrix {
  const bytes = rowBytes(m.type, m.nIn);
  return { data: m.data.subarray(from * bytes, (from + n) * bytes), type: m.type, nOut: n, nIn: m.nIn };
}

function vector(g: GgufFile, name: string, n: number): Float32Array {
  const t = expectShape(g, name, [n]);
  if (!SUPPORTED_WEIGHT_TYPES.has(t.type)) throw new GgufError(g.file, `tensor ${name} has type ${typeName(t.type)}, not supported for a vector`);
  const out = new Float32Array(n);
  dequantizeRow(t.type, g.tensorData(name), 0, n, out, 0);
  return out;
}

export function loadWeights(g: GgufFile, c: ModelConfig): ModelWeights {
  const qDim = c.nHeads * c.headDim;
  const kvDim = c.nKvHeads * c.headDim;
  const b = c.block;
  const optional = (name: string, n: number) => (g.tensors.has(name) ? vector(g, name, n) : null);
  const required = (name: string, n: number, needed: boolean) => (needed ? vector(g, name, n) : null);
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `blk.${l}.`;
    const qkv = b.fusedQkv ? matrix(g, p + "attn_qkv.weight", qDim + 2 * kvDim, c.dim) : null;
    const gateUp = b.fusedGateUp ? matrix(g, p + "ffn_up.weight", 2 * c.nFf, c.dim) : null;
    layers.push({
      attnNorm: vector(g, p + "attn_norm.weight", c.dim),
      wq: qkv ? rows(qkv, 0, qDim) : matrix(g, p + "attn_q.weight", qDim, c.dim),
      wk: qkv ? rows(qkv, qDim, kvDim) : matrix(g, p + "attn_k.weight", kvDim, c.dim),
      wv: qkv ? rows(qkv, qDim + kvDim, kvDim) : matrix(g, p + "attn_v.weight", kvDim, c.dim),
      wo: matrix(g, p + "attn_output.weight", c.dim, qDim),
      bq: optional(p + "attn_q.bias", qDim),
      bk: optional(p + "attn_k.bias", kvDim),
      bv: optional(p + "attn_v.bias", kvDim),
      qNorm: required(p + "attn_q_norm.weight", c.headDim, b.qkNorm),
      kNorm: required(p + "attn_k_norm.weight", c.headDim, b.qkNorm),
      postAttnNorm: required(p + "post_attention_norm.weight", c.dim, b.postNorms),
      ffnNorm: vector(g, p + "ffn_norm.weight", c.dim),
      postFfnNorm: required(p + "post_ffw_norm.weight", c.dim, b.postNorms),
      wGate: gateUp ? rows(gateUp, 0, c.nFf) : matrix(g, p + "ffn_gate.weight", c.nFf, c.dim),
      wUp: gateUp ? rows(gateUp, c.nFf, c.nFf) : matrix(g, p + "ffn_up.weight", c.nFf, c.dim),
      wDown: matrix(g, p + "ffn_down.weight", c.dim, c.nFf),
    });
  }
  const tokenEmbd = matrix(g, "token_embd.weight", c.nVocab, c.dim);
  const ropeFactors = new Map<string, Float32Array>();
  for (const spec of c.layers) {
    const name = spec.rope?.factors;
    if (name && !ropeFactors.has(name)) ropeFactors.set(name, vector(g, name, c.ropeDim / 2));
  }
  return {
    tokenEmbd,
    layers,
    outputNorm: vector(g, "output_norm.weight", c.dim),
    output: g.tensors.has("output.weight") ? matrix(g, "output.weight", c.nVocab, c.dim) : tokenEmbd,
    ropeFactors,
  };
}
