// Runtime CPU feature detection and small shared helpers (row sizes, aligned buffers).
#include <stdlib.h>

#include "common.h"

pc_isa_t pc_isa = PC_ISA_SCALAR;
static pc_isa_t detected = PC_ISA_SCALAR;
static int initialised = 0;

void pc_cpu_init(void) {
    if (initialised) return;
    initialised = 1;
    detected = PC_ISA_SCALAR;
#if PC_HAVE_X86_SIMD
    __builtin_cpu_init();
    // The AVX2 level also uses FMA and F16C (every AVX2 CPU we know of has both, but check).
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        __builtin_cpu_supports("f16c")) {
        detected = PC_ISA_AVX2;
        // The AVX-512 level is Ice Lake / Zen 4 and later: F, BW, VL, DQ and VNNI.
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512vnni")) {
            detected = PC_ISA_AVX512;
        }
    }
#endif
    pc_isa = detected;
}

pc_isa_t pc_isa_detected(void) { return detected; }

pc_isa_t pc_set_isa(pc_isa_t want) {
    pc_isa = want > detected ? detected : want;
    return pc_isa;
}

const char *pc_isa_name(pc_isa_t isa) {
    switch (isa) {
        case PC_ISA_AVX512: return "avx512";
        case PC_ISA_AVX2: return "avx2";
        default: return "scalar";
    }
}

size_t pc_row_bytes(int type, int64_t n) {
    if (n < 0) return 0;
    switch (type) {
        case PC_F32: return (size_t)n * 4;
        case PC_F16:
        case PC_BF16: return (size_t)n * 2;
        case PC_Q8_0: return n % QK8_0 ? 0 : (size_t)(n / QK8_0) * sizeof(block_q8_0);
        case PC_Q4_0: return n % QK4_0 ? 0 : (size_t)(n / QK4_0) * sizeof(block_q4_0);
        case PC_Q4_1: return n % QK4_1 ? 0 : (size_t)(n / QK4_1) * sizeof(block_q4_1);
        case PC_Q5_0: return n % QK5_0 ? 0 : (size_t)(n / QK5_0) * sizeof(block_q5_0);
        case PC_Q5_1: return n % QK5_1 ? 0 : (size_t)(n / QK5_1) * sizeof(block_q5_1);
        case PC_Q4_K: return n % QK_K ? 0 : (size_t)(n / QK_K) * sizeof(block_q4_K);
        case PC_Q5_K: return n % QK_K ? 0 : (size_t)(n / QK_K) * sizeof(block_q5_K);
        case PC_Q6_K: return n % QK_K ? 0 : (size_t)(n / QK_K) * sizeof(block_q6_K);
        default: return 0;
    }
}

void *pc_buf_reserve(pc_buf_t *buf, size_t bytes) {
    if (bytes <= buf->cap && buf->ptr) return buf->ptr;
    // Grow geometrically so that slowly increasing sizes do not reallocate every call.
    size_t cap = buf->cap ? buf->cap : 4096;
    while (cap < bytes) cap *= 2;
    void *p = NULL;
    if (posix_memalign(&p, 64, cap) != 0) return NULL;
    free(buf->ptr);
    buf->ptr = p;
    buf->cap = cap;
    return p;
}

void pc_buf_free(pc_buf_t *buf) {
    free(buf->ptr);
    buf->ptr = NULL;
    buf->cap = 0;
}
