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
static optim_config cfg(int kind, ...) {
    optim_config c;
    optim_config_defaults(&c, kind);
    va_list ap;
    va_start(ap, kind);
    for (int slot = va_arg(ap, int); slot >= 0; slot = va_arg(ap, int)) c.hyper[slot] = va_arg(ap, double);
    va_end(ap);
    return c;
}

static void test_bad_configs(void) {
    int sizes[] = {4, 3, 2};
    mlp_config c = {.n_layers = 2, .sizes = sizes, .hidden = ACT_SIGMOID, .output = ACT_SIGMOID,
                    .loss = LOSS_MSE, .leaky_slope = 0.01f, .device = DEVICE_CPU, .batch_capacity = 8};
    mlp *net = (mlp *)1;
    mlp_config bad = c;
    bad.n_layers = 0;
    CHECK(mlp_create(&net, &bad) == SDAGD_ERR_ARG && net == NULL, "zero layers accepted");
    CHECK(strlen(sdagd_last_error()) > 0, "no message for zero layers");
    int zero[] = {4, 0, 2};
    bad = c;
    bad.sizes = zero;
    CHECK(mlp_create(&net, &bad) == SDAGD_ERR_ARG, "zero width accepted");
    bad = c;
    bad.output = ACT_SOFTMAX;
    CHECK(mlp_create(&net, &bad) == SDAGD_ERR_ARG, "softmax with MSE accepted");
    bad = c;
    bad.hidden = 42;
    CHECK(mlp_create(&net, &bad) == SDAGD_ERR_ARG, "unknown activation accepted");
    bad = c;
    bad.device = DEVICE_CUDA;
    CHECK(mlp_create(&net, &bad) == SDAGD_ERR_DEVICE, "CUDA accepted in a CPU-only build");
    CHECK(mlp_create(&net, NULL) == SDAGD_ERR_ARG, "NULL config accepted");
    mlp_free(NULL);
    optim_free(NULL);
}

/* Loss in double of the network at its current parameters. */
static double loss_at(mlp *net, const float *X, const int32_t *y, int B) {
    double loss;
    int64_t errors;
    mlp_loss_grad(net, X, y, B, &loss, &errors, NULL, NULL);
    return loss;
}

/* One epoch of one network through a trainer of one, as MLP.fit trains it. */
static sdagd_status train_alone(mlp *net, optimizer *opt, const sdagd_dataset *ds, int batch_size, uint64_t seed,
                                int64_t epoch, train_stats *stats, sdagd_poll_fn poll, void *poll_ctx) {
    trainer *t = NULL;
    sdagd_status st = trainer_create(&t, &net, &opt, 1);
    if (st == SDAGD_OK) st = trainer_epoch(t, ds, batch_size, &seed, &epoch, stats, poll, poll_ctx);
    trainer_free(t);
    return st;
}

static void test_gradient_and_training(int hidden, int output, int loss_kind) {
    int sizes[] = {5, 4, 4, 3};
    mlp_config c = {.n_layers = 3, .sizes = sizes, .hidden = hidden, .output = output, .loss = loss_kind,
                    .leaky_slope = 0.1f, .device = DEVICE_CPU, .batch_capacity = 4};
    mlp *net = NULL;
    CHECK(mlp_create(&net, &c) == SDAGD_OK, "create: %s", sdagd_last_error());
    if (!net) return;
    CHECK(mlp_init_params(net, INIT_XAVIER_UNIFORM, 7) == SDAGD_OK, "init");
    enum { B = 9 }; /* larger than the capacity: the buffers must grow */
    float X[B * 5];
    int32_t y[B];
    for (int i = 0; i < B * 5; i++) X[i] = (float)sin(0.7 * i + 0.3);
    for (int i = 0; i < B; i++) y[i] = i % 3;
    size_t P = mlp_num_params(net);
    float *params = malloc(P * sizeof(float)), *grad = malloc(P * sizeof(float)), *hess = malloc(P * sizeof(float));
    mlp_get_params(net, params);
    double loss;
    int64_t errors;
    CHECK(mlp_loss_grad(net, X, y, B, &loss, &errors, grad, hess) == SDAGD_OK, "loss_grad: %s", sdagd_last_error());
    /* Central differences in float32 parameters: h = 1e-2 keeps rounding (~1e-7 / 1e-2) and
     * truncation (~h^2) errors near 1e-4. Only for the smooth activations: a step of 1e-2
     * crosses relu kinks here (pre-activations down to ~1e-3); tests/test_network.py checks
     * every activation against float64 finite differences of the NumPy reference instead. */
    double worst = 0.0;
    int smooth = hidden == ACT_SIGMOID || hidden == ACT_TANH;
    for (size_t i = 0; smooth && i < P; i += 3) {
        float saved = params[i];
        params[i] = saved + 1e-2f;
        mlp_set_params(net, params);
        double up = loss_at(net, X, y, B);
        params[i] = saved - 1e-2f;
        mlp_set_params(net, params);
        double down = loss_at(net, X, y, B);
        params[i] = saved;
        double fd = (up - down) / (2e-2);
        double err = fabs(fd - grad[i]) / (fabs(fd) + 1e-3);
        if (err > worst) worst = err;
    }
    mlp_set_params(net, params);
    CHECK(worst < 2e-2, "gradient vs finite differences (hidden %d, output %d): worst relative error %g", hidden,
          output, worst);
    for (size_t i = 0; i < P; i++) CHECK(hess[i] >= 0.0f, "negative Hessian diagonal at %zu", i);

    int32_t bad_labels[B];
    memcpy(bad_labels, y, sizeof y);
    bad_labels[4] = 3;
    CHECK(mlp_loss_grad(net, X, bad_labels, B, &loss, &errors, grad, NULL) == SDAGD_ERR_ARG, "label 3 accepted");

    for (int kind = 0; kind < OPT_COUNT; kind++) {
        optim_config oc = cfg(kind, HP_LR, 0.05, HP_MOMENTUM, 0.5, HP_RADIUS, 0.1, HP_EPS, 1e-6, HP_HESSIAN_EVERY, 2.0,
                              HP_MU, 0.1, HP_GAMMA, 0.1, HP_BETA1, 0.9, HP_BETA2, 0.999, HP_RHO, 0.9, -1);
        optimizer *opt = NULL;
        CHECK(optim_create(&opt, &oc, net) == SDAGD_OK, "optimizer %d: %s", kind, sdagd_last_error());
        if (!opt) continue;
        train_stats stats = {0};
        sdagd_dataset *ds = NULL;
        CHECK(dataset_create(&ds, net, X, y, B) == SDAGD_OK, "dataset: %s", sdagd_last_error());
        sdagd_status st = train_alone(net, opt, ds, 4, 1, 0, &stats, NULL, NULL);
        CHECK(st == SDAGD_OK, "epoch with optimizer %d: %s", kind, sdagd_last_error());
        dataset_free(ds);
        CHECK(stats.steps == 3 && stats.rows == B, "optimizer %d: %lld steps, %lld rows", kind,
              (long long)stats.steps, (long long)stats.rows);
        optim_free(opt);
    }
    optim_config bad = cfg(OPT_SDAGD, HP_RADIUS, -1.0, -1);
    optimizer *opt = (optimizer *)1;
    CHECK(optim_create(&opt, &bad, net) == SDAGD_ERR_ARG && opt == NULL, "negative radius accepted");
    free(params);
    free(grad);
    free(hess);
    mlp_free(net);
}

static int stop_now(void *ctx) { return ++*(int *)ctx >= 2; }

static void test_interrupt_and_divergence(void) {
    int sizes[] = {3, 8, 2};
    mlp_config c = {.n_layers = 2, .sizes = sizes, .hidden = ACT_RELU, .output = ACT_LINEAR, .loss = LOSS_MSE,
                    .device = DEVICE_CPU, .batch_capacity = 2};
    mlp *net = NULL;
    CHECK(mlp_create(&net, &c) == SDAGD_OK, "create");
    if (!net) return;
    mlp_init_params(net, INIT_HE_NORMAL, 3);
    float X[10 * 3];
    int32_t y[10];
    for (int i = 0; i < 30; i++) X[i] = (float)(i % 7) - 3.0f;
    for (int i = 0; i < 10; i++) y[i] = i % 2;
    optim_config oc = cfg(OPT_SGD, HP_LR, 0.01, -1);
    optimizer *opt = NULL;
    optim_create(&opt, &oc, net);
    train_stats stats = {0};
    int polls = 0;
    sdagd_dataset *ds = NULL;
    CHECK(dataset_create(&ds, net, X, y, 10) == SDAGD_OK, "dataset: %s", sdagd_last_error());
    CHECK(train_alone(net, opt, ds, 2, 0, 0, &stats, stop_now, &polls) == SDAGD_ERR_INTERRUPTED,
          "poll did not stop the epoch");
    CHECK(stats.steps == 2, "interrupted after %lld steps, expected 2", (long long)stats.steps);
    optim_free(opt);
    oc.hyper[HP_LR] = 1e30; /* certain overflow */
    optim_create(&opt, &oc, net);
    sdagd_status st = SDAGD_OK;
    for (int e = 0; e < 5 && st == SDAGD_OK && !stats.diverged; e++) {
        train_stats_reset(&stats);
        st = train_alone(net, opt, ds, 2, 0, e, &stats, NULL, NULL);
    }
    CHECK(st == SDAGD_OK && stats.diverged, "divergence not reported (status %d)", st);
    char message[256];
    train_divergence_message(message, sizeof message, opt, &stats);
    CHECK(strstr(message, "SGD diverged") != NULL, "divergence message: %s", message);
    dataset_free(ds);
    optim_free(opt);
    mlp_free(net);
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
    int acts[K] = {ACT_SIGMOID, ACT_TANH, ACT_RELU};
    optim_config ocs[K] = {cfg(OPT_SGD, HP_LR, 0.1, HP_MOMENTUM, 0.5, -1), cfg(OPT_SDAGD, HP_RADIUS, 0.2, -1),
                           cfg(OPT_SGD, HP_LR, 1e30, -1)}; /* the third diverges */
    float X[N * NIN];
    int32_t y[N];
    for (int i = 0; i < N * NIN; i++) X[i] = (float)cos(0.37 * i);
    for (int i = 0; i < N; i++) y[i] = (i * 7) % 4;
    mlp *nets[2][K] = {{0}};
    optimizer *opts[2][K] = {{0}};
    for (int copy = 0; copy < 2; copy++)
        for (int k = 0; k < K; k++) {
            mlp_config c = {.n_layers = 3, .sizes = sizes, .hidden = acts[k], .output = ACT_LINEAR,
                            .loss = LOSS_MSE, .leaky_slope = 0.01f, .device = DEVICE_CPU, .batch_capacity = 5};
            CHECK(mlp_create(&nets[copy][k], &c) == SDAGD_OK, "create: %s", sdagd_last_error());
            mlp_init_params(nets[copy][k], INIT_XAVIER_UNIFORM, 11 + (uint64_t)k);
            CHECK(optim_create(&opts[copy][k], &ocs[k], nets[copy][k]) == SDAGD_OK, "optim: %s", sdagd_last_error());
        }
    uint64_t seeds[K] = {1, 2, 3};
    train_stats together[K] = {{0}}, alone[K] = {{0}};
    sdagd_dataset *ds = NULL;
    CHECK(dataset_create(&ds, nets[0][0], X, y, N) == SDAGD_OK, "dataset");
    trainer *t = NULL;
    CHECK(trainer_create(&t, nets[0], opts[0], K) == SDAGD_OK, "trainer: %s", sdagd_last_error());
    for (int64_t e = 0; e < 2 && t; e++) {
        int64_t epochs[K] = {e, e, e};
        for (int k = 0; k < K; k++) {
            train_stats kept = together[k];
            train_stats_reset(&together[k]);
            together[k].diverged = kept.diverged; /* stopped networks stay stopped */
            together[k].diverged_step = kept.diverged_step;
        }
        CHECK(trainer_epoch(t, ds, 5, seeds, epochs, together, NULL, NULL) == SDAGD_OK, "trainer_epoch: %s",
              sdagd_last_error());
    }
    trainer_free(t);
    for (int k = 0; k < K; k++) {
        sdagd_status st = SDAGD_OK;
        for (int64_t e = 0; e < 2 && st == SDAGD_OK && !alone[k].diverged; e++) {
            train_stats_reset(&alone[k]);
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
        size_t P = mlp_num_params(nets[0][k]);
        float *a = malloc(P * sizeof(float)), *b = malloc(P * sizeof(float));
        mlp_get_params(nets[0][k], a);
        mlp_get_params(nets[1][k], b);
        CHECK(memcmp(a, b, P * sizeof(float)) == 0, "network %d: parameters differ between together and alone", k);
        CHECK(together[k].loss_sum == alone[k].loss_sum && together[k].steps == alone[k].steps,
              "network %d: loss %g/%g, steps %lld/%lld", k, together[k].loss_sum, alone[k].loss_sum,
              (long long)together[k].steps, (long long)alone[k].steps);
        CHECK(optim_step_count(opts[0][k]) == optim_step_count(opts[1][k]), "network %d: step counts differ", k);
        free(a);
        free(b);
    }
    dataset_free(ds);
    for (int copy = 0; copy < 2; copy++)
        for (int k = 0; k < K; k++) {
            optim_free(opts[copy][k]);
            mlp_free(nets[copy][k]);
        }
}

static void test_sdagd_options(void) {
    int sizes[] = {4, 3, 2};
    mlp_config c = {.n_layers = 2, .sizes = sizes, .hidden = ACT_SIGMOID, .output = ACT_SIGMOID, .loss = LOSS_MSE,
                    .device = DEVICE_CPU, .batch_capacity = 4};
    mlp *net = NULL;
    CHECK(mlp_create(&net, &c) == SDAGD_OK, "create");
    optim_config cosine = cfg(OPT_SDAGD, HP_RADIUS, 1.0, -1);
    cosine.schedule = SCHEDULE_COSINE, cosine.schedule_epochs = 4, cosine.step_min = 0.2;
    CHECK(fabs(optim_step_at(&cosine, 0) - 1.0) < 1e-12 && fabs(optim_step_at(&cosine, 2) - 0.6) < 1e-12 &&
              fabs(optim_step_at(&cosine, 4) - 0.2) < 1e-12,
          "cosine schedule: %g %g %g", optim_step_at(&cosine, 0), optim_step_at(&cosine, 2),
          optim_step_at(&cosine, 4));
    optim_config step = cfg(OPT_SDAGD, HP_RADIUS, 1.0, -1);
    step.schedule = SCHEDULE_STEP, step.schedule_factor = 0.5, step.schedule_every = 3;
    CHECK(optim_step_at(&step, 2) == 1.0 && optim_step_at(&step, 3) == 0.5 && optim_step_at(&step, 7) == 0.25,
          "step schedule");
    optimizer *opt = (optimizer *)1;
    optim_config bad = cosine;
    bad.step_min = 2.0;
    CHECK(optim_create(&opt, &bad, net) == SDAGD_ERR_ARG && opt == NULL, "radius_min above radius accepted");
    bad = step;
    bad.schedule_factor = 1.5;
    CHECK(optim_create(&opt, &bad, net) == SDAGD_ERR_ARG, "growing step schedule accepted");
    bad = cosine;
    bad.schedule = SCHEDULE_CONSTANT;
    bad.hyper[HP_AVERAGE] = 1.5;
    CHECK(optim_create(&opt, &bad, net) == SDAGD_ERR_ARG, "average with gamma 1.5 accepted");
    CHECK(sdagd_device_check(DEVICE_CUDA) == SDAGD_ERR_DEVICE && strlen(sdagd_last_error()) > 0,
          "CUDA reported usable without a library");
    mlp_free(net);
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
    output_delta_value(ACT_SIGMOID, LOSS_MSE, 0.75f, 1.0f, &delta, &s);
    CHECK(delta == (0.75f - 1.0f) * 0.1875f && s == 0.1875f * 0.1875f, "MSE output delta and curvature");
    output_delta_value(ACT_SOFTMAX, LOSS_CE, 0.25f, 0.0f, &delta, &s);
    CHECK(delta == 0.25f && s == 0.1875f, "cross-entropy output delta and curvature");
    CHECK(sdagd_update(1.0f, 2.0f, 3.0f, 1.0f, 0.0f, 1.0f) == 0.5f, "SDAGD update 1 - 2/(3 + 1)");
}

/* trainer_step: K networks stepped together on one batch equal each stepped alone by a trainer
 * of one, bit for bit (parameters, losses, step counts); a diverging one stops alone; bad
 * batches are refused with a message. */
static void test_trainer_step_equals_solo(void) {
    enum { K = 3, B = 9, NIN = 5 };
    int sizes[] = {NIN, 6, 3};
    int acts[K] = {ACT_TANH, ACT_SIGMOID, ACT_LEAKY_RELU};
    optim_config ocs[K] = {cfg(OPT_SDAGD, HP_RADIUS, 0.3, HP_NORM, (double)NORM_GLOBAL, -1), cfg(OPT_ADAM, HP_LR, 0.01, -1),
                           cfg(OPT_SGD, HP_LR, 1e30, -1)}; /* the third diverges */
    float X[B * NIN];
    int32_t y[B];
    for (int i = 0; i < B * NIN; i++) X[i] = (float)sin(0.53 * i);
    for (int i = 0; i < B; i++) y[i] = i % 3;
    mlp *nets[2][K] = {{0}};
    optimizer *opts[2][K] = {{0}};
    for (int copy = 0; copy < 2; copy++)
        for (int k = 0; k < K; k++) {
            mlp_config c = {.n_layers = 2, .sizes = sizes, .hidden = acts[k], .output = ACT_LINEAR,
                            .loss = LOSS_MSE, .leaky_slope = 0.01f, .device = DEVICE_CPU, .batch_capacity = 4};
            CHECK(mlp_create(&nets[copy][k], &c) == SDAGD_OK, "create: %s", sdagd_last_error());
            mlp_init_params(nets[copy][k], INIT_XAVIER_UNIFORM, 5 + (uint64_t)k);
            CHECK(optim_create(&opts[copy][k], &ocs[k], nets[copy][k]) == SDAGD_OK, "optim: %s", sdagd_last_error());
        }
    enum { STEPS = 6 };
    int64_t epochs[K] = {0, 0, 0};
    train_stats together[K] = {{0}}, alone[K] = {{0}};
    double together_loss[K] = {0}, alone_loss[K] = {0};
    trainer *t = NULL;
    CHECK(trainer_create(&t, nets[0], opts[0], K) == SDAGD_OK, "trainer: %s", sdagd_last_error());
    int32_t bad[B];
    memcpy(bad, y, sizeof y);
    bad[2] = 7;
    if (t) {
        CHECK(trainer_step(t, X, bad, B, epochs, together) == SDAGD_ERR_ARG && strstr(sdagd_last_error(), "7"),
              "label 7 accepted: %s", sdagd_last_error());
        CHECK(trainer_step(t, X, y, 0, epochs, together) == SDAGD_ERR_ARG, "an empty batch accepted");
    }
    for (int i = 0; i < STEPS && t; i++) {
        for (int k = 0; k < K; k++) {
            train_stats kept = together[k];
            train_stats_reset(&together[k]);
            together[k].diverged = kept.diverged; /* stopped networks stay stopped */
            together[k].diverged_step = kept.diverged_step;
        }
        CHECK(trainer_step(t, X, y, B, epochs, together) == SDAGD_OK, "trainer_step: %s", sdagd_last_error());
        for (int k = 0; k < K; k++) together_loss[k] += together[k].loss_sum;
    }
    trainer_free(t);
    for (int k = 0; k < K; k++) {
        trainer *one = NULL;
        CHECK(trainer_create(&one, &nets[1][k], &opts[1][k], 1) == SDAGD_OK, "trainer of one: %s",
              sdagd_last_error());
        for (int i = 0; i < STEPS && one && !alone[k].diverged; i++) {
            train_stats_reset(&alone[k]);
            CHECK(trainer_step(one, X, y, B, &epochs[k], &alone[k]) == SDAGD_OK, "step alone: %s",
                  sdagd_last_error());
            alone_loss[k] += alone[k].loss_sum;
        }
        trainer_free(one);
        CHECK((together[k].diverged != 0) == (k == 2) && (alone[k].diverged != 0) == (k == 2),
              "network %d: diverged %d together, %d alone", k, together[k].diverged, alone[k].diverged);
        CHECK(together[k].diverged_step == alone[k].diverged_step, "network %d: diverged at step %lld/%lld", k,
              (long long)together[k].diverged_step, (long long)alone[k].diverged_step);
        size_t P = mlp_num_params(nets[0][k]);
        float *a = malloc(P * sizeof(float)), *b = malloc(P * sizeof(float));
        mlp_get_params(nets[0][k], a);
        mlp_get_params(nets[1][k], b);
        CHECK(memcmp(a, b, P * sizeof(float)) == 0, "network %d: parameters differ between together and alone", k);
        CHECK(together_loss[k] == alone_loss[k], "network %d: loss %g together, %g alone", k, together_loss[k],
              alone_loss[k]);
        CHECK(optim_step_count(opts[0][k]) == optim_step_count(opts[1][k]), "network %d: step counts %lld/%lld",
              k, (long long)optim_step_count(opts[0][k]), (long long)optim_step_count(opts[1][k]));
        free(a);
        free(b);
    }
    for (int copy = 0; copy < 2; copy++)
        for (int k = 0; k < K; k++) {
            optim_free(opts[copy][k]);
            mlp_free(nets[copy][k]);
        }
}

/* Validation from the table: each row at its defaults (with a value for those that have none)
 * passes, and each hyperparameter just outside its range is refused with its name. */
static void test_table_validation(void) {
    int n_rows, n_hypers;
    const sdagd_optimizer_desc *rows = optim_table(&n_rows);
    const sdagd_hyper_desc *hypers = optim_hyper_table(&n_hypers);
    CHECK(n_rows == OPT_COUNT, "%d rows for %d codes", n_rows, (int)OPT_COUNT);
    for (int r = 0; r < n_rows; r++) {
        CHECK(rows[r].code == r, "row %d has code %d", r, rows[r].code);
        optim_config c = cfg(r, HP_LR, 0.1, HP_RADIUS, 0.3, HP_MU, 0.1, -1);
        CHECK(optim_config_check(&c) == SDAGD_OK, "%s at its defaults: %s", rows[r].name, sdagd_last_error());
        for (int i = 0; i < n_hypers; i++) {
            const sdagd_hyper_desc *h = &hypers[i];
            if (h->optimizer != r) continue;
            optim_config bad = c;
            bad.hyper[h->slot] = h->low_closed ? h->low - 1.0 : h->low;      /* just below */
            if (h->type == HYPER_OPTIONAL) bad.hyper[h->slot] = -1.0;         /* 0 means off */
            CHECK(optim_config_check(&bad) == SDAGD_ERR_ARG && strstr(sdagd_last_error(), h->name),
                  "%s: %s = %g accepted (%s)", rows[r].name, h->name, bad.hyper[h->slot], sdagd_last_error());
            bad.hyper[h->slot] = NAN;
            CHECK(optim_config_check(&bad) == SDAGD_ERR_ARG, "%s: %s = NaN accepted", rows[r].name, h->name);
        }
        /* a cosine schedule of the step size: S at e = 0, S_min from e = E on */
        c.schedule = SCHEDULE_COSINE, c.schedule_epochs = 2, c.step_min = 0.25 * c.hyper[rows[r].step_slot];
        double s = c.hyper[rows[r].step_slot];
        CHECK(optim_config_check(&c) == SDAGD_OK && optim_step_at(&c, 0) == s && optim_step_at(&c, 5) == c.step_min,
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
    for (int hidden = ACT_SIGMOID; hidden <= ACT_LEAKY_RELU; hidden++) {
        test_gradient_and_training(hidden, ACT_SIGMOID, LOSS_MSE);
        test_gradient_and_training(hidden, ACT_LINEAR, LOSS_MSE);
        test_gradient_and_training(hidden, ACT_SOFTMAX, LOSS_CE);
    }
    test_interrupt_and_divergence();
    test_shuffle();
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    else printf("all C core checks passed\n");
    return failures ? 1 : 0;
}
