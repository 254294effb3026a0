// Qwen3: no biases; an RMS norm over each head's query and key ([headDim] weights) before RoPE.
// The head width comes from key_length (128 with dim 1024 and 16 heads in Qwen3-0.6B).
import type { Family } from "../family.js";

export const qwen3: Family = { arch: "qwen3", describe: () => ({ ropeNeox: true, block: { qkNorm: true } }) };
