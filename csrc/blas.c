/* The one place the core touches BLAS. OpenBLAS from the scipy-openblas32 wheel exports its
 * symbols with a "scipy_" prefix (BLAS_SYMBOL_PREFIX); another CBLAS can be used by building
 * with SDAGD_BLAS_PREFIX empty. */
#include "internal.h"

#ifndef SDAGD_BLAS_PREFIX
#define SDAGD_BLAS_PREFIX scipy_
#endif
#define SDAGD_CAT_(a, b) a##b
#define SDAGD_CAT(a, b) SDAGD_CAT_(a, b)
#define BLAS_FN(name) SDAGD_CAT(SDAGD_BLAS_PREFIX, name)

/* Declared here rather than through cblas.h so the core builds against any CBLAS. */
enum { CblasRowMajor = 101 };
enum { CblasNoTrans = 111, CblasTrans = 112 };
void BLAS_FN(cblas_sgemm)(int order, int trans_a, int trans_b, int M, int N, int K, float alpha,
                          const float *A, int lda, const float *B, int ldb, float beta, float *C,
                          int ldc);
void BLAS_FN(openblas_set_num_threads)(int n) __attribute__((weak));
int BLAS_FN(openblas_get_num_threads)(void) __attribute__((weak));

void blas_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    BLAS_FN(cblas_sgemm)(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                         trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb,
                         beta, C, ldc);
}

int sdagd_blas_get_threads(void) {
    return BLAS_FN(openblas_get_num_threads) ? BLAS_FN(openblas_get_num_threads)() : -1;
}

int sdagd_blas_set_threads(int n) {
    int previous = sdagd_blas_get_threads();
    if (BLAS_FN(openblas_set_num_threads) && n > 0) BLAS_FN(openblas_set_num_threads)(n);
    return previous;
}
