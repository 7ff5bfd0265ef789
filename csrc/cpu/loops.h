/*
 * The CPU backend's elementwise loops (activations and their derivatives, reductions, the
 * optimizers' updates), compiled for AVX-512, for AVX2 + FMA and for baseline x86-64, and
 * one set chosen at run time: the best the processor has, or the one asked for (to measure
 * the AVX2 code on an AVX-512 machine, SDAGD_CPU_ISA=avx2). Every set gives the same bits
 * (no FMA contraction, the same order of every sum; tests/test_cpu_config.py).
 */
#ifndef SDAGD_CPU_LOOPS_H
#define SDAGD_CPU_LOOPS_H

#include <stddef.h>
#include <stdint.h>

#include "../backend.h"

typedef struct {
    const char *isa; /* "avx512", "avx2" or "baseline" */
    /* Bias, activation, h o h (sq may be NULL) and the diagnostics over one row's block of
     * columns; returns the number of saturated units. */
    int64_t (*hidden_epilogue)(int act, float slope, float *row, const float *b, int n, float *sq, uint8_t *ever);
    /* Sum of squares of x[0 .. n), in a fixed order. */
    double (*row_sum_of_squares)(const float *x, int n);
    /* dst[c] = scale * sum_r M[r, c] for the columns [c0, c1) of M (rows, n). */
    void (*column_sums)(float *dst, const float *M, int rows, int n, int c0, int c1, float scale);
    /* delta *= f'(h), s *= f'(h)^2 over one row's block (s may be NULL). */
    void (*activation_backward)(int act, float slope, const float *h, float *delta, float *s, int n);
    /* dst = src o src over the columns [c0, c1) of rows x ld matrices. */
    void (*square_block)(float *dst, const float *src, int rows, int ld, int c0, int c1);
    /* Sum of the squared SDAGD steps over [lo, hi), for max_step. */
    double (*sdagd_step_sq_range)(const optim_hyper *hp, const step_coef *c, const float *g, const float *fresh,
                                  const float *kept, float mu, size_t lo, size_t hi);
    /* One optimizer's update of [lo, hi); returns SDAGD's phase-1 count. */
    int64_t (*update_range)(optim_hyper hp, step_coef c, float *theta, const float *g, const float *fresh, float *s0,
                            float *s1, float mu, float scale, size_t lo, size_t hi);
    /* 1 when every x[lo .. hi) is finite. */
    int (*range_finite)(const float *x, size_t lo, size_t hi);
} cpu_loops;

/* The loops in use (chosen on first call). */
const cpu_loops *loops(void);

/* Chooses the loops: "auto" (or NULL) for the best this processor runs, or "avx512", "avx2",
 * "baseline". Returns the name of the set chosen, or NULL when `wanted` is unknown or the
 * processor cannot run it (the choice is then unchanged). */
const char *loops_choose(const char *wanted);

#endif
