// Token-boundary chunking. The reference code splits characters, which cuts words; we split the
// token sequence, moving each cut back to a nearby line or sentence end when one lies within a
// few percent of the boundary.

/** 2 = the token ends a line, 1 = it ends a sentence, 0 = neither. */
export type BoundaryOf = (token: number) => 0 | 1 | 2;

export interface ChunkSpan {
  start: number; // index into the context tokens
  end: number; // exclusive
}

export function chunkContext(context: ArrayLike<number>, chunkTokens: number, boundary?: BoundaryOf, slack = 0.05): ChunkSpan[] {
  if (!Number.isInteger(chunkTokens) || chunkTokens < 1) throw new Error(`chunk size must be a positive integer, got ${chunkTokens}`);
  const spans: ChunkSpan[] = [];
  const reach = Math.floor(chunkTokens * slack);
  for (let start = 0; start < context.length; ) {
    let end = Math.min(context.length, start + chunkTokens);
    if (end < context.length && boundary && reach > 0) {
      // Prefer a line end, else a sentence end, the nearest to the hard cut.
      let best = -1;
      let bestKind = 0;
      for (let i = end - 1; i >= end - reach && i > start; i--) {
        const kind = boundary(context[i]);
        if (kind > bestKind) { best = i; bestKind = kind; }
        if (kind === 2) break;
      }
      if (best >= 0) end = best + 1;
    }
    spans.push({ start, end });
    start = end;
  }
  return spans;
}
