/*
 * Optimizers of docs/algorithms.md section 5: configuration, state and the per-epoch values the
 * update kernels read (optim_hyper). The update itself is one backend operation over the
 * parameter slab (backend.h, kernels.h); the training loop (train.c) calls it.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int uses_state_for_h(const optim_config *c) { return c->kind == OPT_SDAGD || c->kind == OPT_SDLM; }

static int slabs_for(const optim_config *c) {
    switch (c->kind) {
    case OPT_SGD: return c->momentum > 0.0 ? 1 : 0; /* momentum buffer m */
    case OPT_SDAGD: return 1;                        /* the h in use: kept, or averaged */
    case OPT_SDLM: return 1;                         /* running average hbar */
    case OPT_ADAGRAD: return 1;                      /* sum of g^2 */
    case OPT_ADADELTA: return 2;                     /* averages of g^2 and of delta^2 */
    default: return 2;                               /* Adam: m, v */
    }
}

const char *optimizer_name(int kind) {
    static const char *names[] = {"SGD", "SDAGD", "SDLM", "AdaGrad", "AdaDelta", "Adam"};
    return kind >= 0 && kind <= OPT_ADAM ? names[kind] : "?";
}

static sdagd_status check_config(const optim_config *c) {
#define REQUIRE(cond, ...) \
    if (!(cond)) return sdagd_fail(SDAGD_ERR_ARG, __VA_ARGS__)
    switch (c->kind) {
    case OPT_SGD:
        REQUIRE(c->lr > 0 && isfinite(c->lr), "SGD: lr must be a positive finite number, got %g", c->lr);
        REQUIRE(c->momentum >= 0 && c->momentum < 1, "SGD: momentum must be in [0, 1), got %g", c->momentum);
        break;
    case OPT_SDAGD:
        REQUIRE(c->radius > 0 && isfinite(c->radius), "SDAGD: radius must be a positive finite number, got %g", c->radius);
        REQUIRE(c->eps > 0 && isfinite(c->eps), "SDAGD: eps must be positive, got %g", c->eps);
        REQUIRE(c->norm == NORM_LAYER || c->norm == NORM_GLOBAL, "SDAGD: unknown norm code %d", c->norm);
        REQUIRE(c->hessian_every >= 1, "SDAGD: hessian_every must be >= 1, got %d", c->hessian_every);
        REQUIRE(!(c->max_step < 0) && !isnan(c->max_step) && !isinf(c->max_step),
                "SDAGD: max_step must be a positive finite number, got %g", c->max_step);
        REQUIRE(!c->average || (c->gamma > 0 && c->gamma <= 1),
                "SDAGD: the running average's gamma must be in (0, 1], got %g", c->gamma);
        REQUIRE(c->hessian_scale >= 0 && isfinite(c->hessian_scale),
                "SDAGD: hessian_scale must be a finite number >= 0, got %g", c->hessian_scale);
        switch (c->schedule) {
        case SCHEDULE_CONSTANT: break;
        case SCHEDULE_STEP:
            REQUIRE(c->schedule_factor > 0 && c->schedule_factor <= 1,
                    "SDAGD: the step schedule's factor must be in (0, 1], got %g", c->schedule_factor);
            REQUIRE(c->schedule_every >= 1, "SDAGD: the step schedule's every must be >= 1, got %d", c->schedule_every);
            break;
        case SCHEDULE_COSINE:
            REQUIRE(c->schedule_epochs >= 1, "SDAGD: the cosine schedule needs epochs >= 1, got %d", c->schedule_epochs);
            REQUIRE(c->radius_min >= 0 && c->radius_min <= c->radius,
                    "SDAGD: the cosine schedule's radius_min must be in [0, radius], got %g", c->radius_min);
            break;
        default: return sdagd_fail(SDAGD_ERR_ARG, "SDAGD: unknown schedule code %d", c->schedule);
        }
        break;
    case OPT_SDLM:
        REQUIRE(c->lr > 0 && isfinite(c->lr), "SDLM: lr must be a positive finite number, got %g", c->lr);
        REQUIRE(c->mu > 0 && isfinite(c->mu), "SDLM: mu must be a positive finite number, got %g", c->mu);
        REQUIRE(c->gamma > 0 && c->gamma <= 1, "SDLM: gamma must be in (0, 1], got %g", c->gamma);
        break;
    case OPT_ADAGRAD:
        REQUIRE(c->lr > 0 && isfinite(c->lr), "AdaGrad: lr must be a positive finite number, got %g", c->lr);
        REQUIRE(c->eps > 0 && isfinite(c->eps), "AdaGrad: eps must be positive, got %g", c->eps);
        break;
    case OPT_ADADELTA:
        REQUIRE(c->lr > 0 && isfinite(c->lr), "AdaDelta: lr must be a positive finite number, got %g", c->lr);
        REQUIRE(c->rho >= 0 && c->rho < 1, "AdaDelta: rho must be in [0, 1), got %g", c->rho);
        REQUIRE(c->eps > 0 && isfinite(c->eps), "AdaDelta: eps must be positive, got %g", c->eps);
        break;
    case OPT_ADAM:
        REQUIRE(c->lr > 0 && isfinite(c->lr), "Adam: lr must be a positive finite number, got %g", c->lr);
        REQUIRE(c->beta1 >= 0 && c->beta1 < 1, "Adam: beta1 must be in [0, 1), got %g", c->beta1);
        REQUIRE(c->beta2 >= 0 && c->beta2 < 1, "Adam: beta2 must be in [0, 1), got %g", c->beta2);
        REQUIRE(c->eps > 0 && isfinite(c->eps), "Adam: eps must be positive, got %g", c->eps);
        break;
    default:
        return sdagd_fail(SDAGD_ERR_ARG, "unknown optimizer code %d", c->kind);
    }
#undef REQUIRE
    return SDAGD_OK;
}

void optim_free(optimizer *opt) {
    if (!opt) return;
    for (int i = 0; i < 2; i++)
        if (opt->state[i]) opt->net->be->dealloc(opt->net->ctx, opt->state[i]);
    free(opt);
}

sdagd_status optim_create(optimizer **out, const optim_config *config, const mlp *net) {
    *out = NULL;
    sdagd_status st = check_config(config);
    if (st != SDAGD_OK) return st;
    optimizer *opt = calloc(1, sizeof *opt);
    if (!opt) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    opt->config = *config;
    if (!(opt->config.hessian_scale > 0)) opt->config.hessian_scale = 1.0;
    opt->net = net;
    opt->n = net->n_params;
    opt->n_slabs = slabs_for(config);
    for (int i = 0; i < opt->n_slabs && st == SDAGD_OK; i++) {
        st = net->be->alloc(net->ctx, (void **)&opt->state[i], opt->n * sizeof(float));
        if (st == SDAGD_OK) st = net->be->zero(net->ctx, opt->state[i], opt->n * sizeof(float));
    }
    if (st != SDAGD_OK) {
        optim_free(opt);
        return st == SDAGD_ERR_NOMEM ? sdagd_fail(st, "out of memory allocating optimizer state") : st;
    }
    *out = opt;
    return SDAGD_OK;
}

int optim_num_state_slabs(const optimizer *opt) { return opt->n_slabs; }
int64_t optim_step_count(const optimizer *opt) { return opt->step; }

sdagd_status optim_get_state(const optimizer *opt, float *dst, int64_t *step) {
    sdagd_status st = SDAGD_OK;
    for (int i = 0; i < opt->n_slabs && st == SDAGD_OK; i++)
        st = opt->net->be->download(opt->net->ctx, dst + (size_t)i * opt->n, opt->state[i], opt->n * sizeof(float));
    *step = opt->step;
    return st;
}

sdagd_status optim_set_state(optimizer *opt, const float *src, int64_t step) {
    if (step < 0) return sdagd_fail(SDAGD_ERR_ARG, "optimizer step count must be >= 0, got %lld", (long long)step);
    sdagd_status st = SDAGD_OK;
    for (int i = 0; i < opt->n_slabs && st == SDAGD_OK; i++)
        st = opt->net->be->upload(opt->net->ctx, opt->state[i], src + (size_t)i * opt->n, opt->n * sizeof(float));
    if (st == SDAGD_OK) opt->step = step;
    return st;
}

int optim_needs_hessian_at(const optimizer *opt, int64_t step) {
    if (opt->config.kind == OPT_SDLM) return 1;
    return opt->config.kind == OPT_SDAGD && step % opt->config.hessian_every == 0;
}

double optim_radius_at(const optim_config *c, int64_t epoch) {
    switch (c->schedule) {
    case SCHEDULE_STEP: return c->radius * pow(c->schedule_factor, (double)(epoch / c->schedule_every));
    case SCHEDULE_COSINE: {
        double e = (double)(epoch < c->schedule_epochs ? epoch : c->schedule_epochs);
        return c->radius_min + (c->radius - c->radius_min) * (1.0 + cos(3.14159265358979323846 * e / c->schedule_epochs)) / 2.0;
    }
    default: return c->radius;
    }
}

optim_hyper optim_hyper_for(const optimizer *opt, int64_t epoch) {
    const optim_config *c = &opt->config;
    return (optim_hyper){
        .kind = c->kind,
        .norm = c->norm,
        .hessian_every = c->hessian_every > 0 ? c->hessian_every : 1,
        .average = c->kind == OPT_SDAGD && c->average,
        .lr = (float)c->lr,
        .momentum = (float)c->momentum,
        .radius = optim_radius_at(c, epoch),
        .eps = (float)c->eps,
        .max_step = c->max_step,
        .mu = (float)c->mu,
        .gamma = (float)c->gamma,
        .beta1 = (float)c->beta1,
        .beta2 = (float)c->beta2,
        .rho = (float)c->rho,
        .hessian_scale = (float)c->hessian_scale,
    };
}

int optim_uses_curvature(const optimizer *opt) { return uses_state_for_h(&opt->config); }
