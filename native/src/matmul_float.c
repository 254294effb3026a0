// Matmul kernels for floating-point weights: F32, F16 and BF16.
//
// The activations arrive already rounded to the weight type's precision (convert.c) but held
// as f32, and weights are widened to f32 on load. The product of two f16 (or two bf16) values
// is exact in f32, so multiplying in f32 with FMA computes the same dot products as ggml's
// f16/bf16 kernels, up to summation order.
//
// Two kernel shapes:
//  * "dot" kernels: a register tile of up to 4 rows x 4 tokens (AVX-512; 3 x 4 with AVX2's 16
//    registers), each accumulator a vector along k, reduced horizontally at the end. Every
//    weight vector loaded (and widened) serves 4 tokens, every activation vector 4 rows. The
//    loops are cache blocked (see DOT_BODY) and prefetch w ahead for the memory-bound GEMV of
//    decode. With AVX-512 this kernel is used for every T.
//  * "packed" kernel (AVX2, T >= SMALL_T): 64 rows of w are widened to f32 and transposed once
//    into a panel [K, 64] in per-thread scratch; the micro-kernel keeps a 16-row x 6-token block
//    of y in registers, loading 2 panel vectors and broadcasting 6 activations per k, with no
//    horizontal sums. The panel is reused for every token of the thread.
#include <math.h>

#include "matmul.h"
#include "threadpool.h"

#if PC_HAVE_X86_SIMD
#include <immintrin.h>
#include "simd_x86.h"
#endif

#define PANEL 64                 // rows per packed panel
#ifndef SMALL_T
#define SMALL_T 64               // AVX2: below this many tokens the dot kernel is used
#endif
#define DOT_W_BYTES (128 * 1024) // dot kernels: bytes of w per row block (L2)
#ifndef DOT_X_BYTES
#define DOT_X_BYTES (256 * 1024) // dot kernels: bytes of activations per token block (L2)
#endif
#define PF_BYTES 8192            // dot kernels prefetch w this far ahead (tuned on Zen 4)

/** Widens element k of a weight row of `type` to f32. row: [K] elements of type. */
PC_INLINE float w_elem(int type, const uint8_t *row, int64_t k) {
    switch (type) {
        case PC_F16: return pc_fp16_to_fp32(((const uint16_t *)row)[k]);
        case PC_BF16: return pc_bf16_to_fp32(((const uint16_t *)row)[k]);
        default: return ((const float *)row)[k];
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar kernel (non-x86 or forced): widen a few rows into scratch, then plain dot products
// with 8 independent partial sums (lets the compiler vectorise with SSE/NEON).

static void mm_float_scalar(const pc_mm_job *job, int ith, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    const int64_t K = job->nIn;
    float *wf = (float *)pc_thread_scratch(ith, PC_SLOT_PANEL, (size_t)K * 4 * sizeof(float));
    if (!wf) return;
    for (int64_t r = r0; r < r1; r += 4) {
        const int nr = (int)PC_MIN(4, r1 - r);
        for (int i = 0; i < nr; i++) {
            const uint8_t *row = job->w + (size_t)(r + i) * job->row_bytes;
            for (int64_t k = 0; k < K; k++) wf[i * K + k] = w_elem(job->type, row, k);
        }
        for (int64_t t = t0; t < t1; t++) {
            const float *xt = job->acts.f + t * job->acts.ldf;
            for (int i = 0; i < nr; i++) {
                const float *wr = wf + i * K;
                float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                int64_t k = 0;
                for (; k + 8 <= K; k += 8)
                    for (int l = 0; l < 8; l++) s[l] += wr[k + l] * xt[k + l];
                for (; k < K; k++) s[0] += wr[k] * xt[k];
                job->y[t * job->nOut + r + i] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
            }
        }
    }
}

#if PC_HAVE_X86_SIMD
// ---------------------------------------------------------------------------------------------
// Loads (shared by AVX2 and AVX-512 code).

/** 8 weights of a row starting at element k, widened to f32. row: [>= k + 8] of type. */
PC_TARGET_AVX2 PC_INLINE __m256 w_load8(int type, const uint8_t *row, int64_t k) {
    switch (type) {
        case PC_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + k)));
        case PC_BF16:
            return _mm256_castsi256_ps(_mm256_slli_epi32(
                _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + k))), 16));
        default: return _mm256_loadu_ps((const float *)row + k);
    }
}


/** Widens and transposes rows [r, r + nr) (nr <= 64) of w into panel[k * 64 + i]; panel
 *  columns nr..63 are zero. w rows: `row_bytes` apart, K elements each; panel: [K, 64]. */
PC_TARGET_AVX2 PC_INLINE void pack_panel(int type, const uint8_t *w, size_t row_bytes, int nr, int64_t K, float *panel) {
    for (int rb = 0; rb < PANEL; rb += 8) {
        const int nrr = PC_MIN(8, nr - rb);
        if (nrr <= 0) {
            for (int64_t k = 0; k < K; k++) _mm256_store_ps(panel + k * PANEL + rb, _mm256_setzero_ps());
            continue;
        }
        const uint8_t *rows[8];
        for (int i = 0; i < 8; i++) rows[i] = w + (size_t)(rb + PC_MIN(i, nrr - 1)) * row_bytes;
        int64_t k = 0;
        for (; k + 8 <= K; k += 8) {
            __m256 v[8];
            for (int i = 0; i < 8; i++) v[i] = i < nrr ? w_load8(type, rows[i], k) : _mm256_setzero_ps();
            pc_transpose8(v);
            for (int j = 0; j < 8; j++) _mm256_store_ps(panel + (k + j) * PANEL + rb, v[j]);
        }
        for (; k < K; k++)
            for (int i = 0; i < 8; i++) panel[k * PANEL + rb + i] = i < nrr ? w_elem(type, rows[i], k) : 0.0f;
    }
}

#define PACK_FN(NAME, TYPE)                                                                       \
    PC_TARGET_AVX2 static void NAME(const uint8_t *w, size_t row_bytes, int nr, int64_t K, float *panel) { \
        pack_panel(TYPE, w, row_bytes, nr, K, panel);                                             \
    }
PACK_FN(pack_f32, PC_F32)
PACK_FN(pack_f16, PC_F16)
PACK_FN(pack_bf16, PC_BF16)

typedef void (*pack_fn)(const uint8_t *w, size_t row_bytes, int nr, int64_t K, float *panel);

static pack_fn pack_for(int type) {
    return type == PC_F16 ? pack_f16 : type == PC_BF16 ? pack_bf16 : pack_f32;
}

// ---------------------------------------------------------------------------------------------
// AVX2 kernels.

/** Dot tile: y[j * ldy + i] = dot(w row i, x row j) for i < RM, j < RN.
 *  w: RM rows, row_bytes apart, K elements; x: [RN, ldx]; y: [RN, ldy]. */
PC_TARGET_AVX2 PC_INLINE void dot_tile_avx2(int type, int RM, int RN, const uint8_t *w, size_t row_bytes,
                                            const float *x, int64_t ldx, int64_t K, float *y, int64_t ldy) {
    __m256 acc[3][4];
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) acc[i][j] = _mm256_setzero_ps();
    int64_t k = 0;
    // linear prefetch of w, as in dot_tile_512
    const char *pf = (const char *)w + PF_BYTES;
    const int64_t pf_step = (RM * (int64_t)row_bytes + 63) / 64 / PC_MAX(1, K / 8) + 1;
    for (; k + 8 <= K; k += 8, pf += 64 * pf_step) {
        __m256 wv[3];
        for (int64_t l = 0; l < pf_step; l++) _mm_prefetch(pf + 64 * l, _MM_HINT_T1);
        for (int i = 0; i < RM; i++) wv[i] = w_load8(type, w + i * row_bytes, k);
        for (int j = 0; j < RN; j++) {
            const __m256 xv = _mm256_loadu_ps(x + j * ldx + k);
            for (int i = 0; i < RM; i++) acc[i][j] = _mm256_fmadd_ps(wv[i], xv, acc[i][j]);
        }
    }
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) {
            float s = pc_hsum8(acc[i][j]);
            for (int64_t kk = k; kk < K; kk++) s += w_elem(type, w + i * row_bytes, kk) * x[j * ldx + kk];
            y[j * ldy + i] = s;
        }
}

// Cache blocking: tokens are taken in blocks whose activations (DOT_X_BYTES) stay in L2, and
// within a token block, rows in blocks of about DOT_W_BYTES of w that stay in L2 while every
// token of the block passes over them. So w is read from memory once per token block (not
// once per group of MAXRN tokens) and x once per row block from L2.
#define DOT_BODY(TILE, MAXRM, MAXRN)                                                               \
    const int64_t K = job->nIn, ldx = job->acts.ldf, ldy = job->nOut;                               \
    const int64_t rblock = PC_MAX(MAXRM, DOT_W_BYTES / (int64_t)job->row_bytes / MAXRM * MAXRM);    \
    const int64_t tblock = PC_MAX(MAXRN, DOT_X_BYTES / (K * 4) / MAXRN * MAXRN);                   \
    for (int64_t tb = t0; tb < t1; tb += tblock)                                                   \
    for (int64_t rb = r0; rb < r1; rb += rblock) {                                                  \
        const int64_t re = PC_MIN(r1, rb + rblock), te = PC_MIN(t1, tb + tblock);                   \
        for (int64_t t = tb; t < te; t += MAXRN) {                                                  \
            const int rn = (int)PC_MIN(MAXRN, te - t);                                              \
            for (int64_t r = rb; r < re; r += MAXRM) {                                              \
                const int rm = (int)PC_MIN(MAXRM, re - r);                                          \
                const uint8_t *wr = job->w + (size_t)r * job->row_bytes;                            \
                const float *xr = job->acts.f + t * ldx;                                            \
                float *yr = job->y + t * ldy + r;                                                   \
                switch (rm * 8 + rn) {                                                              \
                    DOT_CASES(TILE)                                                                 \
                }                                                                                   \
            }                                                                                       \
        }                                                                                           \
    }

#define DOT_CASE(TILE, RM, RN) \
    case RM * 8 + RN: TILE(TYPE, RM, RN, wr, job->row_bytes, xr, ldx, K, yr, ldy); break;

#define DOT_CASES_3x4(TILE)                                                                          \
    DOT_CASE(TILE, 1, 1) DOT_CASE(TILE, 1, 2) DOT_CASE(TILE, 1, 3) DOT_CASE(TILE, 1, 4)               \
    DOT_CASE(TILE, 2, 1) DOT_CASE(TILE, 2, 2) DOT_CASE(TILE, 2, 3) DOT_CASE(TILE, 2, 4)               \
    DOT_CASE(TILE, 3, 1) DOT_CASE(TILE, 3, 2) DOT_CASE(TILE, 3, 3) DOT_CASE(TILE, 3, 4)
#define DOT_CASES_4x4(TILE) \
    DOT_CASES_3x4(TILE) DOT_CASE(TILE, 4, 1) DOT_CASE(TILE, 4, 2) DOT_CASE(TILE, 4, 3) DOT_CASE(TILE, 4, 4)

#define DOT_CASES DOT_CASES_3x4
#define DOT_KERNEL_AVX2(NAME, T_)                                                                  \
    PC_TARGET_AVX2 static void NAME(const pc_mm_job *job, int ith, int64_t r0, int64_t r1, int64_t t0, int64_t t1) { \
        enum { TYPE = T_ };                                                                         \
        (void)ith;                                                                                  \
        DOT_BODY(dot_tile_avx2, 3, 4)                                                               \
    }
DOT_KERNEL_AVX2(dot_f32_avx2, PC_F32)
DOT_KERNEL_AVX2(dot_f16_avx2, PC_F16)
DOT_KERNEL_AVX2(dot_bf16_avx2, PC_BF16)
#undef DOT_CASES

/** Packed micro-kernel (AVX2): y block of NV*8 rows x NT tokens (NV <= 2, NT <= 6).
 *  panel: [K, 64] (columns used: 0..NV*8-1); x: [NT, ldx]; y: [NT, ldy]; nvalid rows stored. */
PC_TARGET_AVX2 PC_INLINE void mk_avx2(int NV, int NT, const float *panel, const float *x, int64_t ldx, int64_t K,
                                      float *y, int64_t ldy, int nvalid) {
    __m256 acc[2][6];
    for (int v = 0; v < NV; v++)
        for (int t = 0; t < NT; t++) acc[v][t] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        const float *p = panel + k * PANEL;
        __m256 wv[2];
        for (int v = 0; v < NV; v++) wv[v] = _mm256_load_ps(p + 8 * v);
        for (int t = 0; t < NT; t++) {
            const __m256 b = _mm256_set1_ps(x[t * ldx + k]); // (not broadcast_ss: its pointer argument defeats register allocation of acc)
            for (int v = 0; v < NV; v++) acc[v][t] = _mm256_fmadd_ps(wv[v], b, acc[v][t]);
        }
    }
    for (int t = 0; t < NT; t++)
        for (int v = 0; v < NV; v++) {
            const int n = nvalid - 8 * v;
            float *dst = y + t * ldy + 8 * v;
            if (n >= 8) _mm256_storeu_ps(dst, acc[v][t]);
            else if (n > 0) {
                const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
                _mm256_maskstore_ps(dst, m, acc[v][t]);
            }
        }
}

PC_TARGET_AVX2 static void mk_avx2_dispatch(int nt, const float *panel, const float *x, int64_t ldx, int64_t K,
                                            float *y, int64_t ldy, int nvalid) {
    const int nv = nvalid > 8 ? 2 : 1;
    switch (nv * 8 + nt) {
#define MK(NV, NT) case NV * 8 + NT: mk_avx2(NV, NT, panel, x, ldx, K, y, ldy, nvalid); break;
        MK(1, 1) MK(1, 2) MK(1, 3) MK(1, 4) MK(1, 5) MK(1, 6)
        MK(2, 1) MK(2, 2) MK(2, 3) MK(2, 4) MK(2, 5) MK(2, 6)
#undef MK
    }
}

PC_TARGET_AVX2 static void packed_avx2(const pc_mm_job *job, int ith, int64_t r0, int64_t r1, int64_t t0, int64_t t1) {
    const int64_t K = job->nIn, ldx = job->acts.ldf, ldy = job->nOut;
    float *panel = (float *)pc_thread_scratch(ith, PC_SLOT_PANEL, (size_t)K * PANEL * sizeof(float));
    if (!panel) return;
    const pack_fn pack = pack_for(job->type);
    for (int64_t r = r0; r < r1; r += PANEL) {
        const int nr = (int)PC_MIN(PANEL, r1 - r);
        pack(job->w + (size_t)r * job->row_bytes, job->row_bytes, nr, K, panel);
        for (int64_t t = t0; t < t1; t += 6) {
            const int nt = (int)PC_MIN(6, t1 - t);
            const float *xr = job->acts.f + t * ldx;
            for (int sub = 0; sub < nr; sub += 16)
                mk_avx2_dispatch(nt, panel + sub, xr, ldx, K, job->y + t * ldy + r + sub, ldy, PC_MIN(16, nr - sub));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AVX-512 kernels.

/** 16 weights of a row from element k, widened; `m` selects the lanes read (tail). */
PC_TARGET_AVX512 PC_INLINE __m512 w_load16(int type, const uint8_t *row, int64_t k, __mmask16 m) {
    switch (type) {
        case PC_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + k));
        case PC_BF16:
            return _mm512_castsi512_ps(
                _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + k)), 16));
        default: return _mm512_maskz_loadu_ps(m, (const float *)row + k);
    }
}


/** Dot tile, AVX-512: as dot_tile_avx2 with RM, RN <= 4 and masked tails. */
PC_TARGET_AVX512 PC_INLINE void dot_tile_512(int type, int RM, int RN, const uint8_t *w, size_t row_bytes,
                                             const float *x, int64_t ldx, int64_t K, float *y, int64_t ldy) {
    __m512 acc[4][4];
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) acc[i][j] = _mm512_setzero_ps();
    int64_t k = 0;
    // Decode streams w from DRAM. The RM rows are adjacent, so the tile reads one linear range
    // of RM * row_bytes; prefetch that range PF_BYTES ahead into L2, a share per iteration (the
    // hardware prefetcher alone loses track of many short row streams; on Zen 4 this took the
    // F16 GEMV from ~50% to ~80% of a plain streaming read, and L2 beat L1 or NTA hints).
    const char *pf = (const char *)w + PF_BYTES;
    const int64_t pf_step = (RM * (int64_t)row_bytes + 63) / 64 / PC_MAX(1, K / 16) + 1; // lines per iteration
    for (; k + 16 <= K; k += 16, pf += 64 * pf_step) {
        __m512 wv[4];
        for (int64_t l = 0; l < pf_step; l++) _mm_prefetch(pf + 64 * l, _MM_HINT_T1);
        for (int i = 0; i < RM; i++) wv[i] = w_load16(type, w + i * row_bytes, k, 0xffff);
        for (int j = 0; j < RN; j++) {
            const __m512 xv = _mm512_loadu_ps(x + j * ldx + k);
            for (int i = 0; i < RM; i++) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
        }
    }
    if (k < K) {
        const __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
        __m512 wv[4];
        for (int i = 0; i < RM; i++) wv[i] = w_load16(type, w + i * row_bytes, k, m);
        for (int j = 0; j < RN; j++) {
            const __m512 xv = _mm512_maskz_loadu_ps(m, x + j * ldx + k);
            for (int i = 0; i < RM; i++) acc[i][j] = _mm512_fmadd_ps(wv[i], xv, acc[i][j]);
        }
    }
    if (RM == 4 && RN == 4) {
        // Full tile: reduce the 16 accumulators together (one transposing reduction instead
        // of 16 horizontal sums); lane 4j + i holds y[j, i].
        __m512 a[16];
        for (int j = 0; j < 4; j++)
            for (int i = 0; i < 4; i++) a[4 * j + i] = acc[i][j];
        const __m512 sums = pc_sums_of_16(a);
        _mm_storeu_ps(y, _mm512_extractf32x4_ps(sums, 0));
        _mm_storeu_ps(y + ldy, _mm512_extractf32x4_ps(sums, 1));
        _mm_storeu_ps(y + 2 * ldy, _mm512_extractf32x4_ps(sums, 2));
        _mm_storeu_ps(y + 3 * ldy, _mm512_extractf32x4_ps(sums, 3));
        return;
    }
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) y[j * ldy + i] = _mm512_reduce_add_ps(acc[i][j]);
}

#define DOT_CASES DOT_CASES_4x4
#define DOT_KERNEL_512(NAME, T_)                                                                   \
    PC_TARGET_AVX512 static void NAME(const pc_mm_job *job, int ith, int64_t r0, int64_t r1, int64_t t0, int64_t t1) { \
        enum { TYPE = T_ };                                                                         \
        (void)ith;                                                                                  \
        DOT_BODY(dot_tile_512, 4, 4)                                                                \
    }
DOT_KERNEL_512(dot_f32_512, PC_F32)
DOT_KERNEL_512(dot_f16_512, PC_F16)
DOT_KERNEL_512(dot_bf16_512, PC_BF16)
#undef DOT_CASES

#endif // PC_HAVE_X86_SIMD

pc_mm_kernel pc_mm_float_kernel(int type, pc_isa_t isa, int64_t T, int64_t *row_unit) {
    if (type != PC_F32 && type != PC_F16 && type != PC_BF16) return NULL;
#if PC_HAVE_X86_SIMD
    if (isa >= PC_ISA_AVX512) {
        // With 32 registers the 4 x 4 dot tile, cache blocked, matched or beat the packed
        // kernel at every T measured on Zen 4 (1 to 2048 tokens), so it is used throughout.
        *row_unit = 4;
        return type == PC_F16 ? dot_f16_512 : type == PC_BF16 ? dot_bf16_512 : dot_f32_512;
    }
    if (isa >= PC_ISA_AVX2) {
        if (T < SMALL_T) {
            *row_unit = 3;
            return type == PC_F16 ? dot_f16_avx2 : type == PC_BF16 ? dot_bf16_avx2 : dot_f32_avx2;
        }
        *row_unit = 16;
        return packed_avx2;
    }
#endif
    (void)isa;
    (void)T;
    *row_unit = 4;
    return mm_float_scalar;
}
