// The engine's commands: generate, tokenize, inspect, bench. Each prints text for people, or JSON with --json.

import * as fs from "node:fs";
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { GgufFile } from "../gguf/reader.js";
import { GgmlType, typeName } from "../gguf/types.js";
import { readConfig } from "../model/config.js";
import { loadModel } from "../model/model.js";
import { generate } from "../generate/generate.js";
import { firstInvalidUtf8, loadTokenizer } from "../tokenizer/index.js";
import { BENCH_HEADER, engineRows, formatRow, verdict, type BenchRow } from "../bench/bench.js";
import { batchingRows, kernelRows, longRows, realRows } from "../bench/sections.js";
import { checkBackend } from "../backends/index.js";
import { BACKENDS } from "../engine/engine.js";
import { SHAPES } from "../model/random-model.js";
import { readCapped } from "./ask.js";
import { addBackendOptions, addDownloadOptions, addModelOptions, int, intList, num, modelFile, openEngine } from "./options.js";
import { defaultModelPath } from "../model/bundled.js";
import { UsageError } from "../errors.js";

const kernelsOption = () => new Option("--kernels <which>", "matmul/attention kernels").choices(["auto", "native", "typescript"]).default("auto");

export function addGenerate(program: Command) {
  addModelOptions(addBackendOptions(program.command("generate"))
    .description("continue a prompt with a GGUF model (plain generation, no long-context method)"))
    .option("-p, --prompt <text>", "prompt text (tokenized with the model's tokenizer, BOS added if the model wants it)")
    .option("--prompt-tokens <ids>", "prompt as comma-separated token ids, used exactly (no BOS added)", intList(0))
    .option("-n, --max-tokens <n>", "tokens to generate", int(0, 1 << 20), 64)
    .option("--temperature <t>", "0 = greedy", num(0), 0)
    .option("--top-k <k>", "sample among the k most likely (0 = all)", int(0), 40)
    .option("--top-p <p>", "nucleus sampling mass", num(0, 1), 0.95)
    .option("--seed <s>", "sampling seed", int(0, 2 ** 32 - 1), 1)
    .option("-t, --threads <n>", "threads for the kernels", int(1, 1024))
    .addOption(kernelsOption())
    .option("--json", "print { text, tokens, promptTokens, prefillTokensPerSecond, decodeTokensPerSecond }")
    .addHelpText("after", `
Examples:
  parallelcomp generate -m model.gguf -p "Once upon a time" -n 32
  parallelcomp generate -m model.gguf --prompt-tokens 1,450,4996 --json`)
    .action(async (o) => {
      if ((o.prompt === undefined) === (o.promptTokens === undefined)) throw new UsageError("give exactly one of --prompt and --prompt-tokens");
      const model = await openEngine(o);
      try {
        const tok = loadTokenizer(model.gguf);
        const prompt: number[] = o.promptTokens ?? tok.encode(o.prompt);
        const bad = prompt.find((t) => t >= model.config.nVocab);
        if (bad !== undefined) throw new UsageError(`--prompt-tokens: id ${bad} is outside the vocabulary [0, ${model.config.nVocab})`);
        const stream = !o.json ? tok.streamDecoder() : null;
        const r = generate(model, prompt, {
          maxTokens: o.maxTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed,
          stopTokens: tok.eogTokens,
          onToken: stream ? (t) => process.stdout.write(stream.push(t)) : undefined,
        });
        if (o.json) {
          console.log(JSON.stringify({
            text: tok.decode(r.tokens), tokens: r.tokens, promptTokens: r.promptTokens,
            prefillTokensPerSecond: r.prefillTokensPerSecond, decodeTokensPerSecond: r.decodeTokensPerSecond,
          }));
        } else {
          process.stdout.write(stream!.flush() + "\n");
          process.stderr.write(`prefill ${r.promptTokens} tokens at ${r.prefillTokensPerSecond.toFixed(1)} tok/s, decode ${r.tokens.length} tokens at ${r.decodeTokensPerSecond.toFixed(1)} tok/s\n`);
        }
      } finally {
        model.close();
      }
    });
}

export function addTokenize(program: Command) {
  addModelOptions(program
    .command("tokenize")
    .description("tokenize text from standard input with a model's tokenizer; prints the ids as a JSON array"))
    .option("--no-bos", "do not add BOS even if the model wants it")
    .option("--no-parse-special", "treat control-token text such as <|im_start|> as plain text")
    .option("--json", "print { tokens, pieces } instead of the bare id array")
    .addHelpText("after", `
Example:
  echo "Hello world" | parallelcomp tokenize -m model.gguf`)
    .action(async (o) => {
      const g = GgufFile.open((await modelFile(o.model, o)) ?? defaultModelPath());
      try {
        const tok = loadTokenizer(g);
        const text = readStdinUtf8();
        const ids = tok.encode(text, { addBos: o.bos ? undefined : false, parseSpecial: o.parseSpecial });
        console.log(JSON.stringify(o.json ? { tokens: ids, pieces: ids.map((id) => tok.tokenText(id)) } : ids));
      } finally {
        g.close();
      }
    });
}

/** Standard input as UTF-8 text, up to ask's 64 MiB; invalid bytes are an error naming their offset. */
function readStdinUtf8(): string {
  const bytes = readCapped(0, "standard input");
  const bad = firstInvalidUtf8(bytes);
  if (bad < bytes.length) throw new UsageError(`standard input is not valid UTF-8 text (first bad byte at offset ${bad})`);
  return bytes.toString("utf8");
}

/**
 * A GGUF described from its own keys, whatever its architecture: shape, tensor types, chat template,
 * and whether our engine runs it (or what it lacks: `native` is then the reason, in one line).
 */
export function inspectModel(file: string) {
  const g = GgufFile.open(file);
  try {
    const arch = g.string("general.architecture", "unknown");
    const key = (name: string) => `${arch}.${name}`;
    const num = (name: string): number | null => (g.has(key(name)) ? g.number(key(name)) : null);
    let native = "runs";
    try {
      readConfig(g);
    } catch (e) {
      native = (e as Error).message.replace(/^[^:]*\.gguf: /, "");
    }
    let params = 0;
    for (const t of g.tensors.values()) params += t.ne.reduce((a, b) => a * b, 1);
    const heads = num("attention.head_count");
    const dim = num("embedding_length");
    const template = g.string("tokenizer.chat_template", "");
    return {
      file,
      fileBytes: fs.statSync(file).size,
      ggufVersion: g.version,
      name: g.string("general.name", arch),
      architecture: arch,
      contextLength: num("context_length"),
      embeddingLength: dim,
      layers: num("block_count"),
      heads,
      kvHeads: num("attention.head_count_kv") ?? heads,
      headDim: num("attention.key_length") ?? (dim && heads ? dim / heads : null),
      feedForwardLength: num("feed_forward_length"),
      vocabSize: g.tensors.get("token_embd.weight")?.ne[1] ?? null,
      ropeFreqBase: num("rope.freq_base"),
      parameters: params,
      tokenizer: g.string("tokenizer.ggml.model", "none"),
      tensorTypes: g.tensorTypeCounts(),
      chatTemplate: template ? (template.length > 300 ? `${template.slice(0, 300)}... (${template.length} characters)` : template) : null,
      native,
    };
  } finally {
    g.close();
  }
}

export function addInspect(program: Command) {
  addDownloadOptions(program
    .command("inspect")
    .description("describe any GGUF model: architecture, context length, layers, heads, tensor types, chat template, and whether our engine runs it (else: --backend llama.cpp)")
    .argument("[model]", "GGUF model: a file, hf:OWNER/REPO/FILE.gguf, hf:OWNER/REPO:QUANT or an http(s) URL (default: the bundled model)"))
    .option("--json", "print JSON")
    .addHelpText("after", `
Examples:
  parallelcomp inspect --json
  parallelcomp inspect ./SmolLM2-135M-Instruct-Q8_0.gguf`)
    .action(async (ref: string | undefined, o) => {
      const info = inspectModel((await modelFile(ref, o)) ?? defaultModelPath());
      if (o.json) return console.log(JSON.stringify(info, null, 2));
      const show = (v: unknown) => (v && typeof v === "object" ? Object.entries(v).map(([t, n]) => `${t} x${n}`).join(", ") : typeof v === "string" ? v.replace(/\n/g, "\\n") : String(v ?? "-"));
      const lines = Object.entries(info).map(([k, v]) => `${k.padEnd(18)} ${show(v)}`);
      if (info.native !== "runs") lines.push(`our engine does not run it (${info.native}); llama.cpp may: --backend llama.cpp`);
      console.log(lines.join("\n"));
    });
}

const SECTIONS = ["engine", "kernel", "long", "batching", "real"] as const;

export function addBench(program: Command) {
  const types: Record<string, GgmlType> = { F32: GgmlType.F32, F16: GgmlType.F16, BF16: GgmlType.BF16, Q8_0: GgmlType.Q8_0, Q4_0: GgmlType.Q4_0, Q4_K: GgmlType.Q4_K, Q5_K: GgmlType.Q5_K, Q6_K: GgmlType.Q6_K };
  program
    .command("bench")
    .description("every performance target as a ratio measured in one run: prefill / decode beside llama.cpp (same GGUF, same threads), F32 matmul beside OpenBLAS, long inputs beside llama.cpp's plain prefill, parallel batching and compression (needs the devDependency node-llama-cpp)")
    .option("--sections <list>", `what to measure, comma-separated: ${SECTIONS.join(", ")}`, (v: string) => {
      const list = v.split(",").map((x) => x.trim());
      for (const x of list) if (!(SECTIONS as readonly string[]).includes(x)) throw new InvalidArgumentError(`unknown section "${x}" (known: ${SECTIONS.join(", ")})`);
      return list;
    }, [...SECTIONS])
    .addOption(new Option("--shape <name>", "engine rows: one model shape (random weights; default: SmolLM2-135M F16 and Q8_0, Qwen2.5-0.5B F16)").choices(Object.keys(SHAPES)))
    .addOption(new Option("--type <type>", "engine rows: one weight type").choices(Object.keys(types)))
    .option("--prompts <lengths>", "engine rows: prompt lengths for prefill", intList(1), [512, 2048])
    .option("--decode <n>", "engine rows: tokens decoded after the first prompt", int(1), 32)
    .option("--long-tokens <n>", "long rows: ParallelComp end to end vs llama.cpp's prefill of this many tokens", int(1024), 32768)
    .option("--rss-tokens <small,big>", "long rows: peak RSS of ParallelComp at big vs small tokens", intList(1024), [16384, 131072])
    .option("--batch <chunks,tokens>", "batching rows: this many chunks of this many tokens", intList(1), [8, 512])
    .option("--budget <MiB>", "batching rows: the KV memory budget", int(1), 256)
    .option("-t, --threads <n>", "threads, for every engine", int(1, 1024), 2)
    .option("--repeats <n>", "runs per engine measurement (the best is kept)", int(1), 2)
    .option("--no-llama-cpp", "measure ours only")
    .addOption(new Option("--backend <name>", "the engine of the batching rows (the engine rows compare ours with llama.cpp anyway)").choices([...BACKENDS]).default("native"))
    .option("--json", "print JSON rows")
    .addHelpText("after", `
The whole run (npm run bench) takes about 20 minutes on 2 cores, most of it llama.cpp's
plain prefill of 32K tokens and ParallelComp over 128K; the real section (Q4_K_M at the
Llama-3.2-1B and Llama-3.1-8B shapes; 5.6 GB of random-weight files, made once in the temp
folder) adds about as much again.

Examples:
  npm run bench
  parallelcomp bench --sections engine --shape qwen2.5-0.5b --type F16 --prompts 512
  parallelcomp bench --sections kernel,batching`)
    .action(async (o) => {
      const log = o.json ? () => {} : console.log;
      const sections = new Set<string>(o.sections);
      if (o.rssTokens.length !== 2 || o.rssTokens[0] >= o.rssTokens[1]) throw new UsageError(`--rss-tokens wants two lengths, small first, got ${o.rssTokens.join(",")}`);
      if (o.batch.length !== 2) throw new UsageError(`--batch wants chunks,tokens, got ${o.batch.join(",")}`);
      const rows: BenchRow[] = [];
      log(`bench: random-weight models of real shapes, ${o.threads} threads\n${BENCH_HEADER}`);
      if (sections.has("engine")) {
        const configs: Array<[string, GgmlType]> = o.shape || o.type
          ? [[o.shape ?? "smollm2-135m", types[o.type ?? "F16"]]]
          : [["smollm2-135m", GgmlType.F16], ["smollm2-135m", GgmlType.Q8_0], ["qwen2.5-0.5b", GgmlType.F16]];
        for (const [shape, type] of configs) {
          rows.push(...(await engineRows({ shape, type, prompts: o.prompts, decode: o.decode, threads: o.threads, repeats: o.repeats, llamaCpp: o.llamaCpp, spreadRuns: 5 }, log)));
        }
      }
      const section = (r: BenchRow[]) => { rows.push(...r); r.forEach((x) => log(formatRow(x))); };
      if (sections.has("kernel")) section(kernelRows(o.threads));
      if (sections.has("long")) section(await longRows({ threads: o.threads, long: o.longTokens, small: o.rssTokens[0], big: o.rssTokens[1], llamaCpp: o.llamaCpp, log }));
      if (sections.has("real")) rows.push(...(await realRows({ threads: o.threads, llamaCpp: o.llamaCpp, log })));
      if (sections.has("batching")) section(batchingRows({ threads: o.threads, chunks: o.batch[0], chunkTokens: o.batch[1], budgetMiB: o.budget, backend: checkBackend(o.backend) }));
      const judged = rows.filter((r) => verdict(r) !== "");
      const missed = judged.filter((r) => verdict(r) === "MISSED");
      log(`\ntargets: ${judged.length - missed.length} of ${judged.length} met${missed.length ? `; missed: ${missed.map((r) => r.what).join("; ")}` : ""}`);
      if (o.json) console.log(JSON.stringify({ threads: o.threads, rows: rows.map((r) => ({ ...r, verdict: verdict(r) || null })) }, null, 2));
    });
}
