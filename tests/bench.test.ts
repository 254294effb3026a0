// The benchmark's own arithmetic (not its timings, which are noise here): the memory-budget
// row against a hand count of SnapKV's kept rows, OpenBLAS's sgemm against our reference
// matmul when the library is installed, and the command's argument errors.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { writeRandomModel } from "../src/model/random-model.js";
import { batchingRows } from "../src/bench/sections.js";
import { loadNativeKernels } from "../src/kernels/native.js";
import { referenceKernels } from "../src/kernels/reference.js";
import { GgmlType } from "../src/gguf/types.js";
import { tempDir } from "./support/tmp.js";

const BIN = fileURLToPath(new URL("../../bin/parallelcomp.js", import.meta.url));
const dir = tempDir();
const model = path.join(dir, "m.gguf");
const shape = { nLayers: 2, nVocab: 300, nCtxTrain: 256, dim: 128, nHeads: 4, nKvHeads: 2, nFf: 256 };
writeRandomModel(model, "smollm2-135m", { seed: 3, shape });

test("batching rows: chunks per KV budget follow SnapKV's kept rows (capacity 0.5 of BOS + 64 tokens)", () => {
  const rows = batchingRows({ threads: 1, chunks: 4, chunkTokens: 64, budgetMiB: 1, model });
  assert.equal(rows.length, 2);
  const [speed, memory] = rows;
  assert.ok(speed.ours > 0 && speed.reference! > 0, "both stage-0 rates measured");
  // Per chunk and (layer, KV head): 65 rows without compression, ceil(0.5 * 65) = 33 with it;
  // each row holds K and V of headDim 32 values, F16 (the default cache): 2 bytes each.
  const rowBytes = 2 * (shape.dim / shape.nHeads) * 2;
  const perChunk = (rowsPerHead: number) => shape.nLayers * shape.nKvHeads * rowsPerHead * rowBytes;
  assert.equal(memory.reference, Math.floor(2 ** 20 / perChunk(65)));
  assert.equal(memory.ours, Math.floor(2 ** 20 / perChunk(33)));
  assert.equal(memory.ratio, 65 / 33);
});

test("OpenBLAS sgemm (when installed) equals our reference F32 matmul", (t) => {
  const native = loadNativeKernels();
  if ("error" in native) return t.skip(`native kernels: ${native.error}`);
  const T = 5, nOut = 7, nIn = 64;
  const x = Float32Array.from({ length: T * nIn }, (_, i) => Math.sin(i));
  const w = Float32Array.from({ length: nOut * nIn }, (_, i) => Math.cos(i * 0.7));
  const got = new Float32Array(T * nOut);
  try {
    native.kernels.blasSgemm("libopenblas.so.0", x, w, got, T, nOut, nIn, 1);
  } catch (e) {
    assert.match((e as Error).message, /cannot load libopenblas\.so\.0/);
    return t.skip("libopenblas.so.0 is not installed");
  }
  const want = new Float32Array(T * nOut);
  referenceKernels.matmul({ w: new Uint8Array(w.buffer), type: GgmlType.F32, nOut, nIn, x, T, y: want });
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * 8, `y[${i}]: ${got[i]} vs ${want[i]}`);
});

test("bench: bad arguments get one line naming them", () => {
  const run = (args: string[]) => spawnSync(process.execPath, [BIN, "bench", ...args], { encoding: "utf8" });
  for (const [args, pattern] of [
    [["--sections", "engine,gpu"], /unknown section "gpu"/],
    [["--sections", "batching", "--batch", "8"], /--batch wants chunks,tokens, got 8/],
    [["--sections", "long", "--rss-tokens", "131072,16384"], /--rss-tokens wants two lengths, small first/],
  ] as Array<[string[], RegExp]>) {
    const r = run(args);
    assert.notEqual(r.status, 0, args.join(" "));
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});
