// x86 SIMD attention: vector helpers per ISA, then attention_simd.h instantiated for AVX2
// (8 floats per vector) and AVX-512 (16 floats per vector).
#include "attention.h"

#if PC_HAVE_X86_SIMD
#include <immintrin.h>
#include "simd_x86.h"
#include <math.h>

#include "threadpool.h"

// Masked scores are -inf; a clamp keeps them inside the vector exp's domain (the result is then
// below 2^-125, and the lane is zeroed by keep() anyway).
// ---------------------------------------------------------------------------------------------
// AVX2

PC_TARGET_AVX2 static inline float hmax_avx2(__m256 v) { return pc_hmax8(v); }
PC_TARGET_AVX2 static inline float hsum_avx2(__m256 v) { return pc_hsum8(v); }
PC_TARGET_AVX2 static inline __m256 exp_avx2(__m256 x) { return pc_exp8(_mm256_max_ps(x, _mm256_set1_ps(PC_EXP_LO))); }

PC_TARGET_AVX2 static inline __m256 keep_avx2(__m256 v, unsigned bits, __m256 fill) {
    const __m256i lane = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i m = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)(bits & 0xff)), lane), lane);
    return _mm256_blendv_ps(fill, v, _mm256_castsi256_ps(m));
}

/** Lane j of the result = horizontal sum of a[j], j < 8. */
PC_TARGET_AVX2 static inline __m256 sums_of_avx2(const __m256 *a) {
    const __m256 u0 = _mm256_hadd_ps(a[0], a[1]), u1 = _mm256_hadd_ps(a[2], a[3]);
    const __m256 u2 = _mm256_hadd_ps(a[4], a[5]), u3 = _mm256_hadd_ps(a[6], a[7]);
    const __m256 w0 = _mm256_hadd_ps(u0, u1), w1 = _mm256_hadd_ps(u2, u3);
    return _mm256_add_ps(_mm256_permute2f128_ps(w0, w1, 0x20), _mm256_permute2f128_ps(w0, w1, 0x31));
}

#define AT_TARGET PC_TARGET_AVX2
#define AT_NAME(x) x##_avx2
#define AT_W 8
#define V __m256
#define VZERO() _mm256_setzero_ps()
#define VSET1(x) _mm256_set1_ps(x)
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define AT_QR 2
#define AT_KV 4
#define AT_PR 2
#define AT_DV 4
#include "attention_simd.h"
#undef AT_TARGET
#undef AT_NAME
#undef AT_W
#undef V
#undef VZERO
#undef VSET1
#undef VLOAD
#undef VSTORE
#undef VFMA
#undef VMUL
#undef VADD
#undef VMAX
#undef AT_QR
#undef AT_KV
#undef AT_PR
#undef AT_DV

// ---------------------------------------------------------------------------------------------
// AVX-512

PC_TARGET_AVX512 static inline float hmax_512(__m512 v) { return _mm512_reduce_max_ps(v); }
PC_TARGET_AVX512 static inline float hsum_512(__m512 v) { return _mm512_reduce_add_ps(v); }

PC_TARGET_AVX512 static inline __m512 exp_512(__m512 x) { return pc_exp16(_mm512_max_ps(x, _mm512_set1_ps(PC_EXP_LO))); }

PC_TARGET_AVX512 static inline __m512 keep_512(__m512 v, unsigned bits, __m512 fill) {
    return _mm512_mask_blend_ps((__mmask16)(bits & 0xffff), fill, v);
}

/** The AVX-512 instantiation's horizontal sums: the transposing tree shared with the matmul. */
PC_TARGET_AVX512 static inline __m512 sums_of_512(const __m512 *a) { return pc_sums_of_16(a); }

#define AT_TARGET PC_TARGET_AVX512
#define AT_NAME(x) x##_512
#define AT_W 16
#define V __m512
#define VZERO() _mm512_setzero_ps()
#define VSET1(x) _mm512_set1_ps(x)
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define AT_QR 4
#define AT_KV 4
#define AT_PR 4
#define AT_DV 4
#include "attention_simd.h"

// ---------------------------------------------------------------------------------------------
// K transposition for the packed path.

/** kt[h, d, k0 + j] = k[h, k0 + j, d] for j < PC_ATT_KB; keys >= nRows[h] become 0.
 *  Requires headDim % 8 == 0. */
PC_TARGET_AVX2 void pc_att_widen_avx2(const uint16_t *src, int64_t n, float *dst) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

PC_TARGET_AVX2 void pc_att_transpose_k_avx2(pc_att_job *job, int h, int64_t k0) {
    const pc_attn_args *a = job->a;
    const int hd = a->headDim;
    const int64_t nr = a->nRows[h];
    const float *kh = a->k ? a->k + (int64_t)h * a->cap * hd : NULL;
    const uint16_t *kh16 = a->k16 ? a->k16 + (int64_t)h * a->cap * hd : NULL;
    float *kt = job->kt + (int64_t)h * hd * job->ldkt;
    for (int jb = 0; jb < PC_ATT_KB; jb += 8) {
        for (int db = 0; db < hd; db += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) {
                const int64_t j = k0 + jb + i;
                r[i] = j >= nr ? _mm256_setzero_ps()
                       : kh ? _mm256_loadu_ps(kh + j * hd + db)
                            : _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kh16 + j * hd + db)));
            }
            pc_transpose8(r);
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(kt + (int64_t)(db + i) * job->ldkt + k0 + jb, r[i]);
        }
    }
}

#endif
