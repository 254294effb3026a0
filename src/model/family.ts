// What distinguishes one model family from another, as data the forward step reads: which norms
// a block has, its activation, the RoPE of each layer, its scales and caps, and how fused tensors
// split at load. Each family (src/model/families/) is a short file that fills this in from its
// GGUF keys; forward.ts never asks which family it runs.

/** RoPE of one layer. Layers that share a plan share one table of angles per step. */
export interface RopePlan {
  base: number;
  freqScale: number; // 1 / linear scaling factor
  /** Tensor of per-frequency divisors [ropeDim / 2] (Llama 3's rope_freqs, Phi-3's long/short factors). */
  factors: string | null;
  /** Multiplies cos and sin (the "attention factor" of Phi-3's long RoPE); 1 elsewhere. */
  mscale: number;
}

export interface LayerSpec {
  rope: RopePlan | null; // null: no position encoding in this layer (SmolLM3's every 4th)
  /** Sliding window: a query at p sees keys at p - window < pos <= p; 0 = every earlier key. */
  window: number;
}

/** The block, the same for every layer of a model. Scales of 1 and caps of 0 mean "none". */
export interface BlockSpec {
  /** One attn_qkv tensor whose rows are Q, then K, then V (Phi-3), split at load. */
  fusedQkv: boolean;
  /** One ffn_up tensor of 2 * nFf rows, gate first (Phi-3), split at load. */
  fusedGateUp: boolean;
  /** RMS norm of each head's query and key before RoPE (Qwen3, Gemma 3). */
  qkNorm: boolean;
  /** RMS norm of the attention and feed-forward outputs before each residual add (Gemma 2/3). */
  postNorms: boolean;
  /** Gated feed-forward: down(act(gate(x)) * up(x)). */
  activation: "silu" | "gelu";
  embedScale: number; // multiplies the token embeddings (Gemma: sqrt(dim); Granite)
  residualScale: number; // multiplies each block output before the residual add (Granite)
  queryScale: number; // multiplies Q before attention (Gemma, Phi-3 scale Q, not the scores)
  kqScale: number; // multiplies q . k inside attention (usually 1 / sqrt(headDim))
  attnSoftcap: number; // scores become cap * tanh(score / cap) (Gemma 2)
  logitScale: number; // multiplies the logits (Granite: 1 / logit_scale)
  finalSoftcap: number; // logits become cap * tanh(logit / cap) (Gemma 2)
}

/** Reads `<arch>.<key>` values; the common hyper-parameters are already read and checked. */
export interface FamilyInput {
  arch: string;
  nLayers: number;
  dim: number;
  nHeads: number;
  headDim: number;
  nCtxTrain: number;
  /** The context the model is run with (chooses Phi-3's long or short RoPE factors). */
  ctxSize: number;
  /** The rope of an ordinary layer: base, linear scaling, rope_freqs or long/short factors. */
  rope: RopePlan;
  number(key: string, fallback?: number): number;
  has(key: string): boolean;
  hasTensor(name: string): boolean;
}

export interface FamilyDescription {
  ropeNeox: boolean;
  block?: Partial<BlockSpec>;
  /** Per layer; default: the ordinary rope, no window. */
  layer?: (l: number) => LayerSpec;
}

export interface Family {
  arch: string;
  describe(f: FamilyInput): FamilyDescription;
}

export function defaultBlock(headDim: number): BlockSpec {
  return {
    fusedQkv: false, fusedGateUp: false, qkNorm: false, postNorms: false, activation: "silu",
    embedScale: 1, residualScale: 1, queryScale: 1, kqScale: 1 / Math.sqrt(headDim),
    attnSoftcap: 0, logitScale: 1, finalSoftcap: 0,
  };
}

/**
 * llama.cpp's sliding-window layout (llama-hparams.cpp, set_swa_pattern): with a period n, layer
 * l slides iff l % n < n - 1, so the last layer of each period is global (n = 2: even layers
 * slide; n = 6: five sliding, then one global).
 */
export function slides(l: number, period: number): boolean {
  return period === 0 || l % period < period - 1;
}
