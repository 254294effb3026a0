// The llama.cpp backend against our engine and against llama.cpp driven by node-llama-cpp: the
// same method over two engines keeps the same chunks and gives the same answers; an architecture
// our engine does not run answers through llama.cpp; each kind of bad setup is one clear line.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadEngine } from "../src/backends/index.js";
import { ask, type AskResult } from "../src/api.js";
import { makeSample, TASKS } from "../src/eval/tasks.js";
import { parallelComp } from "../src/method/parallelcomp.js";
import { resolveOptions } from "../src/method/options.js";
import { writeRandomModel } from "../src/model/random-model.js";
import { loadModel } from "../src/model/model.js";
import { llamaCppRun } from "../src/bench/llama-cpp.js";
import { candidateBuilds } from "../src/backends/llama-cpp.js";
import { tempDir } from "./support/tmp.js";

const BIN = fileURLToPath(new URL("../../bin/parallelcomp.js", import.meta.url));
const native = loadEngine(undefined, { backend: "native", threads: 2, kvType: "f32" });
const cpuBuild = candidateBuilds().find((b) => b.device === "cpu" && "lib" in b) as { lib: string; bins: string } | undefined;

const tasks = TASKS.filter((t) => t !== "needle_multikey");

/**
 * The same kept chunks up to ties: the filler repeats, so two chunks can hold the same tokens and
 * score the same; which of them an engine keeps then rests on its last bits. Compared as the
 * native scores of each side's kept chunks, best first.
 */
function sameKept(a: AskResult, b: AskResult, tol: number, what: string) {
  const scores = (r: AskResult) => r.keptChunks.map((k) => a.chunks[k.index].score).sort((x, y) => x - y);
  const [x, y] = [scores(a), scores(b)];
  assert.equal(y.length, x.length, what);
  x.forEach((s, i) => assert.ok(Math.abs(s - y[i]) <= tol, `${what}: kept ${b.keptChunks.map((k) => k.index)} vs ${a.keptChunks.map((k) => k.index)}`));
}
const sample = (task: (typeof TASKS)[number], length: number, seed: number) =>
  makeSample(task, length, 0.4, seed, (s) => native.tokenizer.encode(s, { addBos: false, parseSpecial: false }).length).request;

test("llama.cpp backend (F32 KV, flash attention off): every chunk's question NLL within 1e-5 of the native engine's, same kept chunks (up to exact ties), same answers", async (t) => {
  const llama = loadEngine(undefined, { backend: "llama.cpp", threads: 2, kvType: "f32", flashAttention: "off" });
  assert.equal(llama.backend.name, "llama.cpp");
  let worst = 0;
  for (const task of tasks) {
    for (const length of [400, 4096]) {
      const req = sample(task, length, 3);
      const a = await ask(native, req, { preset: "retrieval" });
      const b = await ask(llama, req, { preset: "retrieval" });
      assert.equal(b.nChunks, a.nChunks);
      for (let i = 0; i < a.chunks.length; i++) worst = Math.max(worst, Math.abs(a.chunks[i].score - b.chunks[i].score));
      sameKept(a, b, 2e-5, `${task} ${length}`);
      assert.equal(b.answer, a.answer, `${task} ${length}: answer`);
      assert.equal(b.backend.name, "llama.cpp");
      if (length > 400) {
        // lowMemory through llama.cpp's per-sequence streams: a slot freed and a chunk encoded again.
        const c = await ask(llama, req, { preset: "retrieval", lowMemory: true });
        assert.deepEqual(c.chunks.map((x) => x.score), b.chunks.map((x) => x.score), `${task} ${length}: low-memory scores`);
        assert.deepEqual(c.keptChunks, b.keptChunks, `${task} ${length}: low-memory kept chunks`);
        assert.equal(c.answer, b.answer, `${task} ${length}: low-memory answer`);
      }
    }
  }
  t.diagnostic(`largest per-chunk NLL difference (F32 KV, flash off): ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-5, `largest per-chunk NLL difference ${worst}`);
  assert.ok(worst > 0, "two engines agreeing to the last bit would mean one of them was not run");
  llama.close();
});

test("llama.cpp backend with its defaults (F16 KV, flash attention auto): per-chunk NLL within 1e-2 nats of the native engine with an F32 and with its default F16 cache (the largest are printed), same kept chunks (up to ties), same answers", async (t) => {
  const llama = loadEngine(undefined, { backend: "llama.cpp", threads: 2 });
  const nativeF16 = loadEngine(undefined, { backend: "native", threads: 2 });
  let worst = 0, worstF16 = 0;
  for (const task of tasks) {
    const req = sample(task, 4096, 5);
    const a = await ask(native, req, { preset: "retrieval" });
    const b = await ask(llama, req, { preset: "retrieval" });
    const c = await ask(nativeF16, req, { preset: "retrieval" });
    for (let i = 0; i < a.chunks.length; i++) worst = Math.max(worst, Math.abs(a.chunks[i].score - b.chunks[i].score));
    for (let i = 0; i < c.chunks.length; i++) worstF16 = Math.max(worstF16, Math.abs(c.chunks[i].score - b.chunks[i].score));
    assert.equal(b.answer, a.answer, task);
    assert.equal(c.answer, b.answer, `${task} (native F16 cache)`);
    sameKept(a, b, 2e-2, task);
    sameKept(c, b, 2e-2, `${task} (native F16 cache)`);
  }
  t.diagnostic(`largest per-chunk NLL difference (llama.cpp's defaults): against native F32 KV ${worst.toExponential(2)}, against native F16 KV ${worstF16.toExponential(2)}`);
  assert.ok(worst < 1e-2, `largest per-chunk NLL difference ${worst}`);
  assert.ok(worstF16 < 1e-2, `largest per-chunk NLL difference (native F16 cache) ${worstF16}`);
  nativeF16.close();
  llama.close();
});

test("a mistral3 model (our engine refuses it) runs ParallelComp through llama.cpp: one-chunk document = node-llama-cpp's plain greedy tokens", async () => {
  const file = path.join(tempDir(), "mistral3.gguf");
  writeRandomModel(file, "qwen3-0.6b", { seed: 4, shape: { arch: "mistral3", nLayers: 2, nVocab: 4096 } });
  assert.throws(() => loadModel(file), /general\.architecture is "mistral3"/);
  const e = loadEngine(file, { backend: "llama.cpp", threads: 2, kvType: "f32", flashAttention: "off" });
  assert.equal(e.config.arch, "mistral3");
  const prompt = Array.from({ length: 80 }, (_, i) => (i * 151 + 17) % 4000);
  const ref = await llamaCppRun(file, prompt, 12, { nVocab: 4096, kvF32: true });
  const one = parallelComp(e, { bos: null, header: [], context: prompt.slice(0, 70), query: prompt.slice(70) }, resolveOptions("default", { maxTokens: 12 }));
  assert.equal(one.nChunks, 1);
  assert.deepEqual(one.tokens, ref.greedy);
  // Several chunks: stage 0 scores each, stage 1 answers over the kept ones.
  const many = parallelComp(e, { bos: null, header: [], context: Array.from({ length: 600 }, (_, i) => (i * 89 + 5) % 4000), query: prompt.slice(70) }, resolveOptions("default", { maxTokens: 4, chunkTokens: 100, keepWithin: null }));
  assert.ok(many.nChunks >= 6);
  assert.equal(many.kept.length, 3);
  assert.equal(many.tokens.length, 4);
  assert.ok(many.scores.every(Number.isFinite));
  e.close();
});

function cli(args: string[], env: Record<string, string> = {}, input = "The grass is green. The pass key is 68121. The sky is blue.\n") {
  const r = spawnSync(process.execPath, [BIN, ...args], { input, encoding: "utf8", env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function oneLine(err: string, pattern: RegExp) {
  assert.match(err, pattern);
  assert.equal(err.trim().split("\n").length, 1, `one line, got: ${err}`);
  assert.doesNotMatch(err, /\n\s+at /, "no stack trace");
}

const askArgs = ["ask", "-q", "What is the pass key?", "-a", "The pass key is", "--json", "-n", "8"];

test("backend choice from the command line: each bad setup is one clear line, never a crash", { skip: !cpuBuild && "no CPU build of llama.cpp here" }, () => {
  const ok = cli([...askArgs, "--backend", "llama.cpp"]);
  assert.equal(ok.code, 0, ok.err);
  const j = JSON.parse(ok.out);
  assert.match(j.answer, /68121/);
  assert.deepEqual(j.backend, { name: "llama.cpp", device: "cpu" });

  const unknown = cli([...askArgs, "--backend", "cuda"]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.err, /'--backend <name>' argument 'cuda' is invalid\. Allowed choices are native, llama\.cpp, auto/);

  const evict = cli([...askArgs, "--backend", "llama.cpp", "--preset", "compress"]);
  assert.equal(evict.code, 2);
  oneLine(evict.err, /^parallelcomp: SnapKV eviction works inside the attention layers, which the llama\.cpp backend does not expose: use --backend native$/m);

  const missing = cli([...askArgs, "--backend", "llama.cpp"], { PARALLELCOMP_LIBLLAMA: "/nonexistent/libllama.so" });
  assert.equal(missing.code, 1);
  oneLine(missing.err, /llama\.cpp could not be loaded: \/nonexistent\/libllama\.so \(PARALLELCOMP_LIBLLAMA\) does not exist/);

  const wrong = cli([...askArgs, "--backend", "llama.cpp"], { PARALLELCOMP_LIBLLAMA: path.join(cpuBuild!.bins, "libggml-base.so") });
  assert.equal(wrong.code, 1);
  oneLine(wrong.err, /libggml-base\.so does not export llama_backend_init: not the pinned llama\.cpp/);

  // A GPU build that loads but finds no device: llama.cpp runs on its CPU backend and says so.
  const noGpu = cli([...askArgs, "--backend", "llama.cpp"], { PARALLELCOMP_LIBLLAMA: cpuBuild!.lib, PARALLELCOMP_LIBLLAMA_DEVICE: "cuda" });
  assert.equal(noGpu.code, 0, noGpu.err);
  oneLine(noGpu.err, /^parallelcomp: the cuda build of llama\.cpp loaded but found no cuda device: using the CPU$/m);
  assert.match(JSON.parse(noGpu.out).answer, /68121/);

  // auto on a machine without a GPU: our engine, with the reason.
  const auto = cli([...askArgs, "--backend", "auto"], { PARALLELCOMP_LIBLLAMA: cpuBuild!.lib, PARALLELCOMP_LIBLLAMA_DEVICE: "cuda" });
  assert.equal(auto.code, 0, auto.err);
  oneLine(auto.err, /^parallelcomp: the cuda build of llama\.cpp loaded but found no cuda device: using the native engine$/m);
  assert.deepEqual(JSON.parse(auto.out).backend, { name: "native", device: "cpu" });
});

test("doctor lists the native kernels and each llama.cpp build with what it found", { skip: !cpuBuild && "no CPU build of llama.cpp here" }, () => {
  const r = cli(["doctor", "--json"]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  const cpu = j.reports.find((x: { backend: string; build: string }) => x.backend === "llama.cpp" && x.build === "cpu");
  assert.equal(cpu.ok, true);
  assert.ok(cpu.devices.some((d: { type: string }) => d.type === "cpu"));
  assert.ok(j.reports.some((x: { backend: string }) => x.backend === "native"));
  assert.match(j.auto, /native|llama\.cpp on/);
});
