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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

    for (int kind = OPT_SGD; kind <= OPT_ADAM; kind++) {
        optim_config oc = {.kind = kind, .lr = 0.05, .momentum = 0.5, .radius = 0.1, .eps = 1e-6, .norm = NORM_LAYER,
                           .hessian_every = 2, .mu = 0.1, .gamma = 0.1, .beta1 = 0.9, .beta2 = 0.999, .rho = 0.9};
        optimizer *opt = NULL;
        CHECK(optim_create(&opt, &oc, net) == SDAGD_OK, "optimizer %d: %s", kind, sdagd_last_error());
        if (!opt) continue;
        train_stats stats = {0};
        sdagd_status st = train_epoch(net, opt, X, y, B, 4, 1, 0, &stats, NULL, NULL);
        CHECK(st == SDAGD_OK, "epoch with optimizer %d: %s", kind, sdagd_last_error());
        CHECK(stats.steps == 3 && stats.rows == B, "optimizer %d: %lld steps, %lld rows", kind,
              (long long)stats.steps, (long long)stats.rows);
        optim_free(opt);
    }
    optim_config bad = {.kind = OPT_SDAGD, .radius = -1.0, .eps = 1e-8, .hessian_every = 1};
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
    optim_config oc = {.kind = OPT_SGD, .lr = 0.01};
    optimizer *opt = NULL;
    optim_create(&opt, &oc, net);
    train_stats stats = {0};
    int polls = 0;
    CHECK(train_epoch(net, opt, X, y, 10, 2, 0, 0, &stats, stop_now, &polls) == SDAGD_ERR_INTERRUPTED,
          "poll did not stop the epoch");
    CHECK(stats.steps == 2, "interrupted after %lld steps, expected 2", (long long)stats.steps);
    optim_free(opt);
    oc.lr = 1e30; /* certain overflow */
    optim_create(&opt, &oc, net);
    sdagd_status st = SDAGD_OK;
    for (int e = 0; e < 5 && st == SDAGD_OK; e++) st = train_epoch(net, opt, X, y, 10, 2, 0, e, &stats, NULL, NULL);
    CHECK(st == SDAGD_ERR_NONFINITE, "divergence not reported (status %d)", st);
    CHECK(strstr(sdagd_last_error(), "diverged") != NULL, "divergence message: %s", sdagd_last_error());
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

int main(void) {
    test_bad_configs();
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
