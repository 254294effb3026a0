// The engine's commands: generate, inspect, bench. Each prints text for people, or JSON with --json.

import * as fs from "node:fs";
import type { Command } from "commander";
import { Option } from "commander";
import { GgufFile } from "../gguf/reader.js";
import { GgmlType, typeName } from "../gguf/types.js";
import { readConfig } from "../model/config.js";
import { loadModel } from "../model/model.js";
import { generate } from "../generate/generate.js";
import { firstInvalidUtf8, loadTokenizer } from "../tokenizer/index.js";
import { BENCH_HEADER, runBench } from "../bench/bench.js";
import { SHAPES } from "../model/random-model.js";
import { int, intList, num } from "./options.js";
import { defaultModelPath } from "../model/bundled.js";

const kernelsOption = () => new Option("--kernels <which>", "matmul/attention kernels").choices(["auto", "native", "typescript"]).default("auto");

export function addGenerate(program: Command) {
  program
    .command("generate")
    .description("continue a prompt with a GGUF model (plain generation, no long-context method)")
    .option("-m, --model <file>", "GGUF model file (default: the bundled model)")
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
    .action((o) => {
      if ((o.prompt === undefined) === (o.promptTokens === undefined)) throw new Error("give exactly one of --prompt and --prompt-tokens");
      const model = loadModel(o.model ?? defaultModelPath(), { threads: o.threads, kernels: o.kernels });
      try {
        const tok = loadTokenizer(model.gguf);
        const prompt: number[] = o.promptTokens ?? tok.encode(o.prompt);
        const bad = prompt.find((t) => t >= model.config.nVocab);
        if (bad !== undefined) throw new Error(`--prompt-tokens: id ${bad} is outside the vocabulary [0, ${model.config.nVocab})`);
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
  program
    .command("tokenize")
    .description("tokenize text from standard input with a model's tokenizer; prints the ids as a JSON array")
    .option("-m, --model <file>", "GGUF model file (default: the bundled model)")
    .option("--no-bos", "do not add BOS even if the model wants it")
    .option("--no-parse-special", "treat control-token text such as <|im_start|> as plain text")
    .option("--json", "print { tokens, pieces } instead of the bare id array")
    .addHelpText("after", `
Example:
  echo "Hello world" | parallelcomp tokenize -m model.gguf`)
    .action((o) => {
      const g = GgufFile.open(o.model ?? defaultModelPath());
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

/** All of standard input as UTF-8 text; invalid bytes are an error naming their offset. */
function readStdinUtf8(): string {
  const bytes = fs.readFileSync(0);
  const bad = firstInvalidUtf8(bytes);
  if (bad < bytes.length) throw new Error(`standard input is not valid UTF-8 text (first bad byte at offset ${bad})`);
  return bytes.toString("utf8");
}

export function inspectModel(file: string) {
  const g = GgufFile.open(file);
  try {
    const c = readConfig(g);
    let params = 0;
    for (const t of g.tensors.values()) params += t.ne.reduce((a, b) => a * b, 1);
    return {
      file,
      fileBytes: fs.statSync(file).size,
      ggufVersion: g.version,
      name: c.name,
      architecture: c.arch,
      contextLength: c.nCtxTrain,
      embeddingLength: c.dim,
      layers: c.nLayers,
      heads: c.nHeads,
      kvHeads: c.nKvHeads,
      headDim: c.headDim,
      feedForwardLength: c.nFf,
      vocabSize: c.nVocab,
      ropeFreqBase: c.ropeBase,
      parameters: params,
      tokenizer: g.string("tokenizer.ggml.model", "none"),
      tensorTypes: g.tensorTypeCounts(),
    };
  } finally {
    g.close();
  }
}

export function addInspect(program: Command) {
  program
    .command("inspect")
    .description("describe a GGUF model: architecture, context length, layers, heads, tensor types")
    .argument("[model]", "GGUF model file (default: the bundled model)")
    .option("--json", "print JSON")
    .addHelpText("after", `
Examples:
  parallelcomp inspect --json
  parallelcomp inspect ./SmolLM2-135M-Instruct-Q8_0.gguf`)
    .action((file: string | undefined, o) => {
      const info = inspectModel(file ?? defaultModelPath());
      if (o.json) return console.log(JSON.stringify(info, null, 2));
      const lines = Object.entries(info).map(([k, v]) => `${k.padEnd(18)} ${typeof v === "object" ? Object.entries(v).map(([t, n]) => `${t} x${n}`).join(", ") : v}`);
      console.log(lines.join("\n"));
    });
}

export function addBench(program: Command) {
  const types: Record<string, GgmlType> = { F32: GgmlType.F32, F16: GgmlType.F16, BF16: GgmlType.BF16, Q8_0: GgmlType.Q8_0, Q4_0: GgmlType.Q4_0, Q4_K: GgmlType.Q4_K, Q5_K: GgmlType.Q5_K, Q6_K: GgmlType.Q6_K };
  program
    .command("bench")
    .description("prefill and decode speed beside llama.cpp's, same GGUF, same threads, one run (needs the devDependency node-llama-cpp)")
    .addOption(new Option("--shape <name>", "model shape (random weights)").choices(Object.keys(SHAPES)).default("smollm2-135m"))
    .addOption(new Option("--type <type>", "weight type").choices(Object.keys(types)).default("F16"))
    .option("--prompts <lengths>", "prompt lengths for prefill", intList(1), [512, 2048])
    .option("--decode <n>", "tokens decoded after the first prompt", int(1), 32)
    .option("-t, --threads <n>", "threads, for both engines", int(1, 1024), 2)
    .option("--repeats <n>", "runs per measurement (the best is kept)", int(1), 2)
    .option("--no-llama-cpp", "measure ours only")
    .option("--json", "print JSON rows")
    .addHelpText("after", `
Examples:
  npm run bench
  parallelcomp bench --shape qwen2.5-0.5b --type F16 --prompts 512 --threads 2`)
    .action(async (o) => {
      if (!o.json) console.log(`bench: ${o.shape}-shaped ${o.type}, random weights\n${BENCH_HEADER}`);
      const rows = await runBench(
        { shape: o.shape, type: types[o.type], prompts: o.prompts, decode: o.decode, threads: o.threads, repeats: o.repeats, llamaCpp: o.llamaCpp },
        o.json ? undefined : console.log,
      );
      if (o.json) console.log(JSON.stringify({ shape: o.shape, type: typeName(types[o.type]), threads: o.threads, rows }, null, 2));
    });
}
