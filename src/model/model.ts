// A loaded model: its config, its weights, the kernels that run it, and a reusable workspace.

import { GgufFile } from "../gguf/reader.js";
import { KvCache, type KvType } from "../engine/kv-cache.js";
import type { Batch } from "../engine/batch.js";
import { selectKernels, type KernelChoice, type Kernels } from "../kernels/index.js";
import type { NativeKernels } from "../kernels/native.js";
import { UsageError } from "../errors.js";
import { readConfig, type ModelConfig } from "./config.js";
import { forward, shiftKeys, Workspace, type ForwardOptions } from "./forward.js";
import { loadWeights, type ModelWeights } from "./weights.js";
import { loadTokenizer, type Tokenizer } from "../tokenizer/index.js";
import { defaultModelPath } from "./bundled.js";
import type { BackendInfo, Engine, LayerAccess } from "../engine/engine.js";

export interface LoadOptions {
  threads?: number;
  kernels?: KernelChoice;
  /** Tokens per forward step (llama.cpp's ubatch); bounds activation memory. */
  stepTokens?: number;
  /** The context the model runs in (Phi-3 picks its long or short RoPE factors by it); default the trained one. */
  ctxSize?: number;
  /** How the KV cache stores keys and values: "f16" (the default, as llama.cpp; half the memory)
   *  or "f32" (exact: the parity tests against llama.cpp's F32 cache use it). */
  kvType?: KvType;
  /** Map the file instead of reading the weights into our own buffers (default true, with the
   *  native addon): processes on one file share its pages, and the OS may reclaim them. */
  mmap?: boolean;
}

/** Our own engine: the model's layers in TypeScript over the native (or TypeScript) kernels. */
export class Model implements Engine {
  readonly backend: BackendInfo = { name: "native", device: "cpu" };
  readonly layers: LayerAccess;
  private ws: Workspace; // grows (and stays grown) when a one-step batch needs more
  private tok: Tokenizer | null = null;

  constructor(
    readonly file: string,
    readonly gguf: GgufFile,
    readonly config: ModelConfig,
    readonly weights: ModelWeights,
    readonly kernels: Kernels,
    stepTokens: number,
    readonly kvType: KvType = "f16",
  ) {
    this.ws = new Workspace(config, stepTokens);
    this.layers = {
      config,
      rotateKey: (l, key, delta) => {
        const plan = config.layers[l].rope;
        if (plan) shiftKeys(config, plan, plan.factors ? weights.ropeFactors.get(plan.factors)! : null, key, 1, delta);
      },
      cache: (c) => {
        if (!(c instanceof KvCache)) throw new Error("this cache was not made by the native engine");
        return c;
      },
    };
  }

  /** A KV cache shaped for this model. */
  newCache(opts: { nSeqMax?: number; capacity?: number } = {}): KvCache {
    const c = this.config;
    return new KvCache(c.nLayers, c.nKvHeads, c.headDim, opts.nSeqMax ?? 64, opts.capacity ?? 256, this.kernels.copyRows, this.kvType);
  }

  /** Runs a batch; returns logits [nWanted, nVocab] for the entries that want them. */
  forward(cache: KvCache, batch: Batch, opts?: ForwardOptions): Float32Array {
    if (opts?.oneStep && batch.n > this.ws.stepTokens) this.ws = new Workspace(this.config, batch.n);
    return forward(this.config, this.weights, this.kernels, this.ws, cache, batch, opts);
  }

  /** The tokenizer stored in the file (read on first use). */
  get tokenizer(): Tokenizer {
    this.tok ??= loadTokenizer(this.gguf);
    return this.tok;
  }

  close(): void {
    this.gguf.close();
  }
}

/** Loads a GGUF model; without a file, the model bundled with the package. */
export function loadModel(file?: string, opts: LoadOptions = {}): Model {
  file ??= defaultModelPath();
  const gguf = GgufFile.open(file);
  try {
    const kvType = opts.kvType ?? "f16";
    if (kvType !== "f16" && kvType !== "f32") throw new UsageError(`kvType must be "f16" or "f32", got ${JSON.stringify(kvType)}`);
    const config = readConfig(gguf, { ctxSize: opts.ctxSize, kvBytesPerValue: kvType === "f16" ? 2 : 4 });
    const kernels = selectKernels(opts.kernels);
    if (kernels.name === "native" && opts.mmap !== false) gguf.useMapping((offset, length) => (kernels as NativeKernels).mapFile(file, offset, length));
    const weights = loadWeights(gguf, config);
    if (opts.threads !== undefined) {
      if (!Number.isInteger(opts.threads) || opts.threads < 1) throw new Error(`threads must be a positive integer, got ${opts.threads}`);
      kernels.setThreads(opts.threads);
    }
    return new Model(file, gguf, config, weights, kernels, opts.stepTokens ?? 512, kvType);
  } catch (e) {
    gguf.close();
    throw e;
  }
}
