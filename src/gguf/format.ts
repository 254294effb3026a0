// GGUF container format (v2 and v3), shared by the reader and the writer.
//
// File layout:
//   magic "GGUF" | version u32 | tensorCount u64 | kvCount u64
//   kvCount x { key: string, valueType: u32, value }
//   tensorCount x { name: string, nDims: u32, ne: u64[nDims], type: u32, offset: u64 }
//   padding to `general.alignment` (default 32)
//   tensor data, each tensor at dataOffset + offset (offsets aligned too)
// A string is u64 length + UTF-8 bytes; an array is elemType u32 + count u64 + elements.
// ne[0] is the fastest-varying dimension: a weight of PyTorch shape [nOut, nIn] has ne = [nIn, nOut].

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;

export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** Numeric arrays are kept as typed arrays (a 150K-entry score list stays compact). */
export type GgufArray =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array
  | BigUint64Array
  | BigInt64Array
  | boolean[]
  | string[]
  | GgufArray[];

export type GgufValue = number | bigint | boolean | string | GgufArray;

/** A metadata entry as stored: the declared type matters for writing and for arrays. */
export interface GgufKv {
  type: GgufValueType;
  /** For ARRAY: the element type (ARRAY again for nested arrays). */
  elemType?: GgufValueType;
  value: GgufValue;
}

export interface GgufTensorInfo {
  name: string;
  ne: number[]; // dimensions, fastest first
  type: number; // GgmlType
  offset: number; // bytes from the start of the data section
  nBytes: number;
}

export const SCALAR_SIZE: Partial<Record<GgufValueType, number>> = {
  [GgufValueType.UINT8]: 1,
  [GgufValueType.INT8]: 1,
  [GgufValueType.UINT16]: 2,
  [GgufValueType.INT16]: 2,
  [GgufValueType.UINT32]: 4,
  [GgufValueType.INT32]: 4,
  [GgufValueType.FLOAT32]: 4,
  [GgufValueType.BOOL]: 1,
  [GgufValueType.UINT64]: 8,
  [GgufValueType.INT64]: 8,
  [GgufValueType.FLOAT64]: 8,
};

export function alignUp(n: number, alignment: number): number {
  return Math.ceil(n / alignment) * alignment;
}
