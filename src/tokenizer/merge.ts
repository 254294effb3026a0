// The merge loop shared by BPE and SentencePiece. Both repeatedly join the best adjacent pair of
// symbols until no pair can join; they differ only in what "best" means (lowest merge rank for
// BPE, highest token score for SentencePiece), so a pair table stores a priority per pair (higher
// is better) and the id of the joined token. Ties go to the leftmost pair, as in llama.cpp.
//
// Symbols are token ids (or ids for characters that are not tokens, which never join), so a
// step costs one hash lookup on two integers instead of string concatenation.

export class PairTable {
  private keysL: Int32Array;
  private keysR: Int32Array;
  private results: Int32Array;
  private prios: Float64Array;
  private mask: number;
  size = 0;

  constructor(expected: number) {
    let cap = 16;
    while (cap < expected * 2) cap *= 2;
    this.keysL = new Int32Array(cap).fill(-1);
    this.keysR = new Int32Array(cap);
    this.results = new Int32Array(cap);
    this.prios = new Float64Array(cap);
    this.mask = cap - 1;
  }

  private slot(l: number, r: number): number {
    let h = Math.imul(l, 0x9e3779b1) ^ Math.imul(r + 0x7f4a7c15, 0x85ebca6b);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 12;
    let i = h & this.mask;
    const kl = this.keysL;
    const kr = this.keysR;
    while (kl[i] !== -1 && (kl[i] !== l || kr[i] !== r)) i = (i + 1) & this.mask;
    return i;
  }

  /** Adds a pair unless it is already there (the first entry wins, as the lowest rank should). */
  add(l: number, r: number, result: number, prio: number): boolean {
    if ((this.size + 1) * 2 > this.keysL.length) this.grow();
    const i = this.slot(l, r);
    if (this.keysL[i] !== -1) return false;
    this.keysL[i] = l;
    this.keysR[i] = r;
    this.results[i] = result;
    this.prios[i] = prio;
    this.size++;
    return true;
  }

  /** Slot of the pair, or -1. Read the slot with result() and prio(). */
  find(l: number, r: number): number {
    if (l < 0 || r < 0) return -1;
    const i = this.slot(l, r);
    return this.keysL[i] === -1 ? -1 : i;
  }

  result(slot: number): number {
    return this.results[slot];
  }

  prio(slot: number): number {
    return this.prios[slot];
  }

  private grow(): void {
    const { keysL, keysR, results, prios } = this;
    const cap = keysL.length * 2;
    this.keysL = new Int32Array(cap).fill(-1);
    this.keysR = new Int32Array(cap);
    this.results = new Int32Array(cap);
    this.prios = new Float64Array(cap);
    this.mask = cap - 1;
    this.size = 0;
    for (let i = 0; i < keysL.length; i++) if (keysL[i] !== -1) this.add(keysL[i], keysR[i], results[i], prios[i]);
  }
}

const SMALL = 48; // below this, an O(n²) scan beats the heap's bookkeeping

// Scratch buffers, grown on demand and reused between calls (the encoder is synchronous).
let pr = new Float64Array(256);
let res = new Int32Array(256);

/**
 * Merges ids[0..n) in place and returns the new length. Negative ids never merge.
 */
export function mergeSymbols(ids: Int32Array, n: number, table: PairTable): number {
  if (n < 2) return n;
  return n <= SMALL ? mergeSmall(ids, n, table) : mergeHeap(ids, n, table);
}

function pairAt(ids: Int32Array, i: number, table: PairTable): void {
  const s = table.find(ids[i], ids[i + 1]);
  if (s < 0) {
    pr[i] = -Infinity;
  } else {
    pr[i] = table.prio(s);
    res[i] = table.result(s);
  }
}

function mergeSmall(ids: Int32Array, n: number, table: PairTable): number {
  for (let i = 0; i < n - 1; i++) pairAt(ids, i, table);
  for (;;) {
    let best = -1;
    let bestPrio = -Infinity;
    for (let i = 0; i < n - 1; i++) {
      if (pr[i] > bestPrio) {
        bestPrio = pr[i];
        best = i;
      }
    }
    if (best < 0) return n;
    ids[best] = res[best];
    // drop symbol best+1 and the pair that started at it
    for (let j = best + 1; j < n - 1; j++) {
      ids[j] = ids[j + 1];
      pr[j] = pr[j + 1];
      res[j] = res[j + 1];
    }
    n--;
    if (best > 0) pairAt(ids, best - 1, table);
    if (best < n - 1) pairAt(ids, best, table);
  }
}

// Heap version: symbols form a linked list; queued pairs go stale when either side changes.
let next = new Int32Array(256);
let prev = new Int32Array(256);
let eL = new Int32Array(256); // left symbol index
let eR = new Int32Array(256); // right symbol index
let eLid = new Int32Array(256); // ids when queued, to spot stale entries
let eRid = new Int32Array(256);
let eRes = new Int32Array(256);
let ePrio = new Float64Array(256);
let heap = new Int32Array(256);

function ensure(n: number): void {
  if (next.length < n) {
    next = new Int32Array(n * 2);
    prev = new Int32Array(n * 2);
  }
  // every merge queues at most two pairs, so 3n entries always suffice
  if (eL.length < 3 * n) {
    const cap = 6 * n;
    eL = new Int32Array(cap);
    eR = new Int32Array(cap);
    eLid = new Int32Array(cap);
    eRid = new Int32Array(cap);
    eRes = new Int32Array(cap);
    ePrio = new Float64Array(cap);
    heap = new Int32Array(cap);
  }
}

function better(a: number, b: number): boolean {
  return ePrio[a] > ePrio[b] || (ePrio[a] === ePrio[b] && eL[a] < eL[b]);
}

function mergeHeap(ids: Int32Array, n: number, table: PairTable): number {
  ensure(n);
  let nEntries = 0;
  let nHeap = 0;

  const push = (l: number, r: number) => {
    if (l < 0 || r < 0) return;
    const s = table.find(ids[l], ids[r]);
    if (s < 0) return;
    const e = nEntries++;
    eL[e] = l;
    eR[e] = r;
    eLid[e] = ids[l];
    eRid[e] = ids[r];
    eRes[e] = table.result(s);
    ePrio[e] = table.prio(s);
    let i = nHeap++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!better(e, heap[p])) break;
      heap[i] = heap[p];
      i = p;
    }
    heap[i] = e;
  };
  const pop = (): number => {
    const top = heap[0];
    const last = heap[--nHeap];
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= nHeap) break;
      const r = l + 1;
      const c = r < nHeap && better(heap[r], heap[l]) ? r : l;
      if (!better(heap[c], last)) break;
      heap[i] = heap[c];
      i = c;
    }
    heap[i] = last;
    return top;
  };

  for (let i = 0; i < n; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  for (let i = 0; i + 1 < n; i++) push(i, i + 1);
  while (nHeap > 0) {
    const e = pop();
    const l = eL[e];
    const r = eR[e];
    if (ids[l] !== eLid[e] || ids[r] !== eRid[e] || next[l] !== r) continue; // stale
    ids[l] = eRes[e];
    ids[r] = -2; // dead
    next[l] = next[r];
    if (next[r] >= 0) prev[next[r]] = l;
    push(prev[l], l);
    push(l, next[l]);
  }
  let m = 0;
  for (let i = 0; i >= 0; i = next[i]) ids[m++] = ids[i];
  return m;
}
