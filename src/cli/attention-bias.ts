// `parallelcomp attention-bias`: where the question's attention goes, per layer, under local and
// parallel attention and with bias calibration (eval/attention-bias.ts); writes the numbers as
// JSON and markdown, and one SVG chart per chunk count.

import * as fs from "node:fs";
import * as path from "node:path";
import type { Command } from "commander";
import { Option } from "commander";
import { loadModel } from "../model/model.js";
import { analyzeAttentionBias, attentionBiasMarkdown, attentionBiasPlots } from "../eval/attention-bias.js";
import { TASKS, type TaskName } from "../eval/tasks.js";
import { addModelOptions, int, intList, modelFile, num } from "./options.js";
import { PRESETS } from "../method/options.js";

export function addAttentionBias(program: Command) {
  addModelOptions(program
    .command("attention-bias")
    .description("share of the question's attention on each chunk's sink, middle and recent tokens, per layer: local vs parallel vs parallel with calibration"))
    .addOption(new Option("--task <name>", "samples of this task").choices([...TASKS]).default("passkey"))
    .option("--samples <n>", "samples per chunk count, needle depths spread evenly from 0 to 1", int(1, 100000), 8)
    .addOption(new Option("--chunks <list>", "chunk counts N of the parallel settings, comma-separated").argParser(intList(1)).default([4, 8], "4,8"))
    .option("--chunk-tokens <n>", "context tokens per chunk (default: what the trained window leaves)", int(16, 16 << 20))
    .option("--last-rows <n>", "average the question's last N rows only (0 = all)", int(0, 1 << 20), 0)
    .option("--threshold <a>", "calibration threshold (default: the calibrate preset's 0.1)", num(0, 1))
    .option("--seed <s>", "sample seed", int(0, 2 ** 31), 1)
    .option("--out <dir>", "folder for attention-bias.json, attention-bias.md and the SVG charts", "attention-bias")
    .option("-t, --threads <n>", "threads for the kernels", int(1, 1024))
    .option("--json", "print the result as JSON instead of the markdown table")
    .addHelpText("after", `
Examples:
  parallelcomp attention-bias --samples 8 --chunks 4,8 --out results/attention-bias -t 1
  parallelcomp attention-bias -m model.gguf --samples 2 --chunks 4 --last-rows 1 --json`)
    .action(async (o) => {
      const model = loadModel(await modelFile(o.model, o), { threads: o.threads });
      try {
        const r = analyzeAttentionBias(model, model.tokenizer, {
          task: o.task as TaskName, samples: o.samples, chunks: o.chunks, chunkTokens: o.chunkTokens, lastRows: o.lastRows, seed: o.seed,
          calibration: o.threshold === undefined ? undefined : { ...PRESETS.calibrate.calibration, threshold: o.threshold },
          onProgress: (done, total) => process.stderr.write(`sample ${done}/${total}\n`),
        });
        const md = attentionBiasMarkdown(r);
        fs.mkdirSync(o.out, { recursive: true });
        fs.writeFileSync(path.join(o.out, "attention-bias.json"), JSON.stringify(r, null, 2) + "\n");
        fs.writeFileSync(path.join(o.out, "attention-bias.md"), md);
        const plots = await attentionBiasPlots(r);
        for (const p of plots) fs.writeFileSync(path.join(o.out, p.file), p.svg);
        process.stdout.write(o.json ? JSON.stringify(r) + "\n" : md);
        process.stderr.write(`wrote ${["attention-bias.json", "attention-bias.md", ...plots.map((p) => p.file)].map((f) => path.join(o.out, f)).join(", ")}\n`);
      } finally {
        model.close();
      }
    });
}
