// A model file cannot take the process down: mutated GGUF files (bytes flipped in the header,
// truncations, huge counts and lengths, overwritten numbers, NaN weights, duplicated tokens,
// broken numeric keys, chat-template bombs) through `parallelcomp inspect`, `ask` and `serve`,
// each in its own process under GNU time. Every run must end in one of two ways: it ran (exit
// 0), or one clear error line (exit 1 or 2, "parallelcomp: ...", no stack trace); never a
// signal, a hang (the time limit) or more than 2 GB of memory.
//   node dist/tools/fuzz.js [--files 600] [--seed 1] [--serve-every 10]   (`npm run fuzz`)
// tests/fuzz.test.ts runs a seeded 200-file version.

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { writeRandomModel } from "../src/model/random-model.js";
import { GgufFile } from "../src/gguf/reader.js";
import { kv } from "../src/gguf/writer.js";
import { rng } from "../src/util/rng.js";

const BIN = fileURLToPath(new URL("../../bin/parallelcomp.js", import.meta.url));
export const FUZZ_LIMITS = { seconds: 30, rssBytes: 2 * 2 ** 30 };

export interface FuzzCase { file: string; mutation: string }
export interface FuzzRun { command: string; mutation: string; outcome: "ran" | "error" | "crash" | "hang" | "memory"; detail: string; rssBytes: number }

const TINY = { nLayers: 2, nVocab: 300, nCtxTrain: 256, dim: 64, nHeads: 4, nKvHeads: 2, nFf: 128 };

/** The mutated files, written into `dir`: `count` of them, reproducible from `seed`. */
export function makeCases(dir: string, count: number, seed: number): FuzzCase[] {
  const random = rng(seed);
  const int = (n: number) => Math.floor(random() * n);
  const base = path.join(dir, "base.gguf");
  writeRandomModel(base, "smollm2-135m", { seed, shape: TINY, metadata: [["tokenizer.chat_template", kv.str("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}<assistant>")]] });
  const bytes = fs.readFileSync(base);
  const g = GgufFile.open(base);
  const header = g.dataOffset;
  g.close();
  const semantic: Array<[string, Array<[string, ReturnType<typeof kv.str>]>]> = [
    ["template bomb range(1e9)", [["tokenizer.chat_template", kv.str("{% for i in range(1000000000) %}x{% endfor %}")]]],
    ["template bomb nested", [["tokenizer.chat_template", kv.str("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}")]]],
    ["template bomb doubling", [["tokenizer.chat_template", kv.str("{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}")]]],
    ["rope.freq_base 0", [["llama.rope.freq_base", kv.f32(0)]]],
    ["rope.freq_base inf", [["llama.rope.freq_base", kv.f32(Infinity)]]],
    ["rms eps NaN", [["llama.attention.layer_norm_rms_epsilon", kv.f32(NaN)]]],
    ["context_length 2^32-1", [["llama.context_length", kv.u32(2 ** 32 - 1)]]],
    ["rope.dimension_count 2^24", [["llama.rope.dimension_count", kv.u32(2 ** 24)]]],
    ["rope.dimension_count odd", [["llama.rope.dimension_count", kv.u32(15)]]],
    ["block_count 2^31", [["llama.block_count", kv.u32(2 ** 31)]]],
    ["head_count 0", [["llama.attention.head_count", kv.u32(0)]]],
    ["duplicate tokens", [["tokenizer.ggml.tokens", kv.strings(Array.from({ length: 300 }, (_, i) => (i % 17 === 5 ? "a" : `t${i}`)))]]],
  ];
  const cases: FuzzCase[] = [];
  for (let i = 0; i < count; i++) {
    const file = path.join(dir, `m${i}.gguf`);
    const kind = i % 8;
    let buf = Buffer.from(bytes);
    let mutation: string;
    if (kind === 0 && i / 8 < semantic.length) {
      const [name, meta] = semantic[i / 8];
      writeRandomModel(file, "smollm2-135m", { seed, shape: TINY, metadata: meta });
      cases.push({ file, mutation: name });
      continue;
    } else if (kind <= 2) {
      const n = 1 + int(4);
      for (let j = 0; j < n; j++) buf[int(header)] ^= 1 << int(8);
      mutation = `${n} bit flips in the header`;
    } else if (kind === 3) {
      const at = int(bytes.length);
      buf = buf.subarray(0, at);
      mutation = `truncated at ${at} of ${bytes.length}`;
    } else if (kind === 4) {
      const at = int(header - 8);
      buf.writeBigUInt64LE(0xffffffffffffn - BigInt(int(1000)), at);
      mutation = `a huge u64 at header offset ${at}`;
    } else if (kind === 5) {
      const at = int(header - 4);
      const v = [0, 1, 0xffffffff, 0x7fffffff, 13, 30, 31][int(7)];
      buf.writeUInt32LE(v, at);
      mutation = `u32 ${v} at header offset ${at}`;
    } else if (kind === 6) {
      const at = header + int(bytes.length - header - 4096);
      buf.fill(0xff, at, at + 4096); // f32 NaNs (and odd quant blocks)
      mutation = `NaN weights at ${at}`;
    } else {
      const at = int(header);
      const len = 1 + int(64);
      for (let j = 0; j < len && at + j < header; j++) buf[at + j] = int(256);
      mutation = `${len} random bytes at header offset ${at}`;
    }
    fs.writeFileSync(file, buf);
    cases.push({ file, mutation });
  }
  return cases;
}

/** One command in its own process: its class of outcome, its stderr's first line, its peak RSS. */
export function runCase(args: string[], mutation: string, input = ""): Promise<FuzzRun> {
  const timeFile = path.join(os.tmpdir(), `parallelcomp-fuzz-${process.pid}-${Math.random().toString(36).slice(2)}.rss`);
  return new Promise((resolve) => {
    const child = spawn("/usr/bin/time", ["-q", "-f", "%M", "-o", timeFile, process.execPath, BIN, ...args], { stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    let hung = false;
    child.stderr.on("data", (d) => { if (err.length < 1 << 16) err += d; });
    child.stdin.on("error", () => {});
    child.stdin.end(input);
    const timer = setTimeout(() => { hung = true; child.kill("SIGKILL"); }, FUZZ_LIMITS.seconds * 1000);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      let rssBytes = 0;
      try {
        const lines = fs.readFileSync(timeFile, "utf8").trim().split("\n");
        rssBytes = Number(lines[lines.length - 1]) * 1024;
        fs.rmSync(timeFile, { force: true });
      } catch { /* killed before time wrote it */ }
      const command = `parallelcomp ${args.join(" ")}`;
      const lines = err.trim().split("\n").filter((l) => !/^Command (terminated|exited)/.test(l));
      const first = lines[0] ?? "";
      const r = (outcome: FuzzRun["outcome"], detail: string) => resolve({ command, mutation, outcome, detail, rssBytes });
      // GNU time reports a signal as exit status 128+n in its own code.
      if (hung) return r("hang", `still running after ${FUZZ_LIMITS.seconds} s`);
      if (signal || (code !== null && code > 2)) return r("crash", `exit ${code ?? signal}: ${lines.slice(0, 3).join(" | ")}`);
      if (rssBytes > FUZZ_LIMITS.rssBytes) return r("memory", `${(rssBytes / 2 ** 30).toFixed(2)} GB`);
      if (code === 0) return r("ran", "");
      const clean = lines.length === 1 && first.startsWith("parallelcomp: ") && !/\bat .*\.js:\d+/.test(err);
      return clean ? r("error", first) : r("crash", `not one clear line: ${lines.slice(0, 3).join(" | ")}`);
    });
  });
}

/** inspect and ask on every case; serve (one chat request) on every `serveEvery`-th. */
export async function fuzz(o: { dir: string; files: number; seed: number; serveEvery: number; onRun?: (r: FuzzRun) => void }): Promise<FuzzRun[]> {
  const cases = makeCases(o.dir, o.files, o.seed);
  const runs: FuzzRun[] = [];
  const record = (r: FuzzRun) => { runs.push(r); o.onRun?.(r); };
  const doc = "The grass is green. ".repeat(60) + "The pass key is 31337. " + "The sky is blue. ".repeat(60);
  for (const [i, c] of cases.entries()) {
    record(await runCase(["inspect", c.file], c.mutation));
    record(await runCase(["ask", "-m", c.file, "-q", "What is the pass key?", "-n", "4", "-t", "1", "--json"], c.mutation, doc));
    if (o.serveEvery > 0 && i % o.serveEvery === 0) record(await serveCase(c));
  }
  return runs;
}

/** `serve` on the file, one chat request: it must answer (any status) or refuse to start with one line. */
async function serveCase(c: FuzzCase): Promise<FuzzRun> {
  const command = `parallelcomp serve -m ${c.file}`;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, "serve", "-m", c.file, "--port", "0", "-t", "1"], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    let settled = false;
    const done = (outcome: FuzzRun["outcome"], detail: string) => {
      if (settled) return;
      settled = true;
      child.kill();
      resolve({ command, mutation: c.mutation, outcome, detail, rssBytes: 0 });
    };
    const timer = setTimeout(() => done("hang", `no answer within ${FUZZ_LIMITS.seconds} s`), FUZZ_LIMITS.seconds * 1000);
    child.stderr.on("data", async (d) => {
      err += d;
      const m = /serving at (\S+)\/v1/.exec(err);
      if (!m || settled) return;
      try {
        const r = await fetch(m[1] + "/v1/chat/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 4 }) });
        const body = await r.text();
        const health = await fetch(m[1] + "/health");
        clearTimeout(timer);
        if (health.status !== 200) return done("crash", `/health ${health.status} after the request`);
        done(r.status === 200 || (r.status >= 400 && r.status < 600 && /"error"/.test(body)) ? (r.status === 200 ? "ran" : "error") : "crash", `${r.status} ${body.slice(0, 160)}`);
      } catch (e) {
        clearTimeout(timer);
        done("crash", `the server went away: ${(e as Error).message}`);
      }
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const lines = err.trim().split("\n");
      if (signal || (code !== null && code > 2)) return done("crash", `exit ${code ?? signal}: ${lines.slice(0, 3).join(" | ")}`);
      done(lines.length === 1 && lines[0].startsWith("parallelcomp: ") ? "error" : "crash", lines.slice(0, 3).join(" | "));
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const arg = (name: string, d: number) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? Number(process.argv[i + 1]) : d; };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "parallelcomp-fuzz-"));
  const t0 = performance.now();
  const runs = await fuzz({ dir, files: arg("files", 600), seed: arg("seed", 1), serveEvery: arg("serve-every", 10), onRun: (r) => { if (r.outcome !== "ran" && r.outcome !== "error") console.log(`${r.outcome.toUpperCase()}: ${r.command} [${r.mutation}] ${r.detail}`); } });
  const count = (k: FuzzRun["outcome"]) => runs.filter((r) => r.outcome === k).length;
  const peak = Math.max(...runs.map((r) => r.rssBytes));
  console.log(`${runs.length} runs over ${arg("files", 600)} files in ${((performance.now() - t0) / 1000).toFixed(0)} s: ${count("ran")} ran, ${count("error")} clean errors, ${count("crash")} crashes, ${count("hang")} hangs, ${count("memory")} over 2 GB; peak RSS ${(peak / 2 ** 20).toFixed(0)} MiB`);
  fs.rmSync(dir, { recursive: true, force: true });
  process.exit(count("crash") + count("hang") + count("memory") > 0 ? 1 : 0);
}
