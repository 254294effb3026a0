// `parallelcomp sweep`: the evaluation over tasks x lengths x methods into OUT/results.json, and
// (`--page-only`) the results page rendered from it.

import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import * as os from "node:os";
import * as path from "node:path";
import { METHODS, type Method } from "../method/baselines.js";
import { PRESETS } from "../method/options.js";
import { BUNDLED_MODEL, defaultModelPath } from "../model/bundled.js";
import { TASKS, type TaskName } from "../eval/tasks.js";
import { runSweep, SWEEP_DEFAULTS, WINDOW_MARGIN, type LengthSpec } from "../eval/sweep.js";
import { renderResultsPage } from "../eval/results-page.js";
import { addModelOptions, int, modelFile, num } from "./options.js";
import { BACKENDS } from "../engine/engine.js";

function nameList<T extends string>(what: string, known: readonly T[]) {
  return (value: string): T[] => {
    const parts = value.split(",").map((s) => s.trim());
    const bad = parts.find((p) => !known.includes(p as T));
    if (bad !== undefined) throw new InvalidArgumentError(`unknown ${what} "${bad}" (known: ${known.join(", ")})`);
    return [...new Set(parts)] as T[];
  };
}

function lengthList(value: string): LengthSpec[] {
  return value.split(",").map((s) => s.trim()).map((p) => {
    if (p === "window") return "window";
    if (!/^\d+$/.test(p) || Number(p) < 64 || Number(p) > 16 << 20) throw new InvalidArgumentError(`expected "window" or token counts from 64 to ${16 << 20}, got "${p}"`);
    return Number(p);
  });
}

export function addSweep(program: Command) {
  const d = SWEEP_DEFAULTS;
  addModelOptions(program
    .command("sweep")
    .description("eval over tasks x lengths x methods, each cell in its own process, into OUT/results.json; --page-only renders OUT/README.md"))
    .addOption(new Option("--tasks <list>", "comma-separated tasks").argParser(nameList("task", TASKS)).default(d.tasks, d.tasks.join(",")))
    .addOption(new Option("--lengths <list>", `comma-separated token counts; "window" = the trained window less ${WINDOW_MARGIN} answer tokens`)
      .argParser(lengthList).default(d.lengths, d.lengths.join(",")))
    .addOption(new Option("--methods <list>", "comma-separated methods").argParser(nameList("method", METHODS)).default(d.methods, d.methods.join(",")))
    .addOption(new Option("--preset <name>", "named options for every cell").choices(Object.keys(PRESETS)).default(d.preset))
    .option("--samples <n>", "samples per cell, needle depths spread evenly from 0 to 1", int(1, 100000), d.samples)
    .option("--seed <s>", "sample seed", int(0, 2 ** 31), d.seed)
    .option("--out <dir>", "folder for results.json, README.md and the plots", "docs/results")
    .option("-t, --threads <n>", "threads for the kernels (default: all online CPUs)", int(1, 1024))
    .addOption(new Option("--backend <name>", "engine of every cell: native, llama.cpp (CPU or GPU build), auto").choices([...BACKENDS]).default("native"))
    .option("--max-cell-seconds <s>", "skip a cell estimated to take longer (from its method's shorter cells); stop one running 3x longer", num(1), d.maxCellSeconds)
    .option("--quadratic-limit <tokens>", "skip full, ntk and pcw above this length (their cost grows with its square)", int(64), d.quadraticLimit)
    .option("--force", "run every cell: no skip rule, no stop")
    .option("--resume", "keep the cells of OUT/results.json that have the same settings, run the rest (cells of other settings are dropped)")
    .option("--page-only", "run nothing: render OUT/README.md and its SVG plots from OUT/results.json")
    .addHelpText("after", `
Examples:
  parallelcomp sweep --tasks passkey --lengths window,4096 --methods parallelcomp,truncate --samples 2 --out /tmp/r
  parallelcomp sweep --resume --out docs/results
  parallelcomp sweep --page-only --out docs/results`)
    .action(async (o) => {
      if (o.pageOnly) {
        for (const f of await renderResultsPage(o.out)) process.stderr.write(`wrote ${f}\n`);
        return;
      }
      const model = (await modelFile(o.model, o)) ?? defaultModelPath();
      await runSweep({
        model, bundled: path.resolve(model) === BUNDLED_MODEL,
        tasks: o.tasks as TaskName[], lengths: o.lengths, methods: o.methods as Method[], preset: o.preset, samples: o.samples, seed: o.seed,
        threads: o.threads ?? os.availableParallelism(), maxCellSeconds: o.maxCellSeconds, quadraticLimit: o.quadraticLimit,
        force: !!o.force, resume: !!o.resume, out: o.out, backend: o.backend,
      });
      process.stderr.write(`results in ${path.join(o.out, "results.json")}; render the page with: parallelcomp sweep --page-only --out ${o.out}\n`);
    });
}
