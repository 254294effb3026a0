// Token sampling: greedy when temperature is 0, else top-k -> temperature softmax -> top-p,
// drawn with a seeded PRNG so runs are reproducible.

import { UsageError } from "../errors.js";
import { rng } from "../util/rng.js";

export interface SamplerOptions {
  temperature?: number; // 0 = greedy (default)
  topK?: number; // 0 = whole vocabulary; default 40
  topP?: number; // 1 = off; default 0.95
  seed?: number;
}


export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

export function validateSampler(o: SamplerOptions): void {
  const bad = (what: string) => { throw new UsageError(`invalid sampling option: ${what}`); };
  if (o.temperature !== undefined && !(o.temperature >= 0 && Number.isFinite(o.temperature))) bad(`temperature ${o.temperature} (expected >= 0)`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) bad(`topK ${o.topK} (expected an integer >= 0)`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) bad(`topP ${o.topP} (expected 0 < topP <= 1)`);
  if (o.seed !== undefined && !Number.isInteger(o.seed)) bad(`seed ${o.seed} (expected an integer)`);
}

export class Sampler {
  private readonly random: () => number;
  private readonly temperature: number;
  private readonly topK: number;
  private readonly topP: number;

  constructor(o: SamplerOptions = {}) {
    validateSampler(o);
    this.temperature = o.temperature ?? 0;
    this.topK = o.topK ?? 40;
    this.topP = o.topP ?? 0.95;
    this.random = rng(o.seed ?? 0x5eed);
  }

  /** Picks the next token from one row of logits [nVocab]. */
  sample(logits: Float32Array): number {
    if (this.temperature === 0) return argmax(logits);
    const n = logits.length;
    const k = this.topK > 0 ? Math.min(this.topK, n) : n;
    // Candidate ids sorted by logit, best first (a full sort only when top-k is off).
    const ids = Array.from({ length: n }, (_, i) => i);
    const byLogit = (a: number, b: number) => logits[b] - logits[a] || a - b;
    const cand = k < n ? partialTop(ids, logits, k).sort(byLogit) : ids.sort(byLogit);
    const max = logits[cand[0]];
    const p = cand.map((id) => Math.exp((logits[id] - max) / this.temperature));
    const total = p.reduce((a, b) => a + b, 0);
    let cum = 0;
    let cut = p.length;
    for (let i = 0; i < p.length; i++) {
      cum += p[i] / total;
      if (cum >= this.topP) { cut = i + 1; break; }
    }
    const mass = p.slice(0, cut).reduce((a, b) => a + b, 0);
    let r = this.random() * mass;
    for (let i = 0; i < cut; i++) {
      r -= p[i];
      if (r <= 0) return cand[i];
    }
    return cand[cut - 1];
  }
}

/** The k ids with the largest logits (unordered), in O(n log k) with a small min-heap. */
function partialTop(ids: number[], x: Float32Array, k: number): number[] {
  const heap: number[] = [];
  const less = (a: number, b: number) => x[a] < x[b] || (x[a] === x[b] && a > b);
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < heap.length && less(heap[l], heap[m])) m = l;
      if (r < heap.length && less(heap[r], heap[m])) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  };
  for (const id of ids) {
    if (heap.length < k) {
      heap.push(id);
      for (let i = heap.length - 1; i > 0; ) {
        const p = (i - 1) >> 1;
        if (!less(heap[i], heap[p])) break;
        [heap[i], heap[p]] = [heap[p], heap[i]];
        i = p;
      }
    } else if (less(heap[0], id)) {
      heap[0] = id;
      down(0);
    }
  }
  return heap;
}
