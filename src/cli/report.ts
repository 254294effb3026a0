// What `ask --explain` prints and what `ask --report FILE.html` writes: the chunks the method
// read, their scores, the kept ones with an excerpt, the question, the answer and the timings.

import type { AskResult } from "../api.js";

/**
 * A short excerpt of a chunk for a reader: the sentence (or line) sharing the most words with
 * the question, else the chunk's opening; at most `max` characters, whitespace collapsed.
 */
export function excerpt(text: string, question: string, max = 160): string {
  const words = (s: string) => new Set(s.toLowerCase().match(/[\p{L}\p{N}]{2,}/gu) ?? []);
  const want = words(question);
  const pieces = text.split(/(?<=[.!?])\s+|\n+/).map((s) => s.replace(/\s+/g, " ").trim()).filter(Boolean);
  let best = pieces[0] ?? "";
  let bestScore = 0;
  for (const p of pieces) {
    let n = 0;
    for (const w of words(p)) if (want.has(w)) n++;
    if (n > bestScore) { best = p; bestScore = n; }
  }
  return best.length > max ? best.slice(0, max - 1) + "…" : best;
}

export interface ReportData {
  question: string;
  result: AskResult;
  /** Decoded text of a chunk, by index. */
  chunkText: (index: number) => string;
  model: string;
}

/** The --explain lines: one per kept chunk, best first. */
export function explainLines(d: ReportData): string[] {
  const r = d.result;
  if (r.keptChunks.length === 0) return [`${r.method}: no chunk selection (the whole input is one sequence)`];
  const median = [...r.chunks.map((c) => c.score)].sort((a, b) => a - b)[Math.floor(r.chunks.length / 2)];
  const lines = [`kept ${r.keptChunks.length} of ${r.nChunks} chunks (score = mean question NLL in nats, lower = more relevant; median ${median.toFixed(3)}):`];
  for (const k of [...r.keptChunks].sort((a, b) => a.score - b.score)) {
    lines.push(`  #${k.index}  score ${k.score.toFixed(3)}  tokens ${k.start}-${k.end}  "${excerpt(d.chunkText(k.index), d.question)}"`);
  }
  return lines;
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

/**
 * Relevance 0..1 from a score: the best chunk 1, the worst 0, on a log scale (scores are NLLs in
 * nats, lower = better; the needle's chunk is often orders of magnitude below the rest).
 */
function relevance(score: number, lo: number, hi: number): number {
  const f = (x: number) => Math.log(Math.max(0, x) + 1e-4);
  return hi > lo ? (f(hi) - f(score)) / (f(hi) - f(lo)) : 1;
}

/** A self-contained HTML page (no scripts, no outside resources). */
export function renderReport(d: ReportData): string {
  const r = d.result;
  const scores = r.chunks.map((c) => c.score);
  const lo = Math.min(...scores);
  const hi = Math.max(...scores);
  const strip = r.chunks.map((c) => {
    const rel = relevance(c.score, lo, hi);
    // Hue from blue (irrelevant) to red (relevant).
    const colour = `hsl(${Math.round(220 - 220 * rel)}, 75%, ${Math.round(75 - 25 * rel)}%)`;
    return `<div class="chunk${c.kept ? " kept" : ""}" style="flex-grow:${c.end - c.start};background:${colour}" title="chunk #${c.index}: tokens ${c.start}-${c.end}, score ${c.score.toFixed(4)}${c.kept ? " (kept)" : ""}" data-index="${c.index}" data-score="${c.score}"></div>`;
  }).join("");
  const kept = [...r.keptChunks].sort((a, b) => a.score - b.score).map((k) => `<tr><td>#${k.index}</td><td>${k.score.toFixed(4)}</td><td>${k.start}–${k.end}</td><td>${esc(excerpt(d.chunkText(k.index), d.question, 240))}</td></tr>`).join("");
  const t = r.timings;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>parallelcomp: ${esc(d.question)}</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222}
h1{font-size:1.3em} .qa div{margin:.3em 0} .answer{font-weight:600;font-size:1.1em}
#strip{display:flex;height:44px;border:1px solid #999;margin:.5em 0 .2em}
#strip .chunk{min-width:1px;border-right:1px solid rgba(255,255,255,.35)}
#strip .kept{outline:3px solid #111;outline-offset:-3px;min-width:6px}
.legend{font-size:.85em;color:#555} table{border-collapse:collapse;margin-top:.6em} td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
</style></head><body>
<h1>ParallelComp report</h1>
<div class="qa"><div>Question: <span id="question">${esc(d.question)}</span></div>
<div>Answer: <span id="answer" class="answer">${esc(r.answer)}</span></div></div>
<h2>The document, ${r.contextTokens.toLocaleString("en-US")} tokens in ${r.nChunks} chunks</h2>
<div id="strip">${strip}</div>
<div class="legend">Each block is a chunk, as wide as its tokens; red = the question is most predictable given it (low mean NLL), blue = least. Outlined: kept for the answer.</div>
<table id="kept"><tr><th>kept</th><th>score (nats)</th><th>tokens</th><th>excerpt</th></tr>${kept}</table>
<h2>Run</h2>
<table id="timings"><tr><td>model</td><td>${esc(d.model)}</td></tr><tr><td>method</td><td>${esc(r.method)}</td></tr>
<tr><td>tokenize</td><td>${t.tokenizeSeconds.toFixed(2)} s</td></tr><tr><td>prefill</td><td>${t.prefillSeconds.toFixed(2)} s (${Math.round(r.contextTokens / Math.max(1e-9, t.prefillSeconds)).toLocaleString("en-US")} tokens/s)</td></tr>
<tr><td>decode</td><td>${t.decodeSeconds.toFixed(2)} s</td></tr><tr><td>peak memory (RSS)</td><td>${(r.peakRssBytes / 2 ** 20).toFixed(1)} MiB</td></tr></table>
</body></html>
`;
}
