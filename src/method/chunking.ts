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
// dist/tools/experiments.js lengthbias`). So the count is what that filling needs, and each cut
// aims at an equal share of the tokens left, searching both sides. Where strong boundaries are
// far apart (prose with long sentences) the cuts of that many chunks drift back, since a chunk
// may not grow past the budget, until the last ones would have to be cut at weaker boundaries;
// then one more chunk is taken, as few more as needed.

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
 * filling each to the budget (cut back to its best boundary) needs, or the fewest above that
 * whose cuts all keep their boundary; each cut at the best boundary within `slack` of the budget
 * around an equal share of the tokens left (else a clause end or better within `farSlack`), never
 * making a chunk longer than the budget or leaving the later chunks more than theirs.
 */
export function chunkContext(context: ArrayLike<number>, chunkTokens: number, boundary?: BoundaryOf, slack = 0.15, farSlack = 0.35): ChunkSpan[] {
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1) throw new UsageError(`chunk size must be a positive integer, got ${chunkTokens}`);
  const N = context.length;
  if (!boundary) return equalShares(N, Math.ceil(N / chunkTokens), chunkTokens)!;
  const search: Search = { context, boundary, reach: Math.floor(chunkTokens * slack), farReach: Math.floor(chunkTokens * Math.max(slack, farSlack)) };
  // The fewest chunks from the filled count up whose cuts keep their boundaries: doubling the
  // step until a count works, then halving back (N chunks of one token always work).
  let fail = filledCount(search, chunkTokens) - 1;
  let spans: ChunkSpan[] | null = null;
  let ok = fail;
  for (let step = 1; spans === null; step *= 2) {
    ok = Math.min(N, fail + step);
    spans = equalShares(N, ok, chunkTokens, search);
    if (spans === null) fail = ok;
  }
  while (ok - fail > 1) {
    const mid = (ok + fail) >> 1;
    const s = equalShares(N, mid, chunkTokens, search);
    if (s) { ok = mid; spans = s; } else fail = mid;
  }
  return spans;
}

/** Where cuts may move: the boundary kinds of the context's tokens, and how far a cut may go for one. */
interface Search {
  context: ArrayLike<number>;
  boundary: BoundaryOf;
  reach: number; // the strongest boundary within this distance
  farReach: number; // a clause end or better within this distance, when `reach` has none
}

/**
 * `n` chunks, cut k at the best boundary around an equal share of the tokens left (exactly
 * there without `search`); null when the bound that leaves the later chunks at most their budgets
 * would move a cut to a weaker boundary than the search finds without it.
 */
function equalShares(N: number, n: number, chunkTokens: number, search?: Search): ChunkSpan[] | null {
  const spans: ChunkSpan[] = [];
  let start = 0;
  for (let k = 1; k <= n; k++) {
    const after = n - k; // chunks still to come
    // At least a token and at most the budget here; at most `after` budgets and at least a
    // token each after.
    const lo = Math.max(start + 1, N - after * chunkTokens);
    const hi = Math.min(start + chunkTokens, N - after);
    const share = Math.min(hi, start + Math.round((N - start) / (after + 1)));
    let end = Math.max(lo, share);
    if (search && after > 0) {
      end = bestCut(search, end, lo, hi);
      if (lo > start + 1 && kindOf(search, end) < kindOf(search, bestCut(search, share, start + 1, hi))) return null;
    }
    spans.push({ start, end });
    start = end;
  }
  return spans;
}

/** The number of chunks that filling each to the budget, its cut moved back to the best boundary, gives. */
function filledCount(search: Search, chunkTokens: number): number {
  const N = search.context.length;
  let n = 0;
  for (let start = 0; start < N; n++) start = start + chunkTokens >= N ? N : bestCut(search, start + chunkTokens, start + 1, start + chunkTokens);
  return n;
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
  for (let d = 0; d <= s.farReach && bestKind < 4; d++) {
    if (d > s.reach && bestKind >= 2) break;
    if (target - d < lo && target + d > hi) break;
    offer(target - d, d <= s.reach);
    if (d > 0) offer(target + d, d <= s.reach);
  }
  return best;
}
