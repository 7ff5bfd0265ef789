/*
 * The network inside the core (mlp.c): its struct, its work buffers and the forward pass and
 * backward sweep over a group of K networks, as the trainer (train.c) drives them.
 */
#ifndef SDAGD_NETWORK_H
#define SDAGD_NETWORK_H

#include "backend.h"
#include "sdagd.h"

/* Work buffers of K networks for C rows (backend memory), grown on demand, never per
 * step. The curvature buffers (x_sq, out_sq, s, w_sq) exist only once a step needed h. */
typedef struct {
    uint64_t generation;   /* unique per allocation: tells recorded steps that buffers moved */
    int K, capacity, curvature;
    float *x, *x_sq, *out, *out_sq, *pre, *delta[2], *s[2], *w_sq;
    int32_t *y;
    double *partials;
    size_t *out_off; /* host (L): layer l's outputs (h_l in docs/algorithms.md) */
    size_t out_width; /* sum of the widths n_1 .. n_L */
} workspace;

/* The network. */
struct sdagd_mlp {
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

sdagd_status workspace_reserve(sdagd_mlp *net, workspace *ws, int K, int rows, int curvature);
void workspace_free(const sdagd_mlp *net, workspace *ws);

/* The group view of K networks shaped like `net` over workspace `ws`. */
void group_view_init(group_view *g, const sdagd_mlp *net, const workspace *ws, int K, const int32_t *act,
                     const float *slope, uint8_t *active);

/* SDAGD_ERR_ARG naming the first label outside [0, n_out). */
sdagd_status mlp_check_labels(const sdagd_mlp *net, const int32_t *labels, int64_t n);

/* Forward pass of B rows already in the group's x (or at `in` for layer 0). */
sdagd_status mlp_forward_group(const sdagd_mlp *net, const group_view *g, int B, const float *in, size_t in_stride,
                               slab params, int want_sq, int64_t *saturated, uint8_t *ever_active);

/* Backward sweep (docs/algorithms.md 3 and 4) after a loss call with want_delta: gradient into grad and,
 * if hess.p, the truncated Hessian diagonal into hess; per-layer segment sums of squares. */
sdagd_status mlp_backward_group(const sdagd_mlp *net, const group_view *g, int B, slab params, slab grad, slab hess,
                                double *segments);


/* Memory of the network's backend (host memory on the CPU, the GPU's on CUDA). */
static inline sdagd_status mlp_alloc_on(const sdagd_mlp *net, void **p, size_t bytes) {
    *p = NULL;
    return bytes ? net->be->alloc(net->ctx, p, bytes) : SDAGD_OK;
}

static inline void mlp_free_on(const sdagd_mlp *net, void *p) {
    if (p) net->be->dealloc(net->ctx, p);
}

#endif
