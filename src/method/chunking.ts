// Token-boundary chunking into chunks of nearly equal length. The reference code splits
// characters, which cuts words; we split the token sequence, each cut at the strongest boundary
// near its target: a line end, else a sentence end, else a clause end (, ;), else a word end,
// within 15% of the budget. With byte-level vocabularies a sentence is 20-60 tokens, so a reach
// of a few tokens would still cut numbers in half (a 5% reach did: "The pass key is 55|658.").
// When that reach holds no clause end or better, the search goes on up to 35% away for one: a
// JSON object's pairs (`"key": "value", `) have commas only between them, and a UUID pair is 85
// byte tokens, 29% of the bundled model's kv_retrieval chunk. Cut at a word end instead, the key
// sat in one chunk and its value in the next in 8 of 50 samples at 16K tokens (the chunk that
// predicts the question best then lacks the answer).
//
// Equal lengths: a chunk's score is the question's mean NLL given it, and that depends on the
// chunk's length. Filling chunks to the budget one after another left the last one whatever
// remained (down to 8% of the median chunk in number_string samples at 128K: `node
// dist/tools/experiments.js lengthbias`). The chunks are still as many as that filling gives, but
// the filling's last chunks are cut again into equal shares of their tokens, each cut at the best
// boundary on either side of its share: all of them where boundaries are close together (the
// InfiniteBench formats), fewer where they are far apart (prose with long sentences), since a
// share cannot grow past the budget to make up for cuts that moved back and the last cuts would
// land on weaker boundaries than the filling's. (Counting more chunks instead, to leave the cuts
// room, took 8-28% more chunks of the needle task's licence prose at 128K and 1M tokens and
// budgets of 234 and 310: `node dist/tools/experiments.js chunks needle 131072 234`.)

import { UsageError } from "../errors.js";

/** How good a cut after this token is: 4 line end, 3 sentence end, 2 clause end, 1 word end, 0 none. */
export type BoundaryOf = (token: number) => 0 | 1 | 2 | 3 | 4;

export interface ChunkSpan {
  start: number; // index into the context tokens
  end: number; // exclusive
}

/**
 * Chunks of at most `chunkTokens` tokens covering `context` in order. Without `boundary`:
 * ceil(N / chunkTokens) chunks whose lengths differ by at most one token. With it: as many as
 * filling each to the budget gives, that cut moved back to the strongest boundary within `slack`
 * of the budget (else a clause end or better within `farSlack`); then the longest tail of them
 * that equal shares cut at boundaries no weaker than the filling's is cut again so: each cut at the
 * strongest boundary within `slack` on either side of an equal share of the tokens left, never
 * making a chunk longer than the budget or leaving the chunks after it more than theirs.
 */
export function chunkContext(context: ArrayLike<number>, chunkTokens: number, boundary?: BoundaryOf, slack = 0.15, farSlack = 0.35): ChunkSpan[] {
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1) throw new UsageError(`chunk size must be a positive integer, got ${chunkTokens}`);
  const N = context.length;
  if (!boundary || N === 0) return equalShares(0, N, Math.ceil(N / chunkTokens), chunkTokens);
  const search: Search = { context, boundary, reach: Math.floor(chunkTokens * slack), farReach: Math.floor(chunkTokens * Math.max(slack, farSlack)) };
  const filled = filledChunks(search, chunkTokens);
  // The longest tail found by halving (a tail of one chunk is the filled one itself).
  const n = filled.length;
  const tail = (m: number) => {
    const spans = equalShares(filled[n - m].start, N, m, chunkTokens, search);
    return noWeaker(cutKinds(search, spans), cutKinds(search, filled.slice(n - m))) ? spans : null;
  };
  let spans = tail(n);
  if (spans === null) {
    let ok = 1;
    let fail = n;
    spans = filled.slice(n - 1);
    while (fail - ok > 1) {
      const m = (ok + fail) >> 1;
      const s = tail(m);
      if (s) { ok = m; spans = s; } else fail = m;
    }
  }
  return [...filled.slice(0, n - spans.length), ...spans];
}

/** The boundary kinds of the cuts between `spans`, weakest first. */
function cutKinds(search: Search, spans: ChunkSpan[]): number[] {
  return spans.slice(0, -1).map((s) => kindOf(search, s.end)).sort((a, b) => a - b);
}

/** Whether the k-th weakest cut of `a` is at least as strong as the k-th weakest of `b`, for every k. */
function noWeaker(a: number[], b: number[]): boolean {
  return a.every((kind, i) => kind >= b[i]);
}

/** Where cuts may move: the boundary kinds of the context's tokens, and how far a cut may go for one. */
interface Search {
  context: ArrayLike<number>;
  boundary: BoundaryOf;
  reach: number; // the strongest boundary within this distance
  farReach: number; // a clause end or better within this distance, when `reach` has none
}

/**
 * [from, to) in `n` chunks, cut k at the best boundary around an equal share of the tokens left
 * (exactly there without `search`), never making a chunk longer than the budget or leaving the
 * chunks after it more than theirs.
 */
function equalShares(from: number, to: number, n: number, chunkTokens: number, search?: Search): ChunkSpan[] {
  const spans: ChunkSpan[] = [];
  let start = from;
  for (let k = 1; k <= n; k++) {
    const after = n - k; // chunks still to come
    // At least a token and at most the budget here; at most `after` budgets and at least a
    // token each after.
    const lo = Math.max(start + 1, to - after * chunkTokens);
    const hi = Math.min(start + chunkTokens, to - after);
    const share = Math.min(hi, start + Math.round((to - start) / (after + 1)));
    const target = Math.max(lo, share);
    const end = search && after > 0 ? bestCut(search, target, lo, hi) : target;
    spans.push({ start, end });
    start = end;
  }
  return spans;
}

/** Chunks filled to the budget one after another, each cut moved back to the best boundary. */
function filledChunks(search: Search, chunkTokens: number): ChunkSpan[] {
  const N = search.context.length;
  const spans: ChunkSpan[] = [];
  for (let start = 0; start < N; ) {
    const end = start + chunkTokens >= N ? N : bestCut(search, start + chunkTokens, start + 1, start + chunkTokens);
    spans.push({ start, end });
    start = end;
  }
  return spans;
}

const kindOf = (s: Search, cut: number) => s.boundary(s.context[cut - 1]);

/**
 * The cut in [lo, hi] (a chunk ends before token `cut`) after the strongest boundary within
 * `reach` of `target`, the nearest among equals, the earlier between two as near; past the
 * reach, out to `farReach`, only a clause end or better, and only while none has been found.
 * No boundary there: the target itself.
 */
function bestCut(s: Search, target: number, lo: number, hi: number): number {
  let best = target;
  let bestKind = 0;
  const offer = (cut: number, near: boolean) => {
    if (cut < lo || cut > hi) return;
    const kind = kindOf(s, cut);
    if (kind > bestKind && (near || kind >= 2)) { best = cut; bestKind = kind; }
  };
  for (let d = 0; d < s.farReach && bestKind < 4; d++) {
    if (d >= s.reach && bestKind >= 2) break;
    if (target - d < lo && target + d > hi) break;
    offer(target - d, d < s.reach);
    if (d > 0) offer(target + d, d < s.reach);
  }
  return best;
}
