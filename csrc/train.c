/* The training loop: shuffled mini-batches, one optimizer step each, divergence checks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "optim.h"

void train_stats_reset(train_stats *stats) {
    double *grad_sq = stats->grad_sq;
    int64_t *saturated = stats->saturated, *unit_rows = stats->unit_rows;
    uint8_t *ever_active = stats->ever_active;
    memset(stats, 0, sizeof *stats);
    stats->grad_sq = grad_sq;
    stats->saturated = saturated;
    stats->unit_rows = unit_rows;
    stats->ever_active = ever_active;
}

static const char *optimizer_name(int kind) {
    static const char *names[] = {"SGD", "SDAGD", "SDLM", "AdaGrad", "AdaDelta", "Adam"};
    return kind >= 0 && kind <= OPT_ADAM ? names[kind] : "?";
}

static int all_finite(const float *x, size_t n) {
    /* Summing x * 0 keeps the loop branch-free and vectorised: NaN or inf turns it NaN. */
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++) acc += x[i] * 0.0f;
    return acc == 0.0f;
}

/* One step on B <= capacity rows already gathered (or the caller's own contiguous batch). */
static sdagd_status step_batch(mlp *net, optimizer *opt, const float *X, const int32_t *labels,
                               int B, train_stats *stats) {
    double loss_sum;
    int64_t errors;
    sdagd_status st = mlp_batch_loss_grad(net, X, labels, B, &loss_sum, &errors, net->grad_work,
                                          optim_hessian_target(opt));
    if (st != SDAGD_OK) return st;
    if (!isfinite(loss_sum))
        return sdagd_fail(SDAGD_ERR_NONFINITE, "%s diverged: the batch loss is %g at step %lld",
                          optimizer_name(opt->config.kind), loss_sum, (long long)opt->step);
    stats->loss_sum += loss_sum;
    stats->errors += errors;
    stats->rows += B;
    diagnostics_accumulate(net, B, net->grad_work, stats);
    return optim_step(opt, net->params, net->grad_work, stats);
}

static sdagd_status check_pair(const mlp *net, const optimizer *opt) {
    if (opt->n != net->n_params)
        return sdagd_fail(SDAGD_ERR_ARG, "the optimizer was made for %zu parameters, the network has %zu",
                          opt->n, net->n_params);
    return SDAGD_OK;
}

sdagd_status train_step(mlp *net, optimizer *opt, const float *X, const int32_t *labels, int B,
                        train_stats *stats) {
    sdagd_status st = check_pair(net, opt);
    if (st == SDAGD_OK && B < 1) st = sdagd_fail(SDAGD_ERR_ARG, "a batch needs at least one row, got %d", B);
    if (st == SDAGD_OK) st = mlp_check_labels(net, labels, B);
    if (st == SDAGD_OK) st = mlp_reserve(net, B);
    if (st != SDAGD_OK) return st;
    st = step_batch(net, opt, X, labels, B, stats);
    if (st == SDAGD_OK && !all_finite(net->params, net->n_params))
        st = sdagd_fail(SDAGD_ERR_NONFINITE, "%s diverged: parameters became NaN or inf at step %lld",
                        optimizer_name(opt->config.kind), (long long)opt->step);
    return st;
}

sdagd_status train_epoch(mlp *net, optimizer *opt, const float *X, const int32_t *labels, int64_t N,
                         int batch_size, uint64_t seed, int64_t epoch, train_stats *stats,
                         sdagd_poll_fn poll, void *poll_ctx) {
    sdagd_status st = check_pair(net, opt);
    if (st != SDAGD_OK) return st;
    if (N < 1) return sdagd_fail(SDAGD_ERR_ARG, "training needs at least one row");
    if (batch_size < 1) return sdagd_fail(SDAGD_ERR_ARG, "batch_size must be >= 1, got %d", batch_size);
    if ((st = mlp_check_labels(net, labels, N)) != SDAGD_OK) return st;
    if ((st = mlp_reserve(net, (int)(N < batch_size ? N : batch_size))) != SDAGD_OK) return st;
    int64_t *perm = malloc((size_t)N * sizeof *perm);
    if (!perm) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory for the epoch's permutation");
    sdagd_shuffle_order(perm, N, seed, epoch);
    size_t n0 = (size_t)net->sizes[0];
    for (int64_t start = 0; start < N && st == SDAGD_OK; start += batch_size) {
        int B = (int)(N - start < batch_size ? N - start : batch_size);
        for (int r = 0; r < B; r++) { /* gather the shuffled rows into one contiguous batch */
            int64_t src = perm[start + r];
            memcpy(net->batch_x + (size_t)r * n0, X + (size_t)src * n0, n0 * sizeof(float));
            net->batch_y[r] = labels[src];
        }
        st = step_batch(net, opt, net->batch_x, net->batch_y, B, stats);
        if (st == SDAGD_OK && poll && poll(poll_ctx))
            st = sdagd_fail(SDAGD_ERR_INTERRUPTED, "interrupted after step %lld", (long long)opt->step);
    }
    free(perm);
    /* A parameter can turn inf without the loss doing so yet (a saturated sigmoid). */
    if (st == SDAGD_OK && !all_finite(net->params, net->n_params))
        st = sdagd_fail(SDAGD_ERR_NONFINITE, "%s diverged: parameters became NaN or inf by step %lld",
                        optimizer_name(opt->config.kind), (long long)opt->step);
    return st;
}
