// Token eviction inside a chunk (SnapKV, with the query as the observation window): per layer and
// per KV head, keep the `capacity` chunk rows that the query's last rows attend to most, after
// smoothing the scores with a max-pool. Kept rows keep their positions (their keys were rotated
// there); the rest leave the cache. Scores are per KV head, so the cache keeps its GQA layout.

import type { AttentionProbs } from "../engine/attention-probs.js";
import type { KvCache } from "../engine/kv-cache.js";
import type { EvictionOptions } from "./options.js";

/** Rows to keep: capacity may be a fraction of the chunk. */
export function capacityFor(o: EvictionOptions, chunkLen: number): number {
  return Math.min(chunkLen, o.capacity < 1 ? Math.ceil(o.capacity * chunkLen) : Math.floor(o.capacity));
}

/** max-pool with stride 1 and padding kernel/2 (out-of-range entries ignored): smooths clusters. */
export function maxPool(s: Float64Array, kernel: number): Float64Array {
  const half = Math.floor(kernel / 2);
  const out = new Float64Array(s.length);
  for (let j = 0; j < s.length; j++) {
    let m = -Infinity;
    for (let i = Math.max(0, j - half); i <= Math.min(s.length - 1, j + half); i++) m = Math.max(m, s[i]);
    out[j] = m;
  }
  return out;
}

/** Indices of the `k` largest values, ascending (ties to the earlier index). */
export function topIndices(s: Float64Array, k: number): number[] {
  const idx = Array.from(s.keys()).sort((a, b) => s[b] - s[a] || a - b);
  return idx.slice(0, k).sort((a, b) => a - b);
}

/**
 * Decides, from the window rows' attention probabilities of one layer, which positions of the
 * chunk in sequence `seq` (positions 0..chunkLen-1) each KV head keeps.
 * probs: from attentionProbs over the window rows; returns per KV head a flag per position.
 */
export function snapKvKeep(p: AttentionProbs, cache: KvCache, l: number, seq: number, chunkLen: number, nHeads: number, o: EvictionOptions): Uint8Array[] {
  const nKv = cache.nKvHeads;
  const group = nHeads / nKv;
  const L = cache.layers[l];
  const nWindow = p.probs.length / (nHeads * p.maxRows);
  const keep: Uint8Array[] = [];
  const cap = capacityFor(o, chunkLen);
  for (let h = 0; h < nKv; h++) {
    // s[pos] = attention of the window to the chunk's key at pos, summed over window rows,
    // then combined over the query heads that share this KV head.
    const perHead = Array.from({ length: group }, () => new Float64Array(chunkLen));
    for (let r = 0; r < L.nRows[h]; r++) {
      const cell = h * cache.cap + r;
      if (L.rowSeq[cell] !== seq || L.rowPos[cell] >= chunkLen) continue;
      const pos = L.rowPos[cell];
      for (let g = 0; g < group; g++) {
        const hq = h * group + g;
        let sum = 0;
        for (let w = 0; w < nWindow; w++) sum += p.probs[(w * nHeads + hq) * p.maxRows + r];
        perHead[g][pos] = sum;
      }
    }
    const pooled = perHead.map((s) => maxPool(s, o.kernel));
    const combined = new Float64Array(chunkLen);
    for (let pos = 0; pos < chunkLen; pos++) {
      let v = o.gqa === "max" ? -Infinity : 0;
      for (const s of pooled) v = o.gqa === "max" ? Math.max(v, s[pos]) : v + s[pos];
      combined[pos] = v;
    }
    const flags = new Uint8Array(chunkLen);
    for (const pos of topIndices(combined, cap)) flags[pos] = 1;
    keep.push(flags);
  }
  return keep;
}

/** Applies per-(layer, KV head) keep flags of one chunk to the cache; other sequences are untouched. */
export function applyKeep(cache: KvCache, l: number, seq: number, keep: Uint8Array[]): void {
  for (let h = 0; h < cache.nKvHeads; h++) {
    const flags = keep[h];
    cache.keepWhere(l, h, (s, pos) => s !== seq || pos >= flags.length || flags[pos] === 1);
  }
}
