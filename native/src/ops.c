// RMS norm, SwiGLU and the residual add (see ops.h).
//
// exp for SwiGLU: on x86 a vector exp (Cody-Waite reduction by ln 2, then the degree-5
// polynomial of Cephes' expf, whose published coefficients are used here), within 2 ulp of
// the exact value over the float range. ggml also uses its own vector exp there, so llama.cpp
// and we both differ from libm's expf by a few ulp. The scalar path (other CPUs) uses expf.
#include "ops.h"

#include <pthread.h>

#include <math.h>
#include <string.h>

#include "threadpool.h"

#if PC_HAVE_X86_SIMD
#include <immintrin.h>
#include "simd_x86.h"
#endif

void pc_rmsnorm(float *y, const float *x, const float *w, int64_t T, int64_t dim, float eps) {
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * dim;
        float *yt = y + t * dim;
        double sum = 0;
        for (int64_t i = 0; i < dim; i++) sum += (double)(xt[i] * xt[i]);
        const float mean = (float)(sum / (double)dim);
        const float scale = 1.0f / sqrtf(mean + eps);
        for (int64_t i = 0; i < dim; i++) yt[i] = (xt[i] * scale) * w[i];
    }
}

void pc_add(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

void pc_rope(float *x, int64_t T, int64_t nH, int64_t headDim, int64_t ropeDim, int neox, const float *cos,
             const float *sin) {
    const int64_t half = ropeDim / 2;
    const int64_t stride = neox ? 1 : 2, partner = neox ? half : 1;
    for (int64_t t = 0; t < T; t++) {
        const float *ct = cos + t * half, *st = sin + t * half;
        for (int64_t h = 0; h < nH; h++) {
            float *xh = x + (t * nH + h) * headDim;
            for (int64_t i = 0; i < half; i++) {
                float *a = xh + i * stride, *b = a + partner;
                const double x0 = *a, x1 = *b, c = ct[i], s = st[i];
                *a = (float)(x0 * c - x1 * s);
                *b = (float)(x0 * s + x1 * c);
            }
        }
    }
}

void pc_copy_rows(float *dst, int64_t dstStride, const float *src, int64_t srcStride, int64_t rowLen, int64_t nRows) {
    for (int64_t r = 0; r < nRows; r++) memcpy(dst + r * dstStride, src + r * srcStride, (size_t)rowLen * sizeof(float));
}

#if PC_HAVE_X86_SIMD
PC_TARGET_AVX2 static void f16_row_avx2(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) dst[i] = pc_fp32_to_fp16(src[i]);
}
#endif

void pc_copy_rows_f16(uint16_t *dst, int64_t dstStride, const float *src, int64_t srcStride, int64_t rowLen, int64_t nRows) {
    for (int64_t r = 0; r < nRows; r++) {
        uint16_t *d = dst + r * dstStride;
        const float *s = src + r * srcStride;
#if PC_HAVE_X86_SIMD
        if (pc_isa >= PC_ISA_AVX2) {
            f16_row_avx2(d, s, rowLen);
            continue;
        }
#endif
        for (int64_t i = 0; i < rowLen; i++) d[i] = pc_fp32_to_fp16(s[i]);
    }
}

static void swiglu_scalar(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        gate[i] = (g / (1.0f + expf(-g))) * up[i];
    }
}

#if PC_HAVE_X86_SIMD
PC_TARGET_AVX2 static void swiglu_avx2(float *gate, const float *up, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 ng = _mm256_sub_ps(_mm256_setzero_ps(), g);
        const __m256 c = _mm256_max_ps(_mm256_min_ps(ng, _mm256_set1_ps(PC_EXP_HI)), _mm256_set1_ps(PC_EXP_LO));
        __m256 e = pc_exp8(c);
        e = _mm256_blendv_ps(e, _mm256_set1_ps(INFINITY), _mm256_cmp_ps(ng, _mm256_set1_ps(PC_EXP_HI), _CMP_GT_OQ));
        e = _mm256_blendv_ps(e, _mm256_setzero_ps(), _mm256_cmp_ps(ng, _mm256_set1_ps(PC_EXP_LO), _CMP_LT_OQ));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    if (i < n) {
        // The tail goes through the same vector code on a padded copy (same rounding as the body).
        float g[8] = {0}, u[8] = {0};
        memcpy(g, gate + i, (size_t)(n - i) * sizeof(float));
        memcpy(u, up + i, (size_t)(n - i) * sizeof(float));
        swiglu_avx2(g, u, 8);
        memcpy(gate + i, g, (size_t)(n - i) * sizeof(float));
    }
}
#endif

// GELU as ggml-cpu computes it (vec.h with GGML_GELU_FP16): a table of the tanh approximation
// over every fp16 input, built once; the constants are ggml's.
static float gelu_f32(float x) {
    const float a = 0.044715f, s = 0.79788456080286535587989211986876f;
    return 0.5f * x * (1.0f + tanhf(s * x * (1.0f + a * x * x)));
}

static uint16_t gelu_table[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

static void gelu_table_init(void) {
    for (uint32_t h = 0; h < (1u << 16); h++) gelu_table[h] = pc_fp32_to_fp16(gelu_f32(pc_fp16_to_fp32((uint16_t)h)));
}

void pc_geglu(float *gate, const float *up, int64_t n) {
    pthread_once(&gelu_once, gelu_table_init);
    for (int64_t i = 0; i < n; i++) {
        const float x = gate[i];
        if (x <= -10.0f) gate[i] = 0.0f;
        else if (x >= 10.0f) gate[i] = x * up[i];
        else gate[i] = pc_fp16_to_fp32(gelu_table[pc_fp32_to_fp16(x)]) * up[i];
    }
}

void pc_swiglu(float *gate, const float *up, int64_t n) {
#if PC_HAVE_X86_SIMD
    // One 256-bit version for AVX2 and AVX-512 CPUs: a 512-bit copy measured 0.22 against 0.35 ms
    // per layer of a 512-token prefill (SmolLM2 shape), 0.6% of the prefill, not worth a second
    // copy of the code.
    if (pc_isa >= PC_ISA_AVX2) return swiglu_avx2(gate, up, n);
#endif
    swiglu_scalar(gate, up, n);
}

typedef struct {
    const uint8_t *p;
    size_t n;
    uint64_t sums[PC_MAX_THREADS];
} stream_job;

static void stream_part(void *ctx, int ith, int nth) {
    stream_job *j = (stream_job *)ctx;
    const size_t words = j->n / 8;
    const size_t w0 = words * (size_t)ith / (size_t)nth, w1 = words * (size_t)(ith + 1) / (size_t)nth;
    uint64_t acc[8] = {0};
    size_t w = w0;
    for (; w + 8 <= w1; w += 8) { // eight independent sums: the compiler keeps them in vectors
        uint64_t v[8];
        memcpy(v, j->p + 8 * w, 64);
        for (int k = 0; k < 8; k++) acc[k] += v[k];
    }
    for (; w < w1; w++) {
        uint64_t v;
        memcpy(&v, j->p + 8 * w, 8);
        acc[0] += v;
    }
    uint64_t total = 0;
    for (int k = 0; k < 8; k++) total += acc[k];
    j->sums[ith] = total;
}

uint64_t pc_stream_read(const uint8_t *p, size_t n) {
    static stream_job job; // one job at a time (the binding serialises calls)
    job.p = p;
    job.n = n;
    memset(job.sums, 0, sizeof job.sums);
    pc_pool_run(stream_part, &job);
    uint64_t total = 0;
    for (int i = 0; i < PC_MAX_THREADS; i++) total += job.sums[i];
    for (size_t i = n / 8 * 8; i < n; i++) total += p[i];
    return total;
}
