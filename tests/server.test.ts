// The OpenAI-compatible server, driven by the official `openai` client and by raw HTTP: answers
// over a document longer than the window, streaming equal to the whole answer, one 4xx error
// object per kind of bad request (and the server still up), a load test where every request is
// answered or refused with 429 and none is lost or mixed up, and a client that leaves frees
// its place.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { loadModel } from "../src/model/model.js";
import { generate } from "../src/generate/generate.js";
import { startServer, StopScanner } from "../src/server/server.js";
import { parseJob, splitConversation, QUESTION_JOIN_CHARS } from "../src/server/requests.js";
import { makeSample } from "../src/eval/tasks.js";
import { ask } from "../src/api.js";
import { ANSWER_TOKENS } from "../src/method/options.js";
import { BackendError, UsageError, errorKind, errorOfKind } from "../src/errors.js";

const model = loadModel(); // the bundled model: a 512-token window
const tok = model.tokenizer;
const count = (s: string) => tok.encode(s, { addBos: false, parseSpecial: false }).length;
// The load test's prompts and their answers, computed before the server starts: generating them
// blocks this thread (the server's) for seconds, and done between requests it let the client's
// pooled keep-alive sockets expire on the server's side unseen, the next request on one meeting
// ECONNRESET (seen on a loaded machine).
const loadPrompts = (() => {
  const prompts = Array.from({ length: 16 }, (_, c) => Array.from({ length: 4 }, (_, j) => `Client ${c} asks ${j}: The sky is ${["blue", "green", "red", "grey"][(c + j) % 4]}. The pass key is ${10000 + 97 * c + j}. The pass key is`));
  const expected = new Map(prompts.flat().map((p) => [p, tok.decode(generate(model, tok.encode(p, { addBos: true }), { maxTokens: 6, stopTokens: tok.eogTokens }).tokens, { skipSpecial: true })]));
  return { prompts, expected };
})();
const srv = await startServer({ model, port: 0, maxQueue: 4 });
const client = new OpenAI({ baseURL: srv.url + "/v1", apiKey: "unused", maxRetries: 0 });
after(async () => { await srv.close(); model.close(); });

async function post(path: string, body: string, headers: Record<string, string> = { "content-type": "application/json" }) {
  const r = await fetch(srv.url + path, { method: "POST", body, headers });
  return { status: r.status, json: await r.json() as any };
}

test("GET /v1/models lists the model with its window", async () => {
  const list = await client.models.list();
  assert.equal(list.data.length, 1);
  assert.equal(list.data[0].id, "parallelcomp-retrieval");
  assert.equal((list.data[0] as any).context_length, 512);
});

test("a chat completion over a document 8x the window finds the pass key, with usage counts", async () => {
  const s = makeSample("passkey", 4096, 0.4, 11, count);
  const r = await client.chat.completions.create({
    model: "parallelcomp-retrieval",
    messages: [{ role: "system", content: s.request.instruction! }, { role: "user", content: `${s.request.context}\n\n${s.request.question}` }],
    max_tokens: 8,
    // our model answers after the InfiniteBench answer prefix; the override field gives it
    parallelcomp: { answer_prefix: s.request.answerPrefix, preset: "retrieval" },
  } as any);
  assert.match(r.choices[0].message.content!, new RegExp(s.answer));
  assert.ok(r.usage!.prompt_tokens > 4000 && r.usage!.prompt_tokens <= 4096 + 8, `prompt_tokens ${r.usage!.prompt_tokens}`);
  assert.equal(r.usage!.completion_tokens, tok.encode(r.choices[0].message.content!, { addBos: false }).length);
  assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);
  const pc = (r as any).parallelcomp;
  assert.ok(pc.nChunks >= 8, `nChunks ${pc.nChunks}`);
  assert.equal(pc.keptChunks.length, 2); // the retrieval preset keeps 2
});

test("a long document without the parallelcomp extension or max_tokens is answered right (the model writes the lead, the default answer length holds it, a UUID's too); a given max_tokens is taken as given", async () => {
  const filler = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";
  const document = filler.repeat(20) + "The pass key is 48213. Remember it. 48213 is the pass key. " + filler.repeat(20); // 3,689 tokens
  const chat = { model: "parallelcomp-retrieval", messages: [{ role: "user" as const, content: `${document}\n\nWhat is the pass key?` }] };
  const r = await client.chat.completions.create(chat);
  assert.equal(r.choices[0].message.content, "The pass key is 48213");
  assert.equal(r.choices[0].finish_reason, "stop");
  assert.ok((r as any).parallelcomp.nChunks > 1, "read in chunks");
  // 16 answer tokens, as a client may ask: taken as given, so the 21-byte answer does not fit.
  const cut = await client.chat.completions.create({ ...chat, max_tokens: 16 });
  assert.equal(cut.usage!.completion_tokens, 16);
  assert.equal(cut.choices[0].finish_reason, "length");
  assert.doesNotMatch(cut.choices[0].message.content!, /48213/);
  // kv_retrieval: the lead and the UUID are 84 byte tokens, then EOS. (No answer prefix here
  // either; the retrieval preset's 2 chunks, since over the default's 3 this model writes another
  // "Key: ..." line instead of the answer.)
  const s = makeSample("kv_retrieval", 2048, 0.5, 5, count);
  const lead = "The value associated with the specified key is:";
  assert.equal(count(`${lead} ${s.answer}`), 84);
  assert.ok(84 + 1 <= ANSWER_TOKENS);
  const kv = await client.chat.completions.create({
    model: "m", messages: [{ role: "system", content: s.request.instruction! }, { role: "user", content: `${s.request.context}\n\n${s.request.question}` }],
    parallelcomp: { preset: "retrieval" },
  } as any);
  assert.equal(kv.choices[0].message.content, `${lead} ${s.answer}`);
  assert.equal(kv.choices[0].finish_reason, "stop");
  // keep_within: of the default preset's 3 chunks only those scored within 1 nat of the best stay
  // (the default; here the value's alone) and the answer is right; "all" keeps the three.
  const ask = (parallelcomp: object) => client.chat.completions.create({
    model: "m", messages: [{ role: "system", content: s.request.instruction! }, { role: "user", content: `${s.request.context}\n\n${s.request.question}` }],
    parallelcomp,
  } as any) as Promise<any>;
  const [near, all] = await Promise.all([ask({ preset: "default" }), ask({ keep_within: "all" })]);
  assert.equal(near.choices[0].message.content, `${lead} ${s.answer}`);
  assert.equal(all.parallelcomp.keptChunks.length, 3);
  const best = Math.min(...all.parallelcomp.keptChunks.map((k: any) => k.score));
  assert.deepEqual(near.parallelcomp.keptChunks, all.parallelcomp.keptChunks.filter((k: any) => k.score <= best + 1));
  assert.equal(near.parallelcomp.keptChunks.length, 1);
});

test("a streamed completion sends the same text as the whole one, then [DONE] and usage", async () => {
  const prompt = "The grass is green. The sky is blue. The sun is";
  const whole = await client.completions.create({ model: "m", prompt, max_tokens: 12 });
  const expected = tok.decode(generate(model, tok.encode(prompt, { addBos: true }), { maxTokens: 12, stopTokens: tok.eogTokens }).tokens, { skipSpecial: true });
  assert.equal(whole.choices[0].text, expected);
  const stream = await client.completions.create({ model: "m", prompt, max_tokens: 12, stream: true, stream_options: { include_usage: true } });
  const pieces: string[] = [];
  let usage: any = null;
  let finish: string | null = null;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    for (const ch of c.choices) { pieces.push(ch.text); finish = ch.finish_reason ?? finish; }
  }
  assert.ok(pieces.filter(Boolean).length > 1, "streamed in more than one piece");
  assert.equal(pieces.join(""), expected);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
});

test("a streamed chat completion over a long document equals the library's answer", async () => {
  const s = makeSample("number_string", 2048, 0.8, 5, count);
  const stream = await client.chat.completions.create({
    model: "m", stream: true, max_tokens: 16,
    messages: [{ role: "user", content: `${s.request.context}\n\n${s.request.question}` }],
    parallelcomp: { answer_prefix: s.request.answerPrefix, instruction: s.request.instruction, keep_chunks: 1 },
  } as any) as unknown as AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>;
  let text = "";
  let pieces = 0;
  for await (const c of stream) { text += c.choices[0]?.delta?.content ?? ""; pieces++; }
  const direct = await ask(model, s.request, { keepChunks: 1, maxTokens: 16 });
  assert.ok(pieces > 3);
  assert.equal(text, direct.answer);
});

test("bad requests get one OpenAI-style 4xx error each, and the server stays up", async () => {
  const cases: Array<[string, string, number, RegExp]> = [
    ["/v1/chat/completions", "{not json", 400, /not valid JSON/],
    ["/v1/chat/completions", "[]", 400, /JSON object/],
    ["/v1/chat/completions", JSON.stringify({ model: "m" }), 400, /'messages' is required/],
    ["/v1/chat/completions", JSON.stringify({ messages: [{ role: "robot", content: "hi" }] }), 400, /messages\[0\]\.role/],
    ["/v1/chat/completions", JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: -1 }), 400, /'max_tokens' must be an integer from 1 to 4096/],
    ["/v1/chat/completions", JSON.stringify({ messages: [{ role: "user", content: "hi" }], max_tokens: 1e9 }), 400, /'max_tokens'/],
    ["/v1/chat/completions", JSON.stringify({ messages: [{ role: "user", content: "hi" }], temperature: 7 }), 400, /'temperature' must be a number from 0 to 2/],
    ["/v1/chat/completions", JSON.stringify({ messages: [{ role: "user", content: "hi" }], n: 3 }), 400, /'n'/],
    ["/v1/chat/completions", JSON.stringify({ messages: [{ role: "user", content: "hi" }], parallelcomp: { method: "magic" } }), 400, /parallelcomp\.method/],
    ["/v1/chat/completions", JSON.stringify({ messages: [{ role: "user", content: "hi" }], parallelcomp: { keep_chunks: 0 } }), 400, /'keep_chunks' must be an integer from 1 to 4096, got 0/],
    ["/v1/chat/completions", JSON.stringify({ messages: [{ role: "user", content: "hi" }], parallelcomp: { top_k: 0 } }), 400, /'top_k' must be an integer from 1 to 4096, got 0/],
    ["/v1/chat/completions", JSON.stringify({ messages: [{ role: "user", content: "hi" }], parallelcomp: { low_memory: "yes" } }), 400, /'parallelcomp\.low_memory' must be true or false/],
    ["/v1/chat/completions", JSON.stringify({ messages: [{ role: "user", content: "hi" }], parallelcomp: { keep_within: -1 } }), 400, /'keep_within' must be a number from 0 to 1000 or "all", got -1/],
    ["/v1/chat/completions", JSON.stringify({ messages: [{ role: "user", content: "hi" }], parallelcomp: { keep_chunks: 1, top_k: 2 } }), 400, /'parallelcomp\.keep_chunks' 1 and 'parallelcomp\.top_k' 2 disagree: 'parallelcomp\.top_k' is the old name/],
    ["/v1/chat/completions", JSON.stringify({ messages: [{ role: "user", content: "x".repeat(100) + "\n\n" + "why? ".repeat(200) }] }), 400, /window/],
    ["/v1/completions", JSON.stringify({ prompt: 42 }), 400, /'prompt' is required/],
    ["/v1/nothing", "{}", 404, /no route/],
  ];
  for (const [path, body, status, pattern] of cases) {
    const r = await post(path, body);
    assert.equal(r.status, status, `${path} ${body.slice(0, 60)}: ${JSON.stringify(r.json)}`);
    assert.equal(typeof r.json.error.message, "string");
    assert.equal(typeof r.json.error.type, "string");
    assert.match(r.json.error.message, pattern);
  }
  const big = await fetch(srv.url + "/v1/completions", { method: "POST", body: "x".repeat(1000), headers: { "content-length": String(65 * 1024 * 1024) } }).catch((e) => e);
  assert.ok(big instanceof Error || big.status === 413, "an oversized declared body is refused");
  const get = await fetch(srv.url + "/v1/chat/completions");
  assert.equal(get.status, 405);
  // The official client turns them into its own error classes.
  await assert.rejects(client.chat.completions.create({ model: "m", messages: [] }), (e: any) => e.status === 400 && /messages/.test(e.message));
  assert.equal((await client.models.list()).data.length, 1, "still up");
});

test("the status follows the error's type, never its text: UsageError 400, BackendError 500 with its message, any other 500 without it", async () => {
  let thrown = new Error();
  const failing = Object.create(model, { forward: { value: () => { throw thrown; } } });
  const s = await startServer({ model: failing, port: 0 });
  try {
    // Each message reads like another kind, so a match on the text would give another status.
    const cases: Array<[Error, number, string, string]> = [
      [new UsageError("the device ran out of memory"), 400, "invalid_request_error", "the device ran out of memory"],
      [new BackendError("invalid request: the prompt is too long"), 500, "server_error", "invalid request: the prompt is too long"],
      [new Error("invalid request: 'max_tokens' must be a positive integer"), 500, "server_error", "internal error (see the server's log)"],
    ];
    for (const [e, status, type, message] of cases) {
      thrown = e;
      const r = await fetch(s.url + "/v1/completions", { method: "POST", body: JSON.stringify({ prompt: "The sky is", max_tokens: 2 }), headers: { "content-type": "application/json" } });
      assert.equal(r.status, status, `${e.name}: ${e.message}`);
      assert.deepEqual(((await r.json()) as any).error, { message, type, param: null, code: null });
      // From the engine thread the type crosses as its kind (worker.ts), and comes back the same.
      const back = errorOfKind(errorKind(e), e.message);
      assert.equal(back.constructor, e.constructor);
      assert.equal(back.message, e.message);
    }
  } finally {
    await s.close();
  }
});

test("stop strings end the answer before them, also across token boundaries", () => {
  const s = new StopScanner(["END"]);
  const out = ["ab", "cE", "N", "Dxyz"].map((p) => s.push(p));
  assert.deepEqual(out.map((o) => o.out).join(""), "abc");
  assert.equal(out[3].stopped, true);
  const none = new StopScanner([]);
  assert.deepEqual(none.push("abc"), { out: "abc", stopped: false });
});

test("parallelcomp.top_k, the deprecated name of keep_chunks, sets the chunks kept; the body's own top_k stays the sampler's", () => {
  const messages = [{ role: "user", content: "hi" }];
  const old = parseJob("chat", { messages, top_k: 7, parallelcomp: { top_k: 2 } });
  assert.equal(old.override.keepChunks, 2);
  assert.equal(old.sampling.topK, 7);
  assert.equal(parseJob("chat", { messages, parallelcomp: { keep_chunks: 2, top_k: 2 } }).override.keepChunks, 2);
  assert.equal(parseJob("chat", { messages, parallelcomp: { keep_chunks: 3 } }).override.keepChunks, 3);
});

test("the long-prompt split: the last paragraph of the last user message is the question, with a short question before a last paragraph that asks nothing", () => {
  const r = splitConversation([
    { role: "system", content: "Be brief." },
    { role: "user", content: "first doc" },
    { role: "assistant", content: "ok" },
    { role: "user", content: "para 1\n\npara 2\n \nWhat is X?\n" },
  ]);
  assert.deepEqual(r, { instruction: "Be brief.", context: "first doc\n\nok\n\npara 1\n\npara 2", question: "What is X?" });
  assert.deepEqual(splitConversation([{ role: "user", content: "just a question" }]), { instruction: "", context: "", question: "just a question" });
  // A last paragraph that asks nothing takes the short question before it along.
  const ib = splitConversation([{ role: "user", content: "intro\n\nthe document.\n\nWhat is the pass key?\n\nThe pass key is" }]);
  assert.deepEqual(ib, { instruction: "", context: "intro\n\nthe document.", question: "What is the pass key?\n\nThe pass key is" });
  assert.equal(splitConversation([{ role: "user", content: "doc\n\nWho wrote it?\n \nAnswer in one word.\n" }]).question, "Who wrote it?\n\nAnswer in one word.");
  // Not when the last paragraph asks, the one before is no question or too long, or nothing would be left before it.
  const keep = (content: string) => splitConversation([{ role: "user", content }]).question;
  assert.equal(keep("doc\n\nIs it?\n\nWhat is X?"), "What is X?");
  assert.equal(keep("doc\n\nIt is.\n\nSay X."), "Say X.");
  assert.equal(keep(`doc\n\n${"w".repeat(QUESTION_JOIN_CHARS)}?\n\nSay X.`), "Say X.");
  assert.equal(keep(`doc\n\n${"w".repeat(QUESTION_JOIN_CHARS - 1)}?\n\nSay X.`), `${"w".repeat(QUESTION_JOIN_CHARS - 1)}?\n\nSay X.`);
  assert.deepEqual(splitConversation([{ role: "user", content: "Why?\n\nSay X." }]), { instruction: "", context: "Why?", question: "Say X." });
});

test("load: 16 clients x 4 requests, each answered with its own text or refused with 429; memory bounded", async () => {
  const { prompts, expected } = loadPrompts;
  const rss0 = process.memoryUsage().rss;
  let ok = 0;
  let refused = 0;
  await Promise.all(prompts.map(async (mine) => {
    for (const prompt of mine) {
      const r = await post("/v1/completions", JSON.stringify({ prompt, max_tokens: 6 }));
      if (r.status === 429) { refused++; assert.equal(r.json.error.type, "rate_limit_error"); continue; }
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.choices[0].text, expected.get(prompt), "the answer to this client's own prompt");
      ok++;
    }
  }));
  assert.equal(ok + refused, 64, "none lost");
  assert.ok(ok >= 5, `at least the running one and the queue were served (ok ${ok}, refused ${refused})`);
  assert.deepEqual(srv.load(), { running: 0, waiting: 0 });
  const grown = (process.memoryUsage().rss - rss0) / 2 ** 20;
  assert.ok(grown < 200, `RSS grew ${grown.toFixed(0)} MiB`);
});

test("a client that disconnects cancels its run and frees its place in the queue", async () => {
  const s = makeSample("passkey", 524288, 0.5, 3, count); // well over 5 s of work if it ran to the end, even on a fast machine
  const body = JSON.stringify({ messages: [{ role: "user", content: `${s.request.context}\n\n${s.request.question}` }], max_tokens: 8, parallelcomp: { answer_prefix: "The pass key is" } });
  const first = new AbortController();
  const second = new AbortController();
  const p1 = fetch(srv.url + "/v1/chat/completions", { method: "POST", body, headers: { "content-type": "application/json" }, signal: first.signal }).catch((e) => e);
  await waitFor(() => srv.load().running === 1);
  const p2 = fetch(srv.url + "/v1/chat/completions", { method: "POST", body, headers: { "content-type": "application/json" }, signal: second.signal }).catch((e) => e);
  await waitFor(() => srv.load().waiting === 1);
  second.abort(); // a waiting client leaves: its place is freed at once
  await waitFor(() => srv.load().waiting === 0);
  const t0 = performance.now();
  first.abort(); // the running one leaves: its run stops at the next batch of chunks
  await waitFor(() => srv.load().running === 0);
  assert.ok(performance.now() - t0 < 5000, "cancelled within a batch, not after the whole document");
  assert.ok((await p1) instanceof Error && (await p2) instanceof Error);
  const r = await client.completions.create({ model: "m", prompt: "The sky is", max_tokens: 3 });
  assert.equal(typeof r.choices[0].text, "string", "the next request is served");
});

async function waitFor(cond: () => boolean, ms = 10000) {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > ms) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}
