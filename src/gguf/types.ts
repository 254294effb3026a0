// GGML tensor types as numbered in the GGUF format (ggml.h `enum ggml_type`).
// Block layouts come from ggml-common.h; sizes are bytes per block of `blockSize` values.

export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
}

export interface TypeTraits {
  name: string;
  blockSize: number; // values per block
  typeSize: number; // bytes per block
}

/** Every type the GGUF reader recognises (so it can compute tensor sizes and skip them). */
export const TYPE_TRAITS: ReadonlyMap<number, TypeTraits> = new Map<number, TypeTraits>([
  [GgmlType.F32, { name: "F32", blockSize: 1, typeSize: 4 }],
  [GgmlType.F16, { name: "F16", blockSize: 1, typeSize: 2 }],
  [GgmlType.Q4_0, { name: "Q4_0", blockSize: 32, typeSize: 18 }],
  [GgmlType.Q4_1, { name: "Q4_1", blockSize: 32, typeSize: 20 }],
  [GgmlType.Q5_0, { name: "Q5_0", blockSize: 32, typeSize: 22 }],
  [GgmlType.Q5_1, { name: "Q5_1", blockSize: 32, typeSize: 24 }],
  [GgmlType.Q8_0, { name: "Q8_0", blockSize: 32, typeSize: 34 }],
  [GgmlType.Q8_1, { name: "Q8_1", blockSize: 32, typeSize: 36 }],
  [GgmlType.Q2_K, { name: "Q2_K", blockSize: 256, typeSize: 84 }],
  [GgmlType.Q3_K, { name: "Q3_K", blockSize: 256, typeSize: 110 }],
  [GgmlType.Q4_K, { name: "Q4_K", blockSize: 256, typeSize: 144 }],
  [GgmlType.Q5_K, { name: "Q5_K", blockSize: 256, typeSize: 176 }],
  [GgmlType.Q6_K, { name: "Q6_K", blockSize: 256, typeSize: 210 }],
  [GgmlType.Q8_K, { name: "Q8_K", blockSize: 256, typeSize: 292 }],
  [GgmlType.BF16, { name: "BF16", blockSize: 1, typeSize: 2 }],
]);

/** Weight types the matmul kernels read directly (issue: engine). */
export const SUPPORTED_WEIGHT_TYPES: ReadonlySet<number> = new Set([
  GgmlType.F32,
  GgmlType.F16,
  GgmlType.BF16,
  GgmlType.Q8_0,
  GgmlType.Q4_0,
  GgmlType.Q4_1,
  GgmlType.Q5_0,
  GgmlType.Q5_1,
  GgmlType.Q4_K,
  GgmlType.Q5_K,
  GgmlType.Q6_K,
]);

export function typeName(type: number): string {
  return TYPE_TRAITS.get(type)?.name ?? `type ${type}`;
}

/** Bytes of a row of `n` values; `n` must be a multiple of the block size. */
export function rowBytes(type: number, n: number): number {
  const t = TYPE_TRAITS.get(type);
  if (!t) throw new Error(`unknown tensor type ${type}`);
  if (n % t.blockSize !== 0) throw new Error(`row of ${n} values is not a multiple of ${t.name}'s block size ${t.blockSize}`);
  return (n / t.blockSize) * t.typeSize;
}
