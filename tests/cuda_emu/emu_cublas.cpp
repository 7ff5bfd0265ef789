/*
 * cuBLAS on the CPU, for the CUDA emulation (test code, never installed). Each product is
 * checked as cuBLAS checks it (sizes >= 0, lda/ldb/ldc at least the rows of what they describe:
 * CUBLAS_STATUS_INVALID_VALUE) and beyond: every matrix of every batch must lie inside one
 * device allocation, the batches of C must not overlap, and C must not overlap A or B; a
 * violation is reported with the sizes involved. Then the product is computed by a plain
 * column-major loop, in double, rounded once (TF32 mode is not emulated).
 */
#include "cublas_v2.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <memory>
#include <vector>

#include "emu_internal.h"

#define EXPORT extern "C" __attribute__((visibility("default")))

using namespace sdagd_emu;

struct sdagd_emu_blas {
    cudaStream_t stream = 0;
    void *workspace = NULL;
    size_t workspace_bytes = 0;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
};

static thread_local char blas_detail[1024];
static thread_local cublasStatus_t blas_last = CUBLAS_STATUS_SUCCESS;

static cublasStatus_t blas_error(cublasStatus_t st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static cublasStatus_t blas_error(cublasStatus_t st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(blas_detail, sizeof blas_detail, fmt, ap);
    va_end(ap);
    char line[1100];
    snprintf(line, sizeof line, "sdagd CUDA emulation: %s\n", blas_detail);
    report_line(line);
    blas_last = st;
    return st;
}

static const char *status_name(cublasStatus_t st) {
    switch (st) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "unknown cuBLAS status";
}

EXPORT const char *cublasGetStatusString(cublasStatus_t st) {
    static thread_local char text[1200];
    if (st == blas_last && st != CUBLAS_STATUS_SUCCESS && blas_detail[0]) {
        snprintf(text, sizeof text, "%s [emulation: %s]", status_name(st), blas_detail);
        return text;
    }
    return status_name(st);
}

EXPORT cublasStatus_t cublasCreate(cublasHandle_t *handle) {
    *handle = new sdagd_emu_blas();
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!handle) return blas_error(CUBLAS_STATUS_NOT_INITIALIZED, "cublasDestroy(NULL)");
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle) return blas_error(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetStream(NULL, ...)");
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t bytes) {
    if (!handle) return blas_error(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetWorkspace(NULL, ...)");
    size_t room;
    if (bytes && !device_range(workspace, bytes, &room))
        return blas_error(CUBLAS_STATUS_INVALID_VALUE, "cublasSetWorkspace: %zu bytes at %p, but only %zu bytes of "
                          "device memory lie there", bytes, workspace, room);
    handle->workspace = workspace;
    handle->workspace_bytes = bytes;
    if (bytes) seal(workspace); /* the plain loops need none; a kernel touching it faults */
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return blas_error(CUBLAS_STATUS_NOT_INITIALIZED, "cublasSetMathMode(NULL, ...)");
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

/* One operand: `rows` x `cols` column-major with leading dimension ld, `count` of them `stride`
 * elements apart; lies in one device allocation? (name: for the message) */
static cublasStatus_t check_operand(const char *call, const char *name, const float *p, long long rows, long long cols,
                                    long long ld, long long stride, int count) {
    if (ld < (rows > 1 ? rows : 1))
        return blas_error(CUBLAS_STATUS_INVALID_VALUE, "%s: ld%c = %lld but %c has %lld rows (ld%c >= max(1, %lld) needed)",
                          call, name[0] + 32, ld, name[0], rows, name[0] + 32, rows);
    if (rows == 0 || cols == 0 || count == 0) return CUBLAS_STATUS_SUCCESS;
    long long extent = (cols - 1) * ld + rows; /* elements from the first to the last one used */
    if (count > 1 && stride < 0)
        return blas_error(CUBLAS_STATUS_INVALID_VALUE, "%s: stride%s = %lld is negative", call, name, stride);
    long long span = (long long)(count - 1) * stride + extent;
    size_t room;
    if (!p || !device_range(p, (size_t)span * sizeof(float), &room))
        return blas_error(CUBLAS_STATUS_INVALID_VALUE,
                          "%s: %s (%lld x %lld, ld %lld, %d matrices %lld apart) needs %lld floats from %p, but only "
                          "%zu floats of device memory lie there", call, name, rows, cols, ld, count, stride, span,
                          (const void *)p, room / sizeof(float));
    return CUBLAS_STATUS_SUCCESS;
}

static bool overlap(const float *a, long long a_len, const float *b, long long b_len) {
    return a < b + b_len && b < a + a_len;
}

/* C = alpha op(A) op(B) + beta C, each of `count` products; checked, then queued. */
static cublasStatus_t gemm(const char *call, cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m,
                           int n, int k, const float *alpha, const float *A, int lda, long long sa, const float *B,
                           int ldb, long long sb, const float *beta, float *C, int ldc, long long sc, int count) {
    if (!h) return blas_error(CUBLAS_STATUS_NOT_INITIALIZED, "%s with a NULL handle", call);
    if (m < 0 || n < 0 || k < 0 || count < 0)
        return blas_error(CUBLAS_STATUS_INVALID_VALUE, "%s: m = %d, n = %d, k = %d, batchCount = %d", call, m, n, k, count);
    if ((unsigned)ta > 2 || (unsigned)tb > 2)
        return blas_error(CUBLAS_STATUS_INVALID_VALUE, "%s: transa = %d, transb = %d", call, (int)ta, (int)tb);
    if (!alpha || !beta) return blas_error(CUBLAS_STATUS_INVALID_VALUE, "%s: alpha or beta is NULL", call);
    if (is_device(alpha) || is_device(beta))
        return blas_error(CUBLAS_STATUS_INVALID_VALUE, "%s: alpha and beta must be host values (pointer mode host)", call);
    bool at = ta != CUBLAS_OP_N, bt = tb != CUBLAS_OP_N;
    long long a_rows = at ? k : m, a_cols = at ? m : k, b_rows = bt ? n : k, b_cols = bt ? k : n;
    bool reads_ab = k > 0 && m > 0 && n > 0;
    cublasStatus_t st;
    if ((st = check_operand(call, "A", A, a_rows, reads_ab ? a_cols : 0, lda, sa, count)) != CUBLAS_STATUS_SUCCESS) return st;
    if ((st = check_operand(call, "B", B, b_rows, reads_ab ? b_cols : 0, ldb, sb, count)) != CUBLAS_STATUS_SUCCESS) return st;
    if ((st = check_operand(call, "C", C, m, n, ldc, sc, count)) != CUBLAS_STATUS_SUCCESS) return st;
    long long c_extent = m && n ? (long long)(n - 1) * ldc + m : 0;
    if (count > 1 && c_extent > 0 && sc < c_extent)
        return blas_error(CUBLAS_STATUS_INVALID_VALUE, "%s: the %d results overlap (strideC = %lld < %lld, the extent of one)",
                          call, count, sc, c_extent);
    if (reads_ab && c_extent > 0) { /* every result against every operand (all pairs unless too many) */
        long long a_extent = (a_cols - 1) * lda + a_rows, b_extent = (b_cols - 1) * ldb + b_rows;
        bool all_pairs = (long long)count * count <= 1000000;
        for (int i = 0; i < count; i++)
            for (int j = all_pairs ? 0 : i; j < (all_pairs ? count : i + 1); j++)
                if (overlap(C + i * sc, c_extent, A + j * sa, a_extent) || overlap(C + i * sc, c_extent, B + j * sb, b_extent))
                    return blas_error(CUBLAS_STATUS_INVALID_VALUE, "%s: result %d overlaps operand A or B of product %d",
                                      call, i, j);
    }
    if (refused_in_capture(h->stream, call))
        return blas_error(CUBLAS_STATUS_EXECUTION_FAILED, "%s: refused during the capture", call);
    float alpha_v = *alpha, beta_v = *beta; /* host values, read at the call (and kept in a recording) */
    cudaError_t err = enqueue(h->stream, [=]() {
        std::vector<float> a_rows_buf((size_t)m * k), b_cols_buf((size_t)n * k);
        for (int b = 0; b < count; b++) {
            const float *Ab = A + (long long)b * sa, *Bb = B + (long long)b * sb;
            float *Cb = C + (long long)b * sc;
            /* op(A)'s rows and op(B)'s columns, each contiguous: row i of op(A) is a[i*k ..] */
            for (int i = 0; i < m; i++)
                for (int p = 0; p < k; p++) a_rows_buf[(size_t)i * k + p] = at ? Ab[p + (size_t)i * lda] : Ab[i + (size_t)p * lda];
            for (int j = 0; j < n; j++)
                for (int p = 0; p < k; p++) b_cols_buf[(size_t)j * k + p] = bt ? Bb[j + (size_t)p * ldb] : Bb[p + (size_t)j * ldb];
            for (int j = 0; j < n; j++)
                for (int i = 0; i < m; i++) {
                    const float *x = &a_rows_buf[(size_t)i * k], *y = &b_cols_buf[(size_t)j * k];
                    double s0 = 0, s1 = 0, s2 = 0, s3 = 0; /* fixed order: the same bits every time */
                    int p = 0;
                    for (; p + 4 <= k; p += 4) {
                        s0 += (double)x[p] * y[p];
                        s1 += (double)x[p + 1] * y[p + 1];
                        s2 += (double)x[p + 2] * y[p + 2];
                        s3 += (double)x[p + 3] * y[p + 3];
                    }
                    for (; p < k; p++) s0 += (double)x[p] * y[p];
                    double v = (double)alpha_v * ((s0 + s1) + (s2 + s3));
                    float *c = &Cb[i + (size_t)j * ldc];
                    /* beta = 0: C is not read (it may hold anything, NaN included), as in cuBLAS */
                    *c = (float)(beta_v == 0.0f ? v : v + (double)beta_v * *c);
                }
        }
    });
    if (err != cudaSuccess) return blas_error(CUBLAS_STATUS_EXECUTION_FAILED, "%s: %s", call, cudaGetErrorString(err));
    return CUBLAS_STATUS_SUCCESS;
}

EXPORT cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                  int n, int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                                  const float *beta, float *C, int ldc) {
    return gemm("cublasSgemm", handle, transa, transb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

EXPORT cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t handle, cublasOperation_t transa,
                                                cublasOperation_t transb, int m, int n, int k, const float *alpha,
                                                const float *A, int lda, long long strideA, const float *B, int ldb,
                                                long long strideB, const float *beta, float *C, int ldc,
                                                long long strideC, int batchCount) {
    return gemm("cublasSgemmStridedBatched", handle, transa, transb, m, n, k, alpha, A, lda, strideA, B, ldb, strideB,
                beta, C, ldc, strideC, batchCount);
}
