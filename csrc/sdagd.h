/*
 * sdagd C core: public interface.
 *
 * A fully connected network (MLP) in float32, its backprop gradient, the truncated diagonal
 * Hessian of Tan & Lim / LeCun 1998, the optimizers of ALGORITHMS.md section 5 and a training
 * loop. Plain C11, no Python: the CPython extension (sdagd/_core.c) only validates and calls.
 *
 * Conventions
 *   - Every function that can fail returns an sdagd_status; on failure a message is available
 *     from sdagd_last_error() (thread-local, so concurrent networks in threads do not clash).
 *     Nothing here prints or exits.
 *   - Arrays are row-major float32. A batch X is (B, n_0); labels are int32 in [0, n_out).
 *   - Parameters live in one flat slab: for each layer l = 1..L+1, W_l (n_l, n_{l-1}) then
 *     b_l (n_l). Gradients, Hessian diagonal and optimizer state use the same layout, so an
 *     optimizer is one flat loop and a host/device copy is one call.
 *   - The `device` field selects the backend. Pointers into network-owned memory are never
 *     handed out: parameters and results cross the interface through caller-owned host
 *     buffers, so a CUDA backend can keep its slabs on the GPU behind the same calls.
 *
 * Dimension letters used in comments: B batch rows, N dataset rows, P number of parameters,
 * n_l width of layer l (n_0 inputs, n_{L+1} outputs).
 */
#ifndef SDAGD_H
#define SDAGD_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    SDAGD_OK = 0,
    SDAGD_ERR_ARG = 1,         /* a bad argument: caller's fault, message says which */
    SDAGD_ERR_NOMEM = 2,       /* an allocation failed */
    SDAGD_ERR_NONFINITE = 3,   /* loss or parameters became NaN/inf (divergence) */
    SDAGD_ERR_INTERRUPTED = 4, /* the poll callback asked to stop */
    SDAGD_ERR_DEVICE = 5       /* backend not available or failed */
} sdagd_status;

/* Message describing the last failure on this thread ("" if none). */
const char *sdagd_last_error(void);

/* ------------------------------------------------------------------------------------------ */
/* Network                                                                                     */

typedef enum { ACT_SIGMOID = 0, ACT_RELU, ACT_TANH, ACT_LEAKY_RELU, ACT_LINEAR, ACT_SOFTMAX } sdagd_activation;
typedef enum { LOSS_MSE = 0, LOSS_CE } sdagd_loss;
typedef enum { INIT_XAVIER_UNIFORM = 0, INIT_HE_NORMAL } sdagd_init;
typedef enum { DEVICE_CPU = 0, DEVICE_CUDA } sdagd_device;

typedef struct {
    int n_layers;         /* number of weight layers, L + 1 >= 1 */
    const int *sizes;     /* (n_layers + 1): n_0 .. n_{L+1}, each >= 1 */
    int hidden;           /* sdagd_activation for hidden layers (sigmoid, relu, tanh, leaky_relu) */
    int output;           /* sdagd_activation for the output (sigmoid, linear, softmax) */
    int loss;             /* sdagd_loss; softmax output <=> cross-entropy */
    float leaky_slope;    /* slope s of leaky_relu for x <= 0, in [0, 1) */
    int device;           /* sdagd_device */
    int batch_capacity;   /* rows the work buffers hold at first; grows on demand */
} mlp_config;

typedef struct mlp mlp;

sdagd_status mlp_create(mlp **out, const mlp_config *config);
void mlp_free(mlp *net); /* accepts NULL */

size_t mlp_num_params(const mlp *net);
/* Offsets of W_l and b_l in the flat slab, l = 0..n_layers-1 (0 = first weight layer). */
size_t mlp_weight_offset(const mlp *net, int layer);
size_t mlp_bias_offset(const mlp *net, int layer);

/* Xavier-uniform (paper's default) or He-normal weights, zero biases, from `seed`. */
sdagd_status mlp_init_params(mlp *net, int init, uint64_t seed);
sdagd_status mlp_get_params(const mlp *net, float *dst /* (P) */);
sdagd_status mlp_set_params(mlp *net, const float *src /* (P) */);

/* Network output for B rows: Y (B, n_out). */
sdagd_status mlp_forward(mlp *net, const float *X /* (B, n_0) */, int B, float *Y /* (B, n_out) */);

/* Mean loss over the batch and, optionally, its gradient (P) and truncated Hessian diagonal
 * (P) into caller buffers (host buffers on the CPU backend). errors: misclassified rows. */
sdagd_status mlp_loss_grad(mlp *net, const float *X, const int32_t *labels, int B,
                           double *loss, int64_t *errors, float *grad, float *hess);

/* Loss and misclassification count over N rows, in chunks of the batch capacity. */
sdagd_status mlp_evaluate(mlp *net, const float *X, const int32_t *labels, int64_t N,
                          double *mean_loss, int64_t *errors);

/* ------------------------------------------------------------------------------------------ */
/* Optimizers (ALGORITHMS.md section 5)                                                        */

typedef enum { OPT_SGD = 0, OPT_SDAGD, OPT_SDLM, OPT_ADAGRAD, OPT_ADADELTA, OPT_ADAM } sdagd_optimizer_kind;
typedef enum { NORM_LAYER = 0, NORM_GLOBAL } sdagd_norm;

typedef struct {
    int kind;           /* sdagd_optimizer_kind */
    double lr;          /* SGD, SDLM, AdaGrad, AdaDelta, Adam */
    double momentum;    /* SGD: m <- momentum m + g */
    double radius;      /* SDAGD: R, mu_k = ||g|| / R */
    double eps;         /* SDAGD, AdaGrad, AdaDelta, Adam */
    int norm;           /* SDAGD: sdagd_norm */
    int hessian_every;  /* SDAGD: recompute h every N steps (1 = every step) */
    double max_step;    /* SDAGD: cap on the step length per norm group; <= 0: none */
    double mu;          /* SDLM damping */
    double gamma;       /* SDLM running-average weight */
    double beta1, beta2;/* Adam */
    double rho;         /* AdaDelta */
} optim_config;

typedef struct optimizer optimizer;

/* State buffers are sized for `net` and allocated here, zeroed. */
sdagd_status optim_create(optimizer **out, const optim_config *config, const mlp *net);
void optim_free(optimizer *opt); /* accepts NULL */

/* Does this step need the Hessian diagonal? (SDAGD when step % hessian_every == 0, SDLM.) */
int optim_needs_hessian(const optimizer *opt);

/* Number of float slabs of size P the state holds (0..2), plus the integer step counter. */
int optim_num_state_slabs(const optimizer *opt);
int64_t optim_step_count(const optimizer *opt);
sdagd_status optim_get_state(const optimizer *opt, float *dst /* (slabs * P) */, int64_t *step);
sdagd_status optim_set_state(optimizer *opt, const float *src /* (slabs * P) */, int64_t step);

/* Running sums of per-step diagnostics; reset by the caller (train_stats_reset keeps the
 * diagnostic array pointers and zeroes nothing behind them). */
typedef struct {
    double loss_sum;        /* sum over steps of batch loss * rows */
    int64_t errors;         /* misclassified training rows (before each update) */
    int64_t rows;           /* training rows seen */
    int64_t steps;          /* optimizer steps taken */
    /* SDAGD only: mu_k over all groups and steps, and parameters in phase 1 (mu_k > h) */
    double mu_sum;
    double mu_min, mu_max;
    int64_t mu_count;
    int64_t phase1_params;  /* summed over steps */
    int64_t params_seen;    /* P summed over steps */
    /* Vanishing-gradient diagnostics (diagnostics.c), accumulated when the caller points
     * these at zeroed arrays; NULL skips them. l = 0..n_layers-1 counts weight layers. */
    double *grad_sq;        /* (n_layers) sum over steps of mean(dW_l^2): RMS = sqrt(sum / steps) */
    int64_t *saturated;     /* (n_layers) per hidden layer: (row, unit) pairs with f'(a) < 0.01 max f'
                             * (sigmoid, tanh); rows * units seen go to unit_rows */
    int64_t *unit_rows;     /* (n_layers) per hidden layer: (row, unit) pairs seen */
    uint8_t *ever_active;   /* (sum of hidden widths) unit output > 0 in some row (relu, leaky_relu) */
} train_stats;

void train_stats_reset(train_stats *stats);

/* One update on one batch: gradient (and h when needed), then the optimizer step. */
sdagd_status train_step(mlp *net, optimizer *opt, const float *X, const int32_t *labels, int B,
                        train_stats *stats);

/* Called between mini-batches; nonzero stops the epoch with SDAGD_ERR_INTERRUPTED. */
typedef int (*sdagd_poll_fn)(void *ctx);

/* One epoch over N rows in the order of a permutation drawn from (seed, epoch): mini-batches
 * of batch_size (the last one may be smaller). Returns SDAGD_ERR_NONFINITE at the first step
 * whose loss is NaN or inf (a non-finite parameter makes the next loss so), and when a
 * parameter is non-finite at the end of the epoch; stats->steps tells how far it got. */
sdagd_status train_epoch(mlp *net, optimizer *opt, const float *X, const int32_t *labels,
                         int64_t N, int batch_size, uint64_t seed, int64_t epoch,
                         train_stats *stats, sdagd_poll_fn poll, void *poll_ctx);

/* The permutation train_epoch uses: perm (N) for (seed, epoch), Fisher-Yates. */
sdagd_status sdagd_shuffle_order(int64_t *perm, int64_t N, uint64_t seed, int64_t epoch);

/* BLAS threads (OpenBLAS); returns the previous value or -1 when unknown. */
int sdagd_blas_set_threads(int n);
int sdagd_blas_get_threads(void);

#ifdef __cplusplus
}
#endif
#endif /* SDAGD_H */
