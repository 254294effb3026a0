// Where a prefill's time goes: wraps the kernels with timers and runs one prompt through
// `generate` (prefill only), then prints the share of matmul (per weight shape), attention, the
// element-wise kernels and everything else (the TypeScript between kernels).
//
//   npm run build && node dist/tools/profile-forward.js [shape] [type] [tokens] [threads]

import { GgmlType } from "../src/gguf/types.js";
import { benchModel } from "../src/bench/bench.js";
import { loadModel } from "../src/model/model.js";
import { generate } from "../src/generate/generate.js";
import { SHAPES } from "../src/model/random-model.js";

const [shape = "smollm2-135m", typeName = "Q8_0", nTok = "512", threads = "2"] = process.argv.slice(2);
const type = typeName === "Q4_K_M" ? "Q4_K_M" : GgmlType[typeName as keyof typeof GgmlType] as GgmlType;
const model = loadModel(benchModel(shape, type), { threads: Number(threads) });
const k = model.kernels;
const times = new Map<string, { ms: number; calls: number }>();
const add = (key: string, ms: number) => {
  const e = times.get(key) ?? { ms: 0, calls: 0 };
  e.ms += ms;
  e.calls++;
  times.set(key, e);
};
const matmul = k.matmul.bind(k);
const attention = k.attention.bind(k);
k.matmul = (a) => { const t0 = performance.now(); matmul(a); add(`matmul ${a.nOut}x${a.nIn} T=${a.T}`, performance.now() - t0); };
k.attention = (a) => { const t0 = performance.now(); attention(a); add(`attention T=${a.T}`, performance.now() - t0); };
for (const op of ["rmsnorm", "swiglu", "add", "rope", "copyRows"] as const) {
  const f = (k[op] as (...args: unknown[]) => void).bind(k);
  (k as unknown as Record<string, unknown>)[op] = (...args: unknown[]) => { const t0 = performance.now(); f(...args); add(op, performance.now() - t0); };
}
const prompt = Array.from({ length: Number(nTok) }, (_, i) => (i * 7919) % (SHAPES[shape].nVocab - 2));
generate(model, prompt, { maxTokens: 1 });
times.clear();
const t0 = performance.now();
generate(model, prompt, { maxTokens: 1 });
const total = performance.now() - t0;
let kernels = 0;
for (const [key, e] of [...times].sort((a, b) => b[1].ms - a[1].ms)) {
  kernels += e.ms;
  console.log(`${key.padEnd(36)} ${e.ms.toFixed(1).padStart(8)} ms ${(100 * e.ms / total).toFixed(1).padStart(5)}%  (${e.calls} calls)`);
}
console.log(`${"other (TypeScript)".padEnd(36)} ${(total - kernels).toFixed(1).padStart(8)} ms ${(100 * (total - kernels) / total).toFixed(1).padStart(5)}%`);
console.log(`${"total".padEnd(36)} ${total.toFixed(1).padStart(8)} ms  ${(Number(nTok) / total * 1000).toFixed(0)} tok/s`);
model.close();
