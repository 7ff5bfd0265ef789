/*
 * Plain-C checks of the core, built with AddressSanitizer and UBSan by tests/test_c_core.py:
 * the interface used without Python, every error path returning a status and a message,
 * no leak or out-of-bounds access on create / train / free, and the gradient against
 * central differences of the core's own loss (in double, around float32 parameters).
 *
 * Exit status 0 when every check passes; each failure prints one line (this is a test
 * program, not the library: the library never prints).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels.h"
#include "../sdagd.h"

static int failures = 0;

#define CHECK(cond, ...)                                      \
    do {                                                      \
        if (!(cond)) {                                        \
            failures++;                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                     \
            fprintf(stderr, "\n");                            \
        }                                                     \
    } while (0)

/* A configuration of `kind` at its table defaults, then (slot, value) pairs up to slot -1. */
static sdagd_optim_config cfg(int kind, ...) {
    sdagd_optim_config c;
    sdagd_optim_config_defaults(&c, kind);
    va_list ap;
    va_start(ap, kind);
    for (int slot = va_arg(ap, int); slot >= 0; slot = va_arg(ap, int)) c.hyper[slot] = va_arg(ap, double);
    va_end(ap);
    return c;
}

static void test_bad_configs(void) {
    int sizes[] = {4, 3, 2};
    sdagd_mlp_config c = {.n_layers = 2, .sizes = sizes, .hidden = SDAGD_ACT_SIGMOID, .output = SDAGD_ACT_SIGMOID,
                    .loss = SDAGD_LOSS_MSE, .leaky_slope = 0.01f, .device = SDAGD_DEVICE_CPU, .batch_capacity = 8};
    sdagd_mlp *net = (sdagd_mlp *)1;
    sdagd_mlp_config bad = c;
    bad.n_layers = 0;
    CHECK(sdagd_mlp_create(&net, &bad) == SDAGD_ERR_ARG && net == NULL, "zero layers accepted");
    CHECK(strlen(sdagd_last_error()) > 0, "no message for zero layers");
    int zero[] = {4, 0, 2};
    bad = c;
    bad.sizes = zero;
    CHECK(sdagd_mlp_create(&net, &bad) == SDAGD_ERR_ARG, "zero width accepted");
    bad = c;
    bad.output = SDAGD_ACT_SOFTMAX;
    CHECK(sdagd_mlp_create(&net, &bad) == SDAGD_ERR_ARG, "softmax with MSE accepted");
    bad = c;
    bad.hidden = 42;
    CHECK(sdagd_mlp_create(&net, &bad) == SDAGD_ERR_ARG, "unknown activation accepted");
    bad = c;
    bad.device = SDAGD_DEVICE_CUDA;
    CHECK(sdagd_mlp_create(&net, &bad) == SDAGD_ERR_DEVICE, "CUDA accepted in a CPU-only build");
    CHECK(sdagd_mlp_create(&net, NULL) == SDAGD_ERR_ARG, "NULL config accepted");
    sdagd_mlp_free(NULL);
    sdagd_optim_free(NULL);
}

/* Loss in double of the network at its current parameters. */
static double loss_at(sdagd_mlp *net, const float *X, const int32_t *y, int B) {
    double loss;
    int64_t errors;
    sdagd_mlp_loss_grad(net, X, y, B, &loss, &errors, NULL, NULL);
    return loss;
}

/* One epoch of one network through a trainer of one, as MLP.fit trains it. */
static sdagd_status train_alone(sdagd_mlp *net, sdagd_optimizer *opt, const sdagd_dataset *ds, int batch_size, uint64_t seed,
                                int64_t epoch, sdagd_train_stats *stats, sdagd_poll_fn poll, void *poll_ctx) {
    sdagd_trainer *t = NULL;
    sdagd_status st = sdagd_trainer_create(&t, &net, &opt, 1);
    if (st == SDAGD_OK) st = sdagd_trainer_epoch(t, ds, batch_size, &seed, &epoch, stats, poll, poll_ctx);
    sdagd_trainer_free(t);
    return st;
}

static void test_gradient_and_training(int hidden, int output, int loss_kind) {
    int sizes[] = {5, 4, 4, 3};
    sdagd_mlp_config c = {.n_layers = 3, .sizes = sizes, .hidden = hidden, .output = output, .loss = loss_kind,
                    .leaky_slope = 0.1f, .device = SDAGD_DEVICE_CPU, .batch_capacity = 4};
    sdagd_mlp *net = NULL;
    CHECK(sdagd_mlp_create(&net, &c) == SDAGD_OK, "create: %s", sdagd_last_error());
    if (!net) return;
    CHECK(sdagd_mlp_init_params(net, SDAGD_INIT_XAVIER_UNIFORM, 7) == SDAGD_OK, "init");
    enum { B = 9 }; /* larger than the capacity: the buffers must grow */
    float X[B * 5];
    int32_t y[B];
    for (int i = 0; i < B * 5; i++) X[i] = (float)sin(0.7 * i + 0.3);
    for (int i = 0; i < B; i++) y[i] = i % 3;
    size_t P = sdagd_mlp_num_params(net);
    float *params = malloc(P * sizeof(float)), *grad = malloc(P * sizeof(float)), *hess = malloc(P * sizeof(float));
    sdagd_mlp_get_params(net, params);
    double loss;
    int64_t errors;
    CHECK(sdagd_mlp_loss_grad(net, X, y, B, &loss, &errors, grad, hess) == SDAGD_OK, "loss_grad: %s", sdagd_last_error());
    /* Central differences in float32 parameters: h = 1e-2 keeps rounding (~1e-7 / 1e-2) and
     * truncation (~h^2) errors near 1e-4. Only for the smooth activations: a step of 1e-2
     * crosses relu kinks here (pre-activations down to ~1e-3); tests/test_network.py checks
     * every activation against float64 finite differences of the NumPy reference instead. */
    double worst = 0.0;
    int smooth = hidden == SDAGD_ACT_SIGMOID || hidden == SDAGD_ACT_TANH;
    for (size_t i = 0; smooth && i < P; i += 3) {
        float saved = params[i];
        params[i] = saved + 1e-2f;
        sdagd_mlp_set_params(net, params);
        double up = loss_at(net, X, y, B);
        params[i] = saved - 1e-2f;
        sdagd_mlp_set_params(net, params);
        double down = loss_at(net, X, y, B);
        params[i] = saved;
        double fd = (up - down) / (2e-2);
        double err = fabs(fd - grad[i]) / (fabs(fd) + 1e-3);
        if (err > worst) worst = err;
    }
    sdagd_mlp_set_params(net, params);
    CHECK(worst < 2e-2, "gradient vs finite differences (hidden %d, output %d): worst relative error %g", hidden,
          output, worst);
    for (size_t i = 0; i < P; i++) CHECK(hess[i] >= 0.0f, "negative Hessian diagonal at %zu", i);

    int32_t bad_labels[B];
    memcpy(bad_labels, y, sizeof y);
    bad_labels[4] = 3;
    CHECK(sdagd_mlp_loss_grad(net, X, bad_labels, B, &loss, &errors, grad, NULL) == SDAGD_ERR_ARG, "label 3 accepted");

    for (int kind = 0; kind < SDAGD_OPT_COUNT; kind++) {
        sdagd_optim_config oc = cfg(kind, SDAGD_HP_LR, 0.05, SDAGD_HP_MOMENTUM, 0.5, SDAGD_HP_RADIUS, 0.1, SDAGD_HP_EPS, 1e-6, SDAGD_HP_HESSIAN_EVERY, 2.0,
                              SDAGD_HP_MU, 0.1, SDAGD_HP_GAMMA, 0.1, SDAGD_HP_BETA1, 0.9, SDAGD_HP_BETA2, 0.999, SDAGD_HP_RHO, 0.9, -1);
        sdagd_optimizer *opt = NULL;
        CHECK(sdagd_optim_create(&opt, &oc, net) == SDAGD_OK, "optimizer %d: %s", kind, sdagd_last_error());
        if (!opt) continue;
        sdagd_train_stats stats = {0};
        sdagd_dataset *ds = NULL;
        CHECK(sdagd_dataset_create(&ds, net, X, y, B) == SDAGD_OK, "dataset: %s", sdagd_last_error());
        sdagd_status st = train_alone(net, opt, ds, 4, 1, 0, &stats, NULL, NULL);
        CHECK(st == SDAGD_OK, "epoch with optimizer %d: %s", kind, sdagd_last_error());
        sdagd_dataset_free(ds);
        CHECK(stats.steps == 3 && stats.rows == B, "optimizer %d: %lld steps, %lld rows", kind,
              (long long)stats.steps, (long long)stats.rows);
        sdagd_optim_free(opt);
    }
    sdagd_optim_config bad = cfg(SDAGD_OPT_SDAGD, SDAGD_HP_RADIUS, -1.0, -1);
    sdagd_optimizer *opt = (sdagd_optimizer *)1;
    CHECK(sdagd_optim_create(&opt, &bad, net) == SDAGD_ERR_ARG && opt == NULL, "negative radius accepted");
    free(params);
    free(grad);
    free(hess);
    sdagd_mlp_free(net);
}

static int stop_now(void *ctx) { return ++*(int *)ctx >= 2; }

static void test_interrupt_and_divergence(void) {
    int sizes[] = {3, 8, 2};
    sdagd_mlp_config c = {.n_layers = 2, .sizes = sizes, .hidden = SDAGD_ACT_RELU, .output = SDAGD_ACT_LINEAR, .loss = SDAGD_LOSS_MSE,
                    .device = SDAGD_DEVICE_CPU, .batch_capacity = 2};
    sdagd_mlp *net = NULL;
    CHECK(sdagd_mlp_create(&net, &c) == SDAGD_OK, "create");
    if (!net) return;
    sdagd_mlp_init_params(net, SDAGD_INIT_HE_NORMAL, 3);
    float X[10 * 3];
    int32_t y[10];
    for (int i = 0; i < 30; i++) X[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 10; i++) y[i] = i % 2;
    sdagd_optim_config oc = cfg(SDAGD_OPT_SGD, SDAGD_HP_LR, 0.01, -1);
    sdagd_optimizer *opt = NULL;
    sdagd_optim_create(&opt, &oc, net);
    sdagd_train_stats stats = {0};
    int polls = 0;
    sdagd_dataset *ds = NULL;
    CHECK(sdagd_dataset_create(&ds, net, X, y, 10) == SDAGD_OK, "dataset: %s", sdagd_last_error());
    CHECK(train_alone(net, opt, ds, 2, 0, 0, &stats, stop_now, &polls) == SDAGD_ERR_INTERRUPTED,
          "poll did not stop the epoch");
    CHECK(stats.steps == 2, "interrupted after %lld steps, expected 2", (long long)stats.steps);
    sdagd_optim_free(opt);
    oc.hyper[SDAGD_HP_LR] = 1e30; /* certain overflow */
    sdagd_optim_create(&opt, &oc, net);
    sdagd_status st = SDAGD_OK;
    for (int e = 0; e < 5 && st == SDAGD_OK && !stats.diverged; e++) {
        sdagd_train_stats_reset(&stats);
        st = train_alone(net, opt, ds, 2, 0, e, &stats, NULL, NULL);
    }
    CHECK(st == SDAGD_OK && stats.diverged, "divergence not reported (status %d)", st);
    char message[256];
    sdagd_train_divergence_message(message, sizeof message, opt, &stats);
    CHECK(strstr(message, "SGD diverged") != NULL, "divergence message: %s", message);
    sdagd_dataset_free(ds);
    sdagd_optim_free(opt);
    sdagd_mlp_free(net);
}

static void test_shuffle(void) {
    int64_t a[100], b[100], seen[100] = {0};
    sdagd_shuffle_order(a, 100, 5, 0);
    sdagd_shuffle_order(b, 100, 5, 0);
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed, different permutation");
    for (int i = 0; i < 100; i++) seen[a[i]]++;
    for (int i = 0; i < 100; i++) CHECK(seen[i] == 1, "not a permutation at %d", i);
    sdagd_shuffle_order(b, 100, 5, 1);
    CHECK(memcmp(a, b, sizeof a) != 0, "epochs 0 and 1 share a permutation");
}

/* K networks trained together equal the same networks trained one by one, bit for bit, and
 * one that diverges stops alone. */
static void test_trainer_equals_solo(void) {
    enum { K = 3, N = 23, NIN = 6 };
    int sizes[] = {NIN, 7, 5, 4};
    int acts[K] = {SDAGD_ACT_SIGMOID, SDAGD_ACT_TANH, SDAGD_ACT_RELU};
    sdagd_optim_config ocs[K] = {cfg(SDAGD_OPT_SGD, SDAGD_HP_LR, 0.1, SDAGD_HP_MOMENTUM, 0.5, -1), cfg(SDAGD_OPT_SDAGD, SDAGD_HP_RADIUS, 0.2, -1),
                           cfg(SDAGD_OPT_SGD, SDAGD_HP_LR, 1e30, -1)}; /* the third diverges */
    float X[N * NIN];
    int32_t y[N];
    for (int i = 0; i < N * NIN; i++) X[i] = (float)cos(0.37 * i);
    for (int i = 0; i < N; i++) y[i] = (i * 7) % 4;
    sdagd_mlp *nets[2][K] = {{0}};
    sdagd_optimizer *opts[2][K] = {{0}};
    for (int copy = 0; copy < 2; copy++)
        for (int k = 0; k < K; k++) {
            sdagd_mlp_config c = {.n_layers = 3, .sizes = sizes, .hidden = acts[k], .output = SDAGD_ACT_LINEAR,
                            .loss = SDAGD_LOSS_MSE, .leaky_slope = 0.01f, .device = SDAGD_DEVICE_CPU, .batch_capacity = 5};
            CHECK(sdagd_mlp_create(&nets[copy][k], &c) == SDAGD_OK, "create: %s", sdagd_last_error());
            sdagd_mlp_init_params(nets[copy][k], SDAGD_INIT_XAVIER_UNIFORM, 11 + (uint64_t)k);
            CHECK(sdagd_optim_create(&opts[copy][k], &ocs[k], nets[copy][k]) == SDAGD_OK, "optim: %s", sdagd_last_error());
        }
    uint64_t seeds[K] = {1, 2, 3};
    sdagd_train_stats together[K] = {{0}}, alone[K] = {{0}};
    sdagd_dataset *ds = NULL;
    CHECK(sdagd_dataset_create(&ds, nets[0][0], X, y, N) == SDAGD_OK, "dataset");
    sdagd_trainer *t = NULL;
    CHECK(sdagd_trainer_create(&t, nets[0], opts[0], K) == SDAGD_OK, "trainer: %s", sdagd_last_error());
    for (int64_t e = 0; e < 2 && t; e++) {
        int64_t epochs[K] = {e, e, e};
        for (int k = 0; k < K; k++) {
            sdagd_train_stats kept = together[k];
            sdagd_train_stats_reset(&together[k]);
            together[k].diverged = kept.diverged; /* stopped networks stay stopped */
            together[k].diverged_step = kept.diverged_step;
        }
        CHECK(sdagd_trainer_epoch(t, ds, 5, seeds, epochs, together, NULL, NULL) == SDAGD_OK, "trainer_epoch: %s",
              sdagd_last_error());
    }
    sdagd_trainer_free(t);
    for (int k = 0; k < K; k++) {
        sdagd_status st = SDAGD_OK;
        for (int64_t e = 0; e < 2 && st == SDAGD_OK && !alone[k].diverged; e++) {
            sdagd_train_stats_reset(&alone[k]);
            st = train_alone(nets[1][k], opts[1][k], ds, 5, seeds[k], e, &alone[k], NULL, NULL);
        }
        CHECK(st == SDAGD_OK, "network %d alone: status %d: %s", k, st, sdagd_last_error());
        CHECK((alone[k].diverged != 0) == (k == 2), "network %d alone: diverged %d", k, alone[k].diverged);
        CHECK((together[k].diverged != 0) == (k == 2), "network %d together: diverged %d", k, together[k].diverged);
        if (k == 2) {
            CHECK(together[k].diverged_step == alone[k].diverged_step, "diverged at step %lld together, %lld alone",
                  (long long)together[k].diverged_step, (long long)alone[k].diverged_step);
            continue;
        }
        size_t P = sdagd_mlp_num_params(nets[0][k]);
        float *a = malloc(P * sizeof(float)), *b = malloc(P * sizeof(float));
        sdagd_mlp_get_params(nets[0][k], a);
        sdagd_mlp_get_params(nets[1][k], b);
        CHECK(memcmp(a, b, P * sizeof(float)) == 0, "network %d: parameters differ between together and alone", k);
        CHECK(together[k].loss_sum == alone[k].loss_sum && together[k].steps == alone[k].steps,
              "network %d: loss %g/%g, steps %lld/%lld", k, together[k].loss_sum, alone[k].loss_sum,
              (long long)together[k].steps, (long long)alone[k].steps);
        CHECK(sdagd_optim_step_count(opts[0][k]) == sdagd_optim_step_count(opts[1][k]), "network %d: step counts differ", k);
        free(a);
        free(b);
    }
    sdagd_dataset_free(ds);
    for (int copy = 0; copy < 2; copy++)
        for (int k = 0; k < K; k++) {
            sdagd_optim_free(opts[copy][k]);
            sdagd_mlp_free(nets[copy][k]);
        }
}

static void test_sdagd_options(void) {
    int sizes[] = {4, 3, 2};
    sdagd_mlp_config c = {.n_layers = 2, .sizes = sizes, .hidden = SDAGD_ACT_SIGMOID, .output = SDAGD_ACT_SIGMOID, .loss = SDAGD_LOSS_MSE,
                    .device = SDAGD_DEVICE_CPU, .batch_capacity = 4};
    sdagd_mlp *net = NULL;
    CHECK(sdagd_mlp_create(&net, &c) == SDAGD_OK, "create");
    sdagd_optim_config cosine = cfg(SDAGD_OPT_SDAGD, SDAGD_HP_RADIUS, 1.0, -1);
    cosine.schedule = SDAGD_SCHEDULE_COSINE, cosine.schedule_epochs = 4, cosine.step_min = 0.2;
    CHECK(fabs(sdagd_optim_step_at(&cosine, 0) - 1.0) < 1e-12 && fabs(sdagd_optim_step_at(&cosine, 2) - 0.6) < 1e-12 &&
              fabs(sdagd_optim_step_at(&cosine, 4) - 0.2) < 1e-12,
          "cosine schedule: %g %g %g", sdagd_optim_step_at(&cosine, 0), sdagd_optim_step_at(&cosine, 2),
          sdagd_optim_step_at(&cosine, 4));
    sdagd_optim_config step = cfg(SDAGD_OPT_SDAGD, SDAGD_HP_RADIUS, 1.0, -1);
    step.schedule = SDAGD_SCHEDULE_STEP, step.schedule_factor = 0.5, step.schedule_every = 3;
    CHECK(sdagd_optim_step_at(&step, 2) == 1.0 && sdagd_optim_step_at(&step, 3) == 0.5 && sdagd_optim_step_at(&step, 7) == 0.25,
          "step schedule");
    sdagd_optimizer *opt = (sdagd_optimizer *)1;
    sdagd_optim_config bad = cosine;
    bad.step_min = 2.0;
    CHECK(sdagd_optim_create(&opt, &bad, net) == SDAGD_ERR_ARG && opt == NULL, "radius_min above radius accepted");
    bad = step;
    bad.schedule_factor = 1.5;
    CHECK(sdagd_optim_create(&opt, &bad, net) == SDAGD_ERR_ARG, "growing step schedule accepted");
    bad = cosine;
    bad.schedule = SDAGD_SCHEDULE_CONSTANT;
    bad.hyper[SDAGD_HP_AVERAGE] = 1.5;
    CHECK(sdagd_optim_create(&opt, &bad, net) == SDAGD_ERR_ARG, "average with gamma 1.5 accepted");
    CHECK(sdagd_device_check(SDAGD_DEVICE_CUDA) == SDAGD_ERR_DEVICE && strlen(sdagd_last_error()) > 0,
          "CUDA reported usable without a library");
    sdagd_mlp_free(net);
}

/* The shared per-element formulas (kernels.h), which the CUDA kernels evaluate too. */
static void test_shared_formulas(void) {
    double worst = 0.0;
    for (float x = -87.0f; x <= 88.0f; x += 0.0137f) {
        double want = exp((double)x), ulp = nextafterf((float)want, INFINITY) - (float)want;
        double err = fabs(exp_f(x) - want) / ulp;
        if (err > worst) worst = err;
    }
    CHECK(worst <= 1.5, "exp_f: %.2f ulp from exp", worst);
    CHECK(isnan(exp_f(NAN)) && isfinite(exp_f(1000.0f)) && exp_f(-1000.0f) > 0.0f, "exp_f at NaN and the ends");
    CHECK(isnan(sigmoid_f(NAN)) && sigmoid_f(200.0f) == 1.0f && sigmoid_f(-200.0f) < 1e-37f, "sigmoid ends");
    for (float x = -20.0f; x <= 20.0f; x += 0.25f) {
        double want = 1.0 / (1.0 + exp(-(double)x));
        CHECK(fabs(sigmoid_f(x) - want) <= 4e-7 * want, "sigmoid(%g)", (double)x);
    }
    float row[4] = {1.0f, 2.0f, 3.0f, 1000.0f};
    softmax_row(row, 4);
    CHECK(fabs(row[0] + row[1] + row[2] + row[3] - 1.0) < 1e-6 && row[3] > 0.999f, "softmax with a large entry");
    float delta, s;
    output_delta_value(SDAGD_ACT_SIGMOID, SDAGD_LOSS_MSE, 0.75f, 1.0f, &delta, &s);
    CHECK(delta == (0.75f - 1.0f) * 0.1875f && s == 0.1875f * 0.1875f, "MSE output delta and curvature");
    output_delta_value(SDAGD_ACT_SOFTMAX, SDAGD_LOSS_CE, 0.25f, 0.0f, &delta, &s);
    CHECK(delta == 0.25f && s == 0.1875f, "cross-entropy output delta and curvature");
    CHECK(sdagd_update(1.0f, 2.0f, 3.0f, 1.0f, 0.0f, 1.0f) == 0.5f, "SDAGD update 1 - 2/(3 + 1)");
}

/* trainer_step: K networks stepped together on one batch equal each stepped alone by a sdagd_trainer
 * of one, bit for bit (parameters, losses, step counts); a diverging one stops alone; bad
 * batches are refused with a message. */
static void test_trainer_step_equals_solo(void) {
    enum { K = 3, B = 9, NIN = 5 };
    int sizes[] = {NIN, 6, 3};
    int acts[K] = {SDAGD_ACT_TANH, SDAGD_ACT_SIGMOID, SDAGD_ACT_LEAKY_RELU};
    sdagd_optim_config ocs[K] = {cfg(SDAGD_OPT_SDAGD, SDAGD_HP_RADIUS, 0.3, SDAGD_HP_NORM, (double)SDAGD_NORM_GLOBAL, -1), cfg(SDAGD_OPT_ADAM, SDAGD_HP_LR, 0.01, -1),
                           cfg(SDAGD_OPT_SGD, SDAGD_HP_LR, 1e30, -1)}; /* the third diverges */
    float X[B * NIN];
    int32_t y[B];
    for (int i = 0; i < B * NIN; i++) X[i] = (float)sin(0.53 * i);
    for (int i = 0; i < B; i++) y[i] = i % 3;
    sdagd_mlp *nets[2][K] = {{0}};
    sdagd_optimizer *opts[2][K] = {{0}};
    for (int copy = 0; copy < 2; copy++)
        for (int k = 0; k < K; k++) {
            sdagd_mlp_config c = {.n_layers = 2, .sizes = sizes, .hidden = acts[k], .output = SDAGD_ACT_LINEAR,
                            .loss = SDAGD_LOSS_MSE, .leaky_slope = 0.01f, .device = SDAGD_DEVICE_CPU, .batch_capacity = 4};
            CHECK(sdagd_mlp_create(&nets[copy][k], &c) == SDAGD_OK, "create: %s", sdagd_last_error());
            sdagd_mlp_init_params(nets[copy][k], SDAGD_INIT_XAVIER_UNIFORM, 5 + (uint64_t)k);
            CHECK(sdagd_optim_create(&opts[copy][k], &ocs[k], nets[copy][k]) == SDAGD_OK, "optim: %s", sdagd_last_error());
        }
    enum { STEPS = 6 };
    int64_t epochs[K] = {0, 0, 0};
    sdagd_train_stats together[K] = {{0}}, alone[K] = {{0}};
    double together_loss[K] = {0}, alone_loss[K] = {0};
    sdagd_trainer *t = NULL;
    CHECK(sdagd_trainer_create(&t, nets[0], opts[0], K) == SDAGD_OK, "trainer: %s", sdagd_last_error());
    int32_t bad[B];
    memcpy(bad, y, sizeof y);
    bad[2] = 7;
    if (t) {
        CHECK(sdagd_trainer_step(t, X, bad, B, epochs, together) == SDAGD_ERR_ARG && strstr(sdagd_last_error(), "7"),
              "label 7 accepted: %s", sdagd_last_error());
        CHECK(sdagd_trainer_step(t, X, y, 0, epochs, together) == SDAGD_ERR_ARG, "an empty batch accepted");
    }
    for (int i = 0; i < STEPS && t; i++) {
        for (int k = 0; k < K; k++) {
            sdagd_train_stats kept = together[k];
            sdagd_train_stats_reset(&together[k]);
            together[k].diverged = kept.diverged; /* stopped networks stay stopped */
            together[k].diverged_step = kept.diverged_step;
        }
        CHECK(sdagd_trainer_step(t, X, y, B, epochs, together) == SDAGD_OK, "trainer_step: %s", sdagd_last_error());
        for (int k = 0; k < K; k++) together_loss[k] += together[k].loss_sum;
    }
    sdagd_trainer_free(t);
    for (int k = 0; k < K; k++) {
        sdagd_trainer *one = NULL;
        CHECK(sdagd_trainer_create(&one, &nets[1][k], &opts[1][k], 1) == SDAGD_OK, "trainer of one: %s",
              sdagd_last_error());
        for (int i = 0; i < STEPS && one && !alone[k].diverged; i++) {
            sdagd_train_stats_reset(&alone[k]);
            CHECK(sdagd_trainer_step(one, X, y, B, &epochs[k], &alone[k]) == SDAGD_OK, "step alone: %s",
                  sdagd_last_error());
            alone_loss[k] += alone[k].loss_sum;
        }
        sdagd_trainer_free(one);
        CHECK((together[k].diverged != 0) == (k == 2) && (alone[k].diverged != 0) == (k == 2),
              "network %d: diverged %d together, %d alone", k, together[k].diverged, alone[k].diverged);
        CHECK(together[k].diverged_step == alone[k].diverged_step, "network %d: diverged at step %lld/%lld", k,
              (long long)together[k].diverged_step, (long long)alone[k].diverged_step);
        size_t P = sdagd_mlp_num_params(nets[0][k]);
        float *a = malloc(P * sizeof(float)), *b = malloc(P * sizeof(float));
        sdagd_mlp_get_params(nets[0][k], a);
        sdagd_mlp_get_params(nets[1][k], b);
        CHECK(memcmp(a, b, P * sizeof(float)) == 0, "network %d: parameters differ between together and alone", k);
        CHECK(together_loss[k] == alone_loss[k], "network %d: loss %g together, %g alone", k, together_loss[k],
              alone_loss[k]);
        CHECK(sdagd_optim_step_count(opts[0][k]) == sdagd_optim_step_count(opts[1][k]), "network %d: step counts %lld/%lld",
              k, (long long)sdagd_optim_step_count(opts[0][k]), (long long)sdagd_optim_step_count(opts[1][k]));
        free(a);
        free(b);
    }
    for (int copy = 0; copy < 2; copy++)
        for (int k = 0; k < K; k++) {
            sdagd_optim_free(opts[copy][k]);
            sdagd_mlp_free(nets[copy][k]);
        }
}

/* Validation from the table: each row at its defaults (with a value for those that have none)
 * passes, and each hyperparameter just outside its range is refused with its name. */
static void test_table_validation(void) {
    int n_rows, n_hypers;
    const sdagd_optimizer_desc *rows = sdagd_optim_table(&n_rows);
    const sdagd_hyper_desc *hypers = sdagd_optim_hyper_table(&n_hypers);
    CHECK(n_rows == SDAGD_OPT_COUNT, "%d rows for %d codes", n_rows, (int)SDAGD_OPT_COUNT);
    for (int r = 0; r < n_rows; r++) {
        CHECK((int)rows[r].code == r, "row %d has code %d", r, (int)rows[r].code);
        sdagd_optim_config c = cfg(r, SDAGD_HP_LR, 0.1, SDAGD_HP_RADIUS, 0.3, SDAGD_HP_MU, 0.1, -1);
        CHECK(sdagd_optim_config_check(&c) == SDAGD_OK, "%s at its defaults: %s", rows[r].name, sdagd_last_error());
        for (int i = 0; i < n_hypers; i++) {
            const sdagd_hyper_desc *h = &hypers[i];
            if ((int)h->optimizer != r) continue;
            sdagd_optim_config bad = c;
            bad.hyper[h->slot] = h->low_closed ? h->low - 1.0 : h->low;      /* just below */
            if (h->type == SDAGD_HYPER_OPTIONAL) bad.hyper[h->slot] = -1.0;         /* 0 means off */
            CHECK(sdagd_optim_config_check(&bad) == SDAGD_ERR_ARG && strstr(sdagd_last_error(), h->name),
                  "%s: %s = %g accepted (%s)", rows[r].name, h->name, bad.hyper[h->slot], sdagd_last_error());
            bad.hyper[h->slot] = NAN;
            CHECK(sdagd_optim_config_check(&bad) == SDAGD_ERR_ARG, "%s: %s = NaN accepted", rows[r].name, h->name);
        }
        /* a cosine schedule of the step size: S at e = 0, S_min from e = E on */
        c.schedule = SDAGD_SCHEDULE_COSINE, c.schedule_epochs = 2, c.step_min = 0.25 * c.hyper[rows[r].step_slot];
        double s = c.hyper[rows[r].step_slot];
        CHECK(sdagd_optim_config_check(&c) == SDAGD_OK && sdagd_optim_step_at(&c, 0) == s && sdagd_optim_step_at(&c, 5) == c.step_min,
              "%s: cosine schedule of its step size", rows[r].name);
    }
}

int main(void) {
    test_table_validation();
    test_shared_formulas();
    test_bad_configs();
    test_trainer_equals_solo();
    test_trainer_step_equals_solo();
    test_sdagd_options();
    for (int hidden = SDAGD_ACT_SIGMOID; hidden <= SDAGD_ACT_LEAKY_RELU; hidden++) {
        test_gradient_and_training(hidden, SDAGD_ACT_SIGMOID, SDAGD_LOSS_MSE);
        test_gradient_and_training(hidden, SDAGD_ACT_LINEAR, SDAGD_LOSS_MSE);
        test_gradient_and_training(hidden, SDAGD_ACT_SOFTMAX, SDAGD_LOSS_CE);
    }
    test_interrupt_and_divergence();
    test_shuffle();
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    else printf("all C core checks passed\n");
    return failures ? 1 : 0;
}
