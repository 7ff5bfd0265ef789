/*
 * Would the step's products gain from a GEMM of our own that never packs the weights?
 * (BENCHMARKS.md 0.5.) At batch 100 a BLAS call packs the 700x784 weight matrix for every
 * product: 12 % of a step's samples (0.3). The issue proposed keeping packed weights between
 * the forward and the backward products; this probe goes one step further and needs no packed
 * weights at all, by choosing for each product which operand is broadcast element by element
 * (any layout will do) and which is loaded in vectors (its rows must be contiguous):
 *
 *   forward          Z^T (700x100) = W (700x784) X^T (784x100)       broadcast W, vectors along
 *                    the batch of the feature-major input (packed in 16-column panels: 78 K floats)
 *   backward delta   D_x (100x784) = D (100x700) W (700x784)          broadcast D, vectors along
 *                    W's rows, k in blocks of 256 so that a 256x16 panel of W stays in L1
 *   weight gradient  G (700x784) = D^T (700x100) X (100x784) / B     broadcast D^T, vectors along
 *                    the units of a batch-major copy of the input (made here, and timed)
 *
 * One 6x16 AVX2 + FMA micro-kernel serves all three. Compared with OpenBLAS computing the same
 * products batch-major (the core's calls), one thread, cycling through five weight matrices as
 * a step does; best of 20 repetitions, GFLOP/s, rounds interleaving the two because the
 * machine's speed moves from minute to minute.
 *
 *   LIB=$(python -c "import scipy_openblas32 as s; print(s.get_lib_dir())")
 *   gcc -O3 -funroll-loops -std=gnu11 benchmarks/layout_probe.c -o /tmp/layout_probe \
 *       -L"$LIB" -lscipy_openblas -Wl,-rpath,"$LIB"
 *   /tmp/layout_probe [forward k-block (784)] [backward k-block (256)] [pack the forward's input (1)]
 *
 * Not part of the library: a probe, kept so that the decision it supports can be re-measured.
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "probe_common.h"


enum { BATCH = 100, WIDTH = 700, INPUTS = 784, MATRICES = 5, REPEATS = 20, ROUNDS = 3 };
enum { MR = 6, NR = 16 };
static int KC_FORWARD = 784, KC_BACKWARD = 256;

/* C[r][0..n) = alpha sum_k A(r, k) B[k][0..n) for r < mr (<= MR), n <= NR, where
 * A(r, k) = a[r ars + k aks]: the broadcast operand, wherever it lies; B's rows contiguous. */
__attribute__((target("avx2,fma"))) static inline void tile(int K, int mr, int n, const float *a, long ars,
                                                           long aks, const float *b, long ldb, float *c,
                                                           long ldc, float alpha, int add) {
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    __m256 s = _mm256_set1_ps(alpha);
    const float *row[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) row[r] = a + (r < mr ? r : 0) * ars; /* short tiles repeat row 0 */
    if (n == NR) {
        long o = 0;
        for (int k = 0; k < K; k++, o += aks, b += ldb) {
            __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
            for (int r = 0; r < MR; r++) {
                __m256 x = _mm256_broadcast_ss(row[r] + o);
                acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
            }
        }
    } else { /* the edge: at most 8 columns here (the batch's last 4) */
        __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        long o = 0;
        for (int k = 0; k < K; k++, o += aks, b += ldb) {
            __m256 b0 = _mm256_maskload_ps(b, mask);
#pragma GCC unroll 6
            for (int r = 0; r < MR; r++) acc[r][0] = _mm256_fmadd_ps(_mm256_broadcast_ss(row[r] + o), b0, acc[r][0]);
        }
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) /* unrolled, so that acc stays in registers */
            if (r < mr) {
                __m256 v = _mm256_mul_ps(acc[r][0], s);
                if (add) v = _mm256_add_ps(v, _mm256_maskload_ps(c + r * ldc, mask));
                _mm256_maskstore_ps(c + r * ldc, mask, v);
            }
        return;
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
        if (r < mr) {
            __m256 v0 = _mm256_mul_ps(acc[r][0], s), v1 = _mm256_mul_ps(acc[r][1], s);
            if (add) {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(c + r * ldc));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(c + r * ldc + 8));
            }
            _mm256_storeu_ps(c + r * ldc, v0);
            _mm256_storeu_ps(c + r * ldc + 8, v1);
        }
}

/* C (M x N, ldc) = alpha A B with A(m, k) = a[m ars + k aks], B (K x N, ldb) row-major, k in
 * blocks of kc. rows_outer: a row tile's broadcast operand stays in L1 while it sweeps the
 * columns (the broadcast operand is the big one); else a column panel of B stays in L1 while
 * the row tiles sweep it (B is the big one). */
static void one_tile(int K, int mr, int n, const float *a, long ars, long aks, const float *b, long ldb, float *c,
                     long ldc, float alpha, int add) {
    if (n != NR && n > 8) { /* two edge tiles: 8, then the rest */
        tile(K, mr, 8, a, ars, aks, b, ldb, c, ldc, alpha, add);
        tile(K, mr, n - 8, a, ars, aks, b + 8, ldb, c + 8, ldc, alpha, add);
    } else
        tile(K, mr, n, a, ars, aks, b, ldb, c, ldc, alpha, add);
}

static void gemm_broadcast(int M, int N, int K, float alpha, const float *a, long ars, long aks, const float *b,
                           long ldb, float *c, long ldc, int kc, int rows_outer) {
    for (int p = 0; p < K; p += kc) {
        int kb = K - p < kc ? K - p : kc, add = p > 0;
        const float *ap = a + p * aks, *bp = b + (long)p * ldb;
        if (rows_outer)
            for (int i = 0; i < M; i += MR)
                for (int j = 0; j < N; j += NR)
                    one_tile(kb, M - i < MR ? M - i : MR, N - j < NR ? N - j : NR, ap + i * ars, ars, aks, bp + j,
                             ldb, c + i * ldc + j, ldc, alpha, add);
        else
            for (int j = 0; j < N; j += NR)
                for (int i = 0; i < M; i += MR)
                    one_tile(kb, M - i < MR ? M - i : MR, N - j < NR ? N - j : NR, ap + i * ars, ars, aks, bp + j,
                             ldb, c + i * ldc + j, ldc, alpha, add);
    }
}

/* ---- the step's three products, batch-major through OpenBLAS and feature-major own --------- */

static float *weights[MATRICES], *x, *xt, *delta, *deltat, *out, *outt, *back, *backt, *grad;

static void transpose(const float *src, int rows, int cols, float *dst) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

static float *panels; /* X^T packed in 16-column panels: K rows of 16, panel after panel */

static void pack_panels(const float *src, int K, int N, long ld) {
    for (int j = 0; j < N; j += NR) {
        int n = N - j < NR ? N - j : NR;
        float *dst = panels + (size_t)j * K;
        for (int k = 0; k < K; k++) {
            memcpy(dst + k * NR, src + k * ld + j, n * sizeof(float));
            for (int t = n; t < NR; t++) dst[k * NR + t] = 0.0f;
        }
    }
}

static int PACK_FORWARD = 1;

static void product(int which, int own, const float *W) {
    switch (which) {
    case 0:
        if (own && PACK_FORWARD) {
            pack_panels(xt, INPUTS, BATCH, BATCH);
            for (int i = 0; i < WIDTH; i += MR)
                for (int j = 0; j < BATCH; j += NR)
                    one_tile(INPUTS, WIDTH - i < MR ? WIDTH - i : MR, BATCH - j < NR ? BATCH - j : NR, W + (long)i * INPUTS,
                             INPUTS, 1, panels + (size_t)j * INPUTS, NR, outt + i * BATCH + j, BATCH, 1.0f, 0);
        } else if (own) gemm_broadcast(WIDTH, BATCH, INPUTS, 1.0f, W, INPUTS, 1, xt, BATCH, outt, BATCH, KC_FORWARD, 1);
        else scipy_cblas_sgemm(ROW_MAJOR, NO_TRANS, TRANS, BATCH, WIDTH, INPUTS, 1.0f, x, INPUTS, W, INPUTS, 0.0f, out, WIDTH);
        break;
    case 1:
        if (own) gemm_broadcast(BATCH, INPUTS, WIDTH, 1.0f, delta, WIDTH, 1, W, INPUTS, back, INPUTS, KC_BACKWARD, 0);
        else scipy_cblas_sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, BATCH, INPUTS, WIDTH, 1.0f, delta, WIDTH, W, INPUTS, 0.0f, back, INPUTS);
        break;
    default:
        if (own) { /* the batch-major copy of the layer's input is part of the cost */
            transpose(xt, INPUTS, BATCH, x);
            gemm_broadcast(WIDTH, INPUTS, BATCH, 1.0f / BATCH, deltat, BATCH, 1, x, INPUTS, grad, INPUTS, BATCH, 1);
        } else
            scipy_cblas_sgemm(ROW_MAJOR, TRANS, NO_TRANS, WIDTH, INPUTS, BATCH, 1.0f / BATCH, delta, WIDTH, x, INPUTS, 0.0f, grad, INPUTS);
        break;
    }
}

/* Largest difference between the two ways, on the same numbers (own results transposed back). */
static double largest_difference(int which) {
    int rows = which == 0 ? BATCH : which == 1 ? BATCH : WIDTH, cols = which == 0 ? WIDTH : INPUTS;
    size_t n = (size_t)rows * cols;
    float *reference = malloc(n * sizeof(float)), *mine = malloc(n * sizeof(float));
    product(which, 0, weights[0]);
    memcpy(reference, which == 0 ? out : which == 1 ? back : grad, n * sizeof(float));
    product(which, 1, weights[0]);
    if (which == 0) transpose(outt, WIDTH, BATCH, mine);
    else if (which == 1) memcpy(mine, back, n * sizeof(float));
    else memcpy(mine, grad, n * sizeof(float));
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)reference[i] - mine[i];
        if (d < 0) d = -d;
        if (d > worst) worst = d;
    }
    free(reference);
    free(mine);
    return worst;
}

static double gflops(int which, int own) {
    double best = 1e30;
    for (int rep = 0; rep < REPEATS; rep++) {
        double t0 = seconds();
        for (int m = 0; m < MATRICES; m++) product(which, own, weights[m]);
        double dt = seconds() - t0;
        best = dt < best ? dt : best;
    }
    return 2.0 * BATCH * WIDTH * INPUTS * MATRICES / best / 1e9;
}

int main(int argc, char **argv) {
    if (argc > 1) KC_FORWARD = atoi(argv[1]);
    if (argc > 2) KC_BACKWARD = atoi(argv[2]);
    if (argc > 3) PACK_FORWARD = atoi(argv[3]);
    panels = aligned_alloc(64, (size_t)(BATCH + NR) * INPUTS * sizeof(float));
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        fprintf(stderr, "layout_probe: this processor has no AVX2 + FMA; the probe's kernel needs both\n");
        return 1;
    }
    scipy_openblas_set_num_threads(1);
    x = random_matrix((size_t)BATCH * INPUTS);
    xt = random_matrix((size_t)BATCH * INPUTS);
    transpose(x, BATCH, INPUTS, xt);
    delta = random_matrix((size_t)BATCH * WIDTH);
    deltat = random_matrix((size_t)BATCH * WIDTH);
    transpose(delta, BATCH, WIDTH, deltat);
    out = random_matrix((size_t)BATCH * WIDTH);
    outt = random_matrix((size_t)BATCH * WIDTH);
    back = random_matrix((size_t)BATCH * INPUTS);
    backt = random_matrix((size_t)BATCH * INPUTS);
    grad = random_matrix((size_t)WIDTH * INPUTS);
    for (int m = 0; m < MATRICES; m++) weights[m] = random_matrix((size_t)WIDTH * INPUTS);
    static const char *names[3] = {"forward (100x700x784)", "backward delta (100x784x700)",
                                   "weight gradient (700x784x100)"};
    for (int which = 0; which < 3; which++)
        printf("%s: own (no packed weights) against OpenBLAS, largest difference %.2g\n", names[which],
               largest_difference(which));
    printf("\n| round | FMA peak, 1 thread | %s: OpenBLAS, own | %s: OpenBLAS, own | %s: OpenBLAS, own |\n"
           "| --- | --- | --- | --- | --- |\n",
           names[0], names[1], names[2]);
    for (int round = 1; round <= ROUNDS; round++) {
        printf("| %d | %.0f |", round, fma_peak());
        for (int which = 0; which < 3; which++) printf(" %.0f, %.0f |", gflops(which, 0), gflops(which, 1));
        printf("\n");
        fflush(stdout);
    }
    return 0;
}
