// `parallelcomp sweep` on a tiny grid of the bundled model: its cells against the single-cell
// evaluation (`runEval`, what `parallelcomp eval` runs), --resume against a planted value, the
// skip rules against hand-computed estimates, and the page against results.json.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadModel } from "../src/model/model.js";
import { BUNDLED_MODEL } from "../src/model/bundled.js";
import { runEval, type SampleResult } from "../src/eval/run.js";
import { skipReason, type Cell, type DoneCell, type SweepFile } from "../src/eval/sweep.js";
import { TASKS } from "../src/eval/tasks.js";
import { lengthLabel } from "../src/eval/results-page.js";
import { tempDir } from "./support/tmp.js";

const BIN = fileURLToPath(new URL("../../bin/parallelcomp.js", import.meta.url));
const out = path.join(tempDir(), "results");
const RESULTS = path.join(out, "results.json");
const SWEEP = ["sweep", "--tasks", "passkey", "--lengths", "256,1024", "--methods", "parallelcomp,truncate,full", "--samples", "2", "--seed", "3",
  "-t", "1", "--quadratic-limit", "512", "--out", out];

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const read = (): SweepFile => JSON.parse(fs.readFileSync(RESULTS, "utf8"));
const find = (f: SweepFile, method: string, length: number) => f.cells.find((c) => c.method === method && c.length === length)!;
const answers = (rs: SampleResult[]) => rs.map(({ prefillSeconds, ...r }) => r);

test("every run cell equals runEval's result for that cell; full above --quadratic-limit is skipped with its estimate", () => {
  const r = cli(SWEEP);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err.split("\n").filter((l) => /^\[\d\/6\] passkey (256|1024) \w+: /.test(l)).length, 6, r.err);
  const f = read();
  assert.deepEqual(f.cells.map((c) => `${c.length} ${c.method} ${c.status}`),
    ["256 parallelcomp done", "256 truncate done", "256 full done", "1024 parallelcomp done", "1024 truncate done", "1024 full skipped"]);
  const model = loadModel(BUNDLED_MODEL, { threads: 1 });
  try {
    for (const c of f.cells.filter((c): c is DoneCell => c.status === "done")) {
      const ref = runEval(model, model.tokenizer, { task: c.task, length: c.length, samples: 2, method: c.method, preset: "retrieval", seed: 3 });
      assert.equal(c.accuracy, ref.accuracy, `${c.method} ${c.length}`);
      assert.equal(c.chunkRecall, ref.chunkRecall);
      assert.deepEqual(answers(c.results), answers(ref.results));
      assert.ok(c.prefillTokensPerSecond > 0 && c.peakRssBytes > 20 * 2 ** 20 && c.wallSeconds > 0);
    }
  } finally {
    model.close();
  }
  const skipped = find(f, "full", 1024);
  assert.equal(skipped.status, "skipped");
  const w = (find(f, "full", 256) as DoneCell).wallSeconds;
  assert.ok(skipped.status === "skipped" && skipped.reason.includes("--quadratic-limit 512") && skipped.reason.includes(`estimated ${(w * 16).toFixed(0)} s`), skipped.status === "skipped" ? skipped.reason : "");
});

test("skip rules: an estimate from the longest shorter cell of the method, scaled by length^p and samples", () => {
  const base = { preset: "retrieval", seed: 1, threads: 1, modelSha256: "x", status: "done" as const, accuracy: 1, chunkRecall: null, prefillTokensPerSecond: 1, peakRssBytes: 1, finishedAt: "", results: [] };
  const done: DoneCell[] = [
    { ...base, task: "passkey", length: 1024, method: "full", samples: 2, wallSeconds: 3 },
    { ...base, task: "passkey", length: 2048, method: "truncate", samples: 2, wallSeconds: 10 },
    { ...base, task: "passkey", length: 4096, method: "truncate", samples: 2, wallSeconds: 20 },
  ];
  const rules = { maxCellSeconds: 60, quadraticLimit: 1 << 20, force: false };
  // full 1024 -> 4096 with 4 samples: 3 s x 4^2 x 2 = 96 s > 60.
  assert.match(skipReason({ task: "passkey", length: 4096, method: "full", samples: 4 }, done, rules) ?? "", /^estimated 96 s: the 1024-token passkey cell took 3\.0 s for 2 samples, x \(4096\/1024\)\^2 x 4\/2 samples, over --max-cell-seconds 60$/);
  // truncate scales from its longest shorter cell (4096, 20 s): x 2 = 40 s <= 60, run; at 16384, 80 s > 60.
  assert.equal(skipReason({ task: "passkey", length: 8192, method: "truncate", samples: 2 }, done, rules), null);
  assert.match(skipReason({ task: "passkey", length: 16384, method: "truncate", samples: 2 }, done, rules) ?? "", /^estimated 80 s/);
  // another task's cells stand in when the task has none; nothing shorter: run.
  assert.match(skipReason({ task: "kv_retrieval", length: 16384, method: "truncate", samples: 2 }, done, rules) ?? "", /the 4096-token passkey cell/);
  assert.equal(skipReason({ task: "passkey", length: 512, method: "full", samples: 2 }, done, rules), null);
  // the quadratic rule needs no estimate; --force lifts both.
  assert.match(skipReason({ task: "passkey", length: 1024, method: "pcw", samples: 2 }, [], { ...rules, quadraticLimit: 512 }) ?? "", /^pcw's cost grows with the square of the length/);
  assert.equal(skipReason({ task: "passkey", length: 1024, method: "pcw", samples: 2 }, [], { ...rules, quadraticLimit: 512, force: true }), null);
  assert.equal(skipReason({ task: "passkey", length: 16384, method: "truncate", samples: 2 }, done, { ...rules, force: true }), null);
});

/** Start and end tags balance and the root is <svg>: a well-formedness check without an XML library. */
function assertSvg(text: string, name: string) {
  assert.match(text, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/, name);
  const stack: string[] = [];
  for (const m of text.matchAll(/<(\/?)([a-zA-Z][\w:-]*)[^>]*?(\/?)>/g)) {
    if (m[1]) assert.equal(stack.pop(), m[2], `${name}: </${m[2]}> closes the wrong element`);
    else if (!m[3]) stack.push(m[2]);
  }
  assert.deepEqual(stack, [], `${name}: unclosed elements`);
  assert.ok(/<path|<line/.test(text), `${name} draws something`);
}

test("the page shows results.json's values, links valid SVGs, inlines attention-bias.md, and renders the same bytes twice", () => {
  const r = cli(["sweep", "--page-only", "--out", out]);
  assert.equal(r.code, 0, r.err);
  const f = read();
  const md = fs.readFileSync(path.join(out, "README.md"), "utf8");
  const lines = md.split("\n");
  const row = (after: string, first: string) => {
    const from = lines.indexOf(after);
    assert.ok(from >= 0, `no "${after}" in the page`);
    const line = lines.slice(from).find((l) => l.startsWith(`| ${first} |`));
    assert.ok(line, `no row ${first} after ${after}`);
    return line.split("|").slice(2, -1).map((s) => s.trim());
  };
  const lengths = [256, 1024];
  const right = (c: DoneCell) => c.results.filter((x) => x.correct).length;
  for (const m of ["parallelcomp", "truncate", "full"]) {
    const expected = lengths.map((l) => {
      const c = find(f, m, l);
      return c.status === "done" ? `${Math.round(100 * c.accuracy)}% (${right(c)}/2)` : "skipped [1]";
    });
    assert.deepEqual(row("### passkey", m), expected, m);
    const speed = lengths.map((l) => { const c = find(f, m, l); return c.status === "done" ? Math.round(c.prefillTokensPerSecond).toLocaleString("en-US") : "skipped"; });
    assert.deepEqual(row("## Speed", m), speed);
    const rss = lengths.map((l) => { const c = find(f, m, l); return c.status === "done" ? `${(c.peakRssBytes / 2 ** 20).toFixed(0)} MiB` : "skipped"; });
    assert.deepEqual(row("## Memory", m), rss);
  }
  const pc = lengths.map((l) => find(f, "parallelcomp", l) as DoneCell);
  assert.deepEqual(row("## Chunk recall (parallelcomp)", "passkey"), pc.map((c) => `${Math.round(100 * c.chunkRecall!)}% (${c.results.filter((x) => x.needleInKept).length}/2)`));
  assert.ok(md.includes(`[1] full at 1024: ${(find(f, "full", 1024) as Cell & { reason: string }).reason}`), "the skip reason is listed");
  const ref = find(f, "full", 256) as DoneCell;
  assert.ok(md.includes(`**passkey**: parallelcomp at 1K tokens: ${Math.round(100 * pc[1].accuracy)}% (${right(pc[1])}/2)`), "finding: parallelcomp at the longest length");
  assert.ok(md.includes(`vs ${Math.round(100 * ref.accuracy)}% (${right(ref)}/2) for full attention inside the trained window (256 tokens)`), "finding: the window reference");
  for (const s of [f.model.sha256.slice(0, 12), "| seed | 3 |", "| samples per cell | 2,", "--seed 3", "sweep --page-only --out", `${f.machine.threads} thread`]) assert.ok(md.includes(s), s);

  const svgs = [...md.matchAll(/\]\(([\w-]+\.svg)\)/g)].map((m) => m[1]);
  assert.deepEqual(svgs, ["accuracy-passkey.svg", "prefill-speed.svg", "peak-rss.svg"]);
  for (const s of svgs) assertSvg(fs.readFileSync(path.join(out, s), "utf8"), s);

  assert.ok(!md.includes("## Attention bias"));
  fs.writeFileSync(path.join(out, "attention-bias.md"), "# Attention bias per layer\n\nSink share 0.61 ![sinks](bias-sinks.svg)\n\n```\n# not a heading\n```\n");
  assert.equal(cli(["sweep", "--page-only", "--out", out]).code, 0);
  const withBias = fs.readFileSync(path.join(out, "README.md"), "utf8");
  assert.ok(withBias.includes("## Attention bias\n\n## Attention bias per layer\n\nSink share 0.61 ![sinks](bias-sinks.svg)\n\n```\n# not a heading\n```\n"));
  assert.ok(withBias.includes(`then \`node bin/parallelcomp.js attention-bias --out ${out}\` then`), "the regenerate command runs the analysis too");
  fs.rmSync(path.join(out, "attention-bias.md"));
  assert.equal(cli(["sweep", "--page-only", "--out", out]).code, 0);
  assert.equal(fs.readFileSync(path.join(out, "README.md"), "utf8"), md, "same results, same page");

  // What parallelcomp kept is recorded with the run (the retrieval preset: top 2, within 1 nat);
  // a file written before it was recorded ran without keepWithin, and its page says so.
  assert.deepEqual(f.settings.keep, { keepChunks: 2, keepWithin: 1 });
  assert.ok(md.includes("| preset | `retrieval` (parallelcomp keeps the top 2 chunks, of them those scored within 1 nat of the best; pcw keeps all) |"));
  const saved = fs.readFileSync(RESULTS, "utf8");
  const { keep, ...older } = f.settings;
  fs.writeFileSync(RESULTS, JSON.stringify({ ...f, settings: older }));
  assert.equal(cli(["sweep", "--page-only", "--out", out]).code, 0);
  assert.ok(fs.readFileSync(path.join(out, "README.md"), "utf8").includes("| preset | `retrieval` (parallelcomp keeps the top 2 chunks; pcw keeps all) |"));
  fs.writeFileSync(RESULTS, saved);
});

test("a one-length sweep (the 1M column's shape): findings without a window reference give each method's value at that length", () => {
  const f = read();
  const one = path.join(tempDir(), "one-length");
  fs.mkdirSync(one, { recursive: true });
  const cells = f.cells.filter((c) => c.length === 1024 && c.method !== "full");
  const single: SweepFile = { ...f, settings: { ...f.settings, lengths: [1024], methods: ["parallelcomp", "truncate"] }, cells };
  fs.writeFileSync(path.join(one, "results.json"), JSON.stringify(single));
  const r = cli(["sweep", "--page-only", "--out", one]);
  assert.equal(r.code, 0, r.err);
  const md = fs.readFileSync(path.join(one, "README.md"), "utf8");
  const pc = find(single, "parallelcomp", 1024) as DoneCell, tr = find(single, "truncate", 1024) as DoneCell;
  const right = pc.results.filter((x) => x.correct).length;
  assert.ok(md.includes(`**passkey**: parallelcomp at 1K tokens: ${Math.round(100 * pc.accuracy)}% (${right}/2), 95% interval `), "finding at the one length");
  assert.ok(md.includes("(this sweep has no full-attention cell inside the trained window to compare with)."), "no window reference, said once");
  const speed = Math.round(pc.prefillTokensPerSecond).toLocaleString("en-US");
  assert.ok(md.includes(`Prefill speed (mean over tasks, tokens/s): parallelcomp ${speed} at 1K (truncate left out`), "the one length's speed");
  const mb = (c: DoneCell) => `${(c.peakRssBytes / 2 ** 20).toFixed(0)} MiB`;
  assert.ok(md.includes(`Peak RSS (max over tasks): parallelcomp ${mb(pc)} at 1K; truncate ${mb(tr)} at 1K.`), "the one length's peak RSS");
  assert.ok(!md.includes("to longest run"), "no span over one length");
  assert.equal(lengthLabel(1048576), "1M");
  assert.equal(lengthLabel(131072), "128K");
  assert.equal(lengthLabel(480), "480");
});

test("--resume keeps the done cells (a planted value survives) and runs only the missing one", () => {
  const f = read();
  const planted = find(f, "parallelcomp", 256) as DoneCell;
  planted.accuracy = 0.123;
  const removed = find(f, "truncate", 1024) as DoneCell;
  f.cells = f.cells.filter((c) => c !== removed);
  fs.writeFileSync(RESULTS, JSON.stringify(f));
  const r = cli([...SWEEP, "--resume"]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err.split("\n").filter((l) => l.endsWith(`kept from ${RESULTS}`)).length, 4, r.err);
  const g = read();
  assert.equal(g.cells.length, 6);
  assert.equal((find(g, "parallelcomp", 256) as DoneCell).accuracy, 0.123, "a kept cell is not rerun");
  for (const [m, l] of [["truncate", 256], ["full", 256], ["parallelcomp", 1024]] as const) assert.deepEqual(find(g, m, l), find(f, m, l));
  const rerun = find(g, "truncate", 1024) as DoneCell;
  assert.notEqual(rerun.finishedAt, removed.finishedAt, "the missing cell ran again");
  assert.deepEqual(answers(rerun.results), answers(removed.results));
  assert.equal(find(g, "full", 1024).status, "skipped");
  // Other settings are other cells: a new seed reruns them all.
  const seed4 = cli([...SWEEP.map((a) => (a === "3" ? "4" : a)), "--resume", "--methods", "truncate", "--lengths", "256"]);
  assert.equal(seed4.code, 0, seed4.err);
  assert.ok(!seed4.err.includes("kept from"), seed4.err);
  assert.equal(read().cells.length, 1);
  // A file that kept other chunks under the same preset name (here: written before keepWithin
  // was recorded) has no cell of this run either.
  const { keep, ...older } = read().settings;
  fs.writeFileSync(RESULTS, JSON.stringify({ ...read(), settings: older }));
  const again = cli([...SWEEP.map((a) => (a === "3" ? "4" : a)), "--resume", "--methods", "truncate", "--lengths", "256"]);
  assert.equal(again.code, 0, again.err);
  assert.ok(again.err.includes("kept other chunks") && !again.err.includes("kept from"), again.err);
  assert.deepEqual(read().settings.keep, keep);
});

test("bad input gets one clear error", () => {
  for (const [args, pattern] of [
    [["sweep", "--tasks", "passkey,nope"], new RegExp(`unknown task "nope" \\(known: ${TASKS.join(", ")}\\)`)],
    [["sweep", "--methods", "full,fast"], /unknown method "fast"/],
    [["sweep", "--lengths", "1024,12"], /expected "window" or token counts from 64/],
    [["sweep", "--page-only", "--out", path.join(out, "nothing")], /nothing\/results\.json not found: run `parallelcomp sweep --out/],
  ] as const) {
    const r = cli([...args]);
    assert.notEqual(r.code, 0);
    assert.match(r.err, pattern);
    assert.doesNotMatch(r.err, /\n\s+at /);
  }
});
