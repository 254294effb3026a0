// Measurements quoted in the notes and the model card, kept here so they can be rerun.
//   node dist/tools/experiments.js separator [samples]
//     Chunk recall with and without scoring the "\n\n" separator that joins the question to a
//     chunk (bundled model, passkey and number_string at 16K tokens, retrieval preset).
//   node dist/tools/experiments.js misses [task] [length] [samples]
//     The wrong answers of ParallelComp (retrieval preset, `eval`'s samples and seeds): which
//     chunks hold the value, which one was kept, how the kept chunk begins, what was answered
//     (the model card's "all 6 number_string misses at 16K are the needle's second half").
//   node dist/tools/experiments.js kquant SHAPE TYPE LAYERS T...
//     Our last-token log-probabilities against llama.cpp's (F32 KV) on a random model of SHAPE
//     with TYPE weights and LAYERS layers, for each prompt length T.
//   node dist/tools/experiments.js perturb [type] [shape layers promptLength]
//     How far our own engine's log-probs move when every matmul output is nudged by 1e-7
//     (default: 2-layer SmolLM2-width random model with a 1024-token vocabulary, 64-token prompt;
//     with a shape, its real vocabulary): the floor for agreement with any other engine that sums
//     in a different order, per weight type (GgmlType number).

import * as os from "node:os";
import * as path from "node:path";
import { loadModel } from "../src/model/model.js";
import { loadTokenizer } from "../src/tokenizer/index.js";
import { defaultModelPath } from "../src/model/bundled.js";
import { isCorrect, makeSample, type TaskName } from "../src/eval/tasks.js";
import { holdsAnswer } from "../src/eval/run.js";
import { boundaryOf, tokenizeRequest } from "../src/method/request.js";
import { parallelComp } from "../src/method/parallelcomp.js";
import { resolveOptions } from "../src/method/options.js";
import { writeRandomModel } from "../src/model/random-model.js";
import { sequenceBatch } from "../src/engine/batch.js";
import type { Kernels } from "../src/kernels/types.js";
import { randomTokens } from "../tests/support/tmp.js";

function separator(samples: number) {
  const model = loadModel(defaultModelPath());
  const tok = loadTokenizer(model.gguf);
  const count = (s: string) => tok.encode(s, { addBos: false, parseSpecial: false }).length;
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
  const model = loadModel(defaultModelPath());
  const tok = loadTokenizer(model.gguf);
  const count = (s: string) => tok.encode(s, { addBos: false, parseSpecial: false }).length;
  const o = resolveOptions("retrieval", { maxTokens: task === "kv_retrieval" ? 24 : 16 }); // as `parallelcomp eval`
  let wrong = 0;
  for (let i = 0; i < samples; i++) {
    const s = makeSample(task, length, samples === 1 ? 0.5 : i / (samples - 1), 100003 + i, count); // eval's seed 1
    const req = tokenizeRequest(tok, model.gguf, s.request);
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
  const nudged: Kernels = { ...base, name: base.name, matmul(args) {
    base.matmul(args);
    for (let i = 0; i < args.T * args.nOut; i++) args.y[i] *= 1 + ((((i * 2654435761) >>> 0) % 3) - 1) * 1e-7;
  } };
  const b = logProbs(nudged);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  console.log(`type ${type}${shape ? ` ${shape} ${nLayers} layers, ${promptLength} tokens` : ""}: max |log-prob change| under a 1e-7 nudge of every matmul output: ${d.toExponential(2)}`);
}

async function kquant(shape: string, type: number, nLayers: number, lengths: number[]) {
  const { compareWithLlamaCpp } = await import("../tests/support/compare.js");
  for (const n of lengths) {
    const r = await compareWithLlamaCpp(shape, { type, nLayers, promptLength: n, nGen: 1 });
    console.log(`${shape} type ${type}, ${nLayers} layers, ${n} prompt tokens: max |log-prob difference| ${r.maxDiff.toExponential(2)}`);
  }
}

const [what, arg] = process.argv.slice(2);
if (what === "separator") separator(Number(arg ?? 10));
else if (what === "kquant") void kquant(arg, Number(process.argv[4]), Number(process.argv[5]), process.argv.slice(6).map(Number)).then(() => process.exit(0));
else if (what === "perturb") perturb(Number(arg ?? 8), process.argv[4], Number(process.argv[5] ?? 2), Number(process.argv[6] ?? 64));
else if (what === "misses") misses((arg ?? "number_string") as TaskName, Number(process.argv[4] ?? 16384), Number(process.argv[5] ?? 50));
else {
  console.error("usage: node dist/tools/experiments.js separator [samples] | misses [task] [length] [samples] | perturb [GgmlType] [shape layers promptLength] | kquant SHAPE TYPE LAYERS T...");
  process.exit(2);
}
