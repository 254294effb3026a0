// Llama (and Mistral, SmolLM2): the plain pre-norm block with SwiGLU and NORM-style RoPE.
import type { Family } from "../family.js";

export const llama: Family = { arch: "llama", describe: () => ({ ropeNeox: false }) };
