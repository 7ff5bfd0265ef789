/* The one place the core touches BLAS. OpenBLAS from the scipy-openblas32 wheel exports its
 * symbols with a "scipy_" prefix (BLAS_SYMBOL_PREFIX); another CBLAS can be used by building
 * with SDAGD_BLAS_PREFIX empty. Which OpenBLAS kernel set runs is chosen when the library
 * loads (sdagd/_blas.py, OPENBLAS_CORETYPE); sdagd_blas_info reports it. */
#include <pthread.h>
#include <stdio.h>

#include "../error.h"
#include "blas.h"

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
char *BLAS_FN(openblas_get_config)(void) __attribute__((weak));
char *BLAS_FN(openblas_get_corename)(void) __attribute__((weak));

void blas_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
    BLAS_FN(cblas_sgemm)(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                         trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb,
                         beta, C, ldc);
}

static void set_one_thread(void) {
    if (BLAS_FN(openblas_set_num_threads)) BLAS_FN(openblas_set_num_threads)(1);
}

void blas_single_threaded(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, set_one_thread);
}

const char *sdagd_blas_info(void) {
    static char info[256];
    const char *config = BLAS_FN(openblas_get_config) ? BLAS_FN(openblas_get_config)() : "a CBLAS";
    const char *core = BLAS_FN(openblas_get_corename) ? BLAS_FN(openblas_get_corename)() : "?";
    snprintf(info, sizeof info, "%s; kernels: %s", config, core);
    return info;
}
