// Measurements quoted in the notes and the model card, kept here so they can be rerun.
//   node dist/tools/experiments.js separator [samples]
//     Chunk recall with and without scoring the "\n\n" separator that joins the question to a
//     chunk (bundled model, passkey and number_string at 16K tokens, retrieval preset).
//   node dist/tools/experiments.js misses [task] [length] [samples]
//     The wrong answers of ParallelComp (retrieval preset, `eval`'s samples and seeds): which
//     chunks hold the value, which one was kept, how the kept chunk begins, what was answered
//     (the model card's "all 6 number_string misses at 16K are the needle's second half").
//   node dist/tools/experiments.js lengthbias [task] [length] [samples]
//     The kept-slot bias by chunk length (ParallelComp, top 1 and the default preset's top 3,
//     `eval`'s samples, seeds and answer room): how often a kept chunk lacks the value, and how
//     often that chunk is the document's last one, a shortest or a longest one, against what chance gives;
//     the chunk lengths; accuracy.
//   node dist/tools/experiments.js drift [length] [samples] [layout]
//     The drift case: kv_retrieval with 1, 2, 3 kept chunks and the calibrate preset; how often the
//     value's chunk is kept and the answer still wrong; keeping fewer when one chunk is far ahead.
//   node dist/tools/experiments.js chunks [task] [length] [budget]
//     How chunkContext cuts a sample (`eval`'s seed 1, depth 0.5; budget: `eval`'s chunk budget
//     unless given): the count, the shortest / 5th percentile / median / longest and last length,
//     and how many cuts fall after each boundary kind. No model run, only the tokenizer.
//   node dist/tools/experiments.js kquant SHAPE TYPE LAYERS T...
//     Our last-token log-probabilities against llama.cpp's (F32 KV) on a random model of SHAPE
//     with TYPE weights and LAYERS layers, for each prompt length T.
//   node dist/tools/experiments.js perturb [type] [shape layers promptLength]
//     How far our own engine's log-probs move when every matmul output is nudged by 1e-7
//     (default: 2-layer SmolLM2-width random model with a 1024-token vocabulary, 64-token prompt;
//     with a shape, its real vocabulary): the floor for agreement with any other engine that sums
//     in a different order, per weight type (GgmlType number).
// The bundled model's runs use the kernels' default thread count; THREADS=N sets it (e.g. 1 while
// the other core trains); MODEL=FILE runs another model (a training candidate) in its place.
// drift's ONLY=i,j,... runs just those samples (0-based; depths and seeds as in the full run), e.g.
//   MODEL=/tmp/run7.gguf ONLY=22,23,46 node dist/tools/experiments.js drift 131072 50 published

import * as os from "node:os";
import * as path from "node:path";
import { loadModel } from "../src/model/model.js";
import { loadTokenizer } from "../src/tokenizer/index.js";
import { defaultModelPath } from "../src/model/bundled.js";
import { isCorrect, makeSample, type LayoutName, type TaskName } from "../src/eval/tasks.js";
import { evalAnswerTokens, holdsAnswer } from "../src/eval/run.js";
import { boundaryOf, tokenizeRequest } from "../src/method/request.js";
import { chunkBudget, parallelComp, type ParallelCompResult } from "../src/method/parallelcomp.js";
import { chunkContext } from "../src/method/chunking.js";
import { resolveOptions } from "../src/method/options.js";
import { writeRandomModel } from "../src/model/random-model.js";
import { sequenceBatch } from "../src/engine/batch.js";
import type { Kernels } from "../src/kernels/types.js";
import { randomTokens } from "../tests/support/tmp.js";

/** The bundled model (or MODEL's), its tokenizer and a token counter of text. */
function bundled() {
  const model = loadModel(process.env.MODEL || defaultModelPath(), process.env.THREADS ? { threads: Number(process.env.THREADS) } : {});
  const tok = loadTokenizer(model.gguf);
  const count = (s: string) => tok.encode(s, { addBos: false, parseSpecial: false }).length;
  return { model, tok, count };
}

function separator(samples: number) {
  const { model, tok, count } = bundled();
  const o = resolveOptions("retrieval", { maxTokens: 16 }); // as `parallelcomp eval` sizes chunks
  for (const task of ["passkey", "number_string"] as TaskName[]) {
    const kept = { scored: 0, skipped: 0 };
    for (let i = 0; i < samples; i++) {
      const s = makeSample(task, 16384, samples === 1 ? 0.5 : i / (samples - 1), 100003 + i, count);
      const req = tokenizeRequest(tok, model.gguf, s.request);
      const needle = count(s.request.context.slice(0, s.needleOffset));
      const hit = (r: ReturnType<typeof parallelComp>) => (r.kept.some((k) => needle >= k.start && needle < k.end) ? 1 : 0);
      kept.scored += hit(parallelComp(model, { ...req, separator: 0 }, o, { boundary: boundaryOf(tok) }));
      kept.skipped += hit(parallelComp(model, req, o, { boundary: boundaryOf(tok) }));
    }
    console.log(`${task} @16K, ${samples} samples: chunk recall ${(100 * kept.scored / samples).toFixed(0)}% scoring the separator, ${(100 * kept.skipped / samples).toFixed(0)}% without it`);
  }
}

function misses(task: TaskName, length: number, samples: number) {
  const { model, tok, count } = bundled();
  let wrong = 0;
  for (let i = 0; i < samples; i++) {
    const s = makeSample(task, length, samples === 1 ? 0.5 : i / (samples - 1), 100003 + i, count); // eval's seed 1
    const req = tokenizeRequest(tok, model.gguf, s.request);
    const o = resolveOptions("retrieval", { maxTokens: evalAnswerTokens(count, s.answer) }); // as `parallelcomp eval`
    const r = parallelComp(model, req, o, { boundary: boundaryOf(tok), stopTokens: tok.eogTokens });
    const answer = tok.decode(r.tokens, { skipSpecial: true });
    if (isCorrect(s, answer)) continue;
    wrong++;
    const holders = r.spans.map((span, j) => (holdsAnswer(tok, req.context, span, s.answer) ? j : -1)).filter((j) => j >= 0);
    const k = r.kept[0];
    const head = tok.decode(req.context.slice(k.start, Math.min(k.end, k.start + 48)));
    console.log(`sample ${i}: value ${s.answer} in chunk(s) ${holders.map((j) => `#${j} (score ${r.scores[j].toFixed(4)})`).join(", ") || "none"}; kept #${k.index} (score ${k.score.toFixed(4)}), which begins ${JSON.stringify(head)}; answered ${JSON.stringify(answer)}`);
  }
  console.log(`${task} @ ${length}, ${samples} samples: ${wrong} wrong`);
}

/** Per preset: answers right, kept slots, those without the value, and of these the last / a shortest / a longest chunk, each with chance's count. */
interface SlotTally { right: number; slots: number; without: number; last: number; shortest: number; longest: number; lastByChance: number; shortestByChance: number; longestByChance: number; rankSum: number }

function lengthBias(task: TaskName, length: number, samples: number) {
  const { model, tok, count } = bundled();
  const runs = [{ name: "top 1", keepChunks: 1 }, { name: "top 3 (default preset)", keepChunks: 3 }];
  const tally: SlotTally[] = runs.map(() => ({ right: 0, slots: 0, without: 0, last: 0, shortest: 0, longest: 0, lastByChance: 0, shortestByChance: 0, longestByChance: 0, rankSum: 0 }));
  const lengths = { lastShortest: 0, lastOverMedian: [] as number[], spread: [] as number[], chunks: [] as number[], min: [] as number[], median: [] as number[], max: [] as number[] };
  for (let i = 0; i < samples; i++) {
    const s = makeSample(task, length, samples === 1 ? 0.5 : i / (samples - 1), 100003 + i, count); // eval's seed 1
    const req = tokenizeRequest(tok, model.gguf, s.request);
    const hooks = { boundary: boundaryOf(tok), stopTokens: tok.eogTokens };
    const results: ParallelCompResult[] = runs.map((p) => parallelComp(model, req, resolveOptions("default", { keepChunks: p.keepChunks, keepWithin: null, maxTokens: evalAnswerTokens(count, s.answer) }), hooks));
    const spans = results[0].spans;
    const len = spans.map((x) => x.end - x.start);
    const n = spans.length;
    const holds = spans.map((x) => holdsAnswer(tok, req.context, x, s.answer));
    const min = Math.min(...len);
    const max = Math.max(...len);
    const sorted = [...len].sort((a, b) => a - b);
    // A chunk's length rank from 0 (shortest) to 1 (longest), ties sharing their mean rank.
    const rank = (l: number) => (sorted.indexOf(l) + sorted.lastIndexOf(l)) / 2 / Math.max(1, n - 1);
    lengths.lastShortest += len[n - 1] === min ? 1 : 0;
    lengths.lastOverMedian.push(len[n - 1] / sorted[Math.floor(n / 2)]);
    lengths.spread.push((max - min) / max);
    lengths.chunks.push(n);
    lengths.min.push(min);
    lengths.median.push(sorted[Math.floor(n / 2)]);
    lengths.max.push(max);
    const free = holds.filter((h) => !h).length; // chunks a slot without the value could go to
    const shortFree = len.filter((l, j) => l === min && !holds[j]).length;
    const longFree = len.filter((l, j) => l === max && !holds[j]).length;
    results.forEach((r, p) => {
      const t = tally[p];
      t.right += isCorrect(s, tok.decode(r.tokens, { skipSpecial: true })) ? 1 : 0;
      t.slots += r.kept.length;
      const without = r.kept.filter((k) => !holds[k.index]);
      t.without += without.length;
      t.last += without.filter((k) => k.index === n - 1).length;
      t.shortest += without.filter((k) => len[k.index] === min).length;
      t.longest += without.filter((k) => len[k.index] === max).length;
      t.rankSum += without.reduce((a, k) => a + rank(len[k.index]), 0);
      if (free > 0) {
        t.lastByChance += holds[n - 1] ? 0 : without.length / free;
        t.shortestByChance += (without.length * shortFree) / free;
        t.longestByChance += (without.length * longFree) / free;
      }
    });
  }
  const f = (xs: number[], d = 2) => `${Math.min(...xs).toFixed(d)}-${Math.max(...xs).toFixed(d)}`;
  console.log(`${task} @ ${length}, ${samples} samples: ${f(lengths.chunks, 0)} chunks of ${f(lengths.min, 0)} / ${f(lengths.median, 0)} / ${f(lengths.max, 0)} tokens (shortest / median / longest); the last chunk is the shortest in ${lengths.lastShortest} of ${samples}, its length over the median ${f(lengths.lastOverMedian)}; (longest - shortest) / longest ${f(lengths.spread)}`);
  runs.forEach((p, j) => {
    const t = tally[j];
    console.log(`  ${p.name}: accuracy ${t.right}/${samples}; kept slots without the value ${t.without} of ${t.slots}: the last chunk ${t.last} (chance ${t.lastByChance.toFixed(1)}), a shortest chunk ${t.shortest} (chance ${t.shortestByChance.toFixed(1)}), a longest chunk ${t.longest} (chance ${t.longestByChance.toFixed(1)}), mean length rank ${t.without > 0 ? (t.rankSum / t.without).toFixed(2) : "-"} (0 shortest, 1 longest)`);
  });
}

function chunks(task: TaskName, length: number, budget?: number) {
  const { model, tok, count } = bundled();
  const s = makeSample(task, length, 0.5, 100003, count); // eval's seed 1, one sample
  const req = tokenizeRequest(tok, model.gguf, s.request);
  const B = budget ?? chunkBudget(model.config.nCtxTrain, req, evalAnswerTokens(count, s.answer));
  const boundary = boundaryOf(tok);
  const spans = chunkContext(req.context, B, boundary);
  const len = spans.map((x) => x.end - x.start).sort((a, b) => a - b);
  const kinds = [0, 0, 0, 0, 0];
  for (const x of spans.slice(0, -1)) kinds[boundary(req.context[x.end - 1])]++;
  const q = (f: number) => len[Math.min(len.length - 1, Math.floor(f * len.length))];
  console.log(`${task} @ ${length} (${req.context.length} context tokens), budget ${B}: ${spans.length} chunks of ${len[0]} / ${q(0.05)} / ${q(0.5)} / ${len[len.length - 1]} tokens (shortest / 5% / median / longest), the last ${spans[spans.length - 1].end - spans[spans.length - 1].start}; cuts after a line end ${kinds[4]}, sentence end ${kinds[3]}, clause end ${kinds[2]}, word end ${kinds[1]}, none ${kinds[0]}`);
  model.close();
}

function perturb(type: number, shape?: string, nLayers = 2, promptLength = 64) {
  const file = path.join(os.tmpdir(), `parallelcomp-perturb-${type}.gguf`);
  const s = writeRandomModel(file, shape ?? "smollm2-135m", { type, seed: 7, shape: shape ? { nLayers } : { nLayers: 2, nVocab: 1024 } });
  // With a shape: the model, context and prompt that `kquant` compares with llama.cpp.
  const model = loadModel(file, shape ? { ctxSize: promptLength + 17 } : {});
  const prompt = shape ? randomTokens(promptLength, s.nVocab - 2, 11) : Array.from({ length: promptLength }, (_, i) => (i * 37 + 5) % 1000);
  const logProbs = (K?: Kernels) => {
    const base = model.kernels;
    if (K) (model as unknown as { kernels: Kernels }).kernels = K;
    const l = model.forward(model.newCache(), sequenceBatch(prompt));
    (model as unknown as { kernels: Kernels }).kernels = base;
    let m = -Infinity;
    for (const v of l) m = Math.max(m, v);
    let s = 0;
    for (const v of l) s += Math.exp(v - m);
    return Float64Array.from(l, (v) => v - m - Math.log(s));
  };
  const a = logProbs();
  const base = model.kernels;
  // Four nudge patterns (each output times 1 - 1e-7, 1 or 1 + 1e-7 by a hash of its index and
  // the pattern): which activations cross a rounding boundary depends on the pattern.
  const changes: number[] = [];
  for (let pattern = 0; pattern < 4; pattern++) {
    const nudged: Kernels = { ...base, name: base.name, matmul(args) {
      base.matmul(args);
      for (let i = 0; i < args.T * args.nOut; i++) args.y[i] *= 1 + (((((i + pattern * 7919) * 2654435761) >>> 0) % 3) - 1) * 1e-7;
    } };
    const b = logProbs(nudged);
    let d = 0;
    for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
    changes.push(d);
  }
  console.log(`type ${type}${shape ? ` ${shape} ${nLayers} layers, ${promptLength} tokens` : ""}: max |log-prob change| under a 1e-7 nudge of every matmul output, four patterns: ${changes.map((d) => d.toExponential(2)).join(" ")}`);
}

async function kquant(shape: string, type: number, nLayers: number, lengths: number[]) {
  const { compareWithLlamaCpp } = await import("../tests/support/compare.js");
  for (const n of lengths) {
    const r = await compareWithLlamaCpp(shape, { type, nLayers, promptLength: n, nGen: 1 });
    console.log(`${shape} type ${type}, ${nLayers} layers, ${n} prompt tokens: max |log-prob difference| ${r.maxDiff.toExponential(2)}`);
  }
}

/**
 * The drift case (issue 18): kv_retrieval at `length`, `eval`'s samples and seeds, run with the
 * default preset at 1, 2 and 3 kept chunks and with the calibrate preset (3 kept). Per run: right
 * answers, how often the value's chunk was kept, and of those the wrong answers (and how many of
 * them begin with the value's first 8 characters: the drift). Then "fewer chunks when one is far
 * ahead": keep the top-3 chunks whose score is within `gap` nats of the best; since scores do not
 * depend on how many are kept, its answer is the 1-, 2- or 3-chunk run's, read off per sample.
 */
function drift(length: number, samples: number, layout: LayoutName) {
  const { model, tok, count } = bundled();
  const runs = [
    { name: "top 1", preset: "default", keepChunks: 1 },
    { name: "top 2", preset: "default", keepChunks: 2 },
    { name: "top 3 (default)", preset: "default", keepChunks: 3 },
    { name: "calibrate (top 3)", preset: "calibrate", keepChunks: 3 },
  ];
  const tally = runs.map(() => ({ right: 0, kept: 0, keptWrong: 0, drift: 0 }));
  const gaps = [0.02, 0.05, 0.1, 0.2, 0.5];
  const byGap = gaps.map(() => 0);
  const rows: string[] = [];
  const t0 = performance.now();
  const chosen = process.env.ONLY ? process.env.ONLY.split(",").map(Number) : Array.from({ length: samples }, (_, i) => i);
  for (const [n, i] of chosen.entries()) {
    const s = makeSample("kv_retrieval", length, samples === 1 ? 0.5 : i / (samples - 1), 100003 + i, count, layout); // eval's seed 1
    const req = tokenizeRequest(tok, model.gguf, s.request);
    const hooks = { boundary: boundaryOf(tok), stopTokens: tok.eogTokens };
    const right: boolean[] = [];
    let sorted: number[] = [];
    runs.forEach((p, j) => {
      const r = parallelComp(model, req, resolveOptions(p.preset, { keepChunks: p.keepChunks, keepWithin: null, maxTokens: evalAnswerTokens(count, s.answer) }), hooks);
      const answer = tok.decode(r.tokens, { skipSpecial: true });
      const ok = isCorrect(s, answer);
      const hit = r.kept.some((k) => holdsAnswer(tok, req.context, r.spans[k.index], s.answer));
      const t = tally[j];
      t.right += ok ? 1 : 0;
      t.kept += hit ? 1 : 0;
      if (hit && !ok) {
        t.keptWrong++;
        if (answer.includes(s.answer.slice(0, 8))) t.drift++;
      }
      right.push(ok);
      if (j === 2) sorted = r.kept.map((k) => k.score).sort((a, b) => a - b);
      rows.push(`sample ${i} ${p.name}: ${ok ? "right" : "wrong"}, value's chunk ${hit ? "kept" : "not kept"}, kept scores ${r.kept.map((k) => k.score.toFixed(3)).join(" ")}${ok ? "" : `, answered ${JSON.stringify(answer.slice(0, 48))}`}`);
    });
    gaps.forEach((g, j) => {
      const k = sorted.filter((x) => x <= sorted[0] + g).length;
      byGap[j] += right[k - 1] ? 1 : 0;
    });
    process.stderr.write(`\r${n + 1}/${chosen.length} samples, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  process.stderr.write("\n");
  for (const r of rows) console.log(r);
  console.log(`kv_retrieval @ ${length}, layout ${layout}, ${chosen.length} of ${samples} samples:`);
  runs.forEach((p, j) => {
    const t = tally[j];
    console.log(`  ${p.name}: right ${t.right}/${chosen.length}; value's chunk kept ${t.kept}; kept but wrong ${t.keptWrong} (of them beginning with the value's first 8 characters: ${t.drift})`);
  });
  gaps.forEach((g, j) => console.log(`  top 3 within ${g} nats of the best: right ${byGap[j]}/${chosen.length}`));
  model.close();
}

const [what, arg] = process.argv.slice(2);
if (what === "separator") separator(Number(arg ?? 10));
else if (what === "kquant") void kquant(arg, Number(process.argv[4]), Number(process.argv[5]), process.argv.slice(6).map(Number)).then(() => process.exit(0));
else if (what === "perturb") perturb(Number(arg ?? 8), process.argv[4], Number(process.argv[5] ?? 2), Number(process.argv[6] ?? 64));
else if (what === "lengthbias") lengthBias((arg ?? "number_string") as TaskName, Number(process.argv[4] ?? 131072), Number(process.argv[5] ?? 8));
else if (what === "chunks") chunks((arg ?? "needle") as TaskName, Number(process.argv[4] ?? 131072), process.argv[5] === undefined ? undefined : Number(process.argv[5]));
else if (what === "drift") drift(Number(arg ?? 131072), Number(process.argv[4] ?? 50), (process.argv[5] ?? "split") as LayoutName);
else if (what === "misses") misses((arg ?? "number_string") as TaskName, Number(process.argv[4] ?? 16384), Number(process.argv[5] ?? 50));
else {
  console.error("usage: node dist/tools/experiments.js separator [samples] | misses [task] [length] [samples] | lengthbias [task] [length] [samples] | drift [length] [samples] [layout] | chunks [task] [length] [budget] | perturb [GgmlType] [shape layers promptLength] | kquant SHAPE TYPE LAYERS T...");
  process.exit(2);
}
