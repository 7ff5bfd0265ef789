/*
 * The training loop, written once over the backend table: shuffled mini-batches gathered on
 * the device, one optimizer step each, divergence checks, statistics. It is the only way the
 * core trains: a trainer drives K networks of one shape together (K = 1 for MLP.fit and
 * MLP.train_step, whose single batch is trainer_step): each network gets its own permutation
 * from its own (seed, epoch), its own optimizer and hyperparameters, and exactly the steps
 * it would get alone; a network that diverges stops by itself.
 *
 * With K = 1 the trainer works in the network's and optimizer's own buffers. With K > 1 it
 * holds all K parameter and state slabs side by side (so a backend can batch the products
 * over the networks), copied in at creation and written back after every call.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "error.h"
#include "network.h"
#include "optimizer.h"
#include "rng.h"

struct sdagd_trainer {
    int K;
    sdagd_mlp **nets;
    sdagd_optimizer **opts;
    sdagd_mlp *lead;                 /* nets[0]: the shape, backend and context used for all */
    const sdagd_backend_ops *be;
    void *ctx;
    workspace ws;              /* K > 1; with K = 1 the lead network's own */
    group_view view;
    slab params, grad, hess, state0, state1;
    int owns_slabs;            /* K > 1 */
    int curvature;             /* some optimizer uses h */
    int hess_is_state0;        /* K = 1, plain SDAGD: h is written straight into its state */
    int state_slabs;           /* max over the optimizers */
    /* per network, backend memory */
    int32_t *act;
    float *slope;
    uint8_t *active;
    int64_t *step;
    optim_hyper *hyper;
    step_coef *coef;
    float *mu;
    double *segments, *step_sq, *grad_sq, *losses;
    int64_t *saturated, *errors, *counters; /* counters: batch start, loss slot */
    uint8_t *ever_active;
    net_stats *stats;
    int32_t *perm;
    int64_t perm_rows;
    int window;
    /* host mirrors and scratch */
    int64_t *host_step;
    uint8_t *host_active;
    int32_t *host_perm;
    double *host_losses;
    int64_t *host_errors;
    int *window_rows;          /* (window) rows of each step in the current window */
    void *recorder;            /* the backend's recorded steps, or NULL */
    uint64_t view_key;         /* the work buffers and data set the recorded steps used */
    uint64_t data_key;
    float *grad_owned, *hess_owned;
};

void sdagd_train_stats_reset(sdagd_train_stats *stats) {
    double *grad_sq = stats->grad_sq;
    int64_t *saturated = stats->saturated, *unit_rows = stats->unit_rows, *inactive = stats->inactive;
    memset(stats, 0, sizeof *stats);
    stats->grad_sq = grad_sq;
    stats->saturated = saturated;
    stats->unit_rows = unit_rows;
    stats->inactive = inactive;
}

/* ---- creation ------------------------------------------------------------------------- */

static sdagd_status alloc_on(sdagd_trainer *t, void **p, size_t bytes) {
    *p = NULL;
    return bytes ? t->be->alloc(t->ctx, p, bytes) : SDAGD_OK;
}

void sdagd_trainer_free(sdagd_trainer *t) {
    if (!t) return;
    if (t->be) {
        if (t->K > 1) workspace_free(t->lead, &t->ws);
        void *buffers[] = {t->act, t->slope, t->active, t->step, t->hyper, t->coef, t->mu, t->segments,
                           t->step_sq, t->grad_sq, t->losses, t->saturated, t->errors, t->counters,
                           t->ever_active, t->stats, t->perm, t->grad_owned, t->hess_owned,
                           t->owns_slabs ? t->params.p : NULL, t->owns_slabs ? t->state0.p : NULL,
                           t->owns_slabs ? t->state1.p : NULL};
        for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++)
            if (buffers[i]) t->be->dealloc(t->ctx, buffers[i]);
        if (t->recorder) t->be->recorder_free(t->ctx, t->recorder);
    }
    free(t->nets);
    free(t->opts);
    free(t->host_step);
    free(t->host_active);
    free(t->host_perm);
    free(t->host_losses);
    free(t->host_errors);
    free(t->window_rows);
    free(t);
}

static int same_shape(const sdagd_mlp *a, const sdagd_mlp *b) {
    if (a->n_layers != b->n_layers || a->output != b->output || a->loss != b->loss || a->device != b->device)
        return 0;
    for (int l = 0; l <= a->n_layers; l++)
        if (a->sizes[l] != b->sizes[l]) return 0;
    return 1;
}

/* Networks whose optimizers need h at different steps cannot share the curvature pass. */
static sdagd_status check_curvature_schedules(sdagd_optimizer *const *opts, int K) {
    int every = 0;
    int64_t phase = 0;
    for (int k = 0; k < K; k++) {
        int need = optim_curvature_need(opts[k]->config.kind), n = (int)opts[k]->config.hyper[SDAGD_HP_HESSIAN_EVERY];
        if (need != SDAGD_CURVATURE_EVERY || n <= 1) continue;
        if (every == 0) {
            every = n;
            phase = opts[k]->step % every;
        } else if (n != every || opts[k]->step % every != phase) {
            return sdagd_fail(SDAGD_ERR_ARG, "network %d: optimizers with different hessian_every (or step "
                                             "counts out of phase) cannot be trained together; train them apart", k);
        }
    }
    for (int k = 0; every && k < K; k++) {
        int need = optim_curvature_need(opts[k]->config.kind);
        if (need == SDAGD_CURVATURE_ALWAYS || (need == SDAGD_CURVATURE_EVERY && opts[k]->config.hyper[SDAGD_HP_HESSIAN_EVERY] <= 1))
            return sdagd_fail(SDAGD_ERR_ARG, "network %d needs the Hessian every step, others every %d steps; "
                                             "train them apart", k, every);
    }
    return SDAGD_OK;
}

static sdagd_status upload_codes(sdagd_trainer *t) {
    int K = t->K;
    int32_t *act = malloc((size_t)K * sizeof *act);
    float *slope = malloc((size_t)K * sizeof *slope);
    if (!act || !slope) {
        free(act);
        free(slope);
        return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    }
    for (int k = 0; k < K; k++) {
        act[k] = t->nets[k]->hidden;
        slope[k] = t->nets[k]->leaky_slope;
    }
    sdagd_status st = t->be->upload(t->ctx, t->act, act, (size_t)K * sizeof *act);
    if (st == SDAGD_OK) st = t->be->upload(t->ctx, t->slope, slope, (size_t)K * sizeof *slope);
    free(act);
    free(slope);
    return st;
}

/* K > 1: every network's parameters and optimizer state into the trainer's slabs, or back. */
static sdagd_status exchange_slabs(sdagd_trainer *t, int back) {
    size_t bytes = t->lead->n_params * sizeof(float);
    sdagd_status st = SDAGD_OK;
    for (int k = 0; k < t->K && st == SDAGD_OK; k++) {
        float *mine[3] = {t->params.p, t->state0.p, t->state1.p};
        float *theirs[3] = {t->nets[k]->params, t->opts[k]->state[0], t->opts[k]->state[1]};
        for (int i = 0; i < 3 && st == SDAGD_OK; i++) {
            if (!mine[i] || !theirs[i]) continue;
            float *slot = mine[i] + (size_t)k * t->lead->n_params;
            st = back ? t->be->copy(t->ctx, theirs[i], slot, bytes) : t->be->copy(t->ctx, slot, theirs[i], bytes);
        }
    }
    return st;
}

sdagd_status sdagd_trainer_create(sdagd_trainer **out, sdagd_mlp *const *nets, sdagd_optimizer *const *opts, int K) {
    *out = NULL;
    if (K < 1) return sdagd_fail(SDAGD_ERR_ARG, "a trainer needs at least one network, got %d", K);
    for (int k = 0; k < K; k++) {
        if (!nets[k] || !opts[k]) return sdagd_fail(SDAGD_ERR_ARG, "network or optimizer %d is missing", k);
        if (!same_shape(nets[0], nets[k]))
            return sdagd_fail(SDAGD_ERR_ARG, "network %d differs from network 0 in its sizes, output, loss or device; "
                                             "only networks of one shape train together", k);
        if (opts[k]->n != nets[k]->n_params || !same_shape(opts[k]->net, nets[k]))
            return sdagd_fail(SDAGD_ERR_ARG, "optimizer %d was made for another network (%zu parameters, this one "
                                             "has %zu)", k, opts[k]->n, nets[k]->n_params);
        for (int j = 0; j < k; j++)
            if (nets[j] == nets[k] || opts[j] == opts[k])
                return sdagd_fail(SDAGD_ERR_ARG, "network or optimizer %d appears twice", k);
    }
    sdagd_status st = check_curvature_schedules(opts, K);
    if (st != SDAGD_OK) return st;
    sdagd_trainer *t = calloc(1, sizeof *t);
    if (!t) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    sdagd_mlp *lead = nets[0];
    t->K = K;
    t->lead = lead;
    t->be = lead->be;
    t->ctx = lead->ctx;
    t->window = t->be->loss_window > 0 ? t->be->loss_window : 1;
    t->nets = malloc((size_t)K * sizeof *t->nets);
    t->opts = malloc((size_t)K * sizeof *t->opts);
    t->host_step = malloc((size_t)K * sizeof *t->host_step);
    t->host_active = malloc((size_t)K);
    t->host_losses = malloc((size_t)K * t->window * sizeof *t->host_losses);
    t->host_errors = malloc((size_t)K * t->window * sizeof *t->host_errors);
    t->window_rows = malloc((size_t)t->window * sizeof *t->window_rows);
    if (!t->nets || !t->opts || !t->host_step || !t->host_active || !t->host_losses || !t->host_errors ||
        !t->window_rows) {
        sdagd_trainer_free(t);
        return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    }
    memcpy(t->nets, nets, (size_t)K * sizeof *nets);
    memcpy(t->opts, opts, (size_t)K * sizeof *opts);
    for (int k = 0; k < K; k++) {
        t->curvature |= optim_uses_curvature(opts[k]);
        if (opts[k]->n_slabs > t->state_slabs) t->state_slabs = opts[k]->n_slabs;
    }
    size_t P = lead->n_params, L = (size_t)lead->n_layers, k = (size_t)K, fb = P * sizeof(float);
    const sdagd_optim_config *c0 = &opts[0]->config;
    t->hess_is_state0 = K == 1 && c0->kind == SDAGD_OPT_SDAGD && !(c0->hyper[SDAGD_HP_AVERAGE] > 0);
#define ALLOC(field, bytes) \
    if (st == SDAGD_OK) st = alloc_on(t, (void **)&t->field, bytes)
    ALLOC(act, k * sizeof(int32_t));
    ALLOC(slope, k * sizeof(float));
    ALLOC(active, k);
    ALLOC(step, k * sizeof(int64_t));
    ALLOC(hyper, k * sizeof(optim_hyper));
    ALLOC(coef, k * sizeof(step_coef));
    ALLOC(mu, k * L * sizeof(float));
    ALLOC(segments, k * 2 * L * sizeof(double));
    ALLOC(step_sq, k * L * sizeof(double));
    ALLOC(grad_sq, k * L * sizeof(double));
    ALLOC(saturated, k * L * sizeof(int64_t));
    ALLOC(losses, k * (size_t)t->window * sizeof(double));
    ALLOC(errors, k * (size_t)t->window * sizeof(int64_t));
    ALLOC(counters, 2 * sizeof(int64_t));
    ALLOC(ever_active, k * (lead->hidden_units + 1));
    ALLOC(stats, k * sizeof(net_stats));
    ALLOC(grad_owned, k * fb);
    if (t->curvature && !t->hess_is_state0) ALLOC(hess_owned, k * fb);
    if (K == 1) {
        t->params = (slab){lead->params, P};
        t->state0 = (slab){opts[0]->state[0], P};
        t->state1 = (slab){opts[0]->state[1], P};
    } else {
        t->owns_slabs = 1;
        ALLOC(params.p, k * fb);
        if (t->state_slabs >= 1) ALLOC(state0.p, k * fb);
        if (t->state_slabs >= 2) ALLOC(state1.p, k * fb);
        t->params.stride = t->state0.stride = t->state1.stride = P;
        /* a network with fewer state slabs than the group leaves its part at zero */
        if (st == SDAGD_OK && t->state0.p) st = t->be->zero(t->ctx, t->state0.p, k * fb);
        if (st == SDAGD_OK && t->state1.p) st = t->be->zero(t->ctx, t->state1.p, k * fb);
        if (st == SDAGD_OK) st = exchange_slabs(t, 0);
    }
#undef ALLOC
    t->grad = (slab){t->grad_owned, P};
    t->hess = (slab){t->hess_is_state0 ? t->state0.p : t->hess_owned, P};
    if (st == SDAGD_OK) st = upload_codes(t);
    if (st == SDAGD_OK && t->be->recorder_create) st = t->be->recorder_create(t->ctx, &t->recorder);
    if (st != SDAGD_OK) {
        sdagd_trainer_free(t);
        return st;
    }
    *out = t;
    return SDAGD_OK;
}

/* ---- one step ------------------------------------------------------------------------- */

static void forget_steps(sdagd_trainer *t) {
    if (t->recorder) t->be->recorder_clear(t->ctx, t->recorder);
}

/* The work buffers for batches of B rows; refreshes the view (and forgets recorded steps)
 * when the buffers moved. */
static sdagd_status prepare_buffers(sdagd_trainer *t, int B) {
    workspace *ws = t->K == 1 ? &t->lead->ws : &t->ws;
    sdagd_status st = workspace_reserve(t->lead, ws, t->K, B, t->curvature);
    if (st != SDAGD_OK) return st;
    group_view_init(&t->view, t->lead, ws, t->K, t->act, t->slope, t->active);
    if (t->view_key != ws->generation) forget_steps(t);
    t->view_key = ws->generation;
    return SDAGD_OK;
}

/* Forward, loss, backward (with h when `curvature`), the optimizer's update and the step
 * counters, for the B rows the gather (when `gather` is not NULL) or the caller put in x. */
static sdagd_status enqueue_step(sdagd_trainer *t, int B, int curvature, const gather_args *gather) {
    const sdagd_backend_ops *be = t->be;
    const group_view *g = &t->view;
    sdagd_mlp *lead = t->lead;
    sdagd_status st = gather ? be->gather(t->ctx, gather) : SDAGD_OK;
    if (st == SDAGD_OK)
        st = mlp_forward_group(lead, g, B, g->x, g->x_stride, t->params, curvature, t->saturated, t->ever_active);
    loss_args la = {g, B, t->losses, t->errors, t->window, t->counters + 1, 1, curvature};
    if (st == SDAGD_OK) st = be->loss(t->ctx, &la);
    slab hess = {curvature ? t->hess.p : NULL, t->hess.stride};
    if (st == SDAGD_OK) st = mlp_backward_group(lead, g, B, t->params, t->grad, hess, t->segments);
    prepare_args pa = {g, t->losses, t->window, t->counters + 1, t->hyper, t->step, t->segments, t->mu, t->coef,
                       t->grad_sq, t->stats};
    if (st == SDAGD_OK) st = be->prepare(t->ctx, &pa);
    update_args ua = {g, t->params, t->grad, t->hess, t->state0, t->state1, t->hyper, t->coef, t->mu, t->step_sq,
                      t->stats};
    if (st == SDAGD_OK) st = be->update(t->ctx, &ua);
    advance_args aa = {g, B, t->counters, t->counters + 1, t->window, t->step};
    if (st == SDAGD_OK) st = be->advance(t->ctx, &aa);
    return st;
}

/* One step, replayed from a recording when the backend has one for (B, curvature). */
static sdagd_status run_step(sdagd_trainer *t, int B, int curvature, const gather_args *gather) {
    const sdagd_backend_ops *be = t->be;
    if (!t->recorder || !gather) return enqueue_step(t, B, curvature, gather);
    int key = B * 2 + curvature;
    int replayed = be->replay(t->ctx, t->recorder, key);
    if (replayed) return replayed > 0 ? SDAGD_OK : SDAGD_ERR_DEVICE;
    sdagd_status st = be->capture_begin(t->ctx, t->recorder, key);
    if (st != SDAGD_OK) return st;
    st = enqueue_step(t, B, curvature, gather);
    /* ends the capture in every case; a step that failed is not kept (nor launched) */
    sdagd_status end = be->capture_end(t->ctx, t->recorder, key, st == SDAGD_OK);
    return st != SDAGD_OK ? st : end;
}

/* ---- epochs ---------------------------------------------------------------------------- */

/* Per-epoch values into the backend: hyperparameters (this epoch's radius), step counts,
 * which networks train, zeroed statistics and counters. */
static sdagd_status begin_epoch(sdagd_trainer *t, const int64_t *epochs, const sdagd_train_stats *stats) {
    int K = t->K;
    size_t L = (size_t)t->lead->n_layers;
    optim_hyper *hyper = malloc((size_t)K * sizeof *hyper);
    if (!hyper) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    for (int k = 0; k < K; k++) {
        hyper[k] = optim_hyper_for(t->opts[k], epochs[k]);
        t->host_step[k] = t->opts[k]->step;
        t->host_active[k] = stats[k].diverged == 0;
    }
    const sdagd_backend_ops *be = t->be;
    int64_t zeros[2] = {0, 0};
    sdagd_status st = be->upload(t->ctx, t->hyper, hyper, (size_t)K * sizeof *hyper);
    free(hyper);
    if (st == SDAGD_OK) st = be->upload(t->ctx, t->step, t->host_step, (size_t)K * sizeof(int64_t));
    if (st == SDAGD_OK) st = be->upload(t->ctx, t->active, t->host_active, (size_t)K);
    if (st == SDAGD_OK) st = be->upload(t->ctx, t->counters, zeros, sizeof zeros);
    if (st == SDAGD_OK) st = be->zero(t->ctx, t->stats, (size_t)K * sizeof(net_stats));
    if (st == SDAGD_OK) st = be->zero(t->ctx, t->grad_sq, (size_t)K * L * sizeof(double));
    if (st == SDAGD_OK) st = be->zero(t->ctx, t->saturated, (size_t)K * L * sizeof(int64_t));
    if (st == SDAGD_OK) st = be->zero(t->ctx, t->ever_active, (size_t)K * (t->lead->hidden_units + 1));
    return st;
}

static int any_needs_curvature(const sdagd_trainer *t) {
    for (int k = 0; k < t->K; k++)
        if (t->host_active[k] && optim_needs_hessian_at(t->opts[k], t->host_step[k])) return 1;
    return 0;
}

static int any_active(const sdagd_trainer *t) {
    for (int k = 0; k < t->K; k++)
        if (t->host_active[k]) return 1;
    return 0;
}

/* Reads back the losses of the last `steps` steps: accumulates them, and finds the first
 * non-finite one of each network (which the backend already made inactive). */
static sdagd_status read_window(sdagd_trainer *t, int steps, sdagd_train_stats *stats) {
    int K = t->K, W = t->window;
    sdagd_status st = t->be->download(t->ctx, t->host_losses, t->losses, (size_t)K * W * sizeof(double));
    if (st == SDAGD_OK) st = t->be->download(t->ctx, t->host_errors, t->errors, (size_t)K * W * sizeof(int64_t));
    if (st != SDAGD_OK) return st;
    for (int k = 0; k < K; k++) {
        if (!t->host_active[k]) continue;
        sdagd_train_stats *s = &stats[k];
        int64_t first_step = t->host_step[k] - steps; /* the mirror counted all of them */
        for (int j = 0; j < steps; j++) {
            double loss = t->host_losses[(size_t)k * W + j];
            if (!isfinite(loss)) {
                s->diverged = SDAGD_DIVERGED_LOSS;
                s->diverged_step = first_step + j;
                s->diverged_loss = loss;
                t->host_active[k] = 0;
                t->host_step[k] = first_step + j;
                break;
            }
            s->loss_sum += loss;
            s->errors += t->host_errors[(size_t)k * W + j];
            s->rows += t->window_rows[j];
            s->steps++;
            if (t->opts[k]->config.kind == SDAGD_OPT_SDAGD) s->params_seen += (int64_t)t->lead->n_params;
        }
    }
    return SDAGD_OK;
}

/* The epoch's device statistics into the callers' sdagd_train_stats. */
static sdagd_status end_epoch(sdagd_trainer *t, sdagd_train_stats *stats) {
    int K = t->K, L = t->lead->n_layers;
    size_t units = t->lead->hidden_units + 1;
    size_t bytes = (size_t)K * (sizeof(net_stats) + (size_t)L * (sizeof(double) + sizeof(int64_t)) + units) +
                   (size_t)K * sizeof(int64_t);
    char *buf = malloc(bytes);
    if (!buf) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    net_stats *ns = (net_stats *)buf;
    double *grad_sq = (double *)(ns + K);
    int64_t *saturated = (int64_t *)(grad_sq + (size_t)K * L);
    int64_t *steps = saturated + (size_t)K * L;
    uint8_t *ever = (uint8_t *)(steps + K);
    const sdagd_backend_ops *be = t->be;
    sdagd_status st = be->download(t->ctx, ns, t->stats, (size_t)K * sizeof *ns);
    if (st == SDAGD_OK) st = be->download(t->ctx, grad_sq, t->grad_sq, (size_t)K * L * sizeof *grad_sq);
    if (st == SDAGD_OK) st = be->download(t->ctx, saturated, t->saturated, (size_t)K * L * sizeof *saturated);
    if (st == SDAGD_OK) st = be->download(t->ctx, ever, t->ever_active, (size_t)K * units);
    if (st == SDAGD_OK) st = be->download(t->ctx, steps, t->step, (size_t)K * sizeof *steps);
    for (int k = 0; k < K && st == SDAGD_OK; k++) {
        sdagd_train_stats *s = &stats[k];
        t->opts[k]->step = steps[k];
        if (ns[k].mu_count) {
            if (s->mu_count == 0 || ns[k].mu_min < s->mu_min) s->mu_min = ns[k].mu_min;
            if (s->mu_count == 0 || ns[k].mu_max > s->mu_max) s->mu_max = ns[k].mu_max;
            s->mu_sum += ns[k].mu_sum;
            s->mu_count += ns[k].mu_count;
        }
        s->phase1_params += ns[k].phase1;
        const sdagd_mlp *net = t->nets[k];
        size_t unit = 0;
        for (int l = 0; l < L; l++) {
            if (s->grad_sq) s->grad_sq[l] = grad_sq[(size_t)k * L + l];
            if (l + 1 == L) break;
            int width = net->sizes[l + 1];
            if (s->saturated) s->saturated[l] = saturated[(size_t)k * L + l];
            if (s->unit_rows) s->unit_rows[l] = s->rows * width;
            if (s->inactive) {
                int64_t never = 0;
                for (int j = 0; j < width; j++) never += !ever[(size_t)k * units + unit + (size_t)j];
                s->inactive[l] = never;
            }
            unit += (size_t)width;
        }
    }
    free(buf);
    return st;
}

/* Marks networks whose parameters are no longer finite (a saturated sigmoid can turn a
 * parameter inf before any loss does). */
static sdagd_status check_parameters(sdagd_trainer *t, sdagd_train_stats *stats) {
    uint8_t *ok = malloc((size_t)t->K);
    if (!ok) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    sdagd_status st = t->be->all_finite(t->ctx, t->params.p, t->lead->n_params, t->params.stride, t->K, ok);
    for (int k = 0; k < t->K && st == SDAGD_OK; k++)
        if (!ok[k] && stats[k].diverged == 0) {
            stats[k].diverged = SDAGD_DIVERGED_PARAMS;
            stats[k].diverged_step = t->opts[k]->step;
            stats[k].diverged_loss = NAN;
        }
    free(ok);
    return st;
}

sdagd_status sdagd_trainer_epoch(sdagd_trainer *t, const sdagd_dataset *ds, int batch_size, const uint64_t *seeds,
                           const int64_t *epochs, sdagd_train_stats *stats, sdagd_poll_fn poll, void *poll_ctx) {
    int64_t N = sdagd_dataset_rows(ds);
    if (dataset_device(ds) != t->lead->device || dataset_width(ds) != t->lead->sizes[0])
        return sdagd_fail(SDAGD_ERR_ARG, "this data set was made for a network of another input size or device");
    if (batch_size < 1) return sdagd_fail(SDAGD_ERR_ARG, "batch_size must be >= 1, got %d", batch_size);
    int n_out = t->lead->sizes[t->lead->n_layers];
    if (dataset_max_label(ds) >= n_out) /* whatever network the data set was made with */
        return sdagd_fail(SDAGD_ERR_ARG, "this data set holds label %d; networks with %d outputs take labels in [0, %d)",
                          dataset_max_label(ds), n_out, n_out);
    /* The 64-bit counters must not overflow (undefined behaviour, then a negative step that no
     * checkpoint can hold): this epoch adds ceil(N / batch_size) steps and one epoch. */
    int64_t epoch_steps = (N + batch_size - 1) / batch_size;
    for (int k = 0; k < t->K; k++)
        if (t->opts[k]->step > INT64_MAX - epoch_steps || epochs[k] < 0 || epochs[k] > INT64_MAX - 1)
            return sdagd_fail(SDAGD_ERR_ARG, "network %d: step count %lld or epoch %lld would overflow the 64-bit "
                              "counters in this epoch of %lld steps", k, (long long)t->opts[k]->step,
                              (long long)epochs[k], (long long)epoch_steps);
    int K = t->K, B_full = (int)(N < batch_size ? N : batch_size);
    sdagd_status st = prepare_buffers(t, B_full);
    if (st != SDAGD_OK) return st;
    if (t->perm_rows != N) { /* each network's order, on the device */
        if (t->perm) t->be->dealloc(t->ctx, t->perm);
        t->perm = NULL;
        t->perm_rows = 0; /* until both buffers are had */
        free(t->host_perm);
        t->host_perm = malloc((size_t)K * (size_t)N * sizeof(int32_t));
        if (!t->host_perm) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory for the epoch's permutations");
        if ((st = alloc_on(t, (void **)&t->perm, (size_t)K * (size_t)N * sizeof(int32_t))) != SDAGD_OK) return st;
        t->perm_rows = N;
        forget_steps(t);
    }
    if (t->data_key != dataset_serial(ds)) forget_steps(t);
    t->data_key = dataset_serial(ds);
    if ((st = begin_epoch(t, epochs, stats)) != SDAGD_OK) return st;
    for (int k = 0; k < K; k++)
        if (t->host_active[k]) shuffle_order32(t->host_perm + (size_t)k * N, N, seeds[k], epochs[k]);
    st = t->be->upload(t->ctx, t->perm, t->host_perm, (size_t)K * (size_t)N * sizeof(int32_t));
    gather_args gather = {&t->view, 0, dataset_inputs(ds), dataset_labels(ds), t->perm, (size_t)N, t->counters, 0};
    int in_window = 0;
    for (int64_t start = 0; start < N && st == SDAGD_OK && any_active(t); start += batch_size) {
        int B = (int)(N - start < batch_size ? N - start : batch_size);
        int curvature = any_needs_curvature(t);
        gather.B = B;
        gather.want_sq = curvature;
        st = run_step(t, B, curvature, &gather);
        if (st != SDAGD_OK) break;
        t->window_rows[in_window++] = B;
        for (int k = 0; k < K; k++) t->host_step[k] += t->host_active[k];
        int last = start + batch_size >= N;
        int stop = poll && poll(poll_ctx);
        if (in_window == t->window || last || stop) {
            st = read_window(t, in_window, stats);
            in_window = 0;
        }
        if (st == SDAGD_OK && stop) st = sdagd_fail(SDAGD_ERR_INTERRUPTED, "interrupted after step %lld",
                                                    (long long)t->host_step[0]);
    }
    if (in_window && st == SDAGD_OK) st = read_window(t, in_window, stats);
    sdagd_status end = end_epoch(t, stats); /* also after an interruption: the work done counts */
    if (end == SDAGD_OK) end = check_parameters(t, stats);
    if (end == SDAGD_OK && t->owns_slabs) end = exchange_slabs(t, 1);
    return st != SDAGD_OK ? st : end;
}

/* ---- one step ------------------------------------------------------------------------ */

sdagd_status sdagd_trainer_step(sdagd_trainer *t, const float *X, const int32_t *labels, int B, const int64_t *epochs,
                          sdagd_train_stats *stats) {
    if (B < 1) return sdagd_fail(SDAGD_ERR_ARG, "a batch needs at least one row, got %d", B);
    for (int k = 0; k < t->K; k++)
        if (t->opts[k]->step == INT64_MAX || epochs[k] < 0 || epochs[k] == INT64_MAX)
            return sdagd_fail(SDAGD_ERR_ARG, "network %d: step count %lld or epoch %lld would overflow the 64-bit "
                              "counters", k, (long long)t->opts[k]->step, (long long)epochs[k]);
    sdagd_status st = mlp_check_labels(t->lead, labels, B);
    if (st == SDAGD_OK) st = prepare_buffers(t, B);
    if (st == SDAGD_OK) st = begin_epoch(t, epochs, stats);
    if (st != SDAGD_OK) return st;
    const sdagd_backend_ops *be = t->be;
    int curvature = any_needs_curvature(t);
    /* every network's inputs slot gets the batch; x o x in place when h is needed */
    for (int k = 0; k < t->K && st == SDAGD_OK; k++) {
        st = be->upload(t->ctx, t->view.x + (size_t)k * t->view.x_stride, X,
                        (size_t)B * (size_t)t->lead->sizes[0] * sizeof(float));
        if (st == SDAGD_OK)
            st = be->upload(t->ctx, t->view.y + (size_t)k * t->view.y_stride, labels, (size_t)B * sizeof(int32_t));
    }
    gather_args squares = {&t->view, B, t->view.x, NULL, NULL, 0, t->counters, 1};
    if (st == SDAGD_OK && curvature) st = be->gather(t->ctx, &squares);
    if (st == SDAGD_OK && any_active(t)) {
        st = run_step(t, B, curvature, NULL);
        if (st == SDAGD_OK) {
            t->window_rows[0] = B;
            for (int k = 0; k < t->K; k++) t->host_step[k] += t->host_active[k];
            st = read_window(t, 1, stats);
        }
    }
    sdagd_status end = end_epoch(t, stats);
    if (end == SDAGD_OK) end = check_parameters(t, stats);
    if (end == SDAGD_OK && t->owns_slabs) end = exchange_slabs(t, 1);
    return st != SDAGD_OK ? st : end;
}

/* ---- divergence ------------------------------------------------------------------------- */

void sdagd_train_divergence_message(char *buf, size_t size, const sdagd_optimizer *opt, const sdagd_train_stats *s) {
    if (s->diverged == SDAGD_DIVERGED_LOSS) {
        /* named, not printed: the sign of a NaN differs between the CPU and a GPU */
        const char *loss = isnan(s->diverged_loss) ? "nan" : s->diverged_loss > 0 ? "inf" : "-inf";
        snprintf(buf, size, "%s diverged: the batch loss is %s at step %lld", optimizer_name(opt->config.kind), loss,
                 (long long)s->diverged_step);
    } else {
        snprintf(buf, size, "%s diverged: parameters became NaN or inf by step %lld",
                 optimizer_name(opt->config.kind), (long long)s->diverged_step);
    }
}
