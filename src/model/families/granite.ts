// Granite 3: Llama's block with four scalars from the file: the embeddings times
// embedding_scale, each block's output times residual_scale before its residual add, q . k times
// attention.scale (instead of 1 / sqrt(headDim)), and the logits divided by logit_scale.
import type { Family } from "../family.js";

export const granite: Family = {
  arch: "granite",
  describe: (f) => ({
    ropeNeox: false,
    block: {
      embedScale: f.number("embedding_scale", 1),
      residualScale: f.number("residual_scale", 1),
      kqScale: f.number("attention.scale", 0) || 1 / Math.sqrt(f.headDim),
      // llama.cpp scales by the f32 reciprocal, so the multiplier is 1 / logit_scale
      logitScale: Math.fround(1 / f.number("logit_scale")),
    },
  }),
};
