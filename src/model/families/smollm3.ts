// SmolLM3: Llama's block, but every 4th layer (l = 3, 7, ...) has no RoPE at all
// (llama.cpp: n_no_rope_layer_step = 4, use_rope = (l + 1) % 4 != 0).
import type { Family } from "../family.js";

const NO_ROPE_STEP = 4;

export const smollm3: Family = {
  arch: "smollm3",
  describe: (f) => ({ ropeNeox: false, layer: (l) => ({ rope: (l + 1) % NO_ROPE_STEP !== 0 ? f.rope : null, window: 0 }) }),
};
