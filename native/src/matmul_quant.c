

// Matmul kernels for quantized weights: Q8_0, Q4_0, Q5_0 (against Q8_0 activations), Q4_1,
// Q5_1 (against Q8_1 activations), and the K-quants Q4_K, Q5_K, Q6_K (against Q8_K).
//
// As in ggml, every block's dot product is computed exactly in integers and only then scaled
// by the block scales in float. Sums over blocks are in float, in a different order than
// ggml's (the difference is rounding only).
//
// The scalar kernels here are the plain definition (and the non-x86 path). The SIMD kernels
// come from matmul_quant_simd.h, compiled twice: for AVX2, and for AVX-512VL + VNNI on 256-bit
// vectors (Zen 4 executes 512-bit integer ops as two 256-bit halves, so ymm loses nothing
// there, while AVX-512 adds 32 registers and the fused VNNI dot-product instructions).
#include "matmul.h"
#include "threadpool.h"

#if PC_HAVE_X86_SIMD
#include <immintrin.h>
#include "simd_x86.h"
#endif

/** Decodes the 8 (scale, min) pairs of a Q4_K / Q5_K super-block (ggml's get_scale_min_k4),
 *  four at a time in 32-bit words: scale j and min j are 6-bit fields; for j < 4 they sit in
 *  the low 6 bits of bytes j and j + 4, for j >= 4 their low 4 bits are nibbles of byte j + 4
 *  and their top 2 bits the top bits of bytes j - 4 and j. q: [12] bytes; *sc, *m: 8 bytes
 *  each, byte l (little-endian) for scale / min l. The SIMD tiles take these words into
 *  registers, the scalar path as bytes (kq_scales). */
static inline void kq_scales_packed(const uint8_t *q, uint64_t *sc, uint64_t *m) {
    uint32_t u[3];
    memcpy(u, q, 12);
    *sc = (u[0] & 0x3f3f3f3fu)                                                          // scales 0..3
          | (uint64_t)((u[2] & 0x0f0f0f0fu) | (((u[0] >> 6) & 0x03030303u) << 4)) << 32;   // scales 4..7
    *m = (u[1] & 0x3f3f3f3fu)                                                           // mins 0..3
         | (uint64_t)(((u[2] >> 4) & 0x0f0f0f0fu) | (((u[1] >> 6) & 0x03030303u) << 4)) << 32; // mins 4..7
}

static inline void kq_scales(const uint8_t *q, uint8_t *sc, uint8_t *m) {
    uint64_t s64, m64;
    kq_scales_packed(q, &s64, &m64);
    memcpy(sc, &s64, 8); // little-endian: byte l is scale l
    memcpy(m, &m64, 8);
}

// ---------------------------------------------------------------------------------------------
// Scalar dot products of one weight row with one converted activation row.
// w: one row of blocks; xq: [K] quants; xd: block scales; xs: block sums (see convert.h).

static float dot_q8_0_scalar(const block_q8_0 *w, const int8_t *xq, const float *xd, int64_t nb) {
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        int sumi = 0;
        for (int j = 0; j < 32; j++) sumi += w[b].qs[j] * xq[b * 32 + j];
        sumf += (float)sumi * (pc_fp16_to_fp32(w[b].d) * xd[b]);
    }
    return sumf;
}

static float dot_q4_0_scalar(const block_q4_0 *w, const int8_t *xq, const float *xd, int64_t nb) {
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += ((w[b].qs[j] & 0x0F) - 8) * xq[b * 32 + j];
            sumi += ((w[b].qs[j] >> 4) - 8) * xq[b * 32 + j + 16];
        }
        sumf += (float)sumi * pc_fp16_to_fp32(w[b].d) * xd[b];
    }
    return sumf;
}

/** Fifth bit of value j of a Q5_0 / Q5_1 block. qh: the block's 4 qh bytes. */
static inline int q5_bit(const uint8_t *qh, int j) { return (qh[j / 8] >> (j % 8)) & 1; }

static float dot_q5_0_scalar(const block_q5_0 *w, const int8_t *xq, const float *xd, int64_t nb) {
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += (((w[b].qs[j] & 0x0F) | (q5_bit(w[b].qh, j) << 4)) - 16) * xq[b * 32 + j];
            sumi += (((w[b].qs[j] >> 4) | (q5_bit(w[b].qh, j + 16) << 4)) - 16) * xq[b * 32 + j + 16];
        }
        sumf += (pc_fp16_to_fp32(w[b].d) * xd[b]) * (float)sumi;
    }
    return sumf;
}

/** Q4_1 (qh == 0 bits) and Q5_1 dot Q8_1: d * dx * sum(q * x) + m * s. blocks: nb blocks of
 *  `bsize` bytes (d, m, [qh], qs); xs: the activations' s per block. */
static float dot_q45_1_scalar(const uint8_t *blocks, size_t bsize, int is_q5, const int8_t *xq, const float *xd,
                              const float *xs, int64_t nb) {
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = blocks + b * bsize;
        uint16_t d16, m16;
        memcpy(&d16, blk, 2);
        memcpy(&m16, blk + 2, 2);
        const uint8_t *qh = blk + 4;
        const uint8_t *qs = blk + (is_q5 ? 8 : 4);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            const int v0 = (qs[j] & 0x0F) | (is_q5 ? q5_bit(qh, j) << 4 : 0);
            const int v1 = (qs[j] >> 4) | (is_q5 ? q5_bit(qh, j + 16) << 4 : 0);
            sumi += v0 * xq[b * 32 + j] + v1 * xq[b * 32 + j + 16];
        }
        sumf += (pc_fp16_to_fp32(d16) * xd[b]) * (float)sumi + pc_fp16_to_fp32(m16) * xs[b];
    }
    return sumf;
}

/** Q4_K / Q5_K share everything but the fifth bit (qh == NULL for Q4_K). */
static float dot_q45_K_scalar(const uint8_t *blocks, size_t bsize, int is_q5, const int8_t *xq, const float *xd,
                              const int16_t *bsums, int64_t nb) {
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = blocks + b * bsize;
        uint16_t d16, dmin16;
        memcpy(&d16, blk, 2);
        memcpy(&dmin16, blk + 2, 2);
        uint8_t sc[8], m[8];
        kq_scales(blk + 4, sc, m);
        const uint8_t *qh = is_q5 ? blk + 16 : NULL;
        const uint8_t *qs = blk + (is_q5 ? 48 : 16);
        const int8_t *x = xq + b * QK_K;
        int sumi = 0;
        for (int c = 0; c < 8; c++) { // sub-block c: 32 values
            const uint8_t *q = qs + 32 * (c / 2);
            int dot = 0;
            for (int l = 0; l < 32; l++) {
                int v = c & 1 ? q[l] >> 4 : q[l] & 0xF;
                if (qh && (qh[l] >> c) & 1) v += 16;
                dot += v * x[32 * c + l];
            }
            sumi += sc[c] * dot;
        }
        int summ = 0;
        for (int j = 0; j < 16; j++) summ += bsums[b * 16 + j] * m[j / 2];
        sumf += pc_fp16_to_fp32(d16) * xd[b] * (float)sumi;
        sumf -= pc_fp16_to_fp32(dmin16) * xd[b] * (float)summ;
    }
    return sumf;
}

static float dot_q6_K_scalar(const block_q6_K *w, const int8_t *xq, const float *xd, int64_t nb) {
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *ql = w[b].ql, *qh = w[b].qh;
        const int8_t *x = xq + b * QK_K;
        int sumi = 0;
        for (int h = 0; h < 2; h++) { // halves of 128 values
            for (int l = 0; l < 32; l++) {
                const int v0 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int v1 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int v2 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int v3 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                const int8_t *sc = w[b].scales + 8 * h + l / 16;
                sumi += sc[0] * v0 * x[l] + sc[2] * v1 * x[l + 32] + sc[4] * v2 * x[l + 64] + sc[6] * v3 * x[l + 96];
            }
            ql += 64;
            qh += 32;
            x += 128;
        }
        sumf += pc_fp16_to_fp32(w[b].d) * xd[b] * (float)sumi;
    }
    return sumf;
}

static void mm_quant_scalar(const pc_mm_job *job, int ith, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    (void)ith;
    const pc_acts_t *a = &job->acts;
    const int64_t K = job->nIn;
    for (int64_t t = t0; t < t1; t++) {
        const int8_t *xq = a->qs + t * K;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *wr = job->w + (size_t)r * job->row_bytes;
            float v = 0;
            switch (job->type) {
                case PC_Q8_0: v = dot_q8_0_scalar((const block_q8_0 *)wr, xq, a->d + t * (K / 32), K / 32); break;
                case PC_Q4_0: v = dot_q4_0_scalar((const block_q4_0 *)wr, xq, a->d + t * (K / 32), K / 32); break;
                case PC_Q5_0: v = dot_q5_0_scalar((const block_q5_0 *)wr, xq, a->d + t * (K / 32), K / 32); break;
                case PC_Q4_1:
                case PC_Q5_1:
                    v = dot_q45_1_scalar(wr, job->type == PC_Q5_1 ? sizeof(block_q5_1) : sizeof(block_q4_1),
                                         job->type == PC_Q5_1, xq, a->d + t * (K / 32), a->s + t * (K / 32), K / 32);
                    break;
                case PC_Q4_K:
                case PC_Q5_K:
                    v = dot_q45_K_scalar(wr, job->type == PC_Q5_K ? sizeof(block_q5_K) : sizeof(block_q4_K),
                                         job->type == PC_Q5_K, xq, a->d + t * (K / QK_K), a->sums + t * (K / 16), K / QK_K);
                    break;
                case PC_Q6_K: v = dot_q6_K_scalar((const block_q6_K *)wr, xq, a->d + t * (K / QK_K), K / QK_K); break;
            }
            job->y[t * job->nOut + r] = v;
        }
    }
}

#if PC_HAVE_X86_SIMD
// AVX2: 16 vector registers, so tiles of 2 rows x 4 tokens; Q8_0's tile keeps one accumulator
// per row (tile_q8_0_h), so 4 rows.
#define QT_TARGET PC_TARGET_AVX2
#define QT_NAME(x) x##_avx2
#define QT_VNNI 0
#define QT_RM 2
#define QT_RM_Q8_0 4
#define QT_RN 4
#include "matmul_quant_simd.h"
#undef QT_TARGET
#undef QT_NAME
#undef QT_VNNI
#undef QT_RM
#undef QT_RM_Q8_0
#undef QT_RN

// AVX-512VL + VNNI on ymm: 32 registers, tiles of 4 rows x 4 tokens.
#define QT_TARGET PC_TARGET_AVX512
#define QT_NAME(x) x##_vnni
#define QT_VNNI 1
#define QT_RM 4
#define QT_RN 4
#include "matmul_quant_simd.h"
#endif

pc_mm_kernel pc_mm_quant_kernel(int type, pc_isa_t isa, int64_t T, int64_t *row_unit) {
    (void)T;
    if (type != PC_Q8_0 && type != PC_Q4_0 && type != PC_Q5_0 && type != PC_Q4_1 && type != PC_Q5_1 &&
        type != PC_Q4_K && type != PC_Q5_K && type != PC_Q6_K)
        return NULL;
#if PC_HAVE_X86_SIMD
    if (isa >= PC_ISA_AVX512) {
        *row_unit = 4;
        switch (type) {
            case PC_Q8_0: return mm_q8_0_vnni;
            case PC_Q4_0: return mm_q4_0_vnni;
            case PC_Q5_0: return mm_q5_0_vnni;
            case PC_Q4_1: return mm_q4_1_vnni;
            case PC_Q5_1: return mm_q5_1_vnni;
            case PC_Q4_K: return mm_q4_K_vnni;
            case PC_Q5_K: return mm_q5_K_vnni;
            default: return mm_q6_K_vnni;
        }
    }
    if (isa >= PC_ISA_AVX2) {
        *row_unit = type == PC_Q8_0 ? 4 : 2;
        switch (type) {
            case PC_Q8_0: return mm_q8_0_avx2;
            case PC_Q4_0: return mm_q4_0_avx2;
            case PC_Q5_0: return mm_q5_0_avx2;
            case PC_Q4_1: return mm_q4_1_avx2;
            case PC_Q5_1: return mm_q5_1_avx2;
            case PC_Q4_K: return mm_q4_K_avx2;
            case PC_Q5_K: return mm_q5_K_avx2;
            default: return mm_q6_K_avx2;
        }
    }
#endif
    (void)isa;
    *row_unit = 1;
    return mm_quant_scalar;
}
