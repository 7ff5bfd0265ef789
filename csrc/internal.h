/*
 * Shared by the core's translation units only: error reporting, the RNG, and the structs of
 * the network, its work buffers, the optimizer and the trainer. Not part of the public
 * interface (sdagd.h).
 */
#ifndef SDAGD_INTERNAL_H
#define SDAGD_INTERNAL_H

#include "backend.h"
#include "sdagd.h"

/* Records a printf-style message for sdagd_last_error() and returns `status`. */
sdagd_status sdagd_fail(sdagd_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- RNG: SplitMix64 seeding a xoshiro256** stream (Blackman & Vigna 2018). Portable:
 *      the same seed gives the same numbers on every platform and compiler. */
typedef struct { uint64_t s[4]; } rng_state;
void rng_seed(rng_state *rng, uint64_t seed, uint64_t stream);
uint64_t rng_next(rng_state *rng);
double rng_uniform(rng_state *rng);               /* [0, 1), 53 random bits */
double rng_normal(rng_state *rng);                /* N(0, 1), Box-Muller */
uint64_t rng_below(rng_state *rng, uint64_t n);   /* uniform in [0, n), unbiased */

/* The epoch's order as int32 row indices (N < 2^31), the same as sdagd_shuffle_order. */
void shuffle_order32(int32_t *perm, int64_t N, uint64_t seed, int64_t epoch);

/* ---- Work buffers of K networks for C rows (backend memory), grown on demand, never per
 *      step. The curvature buffers (x_sq, h_sq, s, w_sq) exist only once a step needed h. */
typedef struct {
    uint64_t generation;   /* unique per allocation: tells recorded steps that buffers moved */
    int K, capacity, curvature;
    float *x, *x_sq, *h, *h_sq, *pre, *delta[2], *s[2], *w_sq;
    int32_t *y;
    double *partials;
    size_t *h_off;   /* host (L) */
    size_t h_width;  /* sum of the widths n_1 .. n_L */
} workspace;

/* ---- The network. */
struct mlp {
    const sdagd_backend_ops *be;
    void *ctx;             /* the backend's per-network context (a CUDA stream and handle) */
    int device;
    int n_layers;          /* weight layers, L */
    int *sizes;            /* (L + 1) */
    size_t *w_off, *b_off; /* (L) offsets of W_l, b_l in the slabs */
    size_t n_params;       /* P */
    int max_width;         /* max over sizes[1..] */
    size_t max_layer;      /* largest W_l, in elements */
    size_t hidden_units;   /* sum of the hidden widths */
    int hidden, output, loss;
    float leaky_slope;
    float *params;         /* (P) */
    workspace ws;          /* K = 1, for forward, evaluate and gradients */
    /* the K = 1 group's per-network arrays and scalars, backend memory */
    int32_t *act;          /* (1) */
    float *slope;          /* (1) */
    uint8_t *active;       /* (1) always 1 */
    int64_t *counters;     /* (2) batch start and loss slot, both 0 */
    double *loss_slot;     /* (1) */
    int64_t *error_slot;   /* (1) */
    double *segments;      /* (2L) sums of squares of dW_l, db_l */
    size_t *offsets;       /* (2L + 1) w_off, b_off and P in backend memory, for the kernels */
    float *grad, *hess;    /* (P) for mlp_loss_grad, allocated on first use */
};

/* The data set's buffers (backend memory) and device. */
const float *dataset_inputs(const sdagd_dataset *ds);
const int32_t *dataset_labels(const sdagd_dataset *ds);
uint64_t dataset_serial(const sdagd_dataset *ds); /* unique per data set in the process */
uint64_t next_serial(void);                       /* a fresh one, for buffers and data sets */
int dataset_device(const sdagd_dataset *ds);
int dataset_width(const sdagd_dataset *ds);
int32_t dataset_max_label(const sdagd_dataset *ds); /* largest label: checked against each network's outputs */

sdagd_status workspace_reserve(mlp *net, workspace *ws, int K, int rows, int curvature);
void workspace_free(const mlp *net, workspace *ws);

/* The group view of K networks shaped like `net` over workspace `ws`. */
void group_view_init(group_view *g, const mlp *net, const workspace *ws, int K, const int32_t *act,
                     const float *slope, uint8_t *active);

/* SDAGD_ERR_ARG naming the first label outside [0, n_out). */
sdagd_status mlp_check_labels(const mlp *net, const int32_t *labels, int64_t n);

/* Forward pass of B rows already in the group's x (or at `in` for layer 0). */
sdagd_status mlp_forward_group(const mlp *net, const group_view *g, int B, const float *in, size_t in_stride,
                               slab params, int want_sq, int64_t *saturated, uint8_t *ever_active);

/* Backward sweep (docs/algorithms.md 3 and 4) after a loss call with want_delta: gradient into grad and,
 * if hess.p, the truncated Hessian diagonal into hess; per-layer segment sums of squares. */
sdagd_status mlp_backward_group(const mlp *net, const group_view *g, int B, slab params, slab grad, slab hess,
                                double *segments);

/* ---- Optimizers. */
struct optimizer {
    optim_config config;
    const mlp *net;        /* made for this network's shape and backend (not owned) */
    size_t n;              /* P */
    int n_slabs;           /* state slabs in use, 0..2 */
    float *state[2];       /* (P) each, backend memory; meaning per kind: tables.h */
    int64_t step;          /* steps taken */
};

/* The hyperparameters as the kernels read them, with this epoch's radius. */
optim_hyper optim_hyper_for(const optimizer *opt, int64_t epoch);
/* Does step `step` of this optimizer need the Hessian diagonal? */
int optim_needs_hessian_at(const optimizer *opt, int64_t step);
/* When optimizers of this kind need the Hessian diagonal (tables.h: sdagd_curvature_need). */
int optim_curvature_need(int kind);
/* Does this optimizer use the Hessian diagonal at all (SDAGD, SDLM)? */
int optim_uses_curvature(const optimizer *opt);
const char *optimizer_name(int kind);

#endif
