/*
 * Two measurements behind BENCHMARKS.md 0.5: would the core gain from its own GEMM kernel, and
 * what does cutting one batch-100 product across two threads cost?
 *
 *   LIB=$(python -c "import scipy_openblas32 as s; print(s.get_lib_dir())")
 *   gcc -O2 -std=gnu11 -pthread benchmarks/gemm_probe.c -o /tmp/gemm_probe \
 *       -L"$LIB" -lscipy_openblas -Wl,-rpath,"$LIB"
 *   /tmp/gemm_probe
 *
 * "kernel": the three products of a training step at the paper's shapes (forward X W^T,
 * backward delta W, weight gradient delta^T X / B), cycling through five weight matrices as
 * a step does, on one thread: OpenBLAS against a plain BLIS-style GEMM (both operands packed,
 * a 6x16 AVX2 + FMA micro-kernel, k blocked by 256). "split": two threads computing one
 * 100x700x700 product in S column blocks taken from a shared counter (the core's scheme),
 * against one thread. "peak": a tight FMA loop on one thread, the core's arithmetic limit.
 * Every figure is the best of 20 repetitions, in GFLOP/s; rounds interleave the variants
 * because this machine's speed moves by tens of percent from minute to minute.
 *
 * Not part of the library: a probe, kept so that the decision it supports can be re-measured.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "probe_common.h"


enum { BATCH = 100, WIDTH = 700, INPUTS = 784, MATRICES = 5, REPEATS = 20, ROUNDS = 3 };

/* ---- a plain BLIS-style GEMM --------------------------------------------------------------- */

enum { MR = 6, NR = 16, KC = 256 };

/* C[0..6)[0..16) (+)= sum over kc of a[k][0..6) x b[k][0..16); alpha applied on the last block. */
__attribute__((target("avx2,fma"))) static void micro_kernel(int kc, const float *restrict a,
                                                             const float *restrict b, float *c, int ldc,
                                                             int first, int last, float alpha) {
    __m256 acc[MR][2]; /* twelve registers: every loop over r and h below is unrolled */
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) acc[r][h] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(c + r * ldc + 8 * h);
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            __m256 x = _mm256_broadcast_ss(a + r);
            acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
        }
    }
    __m256 scale = _mm256_set1_ps(last ? alpha : 1.0f);
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) _mm256_storeu_ps(c + r * ldc + 8 * h, _mm256_mul_ps(acc[r][h], scale));
}

static float *packed_a, *packed_b;

/* C (M, N) = alpha sum_k A(m, k) B(k, n), A(m, k) = a[m sam + k sak], B(k, n) = b[k sbk + n sbn]:
 * the strides express every transpose; packing copies both into the kernel's order. */
static void own_gemm(int M, int N, int K, float alpha, const float *a, long sam, long sak, const float *b,
                     long sbk, long sbn, float *C, int ldc) {
    int panels = (M + MR - 1) / MR;
    float tile[MR * NR] __attribute__((aligned(32)));
    for (int pc = 0; pc < K; pc += KC) {
        int kc = K - pc < KC ? K - pc : KC, first = pc == 0, last = pc + kc == K;
        for (int p = 0; p < panels; p++)
            for (int k = 0; k < kc; k++)
                for (int r = 0; r < MR; r++) {
                    int m = p * MR + r;
                    packed_a[((size_t)p * kc + k) * MR + r] = m < M ? a[m * sam + (pc + k) * sak] : 0.0f;
                }
        for (int j = 0; j < N; j += NR) {
            int nr = N - j < NR ? N - j : NR;
            if (sbn == 1 && nr == NR)
                for (int k = 0; k < kc; k++) memcpy(packed_b + k * NR, b + (pc + k) * sbk + j, NR * sizeof(float));
            else
                for (int k = 0; k < kc; k++)
                    for (int n = 0; n < NR; n++)
                        packed_b[k * NR + n] = n < nr ? b[(pc + k) * sbk + (j + n) * sbn] : 0.0f;
            for (int p = 0; p < panels; p++) {
                int mr = M - p * MR < MR ? M - p * MR : MR;
                float *c = C + (size_t)p * MR * ldc + j;
                const float *ap = packed_a + (size_t)p * MR * kc;
                if (mr == MR && nr == NR) {
                    micro_kernel(kc, ap, packed_b, c, ldc, first, last, alpha);
                    continue;
                }
                if (!first)
                    for (int r = 0; r < mr; r++) memcpy(tile + r * NR, c + r * ldc, nr * sizeof(float));
                micro_kernel(kc, ap, packed_b, tile, NR, first, last, alpha);
                for (int r = 0; r < mr; r++) memcpy(c + r * ldc, tile + r * NR, nr * sizeof(float));
            }
        }
    }
}

/* ---- the step's three products, both ways ---------------------------------------------------- */

static float *weights[MATRICES], *x, *delta, *out, *grad;

/* product 0: out = x W^T; 1: x = delta W; 2: grad = delta^T x / B. own: this file's GEMM. */
static void product(int which, int own, const float *W) {
    float inv = 1.0f / BATCH;
    switch (which) {
    case 0:
        if (own) own_gemm(BATCH, WIDTH, INPUTS, 1.0f, x, INPUTS, 1, W, 1, INPUTS, out, WIDTH);
        else scipy_cblas_sgemm(ROW_MAJOR, NO_TRANS, TRANS, BATCH, WIDTH, INPUTS, 1.0f, x, INPUTS, W, INPUTS, 0.0f, out, WIDTH);
        break;
    case 1:
        if (own) own_gemm(BATCH, INPUTS, WIDTH, 1.0f, delta, WIDTH, 1, W, INPUTS, 1, x, INPUTS);
        else scipy_cblas_sgemm(ROW_MAJOR, NO_TRANS, NO_TRANS, BATCH, INPUTS, WIDTH, 1.0f, delta, WIDTH, W, INPUTS, 0.0f, x, INPUTS);
        break;
    default:
        if (own) own_gemm(WIDTH, INPUTS, BATCH, inv, delta, 1, WIDTH, x, INPUTS, 1, grad, INPUTS);
        else scipy_cblas_sgemm(ROW_MAJOR, TRANS, NO_TRANS, WIDTH, INPUTS, BATCH, inv, delta, WIDTH, x, INPUTS, 0.0f, grad, INPUTS);
        break;
    }
}

static double largest_difference(int which) {
    size_t n = which == 0 ? (size_t)BATCH * WIDTH : which == 1 ? (size_t)BATCH * INPUTS : (size_t)WIDTH * INPUTS;
    float *target = which == 0 ? out : which == 1 ? x : grad, *copy = malloc(n * sizeof(float));
    float *saved_x = NULL;
    if (which == 1) { /* the backward product overwrites x, an input of the others */
        saved_x = malloc(n * sizeof(float));
        memcpy(saved_x, x, n * sizeof(float));
    }
    product(which, 0, weights[0]);
    memcpy(copy, target, n * sizeof(float));
    product(which, 1, weights[0]);
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)copy[i] - target[i];
        worst = d < 0 ? (-d > worst ? -d : worst) : (d > worst ? d : worst);
    }
    if (saved_x) {
        memcpy(x, saved_x, n * sizeof(float));
        free(saved_x);
    }
    free(copy);
    return worst;
}

static double gflops_of_products(int which, int own) {
    double best = 1e30;
    for (int rep = 0; rep < REPEATS; rep++) {
        double t0 = seconds();
        for (int m = 0; m < MATRICES; m++) product(which, own, weights[m]);
        double dt = seconds() - t0;
        best = dt < best ? dt : best;
    }
    return 2.0 * BATCH * WIDTH * INPUTS * MATRICES / best / 1e9;
}

/* ---- one product cut into S column blocks on two threads -------------------------------------- */

static atomic_int next_block, blocks_done, generation;
static int blocks, layer;

static void take_blocks(void) {
    int j;
    while ((j = atomic_fetch_add(&next_block, 1)) < blocks) {
        int c0 = WIDTH * j / blocks, c1 = WIDTH * (j + 1) / blocks;
        scipy_cblas_sgemm(ROW_MAJOR, NO_TRANS, TRANS, BATCH, c1 - c0, WIDTH, 1.0f, x, WIDTH,
                          weights[layer] + (size_t)c0 * WIDTH, WIDTH, 0.0f, out + c0, WIDTH);
        atomic_fetch_add(&blocks_done, 1);
    }
}

static void *second_thread(void *unused) {
    (void)unused;
    for (int seen = 0;;) {
        int g;
        while ((g = atomic_load(&generation)) == seen) /* spins: the probe measures the split, not waking */
            ;
        if (g < 0) return NULL;
        seen = g;
        take_blocks();
    }
}

static double gflops_split(int S) {
    double best = 1e30;
    blocks = S;
    for (int rep = 0; rep < REPEATS; rep++) {
        double t0 = seconds();
        for (layer = 0; layer < MATRICES; layer++) {
            atomic_store(&next_block, 0);
            atomic_store(&blocks_done, 0);
            if (S > 1) atomic_fetch_add(&generation, 1);
            take_blocks();
            while (atomic_load(&blocks_done) < S)
                ;
        }
        double dt = seconds() - t0;
        best = dt < best ? dt : best;
    }
    return 2.0 * BATCH * WIDTH * WIDTH * MATRICES / best / 1e9;
}

int main(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
        fprintf(stderr, "gemm_probe: this processor has no AVX2 + FMA; the probe's kernel needs both\n");
        return 1;
    }
    scipy_openblas_set_num_threads(1);
    packed_a = aligned_alloc(64, (size_t)(WIDTH + MR) * KC * sizeof(float));
    packed_b = aligned_alloc(64, (size_t)KC * NR * sizeof(float));
    x = random_matrix((size_t)BATCH * INPUTS);
    delta = random_matrix((size_t)BATCH * WIDTH);
    out = random_matrix((size_t)BATCH * WIDTH);
    grad = random_matrix((size_t)WIDTH * INPUTS);
    for (int m = 0; m < MATRICES; m++) weights[m] = random_matrix((size_t)WIDTH * INPUTS);
    static const char *names[3] = {"forward x W^T (100x700x784)", "backward delta W (100x784x700)",
                                   "weight gradient delta^T x (700x784x100)"};
    for (int which = 0; which < 3; which++) /* the own GEMM must compute the same product */
        printf("%s: own GEMM against OpenBLAS, largest difference %.2g\n", names[which], largest_difference(which));
    printf("\n| round | FMA peak, 1 thread | %s: OpenBLAS, own | %s: OpenBLAS, own | %s: OpenBLAS, own |"
           " 100x700x700 on 2 threads in S blocks: S=1 (one thread), 2, 4, 8 |\n| --- | --- | --- | --- | --- | --- |\n",
           names[0], names[1], names[2]);
    for (int round = 1; round <= ROUNDS; round++) {
        printf("| %d | %.0f |", round, fma_peak());
        for (int which = 0; which < 3; which++)
            printf(" %.0f, %.0f |", gflops_of_products(which, 0), gflops_of_products(which, 1));
        /* the second thread spins while it waits, so it runs only for these columns */
        pthread_t helper;
        atomic_store(&generation, 0);
        pthread_create(&helper, NULL, second_thread, NULL);
        double split[4];
        for (int i = 0; i < 4; i++) split[i] = gflops_split(1 << i);
        atomic_store(&generation, -1);
        pthread_join(helper, NULL);
        printf(" %.0f, %.0f, %.0f, %.0f |\n", split[0], split[1], split[2], split[3]);
        fflush(stdout);
    }
    return 0;
}
