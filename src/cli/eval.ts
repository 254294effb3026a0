// `parallelcomp eval`: one cell (task x length x method) of the evaluation.

import type { Command } from "commander";
import { Option } from "commander";
import { loadTokenizer } from "../tokenizer/index.js";
import { METHODS, type Method } from "../method/baselines.js";
import { PRESETS } from "../method/options.js";
import { defaultModelPath } from "../model/bundled.js";
import { runEval } from "../eval/run.js";
import { LAYOUTS, TASKS, type LayoutName, type TaskName } from "../eval/tasks.js";
import { addBackendOptions, addKeepChunks, addModelOptions, int, keepChunksOf, keepWithinOf, openEngine } from "./options.js";

export function addEval(program: Command) {
  addKeepChunks(addModelOptions(addBackendOptions(program.command("eval"))
    .description("accuracy of a method on an InfiniteBench-style retrieval task at a given length")))
    .addOption(new Option("--task <name>", "task").choices([...TASKS]).default("passkey"))
    .addOption(new Option("--layout <name>", "how the question is asked: split (instruction, question, answer prefix apart), published (InfiniteBench's input, the lead inside the question), chat (that prompt as one chat message, split as the server does), no_lead (no answer lead), ruler (RULER's needle wording)").choices([...LAYOUTS]).default("split"))
    .requiredOption("--length <tokens>", "tokens per sample", int(64, 16 << 20))
    .option("--samples <n>", "samples, needle depths spread evenly from 0 to 1", int(1, 100000), 10)
    .addOption(new Option("--method <name>", "parallelcomp or a baseline").choices([...METHODS]).default("parallelcomp"))
    .addOption(new Option("--preset <name>", "named options").choices(Object.keys(PRESETS)).default("default"))
    .option("--seed <s>", "sample seed", int(0, 2 ** 31), 1)
    .option("--no-low-memory", "hold every kept chunk's KV while reading (one chunk's prefill less, one window of KV more)")
    .option("-t, --threads <n>", "threads for the kernels", int(1, 1024))
    .option("--json", "print { task, length, method, samples, accuracy, chunkRecall, prefillTokensPerSecond, peakRssBytes }")
    .addHelpText("after", `
Examples:
  parallelcomp eval --task passkey --length 4096 --samples 4 --method parallelcomp --json
  parallelcomp eval --task kv_retrieval --layout published --length 500 --samples 20 --method full`)
    .action(async (o) => {
      const model = await openEngine(o);
      try {
        const tok = loadTokenizer(model.gguf);
        const r = runEval(model, tok, {
          task: o.task as TaskName, length: o.length, samples: o.samples, method: o.method as Method, preset: o.preset, seed: o.seed,
          layout: o.layout as LayoutName, overrides: { keepChunks: keepChunksOf(o), lowMemory: o.lowMemory === false ? false : undefined, keepWithin: keepWithinOf(o) },
        }, o.json ? undefined : (s, i) => console.error(`sample ${i + 1}/${o.samples} depth ${s.depth.toFixed(2)}: ${s.correct ? "right" : "wrong"} (${JSON.stringify(s.answer)}, expected ${s.expected})${s.needleInKept === null ? "" : s.needleInKept ? ", needle chunk kept" : ", needle chunk dropped"}`));
        const { results, ...summary } = r;
        if (o.json) console.log(JSON.stringify({ ...summary, results }));
        else console.log(`${r.task} @ ${r.length} tokens, ${r.method} (${r.preset}): accuracy ${(100 * r.accuracy).toFixed(1)}% over ${r.samples}` + (r.chunkRecall === null ? "" : `, chunk recall ${(100 * r.chunkRecall).toFixed(1)}%`) + `, prefill ${r.prefillTokensPerSecond.toFixed(0)} tok/s, peak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB`);
      } finally {
        model.close();
      }
    });
}
