// The library entry point.

export { ask, askStream, type AskRequest, type AskOptions, type AskResult, type AskChunk, type AskStream } from "./api.js";
export { resolveOptions, PRESETS, DEFAULTS, ANSWER_TOKENS, PAPER_RECIPE, type ParallelCompOptions, type OptionOverrides } from "./method/options.js";
export { METHODS, type Method } from "./method/baselines.js";
export type { Progress } from "./method/parallelcomp.js";
export { loadTokenizer, type Tokenizer } from "./tokenizer/index.js";
export { BUNDLED_MODEL } from "./model/bundled.js";
export { resolveModel, parseModelRef, defaultCacheDir, type ResolveOptions, type ModelRef } from "./download/model-ref.js";
export type { DownloadProgress } from "./download/download.js";

export { Model, type LoadOptions } from "./model/model.js";
export { loadModel, loadEngine, type EngineOptions } from "./backends/index.js";
export type { Engine, SeqCache, BackendInfo, BackendChoice } from "./engine/engine.js";
export { UsageError, BackendError } from "./errors.js";
export type { ModelConfig } from "./model/config.js";
export { generate, type GenerateOptions, type GenerateResult } from "./generate/generate.js";
export { Sampler, type SamplerOptions } from "./generate/sampler.js";
export { type Batch, emptyBatch, batchAdd, sequenceBatch } from "./engine/batch.js";
export { KvCache } from "./engine/kv-cache.js";
export { attentionProbs, layerAttentionProbs } from "./engine/attention-probs.js";
export { GgufFile, GgufError } from "./gguf/reader.js";
export { writeGguf, kv } from "./gguf/writer.js";
export { GgmlType } from "./gguf/types.js";
export { writeRandomModel, SHAPES } from "./model/random-model.js";
export { startServer, type ServerOptions, type RunningServer } from "./server/server.js";
