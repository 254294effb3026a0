// A seeded PRNG for everything that draws random numbers (sampling, random test models, synthetic
// tasks, benchmarks), so a fixed seed gives the same run everywhere.

/** mulberry32: small, fast, good enough for sampling; a fixed seed gives a fixed stream in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
