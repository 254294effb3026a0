// GGUF reader: parses the header (metadata + tensor infos) and reads tensor data lazily, one
// tensor at a time, straight from the file into an off-heap Buffer: a 5 GB model is never
// copied into the JS heap and only the tensors asked for are read.

import * as fs from "node:fs";
import * as path from "node:path";
import { TYPE_TRAITS, typeName } from "./types.js";
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  GgufArray,
  GgufKv,
  GgufTensorInfo,
  GgufValue,
  GgufValueType,
  SCALAR_SIZE,
  alignUp,
} from "./format.js";

const GGML_MAX_DIMS = 4;

export class GgufError extends Error {
  constructor(file: string, message: string) {
    super(`${path.basename(file)}: ${message}`);
    this.name = "GgufError";
  }
}

/** Reads the file front to back through a window that grows as the header needs it. */
class HeaderCursor {
  private buf = Buffer.alloc(0);
  private bufStart = 0; // file offset of buf[0]
  pos = 0; // file offset of the next byte
  private decoder = new TextDecoder("utf-8", { fatal: true });

  constructor(private fd: number, readonly fileSize: number, private file: string) {}

  private need(n: number, what: string): number {
    if (this.pos + n > this.fileSize) {
      throw new GgufError(this.file, `truncated header: ${what} needs ${n} bytes at offset ${this.pos}, file has ${this.fileSize}`);
    }
    const end = this.pos + n;
    if (end > this.bufStart + this.buf.length) {
      const size = Math.min(this.fileSize - this.pos, Math.max(n, 1 << 20, this.buf.length * 2));
      const next = Buffer.allocUnsafe(size);
      fs.readSync(this.fd, next, 0, size, this.pos);
      this.buf = next;
      this.bufStart = this.pos;
    }
    const at = this.pos - this.bufStart;
    this.pos = end;
    return at;
  }

  // need() may swap this.buf, so it runs before this.buf is read.
  u8(what: string) { const at = this.need(1, what); return this.buf.readUInt8(at); }
  i8(what: string) { const at = this.need(1, what); return this.buf.readInt8(at); }
  u16(what: string) { const at = this.need(2, what); return this.buf.readUInt16LE(at); }
  i16(what: string) { const at = this.need(2, what); return this.buf.readInt16LE(at); }
  u32(what: string) { const at = this.need(4, what); return this.buf.readUInt32LE(at); }
  i32(what: string) { const at = this.need(4, what); return this.buf.readInt32LE(at); }
  f32(what: string) { const at = this.need(4, what); return this.buf.readFloatLE(at); }
  f64(what: string) { const at = this.need(8, what); return this.buf.readDoubleLE(at); }
  u64big(what: string) { const at = this.need(8, what); return this.buf.readBigUInt64LE(at); }
  i64big(what: string) { const at = this.need(8, what); return this.buf.readBigInt64LE(at); }

  /** A u64 that must fit a JS number (counts, lengths, offsets). */
  u64(what: string): number {
    const v = this.u64big(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError(this.file, `${what} is ${v}, too large`);
    return Number(v);
  }

  str(what: string): string {
    const n = this.u64(`${what} length`);
    const at = this.need(n, what);
    try {
      return this.decoder.decode(this.buf.subarray(at, at + n));
    } catch {
      throw new GgufError(this.file, `${what} is not valid UTF-8`);
    }
  }

  /** Copies `count` scalars of `size` bytes into a fresh typed array (the buffer may be unaligned). */
  bytes(n: number, what: string): Uint8Array {
    const at = this.need(n, what);
    return Uint8Array.prototype.slice.call(this.buf, at, at + n);
  }
}

/** Mapped windows start on a multiple of this (the largest page size Linux uses, 64 KiB on some
 *  ARM systems) and hold at most 2 GiB (Node caps one ArrayBuffer at 4 GiB). */
export const MAP_ALIGN = 1 << 16;
const MAP_WINDOW = 2 ** 31;

export class GgufFile {
  readonly version: number;
  readonly kv = new Map<string, GgufKv>();
  readonly tensors = new Map<string, GgufTensorInfo>();
  readonly alignment: number;
  readonly dataOffset: number;
  readonly fileSize: number;
  private fd: number | null;

  private constructor(readonly file: string, fd: number) {
    this.fd = fd;
    this.fileSize = fs.fstatSync(fd).size;
    const c = new HeaderCursor(fd, this.fileSize, file);
    const magic = this.fileSize >= 4 ? c.u32("magic") : -1;
    if (magic !== GGUF_MAGIC) throw new GgufError(file, `not a GGUF file (magic bytes are not "GGUF")`);
    this.version = c.u32("version");
    if (this.version !== 2 && this.version !== 3) {
      throw new GgufError(file, `GGUF version ${this.version} is not supported (expected 2 or 3)`);
    }
    const nTensors = c.u64("tensor count");
    const nKv = c.u64("metadata count");
    // Every entry takes at least 8 bytes, so larger counts cannot be honest.
    if (nTensors > this.fileSize / 8 || nKv > this.fileSize / 8) {
      throw new GgufError(file, `truncated header: ${nTensors} tensors and ${nKv} metadata entries cannot fit in ${this.fileSize} bytes`);
    }
    for (let i = 0; i < nKv; i++) {
      const key = c.str(`metadata key #${i}`);
      const type = c.u32(`type of ${key}`);
      this.kv.set(key, this.readValue(c, type, key));
    }
    const alignKv = this.kv.get("general.alignment");
    this.alignment = alignKv ? Number(alignKv.value) : GGUF_DEFAULT_ALIGNMENT;
    if (!Number.isInteger(this.alignment) || this.alignment <= 0 || (this.alignment & (this.alignment - 1)) !== 0) {
      throw new GgufError(file, `general.alignment is ${this.alignment}, expected a power of two`);
    }
    const infos: GgufTensorInfo[] = [];
    for (let i = 0; i < nTensors; i++) {
      const name = c.str(`name of tensor #${i}`);
      const nDims = c.u32(`tensor ${name}: dimension count`);
      if (nDims < 1 || nDims > GGML_MAX_DIMS) throw new GgufError(file, `tensor ${name} has ${nDims} dimensions, expected 1 to ${GGML_MAX_DIMS}`);
      const ne: number[] = [];
      for (let d = 0; d < nDims; d++) ne.push(c.u64(`tensor ${name}: dimension ${d}`));
      const type = c.u32(`tensor ${name}: type`);
      const offset = c.u64(`tensor ${name}: offset`);
      const traits = TYPE_TRAITS.get(type);
      if (!traits) throw new GgufError(file, `tensor ${name} has unknown type ${type}`);
      if (ne[0] % traits.blockSize !== 0) {
        throw new GgufError(file, `tensor ${name}: first dimension ${ne[0]} is not a multiple of ${traits.name}'s block size ${traits.blockSize}`);
      }
      const nElements = ne.reduce((a, b) => a * b, 1);
      const nBytes = (nElements / traits.blockSize) * traits.typeSize;
      if (this.tensors.has(name)) throw new GgufError(file, `tensor ${name} appears twice`);
      const info = { name, ne, type, offset, nBytes };
      this.tensors.set(name, info);
      infos.push(info);
    }
    this.dataOffset = alignUp(c.pos, this.alignment);
    for (const t of infos) {
      if (t.offset % this.alignment !== 0) {
        throw new GgufError(file, `tensor ${t.name}: data offset ${t.offset} is not a multiple of the alignment ${this.alignment}`);
      }
      const end = this.dataOffset + t.offset + t.nBytes;
      if (end > this.fileSize) {
        throw new GgufError(file, `tensor ${t.name}: data ends at byte ${end}, beyond the end of the file (${this.fileSize} bytes): truncated tensor data`);
      }
    }
  }

  static open(file: string): GgufFile {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch (e) {
      throw new GgufError(file, `cannot open: ${(e as Error).message}`);
    }
    try {
      return new GgufFile(file, fd);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  private readValue(c: HeaderCursor, type: number, key: string): GgufKv {
    switch (type) {
      case GgufValueType.UINT8: return { type, value: c.u8(key) };
      case GgufValueType.INT8: return { type, value: c.i8(key) };
      case GgufValueType.UINT16: return { type, value: c.u16(key) };
      case GgufValueType.INT16: return { type, value: c.i16(key) };
      case GgufValueType.UINT32: return { type, value: c.u32(key) };
      case GgufValueType.INT32: return { type, value: c.i32(key) };
      case GgufValueType.FLOAT32: return { type, value: c.f32(key) };
      case GgufValueType.FLOAT64: return { type, value: c.f64(key) };
      case GgufValueType.BOOL: return { type, value: c.u8(key) !== 0 };
      case GgufValueType.STRING: return { type, value: c.str(key) };
      case GgufValueType.UINT64: return { type, value: c.u64big(key) };
      case GgufValueType.INT64: return { type, value: c.i64big(key) };
      case GgufValueType.ARRAY: {
        const elemType = c.u32(`${key}: array element type`);
        const count = c.u64(`${key}: array length`);
        return { type, elemType, value: this.readArray(c, elemType, count, key) };
      }
      default:
        throw new GgufError(this.file, `metadata ${key} has unknown value type ${type}`);
    }
  }

  private readArray(c: HeaderCursor, elemType: number, count: number, key: string): GgufArray {
    const size = SCALAR_SIZE[elemType as GgufValueType];
    if (size !== undefined) {
      if (count * size > this.fileSize - c.pos) throw new GgufError(this.file, `truncated header: ${key} declares ${count} elements`);
      const b = c.bytes(count * size, key).buffer;
      switch (elemType) {
        case GgufValueType.UINT8: return new Uint8Array(b);
        case GgufValueType.INT8: return new Int8Array(b);
        case GgufValueType.UINT16: return new Uint16Array(b);
        case GgufValueType.INT16: return new Int16Array(b);
        case GgufValueType.UINT32: return new Uint32Array(b);
        case GgufValueType.INT32: return new Int32Array(b);
        case GgufValueType.FLOAT32: return new Float32Array(b);
        case GgufValueType.FLOAT64: return new Float64Array(b);
        case GgufValueType.UINT64: return new BigUint64Array(b);
        case GgufValueType.INT64: return new BigInt64Array(b);
        case GgufValueType.BOOL: return Array.from(new Uint8Array(b), (v) => v !== 0);
      }
    }
    if (count > (this.fileSize - c.pos) / 8) throw new GgufError(this.file, `truncated header: ${key} declares ${count} elements`);
    if (elemType === GgufValueType.STRING) {
      const out: string[] = new Array(count);
      for (let i = 0; i < count; i++) out[i] = c.str(`${key}[${i}]`);
      return out;
    }
    if (elemType === GgufValueType.ARRAY) {
      const out: GgufArray[] = new Array(count);
      for (let i = 0; i < count; i++) {
        const inner = c.u32(`${key}[${i}]: element type`);
        const n = c.u64(`${key}[${i}]: length`);
        out[i] = this.readArray(c, inner, n, `${key}[${i}]`);
      }
      return out;
    }
    throw new GgufError(this.file, `metadata ${key} is an array of unknown type ${elemType}`);
  }

  // ---- typed metadata access: errors name the file and the key ----

  has(key: string): boolean {
    return this.kv.has(key);
  }

  value(key: string): GgufValue | undefined {
    return this.kv.get(key)?.value;
  }

  number(key: string, fallback?: number): number {
    const v = this.value(key);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new GgufError(this.file, `missing required key ${key}`);
    }
    if (typeof v === "number") return v;
    if (typeof v === "bigint") return Number(v);
    throw new GgufError(this.file, `key ${key} is ${describe(v)}, expected a number`);
  }

  string(key: string, fallback?: string): string {
    const v = this.value(key);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new GgufError(this.file, `missing required key ${key}`);
    }
    if (typeof v !== "string") throw new GgufError(this.file, `key ${key} is ${describe(v)}, expected a string`);
    return v;
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.value(key);
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") throw new GgufError(this.file, `key ${key} is ${describe(v)}, expected a boolean`);
    return v;
  }

  // ---- tensor data ----

  tensor(name: string): GgufTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new GgufError(this.file, `missing tensor ${name}`);
    return t;
  }

  /** Tensor name -> its bytes in a mapped window of the file (useMapping). */
  private mapped = new Map<string, Uint8Array>();

  /**
   * Serves tensor data from mappings of the file: views, no copies, so processes that open the
   * same file share its pages and the OS can reclaim them. `map(offset, length)` maps a window
   * (offset a multiple of MAP_ALIGN, length at most MAP_WINDOW); tensors are grouped into windows,
   * each tensor inside one. A tensor too big for any window is read as before.
   */
  useMapping(map: (offset: number, length: number) => ArrayBuffer, window = MAP_WINDOW): void {
    if (this.fd === null) throw new GgufError(this.file, `file is closed`);
    const size = fs.fstatSync(this.fd).size;
    // Tensors past the end of a truncated file stay with the read path, which names them.
    const sorted = [...this.tensors.entries()].filter(([, t]) => this.dataOffset + t.offset + t.nBytes <= size).sort((a, b) => a[1].offset - b[1].offset);
    let i = 0;
    while (i < sorted.length) {
      const first = this.dataOffset + sorted[i][1].offset;
      const start = first - (first % MAP_ALIGN);
      let end = first + sorted[i][1].nBytes;
      if (end - start > window) { i++; continue; } // read on demand
      let j = i + 1;
      while (j < sorted.length && this.dataOffset + sorted[j][1].offset + sorted[j][1].nBytes - start <= window) {
        end = this.dataOffset + sorted[j][1].offset + sorted[j][1].nBytes;
        j++;
      }
      const buf = map(start, end - start);
      for (let k = i; k < j; k++) {
        const [name, t] = sorted[k];
        this.mapped.set(name, new Uint8Array(buf, this.dataOffset + t.offset - start, t.nBytes));
      }
      i = j;
    }
  }

  /** One tensor's raw bytes: a view of a mapping (useMapping), else read into a buffer of exactly nBytes. */
  tensorData(name: string): Uint8Array {
    const t = this.tensor(name);
    const view = this.mapped.get(name);
    if (view) return view;
    if (this.fd === null) throw new GgufError(this.file, `file is closed`);
    // Allocate through an ArrayBuffer so the view starts at offset 0: Float32Array views need alignment.
    const data = new Uint8Array(new ArrayBuffer(t.nBytes));
    let done = 0;
    while (done < t.nBytes) {
      const n = fs.readSync(this.fd, data, done, Math.min(t.nBytes - done, 1 << 30), this.dataOffset + t.offset + done);
      if (n === 0) throw new GgufError(this.file, `tensor ${name}: truncated tensor data`);
      done += n;
    }
    return data;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }

  /** A JSON-friendly summary (for `inspect`). */
  tensorTypeCounts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const t of this.tensors.values()) counts[typeName(t.type)] = (counts[typeName(t.type)] ?? 0) + 1;
    return counts;
  }
}

function describe(v: GgufValue): string {
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return "an array";
  return `a ${typeof v}`;
}
