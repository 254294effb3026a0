// GGUF writer (v3). Tests and tools use it to make models: random-weight models of real
// shapes, our own trained model, tokenizers converted from tokenizer.json.
// Tensor data may be given as a function so that a multi-GB model is produced and written
// one tensor at a time.

import * as fs from "node:fs";
import { TYPE_TRAITS, typeName } from "./types.js";
import { GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufArray, GgufKv, GgufValueType, alignUp } from "./format.js";

export interface TensorToWrite {
  name: string;
  ne: number[]; // dimensions, fastest first
  type: number; // GgmlType
  /** The bytes, or a function giving them (called once, when written), whole or in pieces. */
  data: Uint8Array | (() => Uint8Array | Iterable<Uint8Array>);
}

// Constructors for metadata entries, so call sites read `kv.u32(30)`, `kv.strings(tokens)`.
export const kv = {
  u8: (value: number): GgufKv => ({ type: GgufValueType.UINT8, value }),
  u32: (value: number): GgufKv => ({ type: GgufValueType.UINT32, value }),
  i32: (value: number): GgufKv => ({ type: GgufValueType.INT32, value }),
  f32: (value: number): GgufKv => ({ type: GgufValueType.FLOAT32, value }),
  u64: (value: bigint): GgufKv => ({ type: GgufValueType.UINT64, value }),
  bool: (value: boolean): GgufKv => ({ type: GgufValueType.BOOL, value }),
  str: (value: string): GgufKv => ({ type: GgufValueType.STRING, value }),
  strings: (value: string[]): GgufKv => ({ type: GgufValueType.ARRAY, elemType: GgufValueType.STRING, value }),
  f32s: (value: ArrayLike<number>): GgufKv => ({ type: GgufValueType.ARRAY, elemType: GgufValueType.FLOAT32, value: Float32Array.from(value) }),
  i32s: (value: ArrayLike<number>): GgufKv => ({ type: GgufValueType.ARRAY, elemType: GgufValueType.INT32, value: Int32Array.from(value) }),
};

/** Appends to a file through a 1 MB staging buffer. */
class Sink {
  private buf = Buffer.alloc(1 << 20);
  private used = 0;
  written = 0;
  constructor(private fd: number) {}

  private room(n: number) {
    if (this.used + n > this.buf.length) this.flush();
  }
  flush() {
    if (this.used > 0) fs.writeSync(this.fd, this.buf, 0, this.used);
    this.used = 0;
  }
  u8(v: number) { this.room(1); this.buf.writeUInt8(v, this.used); this.used += 1; this.written += 1; }
  i8(v: number) { this.room(1); this.buf.writeInt8(v, this.used); this.used += 1; this.written += 1; }
  u16(v: number) { this.room(2); this.buf.writeUInt16LE(v, this.used); this.used += 2; this.written += 2; }
  i16(v: number) { this.room(2); this.buf.writeInt16LE(v, this.used); this.used += 2; this.written += 2; }
  u32(v: number) { this.room(4); this.buf.writeUInt32LE(v, this.used); this.used += 4; this.written += 4; }
  i32(v: number) { this.room(4); this.buf.writeInt32LE(v, this.used); this.used += 4; this.written += 4; }
  f32(v: number) { this.room(4); this.buf.writeFloatLE(v, this.used); this.used += 4; this.written += 4; }
  f64(v: number) { this.room(8); this.buf.writeDoubleLE(v, this.used); this.used += 8; this.written += 8; }
  u64(v: bigint | number) { this.room(8); this.buf.writeBigUInt64LE(BigInt(v), this.used); this.used += 8; this.written += 8; }
  i64(v: bigint) { this.room(8); this.buf.writeBigInt64LE(v, this.used); this.used += 8; this.written += 8; }
  bytes(b: Uint8Array) {
    this.flush();
    let off = 0;
    while (off < b.length) off += fs.writeSync(this.fd, b, off, b.length - off);
    this.written += b.length;
  }
  str(s: string) {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    if (b.length <= this.buf.length - this.used) {
      b.copy(this.buf, this.used);
      this.used += b.length;
      this.written += b.length;
    } else this.bytes(b);
  }
  pad(alignment: number) {
    const n = alignUp(this.written, alignment) - this.written;
    for (let i = 0; i < n; i++) this.u8(0);
  }
}

function writeScalar(s: Sink, type: GgufValueType, v: unknown, key: string) {
  switch (type) {
    case GgufValueType.UINT8: return s.u8(v as number);
    case GgufValueType.INT8: return s.i8(v as number);
    case GgufValueType.UINT16: return s.u16(v as number);
    case GgufValueType.INT16: return s.i16(v as number);
    case GgufValueType.UINT32: return s.u32(v as number);
    case GgufValueType.INT32: return s.i32(v as number);
    case GgufValueType.FLOAT32: return s.f32(v as number);
    case GgufValueType.FLOAT64: return s.f64(v as number);
    case GgufValueType.BOOL: return s.u8(v ? 1 : 0);
    case GgufValueType.UINT64: return s.u64(v as bigint);
    case GgufValueType.INT64: return s.i64(v as bigint);
    case GgufValueType.STRING: return s.str(v as string);
    default: throw new Error(`GGUF writer: metadata ${key} has unknown value type ${type}`);
  }
}

function writeArray(s: Sink, elemType: GgufValueType, arr: GgufArray, key: string) {
  s.u32(elemType);
  s.u64(arr.length);
  if (elemType === GgufValueType.ARRAY) {
    for (const inner of arr as GgufArray[]) writeArray(s, innerType(inner), inner, key);
    return;
  }
  for (let i = 0; i < arr.length; i++) writeScalar(s, elemType, (arr as ArrayLike<unknown>)[i], key);
}

/** Element type of a nested array, inferred from its JS representation. */
function innerType(a: GgufArray): GgufValueType {
  if (a instanceof Uint8Array) return GgufValueType.UINT8;
  if (a instanceof Int8Array) return GgufValueType.INT8;
  if (a instanceof Uint16Array) return GgufValueType.UINT16;
  if (a instanceof Int16Array) return GgufValueType.INT16;
  if (a instanceof Uint32Array) return GgufValueType.UINT32;
  if (a instanceof Int32Array) return GgufValueType.INT32;
  if (a instanceof Float32Array) return GgufValueType.FLOAT32;
  if (a instanceof Float64Array) return GgufValueType.FLOAT64;
  if (a instanceof BigUint64Array) return GgufValueType.UINT64;
  if (a instanceof BigInt64Array) return GgufValueType.INT64;
  const first = (a as unknown[])[0];
  if (typeof first === "boolean") return GgufValueType.BOOL;
  if (Array.isArray(first) || ArrayBuffer.isView(first)) return GgufValueType.ARRAY;
  return GgufValueType.STRING;
}

/** Bytes of a tensor of type `type` and dimensions `ne`; throws on a partial block. */
export function tensorBytes(name: string, type: number, ne: number[]): number {
  const t = TYPE_TRAITS.get(type);
  if (!t) throw new Error(`GGUF writer: tensor ${name} has unknown type ${type}`);
  if (ne[0] % t.blockSize !== 0) throw new Error(`GGUF writer: tensor ${name}: ${ne[0]} is not a multiple of ${t.name}'s block size`);
  return (ne.reduce((a, b) => a * b, 1) / t.blockSize) * t.typeSize;
}

export function writeGguf(
  file: string,
  metadata: Iterable<[string, GgufKv]>,
  tensors: TensorToWrite[],
  alignment = GGUF_DEFAULT_ALIGNMENT,
): void {
  const entries = [...metadata];
  const fd = fs.openSync(file, "w");
  try {
    const s = new Sink(fd);
    s.u32(GGUF_MAGIC);
    s.u32(3);
    s.u64(tensors.length);
    s.u64(entries.length);
    for (const [key, e] of entries) {
      s.str(key);
      s.u32(e.type);
      if (e.type === GgufValueType.ARRAY) writeArray(s, e.elemType ?? innerType(e.value as GgufArray), e.value as GgufArray, key);
      else writeScalar(s, e.type, e.value, key);
    }
    const sizes = tensors.map((t) => tensorBytes(t.name, t.type, t.ne));
    let offset = 0;
    tensors.forEach((t, i) => {
      s.str(t.name);
      s.u32(t.ne.length);
      for (const d of t.ne) s.u64(d);
      s.u32(t.type);
      s.u64(offset);
      offset = alignUp(offset + sizes[i], alignment);
    });
    s.pad(alignment);
    tensors.forEach((t, i) => {
      const data = typeof t.data === "function" ? t.data() : t.data;
      // A tensor over 2 GiB (a 256K-vocabulary embedding in F32) cannot be one typed array: it
      // comes as pieces.
      const pieces = data instanceof Uint8Array ? [data] : data;
      let n = 0;
      for (const piece of pieces) {
        n += piece.length;
        if (n > sizes[i]) break;
        s.bytes(piece);
      }
      if (n !== sizes[i]) {
        throw new Error(`GGUF writer: tensor ${t.name} (${typeName(t.type)} [${t.ne.join(", ")}]) has ${n > sizes[i] ? "more than " : ""}${n} bytes, expected ${sizes[i]}`);
      }
      s.pad(alignment);
    });
    s.flush();
  } finally {
    fs.closeSync(fd);
  }
}

