// What a sliding window does to ParallelComp's stage 1, measured on a random model.
//
// In stage 1 the question sits at positions after the longest kept chunk (every chunk starts at
// position 0). A sliding layer of window W lets a query at position p see keys at positions
// above p - W: the question sees only the last W positions of each kept chunk there (none of a
// chunk shorter than p - W), and all of them in the global layers. We run the model as llama.cpp
// does (the window applies), and this tool measures how far that is from the same model with
// every layer global: the answer's first token and the identical prefix of 16 greedy tokens, over
// random documents, on a Gemma-3-shaped model (narrow widths, 6 layers: five sliding, one global).
//
//   node dist/tools/swa-effect.js [--samples 20] [--window 128] [--chunk 512]

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { writeRandomModel } from "../src/model/random-model.js";
import { loadModel } from "../src/model/model.js";
import { parallelComp } from "../src/method/parallelcomp.js";
import { resolveOptions } from "../src/method/options.js";
import { rng } from "../src/util/rng.js";

const { values } = parseArgs({ options: { samples: { type: "string", default: "20" }, window: { type: "string", default: "128" }, chunk: { type: "string", default: "512" } } });
const samples = Number(values.samples), window = Number(values.window), chunk = Number(values.chunk);

const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "swa-")), "gemma3.gguf");
writeRandomModel(file, "gemma3-1b", { seed: 3, shape: { nLayers: 6, nVocab: 4096, dim: 256, nHeads: 4, nKvHeads: 1, headDim: 64, nFf: 512, slidingWindow: window } });
const sliding = loadModel(file, { threads: 2 });
const global = loadModel(file, { threads: 2 });
for (const spec of global.config.layers) spec.window = 0; // the same weights, every layer global

const random = rng(11);
const tokens = (n: number) => Array.from({ length: n }, () => Math.floor(random() * 4000));
let firstSame = 0, prefix = 0, keptSame = 0;
const opts = resolveOptions("default", { maxTokens: 16, chunkTokens: chunk });
for (let s = 0; s < samples; s++) {
  const req = { bos: null, header: [], context: tokens(8 * chunk), query: tokens(12) };
  const a = parallelComp(sliding, req, opts);
  const b = parallelComp(global, req, opts);
  if (a.tokens[0] === b.tokens[0]) firstSame++;
  let n = 0;
  while (n < a.tokens.length && a.tokens[n] === b.tokens[n]) n++;
  prefix += n;
  if (a.kept.map((k) => k.index).join() === b.kept.map((k) => k.index).join()) keptSame++;
}
console.log(`window ${window}, chunks of ${chunk} tokens (the question sees the last ${Math.min(window, chunk)} positions of each in the sliding layers), ${samples} documents of 8 chunks:`);
console.log(`  same kept chunks ${keptSame}/${samples}; same first answer token ${firstSame}/${samples}; identical greedy prefix ${(prefix / samples).toFixed(1)} of 16 tokens on average`);
sliding.close();
global.close();
fs.rmSync(path.dirname(file), { recursive: true, force: true });
