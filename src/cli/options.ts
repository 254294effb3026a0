// Parsers for numeric command-line options (a bad value gets one error naming the option), and the
// options every command that loads a model shares: the backend's and the model reference's.

import { InvalidArgumentError, Option, type Command } from "commander";
import { BACKENDS, type Engine } from "../engine/engine.js";
import { checkBackend, loadEngine, type EngineOptions } from "../backends/index.js";
import { renamed } from "../method/options.js";
import type { KernelChoice } from "../kernels/index.js";
import { resolveModel } from "../download/model-ref.js";
import { downloadReporter } from "./progress.js";

export function int(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}, got "${value}"`);
    return n;
  };
}

/** A number from min to max; `alsoAllowed` names, in the error, what else the caller accepts. */
export function num(min: number, max = Infinity, alsoAllowed = "") {
  return (value: string): number => {
    const n = Number(value);
    if (value.trim() === "" || !Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}${alsoAllowed}, got "${value}"`);
    return n;
  };
}

export function intList(min: number) {
  return (value: string): number[] => {
    const parts = value.split(",").map((s) => s.trim());
    if (parts.some((p) => !/^\d+$/.test(p) || Number(p) < min)) throw new InvalidArgumentError(`expected comma-separated integers >= ${min}, got "${value}"`);
    return parts.map(Number);
  };
}

/** `--keep-within`: a gap in nats from 0 to 1000, or "all" (kept as the word: commander turns a null into ""). */
function natsOrAll(value: string): number | "all" {
  return value.trim() === "all" ? "all" : num(0, 1000, ' or "all"')(value);
}

/** `--keep-chunks`, and `--top-k`, its old name (top-k is the sampler's word: `generate --top-k`). */
export function addKeepChunks(cmd: Command): Command {
  return cmd
    .option("-k, --keep-chunks <n>", "chunks kept for the answer (default: the preset's)", int(1, 4096))
    .option("--top-k <n>", "deprecated: the old name of --keep-chunks", int(1, 4096))
    .option("--keep-within <nats>", "of the kept chunks, keep only those scored within this many nats of the best, or \"all\" (default: the preset's, 1)", natsOrAll);
}

/** The `keepWithin` that `--keep-within` asks for: a gap, null for "all", undefined for the preset's. */
export function keepWithinOf(o: { keepWithin?: number | "all" }): number | null | undefined {
  return o.keepWithin === "all" ? null : o.keepWithin;
}

/** The chunks kept that `addKeepChunks`'s options ask for, if any. */
export function keepChunksOf(o: { keepChunks?: number; topK?: number }): number | undefined {
  return renamed(o.keepChunks, o.topK, "--keep-chunks", "--top-k");
}

/** The backend options every command that runs a model takes (`--backend` and llama.cpp's knobs). */
export function addBackendOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option("--backend <name>", "engine: native (ours), llama.cpp (its CPU or GPU builds), auto (llama.cpp when a GPU is found)").choices([...BACKENDS]).default("native"))
    .addOption(new Option("--kv-type <type>", "KV cache type (both engines; f16 halves its memory)").choices(["f16", "f32"]).default("f16"))
    .addOption(new Option("--flash-attn <mode>", "llama.cpp backend: flash attention").choices(["auto", "on", "off"]).default("auto"))
    .option("--gpu-layers <n>", "llama.cpp backend: layers offloaded to the GPU (default all)", int(0, 100000));
}

type BackendFlags = { threads?: number; backend?: string; kvType?: "f16" | "f32"; flashAttn?: "auto" | "on" | "off"; gpuLayers?: number; kernels?: KernelChoice };

/** The engine options the flags ask for (checked). */
export function engineOptions(o: BackendFlags): EngineOptions {
  return { threads: o.threads, kernels: o.kernels, backend: checkBackend(o.backend ?? "native"), kvType: o.kvType, flashAttention: o.flashAttn, gpuLayers: o.gpuLayers };
}

export const MODEL_HELP = "GGUF model: a file, hf:OWNER/REPO/FILE.gguf, hf:OWNER/REPO:QUANT or an http(s) URL, downloaded once into the cache (default: the bundled model)";

/** How a remote model is fetched: `--download-timeout` and `--quiet`. */
export function addDownloadOptions(cmd: Command): Command {
  return cmd
    .option("--download-timeout <seconds>", "give up a model download after this long without data; a rerun resumes it (default: $PARALLELCOMP_DOWNLOAD_TIMEOUT, else 30)", num(0.001, 86400))
    .option("--quiet", "no download progress on stderr");
}

/** `-m, --model <ref>` and the download options. */
export function addModelOptions(cmd: Command): Command {
  return addDownloadOptions(cmd.option("-m, --model <ref>", MODEL_HELP));
}

type ModelFlags = { model?: string; downloadTimeout?: number; quiet?: boolean };

/** The local file of `ref` (downloaded first if remote, with progress on stderr); undefined stays undefined. */
export async function modelFile(ref: string | undefined, o: ModelFlags = {}): Promise<string | undefined> {
  if (ref === undefined) return undefined;
  const reporter = downloadReporter(!!o.quiet);
  try {
    return await resolveModel(ref, {
      stallTimeoutMs: o.downloadTimeout === undefined ? undefined : o.downloadTimeout * 1000,
      onProgress: (p) => reporter.onProgress(p), log: (line) => reporter.log(line),
    });
  } finally {
    reporter.stop();
  }
}

/** Loads the model the options name (downloading it first if remote) on their backend; a fallback's reason goes to stderr in one line. */
export async function openEngine(o: BackendFlags & ModelFlags): Promise<Engine> {
  const engine = loadEngine(await modelFile(o.model, o), engineOptions(o));
  if (engine.backend.notice) process.stderr.write(`parallelcomp: ${engine.backend.notice}\n`);
  return engine;
}
