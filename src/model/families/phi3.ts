// Phi-3 / Phi-3.5: fused attn_qkv and fused gate+up (ffn_up has 2 * nFf rows, gate first), both
// split at load; NEOX RoPE with "long RoPE" factors (rope_factors_short / rope_factors_long,
// chosen by the context the model runs in, and an attention factor on cos and sin, read into the
// ordinary rope plan by config.ts); Q scaled by 1 / sqrt(headDim) before attention.
// llama.cpp runs Phi-3 without its sliding window (llama-model's phi3 loader turns it off), and
// so do we.
import type { Family } from "../family.js";

export const phi3: Family = {
  arch: "phi3",
  describe: (f) => ({
    ropeNeox: true,
    block: { fusedQkv: true, fusedGateUp: true, queryScale: Math.fround(1 / Math.sqrt(f.headDim)), kqScale: 1 },
  }),
};
