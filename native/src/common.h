// Shared definitions for the parallelcomp native kernels: GGML type ids and block layouts,
// exact fp16/bf16 conversions, CPU feature levels, aligned allocation helpers.
//
// Everything here follows ggml's definitions (ggml.h, ggml-common.h, ggml-impl.h) so that
// the numbers we compute match llama.cpp's CPU backend. The code itself is our own.
#ifndef PC_COMMON_H
#define PC_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#define PC_X86 1
#else
#define PC_X86 0
#endif

// Per-function ISA targets. The addon is compiled for baseline x86-64 (no -march), and only
// the functions carrying one of these attributes may use the wider instructions; they are
// reached only through dispatch on pc_isa (see cpu.c). Helpers called from such functions
// must carry the same attribute, otherwise GCC refuses to inline the intrinsics.
#if PC_X86 && (defined(__GNUC__) || defined(__clang__))
#define PC_HAVE_X86_SIMD 1
#define PC_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define PC_TARGET_AVX512 \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#else
#define PC_HAVE_X86_SIMD 0
#endif

#define PC_INLINE static inline __attribute__((always_inline))
#define PC_RESTRICT __restrict__
#define PC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PC_MAX(a, b) ((a) > (b) ? (a) : (b))

// ---------------------------------------------------------------------------------------------
// GGML types (numbering of enum ggml_type) and block layouts (ggml-common.h).

enum {
    PC_F32 = 0,
    PC_F16 = 1,
    PC_Q4_0 = 2,
    PC_Q4_1 = 3,
    PC_Q5_0 = 6,
    PC_Q5_1 = 7,
    PC_Q8_0 = 8,
    PC_Q8_1 = 9,
    PC_Q4_K = 12,
    PC_Q5_K = 13,
    PC_Q6_K = 14,
    PC_Q8_K = 15,
    PC_BF16 = 30,
};

#define QK8_0 32
#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK_K 256

typedef struct {
    uint16_t d;       // fp16 scale
    int8_t qs[QK8_0]; // quants
} block_q8_0;         // 34 bytes

typedef struct {
    uint16_t d;            // fp16 scale
    uint8_t qs[QK4_0 / 2]; // byte j: low nibble = value j, high nibble = value j + 16 (offset 8)
} block_q4_0;              // 18 bytes

typedef struct {
    uint16_t d;            // fp16 scale
    uint16_t m;            // fp16 minimum (offset)
    uint8_t qs[QK4_1 / 2]; // as in q4_0, values are nibble * d + m
} block_q4_1;              // 20 bytes

typedef struct {
    uint16_t d;            // fp16 scale
    uint8_t qh[4];         // bit j of this little-endian u32: fifth bit of value j
    uint8_t qs[QK5_0 / 2]; // low nibbles as in q4_0; values are ((nibble | bit << 4) - 16) * d
} block_q5_0;              // 22 bytes

typedef struct {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[QK5_1 / 2]; // values are (nibble | bit << 4) * d + m
} block_q5_1;              // 24 bytes

typedef struct {
    uint16_t d;         // fp16 super-block scale for the 6-bit scales
    uint16_t dmin;      // fp16 super-block scale for the 6-bit mins
    uint8_t scales[12]; // 8 (scale, min) pairs of 6 bits, packed (see pc_kquant_scales)
    uint8_t qs[QK_K / 2]; // 64-value groups: 32 bytes, low nibbles first 32 values, high next 32
} block_q4_K;             // 144 bytes

typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8]; // bit 2g / 2g+1 of qh[l]: 5th bit of value l of sub-block 2g / 2g+1
    uint8_t qs[QK_K / 2]; // low 4 bits, laid out as in q4_K
} block_q5_K;             // 176 bytes

typedef struct {
    uint8_t ql[QK_K / 2];     // low 4 bits
    uint8_t qh[QK_K / 4];     // high 2 bits
    int8_t scales[QK_K / 16]; // one signed 8-bit scale per 16 values
    uint16_t d;               // fp16 super-block scale
} block_q6_K;                 // 210 bytes

_Static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");
_Static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");
_Static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");
_Static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");
_Static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");
_Static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");
_Static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");
_Static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");

/** Bytes of one row of n values of `type`, or 0 if the type is unsupported or n is not a
 *  multiple of the block size. */
size_t pc_row_bytes(int type, int64_t n);

// ---------------------------------------------------------------------------------------------
// Exact scalar conversions. These are the definitions; SIMD paths (F16C, shifts) give
// identical bits for every finite input.

PC_INLINE float pc_bits_to_f32(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}
PC_INLINE uint32_t pc_f32_to_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/** IEEE binary16 -> binary32 (exact). */
PC_INLINE float pc_fp16_to_fp32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    const uint32_t em = h & 0x7fff;
    if (em >= 0x7c00) return pc_bits_to_f32(sign | 0x7f800000 | ((em & 0x3ff) << 13)); // inf/nan
    if (em >= 0x0400) return pc_bits_to_f32(sign | ((em << 13) + 0x38000000));         // normal
    const float f = (float)em * 0x1p-24f;                                              // subnormal
    return sign ? -f : f;
}

/** IEEE binary32 -> binary16, round to nearest even (what F16C's vcvtps2ph with
 *  _MM_FROUND_TO_NEAREST_INT and ggml's GGML_FP32_TO_FP16 do). */
PC_INLINE uint16_t pc_fp32_to_fp16(float f) {
    const uint32_t x = pc_f32_to_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax > 0x7f800000) return sign | 0x7e00;   // nan -> quiet nan
    if (ax >= 0x477ff000) return sign | 0x7c00;  // >= 65520 rounds to inf (inf stays inf)
    if (ax < 0x38800000) {                       // result is an f16 subnormal (or zero)
        // Adding 0.5 puts the value's f16-subnormal ulp (2^-24) at the float ulp of 0.5, so the
        // hardware's round-to-nearest-even does the rounding; the excess bits are the result.
        const float t = pc_bits_to_f32(ax) + 0.5f;
        return sign | (uint16_t)(pc_f32_to_bits(t) - 0x3f000000u);
    }
    // normal: rebias the exponent (127 -> 15) and round the 13 dropped bits to nearest even.
    ax += 0xc8000fffu + ((ax >> 13) & 1);
    return sign | (uint16_t)(ax >> 13);
}

PC_INLINE float pc_bf16_to_fp32(uint16_t h) { return pc_bits_to_f32((uint32_t)h << 16); }

/** binary32 -> bfloat16 exactly as ggml_compute_fp32_to_bf16 (round to nearest even, NaN kept
 *  quiet, no flushing of subnormals). */
PC_INLINE uint16_t pc_fp32_to_bf16(float f) {
    const uint32_t u = pc_f32_to_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

// ---------------------------------------------------------------------------------------------
// Instruction-set level chosen at runtime (cpu.c).

typedef enum { PC_ISA_SCALAR = 0, PC_ISA_AVX2 = 1, PC_ISA_AVX512 = 2 } pc_isa_t;

/** The level kernels dispatch on. Set by pc_cpu_init(); lowered by pc_set_isa() for testing. */
extern pc_isa_t pc_isa;
void pc_cpu_init(void);
/** Best level this CPU supports. */
pc_isa_t pc_isa_detected(void);
/** Request a level; clamped to what the CPU supports. Returns the level now in effect. */
pc_isa_t pc_set_isa(pc_isa_t want);
const char *pc_isa_name(pc_isa_t isa);

// ---------------------------------------------------------------------------------------------
// Memory helpers.

/** 64-byte aligned, grow-only buffer. */
typedef struct {
    void *ptr;
    size_t cap;
} pc_buf_t;

/** Ensures buf holds at least `bytes` (64-byte aligned, contents not preserved). Returns the
 *  pointer, or NULL when out of memory. */
void *pc_buf_reserve(pc_buf_t *buf, size_t bytes);
void pc_buf_free(pc_buf_t *buf);

#endif
