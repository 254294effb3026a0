// The transformer forward pass over a batch, for every family (src/model/families/). Reads top to
// bottom like the paper:
//   h   = x + attn(norm(x), cache)       attention is the only step that mixes tokens
//   out = h + ffn(norm(h))               gated: down(act(gate(x)) * up(x))
// A family's description (config.block, config.layers) adds what its block has: per-head Q/K
// norms, norms after attention and feed-forward, GELU, scales and soft caps, the RoPE of each
// layer (or none) and a sliding window. Everything method-specific (local positions, independent
// chunks, a question that sees several chunks, evicted rows) arrives through the batch (pos,
// seqId) and the KV cache (rows + visibility).
// Numerics follow llama.cpp's CPU backend where it matters for logit parity (f32 RoPE angles built
// by repeated multiplication, activations rounded to the weight's dot type inside matmul, scales
// applied where llama.cpp applies them: a query scale multiplies Q, not the scores).

import type { Batch } from "../engine/batch.js";
import { sliceBatch } from "../engine/batch.js";
import type { KvCache } from "../engine/kv-cache.js";
import type { Kernels } from "../kernels/types.js";
import { ropeReference } from "../kernels/reference.js";
import { dequantizeRow } from "../tensor/quant.js";
import { rowBytes } from "../gguf/types.js";
import type { ModelConfig } from "./config.js";
import type { RopePlan } from "./family.js";
import type { Matrix, ModelWeights } from "./weights.js";

/**
 * Called after each layer's attention with that layer's query rows [T, nHeads, headDim] (RoPE
 * applied). It may evict rows of that layer from the cache (bias calibration) and return true to
 * have the layer's attention computed again without them; later layers are unaffected.
 */
export type AttentionObserver = (layer: number, q: Float32Array, batch: Batch, cache: KvCache) => boolean | void;

export interface ForwardOptions {
  observer?: AttentionObserver;
  /** Run the whole batch as one step (observers that need all of a sequence's rows at once). */
  oneStep?: boolean;
  /** RoPE base for this pass (dynamic NTK scaling), in every layer with RoPE; default the model's. */
  ropeBase?: number;
}

/** Activation buffers for up to `stepTokens` tokens per step, allocated once and reused. */
export class Workspace {
  x: Float32Array; // [B, dim] residual stream
  xn: Float32Array; // [B, dim] normalised input of a block
  q: Float32Array; // [B, nHeads * headDim]
  k: Float32Array; // [B, nKvHeads * headDim]
  v: Float32Array; // [B, nKvHeads * headDim]
  att: Float32Array; // [B, nHeads * headDim]
  gate: Float32Array; // [B, nFf]
  up: Float32Array; // [B, nFf]
  tmp: Float32Array; // [B, dim]
  /** Angles of each distinct RoPE plan of the model: cos, sin [B, ropeDim / 2]. */
  rope: Map<RopePlan, { cos: Float32Array; sin: Float32Array }>;

  constructor(readonly c: ModelConfig, readonly stepTokens: number) {
    const B = stepTokens;
    this.x = new Float32Array(B * c.dim);
    this.xn = new Float32Array(B * c.dim);
    this.q = new Float32Array(B * c.nHeads * c.headDim);
    this.k = new Float32Array(B * c.nKvHeads * c.headDim);
    this.v = new Float32Array(B * c.nKvHeads * c.headDim);
    this.att = new Float32Array(B * c.nHeads * c.headDim);
    this.gate = new Float32Array(B * c.nFf);
    this.up = new Float32Array(B * c.nFf);
    this.tmp = new Float32Array(B * c.dim);
    this.rope = new Map();
    for (const { rope } of c.layers) {
      if (rope && !this.rope.has(rope)) this.rope.set(rope, { cos: new Float32Array((B * c.ropeDim) / 2), sin: new Float32Array((B * c.ropeDim) / 2) });
    }
  }
}

// ---- small ops: the RoPE tables, biases, scales and caps stay in TypeScript; RMS norm, the gated
// activations, RoPE, the residual add and the cache append are kernels (src/kernels): in
// TypeScript they took half of a prefill (SwiGLU's exp a third) ----

/**
 * RoPE angles per token and frequency, as ggml builds them: theta *= base^(-2/ropeDim) in f32,
 * divided by the plan's factor, scaled linearly; cos and sin times the plan's mscale.
 */
export function ropeTables(c: ModelConfig, plan: RopePlan, factors: Float32Array | null, pos: Int32Array, T: number, cos: Float32Array, sin: Float32Array): void {
  const half = c.ropeDim / 2;
  const thetaScale = Math.fround(Math.pow(plan.base, Math.fround(-2 / c.ropeDim)));
  const mscale = Math.fround(plan.mscale);
  for (let t = 0; t < T; t++) {
    let theta = Math.fround(pos[t]);
    for (let i = 0; i < half; i++) {
      const extrap = factors ? Math.fround(theta / factors[i]) : theta;
      const angle = Math.fround(plan.freqScale * extrap);
      cos[t * half + i] = mscale === 1 ? Math.cos(angle) : Math.fround(Math.fround(Math.cos(angle)) * mscale);
      sin[t * half + i] = mscale === 1 ? Math.sin(angle) : Math.fround(Math.fround(Math.sin(angle)) * mscale);
      theta = Math.fround(theta * thetaScale);
    }
  }
}

/** Rotates the first ropeDim dims of each of nH heads of x: [T, nH, headDim]. */
export function applyRope(c: ModelConfig, x: Float32Array, T: number, nH: number, cos: Float32Array, sin: Float32Array): void {
  ropeReference(x, T, nH, c.headDim, c.ropeDim, c.ropeNeox, cos, sin);
}

/**
 * Moves already-rotated keys of a layer with RoPE plan `plan` by `delta` positions: RoPE angles
 * add, so rotating by delta * freq re-positions a key (StreamingLLM's rolling cache needs it); a
 * pure rotation (no mscale: that was applied once). k: [n, headDim] rows.
 */
export function shiftKeys(c: ModelConfig, plan: RopePlan, factors: Float32Array | null, k: Float32Array, n: number, delta: number): void {
  const half = c.ropeDim / 2;
  const cos = new Float32Array(half);
  const sin = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    const freq = (plan.freqScale * Math.pow(plan.base, (-2 * i) / c.ropeDim)) / (factors ? factors[i] : 1);
    cos[i] = Math.cos(delta * freq);
    sin[i] = Math.sin(delta * freq);
  }
  for (let r = 0; r < n; r++) applyRope(c, k.subarray(r * c.headDim, (r + 1) * c.headDim), 1, 1, cos, sin);
}

function addBias(x: Float32Array, b: Float32Array | null, T: number, n: number) {
  if (!b) return;
  for (let t = 0; t < T; t++) for (let i = 0; i < n; i++) x[t * n + i] += b[i];
}

export function embed(w: Matrix, tokens: Int32Array, T: number, out: Float32Array): void {
  const bytes = rowBytes(w.type, w.nIn);
  for (let t = 0; t < T; t++) {
    const id = tokens[t];
    if (!Number.isInteger(id) || id < 0 || id >= w.nOut) throw new Error(`token id ${id} is outside the vocabulary [0, ${w.nOut})`);
    dequantizeRow(w.type, w.data, id * bytes, w.nIn, out, t * w.nIn);
  }
}

/** x[i] *= s for i < n (f32, as ggml_scale). */
function scale(x: Float32Array, s: number, n: number) {
  if (s === 1) return;
  const f = Math.fround(s);
  for (let i = 0; i < n; i++) x[i] *= f;
}

/** x[i] = cap * tanh(x[i] / cap), as ggml: scale by the f32 reciprocal, tanh, scale back. */
export function softcap(x: Float32Array, cap: number, n: number) {
  const inv = Math.fround(1 / cap);
  const c = Math.fround(cap);
  for (let i = 0; i < n; i++) x[i] = Math.fround(Math.tanh(Math.fround(x[i] * inv))) * c;
}

/**
 * Runs the batch through the model, appending its K/V rows to the cache.
 * Returns logits [nWanted, nVocab] for the entries with wantLogits, in batch order.
 * Splits the batch into steps of at most ws.stepTokens tokens (a step's rows are visible to later steps).
 */
export function forward(
  c: ModelConfig,
  W: ModelWeights,
  K: Kernels,
  ws: Workspace,
  cache: KvCache,
  batch: Batch,
  opts: ForwardOptions = {},
): Float32Array {
  let nWanted = 0;
  for (let i = 0; i < batch.n; i++) nWanted += batch.wantLogits[i];
  const logits = new Float32Array(nWanted * c.nVocab);
  let done = 0;
  for (let from = 0; from < batch.n; from += ws.stepTokens) {
    const step = sliceBatch(batch, from, Math.min(batch.n, from + ws.stepTokens));
    done += forwardStep(c, W, K, ws, cache, step, logits.subarray(done * c.nVocab), opts);
  }
  return logits;
}

function forwardStep(c: ModelConfig, W: ModelWeights, K: Kernels, ws: Workspace, cache: KvCache, b: Batch, logits: Float32Array, opts: ForwardOptions): number {
  const T = b.n;
  const { dim, nHeads, nKvHeads, headDim, nFf, block } = c;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const mm = (w: Matrix, x: Float32Array, y: Float32Array, rows: number) =>
    K.matmul({ w: w.data, type: w.type, nOut: w.nOut, nIn: w.nIn, x, T: rows, y });
  // A block's output joins the residual stream (Gemma: after its own norm; Granite: scaled).
  const residual = (out: Float32Array, postNorm: Float32Array | null, rows: number) => {
    if (postNorm) K.rmsnorm(out, out, postNorm, rows, dim, c.rmsEps);
    scale(out, block.residualScale, rows * dim);
    K.add(ws.x, out, rows * dim);
  };

  embed(W.tokenEmbd, b.tokens, T, ws.x);
  scale(ws.x, block.embedScale, T * dim);
  for (const [plan, { cos, sin }] of ws.rope) {
    const p = opts.ropeBase ? { ...plan, base: opts.ropeBase } : plan;
    ropeTables(c, p, plan.factors ? W.ropeFactors.get(plan.factors)! : null, b.pos, T, cos, sin);
  }
  cache.reserve(T);

  // Rows whose logits are wanted; after the last attention only they need to go on.
  const keep: number[] = [];
  for (let t = 0; t < T; t++) if (b.wantLogits[t]) keep.push(t);

  let rows = T;
  for (let l = 0; l < c.nLayers; l++) {
    const L = W.layers[l];
    const spec = c.layers[l];
    // --- attention ---
    K.rmsnorm(ws.xn, ws.x, L.attnNorm, T, dim, c.rmsEps);
    mm(L.wq, ws.xn, ws.q, T);
    mm(L.wk, ws.xn, ws.k, T);
    mm(L.wv, ws.xn, ws.v, T);
    addBias(ws.q, L.bq, T, qDim);
    addBias(ws.k, L.bk, T, kvDim);
    addBias(ws.v, L.bv, T, kvDim);
    if (L.qNorm && L.kNorm) {
      K.rmsnorm(ws.q, ws.q, L.qNorm, T * nHeads, headDim, c.rmsEps);
      K.rmsnorm(ws.k, ws.k, L.kNorm, T * nKvHeads, headDim, c.rmsEps);
    }
    if (spec.rope) {
      const { cos, sin } = ws.rope.get(spec.rope)!;
      K.rope(ws.q, T, nHeads, headDim, c.ropeDim, c.ropeNeox, cos, sin);
      K.rope(ws.k, T, nKvHeads, headDim, c.ropeDim, c.ropeNeox, cos, sin);
    }
    scale(ws.q, block.queryScale, T * qDim);
    cache.append(l, ws.k, ws.v, b.seqId, b.pos, T);
    const attend = () => {
      const kv = cache.layers[l];
      K.attention({
        q: ws.q, k: kv.k, v: kv.v, rowSeq: kv.rowSeq, rowPos: kv.rowPos, nRows: kv.nRows, cap: cache.cap,
        qSeq: b.seqId, qPos: b.pos, visible: cache.visible, nSeqMax: cache.nSeqMax,
        T, nHeads, nKvHeads, headDim, scale: block.kqScale, softcap: block.attnSoftcap, window: spec.window, out: ws.att,
      });
    };
    attend();
    if (opts.observer?.(l, ws.q, b, cache)) attend();
    mm(L.wo, ws.att, ws.tmp, T);

    if (l === c.nLayers - 1 && keep.length < T) {
      // Only rows that want logits continue (llama.cpp does the same with its output ids).
      keep.forEach((t, i) => {
        ws.x.copyWithin(i * dim, t * dim, (t + 1) * dim);
        ws.tmp.copyWithin(i * dim, t * dim, (t + 1) * dim);
      });
      rows = keep.length;
      if (rows === 0) return 0;
    }
    residual(ws.tmp, L.postAttnNorm, rows);

    // --- feed-forward ---
    K.rmsnorm(ws.xn, ws.x, L.ffnNorm, rows, dim, c.rmsEps);
    mm(L.wGate, ws.xn, ws.gate, rows);
    mm(L.wUp, ws.xn, ws.up, rows);
    if (block.activation === "gelu") K.geglu(ws.gate, ws.up, rows * nFf);
    else K.swiglu(ws.gate, ws.up, rows * nFf);
    mm(L.wDown, ws.gate, ws.tmp, rows);
    residual(ws.tmp, L.postFfnNorm, rows);
  }
  if (keep.length === 0) return 0;
  K.rmsnorm(ws.xn, ws.x, W.outputNorm, rows, dim, c.rmsEps);
  mm(W.output, ws.xn, logits, rows);
  scale(logits, block.logitScale, rows * c.nVocab);
  if (block.finalSoftcap) softcap(logits, block.finalSoftcap, rows * c.nVocab);
  return rows;
}
