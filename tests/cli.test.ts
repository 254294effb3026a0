// The command line, driven as a user would: JSON fields, agreement with the library, one clear
// error line (no stack trace) for each kind of bad input, exiting 2 for a UsageError (our checks
// of a request) and 1 for anything else (an unreadable file, commander's own flag checks).

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { writeRandomModel } from "../src/model/random-model.js";
import { kv } from "../src/gguf/writer.js";
import { loadModel } from "../src/model/model.js";
import { generate } from "../src/generate/generate.js";
import { tempDir } from "./support/tmp.js";

const BIN = fileURLToPath(new URL("../../bin/parallelcomp.js", import.meta.url));
const dir = tempDir();
const model = path.join(dir, "m.gguf");
writeRandomModel(model, "smollm2-135m", { seed: 2, shape: { nLayers: 2, nVocab: 300, nCtxTrain: 256, dim: 128, nHeads: 4, nKvHeads: 2, nFf: 256 } });

function cli(args: string[], input?: string | Buffer) {
  const r = spawnSync(process.execPath, [BIN, ...args], { input, encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function expectError(args: string[], pattern: RegExp, code: 1 | 2, input?: string | Buffer) {
  const r = cli(args, input);
  assert.equal(r.code, code, `exit code of ${args.join(" ")}: ${r.err}`);
  assert.match(r.err, pattern);
  assert.doesNotMatch(r.err, /\n\s+at /, "no stack trace");
}

test("generate --prompt-tokens --json prints the issue's fields, with the library's greedy tokens", () => {
  const r = cli(["generate", "-m", model, "--prompt-tokens", "5,6,7,8", "-n", "6", "--json"]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.deepEqual(Object.keys(j).sort(), ["decodeTokensPerSecond", "prefillTokensPerSecond", "promptTokens", "text", "tokens"]);
  assert.equal(j.promptTokens, 4);
  const m = loadModel(model);
  assert.deepEqual(j.tokens, generate(m, [5, 6, 7, 8], { maxTokens: 6 }).tokens);
  m.close();
  assert.ok(j.prefillTokensPerSecond > 0 && j.decodeTokensPerSecond > 0);
});

test("generate --prompt tokenizes with the model's tokenizer and streams text", () => {
  const r = cli(["generate", "-m", model, "-p", "hello", "-n", "3"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /prefill 5 tokens/); // 5 bytes, no BOS (add_bos_token false)
});

test("tokenize prints the ids as a JSON array; control-token text is parsed unless --no-parse-special", () => {
  const parsed = cli(["tokenize", "-m", model], "a<s>b");
  assert.equal(parsed.code, 0, parsed.err);
  assert.deepEqual(JSON.parse(parsed.out), [97, 298, 98]); // byte ids; "<s>" is BOS (298) in this vocabulary
  const plain = cli(["tokenize", "-m", model, "--no-parse-special"], "a<s>b");
  assert.deepEqual(JSON.parse(plain.out), [97, 60, 115, 62, 98]);
  expectError(["tokenize", "-m", model], /standard input is not valid UTF-8 text \(first bad byte at offset 1\)/, 2, Buffer.from([0x41, 0xc3, 0x28]));
});

test("inspect --json describes the model", () => {
  const r = cli(["inspect", model, "--json"]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.architecture, "llama");
  assert.equal(j.contextLength, 256);
  assert.equal(j.layers, 2);
  assert.equal(j.heads, 4);
  assert.equal(j.kvHeads, 2);
  assert.deepEqual(j.tensorTypes, { F32: 2 * 9 + 2 });
});

test("inspect --json describes a model our engine does not run (mistral3), saying what it lacks", () => {
  const q = path.join(dir, "mistral3.gguf");
  writeRandomModel(q, "qwen3-0.6b", { shape: { arch: "mistral3", nLayers: 1, nVocab: 300, dim: 64, nHeads: 4, nKvHeads: 2, nFf: 128, headDim: 32 }, metadata: [["tokenizer.chat_template", kv.str("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")]] });
  const r = cli(["inspect", q, "--json"]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.architecture, "mistral3");
  assert.equal(j.heads, 4);
  assert.equal(j.headDim, 32);
  assert.match(j.chatTemplate, /<\|im_start\|>/);
  assert.match(j.native, /general\.architecture is "mistral3", supported: llama, qwen2, qwen3, smollm3, granite, phi3, gemma2, gemma3/);
  const text = cli(["inspect", q]);
  assert.match(text.out, /our engine does not run it .*--backend llama\.cpp/);
});

test("inspect --json without a model describes the bundled model", () => {
  const r = cli(["inspect", "--json"]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.match(j.file, /models\/parallelcomp-retrieval\.gguf$/);
  assert.equal(j.contextLength, 512);
  assert.equal(j.vocabSize, 258);
  assert.equal(j.architecture, "llama");
});

test("ask --json reports answer, method, chunks kept with scores, timings and peak RSS", () => {
  const context = "The grass is green. The sky is blue. ".repeat(40);
  const r = cli(["ask", "-m", model, "-q", "What colour is the sky?", "-k", "2", "-n", "4", "--json"], context);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  assert.equal(j.method, "parallelcomp");
  assert.ok(j.nChunks >= 6, `nChunks ${j.nChunks}`);
  assert.equal(j.keptChunks.length, 2);
  for (const k of j.keptChunks) assert.ok(Number.isFinite(k.score) && k.tokens > 0);
  assert.ok(j.timings.prefillSeconds > 0 && j.timings.tokenizeSeconds >= 0 && j.timings.decodeSeconds >= 0);
  assert.ok(j.peakRssBytes > 10 * 2 ** 20);
  const lean = cli(["ask", "-m", model, "-q", "What colour is the sky?", "-k", "2", "-n", "4", "--json", "--no-low-memory"], context);
  assert.equal(lean.code, 0, lean.err);
  const l = JSON.parse(lean.out);
  // The same chunks and answer; scores equal up to float rounding: with more rows held, a chunk's
  // rows sit elsewhere in the cache and the native attention sums its keys in other blocks.
  const indices = (x: typeof j) => x.keptChunks.map((k: { index: number }) => k.index);
  assert.deepEqual([l.answer, indices(l)], [j.answer, indices(j)], "--no-low-memory: the same chunks and answer");
  l.keptChunks.forEach((k: { score: number }, i: number) => assert.ok(Math.abs(k.score - j.keptChunks[i].score) < 1e-6, `score ${k.score} vs ${j.keptChunks[i].score}`));
});

test("ask --top-k, the deprecated name of --keep-chunks, keeps the same chunks", () => {
  const context = "The grass is green. The sky is blue. ".repeat(40);
  const kept = (flag: string) => {
    const r = cli(["ask", "-m", model, "-q", "What colour is the sky?", flag, "3", "-n", "1", "--json"], context);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out).keptChunks.map((k: { index: number }) => k.index);
  };
  const byNewName = kept("--keep-chunks");
  assert.equal(byNewName.length, 3);
  assert.deepEqual(kept("--top-k"), byNewName);
});

test("--keep-within takes nats or \"all\"; anything else is one error naming the option", () => {
  const context = "The grass is green. The sky is blue. ".repeat(40);
  const run = (gap: string) => cli(["ask", "-m", model, "-q", "What colour is the sky?", "-k", "3", "--keep-within", gap, "-n", "1", "--json"], context);
  // The chunks hold the same text, so their scores lie close together: "all" and a wide gap keep three.
  const count = (gap: string) => {
    const r = run(gap);
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out).keptChunks.length;
  };
  assert.deepEqual([count("all"), count("5")], [3, 3]);
  const bad = run("none");
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /'--keep-within <nats>' argument 'none' is invalid\. expected a number from 0 to 1000 or "all", got "none"/);
});

test("ask says on stderr when the answer was cut at --max-tokens, and not when it ended", () => {
  const context = "The grass is green. The sky is blue. ".repeat(40);
  const cut = cli(["ask", "-m", model, "-q", "What colour is the sky?", "-n", "2"], context);
  assert.equal(cut.code, 0, cut.err);
  assert.match(cut.err, /the answer was cut at 2 tokens \(--max-tokens\)/);
  const j = JSON.parse(cli(["ask", "-m", model, "-q", "What colour is the sky?", "-n", "2", "--json"], context).out);
  assert.equal(j.stoppedBy, "length");
  // the bundled model answers the pass key and ends with EOS: no note
  const ended = cli(["ask", "-q", "What is the pass key?", "-a", "The pass key is", "-n", "16"], "The sky is blue. The pass key is 40917. Remember it. 40917 is the pass key. Here we go.");
  assert.equal(ended.code, 0, ended.err);
  assert.match(ended.out, /^ 40917\n/);
  assert.doesNotMatch(ended.err, /cut at/);
});

test("bad input: one clear error line each", () => {
  expectError(["generate", "-m", path.join(dir, "missing.gguf"), "-p", "x"], /^parallelcomp: missing\.gguf: cannot open/, 1);
  expectError(["generate", "-m", model, "-p", "x", "--prompt-tokens", "1"], /exactly one of --prompt and --prompt-tokens/, 2);
  expectError(["generate", "-m", model, "--prompt-tokens", "1,x"], /--prompt-tokens.*comma-separated integers/, 1);
  expectError(["generate", "-m", model, "--prompt-tokens", "1,5000"], /id 5000 is outside the vocabulary \[0, 300\)/, 2);
  expectError(["generate", "-m", model, "-p", "x", "-n", "-3"], /--max-tokens.*integer from 0/, 1);
  expectError(["generate", "-m", model, "-p", "x", "--temperature", "hot"], /--temperature.*number/, 1);
  expectError(["ask", "-m", model, "-q", "Q?"], /the context is empty/, 2, "");
  expectError(["ask", "-m", model, "-q", " "], /the question is empty/, 2, "some text");
  expectError(["ask", "-m", model, "-q", "Q?", "-f", path.join(dir, "nope.txt")], /cannot open the context file .*nope\.txt: ENOENT/, 1);
  expectError(["ask", "-m", model, "-q", "Q?"], /not valid UTF-8/, 2, Buffer.from([0x41, 0xff, 0x42]));
  expectError(["ask", "-m", model, "-q", "Q?", "--method", "magic"], /--method.*magic.*Allowed choices/, 1);
  expectError(["ask", "-m", model, "-q", "Q?", "--keep-chunks", "0"], /--keep-chunks.*integer from 1/, 1);
  expectError(["ask", "-m", model, "-q", "Q?", "--top-k", "0"], /--top-k.*integer from 1/, 1);
  expectError(["ask", "-m", model, "-q", "Q?", "--keep-chunks", "2", "--top-k", "3"], /^parallelcomp: --keep-chunks 2 and --top-k 3 disagree: --top-k is the old name of --keep-chunks, give one$/m, 2, "ctx");
  expectError(["ask", "-m", model, "-q", "x".repeat(400)], /leave -?\d+ tokens of the 256-token window/, 2, "ctx");
  expectError(["inspect", path.join(dir, "missing.gguf")], /missing\.gguf: cannot open/, 1);
});

test("a context over the 64 MiB limit is refused before it is tokenized", () => {
  const big = path.join(dir, "big.txt");
  const fd = fs.openSync(big, "w");
  const block = Buffer.alloc(1 << 20, 0x61);
  for (let i = 0; i < 65; i++) fs.writeSync(fd, block);
  fs.closeSync(fd);
  expectError(["ask", "-m", model, "-q", "Q?", "-f", big], /larger than 64 MiB/, 2);
});
