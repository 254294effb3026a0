// Child process of the bench's real-size rows: loads one model in one engine, prefills a prompt,
// and prints { loadSeconds, peakRssBytes } as JSON. Each engine runs alone in its process, so
// its peak RSS is its own. argv: ours | llama.cpp, file, prompt tokens, threads.

import { loadModel } from "../model/model.js";
import { sequenceBatch } from "../engine/batch.js";
import { reference } from "./llama-cpp.js";

const [engine, file, n, threads] = process.argv.slice(2);
const prompt = Array.from({ length: Number(n) }, (_, i) => (i * 37 + 5) % 1000);
const t0 = performance.now();
let loadSeconds: number;
if (engine === "ours") {
  const model = loadModel(file, { threads: Number(threads) });
  loadSeconds = (performance.now() - t0) / 1000;
  model.forward(model.newCache({ capacity: prompt.length }), sequenceBatch(prompt));
  model.close();
} else {
  const l = await reference();
  const model = await l.loadModel({ modelPath: file, gpuLayers: 0 });
  const context = await model.createContext({ contextSize: prompt.length + 16, threads: Number(threads), batchSize: Math.max(512, prompt.length) });
  loadSeconds = (performance.now() - t0) / 1000;
  await context.getSequence().controlledEvaluate(prompt as never);
  await context.dispose();
  await model.dispose();
}
process.stdout.write(JSON.stringify({ loadSeconds, peakRssBytes: process.resourceUsage().maxRSS * 1024 }) + "\n");
