// GGUF reading and writing: every metadata type round-trips, gguf-py (llama.cpp's own Python
// reader) reads what we write, we read what gguf-py wrote, and each kind of bad file gets one
// clear error naming the file and the field.

import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { GgufFile } from "../src/gguf/reader.js";
import { kv, writeGguf, type TensorToWrite } from "../src/gguf/writer.js";
import { GgufValueType, type GgufKv } from "../src/gguf/format.js";
import { GgmlType } from "../src/gguf/types.js";
import { writeRandomModel } from "../src/model/random-model.js";
import { loadModel } from "../src/model/model.js";
import { llamaCppSource } from "./support/llamacpp.js";
import { PYTHON, tempDir } from "./support/tmp.js";

const dir = tempDir();

const metadata: Array<[string, GgufKv]> = [
  ["general.architecture", kv.str("llama")],
  ["t.u8", { type: GgufValueType.UINT8, value: 200 }],
  ["t.i8", { type: GgufValueType.INT8, value: -100 }],
  ["t.u16", { type: GgufValueType.UINT16, value: 60000 }],
  ["t.i16", { type: GgufValueType.INT16, value: -30000 }],
  ["t.u32", kv.u32(4000000000)],
  ["t.i32", kv.i32(-2000000000)],
  ["t.f32", kv.f32(1.5)],
  ["t.f64", { type: GgufValueType.FLOAT64, value: Math.PI }],
  ["t.bool", kv.bool(true)],
  ["t.str", kv.str("héllo ✓ 世界")],
  ["t.u64", kv.u64(2n ** 60n)],
  ["t.i64", { type: GgufValueType.INT64, value: -(2n ** 62n) }],
  ["t.strs", kv.strings(["a", "", "日本"])],
  ["t.f32s", kv.f32s([0.5, -2, 3])],
  ["t.i32s", kv.i32s([1, -2, 3])],
  ["t.bools", { type: GgufValueType.ARRAY, elemType: GgufValueType.BOOL, value: [true, false] }],
  ["t.nested", { type: GgufValueType.ARRAY, elemType: GgufValueType.ARRAY, value: [Int32Array.from([1, 2]), ["x", "y", "z"]] }],
];
const tensorA = new Float32Array([1, 2, 3, 4, 5, 6]);
const tensors: TensorToWrite[] = [
  { name: "a", ne: [3, 2], type: GgmlType.F32, data: new Uint8Array(tensorA.buffer) },
  { name: "b", ne: [32], type: GgmlType.Q8_0, data: new Uint8Array(34).fill(1) },
];

test("every metadata value type, nested arrays and tensor data round-trip through writer and reader", () => {
  const file = path.join(dir, "roundtrip.gguf");
  writeGguf(file, metadata, tensors);
  const g = GgufFile.open(file);
  for (const [key, e] of metadata) {
    const got = g.kv.get(key)!;
    assert.equal(got.type, e.type, key);
    const norm = (v: unknown): unknown => (ArrayBuffer.isView(v) ? Array.from(v as unknown as ArrayLike<unknown>) : Array.isArray(v) ? v.map(norm) : v);
    assert.deepEqual(norm(got.value), norm(e.type === GgufValueType.FLOAT32 && typeof e.value === "number" ? Math.fround(e.value) : e.value), key);
  }
  assert.deepEqual(g.tensor("a").ne, [3, 2]);
  assert.deepEqual([...new Float32Array(g.tensorData("a").buffer)], [...tensorA]);
  assert.equal(g.tensor("b").offset % 32, 0);
  assert.deepEqual([...g.tensorData("b")], new Array(34).fill(1));
  g.close();
});

function python(script: string, ...args: string[]): string {
  const r = spawnSync(PYTHON, ["-c", script, ...args], { env: { ...process.env, PYTHONPATH: path.join(llamaCppSource(), "gguf-py") }, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test("llama.cpp's gguf-py reads our file: same keys, values, tensor shapes, types and bytes", () => {
  const file = path.join(dir, "for-gguf-py.gguf");
  writeGguf(file, metadata, tensors);
  const out = JSON.parse(python(`
import sys, json
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
fields = {}
for name, f in r.fields.items():
    if name.startswith("GGUF."): continue
    v = f.contents()
    fields[name] = v if not isinstance(v, float) else round(v, 6)
# contents() flattens nested arrays, so check their declared types instead
fields["t.nested"] = [int(t) for t in r.fields["t.nested"].types]
ts = [{"name": t.name, "shape": [int(x) for x in t.shape], "type": int(t.tensor_type), "bytes": t.data.tobytes().hex()} for t in r.tensors]
print(json.dumps({"fields": fields, "tensors": ts}, default=str))
`, file));
  assert.equal(out.fields["t.str"], "héllo ✓ 世界");
  assert.equal(out.fields["t.u32"], 4000000000);
  assert.equal(out.fields["t.i64"], -(2 ** 62));
  assert.deepEqual(out.fields["t.strs"], ["a", "", "日本"]);
  assert.deepEqual(out.fields["t.i32s"], [1, -2, 3]);
  assert.deepEqual(out.fields["t.nested"], [GgufValueType.ARRAY, GgufValueType.ARRAY, GgufValueType.INT32]); // gguf-py records the first inner array's element type
  assert.equal(out.fields["t.bool"], true);
  assert.deepEqual(out.tensors.map((t: { name: string; shape: number[]; type: number }) => [t.name, t.shape, t.type]), [["a", [3, 2], 0], ["b", [32], 8]]);
  assert.equal(out.tensors[0].bytes, Buffer.from(tensorA.buffer).toString("hex"));
});

test("we read the vocabulary files llama.cpp ships (written by gguf-py) exactly as gguf-py does", () => {
  const vocab = path.join(llamaCppSource(), "models", "ggml-vocab-llama-bpe.gguf");
  const g = GgufFile.open(vocab);
  const expect = JSON.parse(python(`
import sys, json
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
t = r.fields["tokenizer.ggml.tokens"].contents()
m = r.fields["tokenizer.ggml.merges"].contents()
print(json.dumps({"n": len(t), "first": t[:5], "last": t[-3:], "merges": len(m), "merge100": m[100], "arch": r.fields["general.architecture"].contents()}))
`, vocab));
  const tokens = g.value("tokenizer.ggml.tokens") as string[];
  assert.equal(tokens.length, expect.n);
  assert.deepEqual(tokens.slice(0, 5), expect.first);
  assert.deepEqual(tokens.slice(-3), expect.last);
  assert.equal((g.value("tokenizer.ggml.merges") as string[])[100], expect.merge100);
  assert.equal(g.string("general.architecture"), expect.arch);
  g.close();
});

// ---- bad input: one clear error each, naming the file and what is wrong ----

function bytesOf(file: string) { return fs.readFileSync(file); }

const good = path.join(dir, "good.gguf");
writeRandomModel(good, "smollm2-135m", { seed: 1, shape: { nLayers: 1, nVocab: 300, dim: 64, nHeads: 2, nKvHeads: 1, nFf: 128 } });

function expectError(name: string, content: Buffer, pattern: RegExp, load = false) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, content);
  assert.throws(() => (load ? loadModel(file, { kernels: "typescript" }).close() : GgufFile.open(file).close()), (e: Error) => {
    assert.match(e.message, new RegExp(`^${name.replace(".", "\\.")}: `));
    assert.match(e.message, pattern);
    return true;
  });
}

test("the good file loads (the bad ones below are corruptions of it)", () => {
  loadModel(good, { kernels: "typescript" }).close();
});

test("wrong magic: not a GGUF file", () => {
  const b = Buffer.from(bytesOf(good));
  b.write("GGML", 0);
  expectError("magic.gguf", b, /not a GGUF file/);
  expectError("empty.gguf", Buffer.alloc(0), /not a GGUF file/);
});

test("unsupported version", () => {
  const b = Buffer.from(bytesOf(good));
  b.writeUInt32LE(1, 4);
  expectError("version.gguf", b, /version 1 is not supported/);
});

test("truncated header names what it was reading", () => {
  expectError("truncated-header.gguf", bytesOf(good).subarray(0, 100), /truncated header: .*general\.|truncated header/);
  expectError("truncated-counts.gguf", bytesOf(good).subarray(0, 12), /truncated header: tensor count needs 8 bytes/);
});

test("truncated tensor data: a tensor's data beyond the end of the file", () => {
  const b = bytesOf(good);
  expectError("truncated-data.gguf", b.subarray(0, b.length - 100), /tensor output_norm\.weight: data ends at byte \d+, beyond the end of the file/);
});

/** Rewrites the good file with one change to its metadata or tensors. */
function variant(name: string, edit: (m: Array<[string, GgufKv]>, t: TensorToWrite[]) => void): Buffer {
  const g = GgufFile.open(good);
  const m = [...g.kv.entries()];
  const t: TensorToWrite[] = [...g.tensors.values()].map((i) => ({ name: i.name, ne: i.ne, type: i.type, data: g.tensorData(i.name) }));
  edit(m, t);
  const file = path.join(dir, `src-${name}`);
  writeGguf(file, m, t);
  g.close();
  return bytesOf(file);
}

test("tensor data offset beyond the end of the file", () => {
  const b = Buffer.from(bytesOf(good));
  // The last tensor info's offset field sits just before the alignment padding; find it via the reader.
  const g = GgufFile.open(good);
  const last = [...g.tensors.values()].at(-1)!;
  const at = b.indexOf(Buffer.from(last.name)) + last.name.length + 4 + 8 * last.ne.length + 4;
  g.close();
  b.writeBigUInt64LE(BigInt(b.length) * 2n & ~31n, at);
  expectError("offset.gguf", b, /tensor output_norm\.weight: data ends at byte \d+, beyond the end of the file/);
});

test("unknown tensor type", () => {
  const b = Buffer.from(bytesOf(good));
  const g = GgufFile.open(good);
  const first = [...g.tensors.values()][0];
  const at = b.indexOf(Buffer.from(first.name)) + first.name.length + 4 + 8 * first.ne.length;
  g.close();
  b.writeUInt32LE(99, at);
  expectError("type.gguf", b, /tensor token_embd\.weight has unknown type 99/);
});

test("a known but unsupported weight type is named", () => {
  const b = variant("q2k.gguf", (_m, t) => {
    const q = t.find((x) => x.name === "blk.0.ffn_up.weight")!;
    q.type = GgmlType.Q2_K;
    q.ne = [256, 128];
    q.data = new Uint8Array(84 * 128);
  });
  expectError("q2k.gguf", b, /blk\.0\.ffn_up\.weight has shape \[256, 128\], expected \[64, 128\]/, true);
});

test("missing required key", () => {
  const b = variant("nokey.gguf", (m) => m.splice(m.findIndex(([k]) => k === "llama.block_count"), 1));
  expectError("nokey.gguf", b, /missing required key llama\.block_count/, true);
});

test("missing tensor and shape mismatch", () => {
  expectError("notensor.gguf", variant("notensor.gguf", (_m, t) => t.splice(t.findIndex((x) => x.name === "blk.0.attn_k.weight"), 1)), /missing tensor blk\.0\.attn_k\.weight/, true);
  expectError("shape.gguf", variant("shape.gguf", (_m, t) => {
    const x = t.find((x) => x.name === "blk.0.attn_norm.weight")!;
    x.ne = [32];
    x.data = (x.data as Uint8Array).subarray(0, 128);
  }), /tensor blk\.0\.attn_norm\.weight has shape \[32\], expected \[64\] \(shape mismatch\)/, true);
});

test("unsupported architecture and a non-existent file", () => {
  expectError("arch.gguf", variant("arch.gguf", (m) => { m[m.findIndex(([k]) => k === "general.architecture")][1] = kv.str("mamba"); }), /general\.architecture is "mamba", supported: llama, qwen2/, true);
  assert.throws(() => GgufFile.open(path.join(dir, "nope.gguf")), /nope\.gguf: cannot open/);
});

test("mapped tensors: windows on 64 KiB boundaries, no longer than asked, bytes equal to reading; a tensor too big for a window is read", () => {
  const dir = tempDir();
  const file = path.join(dir, "map.gguf");
  writeRandomModel(file, "smollm2-135m", { type: GgmlType.Q8_0, shape: { nLayers: 2, nVocab: 2000 } });
  const read = GgufFile.open(file);
  const mapped = GgufFile.open(file);
  const window = 1 << 20;
  const calls: Array<[number, number]> = [];
  const whole = new Uint8Array(fs.readFileSync(file));
  mapped.useMapping((offset, length) => {
    calls.push([offset, length]);
    return whole.slice(offset, offset + length).buffer; // stands in for the native mapFile
  }, window);
  assert.ok(calls.length > 1, "several windows");
  for (const [offset, length] of calls) assert.ok(offset % (1 << 16) === 0 && length <= window, `window [${offset}, +${length})`);
  let viaMap = 0;
  for (const [name, t] of read.tensors) {
    const a = read.tensorData(name), b = mapped.tensorData(name);
    assert.deepEqual(b, a, name);
    if (t.nBytes + (1 << 16) <= window) {
      assert.equal(b.buffer.byteLength <= window, true, `${name} is a view of a window`);
      viaMap++;
    }
  }
  const big = [...read.tensors].find(([, t]) => t.nBytes > window);
  assert.ok(big, "the embedding is larger than a window");
  assert.equal(mapped.tensorData(big[0]).buffer.byteLength, big[1].nBytes, "read into its own buffer");
  assert.ok(viaMap > 10);
  read.close();
  mapped.close();
});

test("a model loaded with its file mapped (the default) gives the logits of one loaded by reading, and its weights are views of the mapping", { skip: process.env.PARALLELCOMP_NO_NATIVE === "1" && "no native addon" }, () => {
  const dir = tempDir();
  const file = path.join(dir, "mapped.gguf");
  writeRandomModel(file, "smollm2-135m", { type: GgmlType.Q4_K, shape: { nLayers: 2, nVocab: 3000 } });
  const a = loadModel(file, { kernels: "native" });
  const b = loadModel(file, { kernels: "native", mmap: false });
  const prompt = { tokens: Int32Array.from([5, 9, 100, 7]), pos: Int32Array.from([0, 1, 2, 3]), seqId: new Int32Array(4), wantLogits: Uint8Array.from([0, 0, 0, 1]), n: 4 };
  assert.deepEqual(a.forward(a.newCache(), prompt), b.forward(b.newCache(), prompt));
  const wq = a.weights.layers[0].wq.data;
  assert.ok(wq.byteOffset > 0 && wq.buffer.byteLength > wq.byteLength, "wq is a view into a mapped window");
  assert.equal(b.weights.layers[0].wq.data.buffer.byteLength, b.weights.layers[0].wq.data.byteLength, "read: its own buffer");
  a.close();
  b.close();
});

test("writeRandomModel's Q4_K_M mix is llama-quantize's: Q6_K for the tied embedding and for attn_v / ffn_down in the layers use_more_bits picks, Q4_K elsewhere", () => {
  const file = path.join(tempDir(), "q4km.gguf");
  writeRandomModel(file, "llama3.2-1b", { mix: "Q4_K_M", shape: { nLayers: 16, dim: 256, nHeads: 4, nKvHeads: 2, nFf: 512, nVocab: 1000 } });
  const g = GgufFile.open(file);
  // 16 layers: l < 2, l >= 14, or (l - 2) % 3 == 2 (llama-quant.cpp's use_more_bits)
  const more = [0, 1, 4, 7, 10, 13, 14, 15];
  for (let l = 0; l < 16; l++) {
    const want = more.includes(l) ? GgmlType.Q6_K : GgmlType.Q4_K;
    assert.equal(g.tensor(`blk.${l}.attn_v.weight`).type, want, `layer ${l} attn_v`);
    assert.equal(g.tensor(`blk.${l}.ffn_down.weight`).type, more.includes(l) ? GgmlType.Q6_K : GgmlType.Q4_K, `layer ${l} ffn_down`);
    assert.equal(g.tensor(`blk.${l}.attn_q.weight`).type, GgmlType.Q4_K);
  }
  assert.equal(g.tensor("token_embd.weight").type, GgmlType.Q6_K, "tied: the embedding is the output");
  g.close();
});
