// Attention probabilities for a few chosen query rows, per head, over one layer's KV cache.
// ParallelComp needs them for the question's last rows only (token eviction, bias calibration),
// so they are computed here for those rows alone: the T x T matrix is never materialised.

import type { AttentionArgs } from "../kernels/types.js";
import { F16_VALUES } from "../kernels/reference.js";
import type { KvCache } from "./kv-cache.js";
import type { Batch } from "./batch.js";

export interface AttentionProbs {
  probs: Float32Array; // [nChosen, nHeads, maxRows]; entry r is for cache row r of the head's KV head
  maxRows: number;
  nRows: Int32Array; // [nKvHeads] rows per KV head (entries past it are 0)
}

export type ProbsArgs = Omit<AttentionArgs, "out" | "T">;

/** Probabilities of query rows `rows` (indices into q / qSeq / qPos), same mask as the kernel. */
export function attentionProbs(a: ProbsArgs, rows: ArrayLike<number>): AttentionProbs {
  const { q, k, rowSeq, rowPos, nRows, cap, qSeq, qPos, visible, nSeqMax, nHeads, nKvHeads, headDim, scale } = a;
  const group = nHeads / nKvHeads;
  let maxRows = 0;
  for (let h = 0; h < nKvHeads; h++) maxRows = Math.max(maxRows, nRows[h]);
  const probs = new Float32Array(rows.length * nHeads * maxRows);
  const f16 = F16_VALUES(); // an F16 cache holds bits
  const s = new Float64Array(maxRows);
  for (let i = 0; i < rows.length; i++) {
    const t = rows[i];
    for (let hq = 0; hq < nHeads; hq++) {
      const h = Math.floor(hq / group);
      const qOff = (t * nHeads + hq) * headDim;
      let max = -Infinity;
      for (let r = 0; r < nRows[h]; r++) {
        const cell = h * cap + r;
        if (!visible[qSeq[t] * nSeqMax + rowSeq[cell]] || rowPos[cell] > qPos[t]) { s[r] = -Infinity; continue; }
        let dot = 0;
        if (k instanceof Uint16Array) for (let d = 0; d < headDim; d++) dot += q[qOff + d] * f16[k[cell * headDim + d]];
        else for (let d = 0; d < headDim; d++) dot += q[qOff + d] * k[cell * headDim + d];
        s[r] = dot * scale;
        max = Math.max(max, s[r]);
      }
      if (max === -Infinity) continue;
      let sum = 0;
      for (let r = 0; r < nRows[h]; r++) { s[r] = s[r] === -Infinity ? 0 : Math.exp(s[r] - max); sum += s[r]; }
      const out = (i * nHeads + hq) * maxRows;
      for (let r = 0; r < nRows[h]; r++) probs[out + r] = s[r] / sum;
    }
  }
  return { probs, maxRows, nRows: Int32Array.from(nRows) };
}

/** The same for layer `l` of a cache, with a forward-pass observer's arguments. */
export function layerAttentionProbs(c: { nHeads: number; nKvHeads: number; headDim: number }, l: number, q: Float32Array, b: Batch, cache: KvCache, rows: ArrayLike<number>): AttentionProbs {
  const L = cache.layers[l];
  return attentionProbs({
    q, k: L.k, v: L.v, rowSeq: L.rowSeq, rowPos: L.rowPos, nRows: L.nRows, cap: cache.cap,
    qSeq: b.seqId, qPos: b.pos, visible: cache.visible, nSeqMax: cache.nSeqMax,
    nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim),
  }, rows);
}
