// Token-boundary chunking. The reference code splits characters, which cuts words; we split the
// token sequence, moving each cut back to the strongest nearby boundary: a line end, else a
// sentence end, else a clause end (, ;), else a word end, within 15% of the chunk. With byte-level
// vocabularies a sentence is 20-60 tokens, so a reach of a few tokens would still cut numbers in
// half (a 5% reach did: "The pass key is 55|658.").
// When that reach holds no clause end or better, the search goes on up to 35% back for one: a
// JSON object's pairs (`"key": "value", `) have commas only between them, and a UUID pair is 85
// byte tokens, 29% of the bundled model's kv_retrieval chunk. Cut at a word end instead, the key
// sat in one chunk and its value in the next in 8 of 50 samples at 16K tokens (the chunk that
// predicts the question best then lacks the answer).

import { UsageError } from "../errors.js";

/** How good a cut after this token is: 4 line end, 3 sentence end, 2 clause end, 1 word end, 0 none. */
export type BoundaryOf = (token: number) => 0 | 1 | 2 | 3 | 4;

export interface ChunkSpan {
  start: number; // index into the context tokens
  end: number; // exclusive
}

export function chunkContext(context: ArrayLike<number>, chunkTokens: number, boundary?: BoundaryOf, slack = 0.15, farSlack = 0.35): ChunkSpan[] {
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1) throw new UsageError(`chunk size must be a positive integer, got ${chunkTokens}`);
  const spans: ChunkSpan[] = [];
  const reach = Math.floor(chunkTokens * slack);
  const farReach = Math.max(reach, Math.floor(chunkTokens * farSlack));
  for (let start = 0; start < context.length; ) {
    let end = Math.min(context.length, start + chunkTokens);
    if (end < context.length && boundary && reach > 0) {
      // The strongest boundary within reach, the nearest to the hard cut among equals; past the
      // reach only a clause end or better counts, and only while none has been found.
      let best = -1;
      let bestKind = 0;
      for (let i = end - 1; i > start && i >= end - farReach; i--) {
        if (i < end - reach && bestKind >= 2) break;
        const kind = boundary(context[i]);
        if (kind > bestKind && (i >= end - reach || kind >= 2)) { best = i; bestKind = kind; }
        if (kind === 4) break;
      }
      if (best >= 0) end = best + 1;
    }
    spans.push({ start, end });
    start = end;
  }
  return spans;
}
