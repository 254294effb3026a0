// Load time and the first requests of a model, mapped (the default) and read into our own
// buffers: seconds to load, peak RSS, and two forward passes over the same prompt (a one-off
// cost in the first request shows as a first pass slower than the second). Each mode runs in a
// process of its own, so RSS and the page cache's state are its own.
//
//   node dist/tools/load-bench.js FILE [promptTokens=128]
//   node dist/tools/load-bench.js --write llama3.1-8b FILE    (a random model with llama-quantize's Q4_K_M mix first)

import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadModel } from "../src/model/model.js";
import { sequenceBatch } from "../src/engine/batch.js";
import { writeRandomModel } from "../src/model/random-model.js";

const args = process.argv.slice(2);
if (args[0] === "--write") {
  writeRandomModel(args[2], args[1], { mix: "Q4_K_M" });
  console.log(`wrote ${args[2]}`);
} else if (args[0] === "--child") {
  const [, file, mode, n] = args;
  const t0 = performance.now();
  const model = loadModel(file, { mmap: mode === "mapped" });
  const load = (performance.now() - t0) / 1000;
  const prompt = Array.from({ length: Number(n) }, (_, i) => (i * 37 + 5) % 1000);
  const pass = () => {
    const t = performance.now();
    model.forward(model.newCache({ capacity: prompt.length }), sequenceBatch(prompt));
    return (performance.now() - t) / 1000;
  };
  const first = pass(), second = pass();
  console.log(`${mode.padEnd(6)}: load ${load.toFixed(1)} s, forward ${first.toFixed(1)} s then ${second.toFixed(1)} s (${n} tokens), peak RSS ${(process.resourceUsage().maxRSS / 2 ** 20).toFixed(2)} GiB`);
  model.close();
} else {
  const [file, n = "128"] = args;
  if (!file) {
    console.error("usage: load-bench FILE [promptTokens] | --write SHAPE FILE");
    process.exit(2);
  }
  for (const mode of ["mapped", "read"]) {
    const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), "--child", file, mode, n], { stdio: "inherit" });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
}
