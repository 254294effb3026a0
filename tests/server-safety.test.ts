// The server as a hostile client or a broken model file would try it: the engine runs in a worker
// thread, so /health answers within 100 ms while a long request runs; a cancel, a timeout, a
// quadratic method over a long input, a KV budget, an API key, a foreign Host or Origin and a
// non-JSON POST each get their stated answer; memory is back near idle after a large request;
// a chat template that would loop for ever is an error, not a crash.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import * as fs from "node:fs";
import net from "node:net";
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as path from "node:path";
import OpenAI from "openai";
import { startServer, type RunningServer } from "../src/server/server.js";
import { renderChat } from "../src/tokenizer/chat.js";
import { writeRandomModel } from "../src/model/random-model.js";
import { kv } from "../src/gguf/writer.js";
import { tempDir } from "./support/tmp.js";

const BIN = fileURLToPath(new URL("../../bin/parallelcomp.js", import.meta.url));
const KEY = "test-key-123";
const srv = await startServer({
  model: { options: { threads: 1 } }, port: 0, maxQueue: 2, apiKey: KEY, corsOrigins: ["https://app.example"],
  limits: { quadraticTokens: 1 << 20, maxKvMiB: 64 }, requestTimeoutSeconds: 8,
});
after(() => srv.close());
const port = new URL(srv.url).port;
const json = { "content-type": "application/json", authorization: `Bearer ${KEY}` };

function raw(method: string, route: string, headers: Record<string, string>, body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path: route, method, headers }, (res) => {
      let text = "";
      res.on("data", (d) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

const longChat = (chars: number, extra: object = {}) => JSON.stringify({
  model: "m", max_tokens: 8, messages: [{ role: "user", content: "The grass is green. ".repeat(Math.ceil(chars / 20)) + "\n\nWhat is the pass key?" }], ...extra,
});

async function healthTimes(n: number): Promise<number> {
  let worst = 0;
  for (let i = 0; i < n; i++) {
    await new Promise((r) => setTimeout(r, 150));
    const t0 = performance.now();
    const r = await raw("GET", "/health", {});
    worst = Math.max(worst, performance.now() - t0);
    assert.equal(r.status, 200);
  }
  return worst;
}

test("a full-attention request over 300K characters: /health answers within 100 ms while it runs, and the client leaving stops it", async () => {
  const stop = new AbortController();
  const pending = fetch(srv.url + "/v1/chat/completions", { method: "POST", body: longChat(300_000, { parallelcomp: { method: "full" } }), headers: json, signal: stop.signal }).catch((e) => e);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(JSON.parse((await raw("GET", "/health", {})).body).running, 1);
  const worst = await healthTimes(8);
  assert.ok(worst < 100, `slowest /health ${worst.toFixed(0)} ms`);
  stop.abort();
  await pending;
  // The run stops at its next step: a 512-token piece, which deep into a full-attention prefill
  // (100K+ positions, one thread) takes a few seconds on this machine.
  const t0 = performance.now();
  while (JSON.parse((await raw("GET", "/health", {})).body).running !== 0) {
    assert.ok(performance.now() - t0 < 30_000, "the cancelled run still holds the engine after 30 s");
    await new Promise((r) => setTimeout(r, 50));
  }
});

test("limits: a run past --request-timeout gets 504, full above the quadratic limit and a KV budget overrun get a 400 saying what to ask instead", async () => {
  const slow = await raw("POST", "/v1/chat/completions", json, longChat(200_000, { parallelcomp: { method: "full" } }));
  assert.equal(slow.status, 504, slow.body);
  assert.match(JSON.parse(slow.body).error.message, /ran past the server's limit of 8 s \(--request-timeout\)/);
  const limited = await startServer({ model: { options: { threads: 1 } }, port: 0, limits: { quadraticTokens: 4096, maxKvMiB: 8 } });
  try {
    const post = (body: string) => fetch(limited.url + "/v1/chat/completions", { method: "POST", body, headers: { "content-type": "application/json" } }).then(async (r) => ({ status: r.status, body: await r.json() as any }));
    const full = await post(longChat(20_000, { parallelcomp: { method: "full" } }));
    assert.equal(full.status, 400);
    assert.match(full.body.error.message, /method "full" over \d+ tokens: .* up to 4096 tokens; use "parallelcomp"/);
    const wide = await post(longChat(200_000, { parallelcomp: { parallel: 16, keep_chunks: 16 } }));
    assert.equal(wide.status, 400);
    // low_memory (the default) holds one chunk less; 31 still overrun, and the message counts them so.
    assert.match(wide.body.error.message, /parallel 16 \+ keep_chunks 16 - 1 \(low_memory\) chunks of up to \d+ tokens need up to 16 MiB of KV cache; this server allows 8 MiB \(--max-kv-mib\)/);
    const held = await post(longChat(200_000, { parallelcomp: { parallel: 16, keep_chunks: 16, low_memory: false } }));
    assert.equal(held.status, 400);
    assert.match(held.body.error.message, /parallel 16 \+ keep_chunks 16 chunks of up to \d+ tokens need up to 16 MiB/);
    const ok = await post(longChat(20_000));
    assert.equal(ok.status, 200);
  } finally {
    await limited.close();
  }
});

test("who may call: the API key (raw HTTP and the openai client), the Host check, JSON only, CORS only for the allowed origin", async () => {
  assert.equal((await raw("GET", "/v1/models", {})).status, 401);
  assert.equal((await raw("GET", "/v1/models", { authorization: "Bearer wrong" })).status, 401);
  assert.equal((await raw("GET", "/v1/models", { authorization: `Bearer ${KEY}` })).status, 200);
  assert.equal((await raw("GET", "/health", {})).status, 200, "/health needs no key");
  const good = new OpenAI({ baseURL: srv.url + "/v1", apiKey: KEY, maxRetries: 0 });
  assert.equal((await good.models.list()).data.length, 1);
  const bad = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "nope", maxRetries: 0 });
  await assert.rejects(bad.models.list(), (e: any) => e.status === 401);

  const rebind = await raw("GET", "/v1/models", { host: "attacker.example", authorization: `Bearer ${KEY}` });
  assert.equal(rebind.status, 403);
  assert.match(JSON.parse(rebind.body).error.message, /Host "attacker\.example" is not allowed/);
  assert.equal((await raw("GET", "/v1/models", { host: `localhost:${port}`, authorization: `Bearer ${KEY}` })).status, 200);

  const form = await raw("POST", "/v1/chat/completions", { "content-type": "text/plain", authorization: `Bearer ${KEY}` }, "{}");
  assert.equal(form.status, 415);

  const foreign = await raw("GET", "/v1/models", { origin: "https://evil.example", authorization: `Bearer ${KEY}` });
  assert.equal(foreign.status, 403);
  assert.equal(foreign.headers["access-control-allow-origin"], undefined);
  const pre = await raw("OPTIONS", "/v1/chat/completions", { origin: "https://app.example", "access-control-request-method": "POST" });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers["access-control-allow-origin"], "https://app.example");
  assert.match(String(pre.headers["access-control-allow-headers"]), /authorization/);
  const page = await raw("GET", "/v1/models", { origin: "https://app.example", authorization: `Bearer ${KEY}` });
  assert.equal(page.status, 200);
  assert.equal(page.headers["access-control-allow-origin"], "https://app.example");
});

test("memory: after an 8 MB request `parallelcomp serve` is back within 10% of its idle RSS", { skip: process.platform !== "linux" && "reads /proc" }, async () => {
  const child = spawn(process.execPath, [BIN, "serve", "--port", "0", "--request-timeout", "10", "-t", "1"], { stdio: ["ignore", "ignore", "pipe"] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let err = "";
      child.stderr!.on("data", (d) => { err += d; const m = /serving at (\S+)\/v1/.exec(err); if (m) resolve(m[1]); });
      child.on("exit", () => reject(new Error(err)));
    });
    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid}/status`, "utf8"))![1]) * 1024;
    await new Promise((r) => setTimeout(r, 500));
    const idle = rss();
    let peak = 0;
    const watch = setInterval(() => { peak = Math.max(peak, rss()); }, 100);
    const r = await fetch(url + "/v1/chat/completions", { method: "POST", body: longChat(8 << 20, { parallelcomp: { keep_chunks: 1 } }), headers: { "content-type": "application/json" } });
    clearInterval(watch);
    assert.ok(r.status === 200 || r.status === 504, await r.text());
    // The engine thread is replaced after the request: a fresh thread loads the model while the
    // old one's memory is returned. On a busy machine that takes more than a moment, so wait for
    // it (up to 30 s) instead of sleeping a fixed time (2 s was too short beside another job).
    let after = rss();
    for (const t0 = Date.now(); after > idle * 1.1 && Date.now() - t0 < 30_000; after = rss()) await new Promise((res) => setTimeout(res, 250));
    assert.ok(peak > idle * 2, `the request should have grown the process (peak ${(peak / 2 ** 20).toFixed(0)} MiB)`);
    assert.ok(after <= idle * 1.1, `RSS ${(after / 2 ** 20).toFixed(0)} MiB after, ${(idle / 2 ** 20).toFixed(0)} MiB idle, ${(peak / 2 ** 20).toFixed(0)} MiB peak`);
  } finally {
    child.kill();
  }
});

test("a chat template that loops for ever is one error naming the model's template, in the library and the server", async () => {
  const bombs = [
    "{% for i in range(1000000000) %}x{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
  ];
  for (const template of bombs) {
    const t0 = performance.now();
    assert.throws(() => renderChat({ template }, [{ role: "user", content: "hi" }]), /chat template exceeds its limits/);
    assert.ok(performance.now() - t0 < 3000, "within the time limit");
  }
  // Real templates are untouched by the limits.
  const llama3 = "{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";
  assert.equal(renderChat({ template: llama3 }, [{ role: "user", content: "hi" }]), "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");

  const file = path.join(tempDir(), "bomb.gguf");
  writeRandomModel(file, "smollm2-135m", { shape: { nLayers: 1, nVocab: 300, nCtxTrain: 256, dim: 64, nHeads: 2, nKvHeads: 1, nFf: 128 }, metadata: [["tokenizer.chat_template", kv.str(bombs[0])]] });
  const s: RunningServer = await startServer({ model: { file, options: { threads: 1 } }, port: 0 });
  try {
    const r = await fetch(s.url + "/v1/chat/completions", { method: "POST", body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }), headers: { "content-type": "application/json" } });
    assert.equal(r.status, 400);
    assert.match(((await r.json()) as any).error.message, /tokenizer\.chat_template of .*bomb\.gguf exceeds its limits/);
    assert.equal((await fetch(s.url + "/health")).status, 200, "still up");
  } finally {
    await s.close();
  }
});

test("raw HTTP edges: a chunked body over the cap gets a 413 (not a reset), a client whose side ends is cancelled and the next is served", async () => {
  const s = await startServer({ model: { options: { threads: 1 } }, port: 0, maxBodyBytes: 1 << 20 });
  const talk = (send: (c: net.Socket) => void) => new Promise<string>((resolve) => {
    const c = net.connect(Number(new URL(s.url).port), "127.0.0.1");
    let out = "";
    c.on("data", (d) => (out += d));
    c.on("close", () => resolve(out));
    c.on("error", () => resolve(out));
    send(c);
    setTimeout(() => c.destroy(), 20_000).unref();
  });
  try {
    const chunked = await talk((c) => {
      c.write("POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
      const piece = "x".repeat(65536);
      for (let i = 0; i < 40; i++) c.write(`${piece.length.toString(16)}\r\n${piece}\r\n`);
      c.write("0\r\n\r\n");
    });
    assert.match(chunked, /^HTTP\/1\.1 413 /);
    assert.match(chunked, /the request body is larger than 1048576 bytes/);
    const body = JSON.stringify({ prompt: "The sky is", max_tokens: 3 });
    // A client whose side ends (aborted, or half-closed) is gone as far as the server can tell:
    // its request is cancelled and the engine is free for the next one.
    const half = await talk((c) => {
      c.write(`POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      c.end();
    });
    assert.doesNotMatch(half, /"text_completion"/);
    const next = await talk((c) => {
      c.write(`POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
    });
    assert.match(next, /^HTTP\/1\.1 200 /);
    assert.match(next, /"text_completion"/);
  } finally {
    await s.close();
  }
});

test("control-token text typed by the user stays text unless --parse-special; broken numbers in a model are one error naming the key", async () => {
  const { loadModel } = await import("../src/model/model.js");
  const { tokenizeRequest } = await import("../src/method/request.js");
  const m = loadModel();
  const eos = m.tokenizer.eogTokens.values().next().value as number;
  const eosText = m.tokenizer.tokenText(eos);
  const plain = tokenizeRequest(m.tokenizer, m.gguf, { context: `a ${eosText} b`, question: `why ${eosText}?` });
  assert.ok(!plain.query.includes(eos) && !plain.context.includes(eos), `${eosText} typed by the user must not become token ${eos}`);
  const special = tokenizeRequest(m.tokenizer, m.gguf, { context: `a ${eosText} b`, question: `why ${eosText}?`, parseSpecial: true });
  assert.ok(special.query.includes(eos) && special.context.includes(eos));
  m.close();

  const dir = tempDir();
  const tiny = { nLayers: 1, nVocab: 300, nCtxTrain: 256, dim: 64, nHeads: 2, nKvHeads: 1, nFf: 128 };
  const cases: Array<[string, ReturnType<typeof kv.f32>, RegExp]> = [
    ["llama.rope.freq_base", kv.f32(0), /llama\.rope\.freq_base is 0, expected a finite number above 0/],
    ["llama.rope.freq_base", kv.f32(Number.NaN), /llama\.rope\.freq_base is NaN/],
    ["llama.attention.layer_norm_rms_epsilon", kv.f32(0), /layer_norm_rms_epsilon is 0/],
    ["llama.context_length", kv.u32(2 ** 32 - 1), /llama\.context_length is 4294967295, expected an integer from 1 to 16777216/],
    ["llama.rope.dimension_count", kv.u32(31), /llama\.rope\.dimension_count is 31, expected an even number/],
    ["llama.rope.dimension_count", kv.u32(2 ** 24), /llama\.rope\.dimension_count is 16777216, expected an integer from 1 to 32/],
  ];
  for (const [key, value, pattern] of cases) {
    const file = path.join(dir, "bad.gguf");
    writeRandomModel(file, "smollm2-135m", { shape: tiny, metadata: [[key, value]] });
    assert.throws(() => loadModel(file), pattern, key);
  }
  const file = path.join(dir, "dup.gguf");
  const tokens = Array.from({ length: 300 }, (_, i) => (i === 120 ? "tok7" : `tok${i}`));
  writeRandomModel(file, "smollm2-135m", { shape: tiny, metadata: [["tokenizer.ggml.tokens", kv.strings(tokens)]] });
  assert.throws(() => loadModel(file).tokenizer, /tokenizer\.ggml\.tokens: holds "tok7" twice \(ids 7 and 120\)/);
});

test("tokenize reads at most 64 MiB of standard input (like ask), then one error line", () => {
  const r = spawnSync(process.execPath, [BIN, "tokenize"], { input: Buffer.alloc(65 * 2 ** 20, 0x61), encoding: "utf8", maxBuffer: 1 << 20 });
  assert.equal(r.status, 2); // a UsageError: the input is past the limit
  assert.equal(r.stderr.trim(), "parallelcomp: standard input is larger than 64 MiB");
});

test("closing the server right after a request whose clean-up replaces the engine thread: the replacement finishes loading, nothing fails after", async () => {
  const lines: string[] = [];
  const s = await startServer({ model: { options: { threads: 1 } }, port: 0, log: (l) => lines.push(l) });
  // The process grows past the replacement threshold (10% and 32 MiB over idle) on this thread's
  // side, as another server's run in the same process made it in CI.
  const ballast = Buffer.alloc(256 * 2 ** 20, 1);
  try {
    const r = await fetch(s.url + "/v1/chat/completions", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ model: "m", max_tokens: 2, messages: [{ role: "user", content: "The pass key is 12345. Remember it.\n\nWhat is the pass key?" }] }) });
    assert.equal(r.status, 200);
    await r.json();
  } finally {
    await s.close(); // before: the half-loaded replacement's start failed with no one to hear it
  }
  assert.ok(lines.some((l) => /over idle: replacing it/.test(l)), lines.join("\n"));
  assert.ok(!lines.some((l) => /failed/.test(l)), lines.join("\n"));
  assert.equal(ballast[ballast.length - 1], 1);
});
