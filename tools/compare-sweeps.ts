// Two sweeps of the same cells on two engines, sample by sample: does each keep the same chunks
// and give the same answer? Usage:
//   node dist/tools/compare-sweeps.js docs/results-llama.cpp/native/results.json docs/results-llama.cpp/results.json
// Prints one line per cell and the totals; exits 1 if any sample differs.

import * as fs from "node:fs";
import type { SweepFile, DoneCell } from "../src/eval/sweep.js";

const [fileA, fileB] = process.argv.slice(2);
if (!fileA || !fileB) {
  console.error("usage: compare-sweeps A/results.json B/results.json");
  process.exit(2);
}
const read = (f: string) => JSON.parse(fs.readFileSync(f, "utf8")) as SweepFile;
const [a, b] = [read(fileA), read(fileB)];
const key = (c: DoneCell) => `${c.task} ${c.length} ${c.method}`;
const cellsB = new Map(b.cells.filter((c): c is DoneCell => c.status === "done").map((c) => [key(c), c]));
let samples = 0;
let sameAnswer = 0;
let sameKept = 0;
let withKept = 0;
for (const ca of a.cells) {
  if (ca.status !== "done") continue;
  const cb = cellsB.get(key(ca));
  if (!cb) continue;
  let answers = 0;
  let kept = 0;
  let keptCells = 0;
  ca.results.forEach((ra, i) => {
    const rb = cb.results[i];
    if (!rb) return;
    samples++;
    if (ra.answer === rb.answer) answers++;
    if (ra.kept && rb.kept) {
      keptCells++;
      if (ra.kept.join(",") === rb.kept.join(",")) kept++;
    }
  });
  sameAnswer += answers;
  sameKept += kept;
  withKept += keptCells;
  const n = Math.min(ca.results.length, cb.results.length);
  console.log(`${key(ca).padEnd(36)} answers ${answers}/${n}` + (keptCells ? `, kept chunks ${kept}/${keptCells}` : "") +
    `, accuracy ${Math.round(100 * ca.accuracy)}% vs ${Math.round(100 * cb.accuracy)}%`);
}
console.log(`total: ${samples} samples, same answer ${sameAnswer}, same kept chunks ${sameKept} of ${withKept}`);
process.exit(sameAnswer === samples && sameKept === withKept ? 0 : 1);
