/* The CPU backend's one entry to BLAS: row-major single-precision GEMM, always
 * single-threaded (the backend's pool runs independent GEMMs side by side instead). */
#ifndef SDAGD_CPU_BLAS_H
#define SDAGD_CPU_BLAS_H

/* C (M, N) = alpha op(A) op(B) + beta C, row-major; op(X) = X^T when trans_x. */
void blas_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

/* Makes the BLAS single-threaded (idempotent, cheap after the first call). */
void blas_single_threaded(void);

#endif
