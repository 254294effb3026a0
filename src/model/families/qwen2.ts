// Qwen2 / Qwen2.5: Llama's block with Q/K/V biases (loaded when present) and NEOX RoPE.
import type { Family } from "../family.js";

export const qwen2: Family = { arch: "qwen2", describe: () => ({ ropeNeox: true }) };
