// The llama.cpp backend: the engine interface (engine/engine.ts) over llama.cpp's own engine, so
// every GGUF llama.cpp loads, on every device it supports, runs ParallelComp. Our N-API binding
// (native/llama/) opens one of node-llama-cpp's prebuilt libllama builds at run time: a GPU
// build (CUDA, Vulkan, Metal) when its package is installed and it finds a device, else the CPU
// build. One libllama per process (they share ggml's symbol names).
//
// How the method maps onto llama.cpp (measured against our engine: tests/llama-backend.test.ts):
//   a chunk                 a sequence id, positions 0..L-1, in one llama_batch with the others
//   scores                  logits of the query rows (llama_get_logits_ith)
//   drop a chunk            llama_memory_seq_rm(seq, -1, -1)
//   the question sees kept  llama_memory_seq_cp(chunk, question): the cells are shared. This needs
//                           a unified KV buffer (kv_unified): with one stream per sequence a copy
//                           across streams replaces the target's cells.
// Not expressible: per-(layer, head) eviction and per-layer attention (a cell is shared by every
// layer and head), so SnapKV, calibration, the attention analysis, StreamingLLM's key shift and
// NTK's RoPE base say to use the native backend (`layerAccess`).

import { existsSync, readdirSync } from "node:fs";
import { availableParallelism } from "node:os";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Batch } from "../engine/batch.js";
import type { BackendInfo, Engine, EngineConfig, SeqCache } from "../engine/engine.js";
import type { ForwardOptions } from "../model/forward.js";
import { GgufFile } from "../gguf/reader.js";
import { loadTokenizer, type Tokenizer } from "../tokenizer/index.js";
import { BackendError, UsageError } from "../errors.js";

/** The binding's functions (native/llama/src/llama_binding.c). */
interface LlamaBinding {
  open(libPath: string, binsDir: string): { devices: DeviceInfo[] };
  lastError(): string;
  loadModel(path: string, nGpuLayers: number, useMmap: number): object;
  modelInfo(m: object): { nCtxTrain: number; nLayer: number; nEmbd: number; nHead: number; nHeadKv: number; nVocab: number; desc: string; sizeBytes: number; arch: string; plainKv: boolean };
  newContext(m: object, nCtx: number, nBatch: number, nUbatch: number, nSeqMax: number, nThreads: number, kvF16: number, flashAttn: number, unified: number): object;
  seqMove(from: object, to: object, src: number, dst: number): number;
  decode(ctx: object, tokens: Int32Array, pos: Int32Array, seq: Int32Array, want: Uint8Array, n: number, out: Float32Array): void;
  seqRm(ctx: object, seq: number, p0: number, p1: number): boolean;
  seqCp(ctx: object, src: number, dst: number, p0: number, p1: number): void;
  seqPosMax(ctx: object, seq: number): number;
  seqPosMin(ctx: object, seq: number): number;
  clear(ctx: object): void;
  freeContext(ctx: object): void;
  freeModel(m: object): void;
}

export interface DeviceInfo {
  name: string;
  description: string;
  type: "cpu" | "gpu" | "igpu" | "accel" | "other";
  freeBytes: number;
  totalBytes: number;
}

/** A prebuilt llama.cpp: the npm package that ships it and the device it is for. */
interface Build {
  device: "cuda" | "vulkan" | "metal" | "cpu";
  pkg: string;
  bins: string; // folder inside the package
}

const BUILDS: Build[] = [
  { device: "cuda", pkg: "@node-llama-cpp/linux-x64-cuda", bins: "bins/linux-x64-cuda" },
  { device: "vulkan", pkg: "@node-llama-cpp/linux-x64-vulkan", bins: "bins/linux-x64-vulkan" },
  { device: "metal", pkg: "@node-llama-cpp/mac-arm64-metal", bins: "bins/mac-arm64-metal" },
  { device: "cpu", pkg: "@node-llama-cpp/linux-x64", bins: "bins/linux-x64" },
  { device: "cpu", pkg: "@node-llama-cpp/mac-x64", bins: "bins/mac-x64" },
];

/** At most this many sequences share llama.cpp's unified KV buffer (LLAMA_MAX_SEQ). */
export const LLAMA_MAX_SEQ = 256;

/** Where a build's libllama is, if its package is installed here. */
export function findBuild(b: Build): { lib: string; bins: string } | { missing: string } {
  const require = createRequire(import.meta.url);
  for (const nm of require.resolve.paths(b.pkg) ?? []) {
    const bins = join(nm, b.pkg, b.bins);
    if (!existsSync(bins)) continue;
    const lib = readdirSync(bins).find((f) => /^libllama(\.[\w.]+)?\.(so|dylib)$/.test(f) && !f.includes("common"));
    if (lib) return { lib: join(bins, lib), bins };
    return { missing: `${bins} holds no libllama` };
  }
  return { missing: `${b.pkg} is not installed` };
}

type Candidate = Build & ({ lib: string; bins: string } | { missing: string });

/**
 * The builds this platform could use, GPU builds first. PARALLELCOMP_LIBLLAMA names one libllama
 * to use instead (a llama.cpp build of your own, of the pinned version), and
 * PARALLELCOMP_LIBLLAMA_DEVICE the device it is built for (cpu, cuda, vulkan, metal; default cpu).
 */
export function candidateBuilds(): Candidate[] {
  const own = process.env.PARALLELCOMP_LIBLLAMA;
  if (own) {
    const device = (process.env.PARALLELCOMP_LIBLLAMA_DEVICE ?? "cpu") as Build["device"];
    if (!["cpu", "cuda", "vulkan", "metal"].includes(device)) throw new UsageError(`PARALLELCOMP_LIBLLAMA_DEVICE is "${device}", expected cpu, cuda, vulkan or metal`);
    const build: Build = { device, pkg: "$PARALLELCOMP_LIBLLAMA", bins: dirname(resolve(own)) };
    return [existsSync(own) ? { ...build, lib: resolve(own), bins: build.bins } : { ...build, missing: `${own} (PARALLELCOMP_LIBLLAMA) does not exist` }];
  }
  const plat = process.platform === "darwin" ? "mac-" : process.platform === "linux" ? "linux-" : "none";
  return BUILDS.filter((b) => b.pkg.includes(`/${plat}`)).map((b) => ({ ...b, ...findBuild(b) }));
}

// ---- the binding: found once, one libllama opened once per process ----

const ADDON_RELATIVE = join("native", "llama", "build", "Release", "parallelcomp_llama.node");

function loadBinding(): LlamaBinding {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = join(dir, ADDON_RELATIVE);
    if (existsSync(candidate)) return createRequire(import.meta.url)(candidate) as LlamaBinding;
    if (dirname(dir) === dir) break;
    dir = dirname(dir);
  }
  throw new BackendError(`the llama.cpp binding was not built (${ADDON_RELATIVE}): run npm run build:native`);
}

export interface OpenedLlama {
  binding: LlamaBinding;
  device: Build["device"];
  devices: DeviceInfo[];
  lib: string;
  /** Why no GPU is used, when a GPU build was installed but did not load or found no device. */
  noGpu?: string;
}

let opened: OpenedLlama | undefined;

/** A reason in one line: "libcudart.so.12: cannot open shared object file..." -> "libcudart.so.12 not found". */
function shortReason(message: string): string {
  const m = /([\w.+-]+\.so[\w.]*): cannot open shared object file/.exec(message);
  return m ? `${m[1]} not found` : message.split("\n")[0];
}

/**
 * Opens llama.cpp: the first GPU build that loads and finds its device, else the CPU build.
 * Once a libllama is open, later calls return it.
 */
export function openLlamaCpp(): OpenedLlama {
  if (opened) return opened;
  const binding = loadBinding();
  const failed: string[] = []; // builds that are there but did not load
  let missing: string | undefined; // the CPU build's absence
  for (const b of candidateBuilds()) {
    if ("missing" in b) {
      if (b.device === "cpu" || b.pkg.startsWith("$")) missing = b.missing;
      continue;
    }
    let devices: DeviceInfo[];
    try {
      devices = binding.open(b.lib, b.bins).devices;
    } catch (e) {
      failed.push(`${b.pkg.startsWith("$") ? b.lib : `the ${b.device} build`}: ${shortReason((e as Error).message)}`);
      continue;
    }
    const gpus = devices.filter((d) => d.type === "gpu" || d.type === "igpu");
    if (b.device !== "cpu" && gpus.length === 0) {
      // Its libllama is open now (one per process): it runs on its own CPU backend.
      failed.push(`the ${b.device} build of llama.cpp loaded but found no ${b.device} device`);
      opened = { binding, device: "cpu", devices, lib: b.lib, noGpu: failed.join("; ") };
      return opened;
    }
    opened = { binding, device: b.device, devices, lib: b.lib, noGpu: failed.length > 0 ? failed.join("; ") : undefined };
    return opened;
  }
  throw new BackendError(`llama.cpp could not be loaded: ${[...failed, missing].filter(Boolean).join("; ") || "no prebuilt build for this platform"}`);
}

// ---- the engine ----

export interface LlamaCppOptions {
  threads?: number;
  /** KV cache type: llama.cpp's default "f16", or "f32" (exact against the native engine). */
  kvType?: "f16" | "f32";
  /** Flash attention: llama.cpp's default "auto", or on / off. */
  flashAttention?: "auto" | "on" | "off";
  /** Layers offloaded to the GPU (default all; 0 keeps the weights on the CPU). */
  gpuLayers?: number;
  /** Tokens per llama_decode call (its n_batch); bounds the compute buffers. */
  stepTokens?: number;
}

export class LlamaCppEngine implements Engine {
  readonly backend: BackendInfo;
  readonly config: EngineConfig;
  readonly layers = undefined;
  private tok: Tokenizer | null = null;
  private readonly bytesPerRow: number;
  private readonly plainKv: boolean;

  private constructor(
    readonly file: string,
    readonly gguf: GgufFile,
    private readonly llama: OpenedLlama,
    private readonly model: object,
    private readonly o: Required<LlamaCppOptions>,
  ) {
    const info = llama.binding.modelInfo(model);
    this.backend = { name: "llama.cpp", device: llama.device, notice: llama.noGpu && `${llama.noGpu}: using the CPU` };
    const headDim = gguf.number(`${info.arch}.attention.key_length`, info.nEmbd / info.nHead);
    const valueDim = gguf.number(`${info.arch}.attention.value_length`, headDim);
    this.bytesPerRow = info.nLayer * info.nHeadKv * (headDim + valueDim) * (o.kvType === "f16" ? 2 : 4);
    this.config = { arch: info.arch, nCtxTrain: info.nCtxTrain, nVocab: info.nVocab, nLayers: info.nLayer, kvBytesPerToken: this.bytesPerRow };
    this.plainKv = info.plainKv;
  }

  static load(file: string, opts: LlamaCppOptions = {}): LlamaCppEngine {
    const threads = opts.threads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) throw new UsageError(`threads must be a positive integer, got ${threads}`);
    const kvType = opts.kvType ?? "f16";
    if (kvType !== "f16" && kvType !== "f32") throw new UsageError(`kvType must be f16 or f32, got ${String(kvType)}`);
    const flashAttention = opts.flashAttention ?? "auto";
    if (!["auto", "on", "off"].includes(flashAttention)) throw new UsageError(`flashAttention must be auto, on or off, got ${String(flashAttention)}`);
    const stepTokens = opts.stepTokens ?? 2048;
    const gguf = GgufFile.open(file); // our reader: the tokenizer, the chat template, the head sizes
    try {
      const llama = openLlamaCpp();
      let model: object;
      try {
        model = llama.binding.loadModel(file, opts.gpuLayers ?? -1, 1);
      } catch (e) {
        throw new BackendError((e as Error).message.trim());
      }
      return new LlamaCppEngine(file, gguf, llama, model, { threads, kvType, flashAttention, gpuLayers: opts.gpuLayers ?? -1, stepTokens });
    } catch (e) {
      gguf.close();
      throw e;
    }
  }

  get tokenizer(): Tokenizer {
    this.tok ??= loadTokenizer(this.gguf);
    return this.tok;
  }

  newCache(opts: { nSeqMax?: number; capacity?: number; seqRows?: number } = {}): LlamaCppCache {
    const nSeqMax = opts.nSeqMax ?? 1;
    if (nSeqMax > LLAMA_MAX_SEQ) throw new UsageError(`this run needs ${nSeqMax} sequences at once; llama.cpp holds at most ${LLAMA_MAX_SEQ} (lower keepChunks or maxParallelChunks, or use --backend native)`);
    const pad = (n: number) => Math.ceil(Math.max(n, 1) / 256) * 256; // llama.cpp pads to 256 cells
    const flash = { auto: -1, on: 1, off: 0 }[this.o.flashAttention];
    const context = (nCtx: number, unified: boolean) => {
      try {
        return this.llama.binding.newContext(this.model, nCtx, Math.min(nCtx, this.o.stepTokens), Math.min(nCtx, this.o.stepTokens, 512), nSeqMax, this.o.threads, this.o.kvType === "f16" ? 1 : 0, flash, unified ? 1 : 0);
      } catch (e) {
        throw new BackendError(`${(e as Error).message.trim()} (${nCtx} KV cells, ${nSeqMax} sequences)`);
      }
    };
    const shared = () => context(pad(opts.capacity ?? 256), true);
    // Sequences in streams of their own until one is shared (stage 0's chunks), when given their size.
    // (Sliding-window and recurrent caches write their state in more than one part: shared from the start.)
    const own = opts.seqRows && nSeqMax > 1 && this.plainKv ? () => context(pad(opts.seqRows!) * nSeqMax, false) : null;
    return new LlamaCppCache(this.llama.binding, own, own ? pad(opts.seqRows!) * nSeqMax : 0, shared, nSeqMax, this.bytesPerRow, pad(opts.capacity ?? 256));
  }

  forward(cache: SeqCache, batch: Batch, opts?: ForwardOptions): Float32Array {
    if (opts?.observer || opts?.ropeBase !== undefined) throw new UsageError("per-layer attention and a RoPE base per pass need the native backend: use --backend native");
    if (!(cache instanceof LlamaCppCache)) throw new Error("this cache was not made by the llama.cpp engine");
    return cache.decode(batch, this.config.nVocab, this.o.stepTokens);
  }

  close(): void {
    this.llama.binding.freeModel(this.model);
    this.gguf.close();
  }
}

/**
 * The KV cache on llama.cpp. Stage 0's chunks each get a stream of their own (a context with one
 * KV buffer per sequence: a chunk's attention runs over its own cells only); the first `seqShare`
 * moves to a context with one buffer for all sequences, where a cell can be shared, copying each
 * shared sequence's cells across (llama_state_seq_get/set_data). Without `seqRows` the cache is the
 * shared context from the start.
 */
export class LlamaCppCache implements SeqCache {
  private ctx: object; // where batches go now
  private streams: object | null; // stage 0's per-sequence context, until the first share
  private readonly moved = new Set<number>(); // sequences copied into the shared context
  private freed = false;

  constructor(
    private readonly b: LlamaBinding,
    ownStreams: (() => object) | null,
    private readonly streamCells: number,
    private readonly makeShared: () => object,
    readonly nSeqMax: number,
    private readonly bytesPerRow: number,
    readonly nCtx: number,
  ) {
    this.streams = ownStreams ? ownStreams() : null;
    this.ctx = this.streams ?? makeShared();
  }

  private get sharedMade(): boolean {
    return this.ctx !== this.streams;
  }

  private checkSeq(seq: number): void {
    if (!Number.isInteger(seq) || seq < 0 || seq >= this.nSeqMax) throw new Error(`sequence id ${seq} is outside [0, ${this.nSeqMax})`);
  }

  decode(batch: Batch, nVocab: number, step: number): Float32Array {
    if (this.freed) throw new Error("this cache was freed");
    if (this.streams && this.ctx !== this.streams) {
      // Stage 1 has begun: the shared sequences are across; the per-sequence buffers go.
      this.b.freeContext(this.streams);
      this.streams = null;
    }
    let nWanted = 0;
    for (let i = 0; i < batch.n; i++) {
      this.checkSeq(batch.seqId[i]);
      nWanted += batch.wantLogits[i];
    }
    const out = new Float32Array(nWanted * nVocab);
    let row = 0;
    for (let i = 0; i < batch.n; i += step) {
      const n = Math.min(step, batch.n - i);
      const want = batch.wantLogits.subarray(i, i + n);
      let w = 0;
      for (let j = 0; j < n; j++) w += want[j];
      try {
        this.b.decode(this.ctx, batch.tokens.subarray(i, i + n), batch.pos.subarray(i, i + n), batch.seqId.subarray(i, i + n), want, n, out.subarray(row * nVocab, (row + w) * nVocab));
      } catch (e) {
        throw new BackendError((e as Error).message.trim());
      }
      row += w;
    }
    return out;
  }

  seqRemove(seq: number, p0 = 0, p1 = Infinity): void {
    this.checkSeq(seq);
    this.b.seqRm(this.ctx, seq, p0, p1 === Infinity ? -1 : p1);
    if (this.streams && this.ctx !== this.streams) this.b.seqRm(this.streams, seq, p0, p1 === Infinity ? -1 : p1);
  }

  seqShare(src: number, dst: number): void {
    this.checkSeq(src);
    this.checkSeq(dst);
    if (this.streams) {
      if (this.ctx === this.streams) this.ctx = this.makeShared();
      if (!this.moved.has(src)) {
        try {
          this.b.seqMove(this.streams, this.ctx, src, src);
        } catch (e) {
          throw new BackendError((e as Error).message.trim());
        }
        this.moved.add(src);
      }
    }
    this.b.seqCp(this.ctx, src, dst, -1, -1);
  }

  seqPosMax(seq: number): number {
    this.checkSeq(seq);
    return this.b.seqPosMax(this.ctx, seq);
  }

  /** KV bytes of the contexts held now (both while stage 1's shared one is filled from stage 0's). */
  bytes(): number {
    return ((this.streams ? this.streamCells : 0) + (this.sharedMade ? this.nCtx : 0)) * this.bytesPerRow;
  }

  /**
   * KV bytes of the rows held, from each sequence's position range (the method's sequences have no
   * holes). Asked before any sharing (after stage 0, after a single-sequence run): a shared cell
   * would count once per sequence that sees it.
   */
  usedBytes(): number {
    let n = 0;
    for (let seq = 0; seq < this.nSeqMax; seq++) {
      const hi = this.b.seqPosMax(this.ctx, seq);
      if (hi >= 0) n += hi - this.b.seqPosMin(this.ctx, seq) + 1;
    }
    return n * this.bytesPerRow;
  }


  /** Frees the context now (its KV buffer lives outside the JS heap, so GC would not hurry). */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.b.freeContext(this.ctx);
    if (this.streams && this.streams !== this.ctx) this.b.freeContext(this.streams);
  }
}
