// The RULER-style needle tasks: the needle sits once, at needleOffset, deeper with depth; the
// multi-key distractors carry other names and values at other places; samples are as long as
// asked in the bundled model's tokens; the filler is the licence prose of
// /usr/share/common-licenses (read here independently of the generator); NEEDLE_NAMES equals
// the training list in tools/train/tasks.py.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { loadModel } from "../src/model/model.js";
import { boundaryOf, tokenizeRequest } from "../src/method/request.js";
import { chunkBudget } from "../src/method/parallelcomp.js";
import { chunkContext } from "../src/method/chunking.js";
import { evalAnswerTokens } from "../src/eval/run.js";
import { makeSample, licenceSentences, NEEDLE_NAMES, LICENSE_DIR, LAYOUTS, type Sample } from "../src/eval/tasks.js";

const model = loadModel(undefined, { threads: 1 });
after(() => model.close());
const tok = model.tokenizer;
const count = (s: string) => tok.encode(s, { addBos: false, parseSpecial: false }).length;

// "The NAME is V. Remember it. V is the NAME." with the name and the value repeated exactly.
const NEEDLE = /The ([a-z ]+?) is (\d+)\. Remember it\. \2 is the \1\./g;

function needles(s: Sample) {
  return [...s.request.context.matchAll(NEEDLE)].map((m) => ({ name: m[1], value: m[2], offset: m.index!, text: m[0] }));
}

function queried(s: Sample): string {
  const m = /^What is the (.+)\?$/.exec(s.request.question);
  assert.ok(m, `question ${JSON.stringify(s.request.question)}`);
  assert.equal(s.request.answerPrefix, `The ${m[1]} is`);
  return m[1];
}

function promptTokens(s: Sample): number {
  const r = tokenizeRequest(tok, model.gguf, s.request);
  return (r.bos === null ? 0 : 1) + r.header.length + r.context.length + r.query.length;
}

test("needle: the queried needle is in the context exactly once, at needleOffset, with the expected value", () => {
  for (const task of ["needle", "needle_multikey"] as const) {
    for (let seed = 0; seed < 20; seed++) {
      const s = makeSample(task, 2048, seed / 19, seed, count);
      const name = queried(s);
      const text = `The ${name} is ${s.answer}. Remember it. ${s.answer} is the ${name}.`;
      const ctx = s.request.context;
      assert.equal(ctx.indexOf(text), s.needleOffset, `${task} seed ${seed}`);
      assert.equal(ctx.indexOf(text, s.needleOffset + 1), -1);
      assert.equal(ctx.split(`The ${name} is`).length, 2, "the queried name occurs in one needle only");
      assert.match(s.answer, /^[1-9](\d{4}|\d{9})$/);
      assert.equal(needles(s).length, task === "needle" ? 1 : 4);
      assert.ok(NEEDLE_NAMES.includes(name));
    }
  }
});

test("needle: the needle's offset grows with depth, from the start at 0 to the end at 1", () => {
  for (const task of ["needle", "needle_multikey"] as const) {
    let last = -1;
    for (let i = 0; i <= 20; i++) {
      const s = makeSample(task, 4096, i / 20, 7, count);
      assert.ok(s.needleOffset >= last, `${task} depth ${i / 20}: offset ${s.needleOffset} after ${last}`);
      last = s.needleOffset;
      if (i === 0) assert.equal(s.needleOffset, 0);
      if (i === 20) assert.ok(s.request.context.endsWith(` ${s.answer} is the ${queried(s)}.`));
    }
    assert.ok(last > 3000, `${task}: the needle at depth 1 sits at character ${last}`);
  }
  // Between the ends, the needle is at the sentence boundary nearest to depth (in tokens), so it
  // is off by at most half the longest licence sentence.
  const longest = Math.max(...licenceSentences().map((x) => count(x + " ")));
  for (const depth of [0.1, 0.37, 0.5, 0.81]) {
    const s = makeSample("needle", 16384, depth, 3, count);
    const ctx = s.request.context;
    const filler = count(ctx) - count(needles(s)[0].text + " ");
    const before = count(ctx.slice(0, s.needleOffset));
    assert.ok(Math.abs(before - depth * filler) <= longest / 2 + 1, `depth ${depth}: ${before} tokens before the needle of ${filler}`);
  }
});

test("needle_multikey: three distractors with other names and values, at other places, separated by filler", () => {
  for (let seed = 0; seed < 30; seed++) {
    const s = makeSample("needle_multikey", 1024 + 97 * seed, (seed % 7) / 6, seed, count);
    const name = queried(s);
    const all = needles(s);
    assert.equal(all.length, 4);
    assert.equal(new Set(all.map((n) => n.name)).size, 4, "distinct names");
    assert.equal(new Set(all.map((n) => n.value)).size, 4, "distinct values");
    const distractors = all.filter((n) => n.offset !== s.needleOffset);
    assert.equal(distractors.length, 3);
    for (const d of distractors) {
      assert.notEqual(d.name, name);
      assert.ok(NEEDLE_NAMES.includes(d.name));
      // answering with a distractor's value never scores as right
      assert.ok(!d.value.includes(s.answer) && !s.answer.includes(d.value), `${d.value} vs ${s.answer}`);
    }
    for (let i = 1; i < all.length; i++) {
      const between = s.request.context.slice(all[i - 1].offset + all[i - 1].text.length, all[i].offset).trim();
      assert.ok(/[A-Za-z]{2}/.test(between), `seed ${seed}: needles ${i - 1} and ${i} are adjacent`);
    }
  }
});

test("needle: a sample is within a few tokens of its length in the bundled model's tokenizer, never over", () => {
  for (const task of ["needle", "needle_multikey"] as const) {
    for (const length of [700, 1000, 4096, 32768]) {
      for (let seed = 0; seed < 5; seed++) {
        const n = promptTokens(makeSample(task, length, seed / 4, seed, count));
        assert.ok(n <= length && n >= length - 16, `${task} ${length} seed ${seed}: ${n} tokens`);
      }
    }
  }
});

test("needle: the filler is licence prose from /usr/share/common-licenses, not one repeated sentence", () => {
  // The corpus as the files read: regular files only, whitespace runs as single spaces; twice,
  // since the filler cycles through it.
  const files = fs.readdirSync(LICENSE_DIR).sort().filter((f) => fs.lstatSync(path.join(LICENSE_DIR, f)).isFile());
  const once = files.map((f) => fs.readFileSync(path.join(LICENSE_DIR, f), "utf8").replace(/\s+/g, " ").trim()).join(" ");
  const corpus = once + " " + once;
  for (const task of ["needle", "needle_multikey"] as const) {
    const s = makeSample(task, 8192, 0.4, 12, count);
    const fragments = s.request.context.replace(NEEDLE, "\n").split("\n")
      .flatMap((part) => part.trim().split(/(?<=[.!?]["')\]]?) /)).filter((f) => f.length > 0);
    assert.ok(fragments.length >= 30, `${fragments.length} fragments`);
    for (const f of fragments) assert.ok(corpus.includes(f), `not from the licences: ${JSON.stringify(f)}`);
    const tally = new Map<string, number>();
    for (const f of fragments) tally.set(f, (tally.get(f) ?? 0) + 1);
    assert.ok(tally.size >= 0.8 * fragments.length, `${tally.size} distinct of ${fragments.length}`);
    assert.ok(!s.request.context.includes("The grass is green."));
  }
  // Samples of different seeds start at different places of the corpus.
  const starts = new Set(Array.from({ length: 10 }, (_, seed) => makeSample("needle", 1024, 1, seed, count).request.context.slice(0, 60)));
  assert.ok(starts.size >= 8);
});

test("needle: 128K-token samples tokenize each licence sentence once, not the whole text per sample", () => {
  let chars = 0;
  const counting = (s: string) => { chars += s.length; return count(s); };
  const corpus = licenceSentences().reduce((a, x) => a + x.length + 1, 0);
  makeSample("needle", 131072, 0.5, 1, counting);
  makeSample("needle_multikey", 131072, 0.2, 2, counting);
  assert.ok(chars < 1.05 * corpus, `${chars} characters tokenized for a corpus of ${corpus}`);
});

test("needle: the same seed gives the same sample; names and value lengths vary with the seed", () => {
  for (const task of ["needle", "needle_multikey"] as const) {
    assert.deepEqual(makeSample(task, 3000, 0.3, 42, count), makeSample(task, 3000, 0.3, 42, count));
    assert.notEqual(makeSample(task, 3000, 0.3, 42, count).request.context, makeSample(task, 3000, 0.3, 43, count).request.context);
  }
  const samples = Array.from({ length: 60 }, (_, seed) => makeSample("needle", 800, 0.5, seed, count));
  assert.ok(new Set(samples.map(queried)).size >= 25);
  assert.deepEqual(new Set(samples.map((s) => s.answer.length)), new Set([5, 10]));
});

test("needle: NEEDLE_NAMES is the training list of tools/train/tasks.py", () => {
  const py = fs.readFileSync(fileURLToPath(new URL("../../tools/train/tasks.py", import.meta.url)), "utf8");
  const list = /^NEEDLE_NAMES = \[([^\]]*)\]/m.exec(py);
  assert.ok(list, "NEEDLE_NAMES in tasks.py");
  assert.deepEqual([...list[1].matchAll(/"([^"]*)"/g)].map((m) => m[1]), NEEDLE_NAMES);
});

// The prompt as the bundled model reads it (its plain layout), from the request's token parts.
function promptText(s: Sample): string {
  const r = tokenizeRequest(tok, model.gguf, s.request);
  return tok.decode([...r.header, ...r.context, ...r.query]);
}

test("layouts: each renders the prompt people paste, written out here from InfiniteBench's and RULER's templates", () => {
  const ib = {
    passkey: "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you about the important information.",
    number_string: "There is an important info hidden inside a lot of irrelevant text. Find it. I will quiz you about the important information there.",
    kv_retrieval: "Extract the value corresponding to the specified key in the JSON object below.",
  };
  const lead = { passkey: "The pass key is", number_string: "The sequence of digits is" };
  for (const task of ["passkey", "number_string", "kv_retrieval"] as const) {
    const split = makeSample(task, 700, 0.3, 7, count);
    const at = (layout: (typeof LAYOUTS)[number]) => makeSample(task, 700, 0.3, 7, count, layout);
    const ctx = split.request.context;
    const q = split.request.question;
    const input = task === "kv_retrieval" ? `${q}\nThe value associated with the specified key is: ` : `${q}\n\n${lead[task]}`;
    // published: InfiniteBench's template with its input; the runtime's question line break follows
    assert.equal(promptText(at("published")), `${ib[task]}\n\n${ctx}\n\n${input}\n`);
    // chat: the same text as one message; the server's split keeps no header and trims the end
    const chat = at("chat");
    assert.equal(promptText(chat), `${ib[task]}\n\n${ctx}\n\n${input.trimEnd()}\n`);
    assert.equal(chat.request.instruction, "");
    assert.equal(chat.request.context.slice(chat.needleOffset, chat.needleOffset + 20), ctx.slice(split.needleOffset, split.needleOffset + 20));
    // no_lead: the split prompt without its answer prefix; the lead is what the answer must hold
    const noLead = at("no_lead");
    assert.equal(promptText(noLead), `${split.request.instruction}\n\n${ctx}\n\n${q}\n`);
    assert.equal(noLead.lead, split.request.answerPrefix);
    for (const l of LAYOUTS.filter((x) => x !== "ruler")) assert.equal(at(l).answer, split.answer, l);
  }
  // ruler: RULER's NIAH needle, instruction, question and answer prefix around the same key
  for (const task of ["passkey", "number_string"] as const) {
    const s = makeSample(task, 700, 0.5, 3, count, "ruler");
    const m = /One of the special magic numbers for ([a-z]+-[a-z]+) is: (\d+)\./.exec(s.request.context);
    assert.ok(m, "RULER needle");
    assert.equal(m[2], s.answer);
    assert.equal(m[2].length, task === "passkey" ? 5 : 10);
    assert.equal(promptText(s).slice(-230), `Some special magic numbers are hidden within the following text. Make sure to memorize it. I will quiz you about the numbers afterwards.\n\n${s.request.context}\n\nWhat are all the special magic numbers for ${m[1]} mentioned in the provided text?\nThe special magic number for ${m[1]} mentioned in the provided text is`.slice(-230));
    assert.ok(promptTokens(s) <= 700);
  }
  assert.throws(() => makeSample("kv_retrieval", 700, 0.5, 1, count, "ruler"), /ruler layout is RULER's needle wording, for passkey and number_string \(got kv_retrieval\)/);
  assert.throws(() => makeSample("needle", 700, 0.5, 1, count, "published"), /needle task comes in the split layout only/);
});

test("layouts: RULER's key words are the training lists of tools/train/tasks.py", () => {
  const py = fs.readFileSync(fileURLToPath(new URL("../../tools/train/tasks.py", import.meta.url)), "utf8");
  const ts = fs.readFileSync(fileURLToPath(new URL("../../src/eval/tasks.ts", import.meta.url)), "utf8");
  for (const name of ["RULER_ADJECTIVES", "RULER_NOUNS"]) {
    const words = (src: string) => [...new RegExp(`${name} = \\[([^\\]]*)\\]`).exec(src)![1].matchAll(/"([^"]*)"/g)].map((x) => x[1]);
    assert.ok(words(py).length >= 30, name);
    assert.deepEqual(words(ts), words(py), name);
  }
});

test("needle: a too short length, a depth outside [0, 1] and a missing licence folder are errors", () => {
  assert.throws(() => makeSample("needle", 150, 0.5, 1, count), /length 150 is too short for needle/);
  assert.throws(() => makeSample("needle_multikey", 300, 0.5, 1, count), /length 300 is too short for needle_multikey: .*\(at least 3 needed\)/);
  for (const depth of [-0.1, 1.5, NaN]) assert.throws(() => makeSample("needle", 4096, depth, 1, count), /depth must be in \[0, 1\]/);
  assert.throws(() => licenceSentences("/nonexistent/licences"), /\/nonexistent\/licences, which does not exist/);
});

test("chunk recall: a chunk holds the needle when it holds the value, also the needle's second half", async () => {
  const { holdsAnswer } = await import("../src/eval/run.js");
  const text = "The sky is blue. The pass key is 12345. Remember it. 12345 is the pass key. The sun is yellow.";
  const ids = tok.encode(text, { addBos: false, parseSpecial: false });
  const cut = count("The sky is blue. The pass key is 12345. Remember it."); // a cut between the needle's sentences
  assert.equal(holdsAnswer(tok, ids, { start: 0, end: cut }, "12345"), true);
  assert.equal(holdsAnswer(tok, ids, { start: cut, end: ids.length }, "12345"), true, "the second half still holds the value");
  assert.equal(holdsAnswer(tok, ids, { start: 0, end: count("The sky is blue. The pass key is 1234") }, "12345"), false, "a value cut in two is not held");
  assert.equal(holdsAnswer(tok, ids, { start: count("The sky is blue. The pass key is 12345. Remember it. 12345"), end: ids.length }, "12345"), false);
});

test("chunks of the bundled model's 32K samples: passkey and number_string cut at sentence ends into lengths within 10% of each other, the last one too; kv_retrieval at the commas between pairs", () => {
  const b = boundaryOf(tok);
  for (const task of ["passkey", "number_string", "kv_retrieval"] as const) {
    const s = makeSample(task, 32768, 0.4, 3, count);
    const req = tokenizeRequest(tok, model.gguf, s.request);
    const budget = chunkBudget(model.config.nCtxTrain, req, evalAnswerTokens(count, s.answer)); // as `eval` sizes them
    const spans = chunkContext(req.context, budget, b);
    const text = spans.map((x) => tok.decode(req.context.slice(x.start, x.end)));
    assert.equal(text.join(""), s.request.context);
    assert.ok(spans.every((x) => x.end - x.start <= budget), `${task}: a chunk over the budget of ${budget}`);
    if (task === "kv_retrieval") {
      // Every chunk holds whole pairs: "{" or the space after a cut's comma, pairs, then "," or "}".
      const pairs = /^"[0-9a-f-]{36}": "[0-9a-f-]{36}"(, "[0-9a-f-]{36}": "[0-9a-f-]{36}")*$/;
      text.forEach((t, i) => assert.match(t.slice(1, -1), pairs, `${task} chunk ${i}`));
      continue;
    }
    text.slice(0, -1).forEach((t, i) => assert.ok(t.endsWith("."), `${task}: chunk ${i} ends ${JSON.stringify(t.slice(-20))}`));
    const lengths = spans.map((x) => x.end - x.start);
    const longest = Math.max(...lengths);
    assert.ok(Math.min(...lengths) >= 0.9 * longest, `${task}: lengths ${Math.min(...lengths)}-${longest}`);
    assert.ok(lengths.at(-1)! >= 0.9 * longest, `${task}: the last chunk has ${lengths.at(-1)} tokens, the longest ${longest}`);
  }
});
