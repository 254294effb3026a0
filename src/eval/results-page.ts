// The results page: OUT/README.md and its SVG plots, generated from OUT/results.json alone (no
// model is run), so the same results always give the same bytes. Statements under "What the
// numbers show" come from fixed rules over the cells, never from hand-written claims.

import * as fs from "node:fs";
import * as path from "node:path";
import { resolveOptions } from "../method/options.js";
import type { Method } from "../method/baselines.js";
import type { TaskName } from "./tasks.js";
import { renderSvg, type PlotSpec } from "./plot.js";
import { QUADRATIC, readResults, WINDOW_MARGIN, type Cell, type DoneCell, type SweepFile } from "./sweep.js";

const MiB = 2 ** 20;
const pct = (x: number) => `${Math.round(100 * x)}%`;
const int = (x: number) => Math.round(x).toLocaleString("en-US");
const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
const mib = (b: number) => `${(b / MiB).toFixed(0)} MiB`;
export const lengthLabel = (l: number) => (l % 1048576 === 0 ? `${l / 1048576}M` : l % 1024 === 0 ? `${l / 1024}K` : String(l));

/** What parallelcomp kept in a sweep, for the page's preset row. */
function keptText(keep: { keepChunks: number; keepWithin: number | null }): string {
  const top = `parallelcomp keeps the top ${plural(keep.keepChunks, "chunk")}`;
  return keep.keepWithin === null || keep.keepChunks === 1 ? top : `${top}, of them those scored within ${plural(keep.keepWithin, "nat")} of the best`;
}

/** 95% Wilson score interval of k successes in n. */
export function wilson(k: number, n: number): [number, number] {
  const z = 1.96;
  const p = k / n;
  const d = 1 + (z * z) / n;
  const c = p + (z * z) / (2 * n);
  const h = z * Math.sqrt((p * (1 - p)) / n + (z * z) / (4 * n * n));
  return [Math.max(0, (c - h) / d), Math.min(1, (c + h) / d)];
}

const correct = (c: DoneCell) => c.results.filter((r) => r.correct).length;
/** "80% (4/5)": the accuracy cell as the page prints it. */
export const accuracyText = (c: DoneCell) => `${pct(c.accuracy)} (${correct(c)}/${c.results.length})`;
export const recallText = (c: DoneCell) => `${pct(c.chunkRecall ?? 0)} (${c.results.filter((r) => r.needleInKept).length}/${c.results.length})`;

class Cells {
  private byKey = new Map<string, Cell>();
  constructor(readonly f: SweepFile) {
    for (const c of f.cells) this.byKey.set(`${c.task}|${c.length}|${c.method}`, c);
  }
  get(task: TaskName, length: number, method: Method): Cell | undefined {
    return this.byKey.get(`${task}|${length}|${method}`);
  }
  done(task: TaskName, length: number, method: Method): DoneCell | undefined {
    const c = this.get(task, length, method);
    return c?.status === "done" ? c : undefined;
  }
  /** Done cells of a method at one length, over the tasks. */
  across(length: number, method: Method): DoneCell[] {
    return this.f.settings.tasks.map((t) => this.done(t, length, method)).filter((c): c is DoneCell => c !== undefined);
  }
}

function table(head: string[], rows: string[][]): string {
  const line = (r: string[]) => `| ${r.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

/**
 * A table over methods x lengths. A cell not done reads "skipped [n]" / "failed [n]", its reason
 * pushed to `notes` as the n-th; without `notes` (tables over all tasks) just "skipped" / "failed".
 */
function methodTable(s: Cells, task: TaskName | null, value: (length: number, method: Method) => string | null, notes?: string[]): string {
  const { lengths, methods, tasks } = s.f.settings;
  const rows = methods.map((m) => [m, ...lengths.map((l) => {
    const v = value(l, m);
    if (v !== null) return v;
    const c = task ? s.get(task, l, m) : tasks.map((t) => s.get(t, l, m)).find((x) => x && x.status !== "done");
    if (!c || c.status === "done") return "not run"; // an interrupted sweep
    if (!notes) return c.status;
    notes.push(`${c.method} at ${c.length}: ${c.reason}`);
    return `${c.status} [${notes.length}]`;
  })]);
  return table(["method", ...lengths.map((l) => lengthHead(s.f, l))], rows);
}

const lengthHead = (f: SweepFile, l: number) => (l + WINDOW_MARGIN <= f.model.nCtxTrain ? `${l} (in window)` : lengthLabel(l));
const noteList = (notes: string[]) => (notes.length === 0 ? "" : "\n\n" + notes.map((n, i) => `[${i + 1}] ${n}`).join("  \n"));

function lengthAxis(lengths: number[]) {
  return {
    field: "length", type: "quantitative" as const, title: "tokens (log2 scale)",
    scale: { type: "log" as const, base: 2, domain: [Math.min(...lengths), Math.max(...lengths)] },
    axis: { values: lengths, labelExpr: "datum.value % 1024 === 0 ? datum.value / 1024 + 'K' : datum.value" },
  };
}

function lineChart(f: SweepFile, title: string, values: { length: number; method: string; y: number }[], y: Record<string, unknown>, extra: PlotSpec[] = []): PlotSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title, width: 520, height: 280,
    layer: [
      {
        data: { values }, mark: { type: "line", point: true },
        // Methods often score the same (0% or 100%): dashes and shapes keep overlapping lines apart.
        encoding: {
          x: lengthAxis(f.settings.lengths), y: { field: "y", type: "quantitative", ...y },
          color: { field: "method", type: "nominal", scale: { domain: f.settings.methods } },
          strokeDash: { field: "method", type: "nominal", scale: { domain: f.settings.methods } },
          shape: { field: "method", type: "nominal", scale: { domain: f.settings.methods } },
        },
      },
      ...extra,
    ],
  } as PlotSpec;
}

function windowRule(f: SweepFile): PlotSpec {
  return {
    data: { values: [{ x: f.model.nCtxTrain, label: "trained window" }] },
    layer: [
      { mark: { type: "rule", strokeDash: [4, 4], color: "gray" }, encoding: { x: { field: "x", type: "quantitative" } } },
      { mark: { type: "text", align: "left", baseline: "top", dx: 3, color: "gray" }, encoding: { x: { field: "x", type: "quantitative" }, y: { value: 2 }, text: { field: "label" } } },
    ],
  } as PlotSpec;
}

/** Means over the tasks at each length: the speed and memory series. */
function perLength(s: Cells, v: (cs: DoneCell[]) => number) {
  const out: { length: number; method: string; y: number }[] = [];
  for (const m of s.f.settings.methods) for (const l of s.f.settings.lengths) {
    const cs = s.across(l, m);
    if (cs.length > 0) out.push({ length: l, method: m, y: v(cs) });
  }
  return out;
}
const meanSpeed = (cs: DoneCell[]) => cs.reduce((a, c) => a + c.prefillTokensPerSecond, 0) / cs.length;
const maxRss = (cs: DoneCell[]) => Math.max(...cs.map((c) => c.peakRssBytes));

/** The rule-based statements. */
function findings(s: Cells): string[] {
  const f = s.f;
  const { lengths, methods, tasks, samples } = f.settings;
  const W = f.model.nCtxTrain;
  const inside = lengths.filter((l) => l + WINDOW_MARGIN <= W);
  const beyond = lengths.filter((l) => l > W);
  const ref = inside.length > 0 ? inside[inside.length - 1] : null;
  const out: string[] = [];
  for (const t of tasks) {
    const r = ref === null ? undefined : s.done(t, ref, "full");
    const pc = beyond.map((l) => s.done(t, l, "parallelcomp")).filter((c): c is DoneCell => c !== undefined);
    const refText = r ? `${accuracyText(r)} for full attention inside the trained window (${ref} tokens)` : "no full-attention cell inside the trained window was run";
    if (pc.length > 0) {
      const c = pc[pc.length - 1];
      const [lo, hi] = wilson(correct(c), c.results.length);
      const vs = r ? `, vs ${refText}` : " (this sweep has no full-attention cell inside the trained window to compare with)";
      out.push(`**${t}**: parallelcomp at ${lengthLabel(c.length)} tokens: ${accuracyText(c)}, 95% interval ${pct(lo)}-${pct(hi)}${vs}.`);
    } else out.push(`**${t}**: parallelcomp ran at no length beyond the trained window; ${refText}.`);
    if (r && r.accuracy === 0) out.push(`${t}: the window reference is 0%, so this model does not solve ${t} inside its window.`);
    else if (r) {
      const reach = methods.map((m) => {
        const ran = beyond.filter((l) => s.done(t, l, m));
        if (ran.length === 0) return `${m} not run`;
        const ok = ran.filter((l) => s.done(t, l, m)!.accuracy >= r.accuracy);
        return `${m} ${ok.length === 0 ? "none" : lengthLabel(ok[ok.length - 1])}`;
      });
      out.push(`${t}, the longest length beyond the window at which each method scored at least the window reference (${pct(r.accuracy)}): ${reach.join("; ")}.`);
    }
    const wrong = pc.flatMap((c) => c.results.filter((x) => !x.correct));
    if (pc.length > 0) {
      const kept = wrong.filter((x) => x.needleInKept).length;
      const n = pc.reduce((a, c) => a + c.results.length, 0);
      out.push(`${t}, parallelcomp's wrong answers beyond the window: ${wrong.length} of ${n} samples; the needle's chunk was kept in ${kept} (the answer step failed) and dropped in ${wrong.length - kept} (the selection failed).`);
    }
  }
  // From the shortest length beyond the window: inside it, a prompt is too short to time the method.
  const span = (v: (cs: DoneCell[]) => number, fmt: (x: number) => string, ms: readonly Method[]) => ms.map((m) => {
    const ran = (beyond.length >= 2 ? beyond : lengths).filter((l) => s.across(l, m).length > 0);
    if (ran.length === 0) return null;
    const a = v(s.across(ran[0], m));
    if (ran.length === 1) return `${m} ${fmt(a)} at ${lengthLabel(ran[0])}`;
    const b = v(s.across(ran[ran.length - 1], m));
    return `${m} ${fmt(a)} at ${lengthLabel(ran[0])} -> ${fmt(b)} at ${lengthLabel(ran[ran.length - 1])} (x${(b / a).toFixed(2)})`;
  }).filter((x) => x !== null);
  const from = lengths.length === 1 ? "" : beyond.length >= 2 ? ", shortest length beyond the window to longest run" : ", shortest length to longest run";
  const timed = methods.filter((m) => m !== "truncate");
  out.push(`Prefill speed (mean over tasks, tokens/s)${from}: ${span(meanSpeed, int, timed).join("; ")}` +
    (timed.length < methods.length ? " (truncate left out: it prefills one window whatever the length)." : "."));
  out.push(`Peak RSS (max over tasks)${from}: ${span(maxRss, mib, methods).join("; ")}.`);
  const count = (st: Cell["status"]) => f.cells.filter((c) => c.status === st).length;
  out.push(`${plural(count("done"), "cell")} ran, ${count("skipped")} skipped by rule (listed under the accuracy tables), ${count("failed")} failed. Each cell has ${plural(samples, "sample")}, so one sample moves its accuracy by ${(100 / samples).toFixed(0)} points.`);
  return out;
}

/** Headings of an inlined page moved one level down, outside code fences, so it nests under ours. */
function demoteHeadings(md: string): string {
  let fenced = false;
  return md.split("\n").map((line) => {
    if (/^\s*(```|~~~)/.test(line)) fenced = !fenced;
    return !fenced && /^#{1,5} /.test(line) ? "#" + line : line;
  }).join("\n");
}

export function regenerateCommands(f: SweepFile): string[] {
  const st = f.settings;
  const sweep = ["node bin/parallelcomp.js sweep", ...(f.model.bundled ? [] : ["-m", f.model.file]),
    "--tasks", st.tasks.join(","), "--lengths", st.lengthSpec.join(","), "--methods", st.methods.join(","),
    "--preset", st.preset, "--samples", String(st.samples), "--seed", String(st.seed), "-t", String(st.threads),
    "--max-cell-seconds", String(st.maxCellSeconds), "--quadratic-limit", String(st.quadraticLimit), ...(st.force ? ["--force"] : []),
    ...(st.backend ? ["--backend", st.backend] : []), "--out", st.out];
  return [sweep.join(" "), `node bin/parallelcomp.js sweep --page-only --out ${st.out}`];
}

/** Writes OUT/README.md and the SVGs beside it from OUT/results.json; returns the files written. */
export async function renderResultsPage(out: string): Promise<string[]> {
  const f = readResults(out);
  const s = new Cells(f);
  const st = f.settings;
  const written: string[] = [];
  const writeFile = (name: string, text: string) => {
    fs.writeFileSync(path.join(out, name), text);
    written.push(path.join(out, name));
  };
  const count = (x: Cell["status"]) => f.cells.filter((c) => c.status === x).length;
  // Files written before the sweep recorded what it kept ran without keepWithin: the top keepChunks.
  const keep = st.keep ?? { keepChunks: resolveOptions(st.preset).keepChunks, keepWithin: null };
  const depths = Array.from({ length: st.samples }, (_, i) => (st.samples === 1 ? 0.5 : i / (st.samples - 1)).toFixed(2));
  const bias = path.join(out, "attention-bias.md");
  const hasBias = fs.existsSync(bias);
  const [sweepCmd, pageCmd] = regenerateCommands(f);
  const biasCmd = hasBias ? ` then \`node bin/parallelcomp.js attention-bias --out ${st.out}\`` : "";
  const md: string[] = [
    "# Results",
    "",
    "<!-- Generated by `parallelcomp sweep --page-only` from results.json: change the generator (src/eval/results-page.ts), not this file. -->",
    "",
    `Accuracy of ParallelComp and the baselines (${st.methods.join(", ")}) on InfiniteBench-style retrieval tasks (${st.tasks.join(", ")}) ` +
      `from inside the model's trained window to ${lengthLabel(Math.max(...st.lengths))} tokens. Every cell is one \`parallelcomp eval\` run in its own process.`,
    "",
    table(["", ""], [
      ["model", `\`${f.model.file}\`${f.model.bundled ? " (bundled)" : ""}, sha256 \`${f.model.sha256.slice(0, 12)}\`, trained window ${f.model.nCtxTrain} tokens`],
      ["preset", `\`${st.preset}\` (${keptText(keep)}; pcw keeps all)`],
      ["samples per cell", `${st.samples}, needle depths ${depths.join(", ")}`],
      ["seed", String(st.seed)],
      ["engine", st.backend ? `${st.backend} (\`--backend ${st.backend}\`; llama.cpp's defaults: F16 KV cache, flash attention auto)` : "native (ours)"],
      ["machine", `${f.machine.cpu}, ${plural(f.machine.cores, "core")}, ${plural(f.machine.threads, "thread")}; Node ${f.machine.node}, ${f.machine.platform}`],
      ["date", `${f.started.slice(0, 16).replace("T", " ")} to ${f.updated.slice(0, 16).replace("T", " ")} UTC`],
      ["cells", `${count("done")} run, ${count("skipped")} skipped by rule, ${count("failed")} failed`],
      ["skip rules", `${Object.keys(QUADRATIC).filter((m) => QUADRATIC[m as Method]).join(", ")} above ${st.quadraticLimit} tokens (their cost grows with the square of the length); any cell estimated over ${st.maxCellSeconds} s from its method's shorter cells${st.force ? " (lifted: --force)" : ""}`],
      ["regenerate", `\`${sweepCmd}\`${biasCmd} then \`${pageCmd}\``],
    ]),
    "",
    "## What the numbers show",
    "",
    ...findings(s).map((x) => `- ${x}`),
    "",
    "## Accuracy",
    "",
    "Right = the expected value appears in the answer (InfiniteBench's scoring).",
  ];
  for (const t of st.tasks) {
    const notes: string[] = [];
    const values = st.methods.flatMap((m) => st.lengths.map((l) => s.done(t, l, m)).filter((c): c is DoneCell => !!c).map((c) => ({ length: c.length, method: m, y: 100 * c.accuracy })));
    const svg = `accuracy-${t}.svg`;
    writeFile(svg, await renderSvg(lineChart(f, `${t}: accuracy vs length (${st.samples} samples per cell)`, values, { title: "accuracy (%)", scale: { domain: [0, 100] } }, [windowRule(f)])));
    md.push("", `### ${t}`, "", `![${t}: accuracy vs length](${svg})`, "",
      methodTable(s, t, (l, m) => { const c = s.done(t, l, m); return c ? accuracyText(c) : null; }, notes) + noteList(notes));
  }
  if (st.methods.includes("parallelcomp")) {
    md.push("", "## Chunk recall (parallelcomp)", "", "Share of samples in which a kept chunk holds the expected value (a needle cut between two chunks leaves its value in both).", "",
      table(["task", ...st.lengths.map((l) => lengthHead(f, l))], st.tasks.map((t) => [t, ...st.lengths.map((l) => {
        const c = s.done(t, l, "parallelcomp");
        return c ? recallText(c) : s.get(t, l, "parallelcomp")?.status ?? "not run";
      })])));
  }
  writeFile("prefill-speed.svg", await renderSvg(lineChart(f, "prefill speed vs length (mean over tasks)", perLength(s, meanSpeed), { title: "context tokens per prefill second", scale: { type: "log" } })));
  writeFile("peak-rss.svg", await renderSvg(lineChart(f, "peak RSS vs length (max over tasks)", perLength(s, (cs) => maxRss(cs) / MiB), { title: "peak RSS (MiB)" })));
  md.push(
    "", "## Speed", "",
    `Context tokens over prefill seconds, mean over the tasks, ${plural(f.machine.threads, "thread")}. truncate prefills only one window of the context, yet its rate counts the whole context. Skipped cells: see the notes under the accuracy tables.`,
    "", "![prefill speed vs length](prefill-speed.svg)", "",
    methodTable(s, null, (l, m) => { const cs = s.across(l, m); return cs.length ? int(meanSpeed(cs)) : null; }),
    "", "Wall seconds per cell, summed over the tasks (process start and model load included):", "",
    methodTable(s, null, (l, m) => { const cs = s.across(l, m); return cs.length ? cs.reduce((a, c) => a + c.wallSeconds, 0).toFixed(1) : null; }),
    "", "## Memory", "",
    "Peak resident set size of the cell's process (each cell runs alone in its own), max over the tasks.",
    "", "![peak RSS vs length](peak-rss.svg)", "",
    methodTable(s, null, (l, m) => { const cs = s.across(l, m); return cs.length ? mib(maxRss(cs)) : null; }),
  );
  if (hasBias) md.push("", "## Attention bias", "", demoteHeadings(fs.readFileSync(bias, "utf8").trim()));
  writeFile("README.md", md.join("\n") + "\n");
  return written;
}
