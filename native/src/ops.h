// Element-wise and row-wise operations of the forward pass between the matmuls: RMS norm, the
// gated activations (SwiGLU, GEGLU), the residual add, RoPE, and the row copy that appends K / V
// rows to the cache. Cheap in FLOPs, but in TypeScript they took half of a prefill (SwiGLU's exp
// above all), so they live here next to the kernels.
#ifndef PC_OPS_H
#define PC_OPS_H

#include "common.h"

/** y[t] = x[t] * (1 / sqrt(mean(x[t]^2) + eps)) * w, as ggml: squares in float, summed in
 *  double, the scale in float, then the product with w. x, y: [T, dim]; w: [dim]. */
void pc_rmsnorm(float *y, const float *x, const float *w, int64_t T, int64_t dim, float eps);

/** gate[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)) in float. */
void pc_swiglu(float *gate, const float *up, int64_t n);

/** gate[i] = gelu(gate[i]) * up[i], gelu as ggml's CPU backend: 0 for x <= -10, x for x >= 10,
 *  else the tanh approximation of x rounded to fp16, looked up in an fp16 table. */
void pc_geglu(float *gate, const float *up, int64_t n);

/** x[i] += y[i]. */
void pc_add(float *x, const float *y, int64_t n);

/** Rotates the first ropeDim dims of each of nH heads of x: [T, nH, headDim] by the angles
 *  whose cos / sin are given: [T, ropeDim / 2]. neox: pairs (i, i + ropeDim / 2), else
 *  (2i, 2i + 1). Each output is x0 * c - x1 * s (x0 * s + x1 * c) rounded once from double. */
void pc_rope(float *x, int64_t T, int64_t nH, int64_t headDim, int64_t ropeDim, int neox, const float *cos,
             const float *sin);

/** nRows rows of rowLen floats: dst[r * dstStride + i] = src[r * srcStride + i]. */
void pc_copy_rows(float *dst, int64_t dstStride, const float *src, int64_t srcStride, int64_t rowLen, int64_t nRows);

/** The same, each value rounded to F16 (round to nearest even, as ggml's F32 -> F16 copy). */
void pc_copy_rows_f16(uint16_t *dst, int64_t dstStride, const float *src, int64_t srcStride, int64_t rowLen, int64_t nRows);

/** Reads n bytes once, on every thread of the pool (each a contiguous share), and returns a
 *  checksum of them: the machine's streaming read, the yardstick of a bandwidth-bound decode. */
uint64_t pc_stream_read(const uint8_t *p, size_t n);

#endif
