// N-API bindings (plain node_api.h). Every entry point that uses the thread pool, the scratch
// buffers or the chosen ISA takes a global lock: they are process-wide, and Node worker threads
// may load the addon too. rmsnorm, add, rope and copyRows touch only their arguments.
//
// JS API (positional arguments; src/kernels/native.ts wraps it and validates first):
//   matmul(w: Uint8Array, type, nOut, nIn, x: Float32Array, T, y: Float32Array): void
//   attention(q, k, v, rowSeq, rowPos, nRows, cap, qSeq, qPos, visible, nSeqMax, T, nHeads,
//             nKvHeads, headDim, scale, out, softcap, window): void
//   rmsnorm(y, x, w, T, dim, eps): void      swiglu(gate, up, n): void      geglu(gate, up, n): void
//   add(x, y, n): void
//   rope(x, T, nH, headDim, ropeDim, neox, cos, sin): void
//   copyRows(dst, dstOffset, dstStride, src, srcOffset, srcStride, rowLen, nRows): void
//                                   dst a Float32Array, or a Uint16Array: rows stored as F16
//   blasSgemm(lib, x, w, y, T, nOut, nIn, threads): void   OpenBLAS via dlopen (benchmark only)
//   setThreads(n): number         pool size in effect
//   getThreads(): number
//   setIsa(name): string          "avx512" | "avx2" | "scalar", clamped to the CPU
//   info(): { isa, detectedIsa, threads }
//   trimMemory(): boolean           malloc_trim(0): free C-heap pages back to the OS
//   mapFile(path, offset, length): ArrayBuffer   bytes of a file mapped copy-on-write (pages
//                                   shared with the page cache and other processes; unmapped when collected)
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <math.h>
#include <node_api.h>
#include <pthread.h>
#include <stdio.h>

#include "attention.h"
#include "blas.h"
#include "common.h"
#include "matmul.h"
#include "ops.h"
#include "threadpool.h"

static pthread_mutex_t big_lock = PTHREAD_MUTEX_INITIALIZER;

#define CHECK_NAPI(call)                                                   \
    do {                                                                   \
        if ((call) != napi_ok) {                                           \
            napi_throw_error(env, NULL, "parallelcomp native: N-API call failed: " #call); \
            return NULL;                                                   \
        }                                                                  \
    } while (0)

static const char *ta_type_name(napi_typedarray_type t) {
    switch (t) {
        case napi_uint8_array: return "Uint8Array";
        case napi_int32_array: return "Int32Array";
        case napi_float32_array: return "Float32Array";
        case napi_uint16_array: return "Uint16Array";
        default: return "another TypedArray";
    }
}

/** Reads a TypedArray argument of the expected type. Throws and returns 0 on mismatch. */
static int get_ta(napi_env env, napi_value v, napi_typedarray_type want, const char *fn, const char *name,
                  void **data, size_t *len) {
    bool is_ta = false;
    if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: %s must be a %s", fn, name, ta_type_name(want));
        napi_throw_type_error(env, NULL, msg);
        return 0;
    }
    napi_typedarray_type type;
    napi_value ab;
    size_t off;
    if (napi_get_typedarray_info(env, v, &type, len, data, &ab, &off) != napi_ok || type != want) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: %s must be a %s", fn, name, ta_type_name(want));
        napi_throw_type_error(env, NULL, msg);
        return 0;
    }
    return 1;
}

/** Reads an integer argument in [lo, hi]. Throws and returns 0 otherwise. */
static int get_int(napi_env env, napi_value v, const char *fn, const char *name, int64_t lo, int64_t hi, int64_t *out) {
    double d;
    if (napi_get_value_double(env, v, &d) != napi_ok || d != floor(d) || d < (double)lo || d > (double)hi) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s: %s must be an integer in [%lld, %lld]", fn, name, (long long)lo, (long long)hi);
        napi_throw_range_error(env, NULL, msg);
        return 0;
    }
    *out = (int64_t)d;
    return 1;
}

static int need_len(napi_env env, const char *fn, const char *name, size_t have, double need) {
    if ((double)have < need) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s: %s has %zu elements, expected at least %.0f", fn, name, have, need);
        napi_throw_range_error(env, NULL, msg);
        return 0;
    }
    return 1;
}

/** Reads the n arguments `usage` names ("fn(a, b, ...)") into argv; throws and returns 0 when
 *  fewer are given. */
static int get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv, const char *usage) {
    size_t argc = n;
    if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < n) {
        char msg[320];
        snprintf(msg, sizeof msg, "%s: %zu arguments expected", usage, n);
        napi_throw_type_error(env, NULL, msg);
        return 0;
    }
    return 1;
}

#define I32MAX 2147483647LL

static napi_value js_matmul(napi_env env, napi_callback_info info) {
    static const char *fn = "matmul";
    napi_value argv[7];
    if (!get_args(env, info, 7, argv, "matmul(w, type, nOut, nIn, x, T, y)")) return NULL;
    void *w, *x, *y;
    size_t wlen, xlen, ylen;
    int64_t type, nOut, nIn, T;
    if (!get_ta(env, argv[0], napi_uint8_array, fn, "w", &w, &wlen)) return NULL;
    if (!get_int(env, argv[1], fn, "type", 0, 255, &type)) return NULL;
    if (!get_int(env, argv[2], fn, "nOut", 0, I32MAX, &nOut)) return NULL;
    if (!get_int(env, argv[3], fn, "nIn", 0, I32MAX, &nIn)) return NULL;
    if (!get_ta(env, argv[4], napi_float32_array, fn, "x", &x, &xlen)) return NULL;
    if (!get_int(env, argv[5], fn, "T", 0, I32MAX, &T)) return NULL;
    if (!get_ta(env, argv[6], napi_float32_array, fn, "y", &y, &ylen)) return NULL;
    const size_t rb = pc_row_bytes((int)type, nIn);
    if (nIn > 0 && rb == 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "matmul: weight type %lld with nIn = %lld is not supported", (long long)type, (long long)nIn);
        napi_throw_range_error(env, NULL, msg);
        return NULL;
    }
    if (!need_len(env, fn, "w (bytes)", wlen, (double)rb * (double)nOut)) return NULL;
    if (!need_len(env, fn, "x", xlen, (double)T * (double)nIn)) return NULL;
    if (!need_len(env, fn, "y", ylen, (double)T * (double)nOut)) return NULL;

    pthread_mutex_lock(&big_lock);
    const int rc = pc_matmul((const uint8_t *)w, (int)type, nOut, nIn, (const float *)x, T, (float *)y);
    pthread_mutex_unlock(&big_lock);
    if (rc == PC_EUNSUPPORTED) napi_throw_range_error(env, NULL, "matmul: unsupported weight type");
    else if (rc == PC_ESHAPE) napi_throw_range_error(env, NULL, "matmul: nIn is not a multiple of the block size");
    else if (rc == PC_ENOMEM) napi_throw_error(env, NULL, "matmul: out of memory");
    return NULL;
}

static napi_value js_attention(napi_env env, napi_callback_info info) {
    static const char *fn = "attention";
    napi_value argv[19];
    if (!get_args(env, info, 19, argv, "attention(q, k, v, rowSeq, rowPos, nRows, cap, qSeq, qPos, visible, nSeqMax, T, nHeads, nKvHeads, headDim, scale, out, softcap, window)")) return NULL;
    void *q, *k, *v, *rowSeq, *rowPos, *nRows, *qSeq, *qPos, *visible, *out;
    size_t ql, kl, vl, rsl, rpl, nrl, qsl, qpl, visl, outl;
    int64_t cap, nSeqMax, T, nHeads, nKv, hd;
    double scale;
    if (!get_ta(env, argv[0], napi_float32_array, fn, "q", &q, &ql)) return NULL;
    // K and V: Float32Array (an F32 cache) or Uint16Array of F16 bits (an F16 cache), both alike.
    napi_typedarray_type ktype = napi_float32_array;
    bool is_ta = false;
    napi_value ab;
    size_t off;
    if (napi_is_typedarray(env, argv[1], &is_ta) == napi_ok && is_ta)
        napi_get_typedarray_info(env, argv[1], &ktype, &kl, &k, &ab, &off);
    if (ktype != napi_uint16_array) ktype = napi_float32_array;
    if (!get_ta(env, argv[1], ktype, fn, ktype == napi_uint16_array ? "k (F16)" : "k", &k, &kl)) return NULL;
    if (!get_ta(env, argv[2], ktype, fn, ktype == napi_uint16_array ? "v (like k, F16)" : "v (like k)", &v, &vl)) return NULL;
    if (!get_ta(env, argv[3], napi_int32_array, fn, "rowSeq", &rowSeq, &rsl)) return NULL;
    if (!get_ta(env, argv[4], napi_int32_array, fn, "rowPos", &rowPos, &rpl)) return NULL;
    if (!get_ta(env, argv[5], napi_int32_array, fn, "nRows", &nRows, &nrl)) return NULL;
    if (!get_int(env, argv[6], fn, "cap", 0, I32MAX, &cap)) return NULL;
    if (!get_ta(env, argv[7], napi_int32_array, fn, "qSeq", &qSeq, &qsl)) return NULL;
    if (!get_ta(env, argv[8], napi_int32_array, fn, "qPos", &qPos, &qpl)) return NULL;
    if (!get_ta(env, argv[9], napi_uint8_array, fn, "visible", &visible, &visl)) return NULL;
    if (!get_int(env, argv[10], fn, "nSeqMax", 1, 65535, &nSeqMax)) return NULL;
    if (!get_int(env, argv[11], fn, "T", 0, I32MAX, &T)) return NULL;
    if (!get_int(env, argv[12], fn, "nHeads", 1, 65535, &nHeads)) return NULL;
    if (!get_int(env, argv[13], fn, "nKvHeads", 1, 65535, &nKv)) return NULL;
    if (!get_int(env, argv[14], fn, "headDim", 1, 65535, &hd)) return NULL;
    if (napi_get_value_double(env, argv[15], &scale) != napi_ok || !isfinite(scale)) {
        napi_throw_range_error(env, NULL, "attention: scale must be a finite number");
        return NULL;
    }
    if (!get_ta(env, argv[16], napi_float32_array, fn, "out", &out, &outl)) return NULL;
    double softcap;
    int64_t window;
    if (napi_get_value_double(env, argv[17], &softcap) != napi_ok || !isfinite(softcap) || softcap < 0) {
        napi_throw_range_error(env, NULL, "attention: softcap must be a finite number >= 0");
        return NULL;
    }
    if (!get_int(env, argv[18], fn, "window", 0, I32MAX, &window)) return NULL;
    if (nHeads % nKv != 0) {
        napi_throw_range_error(env, NULL, "attention: nHeads must be a multiple of nKvHeads");
        return NULL;
    }
    const double kvsz = (double)nKv * (double)cap;
    if (!need_len(env, fn, "q", ql, (double)T * nHeads * hd) || !need_len(env, fn, "k", kl, kvsz * hd) ||
        !need_len(env, fn, "v", vl, kvsz * hd) || !need_len(env, fn, "rowSeq", rsl, kvsz) ||
        !need_len(env, fn, "rowPos", rpl, kvsz) || !need_len(env, fn, "nRows", nrl, (double)nKv) ||
        !need_len(env, fn, "qSeq", qsl, (double)T) || !need_len(env, fn, "qPos", qpl, (double)T) ||
        !need_len(env, fn, "visible", visl, (double)nSeqMax * nSeqMax) ||
        !need_len(env, fn, "out", outl, (double)T * nHeads * hd))
        return NULL;

    pc_attn_args a = {
        .q = (const float *)q,
        .k = ktype == napi_float32_array ? (const float *)k : NULL, .v = ktype == napi_float32_array ? (const float *)v : NULL,
        .k16 = ktype == napi_uint16_array ? (const uint16_t *)k : NULL, .v16 = ktype == napi_uint16_array ? (const uint16_t *)v : NULL,
        .rowSeq = (const int32_t *)rowSeq, .rowPos = (const int32_t *)rowPos, .nRows = (const int32_t *)nRows,
        .cap = cap, .qSeq = (const int32_t *)qSeq, .qPos = (const int32_t *)qPos,
        .visible = (const uint8_t *)visible, .nSeqMax = (int)nSeqMax, .T = T, .nHeads = (int)nHeads,
        .nKvHeads = (int)nKv, .headDim = (int)hd, .scale = (float)scale,
        .softcap = (float)softcap, .window = (int32_t)window, .out = (float *)out,
    };
    pthread_mutex_lock(&big_lock);
    const int rc = pc_attention(&a);
    pthread_mutex_unlock(&big_lock);
    if (rc == PC_ATTN_ESHAPE) napi_throw_range_error(env, NULL, "attention: nRows values must lie in [0, cap]");
    else if (rc == PC_ATTN_ESEQ)
        napi_throw_range_error(env, NULL, "attention: a qSeq or rowSeq value (of a row in use) is outside [0, nSeqMax)");
    else if (rc == PC_ATTN_ENOMEM) napi_throw_error(env, NULL, "attention: out of memory");
    return NULL;
}

static napi_value js_rmsnorm(napi_env env, napi_callback_info info) {
    static const char *fn = "rmsnorm";
    napi_value argv[6];
    if (!get_args(env, info, 6, argv, "rmsnorm(y, x, w, T, dim, eps)")) return NULL;
    void *y, *x, *w;
    size_t yl, xl, wl;
    int64_t T, dim;
    double eps;
    if (!get_ta(env, argv[0], napi_float32_array, fn, "y", &y, &yl)) return NULL;
    if (!get_ta(env, argv[1], napi_float32_array, fn, "x", &x, &xl)) return NULL;
    if (!get_ta(env, argv[2], napi_float32_array, fn, "w", &w, &wl)) return NULL;
    if (!get_int(env, argv[3], fn, "T", 0, I32MAX, &T)) return NULL;
    if (!get_int(env, argv[4], fn, "dim", 1, I32MAX, &dim)) return NULL;
    if (napi_get_value_double(env, argv[5], &eps) != napi_ok || !isfinite(eps) || eps < 0) {
        napi_throw_range_error(env, NULL, "rmsnorm: eps must be a finite number >= 0");
        return NULL;
    }
    if (!need_len(env, fn, "y", yl, (double)T * dim) || !need_len(env, fn, "x", xl, (double)T * dim) ||
        !need_len(env, fn, "w", wl, (double)dim))
        return NULL;
    pc_rmsnorm((float *)y, (const float *)x, (const float *)w, T, dim, (float)eps);
    return NULL;
}

/** Reads (a: Float32Array, b: Float32Array, n) for swiglu and add. */
static int get_two_arrays(napi_env env, napi_callback_info info, const char *fn, const char *an, const char *bn,
                          float **a, float **b, int64_t *n) {
    napi_value argv[3];
    char usage[120];
    snprintf(usage, sizeof usage, "%s(%s, %s, n)", fn, an, bn);
    if (!get_args(env, info, 3, argv, usage)) return 0;
    size_t al, bl;
    if (!get_ta(env, argv[0], napi_float32_array, fn, an, (void **)a, &al)) return 0;
    if (!get_ta(env, argv[1], napi_float32_array, fn, bn, (void **)b, &bl)) return 0;
    if (!get_int(env, argv[2], fn, "n", 0, I32MAX, n)) return 0;
    return need_len(env, fn, an, al, (double)*n) && need_len(env, fn, bn, bl, (double)*n);
}

static napi_value js_swiglu(napi_env env, napi_callback_info info) {
    float *gate, *up;
    int64_t n;
    if (!get_two_arrays(env, info, "swiglu", "gate", "up", &gate, &up, &n)) return NULL;
    pthread_mutex_lock(&big_lock); // reads pc_isa
    pc_swiglu(gate, up, n);
    pthread_mutex_unlock(&big_lock);
    return NULL;
}

static napi_value js_geglu(napi_env env, napi_callback_info info) {
    float *gate, *up;
    int64_t n;
    if (!get_two_arrays(env, info, "geglu", "gate", "up", &gate, &up, &n)) return NULL;
    pc_geglu(gate, up, n);
    return NULL;
}

static napi_value js_add(napi_env env, napi_callback_info info) {
    float *x, *y;
    int64_t n;
    if (!get_two_arrays(env, info, "add", "x", "y", &x, &y, &n)) return NULL;
    pc_add(x, y, n);
    return NULL;
}

static napi_value js_rope(napi_env env, napi_callback_info info) {
    static const char *fn = "rope";
    napi_value argv[8];
    if (!get_args(env, info, 8, argv, "rope(x, T, nH, headDim, ropeDim, neox, cos, sin)")) return NULL;
    void *x, *c, *sn;
    size_t xl, cl, sl;
    int64_t T, nH, hd, rd, neox;
    if (!get_ta(env, argv[0], napi_float32_array, fn, "x", &x, &xl)) return NULL;
    if (!get_int(env, argv[1], fn, "T", 0, I32MAX, &T)) return NULL;
    if (!get_int(env, argv[2], fn, "nH", 0, 65535, &nH)) return NULL;
    if (!get_int(env, argv[3], fn, "headDim", 1, 65535, &hd)) return NULL;
    if (!get_int(env, argv[4], fn, "ropeDim", 0, hd, &rd)) return NULL;
    if (!get_int(env, argv[5], fn, "neox", 0, 1, &neox)) return NULL;
    if (!get_ta(env, argv[6], napi_float32_array, fn, "cos", &c, &cl)) return NULL;
    if (!get_ta(env, argv[7], napi_float32_array, fn, "sin", &sn, &sl)) return NULL;
    if (rd % 2 != 0) {
        napi_throw_range_error(env, NULL, "rope: ropeDim must be even");
        return NULL;
    }
    if (!need_len(env, fn, "x", xl, (double)T * nH * hd) || !need_len(env, fn, "cos", cl, (double)T * (rd / 2)) ||
        !need_len(env, fn, "sin", sl, (double)T * (rd / 2)))
        return NULL;
    pc_rope((float *)x, T, nH, hd, rd, (int)neox, (const float *)c, (const float *)sn);
    return NULL;
}

static napi_value js_copy_rows(napi_env env, napi_callback_info info) {
    static const char *fn = "copyRows";
    napi_value argv[8];
    if (!get_args(env, info, 8, argv, "copyRows(dst, dstOffset, dstStride, src, srcOffset, srcStride, rowLen, nRows)")) return NULL;
    void *dst, *src;
    size_t dl, sl;
    int64_t doff, dstr, soff, sstr, len, n;
    // dst: Float32Array, or Uint16Array for rows stored as F16 (an F16 KV cache)
    napi_typedarray_type dtype = napi_float32_array;
    bool is_ta = false;
    napi_value ab;
    size_t off;
    if (napi_is_typedarray(env, argv[0], &is_ta) == napi_ok && is_ta) napi_get_typedarray_info(env, argv[0], &dtype, &dl, &dst, &ab, &off);
    if (dtype != napi_uint16_array) dtype = napi_float32_array;
    if (!get_ta(env, argv[0], dtype, fn, "dst", &dst, &dl)) return NULL;
    if (!get_int(env, argv[1], fn, "dstOffset", 0, I32MAX, &doff)) return NULL;
    if (!get_int(env, argv[2], fn, "dstStride", 0, I32MAX, &dstr)) return NULL;
    if (!get_ta(env, argv[3], napi_float32_array, fn, "src", &src, &sl)) return NULL;
    if (!get_int(env, argv[4], fn, "srcOffset", 0, I32MAX, &soff)) return NULL;
    if (!get_int(env, argv[5], fn, "srcStride", 0, I32MAX, &sstr)) return NULL;
    if (!get_int(env, argv[6], fn, "rowLen", 0, I32MAX, &len)) return NULL;
    if (!get_int(env, argv[7], fn, "nRows", 0, I32MAX, &n)) return NULL;
    if (n == 0 || len == 0) return NULL;
    if (!need_len(env, fn, "dst", dl, (double)doff + (double)(n - 1) * dstr + len) ||
        !need_len(env, fn, "src", sl, (double)soff + (double)(n - 1) * sstr + len))
        return NULL;
    if (dtype == napi_uint16_array) {
        pthread_mutex_lock(&big_lock); // reads pc_isa
        pc_copy_rows_f16((uint16_t *)dst + doff, dstr, (const float *)src + soff, sstr, len, n);
        pthread_mutex_unlock(&big_lock);
    } else {
        pc_copy_rows((float *)dst + doff, dstr, (const float *)src + soff, sstr, len, n);
    }
    return NULL;
}

static napi_value js_blas_sgemm(napi_env env, napi_callback_info info) {
    static const char *fn = "blasSgemm";
    napi_value argv[8];
    if (!get_args(env, info, 8, argv, "blasSgemm(lib, x, w, y, T, nOut, nIn, threads)")) return NULL;
    char name[256] = {0};
    size_t nlen = 0;
    if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok) {
        napi_throw_type_error(env, NULL, "blasSgemm: lib must be a string");
        return NULL;
    }
    void *x, *w, *y;
    size_t xl, wl, yl;
    int64_t T, nOut, nIn, threads;
    if (!get_ta(env, argv[1], napi_float32_array, fn, "x", &x, &xl)) return NULL;
    if (!get_ta(env, argv[2], napi_float32_array, fn, "w", &w, &wl)) return NULL;
    if (!get_ta(env, argv[3], napi_float32_array, fn, "y", &y, &yl)) return NULL;
    if (!get_int(env, argv[4], fn, "T", 1, I32MAX, &T)) return NULL;
    if (!get_int(env, argv[5], fn, "nOut", 1, I32MAX, &nOut)) return NULL;
    if (!get_int(env, argv[6], fn, "nIn", 1, I32MAX, &nIn)) return NULL;
    if (!get_int(env, argv[7], fn, "threads", 1, PC_MAX_THREADS, &threads)) return NULL;
    if (!need_len(env, fn, "x", xl, (double)T * nIn) || !need_len(env, fn, "w", wl, (double)nOut * nIn) ||
        !need_len(env, fn, "y", yl, (double)T * nOut))
        return NULL;
    char err[512];
    pthread_mutex_lock(&big_lock);
    const int rc = pc_blas_load(name, err, sizeof err);
    if (rc == 0) pc_blas_sgemm((const float *)x, (const float *)w, (float *)y, T, nOut, nIn, (int)threads);
    pthread_mutex_unlock(&big_lock);
    if (rc != 0) napi_throw_error(env, NULL, err);
    return NULL;
}

static napi_value make_int(napi_env env, int64_t v) {
    napi_value r;
    napi_create_int64(env, v, &r);
    return r;
}

static napi_value make_str(napi_env env, const char *s) {
    napi_value r;
    napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &r);
    return r;
}

static napi_value js_set_threads(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    int64_t n;
    if (argc < 1 || !get_int(env, argv[0], "setThreads", "n", 1, PC_MAX_THREADS, &n)) {
        if (argc < 1) napi_throw_type_error(env, NULL, "setThreads(n): n expected");
        return NULL;
    }
    pthread_mutex_lock(&big_lock);
    const int got = pc_pool_set_threads((int)n);
    pthread_mutex_unlock(&big_lock);
    return make_int(env, got);
}

static napi_value js_get_threads(napi_env env, napi_callback_info info) {
    (void)info;
    pthread_mutex_lock(&big_lock);
    const int n = pc_pool_threads();
    pthread_mutex_unlock(&big_lock);
    return make_int(env, n);
}

static napi_value js_set_isa(napi_env env, napi_callback_info info) {
    size_t argc = 1;
    napi_value argv[1];
    CHECK_NAPI(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
    char name[16] = {0};
    size_t len = 0;
    if (argc < 1 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
        napi_throw_type_error(env, NULL, "setIsa(name): a string is expected");
        return NULL;
    }
    pc_isa_t want;
    if (!strcmp(name, "avx512")) want = PC_ISA_AVX512;
    else if (!strcmp(name, "avx2")) want = PC_ISA_AVX2;
    else if (!strcmp(name, "scalar")) want = PC_ISA_SCALAR;
    else {
        napi_throw_range_error(env, NULL, "setIsa: expected \"avx512\", \"avx2\" or \"scalar\"");
        return NULL;
    }
    pthread_mutex_lock(&big_lock);
    const pc_isa_t got = pc_set_isa(want);
    pthread_mutex_unlock(&big_lock);
    return make_str(env, pc_isa_name(got));
}

static void unmap_file(napi_env env, void *data, void *hint) {
    (void)env;
    munmap(data, (size_t)(uintptr_t)hint);
}

/** Maps bytes [offset, offset + length) of a file for reading (offset a multiple of the page
 *  size): MAP_PRIVATE (a stray write copies the page instead of faulting or changing the file)
 *  every page mapped now, at load, not page by page in the first request. Node caps one ArrayBuffer at 4 GiB, so big files are mapped in windows. */
static napi_value js_map_file(napi_env env, napi_callback_info info) {
    napi_value argv[3];
    if (!get_args(env, info, 3, argv, "mapFile(path, offset, length)")) return NULL;
    char path[4096];
    size_t len = 0;
    if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &len) != napi_ok || len == 0 || len >= sizeof path - 1) {
        napi_throw_type_error(env, NULL, "mapFile: path must be a non-empty string shorter than 4095 bytes");
        return NULL;
    }
    int64_t offset, length;
    if (!get_int(env, argv[1], "mapFile", "offset", 0, (int64_t)1 << 52, &offset)) return NULL;
    if (!get_int(env, argv[2], "mapFile", "length", 1, (int64_t)1 << 32, &length)) return NULL;
    if (offset % sysconf(_SC_PAGESIZE) != 0) {
        napi_throw_range_error(env, NULL, "mapFile: offset must be a multiple of the page size");
        return NULL;
    }
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || offset + length > st.st_size) {
        char msg[4200];
        snprintf(msg, sizeof msg, "mapFile: %s: %s", path, fd < 0 ? strerror(errno) : "shorter than the range asked for");
        if (fd >= 0) close(fd);
        napi_throw_error(env, NULL, msg);
        return NULL;
    }
    void *p = mmap(NULL, (size_t)length, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, (off_t)offset);
    close(fd);
    if (p == MAP_FAILED) {
        char msg[4200];
        snprintf(msg, sizeof msg, "mapFile: %s: mmap failed: %s", path, strerror(errno));
        napi_throw_error(env, NULL, msg);
        return NULL;
    }
    // Map every page now, at load: MAP_POPULATE does not on a private writable mapping, and a page
    // first touched inside a matmul costs a fault there (measured: the first forward pass of an
    // 8B model 10 s slower). Reading one byte a page maps the page cache's page, without a copy.
    madvise(p, (size_t)length, MADV_WILLNEED);
    const long page = sysconf(_SC_PAGESIZE);
    volatile uint8_t sink = 0;
    for (int64_t o = 0; o < length; o += page) sink ^= ((const volatile uint8_t *)p)[o];
    (void)sink;
    napi_value ab;
    if (napi_create_external_arraybuffer(env, p, (size_t)length, unmap_file, (void *)(uintptr_t)length, &ab) != napi_ok) {
        munmap(p, (size_t)length);
        napi_throw_error(env, NULL, "mapFile: Node.js refused an external ArrayBuffer of this size");
        return NULL;
    }
    return ab;
}

/** Gives the C heap's free pages back to the OS (glibc keeps them after a large request's
 *  buffers are freed); returns whether anything was released. A no-op elsewhere. */
static napi_value js_stream_read(napi_env env, napi_callback_info info) {
    napi_value argv[1];
    if (!get_args(env, info, 1, argv, "streamRead(buffer)")) return NULL;
    void *p;
    size_t n;
    if (!get_ta(env, argv[0], napi_uint8_array, "streamRead", "buffer", &p, &n)) return NULL;
    pthread_mutex_lock(&big_lock);
    const uint64_t sum = pc_stream_read((const uint8_t *)p, n);
    pthread_mutex_unlock(&big_lock);
    napi_value out;
    napi_create_double(env, (double)(sum & ((1ull << 52) - 1)), &out);
    return out;
}

static napi_value js_trim_memory(napi_env env, napi_callback_info info) {
    int released = 0;
#ifdef __GLIBC__
    released = malloc_trim(0);
#endif
    napi_value v;
    napi_get_boolean(env, released != 0, &v);
    return v;
}

static napi_value js_info(napi_env env, napi_callback_info info) {
    (void)info;
    napi_value obj;
    CHECK_NAPI(napi_create_object(env, &obj));
    pthread_mutex_lock(&big_lock);
    const int threads = pc_pool_threads();
    const pc_isa_t isa = pc_isa, det = pc_isa_detected();
    pthread_mutex_unlock(&big_lock);
    napi_set_named_property(env, obj, "isa", make_str(env, pc_isa_name(isa)));
    napi_set_named_property(env, obj, "detectedIsa", make_str(env, pc_isa_name(det)));
    napi_set_named_property(env, obj, "threads", make_int(env, threads));
    return obj;
}

NAPI_MODULE_INIT() {
    pthread_mutex_lock(&big_lock);
    pc_cpu_init();
    pthread_mutex_unlock(&big_lock);
    const napi_property_descriptor props[] = {
        {"matmul", NULL, js_matmul, NULL, NULL, NULL, napi_enumerable, NULL},
        {"attention", NULL, js_attention, NULL, NULL, NULL, napi_enumerable, NULL},
        {"rmsnorm", NULL, js_rmsnorm, NULL, NULL, NULL, napi_enumerable, NULL},
        {"swiglu", NULL, js_swiglu, NULL, NULL, NULL, napi_enumerable, NULL},
        {"geglu", NULL, js_geglu, NULL, NULL, NULL, napi_enumerable, NULL},
        {"add", NULL, js_add, NULL, NULL, NULL, napi_enumerable, NULL},
        {"rope", NULL, js_rope, NULL, NULL, NULL, napi_enumerable, NULL},
        {"copyRows", NULL, js_copy_rows, NULL, NULL, NULL, napi_enumerable, NULL},
        {"blasSgemm", NULL, js_blas_sgemm, NULL, NULL, NULL, napi_enumerable, NULL},
        {"setThreads", NULL, js_set_threads, NULL, NULL, NULL, napi_enumerable, NULL},
        {"getThreads", NULL, js_get_threads, NULL, NULL, NULL, napi_enumerable, NULL},
        {"setIsa", NULL, js_set_isa, NULL, NULL, NULL, napi_enumerable, NULL},
        {"info", NULL, js_info, NULL, NULL, NULL, napi_enumerable, NULL},
        {"mapFile", NULL, js_map_file, NULL, NULL, NULL, napi_enumerable, NULL},
        {"trimMemory", NULL, js_trim_memory, NULL, NULL, NULL, napi_enumerable, NULL},
        {"streamRead", NULL, js_stream_read, NULL, NULL, NULL, napi_enumerable, NULL},
    };
    if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
    return exports;
}
