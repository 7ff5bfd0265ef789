/*
 * sdagd C core: public interface.
 *
 * A fully connected network (MLP) in float32, its backprop gradient, the truncated diagonal
 * Hessian of Tan & Lim / LeCun 1998, the optimizers of docs/algorithms.md section 5 and a training
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
 *   - The `device` field selects the backend (backend.h: one table of operations per device).
 *     Every buffer that crosses this interface is HOST memory owned by the caller: inputs,
 *     labels, parameters, gradients, optimizer state and statistics. Pointers into
 *     network-owned memory are never handed out, so the CUDA backend keeps its slabs on the
 *     GPU behind the same calls. Data to be used for many steps (a training set) goes to the
 *     network's device once, as an sdagd_dataset.
 *
 * Dimension letters used in comments: B batch rows, N dataset rows, P number of parameters,
 * n_l width of layer l (n_0 inputs, n_{L+1} outputs).
 */
#ifndef SDAGD_H
#define SDAGD_H

#include <stddef.h>
#include <stdint.h>

#include "tables.h" /* the optimizer and activation codes (sdagd_optimizer_kind, sdagd_activation) */

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

typedef enum { SDAGD_LOSS_MSE = 0, SDAGD_LOSS_CE } sdagd_loss;
typedef enum { SDAGD_INIT_XAVIER_UNIFORM = 0, SDAGD_INIT_HE_NORMAL } sdagd_init;
typedef enum { SDAGD_DEVICE_CPU = 0, SDAGD_DEVICE_CUDA } sdagd_device;

typedef struct {
    int n_layers;         /* number of weight layers, L + 1 >= 1 */
    const int *sizes;     /* (n_layers + 1): n_0 .. n_{L+1}, each >= 1 */
    sdagd_activation hidden; /* for hidden layers: sigmoid, relu, tanh, leaky_relu */
    sdagd_activation output; /* for the output: sigmoid, linear, softmax */
    sdagd_loss loss;      /* softmax output <=> cross-entropy */
    float leaky_slope;    /* slope s of leaky_relu for x <= 0, in [0, 1) */
    sdagd_device device;
    int batch_capacity;   /* rows the work buffers hold at first; grows on demand */
} sdagd_mlp_config;

typedef struct sdagd_mlp sdagd_mlp;

sdagd_status sdagd_mlp_create(sdagd_mlp **out, const sdagd_mlp_config *config);
void sdagd_mlp_free(sdagd_mlp *net); /* accepts NULL */

size_t sdagd_mlp_num_params(const sdagd_mlp *net);
/* Offsets of W_l and b_l in the flat slab, l = 0..n_layers-1 (0 = first weight layer). */
size_t sdagd_mlp_weight_offset(const sdagd_mlp *net, int layer);
size_t sdagd_mlp_bias_offset(const sdagd_mlp *net, int layer);

/* Xavier-uniform (paper's default) or He-normal weights, zero biases, from `seed`. */
sdagd_status sdagd_mlp_init_params(sdagd_mlp *net, int init, uint64_t seed);
sdagd_status sdagd_mlp_get_params(const sdagd_mlp *net, float *dst /* (P) */);
sdagd_status sdagd_mlp_set_params(sdagd_mlp *net, const float *src /* (P) */);

/* Network output for B rows: Y (B, n_out). */
sdagd_status sdagd_mlp_forward(sdagd_mlp *net, const float *X /* (B, n_0) */, int B, float *Y /* (B, n_out) */);

/* Mean loss over the batch and, optionally, its gradient (P) and truncated Hessian diagonal
 * (P) into caller buffers (host buffers on the CPU backend). errors: misclassified rows. */
sdagd_status sdagd_mlp_loss_grad(sdagd_mlp *net, const float *X, const int32_t *labels, int B,
                           double *loss, int64_t *errors, float *grad, float *hess);

/* Loss and misclassification count over N rows, in chunks of the batch capacity. */
sdagd_status sdagd_mlp_evaluate(sdagd_mlp *net, const float *X, const int32_t *labels, int64_t N,
                          double *mean_loss, int64_t *errors);

/* Is `device` usable here? SDAGD_OK, or SDAGD_ERR_DEVICE with a message that says which of
 * these it is: the CUDA part was not built, its library or the CUDA driver cannot be loaded,
 * or there is no CUDA device. */
sdagd_status sdagd_device_check(int device);
/* Where the CUDA backend's shared library is (set by the binding before first use). */
void sdagd_set_cuda_library(const char *path);

/* ------------------------------------------------------------------------------------------ */
/* Data sets on a network's device                                                             */

typedef struct sdagd_dataset sdagd_dataset;

/* X (N, n_0) and labels (N) for networks shaped and placed like `net`: copied to the device
 * once (on the CPU they are used in place, so the caller keeps them alive and unchanged
 * until sdagd_dataset_free). Labels are checked here. N < 2^31. */
sdagd_status sdagd_dataset_create(sdagd_dataset **out, const sdagd_mlp *net, const float *X, const int32_t *labels,
                            int64_t N);
void sdagd_dataset_free(sdagd_dataset *ds); /* accepts NULL */
int64_t sdagd_dataset_rows(const sdagd_dataset *ds);

/* sdagd_mlp_evaluate over a dataset already on the device. */
sdagd_status sdagd_mlp_evaluate_dataset(sdagd_mlp *net, const sdagd_dataset *ds, double *mean_loss, int64_t *errors);

/* ------------------------------------------------------------------------------------------ */
/* Optimizers (docs/algorithms.md section 5)                                                  */

typedef enum { SDAGD_NORM_LAYER = 0, SDAGD_NORM_GLOBAL } sdagd_norm;

typedef enum { SDAGD_SCHEDULE_CONSTANT = 0, SDAGD_SCHEDULE_STEP, SDAGD_SCHEDULE_COSINE } sdagd_schedule;

typedef struct {
    sdagd_optimizer_kind kind;
    /* Hyperparameters by slot (tables.h: SDAGD_HYPERPARAMETERS says which an optimizer reads,
     * with defaults and ranges; sdagd_optim_config_defaults fills them in). */
    double hyper[SDAGD_HP_COUNT];
    /* A schedule of the optimizer's step size S (tables.h: its step-size slot, lr or SDAGD's
     * radius) over epochs e = 0..E-1 (docs/algorithms.md section 5.3); constant within an epoch: */
    sdagd_schedule schedule;
    double schedule_factor; /*   step:   S_e = S * factor^floor(e / every) */
    int schedule_every;
    int schedule_epochs;    /*   cosine: S_e = S_min + (S - S_min) (1 + cos(pi e / E)) / 2 */
    double step_min;        /*   S_min */
} sdagd_optim_config;

/* The configuration of `kind` with every hyperparameter at its default and no schedule. */
sdagd_status sdagd_optim_config_defaults(sdagd_optim_config *config, int kind);
/* SDAGD_OK, or SDAGD_ERR_ARG saying which hyperparameter is outside its range (tables.h). */
sdagd_status sdagd_optim_config_check(const sdagd_optim_config *config);

/* The step size (lr, or SDAGD's radius) in epoch `epoch` (0-based) under the schedule. */
double sdagd_optim_step_at(const sdagd_optim_config *config, int64_t epoch);

/* The tables (tables.h) as arrays: *n rows each. */
const sdagd_optimizer_desc *sdagd_optim_table(int *n);
const sdagd_hyper_desc *sdagd_optim_hyper_table(int *n);
const sdagd_activation_desc *sdagd_activation_table(int *n);
/* The names of a SDAGD_HYPER_CHOICE slot's codes, comma-separated, or NULL. */
const char *sdagd_optim_choice_names(int slot);

typedef struct sdagd_optimizer sdagd_optimizer;

/* State buffers are sized for `net` and allocated here, zeroed. */
sdagd_status sdagd_optim_create(sdagd_optimizer **out, const sdagd_optim_config *config, const sdagd_mlp *net);
void sdagd_optim_free(sdagd_optimizer *opt); /* accepts NULL */

/* Number of float slabs of size P the state holds (0..2), plus the integer step counter. */
int sdagd_optim_num_state_slabs(const sdagd_optimizer *opt);
int64_t sdagd_optim_step_count(const sdagd_optimizer *opt);
sdagd_status sdagd_optim_get_state(const sdagd_optimizer *opt, float *dst /* (slabs * P) */, int64_t *step);
sdagd_status sdagd_optim_set_state(sdagd_optimizer *opt, const float *src /* (slabs * P) */, int64_t step);

/* One network's statistics of one call (an epoch or a step); the caller resets them before
 * each call (sdagd_train_stats_reset keeps the diagnostic array pointers). */
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
    /* Divergence: the first step whose batch loss was NaN or inf (no update was made in it),
     * or parameters found non-finite at the end of the epoch. */
    int diverged;           /* 0, SDAGD_DIVERGED_LOSS or SDAGD_DIVERGED_PARAMS */
    int64_t diverged_step;  /* the optimizer's step count then */
    double diverged_loss;
    /* Vanishing-gradient diagnostics of the call, written into these caller arrays when they
     * are not NULL (l = 0..n_layers-1 counts weight layers; hidden layers are l < n_layers - 1): */
    double *grad_sq;        /* (n_layers) sum over steps of mean(dW_l^2): RMS = sqrt(sum / steps) */
    int64_t *saturated;     /* (n_layers) per hidden layer: (row, unit) pairs with f'(a) < 0.01 max f'
                             * (sigmoid, tanh) ... */
    int64_t *unit_rows;     /* (n_layers) ... out of this many (row, unit) pairs */
    int64_t *inactive;      /* (n_layers) per hidden layer: units never above 0 in any row of the
                             * call (relu, leaky_relu) */
} sdagd_train_stats;

enum { SDAGD_DIVERGED_LOSS = 1, SDAGD_DIVERGED_PARAMS = 2 };

void sdagd_train_stats_reset(sdagd_train_stats *stats);

/* ------------------------------------------------------------------------------------------ */
/* Training: one network, or many at once                                                      */

/* The one training path: K networks of the same sizes, output and loss (activations, seeds
 * and optimizers may differ; optimizers that need the Hessian diagonal must need it at the
 * same steps), on one device, trained together: each gets exactly the steps it would get
 * trained alone (K = 1 is MLP.fit and MLP.train_step). The trainer holds nets[k] and opts[k]
 * until sdagd_trainer_free (the caller keeps them alive and does not use them meanwhile) and writes
 * parameters and state back to them after every call. A caller resets the stats before each
 * call (sdagd_train_stats_reset) and sets stats[k].diverged nonzero for a network to leave alone. */
typedef struct sdagd_trainer sdagd_trainer;

sdagd_status sdagd_trainer_create(sdagd_trainer **out, sdagd_mlp *const *nets, sdagd_optimizer *const *opts, int K);
void sdagd_trainer_free(sdagd_trainer *t); /* accepts NULL */

/* Called between mini-batches; nonzero stops the epoch with SDAGD_ERR_INTERRUPTED. */
typedef int (*sdagd_poll_fn)(void *ctx);

/* One epoch of every network still training (stats[k].diverged == 0 on entry) over the
 * dataset's N rows: network k visits them in the order of a permutation drawn from
 * (seeds[k], epochs[k]), in mini-batches of batch_size (the last one may be smaller). A
 * network whose batch loss is NaN or inf stops at that step (no update made in it), one whose
 * parameters are non-finite at the end of the epoch is marked too; either reports it in
 * stats[k] (stats[k].steps tells how far it got) and the others go on. `poll` (may be NULL)
 * is called between mini-batches; nonzero stops the epoch with SDAGD_ERR_INTERRUPTED, the
 * steps taken kept. Returns SDAGD_OK unless the whole call failed (memory, device,
 * interrupted by poll). */
sdagd_status sdagd_trainer_epoch(sdagd_trainer *t, const sdagd_dataset *ds, int batch_size, const uint64_t *seeds,
                           const int64_t *epochs, sdagd_train_stats *stats, sdagd_poll_fn poll, void *poll_ctx);

/* One update of every network still training on the same batch (host memory): gradient (and
 * h when needed), then the optimizer step; epochs[k] selects SDAGD's radius under a
 * schedule. Divergence is reported in stats[k] as by sdagd_trainer_epoch. */
sdagd_status sdagd_trainer_step(sdagd_trainer *t, const float *X /* (B, n_0) */, const int32_t *labels /* (B) */, int B,
                          const int64_t *epochs, sdagd_train_stats *stats);

/* The message for a network whose stats say it diverged. */
void sdagd_train_divergence_message(char *buf, size_t size, const sdagd_optimizer *opt, const sdagd_train_stats *stats);

/* The permutation sdagd_trainer_epoch uses: perm (N) for (seed, epoch), Fisher-Yates. */
sdagd_status sdagd_shuffle_order(int64_t *perm, int64_t N, uint64_t seed, int64_t epoch);

/* Threads the CPU backend uses (its own pool; the BLAS runs single-threaded inside it).
 * set returns the previous value. */
int sdagd_set_threads(int n);
int sdagd_get_threads(void);
/* How many times the pool found its threads slower than one (another process holding a
 * core) and ran alone for a while; results are the same either way. */
int64_t sdagd_cpu_solo_spans(void);
/* The BLAS library in use, for reports. */
const char *sdagd_blas_info(void);
/* The instruction set of the CPU backend's elementwise loops: with wanted NULL, the one in
 * use; else chooses "auto", "avx512", "avx2" or "baseline" and returns the one chosen, or
 * NULL when this processor cannot run it (nothing changes then). */
const char *sdagd_cpu_loops(const char *wanted);

#ifdef __cplusplus
}
#endif
#endif /* SDAGD_H */
