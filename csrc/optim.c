/*
 * Optimizers of ALGORITHMS.md section 5: one flat loop over the parameter slab each.
 * g is the gradient and h the truncated Hessian diagonal of the same mini-batch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "optim.h"

static int slabs_for(const optim_config *c) {
    switch (c->kind) {
    case OPT_SGD: return c->momentum > 0.0 ? 1 : 0; /* momentum buffer m */
    case OPT_SDAGD: return 1;                        /* h, kept for hessian_every > 1 */
    case OPT_SDLM: return 1;                         /* running average hbar */
    case OPT_ADAGRAD: return 1;                      /* sum of g^2 */
    case OPT_ADADELTA: return 2;                     /* averages of g^2 and of delta^2 */
    default: return 2;                               /* Adam: m, v */
    }
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
        REQUIRE(!(c->max_step < 0) && !isnan(c->max_step), "SDAGD: max_step must be positive, got %g", c->max_step);
        break;
    case OPT_SDLM:
        REQUIRE(c->lr > 0 && isfinite(c->lr), "SDLM: lr must be a positive finite number, got %g", c->lr);
        REQUIRE(c->mu > 0 && isfinite(c->mu), "SDLM: mu must be a positive finite number, got %g", c->mu);
        REQUIRE(c->gamma > 0 && c->gamma <= 1, "SDLM: gamma must be in (0, 1], got %g", c->gamma);
        break;
    case OPT_ADAGRAD:
        REQUIRE(c->lr > 0 && isfinite(c->lr), "AdaGrad: lr must be a positive finite number, got %g", c->lr);
        REQUIRE(c->eps > 0, "AdaGrad: eps must be positive, got %g", c->eps);
        break;
    case OPT_ADADELTA:
        REQUIRE(c->lr > 0 && isfinite(c->lr), "AdaDelta: lr must be a positive finite number, got %g", c->lr);
        REQUIRE(c->rho >= 0 && c->rho < 1, "AdaDelta: rho must be in [0, 1), got %g", c->rho);
        REQUIRE(c->eps > 0, "AdaDelta: eps must be positive, got %g", c->eps);
        break;
    case OPT_ADAM:
        REQUIRE(c->lr > 0 && isfinite(c->lr), "Adam: lr must be a positive finite number, got %g", c->lr);
        REQUIRE(c->beta1 >= 0 && c->beta1 < 1, "Adam: beta1 must be in [0, 1), got %g", c->beta1);
        REQUIRE(c->beta2 >= 0 && c->beta2 < 1, "Adam: beta2 must be in [0, 1), got %g", c->beta2);
        REQUIRE(c->eps > 0, "Adam: eps must be positive, got %g", c->eps);
        break;
    default:
        return sdagd_fail(SDAGD_ERR_ARG, "unknown optimizer code %d", c->kind);
    }
#undef REQUIRE
    return SDAGD_OK;
}

void optim_free(optimizer *opt) {
    if (!opt) return;
    free(opt->state[0]);
    free(opt->state[1]);
    free(opt->hess_scratch);
    free(opt->group_start);
    free(opt);
}

sdagd_status optim_create(optimizer **out, const optim_config *config, const mlp *net) {
    *out = NULL;
    sdagd_status st = check_config(config);
    if (st != SDAGD_OK) return st;
    optimizer *opt = calloc(1, sizeof *opt);
    if (!opt) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    opt->config = *config;
    opt->n = net->n_params;
    opt->n_slabs = slabs_for(config);
    for (int i = 0; i < opt->n_slabs; i++)
        if (!(opt->state[i] = calloc(opt->n, sizeof(float)))) goto nomem;
    if (config->kind == OPT_SDLM && !(opt->hess_scratch = malloc(opt->n * sizeof(float)))) goto nomem;
    /* Norm groups: one per layer (W_l then b_l are adjacent in the slab), or one for all. */
    opt->n_groups = config->norm == NORM_GLOBAL ? 1 : net->n_layers;
    if (!(opt->group_start = malloc((size_t)(opt->n_groups + 1) * sizeof(size_t)))) goto nomem;
    for (int g = 0; g < opt->n_groups; g++) opt->group_start[g] = net->w_off[g];
    opt->group_start[opt->n_groups] = net->n_params;
    *out = opt;
    return SDAGD_OK;
nomem:
    optim_free(opt);
    return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory allocating optimizer state");
}

int optim_num_state_slabs(const optimizer *opt) { return opt->n_slabs; }
int64_t optim_step_count(const optimizer *opt) { return opt->step; }

sdagd_status optim_get_state(const optimizer *opt, float *dst, int64_t *step) {
    for (int i = 0; i < opt->n_slabs; i++) memcpy(dst + (size_t)i * opt->n, opt->state[i], opt->n * sizeof(float));
    *step = opt->step;
    return SDAGD_OK;
}

sdagd_status optim_set_state(optimizer *opt, const float *src, int64_t step) {
    if (step < 0) return sdagd_fail(SDAGD_ERR_ARG, "optimizer step count must be >= 0, got %lld", (long long)step);
    for (int i = 0; i < opt->n_slabs; i++) memcpy(opt->state[i], src + (size_t)i * opt->n, opt->n * sizeof(float));
    opt->step = step;
    return SDAGD_OK;
}

int optim_needs_hessian(const optimizer *opt) {
    if (opt->config.kind == OPT_SDLM) return 1;
    return opt->config.kind == OPT_SDAGD && opt->step % opt->config.hessian_every == 0;
}

float *optim_hessian_target(optimizer *opt) {
    if (!optim_needs_hessian(opt)) return NULL;
    return opt->config.kind == OPT_SDLM ? opt->hess_scratch : opt->state[0];
}

/* SDAGD (Tan & Lim eq. 7, spec 5): per norm group, mu = ||g|| / R and
 * theta <- theta - g / (mu + h + eps), the step optionally capped at max_step in length. */
static void sdagd_step(optimizer *opt, float *theta, const float *g, train_stats *stats) {
    const optim_config *c = &opt->config;
    const float *h = opt->state[0];
    for (int grp = 0; grp < opt->n_groups; grp++) {
        size_t lo = opt->group_start[grp], hi = opt->group_start[grp + 1];
        double mu = sqrt(sum_of_squares(g + lo, hi - lo)) / c->radius;
        float muf = (float)mu, epsf = (float)c->eps, scale = 1.0f;
        if (c->max_step > 0) {
            double step2 = 0.0;
            for (size_t i = lo; i < hi; i++) {
                double s = g[i] / (muf + h[i] + epsf);
                step2 += s * s;
            }
            if (sqrt(step2) > c->max_step) scale = (float)(c->max_step / sqrt(step2));
        }
        int64_t phase1 = 0;
        for (size_t i = lo; i < hi; i++) {
            theta[i] -= scale * (g[i] / (muf + h[i] + epsf));
            phase1 += muf > h[i];
        }
        if (stats) {
            stats->mu_sum += mu;
            if (stats->mu_count == 0 || mu < stats->mu_min) stats->mu_min = mu;
            if (stats->mu_count == 0 || mu > stats->mu_max) stats->mu_max = mu;
            stats->mu_count++;
            stats->phase1_params += phase1;
        }
    }
    if (stats) stats->params_seen += (int64_t)opt->n;
}

sdagd_status optim_step(optimizer *opt, float *theta, const float *g, train_stats *stats) {
    const optim_config *c = &opt->config;
    size_t n = opt->n;
    float lr = (float)c->lr, eps = (float)c->eps;
    switch (c->kind) {
    case OPT_SGD:
        if (opt->n_slabs) { /* torch convention: m <- momentum m + g; theta -= lr m */
            float *m = opt->state[0], beta = (float)c->momentum;
            for (size_t i = 0; i < n; i++) {
                m[i] = beta * m[i] + g[i];
                theta[i] -= lr * m[i];
            }
        } else {
            for (size_t i = 0; i < n; i++) theta[i] -= lr * g[i];
        }
        break;
    case OPT_SDAGD:
        sdagd_step(opt, theta, g, stats);
        break;
    case OPT_SDLM: { /* LeCun et al. 1998: hbar starts at the first estimate, not at zero */
        float *hbar = opt->state[0], gamma = (float)c->gamma, mu = (float)c->mu;
        const float *h = opt->hess_scratch;
        for (size_t i = 0; i < n; i++) {
            hbar[i] = opt->step == 0 ? h[i] : (1.0f - gamma) * hbar[i] + gamma * h[i];
            theta[i] -= lr * g[i] / (mu + hbar[i]);
        }
        break;
    }
    case OPT_ADAGRAD: { /* torch.optim.Adagrad, lr_decay 0, initial accumulator 0 */
        float *sum = opt->state[0];
        for (size_t i = 0; i < n; i++) {
            sum[i] += g[i] * g[i];
            theta[i] -= lr * g[i] / (sqrtf(sum[i]) + eps);
        }
        break;
    }
    case OPT_ADADELTA: { /* torch.optim.Adadelta (Zeiler 2012) */
        float *v = opt->state[0], *u = opt->state[1], rho = (float)c->rho;
        for (size_t i = 0; i < n; i++) {
            v[i] = rho * v[i] + (1.0f - rho) * g[i] * g[i];
            float delta = sqrtf(u[i] + eps) / sqrtf(v[i] + eps) * g[i];
            u[i] = rho * u[i] + (1.0f - rho) * delta * delta;
            theta[i] -= lr * delta;
        }
        break;
    }
    case OPT_ADAM: { /* torch.optim.Adam (Kingma & Ba 2014), bias-corrected */
        float *m = opt->state[0], *v = opt->state[1];
        float b1 = (float)c->beta1, b2 = (float)c->beta2;
        double t = (double)(opt->step + 1);
        float step_size = (float)(c->lr / (1.0 - pow(c->beta1, t)));
        float inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow(c->beta2, t)));
        for (size_t i = 0; i < n; i++) {
            m[i] = b1 * m[i] + (1.0f - b1) * g[i];
            v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
            theta[i] -= step_size * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
        }
        break;
    }
    }
    opt->step++;
    if (stats) stats->steps++;
    return SDAGD_OK;
}
