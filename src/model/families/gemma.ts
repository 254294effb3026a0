// Gemma 2 and Gemma 3. Both: embeddings times sqrt(dim); GELU-gated feed-forward; RMS norms after
// attention and after the feed-forward as well as before; Q scaled before attention by
// 1 / sqrt(headDim) (1 / sqrt(dim / nHeads) for the 27B models, which llama.cpp recognises by
// their layer count); NEOX RoPE; sliding-window attention on most layers, by position.
// Gemma 2: scores soft-capped at 50 and logits at 30; every other layer slides (4096); the
// sliding layers share the global RoPE. Gemma 3: per-head Q/K norms instead of the score cap;
// five sliding layers (512) then one global; the sliding layers have their own RoPE base
// (rope.freq_base_swa, default 10000) and no linear scaling. Norm weights are stored with
// Gemma's +1 already added by the converter, so they are plain RMS norms here.
import { slides, type Family, type FamilyInput } from "../family.js";

function queryScale(f: FamilyInput, layers27b: number): number {
  const width = f.nLayers === layers27b ? f.dim / f.nHeads : f.headDim;
  return Math.fround(1 / Math.sqrt(width));
}

export const gemma2: Family = {
  arch: "gemma2",
  describe: (f) => {
    const window = f.number("attention.sliding_window", 4096);
    const period = f.number("attention.sliding_window_pattern", 2);
    const swaRope = { ...f.rope, base: f.number("rope.freq_base_swa", f.rope.base) };
    return {
      ropeNeox: true,
      block: {
        postNorms: true, activation: "gelu", embedScale: Math.fround(Math.sqrt(f.dim)), queryScale: queryScale(f, 46), kqScale: 1,
        attnSoftcap: f.number("attn_logit_softcapping", 50), finalSoftcap: f.number("final_logit_softcapping", 30),
      },
      layer: (l) => (slides(l, period) ? { rope: swaRope, window } : { rope: f.rope, window: 0 }),
    };
  },
};

export const gemma3: Family = {
  arch: "gemma3",
  describe: (f) => {
    const window = f.number("attention.sliding_window", 0);
    const period = f.number("attention.sliding_window_pattern", 6);
    const swaRope = { base: f.number("rope.freq_base_swa", 10000), freqScale: 1, factors: null, mscale: 1 };
    return {
      ropeNeox: true,
      block: {
        qkNorm: true, postNorms: true, activation: "gelu", embedScale: Math.fround(Math.sqrt(f.dim)), queryScale: queryScale(f, 62), kqScale: 1,
        finalSoftcap: f.number("final_logit_softcapping", 0),
      },
      layer: (l) => (window > 0 && slides(l, period) ? { rope: swaRope, window } : { rope: f.rope, window: 0 }),
    };
  },
};
