// OpenBLAS's sgemm through dlopen, for the benchmark only (blas.c).
#ifndef PC_BLAS_H
#define PC_BLAS_H

#include "common.h"

/** Loads the library once (e.g. "libopenblas.so.0"); 0 on success, else -1 with a message. */
int pc_blas_load(const char *name, char *err, size_t errlen);

/** y[T, nOut] = x[T, nIn] . w[nOut, nIn]^T in float with the library's sgemm and `threads`. */
void pc_blas_sgemm(const float *x, const float *w, float *y, int64_t T, int64_t nOut, int64_t nIn, int threads);

#endif
