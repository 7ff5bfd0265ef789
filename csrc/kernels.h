/*
 * Per-element formulas of docs/algorithms.md that both backends evaluate: activations and their
 * derivatives (sections 1, 3, 4), the output layer's delta and curvature, and the sdagd_optimizer
 * updates (section 5). Written once here; compiled as C11 by the CPU backend and as CUDA by
 * the GPU backend (SDAGD_HD adds __host__ __device__ under nvcc), so the CPU tests exercise
 * exactly what the kernels compute.
 *
 * Each function is pure: scalars in, scalars out (or through pointers to one element).
 */
#ifndef SDAGD_KERNELS_H
#define SDAGD_KERNELS_H

#include <math.h>
#include <stdint.h>

#include "backend.h"
#include "sdagd.h"

#ifdef __CUDACC__
#define SDAGD_HD static __host__ __device__ __forceinline__
#else
#define SDAGD_HD static inline
#endif

/* ---- exp ---------------------------------------------------------------------------------- */

SDAGD_HD uint32_t float_bits(float f) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(f);
#else
    union { float f; uint32_t u; } v;
    v.f = f;
    return v.u;
#endif
}

SDAGD_HD float bits_float(uint32_t u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    union { uint32_t u; float f; } v;
    v.u = u;
    return v.f;
#endif
}

/* e^x in float, within 1.5 ulp (csrc/tests/test_core.c checks it over the range), in
 * branch-free arithmetic that vectorises (the library's expf is a call per element), the same
 * formula on the CPU and the GPU (where nvcc may fuse its multiply-adds, which changes the
 * last bit at most).
 * e^x = 2^n e^r with n = round(x / ln 2) and r = x - n ln 2 in [-ln2/2, ln2/2] (ln 2 split in
 * two parts, Cody & Waite); e^r by its degree-6 minimax polynomial (Cephes' expf). x is
 * clamped so that 2^n stays a normal float: e^x saturates at 2^127 above and at 2^-126 below
 * (where expf would give inf or denormals); NaN stays NaN (the comparisons fail for it). */
SDAGD_HD float exp_f(float x) {
    x = x > 88.0f ? 88.0f : x;
    x = x < -87.0f ? -87.0f : x;
    /* Adding 1.5 * 2^23 rounds x / ln 2 to an integer held in the low mantissa bits. */
    float t = x * 1.44269504088896341f + 12582912.0f;
    float n = t - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    uint32_t scale = (float_bits(t) - float_bits(12582912.0f) + 127u) << 23; /* 2^n */
    return p * bits_float(scale);
}

/* ---- activations (section 1) ----------------------------------------------------------- */

SDAGD_HD float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }
SDAGD_HD float relu_f(float x) { return x > 0.0f ? x : 0.0f; }
SDAGD_HD float leaky_relu_f(float x, float slope) { return x > 0.0f ? x : slope * x; }

/* h = f(a) for every activation but softmax (row-wise, see softmax_row below). */
SDAGD_HD float activation_value(int act, float slope, float a) {
    switch (act) {
    case SDAGD_ACT_SIGMOID: return sigmoid_f(a);
    case SDAGD_ACT_RELU: return relu_f(a);
    case SDAGD_ACT_TANH: return tanhf(a);
    case SDAGD_ACT_LEAKY_RELU: return leaky_relu_f(a, slope);
    default: return a; /* SDAGD_ACT_LINEAR */
    }
}

/* f'(a) through the output h = f(a), which is all the backward sweep keeps: sigmoid h(1-h),
 * tanh 1-h^2, relu [h>0] (relu'(0) = 0 by convention), leaky_relu h>0 ? 1 : s (for s >= 0,
 * h > 0 exactly when a > 0), linear 1. */
SDAGD_HD float activation_slope(int act, float slope, float h) {
    switch (act) {
    case SDAGD_ACT_SIGMOID: return h * (1.0f - h);
    case SDAGD_ACT_TANH: return 1.0f - h * h;
    case SDAGD_ACT_RELU: return h > 0.0f ? 1.0f : 0.0f;
    case SDAGD_ACT_LEAKY_RELU: return h > 0.0f ? 1.0f : slope;
    default: return 1.0f;
    }
}

/* Saturated unit for the diagnostics: f'(a) below 1 % of its maximum (sigmoid max 1/4, tanh
 * max 1); never for the rectifiers, whose derivative does not shrink. */
SDAGD_HD int activation_saturated(int act, float h) {
    if (act == SDAGD_ACT_SIGMOID) return h * (1.0f - h) < 0.0025f;
    if (act == SDAGD_ACT_TANH) return 1.0f - h * h < 0.01f;
    return 0;
}

/* The diagnostic an activation gets (tables.h: SDAGD_ACTIVATIONS). */
#define SDAGD_DIAGNOSTIC_CASE(code, name, hidden, output, diagnostic) \
    case code: return diagnostic;
SDAGD_HD int activation_diagnostic(int act) {
    switch (act) { SDAGD_ACTIVATIONS(SDAGD_DIAGNOSTIC_CASE) }
    return SDAGD_DIAG_NONE;
}
SDAGD_HD int activation_saturates(int act) { return activation_diagnostic(act) == SDAGD_DIAG_SATURATION; }
SDAGD_HD int activation_rectifies(int act) { return activation_diagnostic(act) == SDAGD_DIAG_INACTIVE; }

/* ---- output layer (sections 2-4) --------------------------------------------------------- */

/* Softmax of one row in place, with the max shift for stability; the sum in double. */
SDAGD_HD void softmax_row(float *row, int n) {
    float max = row[0];
    for (int c = 1; c < n; c++) max = row[c] > max ? row[c] : max;
    double sum = 0.0;
    for (int c = 0; c < n; c++) {
        row[c] = exp_f(row[c] - max);
        sum += row[c];
    }
    float inv = (float)(1.0 / sum);
    for (int c = 0; c < n; c++) row[c] *= inv;
}

/* Loss of one row (section 2) and whether it is misclassified (argmax, ties to the first).
 * y: the output h_{L+1}; a: its pre-activation, used by the cross-entropy as
 * -log softmax(a)_label = logsumexp(a) - a_label. */
SDAGD_HD double row_loss(int loss, const float *y, const float *a, int n, int label, int *wrong) {
    int best = 0;
    for (int j = 1; j < n; j++)
        if (y[j] > y[best]) best = j;
    *wrong = best != label;
    if (loss == SDAGD_LOSS_MSE) {
        double e = 0.0;
        for (int j = 0; j < n; j++) {
            double d = (double)y[j] - (j == label);
            e += d * d;
        }
        return 0.5 * e;
    }
    double max = a[0], sum = 0.0;
    for (int j = 1; j < n; j++) max = a[j] > max ? a[j] : max;
    for (int j = 0; j < n; j++) sum += exp((double)a[j] - max);
    return max + log(sum) - a[label];
}

/* delta_{L+1} and s_{L+1} of one output unit. MSE: delta = (y - d) f'(a), s = f'(a)^2 (the
 * (y - d) f'' term is truncated); softmax + CE: delta = p - d, s = p (1 - p). */
SDAGD_HD void output_delta_value(int output, int loss, float y, float target, float *delta, float *s) {
    if (loss == SDAGD_LOSS_CE) {
        *delta = y - target;
        *s = y * (1.0f - y);
    } else {
        float d = activation_slope(output, 0.0f, y);
        *delta = (y - target) * d;
        *s = d * d;
    }
}

/* ---- optimizer updates (section 5), one parameter each ---------------------------------- */

/* SGD (paper eq. 6). */
SDAGD_HD float sgd_update(float theta, float g, float lr) { return theta - lr * g; }

/* SGD with momentum, torch's convention: m <- beta m + g; theta <- theta - lr m. */
SDAGD_HD float sgd_momentum_update(float theta, float *m, float g, float lr, float beta) {
    *m = beta * *m + g;
    return theta - lr * *m;
}

/* SDAGD (Tan & Lim eq. 7): theta <- theta - scale * g / (mu + h + eps); scale < 1 only when
 * a max_step cap shortens the step. */
SDAGD_HD float sdagd_step(float g, float mu, float h, float eps) { return g / (mu + h + eps); }
SDAGD_HD float sdagd_update(float theta, float g, float mu, float h, float eps, float scale) {
    return theta - scale * sdagd_step(g, mu, h, eps);
}

/* Running average of the curvature, SDLM's (LeCun 1998) and SDAGD's option: hbar starts at
 * the first estimate, not at zero, so early steps are not inflated. */
SDAGD_HD float running_average(float hbar, float h, float gamma, int first) {
    return first ? h : (1.0f - gamma) * hbar + gamma * h;
}

/* SDLM: theta <- theta - lr g / (mu + hbar). */
SDAGD_HD float sdlm_update(float theta, float g, float hbar, float lr, float mu) {
    return theta - lr * g / (mu + hbar);
}

/* AdaGrad as torch.optim.Adagrad (no lr decay, zero initial sum). */
SDAGD_HD float adagrad_update(float theta, float *sum, float g, float lr, float eps) {
    *sum += g * g;
    return theta - lr * g / (sqrtf(*sum) + eps);
}

/* AdaDelta (Zeiler 2012) as torch.optim.Adadelta. */
SDAGD_HD float adadelta_update(float theta, float *v, float *u, float g, float lr, float rho, float eps) {
    *v = rho * *v + (1.0f - rho) * g * g;
    float delta = sqrtf(*u + eps) / sqrtf(*v + eps) * g;
    *u = rho * *u + (1.0f - rho) * delta * delta;
    return theta - lr * delta;
}

/* Adam (Kingma & Ba 2014) as torch.optim.Adam; step_size = lr / (1 - b1^t) and
 * inv_sqrt_bc2 = 1 / sqrt(1 - b2^t) are computed once per step. */
SDAGD_HD float adam_update(float theta, float *m, float *v, float g, float b1, float b2, float step_size,
                           float inv_sqrt_bc2, float eps) {
    *m = b1 * *m + (1.0f - b1) * g;
    *v = b2 * *v + (1.0f - b2) * g * g;
    return theta - step_size * *m / (sqrtf(*v) * inv_sqrt_bc2 + eps);
}

/* RMSprop (Tieleman & Hinton 2012) as torch.optim.RMSprop (not centered, no momentum), with
 * rho for torch's alpha: v <- rho v + (1-rho) g^2; theta <- theta - lr g / (sqrt(v) + eps). */
SDAGD_HD float rmsprop_update(float theta, float *v, float g, float lr, float rho, float eps) {
    *v = rho * *v + (1.0f - rho) * g * g;
    return theta - lr * g / (sqrtf(*v) + eps);
}

/* ---- one network's step bookkeeping, run once per step per network -------------------- */

/* Does this optimizer compute h at step `step`? tables.h says when: never, every step, or
 * every hessian_every steps. */
SDAGD_HD int optimizer_needs_hessian(const optim_hyper *hp, int64_t step) {
    if (hp->curvature == SDAGD_CURVATURE_ALWAYS) return 1;
    return hp->curvature == SDAGD_CURVATURE_EVERY && step % hp->hessian_every == 0;
}

/* What prepare_network reads and writes, all in backend memory (so a GPU thread can run it). */
typedef struct {
    int L, window;
    const size_t *offsets;   /* (2L + 1) w_off[l], then b_off[l] at L + l */
    uint8_t *active;
    const double *loss;      /* [K][window] */
    const int64_t *slot;
    const optim_hyper *hyper;
    const double *segments;  /* [K][2L] */
    const int64_t *step;
    step_coef *coef;
    double *grad_sq;         /* [K][L] */
    float *mu;               /* [K][L] */
    net_stats *stats;
} prepare_job;

/* After the backward sweep, for network k: a NaN or inf batch loss stops the network;
 * otherwise the step's coefficients, the diagnostics' mean square of each dW_l, and SDAGD's
 * mu_k = ||g|| / R of every norm group (docs/algorithms.md section 5.2) with its statistics. mu_k is
 * computed in double and used in float. */
SDAGD_HD void prepare_network(prepare_job j, int k) {
    int L = j.L;
    if (!isfinite(j.loss[(size_t)k * j.window + (size_t)*j.slot])) j.active[k] = 0;
    if (!j.active[k]) return;
    const optim_hyper *hp = &j.hyper[k];
    const double *seg = j.segments + (size_t)k * 2 * L;
    int64_t step = j.step[k];
    step_coef *c = &j.coef[k];
    c->fresh_hessian = optimizer_needs_hessian(hp, step);
    c->first = step == 0;
    if (hp->kind == SDAGD_OPT_ADAM) { /* torch's bias corrections, in double */
        double t = (double)(step + 1);
        c->step_size = (float)(hp->lr / (1.0 - pow((double)hp->beta1, t)));
        c->inv_sqrt_bc2 = (float)(1.0 / sqrt(1.0 - pow((double)hp->beta2, t)));
    }
    for (int l = 0; l < L; l++)
        j.grad_sq[(size_t)k * L + l] += seg[2 * l] / (double)(j.offsets[L + l] - j.offsets[l]);
    if (hp->kind != SDAGD_OPT_SDAGD) return;
    net_stats *st = &j.stats[k];
    double total = 0.0;
    for (int i = 0; i < 2 * L; i++) total += seg[i];
    int groups = hp->norm == SDAGD_NORM_GLOBAL ? 1 : L;
    for (int grp = 0; grp < groups; grp++) {
        double mu = sqrt(hp->norm == SDAGD_NORM_GLOBAL ? total : seg[2 * grp] + seg[2 * grp + 1]) / hp->radius;
        if (hp->norm == SDAGD_NORM_GLOBAL)
            for (int l = 0; l < L; l++) j.mu[(size_t)k * L + l] = (float)mu;
        else
            j.mu[(size_t)k * L + grp] = (float)mu;
        st->mu_sum += mu;
        if (st->mu_count == 0 || mu < st->mu_min) st->mu_min = mu;
        if (st->mu_count == 0 || mu > st->mu_max) st->mu_max = mu;
        st->mu_count++;
    }
}

/* The job of a prepare call (host code: it reads the host-side group view). */
static inline prepare_job prepare_job_of(const prepare_args *a) {
    prepare_job j = {a->g->n_layers, a->window, a->g->offsets, a->g->active, a->loss, a->slot, a->hyper,
                     a->segments, a->step, a->coef, a->grad_sq, a->mu, a->stats};
    return j;
}

/* The curvature an SDAGD update uses, with its options: this step's h (scaled by
 * hessian_scale), or the h kept from the last step that computed one (hessian_every > 1), or
 * the running average of the computed ones (average). *kept, the optimizer's state, always
 * ends holding what is in use. */
SDAGD_HD float sdagd_curvature(const optim_hyper *hp, const step_coef *c, float fresh, float *kept) {
    if (!c->fresh_hessian) return *kept;
    float v = fresh * hp->hessian_scale;
    *kept = hp->average ? running_average(*kept, v, hp->gamma, c->first) : v;
    return *kept;
}

/* The same without writing the state: for the max_step cap's length, before the update. */
SDAGD_HD float sdagd_curvature_peek(const optim_hyper *hp, const step_coef *c, float fresh, float kept) {
    return sdagd_curvature(hp, c, fresh, &kept);
}

/* The max_step cap of one norm group: the factor its step is multiplied by. */
SDAGD_HD float max_step_scale(const optim_hyper *hp, double step_sq) {
    double len = sqrt(step_sq);
    return hp->max_step > 0.0 && len > hp->max_step ? (float)(hp->max_step / len) : 1.0f;
}

/* ---- the one dispatch of the per-element update ---------------------------------------- */

/* Parameter i's update under optimizer `kind` (tables.h), for both backends: theta, g, the
 * fresh curvature and the state slabs s0, s1 are slabs of one network (fresh, s0, s1 are read
 * only by the optimizers that have them: they may be NULL otherwise). mu: the norm group's
 * mu_k and scale its max_step factor (SDAGD). Returns 1 for an SDAGD update in phase 1
 * (mu_k > h), else 0. Called with a constant `kind` inside each backend's loop
 * (SDAGD_FOR_EACH_OPTIMIZER), so the switch is resolved at compile time and the loops
 * vectorise. A new optimizer is one case here (and its row in tables.h). */
SDAGD_HD int optimizer_update(int kind, const optim_hyper *hp, const step_coef *c, size_t i, float *theta,
                              const float *g, const float *fresh, float *s0, float *s1, float mu, float scale) {
    switch (kind) {
    case SDAGD_OPT_SGD:
        theta[i] = hp->momentum > 0.0f ? sgd_momentum_update(theta[i], &s0[i], g[i], hp->lr, hp->momentum)
                                      : sgd_update(theta[i], g[i], hp->lr);
        return 0;
    case SDAGD_OPT_SDAGD: {
        float hv = sdagd_curvature(hp, c, c->fresh_hessian ? fresh[i] : 0.0f, &s0[i]);
        theta[i] = sdagd_update(theta[i], g[i], mu, hv, hp->eps, scale);
        return mu > hv;
    }
    case SDAGD_OPT_SDLM:
        s0[i] = running_average(s0[i], fresh[i], hp->gamma, c->first);
        theta[i] = sdlm_update(theta[i], g[i], s0[i], hp->lr, hp->mu);
        return 0;
    case SDAGD_OPT_ADAGRAD: theta[i] = adagrad_update(theta[i], &s0[i], g[i], hp->lr, hp->eps); return 0;
    case SDAGD_OPT_ADADELTA: theta[i] = adadelta_update(theta[i], &s0[i], &s1[i], g[i], hp->lr, hp->rho, hp->eps); return 0;
    case SDAGD_OPT_ADAM:
        theta[i] = adam_update(theta[i], &s0[i], &s1[i], g[i], hp->beta1, hp->beta2, c->step_size, c->inv_sqrt_bc2, hp->eps);
        return 0;
    case SDAGD_OPT_RMSPROP: theta[i] = rmsprop_update(theta[i], &s0[i], g[i], hp->lr, hp->rho, hp->eps); return 0;
    default: return 0;
    }
}

#endif /* SDAGD_KERNELS_H */
