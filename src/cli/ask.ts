// `parallelcomp ask`: a question over a long document, answered with ParallelComp (or a baseline).

import * as fs from "node:fs";
import type { Command } from "commander";
import { Option } from "commander";
import { METHODS, type Method } from "../method/baselines.js";
import { ANSWER_TOKENS, PRESETS } from "../method/options.js";
import { ask, type AskResult } from "../api.js";
import { addBackendOptions, addKeepChunks, addModelOptions, int, keepChunksOf, keepWithinOf, openEngine } from "./options.js";
import { progressBar } from "./progress.js";
import { excerpt, explainLines, renderReport, type ReportData } from "./report.js";
import { UsageError } from "../errors.js";

/** Largest context accepted: 64 MiB of text is ~16M tokens, far past any use of the method. */
export const MAX_CONTEXT_BYTES = 64 * 1024 * 1024;

export function readContext(file: string | undefined): string {
  const fd = file === undefined || file === "-" ? 0 : openOrThrow(file);
  const where = fd === 0 ? "standard input" : file!;
  const bytes = readCapped(fd, `the context in ${where}`);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new UsageError(`the context in ${where} is not valid UTF-8 text`);
  }
}

/** All bytes of `fd` up to MAX_CONTEXT_BYTES (an error naming `what` past it); closes files, not stdin. */
export function readCapped(fd: number, what: string): Buffer {
  const where = what;
  const chunks: Buffer[] = [];
  let total = 0;
  const buf = Buffer.alloc(1 << 20);
  for (;;) {
    let n: number;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EAGAIN") continue;
      if ((e as NodeJS.ErrnoException).code === "EOF") break;
      throw new Error(`cannot read ${where}: ${(e as Error).message}`);
    }
    if (n === 0) break;
    total += n;
    if (total > MAX_CONTEXT_BYTES) throw new UsageError(`${where} is larger than ${MAX_CONTEXT_BYTES / 1024 / 1024} MiB`);
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  if (fd !== 0) fs.closeSync(fd);
  return Buffer.concat(chunks);
}

function openOrThrow(file: string): number {
  try {
    return fs.openSync(file, "r");
  } catch (e) {
    throw new Error(`cannot open the context file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export function addAsk(program: Command) {
  addKeepChunks(addModelOptions(addBackendOptions(program.command("ask"))
    .description("answer a question over a document longer than the model's window")))
    .option("-f, --context-file <file>", "the document (default: standard input)")
    .requiredOption("-q, --question <text>", "the question")
    .option("-i, --instruction <text>", "instruction placed before the document", "")
    .option("-a, --answer-prefix <text>", "text the answer starts with, e.g. \"The pass key is\"", "")
    .addOption(new Option("--method <name>", "parallelcomp or a baseline").choices([...METHODS]).default("parallelcomp"))
    .addOption(new Option("--preset <name>", "named options").choices(Object.keys(PRESETS)).default("default"))
    .option("--chunk-tokens <n>", "context tokens per chunk (default: what the window leaves)", int(16))
    .option("--parallel <n>", "chunks prefilled per batch", int(1, 256))
    .option("--no-low-memory", "hold every kept chunk's KV while reading: one chunk's prefill less, one window of KV more (by default the last kept place is encoded again at the end)")
    .option("-n, --max-tokens <n>", "answer tokens (the default holds a UUID answer with its lead in a byte-level vocabulary)", int(1, 4096), ANSWER_TOKENS)
    .option("-t, --threads <n>", "threads for the kernels", int(1, 1024))
    .option("--parse-special", "read control-token text in the question, instruction or document (\"</s>\", \"<|im_end|>\") as control tokens; by default it stays text")
    .option("--explain", "after the answer, list the kept chunks with their scores and an excerpt")
    .option("--report <file.html>", "write a self-contained HTML page: the chunks coloured by score, the answer, the timings")
    .option("--json", "print { answer, method, nChunks, keptChunks, timings, peakRssBytes } (no progress bar)")
    .addHelpText("after", `
Examples:
  parallelcomp ask -f book.txt -q "Who wrote the letter?" --explain
  cat haystack.txt | parallelcomp ask -q "What is the pass key?" -a "The pass key is" --preset retrieval --json
  parallelcomp ask -f report.txt -q "What was the revenue in 2023?" --report answer.html`)
    .action(async (o) => {
      const context = readContext(o.contextFile);
      const model = await openEngine(o);
      try {
        const bar = progressBar(!o.json);
        const streamed = !o.json;
        const request = { instruction: o.instruction, context, question: o.question, answerPrefix: o.answerPrefix, parseSpecial: !!o.parseSpecial };
        let result: AskResult;
        try {
          result = await ask(model, request, {
            method: o.method as Method, preset: o.preset, maxTokens: o.maxTokens,
            keepChunks: keepChunksOf(o), chunkTokens: o.chunkTokens, maxParallelChunks: o.parallel, lowMemory: o.lowMemory === false ? false : undefined,
            keepWithin: keepWithinOf(o),
            onProgress: (p) => bar.update(p),
            onText: streamed ? (s) => { bar.stop(); process.stdout.write(s); } : undefined,
          });
        } finally {
          bar.stop();
        }
        const tok = model.tokenizer;
        let ctx: number[] | null = null; // the context's tokens again, only if a chunk's text is shown
        const chunkText = (i: number) => {
          ctx ??= tok.encode(context, { addBos: false, parseSpecial: false });
          return tok.decode(ctx.slice(result.chunks[i].start, result.chunks[i].end));
        };
        const data: ReportData = { question: o.question, result, model: model.file, chunkText };
        if (o.report) fs.writeFileSync(o.report, renderReport(data));
        if (o.json) {
          const { chunks: _c, tokens: _t, ...rest } = result;
          const keptChunks = o.explain ? rest.keptChunks.map((k) => ({ ...k, excerpt: excerpt(data.chunkText(k.index), o.question) })) : rest.keptChunks;
          console.log(JSON.stringify({ ...rest, keptChunks }));
          return;
        }
        process.stdout.write("\n");
        if (o.explain) console.log(explainLines(data).join("\n"));
        const r = result;
        process.stderr.write(`${r.contextTokens} context tokens in ${r.nChunks} chunks; kept ${r.keptChunks.map((k) => `#${k.index} (${k.score.toFixed(3)})`).join(", ") || "-"}; prefill ${r.timings.prefillSeconds.toFixed(1)} s, decode ${r.timings.decodeSeconds.toFixed(1)} s${o.report ? `; report in ${o.report}` : ""}\n`);
        // A byte-level model spends a token per character: a UUID needs 37 of them.
        if (r.stoppedBy === "length") process.stderr.write(`the answer was cut at ${o.maxTokens} tokens (--max-tokens); it may be longer\n`);
      } finally {
        model.close();
      }
    });
}
