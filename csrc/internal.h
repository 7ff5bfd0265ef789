/*
 * Shared by the core's translation units only: error reporting, the RNG, the BLAS entry
 * point and the network struct. Not part of the public interface (sdagd.h).
 */
#ifndef SDAGD_INTERNAL_H
#define SDAGD_INTERNAL_H

#include "sdagd.h"

/* Records a printf-style message for sdagd_last_error() and returns `status`. */
sdagd_status sdagd_fail(sdagd_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
void sdagd_clear_error(void);

/* ---- RNG: SplitMix64 seeding a xoshiro256** stream (Blackman & Vigna 2018). Portable:
 *      the same seed gives the same numbers on every platform and compiler. */
typedef struct { uint64_t s[4]; } rng_state;
void rng_seed(rng_state *rng, uint64_t seed, uint64_t stream);
uint64_t rng_next(rng_state *rng);
double rng_uniform(rng_state *rng);               /* [0, 1), 53 random bits */
double rng_normal(rng_state *rng);                /* N(0, 1), Box-Muller */
uint64_t rng_below(rng_state *rng, uint64_t n);   /* uniform in [0, n), unbiased */

/* ---- Sum of x[i]^2 in double accuracy, vectorised (reduce.c). */
double sum_of_squares(const float *x, size_t n);

/* ---- BLAS: row-major single-precision GEMM, C = alpha op(A) op(B) + beta C. */
void blas_sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* ---- The network. All work buffers are allocated once (and grown only when a larger batch
 *      than ever before arrives), never per step. */
struct mlp {
    int n_layers;          /* weight layers, L + 1 */
    int *sizes;            /* (n_layers + 1) */
    size_t *w_off, *b_off; /* (n_layers) offsets of W_l, b_l in the slabs */
    size_t n_params;       /* P */
    int max_width;         /* max over sizes[1..] */
    int hidden, output, loss;
    float leaky_slope;
    float *params;         /* (P) */
    float *grad_work;      /* (P) the training step's gradient */
    float *w_squared;      /* (P) W o W for the Hessian recursion; allocated on first use */
    int capacity;          /* rows the buffers below hold */
    float **h;             /* (n_layers) each (capacity, n_{l+1}): layer outputs h_l */
    float *out_pre;        /* (capacity, n_out) output pre-activations, for the loss */
    float *delta, *delta_next;   /* (capacity, max_width) backprop error ping-pong */
    float *s, *s_next;           /* (capacity, max_width) Hessian recursion ping-pong */
    float *squared_input;        /* (capacity, max(n_0, max_width)) h_{l-1} o h_{l-1} */
    float *batch_x;              /* (capacity, n_0) gathered mini-batch rows */
    int32_t *batch_y;            /* (capacity) gathered labels */
};

sdagd_status mlp_reserve(mlp *net, int rows);

/* SDAGD_ERR_ARG naming the first label outside [0, n_out). */
sdagd_status mlp_check_labels(const mlp *net, const int32_t *labels, int64_t n);

/* Forward, summed loss and misclassified count, then (if grad) gradient and (if hess) the
 * Hessian diagonal, for B <= capacity rows. Labels are trusted (checked by the caller). */
sdagd_status mlp_batch_loss_grad(mlp *net, const float *X, const int32_t *labels, int B,
                                 double *loss_sum, int64_t *errors, float *grad, float *hess);

/* Adds this step's vanishing-gradient diagnostics (see train_stats) from the gradient and the
 * layer outputs the forward pass left in net->h; no-op when the arrays are NULL. */
void diagnostics_accumulate(const mlp *net, int B, const float *grad, train_stats *stats);

#endif
