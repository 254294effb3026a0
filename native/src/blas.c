// A yardstick, not a dependency: OpenBLAS's cblas_sgemm loaded at run time with dlopen, so
// that `parallelcomp bench` can put our F32 matmul beside it in the same process, on the same
// arrays and thread count. Nothing else calls it, and the addon builds and runs without it.
#include "blas.h"

#include <dlfcn.h>
#include <stdio.h>

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 }; // cblas.h's values

typedef void (*sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc);
typedef void (*set_threads_fn)(int n);

static void *lib;
static sgemm_fn sgemm;
static set_threads_fn set_threads;

int pc_blas_load(const char *name, char *err, size_t errlen) {
    if (lib) return 0;
    void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(err, errlen, "cannot load %s: %s", name, dlerror());
        return -1;
    }
    sgemm = (sgemm_fn)dlsym(h, "cblas_sgemm");
    set_threads = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
    if (!sgemm) {
        snprintf(err, errlen, "%s has no cblas_sgemm", name);
        dlclose(h);
        return -1;
    }
    lib = h;
    return 0;
}

void pc_blas_sgemm(const float *x, const float *w, float *y, int64_t T, int64_t nOut, int64_t nIn, int threads) {
    if (set_threads) set_threads(threads);
    // y[T, nOut] = x[T, nIn] . w[nOut, nIn]^T, as our matmul.
    sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS, (int)T, (int)nOut, (int)nIn, 1.0f, x, (int)nIn, w, (int)nIn,
          0.0f, y, (int)nOut);
}
