// Activation conversion: before a matmul, llama.cpp converts the f32 activations to the weight
// type's "vec dot type" (F32 -> F32, F16 -> F16, BF16 -> BF16, Q8_0/Q4_0 -> Q8_0,
// K-quants -> Q8_K, Q5_0 -> Q8_0, Q4_1/Q5_1 -> Q8_1). We do the same, bit for bit, but store the result in a layout convenient
// for SIMD: floats stay floats (holding the rounded f16/bf16 values exactly), and quantized
// rows are split into a plain int8 array plus per-block scales and sums.
#ifndef PC_CONVERT_H
#define PC_CONVERT_H

#include "common.h"

/** Converted activations for T tokens of n values each. */
typedef struct {
    int type;     // vec dot type: PC_F32, PC_F16, PC_BF16, PC_Q8_0, PC_Q8_1 or PC_Q8_K
    int64_t T, n;
    // PC_F32 / PC_F16 / PC_BF16: f = [T, ldf] floats (for F16/BF16 rounded to that precision).
    const float *f;
    int64_t ldf;
    // PC_Q8_0: qs = [T, n], d = [T, n/32] (the block's fp16 scale, widened), sums = [T, n/32]
    //          (sum of the block's 32 quants).
    // PC_Q8_1: as Q8_0, plus s = [T, n/32]: the block's fp16 s = d * sum(q), widened.
    // PC_Q8_K: qs = [T, n], d = [T, n/256] (f32 scale), sums = [T, n/16] (ggml's bsums: sums
    //          of 16 consecutive quants).
    int8_t *qs;
    float *d;
    float *s;
    int16_t *sums;
} pc_acts_t;

/** The vec dot type of a weight type (-1 if unsupported). */
int pc_vec_dot_type(int wtype);

/** Bytes of scratch needed to convert T rows of n values to `vtype` (0 for F32: no copy). */
size_t pc_acts_bytes(int vtype, int64_t T, int64_t n);

/** Lays out `acts` for T x n values of `vtype` in `mem` (pc_acts_bytes(...) bytes, 64-aligned),
 *  or points it at x directly for F32. x: [T, n]. */
void pc_acts_init(pc_acts_t *acts, int vtype, const float *x, int64_t T, int64_t n, void *mem);

/** Converts rows [t0, t1) of x ([T, n]) into acts. Threads may convert disjoint row ranges. */
void pc_acts_convert(pc_acts_t *acts, const float *x, int64_t t0, int64_t t1);

#endif
