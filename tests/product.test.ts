// The product surface as users meet it: the library (ask, askStream, AbortSignal, onProgress),
// the progress bar on a real pseudo-terminal and its absence under --json, --explain, the HTML
// report rendered by headless Chromium, the demo, and the README's library examples run as
// written.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadModel } from "../src/model/model.js";
import { ask, askStream } from "../src/api.js";
import { runMethod } from "../src/method/baselines.js";
import { resolveOptions } from "../src/method/options.js";
import { boundaryOf, tokenizeRequest } from "../src/method/request.js";
import { makeSample, TASKS } from "../src/eval/tasks.js";
import { formatSeconds, progressFields } from "../src/cli/progress.js";
import { excerpt } from "../src/cli/report.js";
import { tempDir } from "./support/tmp.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const BIN = path.join(ROOT, "bin/parallelcomp.js");
const dir = tempDir();
const model = loadModel();
const tok = model.tokenizer;
const count = (s: string) => tok.encode(s, { addBos: false, parseSpecial: false }).length;
const sample = makeSample("passkey", 8192, 0.3, 21, count);
const haystack = path.join(dir, "haystack.txt");
fs.writeFileSync(haystack, sample.request.context);
const askArgs = ["ask", "-f", haystack, "-q", sample.request.question, "-a", sample.request.answerPrefix!, "--preset", "retrieval", "-n", "8"];

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", cwd: ROOT });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Runs the CLI on a pseudo-terminal (util-linux `script`); returns everything the terminal got. */
function onTerminal(args: string[]): string {
  const cmd = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
  const r = spawnSync("script", ["-qec", cmd, "/dev/null"], { encoding: "utf8", cwd: ROOT, env: { ...process.env, COLUMNS: "120" } });
  assert.equal(r.status, 0, r.stderr + r.stdout);
  return r.stdout;
}

test("ask() answers as the synchronous method does, reporting progress up to every chunk", async () => {
  const seen: number[] = [];
  const r = await ask(model, sample.request, { preset: "retrieval", maxTokens: 8, onProgress: (p) => seen.push(p.chunksDone) });
  const req = tokenizeRequest(tok, model.gguf, sample.request);
  const sync = runMethod("parallelcomp", model, req, resolveOptions("retrieval", { maxTokens: 8 }), { boundary: boundaryOf(tok), stopTokens: tok.eogTokens });
  assert.deepEqual(r.tokens, sync.tokens);
  assert.deepEqual(r.keptChunks.map((k) => k.index), sync.kept.map((k) => k.index));
  assert.equal(r.nChunks, sync.nChunks);
  assert.deepEqual(seen, [...seen].sort((a, b) => a - b), "progress only grows");
  assert.equal(seen.at(-1), r.nChunks);
  assert.equal(r.chunks.length, r.nChunks);
  assert.equal(r.chunks.filter((c) => c.kept).length, resolveOptions("retrieval").keepChunks);
  assert.equal(r.promptTokens, (req.bos === null ? 0 : 1) + req.header.length + req.context.length + req.query.length);
});

test("a 1M-token context is answered in bounded memory: the KV cache peaks as high as for 16K tokens", () => {
  // The bundled model is byte-level: one token per byte, so the document's length is its token count.
  const filler = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";
  const needle = "The pass key is 60317. Remember it. 60317 is the pass key. ";
  const run = (tokens: number) => {
    const reps = Math.ceil(tokens / filler.length);
    const context = filler.repeat(Math.floor(reps * 0.6)) + needle + filler.repeat(reps - Math.floor(reps * 0.6));
    const req = tokenizeRequest(tok, model.gguf, { context, question: "What is the pass key?", answerPrefix: "The pass key is" });
    return { req, r: runMethod("parallelcomp", model, req, resolveOptions("retrieval", { maxTokens: 8 }), { boundary: boundaryOf(tok), stopTokens: tok.eogTokens }) };
  };
  const small = run(16384);
  const big = run(1 << 20);
  assert.ok(big.req.context.length >= 1 << 20, `${big.req.context.length} tokens`);
  assert.ok(big.r.nChunks > 2000, `${big.r.nChunks} chunks`);
  assert.equal(big.r.peakCacheBytes, small.r.peakCacheBytes);
  assert.match(tok.decode(big.r.tokens, { skipSpecial: true }), /^ 60317/);
});

test("an AbortSignal stops ask() at the next batch of chunks", async () => {
  const ac = new AbortController();
  let after = 0;
  let aborted = false;
  await assert.rejects(
    ask(model, sample.request, { onProgress: (p) => { if (aborted) after++; if (p.chunksDone >= 4 && !aborted) { aborted = true; ac.abort(); } }, signal: ac.signal }),
    (e: Error) => e.name === "AbortError",
  );
  assert.equal(after, 0, "no batch ran after the abort");
  const pre = new AbortController();
  pre.abort(new Error("never mind"));
  await assert.rejects(ask(model, sample.request, { signal: pre.signal }), /never mind/);
});

test("askStream() yields the answer's text as it is generated; leaving the loop stops the run", async () => {
  const opts = { preset: "retrieval", maxTokens: 8 } as const;
  const whole = await ask(model, sample.request, opts);
  const pieces: string[] = [];
  const s = askStream(model, sample.request, opts);
  for await (const p of s) pieces.push(p);
  assert.ok(pieces.length > 1);
  assert.equal(pieces.join(""), whole.answer);
  assert.equal((await s.result).answer, whole.answer);
  const early = askStream(model, sample.request, { ...opts, maxTokens: 32 });
  for await (const _ of early) break;
  await assert.rejects(early.result, /reader stopped/);
});

test("bad options are refused before any work, naming the option", async () => {
  await assert.rejects(ask(model, sample.request, { method: "magic" as never }), /unknown method "magic"/);
  await assert.rejects(ask(model, sample.request, { preset: "fast" }), /unknown preset "fast"/);
  await assert.rejects(ask(model, sample.request, { keepChunks: 0 }), /keepChunks must be a positive integer, got 0/);
  await assert.rejects(ask(model, sample.request, { sampling: { temperature: -1 } }), /temperature/);
  await assert.rejects(ask(model, { ...sample.request, question: " " }), /question is empty/);
});

test("the progress bar's numbers: chunks, tokens/s and ETA", () => {
  assert.deepEqual(progressFields({ chunksDone: 10, chunks: 40, tokensDone: 5000, tokens: 20000 }, 2), { tps: "2,500", eta: "6s" });
  assert.deepEqual(progressFields({ chunksDone: 0, chunks: 40, tokensDone: 0, tokens: 20000 }, 0), { tps: "-", eta: "-" });
  assert.equal(formatSeconds(125.4), "2m05s");
});

test("on a terminal, ask shows a progress bar on stderr and streams the answer; --json and pipes get neither", () => {
  const tty = onTerminal(askArgs);
  assert.match(tty, /reading .* \d+\/\d+ chunks \| [\d,-]+ tok\/s \| ETA/);
  assert.match(tty, new RegExp(sample.answer));
  const json = onTerminal([...askArgs, "--json"]);
  assert.doesNotMatch(json, /reading|chunks \|/);
  assert.equal(JSON.parse(json.trim()).answer.includes(sample.answer), true);
  const piped = cli(askArgs);
  assert.equal(piped.code, 0, piped.err);
  assert.doesNotMatch(piped.err, /reading/);
  assert.doesNotMatch(piped.out + piped.err, /\x1b\[/, "no escape codes when not on a terminal");
});

test("--explain lists the kept chunk with its score and the sentence that matches the question", () => {
  const r = cli([...askArgs, "--explain"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /kept 2 of \d+ chunks/); // the retrieval preset keeps 2
  assert.match(r.out, new RegExp(`#\\d+  score 0\\.\\d{3}  tokens \\d+-\\d+  "The pass key is ${sample.answer}\\."`));
  assert.equal(excerpt("The sky is blue. The pass key is 5. Here we go.", "What is the pass key?"), "The pass key is 5.");
  assert.equal(excerpt("no overlap here", "What?"), "no overlap here");
});

test("--report writes a page that headless Chromium renders: the chunk strip, the kept chunk, the answer", async () => {
  const file = path.join(dir, "report.html");
  const r = cli([...askArgs, "--report", file, "--json"]);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out);
  const { chromium } = await import("playwright-core");
  const executablePath = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => fs.existsSync(p));
  assert.ok(executablePath, "Debian's chromium is needed for this test (.ci/run installs it: apt-get install -y chromium)");
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    await page.goto("file://" + file);
    assert.equal(await page.locator("#strip .chunk").count(), j.nChunks);
    const kept = page.locator("#strip .chunk.kept");
    assert.deepEqual(await kept.evaluateAll((els) => els.map((e) => e.getAttribute("data-index"))), j.keptChunks.map((k: { index: number }) => String(k.index)));
    const box = await kept.first().boundingBox();
    assert.ok(box && box.width >= 6 && box.height > 30, "the kept chunk is visible in the strip");
    assert.equal((await page.locator("#answer").textContent())!.trim(), j.answer.trim());
    assert.match((await page.locator("#kept").textContent())!, new RegExp(`The pass key is ${sample.answer}`));
    const shot = path.join(dir, "report.png");
    await page.screenshot({ path: shot, fullPage: true });
    assert.deepEqual([...fs.readFileSync(shot).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  } finally {
    await browser.close();
  }
});

test("demo finds the pass key and says how; every task's demo answers right with the default answer length", () => {
  const r = cli(["demo", "--length", "16384"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /read \d+ chunks/);
  assert.match(r.out, /the value \d+ is in chunk #\d+( and #\d+)?, and #\d+ was kept/);
  assert.match(r.out, /\(right\)/);
  // kv_retrieval's answer is a UUID, 37 byte tokens with its space: a 32-token cap printed "wrong".
  for (const task of TASKS.filter((t) => t !== "passkey")) {
    const t = cli(["demo", "--task", task, "--length", "16384"]);
    assert.equal(t.code, 0, t.err);
    assert.match(t.out, /^answer: .*\(right\)$/m, `${task}: ${t.out}`);
  }
  const bad = cli(["demo", "--depth", "2"]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /'--depth <fraction>' argument '2' is invalid\. expected a number from 0 to 1/);
});

test("the README's library examples run as written and print what they say", () => {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
  assert.ok(blocks.length >= 2, "the README has library examples");
  blocks.forEach((code, i) => {
    const file = path.join(ROOT, "dist", `readme-example-${i}.mjs`); // inside the package: `import "parallelcomp"` resolves
    fs.writeFileSync(file, code);
    try {
      const r = spawnSync(process.execPath, [file], { encoding: "utf8", cwd: ROOT, timeout: 120_000 });
      assert.equal(r.status, 0, `example ${i}: ${r.stderr}`);
      for (const m of code.matchAll(/\/\/ prints: (.+)$/gm)) assert.ok(r.stdout.includes(m[1].trim()), `example ${i} should print "${m[1].trim()}", printed: ${r.stdout}`);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});
