// Turns tools/train/export.py's output (<name>.json + <name>.bin, f32) into a GGUF file with the
// project's writer: llama architecture, byte-level "gpt2" vocabulary (id = byte, then BOS, EOS).
//   node dist/tools/export-gguf.js /tmp/bytellama models/parallelcomp-retrieval.gguf

import * as fs from "node:fs";
import { GgmlType } from "../src/gguf/types.js";
import { kv, writeGguf, type TensorToWrite } from "../src/gguf/writer.js";
import type { GgufKv } from "../src/gguf/format.js";
import { placeholderVocab } from "../src/model/random-model.js";

interface ExportMeta {
  name: string;
  context_length: number;
  embedding_length: number;
  block_count: number;
  feed_forward_length: number;
  head_count: number;
  head_count_kv: number;
  rope_dimension_count: number;
  rope_freq_base: number;
  rms_eps: number;
  vocab_size: number;
  bos_token_id: number;
  eos_token_id: number;
  training?: unknown;
  tensors: Array<{ name: string; shape: number[]; offset: number; nbytes: number }>;
}

export function exportGguf(prefix: string, out: string, description = ""): void {
  const meta = JSON.parse(fs.readFileSync(`${prefix}.json`, "utf8")) as ExportMeta;
  const bin = fs.readFileSync(`${prefix}.bin`);
  if (meta.vocab_size !== 258 || meta.bos_token_id !== 256 || meta.eos_token_id !== 257) {
    throw new Error(`${prefix}.json: expected the byte vocabulary (258 ids, BOS 256, EOS 257), got ${meta.vocab_size} / ${meta.bos_token_id} / ${meta.eos_token_id}`);
  }
  const tensors: TensorToWrite[] = meta.tensors.map((t) => {
    if (t.offset + t.nbytes > bin.length) throw new Error(`${prefix}.bin: tensor ${t.name} ends past the file`);
    const data = new Uint8Array(t.nbytes);
    data.set(bin.subarray(t.offset, t.offset + t.nbytes));
    return { name: t.name, ne: [...t.shape].reverse(), type: GgmlType.F32, data };
  });
  const a = "llama";
  const metadata: Array<[string, GgufKv]> = [
    ["general.architecture", kv.str(a)],
    ["general.name", kv.str(meta.name)],
    ["general.description", kv.str(description || "parallelcomp's own byte-level retrieval model (tools/train)")],
    ["general.license", kv.str("MIT")],
    [`${a}.context_length`, kv.u32(meta.context_length)],
    [`${a}.embedding_length`, kv.u32(meta.embedding_length)],
    [`${a}.block_count`, kv.u32(meta.block_count)],
    [`${a}.feed_forward_length`, kv.u32(meta.feed_forward_length)],
    [`${a}.attention.head_count`, kv.u32(meta.head_count)],
    [`${a}.attention.head_count_kv`, kv.u32(meta.head_count_kv)],
    [`${a}.attention.layer_norm_rms_epsilon`, kv.f32(meta.rms_eps)],
    [`${a}.rope.freq_base`, kv.f32(meta.rope_freq_base)],
    [`${a}.rope.dimension_count`, kv.u32(meta.rope_dimension_count)],
    [`${a}.vocab_size`, kv.u32(meta.vocab_size)],
    ...placeholderVocab(meta.vocab_size).map(([k, v]): [string, GgufKv] => (k === "tokenizer.ggml.add_bos_token" ? [k, kv.bool(true)] : [k, v])),
  ];
  writeGguf(out, metadata, tensors);
}

if (process.argv[1]?.endsWith("export-gguf.js")) {
  const [prefix, out] = process.argv.slice(2);
  if (!prefix || !out) {
    console.error("usage: node dist/tools/export-gguf.js <export prefix> <out.gguf>");
    process.exit(2);
  }
  exportGguf(prefix, out);
  console.log(`wrote ${out}`);
}
