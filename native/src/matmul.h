// Matrix multiplication y[t, o] = dot(w[o, :], x[t, :]) over raw GGML weights.
//
// matmul.c converts the activations (convert.h), splits the work across the thread pool and
// calls a kernel chosen by weight type, instruction set and T. Kernels live in
// matmul_float.c (F32, F16, BF16) and matmul_quant.c (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
// Q6_K): the types src/gguf/types.ts lists as supported.
#ifndef PC_MATMUL_H
#define PC_MATMUL_H

#include "common.h"
#include "convert.h"

typedef struct pc_mm_job pc_mm_job;

/** Computes y[t, o] for rows o in [r0, r1) and tokens t in [t0, t1), on thread ith. */
typedef void (*pc_mm_kernel)(const pc_mm_job *job, int ith, int64_t r0, int64_t r1, int64_t t0, int64_t t1);

struct pc_mm_job {
    const uint8_t *w;  // [nOut, row_bytes] raw GGML rows
    size_t row_bytes;  // bytes per row of w
    int type;          // weight type
    int64_t nOut, nIn, T;
    const float *x;    // [T, nIn] input activations
    pc_acts_t acts;    // x converted to the vec dot type
    float *y;          // [T, nOut] output
    pc_mm_kernel kernel;
    int64_t row_unit;  // rows are split between threads in multiples of this
    int split_tokens;  // 1: work chunks are token ranges (all rows), 0: row ranges (all tokens)
    int convert_in_job; // 1: each chunk converts its own token range first (split_tokens only)
};

/** Errors returned by pc_matmul. */
enum { PC_OK = 0, PC_EUNSUPPORTED = 1, PC_ESHAPE = 2, PC_ENOMEM = 3 };

/** y = x . w^T with llama.cpp's semantics. w: [nOut, nIn] of `type`; x: [T, nIn]; y: [T, nOut]. */
int pc_matmul(const uint8_t *w, int type, int64_t nOut, int64_t nIn, const float *x, int64_t T, float *y);

// Kernel selection (NULL if the type is not handled by that family). *row_unit receives the
// preferred granularity of row ranges handed to the kernel.
pc_mm_kernel pc_mm_float_kernel(int type, pc_isa_t isa, int64_t T, int64_t *row_unit);
pc_mm_kernel pc_mm_quant_kernel(int type, pc_isa_t isa, int64_t T, int64_t *row_unit);

// Per-thread scratch slots used by matmul kernels (see threadpool.h).
#define PC_SLOT_PANEL 0

#endif
