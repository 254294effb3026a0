// x86 helpers shared by the matmul, attention and element-wise kernels (compiled only for x86):
// horizontal reductions, the vector exp, an 8x8 transpose. Defined once here.
#pragma once
#include <immintrin.h>
#include "common.h"

/** In-register transpose of an 8x8 block of floats. */
PC_TARGET_AVX2 PC_INLINE void pc_transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/** Lane j of the result = horizontal sum of a[j], j < 16 (a transposing reduction tree). */
PC_TARGET_AVX512 PC_INLINE __m512 pc_sums_of_16(const __m512 *a) {
    // pairs -> within each 128-bit lane, [a2i(e0+e2), a2i+1(e0+e2), a2i(e1+e3), a2i+1(e1+e3)]
    __m512 b[8];
    for (int i = 0; i < 8; i++)
        b[i] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]), _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    // quads -> per 128-bit lane, the lane-partial sums of a[4i .. 4i + 3]
    __m512 c[4];
    for (int i = 0; i < 4; i++) {
        const __m512d x = _mm512_castps_pd(b[2 * i]), y = _mm512_castps_pd(b[2 * i + 1]);
        c[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    // add the four 128-bit lanes of each c[i], placing its totals in lane i
    const __m512 e0 = _mm512_add_ps(_mm512_shuffle_f32x4(c[0], c[1], 0x88), _mm512_shuffle_f32x4(c[0], c[1], 0xdd));
    const __m512 e1 = _mm512_add_ps(_mm512_shuffle_f32x4(c[2], c[3], 0x88), _mm512_shuffle_f32x4(c[2], c[3], 0xdd));
    return _mm512_add_ps(_mm512_shuffle_f32x4(e0, e1, 0x88), _mm512_shuffle_f32x4(e0, e1, 0xdd));
}

/** Sum of the 8 lanes. */
PC_TARGET_AVX2 PC_INLINE float pc_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/** Largest of the 8 lanes. */
PC_TARGET_AVX2 PC_INLINE float pc_hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

// The vector exp (Cephes expf): e^x = 2^n * e^r, n = round(x / ln 2), r = x - n ln 2 (ln 2 in two
// parts so that n * C1 is exact), e^r = 1 + r + r^2 * P(r); within 2 ulp of expf on its domain.
#define PC_EXP_HI 88.3762626647949f  // above: the result overflows
#define PC_EXP_LO -87.3365447505531f // below: the result is subnormal
#define PC_EXP_LOG2E 1.44269504088896341f
#define PC_EXP_C1 0.693359375f
#define PC_EXP_C2 -2.12194440e-4f
#define PC_EXP_P0 1.9875691500e-4f
#define PC_EXP_P1 1.3981999507e-3f
#define PC_EXP_P2 8.3334519073e-3f
#define PC_EXP_P3 4.1665795894e-2f
#define PC_EXP_P4 1.6666665459e-1f
#define PC_EXP_P5 5.0000001201e-1f

/** e^x for x in [PC_EXP_LO, PC_EXP_HI] (callers clamp or blend outside it). */
PC_TARGET_AVX2 PC_INLINE __m256 pc_exp8(__m256 x) {
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(PC_EXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(PC_EXP_C1), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(PC_EXP_C2), r);
    __m256 p = _mm256_set1_ps(PC_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PC_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PC_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PC_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PC_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(PC_EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/** The same e^x, 16 lanes (2^n by scalef). */
PC_TARGET_AVX512 PC_INLINE __m512 pc_exp16(__m512 x) {
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(PC_EXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(PC_EXP_C1), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(PC_EXP_C2), r);
    __m512 p = _mm512_set1_ps(PC_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PC_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PC_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PC_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PC_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(PC_EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}
