/*
 * What the C probes of benchmarks/ share (gemm_probe.c, layout_probe.c): OpenBLAS's CBLAS
 * entry points as scipy-openblas32 names them, a monotonic clock, random matrices, and the
 * core's arithmetic limit (a tight AVX2 + FMA loop on one thread). Not part of the library.
 */
#ifndef SDAGD_PROBE_COMMON_H
#define SDAGD_PROBE_COMMON_H

#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void scipy_cblas_sgemm(int, int, int, int, int, int, float, const float *, int, const float *, int, float,
                       float *, int);
void scipy_openblas_set_num_threads(int);
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static float *random_matrix(size_t n) {
    float *p = aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64);
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX - 0.5f;
    return p;
}

__attribute__((target("avx2,fma"))) static double fma_peak(void) {
    enum { CHAINS = 10, ITERATIONS = 20000000 };
    __m256 acc[CHAINS], m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_set1_ps((float)i);
    double t0 = seconds();
    for (int it = 0; it < ITERATIONS; it++)
#pragma GCC unroll 10
        for (int i = 0; i < CHAINS; i++) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
    double dt = seconds() - t0;
    float sink = 0;
    for (int i = 0; i < CHAINS; i++) sink += acc[i][0];
    if (sink == 12345.0f) puts(""); /* keeps the loop */
    return 2.0 * 8 * CHAINS * (double)ITERATIONS / dt / 1e9;
}

#endif
