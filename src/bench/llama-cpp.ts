// llama.cpp as the outside reference (parity tests) and the speed yardstick (bench), through
// node-llama-cpp 3.21.1. It is a devDependency, so it is imported only when asked for.
// Its greedy sampler keeps the whole vocabulary with raw logits, so the "probabilities" it
// returns are softmax(logits): their logs are llama.cpp's next-token log-probabilities, up to
// one constant (node-llama-cpp normalises with a float sum over the vocabulary, ~1e-4 off for
// 150K tokens), so comparisons should subtract the top token's log-probability first.

import type { Llama } from "node-llama-cpp";

let llama: Promise<Llama> | null = null;

export function reference(): Promise<Llama> {
  llama ??= import("node-llama-cpp").then(
    (m) => m.getLlama({ gpu: false, build: "never", logLevel: m.LlamaLogLevel.error, progressLogs: false }),
    (e) => { throw new Error(`llama.cpp comparison needs the devDependency node-llama-cpp (npm install): ${(e as Error).message}`); },
  );
  return llama;
}

export interface ReferenceRun {
  logProbs: Float64Array; // [nVocab] after the whole prompt
  greedy: number[]; // greedy continuation
  margins: number[]; // per greedy step: log-prob of the chosen token minus the runner-up's
  prefillSeconds: number;
  decodeSeconds: number;
}

/** Evaluates `prompt` (ids used exactly, no BOS added) and continues greedily for nGen tokens. */
export async function llamaCppRun(modelPath: string, prompt: number[], nGen: number, opts: { nVocab: number; threads?: number; kvF32?: boolean; contextSize?: number }): Promise<ReferenceRun> {
  const l = await reference();
  const model = await l.loadModel({ modelPath, gpuLayers: 0 });
  try {
    const context = await model.createContext({
      contextSize: opts.contextSize ?? prompt.length + nGen + 16,
      batchSize: Math.max(512, Math.min(2048, prompt.length)),
      threads: opts.threads ?? 2,
      flashAttention: false,
      // llama.cpp's default KV cache is F16; F32 removes that rounding for exact comparisons.
      ...(opts.kvF32 === false ? {} : { experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" }),
    } as never);
    try {
      const seq = context.getSequence();
      const t0 = performance.now();
      const input = prompt.map((t, i) => (i === prompt.length - 1 ? ([t, { generateNext: { probabilities: true, token: true } }] as [number, object]) : t));
      const out = await seq.controlledEvaluate(input as never);
      const t1 = performance.now();
      const next = out[prompt.length - 1]!.next;
      const probs = next.probabilities!;
      const logProbs = new Float64Array(opts.nVocab);
      logProbs.fill(-Infinity);
      for (const [tok, p] of probs) logProbs[tok as number] = Math.log(p);
      const margin = (p: Map<number, number>) => {
        const [a, b] = [...p.values()]; // sorted, most likely first
        return b === undefined ? Infinity : Math.log(a) - Math.log(b);
      };
      const greedy: number[] = [next.token as number];
      const margins: number[] = [margin(probs as Map<number, number>)];
      while (greedy.length < nGen) {
        const r = await seq.controlledEvaluate([[greedy[greedy.length - 1], { generateNext: { token: true, probabilities: true } }]] as never);
        greedy.push(r[0]!.next.token as number);
        margins.push(margin(r[0]!.next.probabilities as Map<number, number>));
      }
      const t2 = performance.now();
      return { logProbs, greedy, margins, prefillSeconds: (t1 - t0) / 1000, decodeSeconds: (t2 - t1) / 1000 };
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

export interface SpeedRun {
  prefillTokensPerSecond: number; // best of `repeats`
  decodeTokensPerSecond: number;
}

/** llama.cpp's own prefill and decode speed on a prompt (its default F16 KV cache, no flash attention). */
export async function llamaCppSpeed(modelPath: string, prompt: number[], nDecode: number, threads: number, repeats = 2, batchSize = prompt.length): Promise<SpeedRun> {
  const l = await reference();
  const model = await l.loadModel({ modelPath, gpuLayers: 0 });
  try {
    // llama.cpp as users run it: its defaults (F16 KV cache, flash attention "auto").
    const context = await model.createContext({ contextSize: prompt.length + nDecode + 16, batchSize, threads });
    try {
      const seq = context.getSequence();
      let prefill = 0;
      let decode = 0;
      for (let r = 0; r < repeats; r++) {
        await seq.clearHistory();
        const input = prompt.map((t, i) => (i === prompt.length - 1 ? ([t, { generateNext: { token: true } }] as [number, object]) : t));
        const t0 = performance.now();
        const out = await seq.controlledEvaluate(input as never);
        const t1 = performance.now();
        let token = out[prompt.length - 1]!.next.token as number;
        for (let i = 0; i < nDecode; i++) {
          const o = await seq.controlledEvaluate([[token, { generateNext: { token: true } }]] as never);
          token = o[0]!.next.token as number;
        }
        const t2 = performance.now();
        prefill = Math.max(prefill, prompt.length / ((t1 - t0) / 1000));
        decode = Math.max(decode, nDecode / ((t2 - t1) / 1000));
      }
      return { prefillTokensPerSecond: prefill, decodeTokensPerSecond: decode };
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}
