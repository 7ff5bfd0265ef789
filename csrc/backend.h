/*
 * The backend table: the numerical operations of one MLP training step, which the CPU
 * (csrc/cpu/) and CUDA (cuda/) backends each implement, and nothing else. The algorithm
 * above it (mlp.c, optim.c, train.c: parameter layout, batch chunking, the order of the
 * backward sweep, SDAGD's per-group mu_k and max_step, divergence checks, statistics) is
 * written once and never branches on the device.
 *
 * Every operation works on a group of K networks of one shape at once (K = 1 for a single
 * network): per-network slabs of equal size lie a fixed number of elements apart (the
 * `*_stride` fields), so a backend can run the K networks as one batched product. Pointers
 * in these structs point to backend memory (device memory on CUDA, host memory on the CPU)
 * unless a comment says "host".
 *
 * Values that change from step to step (the batch offset into the permutation, the loss
 * slot, each network's step count) are read by the operations from backend memory rather
 * than passed as arguments, so that a backend can record one step and replay it (CUDA
 * graphs) with nothing to re-bind.
 *
 * Dimension letters: K networks, C rows of work-buffer capacity, B rows in this step,
 * N dataset rows, P parameters per network, L weight layers, n_l widths, S = 2L segments
 * (W_l and b_l of each layer), W the loss window.
 */
#ifndef SDAGD_BACKEND_H
#define SDAGD_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "sdagd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hyperparameters of one network's optimizer, as the update kernels read them ([K] in
 * backend memory). radius is this epoch's R (after a schedule). */
typedef struct {
    double radius, max_step;                    /* in double, as mu_k and the cap are computed */
    int32_t kind, curvature;                    /* curvature: tables.h's sdagd_curvature_need */
    int32_t norm, hessian_every, average;       /* average: SDAGD keeps a running mean of h */
    float lr, momentum, eps, mu, gamma, beta1, beta2, rho, hessian_scale;
} optim_hyper;

/* Per-network values of this step, derived from the step count by `prepare` ([K]). */
typedef struct {
    float step_size, inv_sqrt_bc2; /* Adam's bias corrections */
    int32_t fresh_hessian;         /* h was computed for this network in this step */
    int32_t first;                 /* the optimizer's first step: running averages start at h */
} step_coef;

/* Running per-network statistics of an epoch ([K] in backend memory), summed by the kernels. */
typedef struct {
    double mu_sum, mu_min, mu_max; /* SDAGD's mu_k over steps and norm groups */
    int64_t mu_count;
    int64_t phase1;                /* parameter updates with mu_k > h (greatest-descent phase) */
} net_stats;

/* The group the operations act on: shapes (host), per-network codes and the work buffers. */
typedef struct {
    int K;                     /* networks */
    int n_layers;              /* L weight layers */
    const int *sizes;          /* host (L + 1) widths n_0 .. n_L */
    const size_t *w_off, *b_off; /* host (L) offsets of W_l and b_l in a parameter slab */
    const size_t *offsets;     /* the same in backend memory, (2L + 1): w_off[l], then b_off[l]
                                * at L + l, then P */
    size_t P;                  /* parameters per network */
    int capacity;              /* C rows the work buffers hold */
    int output, loss;          /* shared output activation and loss */
    /* per network */
    const int32_t *act;        /* [K] hidden activation codes */
    const float *slope;        /* [K] leaky_relu slopes */
    uint8_t *active;           /* [K] 0 once a network has diverged: no more updates */
    /* work buffers, per network at the given strides (in elements) */
    float *x;                  /* (C, n_0) the batch's inputs */
    float *x_sq;               /* (C, n_0) x o x, for the first layer's curvature */
    int32_t *y;                /* (C) the batch's labels */
    size_t x_stride, y_stride;
    float *out, *out_sq;       /* layer outputs h_l and h_l o h_l: layer l at out_off[l], (C, n_{l+1}) */
    const size_t *out_off;     /* host (L) */
    size_t out_stride;
    float *pre;                /* (C, n_L) the output's pre-activation (cross-entropy) */
    size_t pre_stride;
    float *delta[2], *s[2];    /* (C, max width) backprop error and curvature, ping-pong */
    size_t d_stride;
    float *w_sq;               /* (largest W) W_l o W_l scratch */
    size_t w_sq_stride;
    double *partials;          /* (partials_stride) scratch for the backends' reductions */
    size_t partials_stride;
} group_view;

/* A parameter-sized slab of K networks: network k's slab starts at p + k * stride. */
typedef struct {
    float *p;
    size_t stride;
} slab;

typedef struct {
    const group_view *g;
    int B;
    const float *X;            /* (N, n_0) dataset */
    const int32_t *labels;     /* (N) */
    const int32_t *perm;       /* [K] (N) each network's order for this epoch */
    size_t perm_stride;
    const int64_t *start;      /* position of this batch in the permutation (1 value) */
    int want_sq;               /* also write x o x */
} gather_args;

typedef struct {
    const group_view *g;
    int layer, B;
    const float *in;           /* (B, n_in) per network at in_stride */
    size_t in_stride;
    slab params;
    int want_sq;               /* also write h o h (hidden layers, when h is needed this step) */
    int64_t *saturated;        /* [K][L] += saturated (row, unit) pairs, or NULL */
    uint8_t *ever_active;      /* [K] (sum of hidden widths) |= h > 0, or NULL */
    size_t active_offset;      /* this layer's first unit in ever_active */
    size_t active_stride;
} forward_args;

typedef struct {
    const group_view *g;
    int B;
    double *loss;              /* [K][window] summed loss of the batch */
    int64_t *errors;           /* [K][window] misclassified rows */
    int window;
    const int64_t *slot;       /* which of the window's entries this step writes (1 value) */
    int want_delta;            /* also delta_{L+1} (into delta[0]) ... */
    int want_s;                /* ... and s_{L+1} (into s[0]) */
} loss_args;

typedef struct {
    const group_view *g;
    int layer, B;
    int cur;                   /* delta[cur], s[cur] hold this layer's; the other receives the layer below's */
    slab params, grad;
    slab hess;                 /* p == NULL: no curvature this step */
    double *segments;          /* [K][S] sums of squares of dW_l, db_l (written, not added) */
} backward_args;

/* First thing after the backward sweep: a network whose batch loss is NaN or inf becomes
 * inactive (no update in this step or later). */
typedef struct {
    const group_view *g;
    const double *loss;        /* [K][window] as written by the loss operation */
    int window;
    const int64_t *slot;
    const optim_hyper *hyper;  /* [K] */
    const int64_t *step;       /* [K] optimizer steps taken */
    const double *segments;    /* [K][S] */
    float *mu;                 /* [K][L] out: mu_k of each layer's norm group */
    step_coef *coef;           /* [K] out */
    double *grad_sq;           /* [K][L] += mean square of dW_l (diagnostics) */
    net_stats *stats;          /* [K] SDAGD's mu statistics */
} prepare_args;

/* Every parameter of every active network, layer by layer: W_l and b_l use mu[k][l] (the
 * global norm repeats one value in every layer). */
typedef struct {
    const group_view *g;
    slab params, grad, hess, state0, state1;
    const optim_hyper *hyper;
    const step_coef *coef;
    const float *mu;           /* [K][L] */
    double *step_sq;           /* [K][L] scratch: squared step length per layer, for max_step */
    net_stats *stats;
} update_args;

typedef struct {
    const group_view *g;
    int B;
    int64_t *start;            /* += B */
    int64_t *slot;             /* = (slot + 1) % window */
    int window;
    int64_t *step;             /* [K] += 1 for active networks */
} advance_args;

typedef struct sdagd_backend_ops {
    int host_memory;  /* backend memory is host memory: inputs need no upload */
    int loss_window;  /* steps between read-backs of the per-step losses (1 on the CPU) */

    sdagd_status (*context_create)(void **ctx);
    void (*context_free)(void *ctx);
    /* Memory. alloc zeroes nothing; dealloc accepts NULL. */
    sdagd_status (*alloc)(void *ctx, void **p, size_t bytes);
    void (*dealloc)(void *ctx, void *p);
    sdagd_status (*upload)(void *ctx, void *dst, const void *src_host, size_t bytes);
    sdagd_status (*download)(void *ctx, void *dst_host, const void *src, size_t bytes);
    sdagd_status (*copy)(void *ctx, void *dst, const void *src, size_t bytes);
    sdagd_status (*zero)(void *ctx, void *dst, size_t bytes);

    /* Step recording (CUDA graphs), per recorder (one per trainer). replay launches the step
     * recorded under `key` and returns 1, returns 0 when none is, and -1 (message set) when
     * the launch failed; between capture_begin and capture_end the operations of one step are
     * recorded under `key`, then launched, unless `keep` is 0 (the step failed while being
     * recorded: the recording is dropped). recorder_clear drops every recording (the buffers
     * they use changed). All may be NULL. */
    sdagd_status (*recorder_create)(void *ctx, void **rec);
    void (*recorder_free)(void *ctx, void *rec);
    void (*recorder_clear)(void *ctx, void *rec);
    int (*replay)(void *ctx, void *rec, int key);
    sdagd_status (*capture_begin)(void *ctx, void *rec, int key);
    sdagd_status (*capture_end)(void *ctx, void *rec, int key, int keep);

    /* Numerics of one step, in the order the algorithm calls them. */
    sdagd_status (*gather)(void *ctx, const gather_args *a);
    sdagd_status (*forward)(void *ctx, const forward_args *a);   /* one layer: f(in W^T + b) */
    sdagd_status (*loss)(void *ctx, const loss_args *a);         /* loss, errors, output delta */
    sdagd_status (*backward)(void *ctx, const backward_args *a); /* one layer, see mlp.c */
    sdagd_status (*prepare)(void *ctx, const prepare_args *a);   /* mu_k, coefficients, stats */
    sdagd_status (*update)(void *ctx, const update_args *a);     /* the optimizer step */
    sdagd_status (*advance)(void *ctx, const advance_args *a);   /* end of step counters */
    /* ok_host[k] = every one of x[k*stride .. k*stride + n) is finite, for k < K. */
    sdagd_status (*all_finite)(void *ctx, const float *x, size_t n, size_t stride, int K, uint8_t *ok_host);
} sdagd_backend_ops;

/* The table of a device: the CPU's always; CUDA's from its shared library, loaded on first
 * use. SDAGD_ERR_DEVICE with a message saying why when it cannot be had. */
sdagd_status backend_for_device(int device, const sdagd_backend_ops **ops);

const sdagd_backend_ops *cpu_backend(void);

/* What a backend library may call back into the core for: the error message. */
typedef struct {
    sdagd_status (*fail)(sdagd_status status, const char *fmt, ...);
} sdagd_host_services;

/* Exported by the CUDA library (libsdagd_cuda.so). */
typedef const sdagd_backend_ops *(*sdagd_cuda_entry_fn)(const sdagd_host_services *host);
#define SDAGD_CUDA_ENTRY "sdagd_cuda_backend"

#ifdef __cplusplus
}
#endif
#endif /* SDAGD_BACKEND_H */
