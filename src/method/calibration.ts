// Attention-bias calibration. Under parallel attention every kept chunk brings its own attention
// sink (its first tokens) and its own recency peak (its last tokens). In chosen layers, keys of a
// chosen region that draw more than `threshold` of the question's attention are evicted from that
// layer's cache for the rest of the request, and the layer's attention is computed again.
// Regions are measured inside each chunk, from the row's local position (the reference code
// measures them over the concatenated cache instead).

import type { AttentionProbs } from "../engine/attention-probs.js";
import type { KvCache } from "../engine/kv-cache.js";
import type { Bias } from "./options.js";

export function inRegion(bias: Bias, pos: number, chunkLen: number, regionTokens: number): boolean {
  const sink = pos < regionTokens;
  const recent = pos >= chunkLen - regionTokens;
  switch (bias) {
    case "sink": return sink;
    case "recent": return recent && !sink;
    case "middle": return !sink && !recent;
    case "all": return true;
  }
}

/**
 * Evicts from layer l the chunk keys whose attention from the calibration rows exceeds the
 * threshold, inside the region. p: attention probabilities of the last calibration query rows.
 * chunkLen: length of each chunk by sequence id. Rows of `querySeq` itself are never evicted.
 * Returns the number of (KV head, row) cells evicted.
 */
export function calibrate(p: AttentionProbs, cache: KvCache, l: number, nHeads: number, querySeq: number, chunkLen: ReadonlyMap<number, number>, bias: Bias, threshold: number, regionTokens: number): number {
  const nKv = cache.nKvHeads;
  const group = nHeads / nKv;
  const nQ = p.probs.length / (nHeads * p.maxRows);
  const L = cache.layers[l];
  let evicted = 0;
  for (let h = 0; h < nKv; h++) {
    const drop = new Uint8Array(L.nRows[h]);
    for (let r = 0; r < L.nRows[h]; r++) {
      const cell = h * cache.cap + r;
      const seq = L.rowSeq[cell];
      const len = chunkLen.get(seq);
      if (seq === querySeq || len === undefined || !inRegion(bias, L.rowPos[cell], len, regionTokens)) continue;
      for (let g = 0; g < group && !drop[r]; g++) {
        let a = 0;
        for (let i = 0; i < nQ; i++) a += p.probs[(i * nHeads + h * group + g) * p.maxRows + r];
        if (a / nQ > threshold) drop[r] = 1;
      }
    }
    let r = 0;
    evicted += cache.keepWhere(l, h, () => !drop[r++]);
  }
  return evicted;
}
