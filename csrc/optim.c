/*
 * Optimizers of docs/algorithms.md section 5: configuration, state and the per-epoch values the
 * update kernels read (optim_hyper). The update itself is one backend operation over the
 * parameter slab (backend.h, kernels.h); the training loop (train.c) calls it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optimizer.h"
#include "error.h"

/* The tables of tables.h as arrays. */
#define OPTIMIZER_ROW(code, name, slabs, unless_zero, curvature, step, state) \
    {code, name, slabs, unless_zero, curvature, step, state},
static const sdagd_optimizer_desc optimizers[] = {SDAGD_OPTIMIZERS(OPTIMIZER_ROW)};
#define SDAGD_HYPER_ROW(opt, slot, name, fallback, low, low_closed, high, high_closed, type, doc) \
    {opt, slot, name, fallback, low, high, low_closed, high_closed, type, doc},
static const sdagd_hyper_desc hypers[] = {SDAGD_HYPERPARAMETERS(SDAGD_HYPER_ROW)};
#define ACTIVATION_ROW(code, name, hidden, output, diagnostic) {code, name, hidden, output, diagnostic},
static const sdagd_activation_desc activations[] = {SDAGD_ACTIVATIONS(ACTIVATION_ROW)};

#define COUNT(a) ((int)(sizeof a / sizeof a[0]))
#define STATE_SLABS_MAX 2 /* struct sdagd_optimizer's state[] */
#define MAX_SLABS_OF(code, name, slabs, ...) _Static_assert(slabs <= STATE_SLABS_MAX, name ": too many state slabs");
SDAGD_OPTIMIZERS(MAX_SLABS_OF)

const sdagd_optimizer_desc *sdagd_optim_table(int *n) {
    *n = COUNT(optimizers);
    return optimizers;
}
const sdagd_hyper_desc *sdagd_optim_hyper_table(int *n) {
    *n = COUNT(hypers);
    return hypers;
}
const sdagd_activation_desc *sdagd_activation_table(int *n) {
    *n = COUNT(activations);
    return activations;
}

const char *sdagd_optim_choice_names(int slot) {
#define CHOICE_NAMES(s, names) \
    if (slot == s) return names;
    SDAGD_CHOICES(CHOICE_NAMES)
    return NULL;
}

/* The row of a valid code (rows are in code order: the enum is made from the same list). */
static const sdagd_optimizer_desc *row_of(int kind) { return &optimizers[kind]; }

static int slabs_for(const sdagd_optim_config *c) {
    const sdagd_optimizer_desc *d = row_of(c->kind);
    return d->slabs_unless_zero >= 0 && c->hyper[d->slabs_unless_zero] == 0.0 ? 0 : d->slabs;
}

const char *optimizer_name(int kind) { return kind >= 0 && kind < SDAGD_OPT_COUNT ? optimizers[kind].name : "?"; }

sdagd_status sdagd_optim_config_defaults(sdagd_optim_config *c, int kind) {
    memset(c, 0, sizeof *c);
    if (kind < 0 || kind >= SDAGD_OPT_COUNT) return sdagd_fail(SDAGD_ERR_ARG, "unknown optimizer code %d", kind);
    c->kind = kind;
    for (int i = 0; i < COUNT(hypers); i++)
        if ((int)hypers[i].optimizer == kind) c->hyper[hypers[i].slot] = hypers[i].fallback;
    return SDAGD_OK;
}

/* Is v inside the hyperparameter's range? */
static int in_range(const sdagd_hyper_desc *d, double v) {
    if (isnan(v)) return 0;
    if (d->type == SDAGD_HYPER_OPTIONAL && v == 0.0) return 1; /* off */
    if (d->type == SDAGD_HYPER_INT || d->type == SDAGD_HYPER_CHOICE) {
        if (v != floor(v)) return 0;
    } else if (!isfinite(v)) {
        return 0;
    }
    return (d->low_closed ? v >= d->low : v > d->low) && (d->high_closed ? v <= d->high : v < d->high);
}

static sdagd_status out_of_range(const char *opt, const sdagd_hyper_desc *d, double v) {
    if (d->type == SDAGD_HYPER_CHOICE) return sdagd_fail(SDAGD_ERR_ARG, "%s: unknown %s code %g", opt, d->name, v);
    if (d->type == SDAGD_HYPER_INT)
        return sdagd_fail(SDAGD_ERR_ARG, "%s: %s must be an integer from %.0f to %.0f, got %g", opt, d->name, d->low,
                          d->high, v);
    if (!d->low_closed && d->low == 0.0 && isinf(d->high))
        return sdagd_fail(SDAGD_ERR_ARG, "%s: %s must be a positive finite number%s, got %g", opt, d->name,
                          d->type == SDAGD_HYPER_OPTIONAL ? " (or 0: none)" : "", v);
    return sdagd_fail(SDAGD_ERR_ARG, "%s: %s must be in %c%g, %g%c%s, got %g", opt, d->name, d->low_closed ? '[' : '(',
                      d->low, d->high, d->high_closed ? ']' : ')', d->type == SDAGD_HYPER_OPTIONAL ? " (or 0: none)" : "", v);
}

/* Every hyperparameter of the optimizer within its range (tables.h), then the schedule. */
sdagd_status sdagd_optim_config_check(const sdagd_optim_config *c) {
    if (c->kind < 0 || c->kind >= SDAGD_OPT_COUNT) return sdagd_fail(SDAGD_ERR_ARG, "unknown optimizer code %d", c->kind);
    const sdagd_optimizer_desc *d = row_of(c->kind);
    for (int i = 0; i < COUNT(hypers); i++)
        if (hypers[i].optimizer == c->kind && !in_range(&hypers[i], c->hyper[hypers[i].slot]))
            return out_of_range(d->name, &hypers[i], c->hyper[hypers[i].slot]);
    double step = c->hyper[d->step_slot];
    const char *step_name = "step size";
    for (int i = 0; i < COUNT(hypers); i++)
        if (hypers[i].optimizer == c->kind && hypers[i].slot == d->step_slot) step_name = hypers[i].name;
#define REQUIRE(cond, ...) \
    if (!(cond)) return sdagd_fail(SDAGD_ERR_ARG, __VA_ARGS__)
    switch (c->schedule) {
    case SDAGD_SCHEDULE_CONSTANT: break;
    case SDAGD_SCHEDULE_STEP:
        REQUIRE(c->schedule_factor > 0 && c->schedule_factor <= 1,
                "%s: the step schedule's factor must be in (0, 1], got %g", d->name, c->schedule_factor);
        REQUIRE(c->schedule_every >= 1, "%s: the step schedule's every must be >= 1, got %d", d->name,
                c->schedule_every);
        break;
    case SDAGD_SCHEDULE_COSINE:
        REQUIRE(c->schedule_epochs >= 1, "%s: the cosine schedule needs epochs >= 1, got %d", d->name,
                c->schedule_epochs);
        REQUIRE(c->step_min >= 0 && c->step_min <= step, "%s: the cosine schedule's %s_min must be in [0, %s], got %g",
                d->name, step_name, step_name, c->step_min);
        break;
    default: return sdagd_fail(SDAGD_ERR_ARG, "%s: unknown schedule code %d", d->name, c->schedule);
    }
#undef REQUIRE
    return SDAGD_OK;
}

void sdagd_optim_free(sdagd_optimizer *opt) {
    if (!opt) return;
    for (int i = 0; i < 2; i++)
        if (opt->state[i]) opt->net->be->dealloc(opt->net->ctx, opt->state[i]);
    free(opt);
}

sdagd_status sdagd_optim_create(sdagd_optimizer **out, const sdagd_optim_config *config, const sdagd_mlp *net) {
    *out = NULL;
    sdagd_status st = sdagd_optim_config_check(config);
    if (st != SDAGD_OK) return st;
    sdagd_optimizer *opt = calloc(1, sizeof *opt);
    if (!opt) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    opt->config = *config;
    opt->net = net;
    opt->n = net->n_params;
    opt->n_slabs = slabs_for(config);
    for (int i = 0; i < opt->n_slabs && st == SDAGD_OK; i++) {
        st = net->be->alloc(net->ctx, (void **)&opt->state[i], opt->n * sizeof(float));
        if (st == SDAGD_OK) st = net->be->zero(net->ctx, opt->state[i], opt->n * sizeof(float));
    }
    if (st != SDAGD_OK) {
        sdagd_optim_free(opt);
        return st == SDAGD_ERR_NOMEM ? sdagd_fail(st, "out of memory allocating optimizer state") : st;
    }
    *out = opt;
    return SDAGD_OK;
}

int sdagd_optim_num_state_slabs(const sdagd_optimizer *opt) { return opt->n_slabs; }
int64_t sdagd_optim_step_count(const sdagd_optimizer *opt) { return opt->step; }

sdagd_status sdagd_optim_get_state(const sdagd_optimizer *opt, float *dst, int64_t *step) {
    sdagd_status st = SDAGD_OK;
    for (int i = 0; i < opt->n_slabs && st == SDAGD_OK; i++)
        st = opt->net->be->download(opt->net->ctx, dst + (size_t)i * opt->n, opt->state[i], opt->n * sizeof(float));
    *step = opt->step;
    return st;
}

sdagd_status sdagd_optim_set_state(sdagd_optimizer *opt, const float *src, int64_t step) {
    if (step < 0) return sdagd_fail(SDAGD_ERR_ARG, "optimizer step count must be >= 0, got %lld", (long long)step);
    sdagd_status st = SDAGD_OK;
    for (int i = 0; i < opt->n_slabs && st == SDAGD_OK; i++)
        st = opt->net->be->upload(opt->net->ctx, opt->state[i], src + (size_t)i * opt->n, opt->n * sizeof(float));
    if (st == SDAGD_OK) opt->step = step;
    return st;
}

int optim_needs_hessian_at(const sdagd_optimizer *opt, int64_t step) {
    switch (row_of(opt->config.kind)->curvature) {
    case SDAGD_CURVATURE_ALWAYS: return 1;
    case SDAGD_CURVATURE_EVERY: return step % (int64_t)opt->config.hyper[SDAGD_HP_HESSIAN_EVERY] == 0;
    default: return 0;
    }
}

int optim_curvature_need(int kind) { return row_of(kind)->curvature; }

double sdagd_optim_step_at(const sdagd_optim_config *c, int64_t epoch) {
    double s = c->hyper[row_of(c->kind)->step_slot];
    switch (c->schedule) {
    case SDAGD_SCHEDULE_STEP: return s * pow(c->schedule_factor, (double)(epoch / c->schedule_every));
    case SDAGD_SCHEDULE_COSINE: {
        double e = (double)(epoch < c->schedule_epochs ? epoch : c->schedule_epochs);
        return c->step_min + (s - c->step_min) * (1.0 + cos(3.14159265358979323846 * e / c->schedule_epochs)) / 2.0;
    }
    default: return s;
    }
}

/* The kernels' view: each slot into its field, with this epoch's step size (tables.h says
 * which slot that is) after the schedule. */
optim_hyper optim_hyper_for(const sdagd_optimizer *opt, int64_t epoch) {
    const sdagd_optim_config *c = &opt->config;
    const sdagd_optimizer_desc *d = row_of(c->kind);
    double v[SDAGD_HP_COUNT];
    memcpy(v, c->hyper, sizeof v);
    v[d->step_slot] = sdagd_optim_step_at(c, epoch);
    return (optim_hyper){
        .kind = c->kind,
        .curvature = d->curvature,
        .norm = (int32_t)v[SDAGD_HP_NORM],
        .hessian_every = v[SDAGD_HP_HESSIAN_EVERY] >= 1 ? (int32_t)v[SDAGD_HP_HESSIAN_EVERY] : 1,
        .average = v[SDAGD_HP_AVERAGE] > 0,
        .lr = (float)v[SDAGD_HP_LR],
        .momentum = (float)v[SDAGD_HP_MOMENTUM],
        .radius = v[SDAGD_HP_RADIUS],
        .eps = (float)v[SDAGD_HP_EPS],
        .max_step = v[SDAGD_HP_MAX_STEP],
        .mu = (float)v[SDAGD_HP_MU],
        /* SDAGD's running average has its weight in `average` (0: none); SDLM's in gamma */
        .gamma = (float)(v[SDAGD_HP_AVERAGE] > 0 ? v[SDAGD_HP_AVERAGE] : v[SDAGD_HP_GAMMA]),
        .beta1 = (float)v[SDAGD_HP_BETA1],
        .beta2 = (float)v[SDAGD_HP_BETA2],
        .rho = (float)v[SDAGD_HP_RHO],
        .hessian_scale = (float)v[SDAGD_HP_HESSIAN_SCALE],
    };
}

int optim_uses_curvature(const sdagd_optimizer *opt) { return row_of(opt->config.kind)->curvature != SDAGD_CURVATURE_NEVER; }
