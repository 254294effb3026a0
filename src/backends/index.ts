// Loading a model on a backend: our engine ("native"), llama.cpp's ("llama.cpp"), or "auto":
// llama.cpp when one of its GPU builds loads and finds a device, else ours (faster on a CPU:
// docs/performance.md). A fallback is said in one line (`engine.backend.notice`).

import { BACKENDS, type BackendChoice, type Engine } from "../engine/engine.js";
import { loadModel as loadNativeModel, type LoadOptions, type Model } from "../model/model.js";
import { defaultModelPath } from "../model/bundled.js";
import { UsageError } from "../errors.js";
import { LlamaCppEngine, openLlamaCpp, type LlamaCppOptions } from "./llama-cpp.js";

export interface EngineOptions extends LoadOptions, Omit<LlamaCppOptions, "threads" | "stepTokens"> {
  /** "native" (default), "llama.cpp" or "auto". */
  backend?: BackendChoice;
}

export function checkBackend(name: string): BackendChoice {
  if (!(BACKENDS as readonly string[]).includes(name)) throw new UsageError(`unknown backend "${name}" (known: ${BACKENDS.join(", ")})`);
  return name as BackendChoice;
}

/** Loads a GGUF model on the chosen backend; without a file, the bundled model. */
export function loadEngine(file?: string, opts: EngineOptions = {}): Engine {
  file ??= defaultModelPath();
  const backend = checkBackend(opts.backend ?? "native");
  const { backend: _b, flashAttention, gpuLayers, ...native } = opts;
  const kvType = opts.kvType;
  const llamaOpts = { threads: opts.threads, stepTokens: opts.stepTokens, kvType, flashAttention, gpuLayers };
  if (backend === "llama.cpp") return LlamaCppEngine.load(file, llamaOpts);
  if (backend === "auto") {
    let why: string;
    try {
      const l = openLlamaCpp();
      if (l.device !== "cpu") return LlamaCppEngine.load(file, llamaOpts);
      why = l.noGpu ?? "no GPU build of llama.cpp is installed";
    } catch (e) {
      why = (e as Error).message;
    }
    const m = loadNativeModel(file, native);
    m.backend.notice = `${why}: using the native engine`;
    return m;
  }
  return loadNativeModel(file, native);
}

/**
 * The library's loader: our engine by default (a `Model`, whose layers, weights and kernels are
 * open to the caller), or `{ backend: "llama.cpp" | "auto" }` for an engine behind the interface.
 */
export function loadModel(file?: string, opts?: LoadOptions & { backend?: "native" }): Model;
export function loadModel(file?: string, opts?: EngineOptions): Engine;
export function loadModel(file?: string, opts: EngineOptions = {}): Engine {
  return loadEngine(file, opts);
}
