// Activation conversion to the vec dot types, bit-identical to what ggml-cpu's from_float
// produces on x86-64 (AVX/AVX2/AVX-512 builds, i.e. every x64 llama.cpp binary but SSE4.2):
//   F16   F16C round-to-nearest-even          BF16  ggml_compute_fp32_to_bf16
//   Q8_0  arch/x86 quantize_row_q8_0: d = amax / 127 stored as fp16, q = round-half-even
//         (x * (127 / amax)) -- not quantize_row_q8_0_ref, which scales by 1 / d and rounds
//         half away from zero (the two differ in rare last-bit cases)
//   Q8_1  the same quants, plus s = fp16(d * sum(q))
//   Q8_K  quantize_row_q8_K_ref (x86 uses the reference code for it)
//
// The build uses -ffp-contract=off so that no multiply-add below is fused behind our back:
// fusing would change the rounding of x * id and break bit-identity with ggml.
#include "convert.h"

#include <math.h>

#if PC_HAVE_X86_SIMD
#include <immintrin.h>
#endif

int pc_vec_dot_type(int wtype) {
    switch (wtype) {
        case PC_F32: return PC_F32;
        case PC_F16: return PC_F16;
        case PC_BF16: return PC_BF16;
        case PC_Q8_0:
        case PC_Q4_0:
        case PC_Q5_0: return PC_Q8_0;
        case PC_Q4_1:
        case PC_Q5_1: return PC_Q8_1;
        case PC_Q4_K:
        case PC_Q5_K:
        case PC_Q6_K: return PC_Q8_K;
        default: return -1;
    }
}

static size_t align64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t pc_acts_bytes(int vtype, int64_t T, int64_t n) {
    switch (vtype) {
        case PC_F16:
        case PC_BF16: return align64((size_t)(T * n) * 4);
        case PC_Q8_0:
        case PC_Q8_1:
            return align64((size_t)(T * n)) + align64((size_t)(T * (n / 32)) * 4) * 2 +
                   align64((size_t)(T * (n / 32)) * 2);
        case PC_Q8_K:
            return align64((size_t)(T * n)) + align64((size_t)(T * (n / 256)) * 4) +
                   align64((size_t)(T * (n / 16)) * 2);
        default: return 0;
    }
}

void pc_acts_init(pc_acts_t *a, int vtype, const float *x, int64_t T, int64_t n, void *mem) {
    memset(a, 0, sizeof *a);
    a->type = vtype;
    a->T = T;
    a->n = n;
    uint8_t *p = (uint8_t *)mem;
    switch (vtype) {
        case PC_F32:
            a->f = x;
            a->ldf = n;
            break;
        case PC_F16:
        case PC_BF16:
            a->f = (const float *)p;
            a->ldf = n;
            break;
        case PC_Q8_0:
        case PC_Q8_1:
        case PC_Q8_K: {
            const int64_t nd = vtype == PC_Q8_K ? n / 256 : n / 32;
            a->qs = (int8_t *)p;
            p += align64((size_t)(T * n));
            a->d = (float *)p;
            p += align64((size_t)(T * nd) * 4);
            if (vtype == PC_Q8_1) {
                a->s = (float *)p;
                p += align64((size_t)(T * nd) * 4);
            }
            a->sums = (int16_t *)p;
            break;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar definitions.

/** out[i] = x[i] rounded to f16 (RNE) and widened back. x, out: [n] */
static void round_f16_scalar(const float *x, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = pc_fp16_to_fp32(pc_fp32_to_fp16(x[i]));
}

/** out[i] = x[i] rounded to bf16 as ggml does, widened back. x, out: [n] */
static void round_bf16_scalar(const float *x, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = pc_bf16_to_fp32(pc_fp32_to_bf16(x[i]));
}

/** ggml's nearest_int: round to nearest even through the 1.5 * 2^23 trick. */
static inline int nearest_int(float fval) {
    const float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

/** x86 quantize_row_q8_0 / q8_1. x: [n]; qs: [n]; d, sums, s: [n/32] (s may be NULL). */
static void q8_0_scalar(const float *x, int8_t *qs, float *d, int16_t *sums, float *s, int64_t n) {
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) amax = PC_MAX(amax, fabsf(xb[j]));
        const float dd = amax / 127.f;
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        d[b] = pc_fp16_to_fp32(pc_fp32_to_fp16(dd));
        int sum = 0;
        for (int j = 0; j < 32; j++) {
            const int q = nearest_int(xb[j] * id); // |x * id| <= 127: the trick is exact
            qs[b * 32 + j] = (int8_t)PC_MAX(-128, PC_MIN(127, q));
            sum += q;
        }
        sums[b] = (int16_t)sum;
        if (s) s[b] = pc_fp16_to_fp32(pc_fp32_to_fp16(dd * (float)sum));
    }
}


/** quantize_row_q8_K_ref. x: [n]; qs: [n]; d: [n/256]; bsums: [n/16] */
static void q8_K_scalar(const float *x, int8_t *qs, float *d, int16_t *bsums, int64_t n) {
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *xb = x + b * QK_K;
        int8_t *q = qs + b * QK_K;
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; j++) {
            const float ax = fabsf(xb[j]);
            if (ax > amax) {
                amax = ax;
                max = xb[j];
            }
        }
        if (!amax) {
            d[b] = 0;
            memset(q, 0, QK_K);
            for (int j = 0; j < QK_K / 16; j++) bsums[b * 16 + j] = 0;
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) {
            const int v = nearest_int(iscale * xb[j]);
            q[j] = (int8_t)PC_MIN(127, v);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += q[j * 16 + i];
            bsums[b * 16 + j] = (int16_t)sum;
        }
        d[b] = 1 / iscale;
    }
}

// ---------------------------------------------------------------------------------------------
// AVX2 versions: same bits, faster (activation conversion is O(T * n), up to ~10% of a large
// matmul when done in scalar code).

#if PC_HAVE_X86_SIMD
PC_TARGET_AVX2 static void round_f16_avx2(const float *x, float *out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
    }
    round_f16_scalar(x + i, out + i, n - i);
}

PC_TARGET_AVX2 static void round_bf16_avx2(const float *x, float *out, int64_t n) {
    int64_t i = 0;
    const __m256i lsb = _mm256_set1_epi32(1);
    const __m256i bias = _mm256_set1_epi32(0x7fff);
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
    const __m256i inf = _mm256_set1_epi32(0x7f800000);
    for (; i + 8 <= n; i += 8) {
        const __m256i u = _mm256_loadu_si256((const __m256i *)(x + i));
        // rounded = (u + 0x7fff + ((u >> 16) & 1)) & 0xffff0000
        __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), lsb)));
        r = _mm256_and_si256(r, hi);
        // NaN: keep the top half and set the quiet bit (bit 6 of the bf16 = bit 22 of the f32)
        const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absmask), inf);
        const __m256i qn = _mm256_or_si256(_mm256_and_si256(u, hi), _mm256_set1_epi32(64 << 16));
        r = _mm256_blendv_epi8(r, qn, nan);
        _mm256_storeu_si256((__m256i *)(out + i), r);
    }
    round_bf16_scalar(x + i, out + i, n - i);
}

PC_TARGET_AVX2 static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

PC_TARGET_AVX2 static inline int hsum8_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/** Packs four vectors of 8 int32 (values in int8 range) to 32 int8 in order. */
PC_TARGET_AVX2 static inline __m256i pack_i32x32_to_i8(__m256i a, __m256i b, __m256i c, __m256i d) {
    const __m256i ab = _mm256_packs_epi32(a, b); // a0-3 b0-3 a4-7 b4-7
    const __m256i cd = _mm256_packs_epi32(c, d);
    const __m256i abcd = _mm256_packs_epi16(ab, cd); // per lane: a0-3 b0-3 c0-3 d0-3 | a4-7 ...
    return _mm256_permutevar8x32_epi32(abcd, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

PC_TARGET_AVX2 static void q8_0_avx2(const float *x, int8_t *qs, float *d, int16_t *sums, float *s, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / 32; b++) {
        const float *xb = x + b * 32;
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[k]));
        }
        const float amax = hmax8(m);
        const float dd = amax / 127.f;
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        d[b] = pc_fp16_to_fp32(pc_fp32_to_fp16(dd));
        const __m256 mul = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        const int sum = hsum8_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
        sums[b] = (int16_t)sum;
        if (s) s[b] = pc_fp16_to_fp32(pc_fp32_to_fp16(dd * (float)sum));
        _mm256_storeu_si256((__m256i *)(qs + b * 32), pack_i32x32_to_i8(q[0], q[1], q[2], q[3]));
    }
}

PC_TARGET_AVX2 static void q8_K_avx2(const float *x, int8_t *qs, float *d, int16_t *bsums, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / QK_K; b++) {
        const float *xb = x + b * QK_K;
        int8_t *q = qs + b * QK_K;
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < QK_K; k += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + k)));
        const float amax = hmax8(m);
        if (!amax) {
            d[b] = 0;
            memset(q, 0, QK_K);
            for (int j = 0; j < QK_K / 16; j++) bsums[b * 16 + j] = 0;
            continue;
        }
        // ggml keeps the first value of largest magnitude (its sign matters).
        float max = 0;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(xb[j]) == amax) {
                max = xb[j];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 mul = _mm256_set1_ps(iscale);
        const __m256i lim = _mm256_set1_epi32(127);
        for (int k = 0; k < QK_K; k += 32) {
            __m256i v[4];
            for (int j = 0; j < 4; j++) {
                // |iscale * x| <= ~127, where the 1.5 * 2^23 trick equals round-to-nearest-even.
                const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(xb + k + 8 * j), mul);
                v[j] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)), lim);
            }
            bsums[b * 16 + k / 16] = (int16_t)hsum8_epi32(_mm256_add_epi32(v[0], v[1]));
            bsums[b * 16 + k / 16 + 1] = (int16_t)hsum8_epi32(_mm256_add_epi32(v[2], v[3]));
            _mm256_storeu_si256((__m256i *)(q + k), pack_i32x32_to_i8(v[0], v[1], v[2], v[3]));
        }
        d[b] = 1 / iscale;
    }
}
#endif

void pc_acts_convert(pc_acts_t *a, const float *x, int64_t t0, int64_t t1) {
    const int64_t n = a->n;
#if PC_HAVE_X86_SIMD
    const int simd = pc_isa >= PC_ISA_AVX2;
#else
    const int simd = 0;
#endif
    for (int64_t t = t0; t < t1; t++) {
        const float *xr = x + t * n;
        switch (a->type) {
            case PC_F16: {
                float *out = (float *)a->f + t * a->ldf;
#if PC_HAVE_X86_SIMD
                if (simd) { round_f16_avx2(xr, out, n); break; }
#endif
                round_f16_scalar(xr, out, n);
                break;
            }
            case PC_BF16: {
                float *out = (float *)a->f + t * a->ldf;
#if PC_HAVE_X86_SIMD
                if (simd) { round_bf16_avx2(xr, out, n); break; }
#endif
                round_bf16_scalar(xr, out, n);
                break;
            }
            case PC_Q8_0:
            case PC_Q8_1: {
                int8_t *qs = a->qs + t * n;
                float *d = a->d + t * (n / 32);
                int16_t *sums = a->sums + t * (n / 32);
                float *s = a->type == PC_Q8_1 ? a->s + t * (n / 32) : NULL;
#if PC_HAVE_X86_SIMD
                if (simd) { q8_0_avx2(xr, qs, d, sums, s, n); break; }
#endif
                q8_0_scalar(xr, qs, d, sums, s, n);
                break;
            }
            case PC_Q8_K: {
                int8_t *qs = a->qs + t * n;
                float *d = a->d + t * (n / 256);
                int16_t *s = a->sums + t * (n / 16);
#if PC_HAVE_X86_SIMD
                if (simd) { q8_K_avx2(xr, qs, d, s, n); break; }
#endif
                q8_K_scalar(xr, qs, d, s, n);
                break;
            }
            default: break; // F32: used in place
        }
    }
    (void)simd;
}
