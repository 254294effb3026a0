// `parallelcomp demo`: a pass key hidden in 128K tokens of filler, asked of a model that was
// trained on 512; shows what ParallelComp read, what it kept, the answer, the time and memory.

import type { Command } from "commander";
import { Option } from "commander";
import { ask } from "../api.js";
import { makeSample, isCorrect, TASKS, type TaskName } from "../eval/tasks.js";
import { addBackendOptions, addModelOptions, int, num, openEngine } from "./options.js";
import { progressBar } from "./progress.js";
import { explainLines } from "./report.js";
import { holdsAnswer } from "../eval/run.js";

export function addDemo(program: Command) {
  addModelOptions(addBackendOptions(program.command("demo"))
    .description("find a pass key hidden in 128K tokens with the bundled model, and show how"))
    .addOption(new Option("--task <name>", "what is hidden").choices([...TASKS]).default("passkey"))
    .option("--length <tokens>", "document length in tokens", int(256, 16 << 20), 131072)
    .option("--depth <fraction>", "where the needle sits, 0 (start) to 1 (end)", num(0, 1), 0.62)
    .option("--seed <s>", "sample seed", int(0, 2 ** 31), 7)
    .option("-t, --threads <n>", "threads for the kernels", int(1, 1024))
    .addHelpText("after", `
Examples:
  parallelcomp demo
  parallelcomp demo --task number_string --length 32768 --depth 0.1`)
    .action(async (o) => {
      const model = await openEngine(o);
      try {
        const tok = model.tokenizer;
        const count = (s: string) => tok.encode(s, { addBos: false, parseSpecial: false }).length;
        const sample = makeSample(o.task as TaskName, o.length, o.depth, o.seed, count);
        const req = sample.request;
        const needleToken = count(req.context.slice(0, sample.needleOffset));
        const say = (s: string) => process.stdout.write(s + "\n");
        say(`model: ${model.file} (trained window ${model.config.nCtxTrain} tokens)`);
        say(`document: ${count(req.context).toLocaleString("en-US")} tokens of filler, with "${req.context.slice(sample.needleOffset, req.context.indexOf(".", sample.needleOffset) + 1)}" at token ${needleToken.toLocaleString("en-US")} (depth ${o.depth})`);
        say(`question: ${req.question}`);
        const bar = progressBar(true);
        let r;
        try {
          // The default answer length (ANSWER_TOKENS), as a user's `ask` gets it: no peeking at the answer.
          r = await ask(model, req, { preset: "retrieval", onProgress: (p) => bar.update(p) });
        } finally {
          bar.stop();
        }
        say(`read ${r.nChunks} chunks of up to ${Math.max(...r.chunks.map((c) => c.end - c.start))} tokens, each with local positions, scored by how predictable the question is given it`);
        const ids = tok.encode(req.context, { addBos: false, parseSpecial: false });
        say(explainLines({ question: req.question, result: r, model: model.file, chunkText: (i) => tok.decode(ids.slice(r.chunks[i].start, r.chunks[i].end)) }).join("\n"));
        // A needle cut between two chunks leaves its value in both halves.
        const holders = r.chunks.filter((c) => holdsAnswer(tok, ids, c, sample.answer));
        const kept = holders.filter((c) => c.kept);
        say(`the value ${sample.answer} is in chunk ${holders.map((c) => "#" + c.index).join(" and ") || "?"}${kept.length > 0 ? `, and #${kept[0].index} was kept` : ", which was NOT kept"}`);
        say(`answer: ${req.answerPrefix ?? ""}${r.answer}   (${isCorrect(sample, r.answer) ? "right" : `wrong: expected ${sample.answer}`})`);
        const t = r.timings;
        say(`time: prefill ${t.prefillSeconds.toFixed(1)} s (${Math.round(r.contextTokens / t.prefillSeconds).toLocaleString("en-US")} tokens/s), decode ${t.decodeSeconds.toFixed(2)} s; peak memory ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB`);
      } finally {
        model.close();
      }
    });
}
