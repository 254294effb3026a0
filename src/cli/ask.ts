// `parallelcomp ask`: a question over a long document, answered with ParallelComp (or a baseline).

import * as fs from "node:fs";
import type { Command } from "commander";
import { Option } from "commander";
import { loadModel } from "../model/model.js";
import { loadTokenizer } from "../tokenizer/index.js";
import { METHODS, runMethod, type Method } from "../method/baselines.js";
import { PRESETS, resolveOptions } from "../method/options.js";
import { boundaryOf, tokenizeRequest } from "../method/request.js";
import { defaultModelPath } from "../model/bundled.js";
import { int } from "./options.js";

/** Largest context accepted: 64 MiB of text is ~16M tokens, far past any use of the method. */
export const MAX_CONTEXT_BYTES = 64 * 1024 * 1024;

export function readContext(file: string | undefined): string {
  const fd = file === undefined || file === "-" ? 0 : openOrThrow(file);
  const where = fd === 0 ? "standard input" : file!;
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
      throw new Error(`cannot read the context from ${where}: ${(e as Error).message}`);
    }
    if (n === 0) break;
    total += n;
    if (total > MAX_CONTEXT_BYTES) throw new Error(`the context in ${where} is larger than ${MAX_CONTEXT_BYTES / 1024 / 1024} MiB`);
    chunks.push(Buffer.from(buf.subarray(0, n)));
  }
  if (fd !== 0) fs.closeSync(fd);
  const bytes = Buffer.concat(chunks);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`the context in ${where} is not valid UTF-8 text`);
  }
}

function openOrThrow(file: string): number {
  try {
    return fs.openSync(file, "r");
  } catch (e) {
    throw new Error(`cannot open the context file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export function addAsk(program: Command) {
  program
    .command("ask")
    .description("answer a question over a document longer than the model's window")
    .option("-m, --model <file>", "GGUF model (default: the bundled model)")
    .option("-f, --context-file <file>", "the document (default: standard input)")
    .requiredOption("-q, --question <text>", "the question")
    .option("-i, --instruction <text>", "instruction placed before the document", "")
    .option("-a, --answer-prefix <text>", "text the answer starts with, e.g. \"The pass key is\"", "")
    .addOption(new Option("--method <name>", "parallelcomp or a baseline").choices([...METHODS]).default("parallelcomp"))
    .addOption(new Option("--preset <name>", "named options").choices(Object.keys(PRESETS)).default("default"))
    .option("-k, --top-k <k>", "chunks kept", int(1, 4096))
    .option("--chunk-tokens <n>", "context tokens per chunk (default: what the window leaves)", int(16))
    .option("--parallel <n>", "chunks prefilled per batch", int(1, 256))
    .option("-n, --max-tokens <n>", "answer tokens", int(1, 4096), 32)
    .option("-t, --threads <n>", "threads for the kernels", int(1, 1024))
    .option("--json", "print { answer, method, nChunks, keptChunks, timings, peakRssBytes }")
    .addHelpText("after", `
Examples:
  parallelcomp ask -f book.txt -q "Who wrote the letter?"
  cat haystack.txt | parallelcomp ask -q "What is the pass key?" -a "The pass key is" --preset retrieval --json`)
    .action((o) => {
      const t0 = performance.now();
      const context = readContext(o.contextFile);
      const model = loadModel(o.model ?? defaultModelPath(), { threads: o.threads });
      try {
        const tok = loadTokenizer(model.gguf);
        const req = tokenizeRequest(tok, model.gguf, { instruction: o.instruction, context, question: o.question, answerPrefix: o.answerPrefix });
        const tokenizeSeconds = (performance.now() - t0) / 1000;
        const overrides = {
          maxTokens: o.maxTokens,
          ...(o.topK !== undefined ? { topK: o.topK } : {}),
          ...(o.chunkTokens !== undefined ? { chunkTokens: o.chunkTokens } : {}),
          ...(o.parallel !== undefined ? { maxParallelChunks: o.parallel } : {}),
        };
        const opts = resolveOptions(o.preset, overrides);
        const stream = o.json ? null : tok.streamDecoder({ skipSpecial: true });
        const r = runMethod(o.method as Method, model, req, opts, {
          boundary: boundaryOf(tok),
          stopTokens: tok.eogTokens,
          onToken: stream ? (t) => process.stdout.write(stream.push(t)) : undefined,
        });
        const answer = tok.decode(r.tokens, { skipSpecial: true });
        const peakRssBytes = process.resourceUsage().maxRSS * 1024;
        if (o.json) {
          console.log(JSON.stringify({
            answer, method: o.method, nChunks: r.nChunks,
            keptChunks: r.kept.map((k) => ({ index: k.index, score: k.score, tokens: k.tokens })),
            timings: { tokenizeSeconds, prefillSeconds: r.prefillSeconds, decodeSeconds: r.decodeSeconds },
            contextTokens: req.context.length,
            peakRssBytes,
          }));
        } else {
          process.stdout.write(stream!.flush() + "\n");
          process.stderr.write(`${req.context.length} context tokens in ${r.nChunks} chunks; kept ${r.kept.map((k) => `#${k.index} (${k.score.toFixed(3)})`).join(", ") || "-"}; prefill ${r.prefillSeconds.toFixed(1)} s, decode ${r.decodeSeconds.toFixed(1)} s\n`);
        }
      } finally {
        model.close();
      }
    });
}
