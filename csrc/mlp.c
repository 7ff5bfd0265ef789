/*
 * The network: creation, parameters, forward pass, backprop gradient and truncated diagonal
 * Hessian in one backward sweep (ALGORITHMS.md sections 1-4).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "activations.h"
#include "internal.h"

static int is_hidden_activation(int a) {
    return a == ACT_SIGMOID || a == ACT_RELU || a == ACT_TANH || a == ACT_LEAKY_RELU;
}

static int is_output_activation(int a) {
    return a == ACT_SIGMOID || a == ACT_LINEAR || a == ACT_SOFTMAX;
}

/* Drops the per-batch buffer pointers without freeing them. */
static void forget_buffers(mlp *net) {
    net->h = NULL;
    net->out_pre = net->delta = net->delta_next = net->s = net->s_next = NULL;
    net->squared_input = net->batch_x = NULL;
    net->batch_y = NULL;
    net->capacity = 0;
}

static void free_buffers(mlp *net) {
    if (net->h)
        for (int l = 0; l < net->n_layers; l++) free(net->h[l]);
    free(net->h);
    free(net->out_pre);
    free(net->delta);
    free(net->delta_next);
    free(net->s);
    free(net->s_next);
    free(net->squared_input);
    free(net->batch_x);
    free(net->batch_y);
    forget_buffers(net);
}

void mlp_free(mlp *net) {
    if (!net) return;
    free_buffers(net);
    free(net->sizes);
    free(net->w_off);
    free(net->b_off);
    free(net->params);
    free(net->grad_work);
    free(net->w_squared);
    free(net);
}

/* Per-batch buffers for `rows` rows, all or none: on failure nothing is left allocated. */
static int alloc_buffers(mlp *net, int rows) {
    size_t r = (size_t)rows, w = (size_t)net->max_width, n0 = (size_t)net->sizes[0];
    size_t wide = n0 > w ? n0 : w;
    net->capacity = rows;
    net->h = calloc((size_t)net->n_layers, sizeof *net->h);
    if (!net->h) return -1;
    for (int l = 0; l < net->n_layers; l++)
        if (!(net->h[l] = malloc(r * (size_t)net->sizes[l + 1] * sizeof(float)))) return -1;
    net->out_pre = malloc(r * (size_t)net->sizes[net->n_layers] * sizeof(float));
    net->delta = malloc(r * w * sizeof(float));
    net->delta_next = malloc(r * w * sizeof(float));
    net->s = malloc(r * w * sizeof(float));
    net->s_next = malloc(r * w * sizeof(float));
    net->squared_input = malloc(r * wide * sizeof(float));
    net->batch_x = malloc(r * n0 * sizeof(float));
    net->batch_y = malloc(r * sizeof(int32_t));
    return net->out_pre && net->delta && net->delta_next && net->s && net->s_next && net->squared_input &&
                   net->batch_x && net->batch_y
               ? 0
               : -1;
}

/* Makes the per-batch buffers hold at least `rows` rows. Called with the batch size before
 * training, so the training loop itself never allocates. If the larger buffers cannot be
 * had, the old ones stay in place: the network remains usable after the error. */
sdagd_status mlp_reserve(mlp *net, int rows) {
    if (rows <= net->capacity) return SDAGD_OK;
    mlp old = *net; /* only the buffer fields matter: kept to restore on failure */
    forget_buffers(net);
    if (alloc_buffers(net, rows) == 0) {
        mlp fresh = *net;
        *net = old;
        free_buffers(net); /* the old ones */
        *net = fresh;
        return SDAGD_OK;
    }
    free_buffers(net); /* the partial new ones */
    *net = old;
    return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory allocating work buffers for %d rows", rows);
}

sdagd_status mlp_create(mlp **out, const mlp_config *c) {
    *out = NULL;
    if (!c || !c->sizes) return sdagd_fail(SDAGD_ERR_ARG, "mlp_create: no configuration");
    if (c->n_layers < 1)
        return sdagd_fail(SDAGD_ERR_ARG, "a network needs at least one weight layer (two sizes)");
    for (int i = 0; i <= c->n_layers; i++)
        if (c->sizes[i] < 1)
            return sdagd_fail(SDAGD_ERR_ARG, "layer size %d is %d; sizes must be >= 1", i, c->sizes[i]);
    if (!is_hidden_activation(c->hidden))
        return sdagd_fail(SDAGD_ERR_ARG, "unknown hidden activation code %d", c->hidden);
    if (!is_output_activation(c->output))
        return sdagd_fail(SDAGD_ERR_ARG, "unknown output activation code %d", c->output);
    if (c->loss != LOSS_MSE && c->loss != LOSS_CE)
        return sdagd_fail(SDAGD_ERR_ARG, "unknown loss code %d", c->loss);
    if ((c->output == ACT_SOFTMAX) != (c->loss == LOSS_CE))
        return sdagd_fail(SDAGD_ERR_ARG, "softmax output goes with cross-entropy loss, and only with it");
    if (!(c->leaky_slope >= 0.0f && c->leaky_slope < 1.0f))
        return sdagd_fail(SDAGD_ERR_ARG, "leaky_relu slope must be in [0, 1), got %g", (double)c->leaky_slope);
    if (c->device == DEVICE_CUDA)
        return sdagd_fail(SDAGD_ERR_DEVICE, "this build of sdagd has no CUDA backend; use device='cpu'");
    if (c->device != DEVICE_CPU) return sdagd_fail(SDAGD_ERR_ARG, "unknown device code %d", c->device);

    mlp *net = calloc(1, sizeof *net);
    if (!net) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    net->n_layers = c->n_layers;
    net->hidden = c->hidden;
    net->output = c->output;
    net->loss = c->loss;
    net->leaky_slope = c->leaky_slope;
    net->sizes = malloc((size_t)(c->n_layers + 1) * sizeof(int));
    net->w_off = malloc((size_t)c->n_layers * sizeof(size_t));
    net->b_off = malloc((size_t)c->n_layers * sizeof(size_t));
    if (!net->sizes || !net->w_off || !net->b_off) goto nomem;
    memcpy(net->sizes, c->sizes, (size_t)(c->n_layers + 1) * sizeof(int));
    size_t p = 0;
    for (int l = 0; l < c->n_layers; l++) {
        int n_in = c->sizes[l], n_out = c->sizes[l + 1];
        net->w_off[l] = p;
        p += (size_t)n_in * (size_t)n_out;
        net->b_off[l] = p;
        p += (size_t)n_out;
        if (n_out > net->max_width) net->max_width = n_out;
    }
    net->n_params = p;
    net->params = calloc(p, sizeof(float));
    net->grad_work = malloc(p * sizeof(float));
    if (!net->params || !net->grad_work) goto nomem;
    sdagd_status st = mlp_reserve(net, c->batch_capacity > 0 ? c->batch_capacity : 100);
    if (st != SDAGD_OK) {
        mlp_free(net);
        return st;
    }
    *out = net;
    return SDAGD_OK;
nomem:
    mlp_free(net);
    return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory allocating a network of this size");
}

size_t mlp_num_params(const mlp *net) { return net->n_params; }
size_t mlp_weight_offset(const mlp *net, int layer) { return net->w_off[layer]; }
size_t mlp_bias_offset(const mlp *net, int layer) { return net->b_off[layer]; }

sdagd_status mlp_init_params(mlp *net, int init, uint64_t seed) {
    if (init != INIT_XAVIER_UNIFORM && init != INIT_HE_NORMAL)
        return sdagd_fail(SDAGD_ERR_ARG, "unknown initialisation code %d", init);
    rng_state rng;
    rng_seed(&rng, seed, 0);
    for (int l = 0; l < net->n_layers; l++) {
        int n_in = net->sizes[l], n_out = net->sizes[l + 1];
        float *W = net->params + net->w_off[l];
        size_t count = (size_t)n_in * (size_t)n_out;
        if (init == INIT_XAVIER_UNIFORM) { /* Glorot & Bengio 2010, eq. 16 */
            double r = sqrt(6.0 / (n_in + n_out));
            for (size_t i = 0; i < count; i++) W[i] = (float)(r * (2.0 * rng_uniform(&rng) - 1.0));
        } else { /* He et al. 2015: N(0, 2 / n_in) */
            double std = sqrt(2.0 / n_in);
            for (size_t i = 0; i < count; i++) W[i] = (float)(std * rng_normal(&rng));
        }
        memset(net->params + net->b_off[l], 0, (size_t)n_out * sizeof(float));
    }
    return SDAGD_OK;
}

sdagd_status mlp_get_params(const mlp *net, float *dst) {
    memcpy(dst, net->params, net->n_params * sizeof(float));
    return SDAGD_OK;
}

sdagd_status mlp_set_params(mlp *net, const float *src) {
    memcpy(net->params, src, net->n_params * sizeof(float));
    return SDAGD_OK;
}

/* Forward pass of B <= capacity rows; fills net->h[l] and net->out_pre. */
static void forward_batch(mlp *net, const float *X, int B) {
    const float *in = X;
    for (int l = 0; l < net->n_layers; l++) {
        int n_in = net->sizes[l], n_out = net->sizes[l + 1];
        int is_output = l == net->n_layers - 1;
        float *a = net->h[l];
        const float *W = net->params + net->w_off[l], *b = net->params + net->b_off[l];
        /* a (B, n_out) = in (B, n_in) W^T, then + b */
        blas_sgemm(0, 1, B, n_out, n_in, 1.0f, in, n_in, W, n_in, 0.0f, a, n_out);
        for (int r = 0; r < B; r++) {
            float *row = a + (size_t)r * n_out;
            for (int j = 0; j < n_out; j++) row[j] += b[j];
        }
        if (is_output) {
            memcpy(net->out_pre, a, (size_t)B * n_out * sizeof(float));
            if (net->output == ACT_SOFTMAX)
                softmax_rows(a, B, n_out);
            else
                activation_forward(net->output, 0.0f, a, (size_t)B * n_out);
        } else {
            activation_forward(net->hidden, net->leaky_slope, a, (size_t)B * n_out);
        }
        in = a;
    }
}

sdagd_status mlp_forward(mlp *net, const float *X, int B, float *Y) {
    int n0 = net->sizes[0], n_out = net->sizes[net->n_layers];
    for (int64_t start = 0; start < B; start += net->capacity) {
        int rows = (int)(B - start < net->capacity ? B - start : net->capacity);
        forward_batch(net, X + (size_t)start * n0, rows);
        memcpy(Y + (size_t)start * n_out, net->h[net->n_layers - 1], (size_t)rows * n_out * sizeof(float));
    }
    return SDAGD_OK;
}

/* Sum over rows of the loss of the last forward pass, and the misclassified count. The
 * cross-entropy uses the kept pre-activations: -log softmax(a)_y = logsumexp(a) - a_y. */
static void batch_loss(const mlp *net, const int32_t *labels, int B, double *loss_sum, int64_t *errors) {
    int n_out = net->sizes[net->n_layers];
    const float *Y = net->h[net->n_layers - 1];
    double total = 0.0;
    int64_t wrong = 0;
    for (int r = 0; r < B; r++) {
        const float *y = Y + (size_t)r * n_out, *a = net->out_pre + (size_t)r * n_out;
        int label = labels[r], best = 0;
        for (int j = 1; j < n_out; j++)
            if (y[j] > y[best]) best = j;
        wrong += best != label;
        if (net->loss == LOSS_MSE) {
            double e = 0.0;
            for (int j = 0; j < n_out; j++) {
                double d = (double)y[j] - (j == label);
                e += d * d;
            }
            total += 0.5 * e;
        } else {
            double max = a[0], sum = 0.0;
            for (int j = 1; j < n_out; j++) max = a[j] > max ? a[j] : max;
            for (int j = 0; j < n_out; j++) sum += exp((double)a[j] - max);
            total += max + log(sum) - a[label];
        }
    }
    *loss_sum = total;
    *errors = wrong;
}

/* Output-layer delta (spec 3) and, when wanted, s_{L+1} (spec 4), after forward_batch. */
static void output_delta(mlp *net, const int32_t *labels, int B, int want_hessian) {
    int n_out = net->sizes[net->n_layers];
    const float *Y = net->h[net->n_layers - 1];
    size_t n = (size_t)B * n_out;
    for (int r = 0; r < B; r++)
        for (int j = 0; j < n_out; j++) {
            size_t i = (size_t)r * n_out + j;
            net->delta[i] = Y[i] - (j == labels[r] ? 1.0f : 0.0f);
        }
    if (net->loss == LOSS_CE) { /* softmax + CE: delta = p - D, s = p (1 - p) */
        if (want_hessian)
            for (size_t i = 0; i < n; i++) net->s[i] = Y[i] * (1.0f - Y[i]);
        return;
    }
    /* MSE: delta = (Y - D) f'(a), s = f'(a)^2 (the (Y - D) f'' term is truncated) */
    if (want_hessian)
        for (size_t i = 0; i < n; i++) net->s[i] = 1.0f;
    activation_backward(net->output, 0.0f, Y, net->delta, want_hessian ? net->s : NULL, n);
}

static void square_into(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i] * src[i];
}

/* Column means of a (B, n) matrix scaled: dst[j] = scale * sum_r M[r, j]. */
static void column_sums(float *dst, const float *M, int B, int n, float scale) {
    for (int j = 0; j < n; j++) dst[j] = 0.0f;
    for (int r = 0; r < B; r++) {
        const float *row = M + (size_t)r * n;
        for (int j = 0; j < n; j++) dst[j] += row[j];
    }
    for (int j = 0; j < n; j++) dst[j] *= scale;
}

/* Backward sweep from the output to the first layer (spec 3 and 4):
 *   dW_l = (1/B) delta_l^T h_{l-1},              db_l = mean_rows delta_l
 *   hW_l = (1/B) s_l^T (h_{l-1} o h_{l-1}),      hb_l = mean_rows s_l
 *   delta_{l-1} = f'(a_{l-1}) * (delta_l W_l),   s_{l-1} = f'(a_{l-1})^2 * (s_l (W_l o W_l)) */
static void backward_batch(mlp *net, const float *X, int B, float *grad, float *hess) {
    float scale = 1.0f / (float)B;
    if (hess) square_into(net->w_squared, net->params, net->n_params);
    for (int l = net->n_layers - 1; l >= 0; l--) {
        int n_in = net->sizes[l], n_out = net->sizes[l + 1];
        const float *in = l > 0 ? net->h[l - 1] : X; /* (B, n_in) */
        blas_sgemm(1, 0, n_out, n_in, B, scale, net->delta, n_out, in, n_in, 0.0f,
                   grad + net->w_off[l], n_in);
        column_sums(grad + net->b_off[l], net->delta, B, n_out, scale);
        if (hess) {
            square_into(net->squared_input, in, (size_t)B * n_in);
            blas_sgemm(1, 0, n_out, n_in, B, scale, net->s, n_out, net->squared_input, n_in, 0.0f,
                       hess + net->w_off[l], n_in);
            column_sums(hess + net->b_off[l], net->s, B, n_out, scale);
        }
        if (l == 0) break;
        const float *W = net->params + net->w_off[l];
        blas_sgemm(0, 0, B, n_in, n_out, 1.0f, net->delta, n_out, W, n_in, 0.0f, net->delta_next, n_in);
        if (hess)
            blas_sgemm(0, 0, B, n_in, n_out, 1.0f, net->s, n_out, net->w_squared + net->w_off[l], n_in,
                       0.0f, net->s_next, n_in);
        activation_backward(net->hidden, net->leaky_slope, net->h[l - 1], net->delta_next,
                            hess ? net->s_next : NULL, (size_t)B * n_in);
        float *t = net->delta; net->delta = net->delta_next; net->delta_next = t;
        t = net->s; net->s = net->s_next; net->s_next = t;
    }
}

/* Gradient (and h) of one batch of B <= capacity rows into grad/hess (may be NULL). */
sdagd_status mlp_batch_loss_grad(mlp *net, const float *X, const int32_t *labels, int B,
                                 double *loss_sum, int64_t *errors, float *grad, float *hess) {
    if (hess && !net->w_squared && !(net->w_squared = malloc(net->n_params * sizeof(float))))
        return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory allocating the Hessian work slab");
    forward_batch(net, X, B);
    batch_loss(net, labels, B, loss_sum, errors);
    if (grad) {
        output_delta(net, labels, B, hess != NULL);
        backward_batch(net, X, B, grad, hess);
    }
    return SDAGD_OK;
}

sdagd_status mlp_check_labels(const mlp *net, const int32_t *labels, int64_t n) {
    int n_out = net->sizes[net->n_layers];
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= n_out)
            return sdagd_fail(SDAGD_ERR_ARG, "label %d at row %lld is outside [0, %d)", labels[i],
                              (long long)i, n_out);
    return SDAGD_OK;
}

sdagd_status mlp_loss_grad(mlp *net, const float *X, const int32_t *labels, int B, double *loss,
                           int64_t *errors, float *grad, float *hess) {
    if (B < 1) return sdagd_fail(SDAGD_ERR_ARG, "a batch needs at least one row, got %d", B);
    sdagd_status st = mlp_check_labels(net, labels, B);
    if (st == SDAGD_OK) st = mlp_reserve(net, B); /* the gradient is over the whole batch */
    if (st != SDAGD_OK) return st;
    double sum;
    st = mlp_batch_loss_grad(net, X, labels, B, &sum, errors, grad, hess);
    if (st == SDAGD_OK) *loss = sum / B;
    return st;
}

sdagd_status mlp_evaluate(mlp *net, const float *X, const int32_t *labels, int64_t N,
                          double *mean_loss, int64_t *errors) {
    if (N < 1) return sdagd_fail(SDAGD_ERR_ARG, "evaluation needs at least one row");
    sdagd_status st = mlp_check_labels(net, labels, N);
    /* Evaluation has no per-step budget: larger chunks make better use of the BLAS. */
    if (st == SDAGD_OK) st = mlp_reserve(net, (int)(N < 1000 ? N : 1000));
    if (st != SDAGD_OK) return st;
    double total = 0.0;
    int64_t wrong = 0;
    int n0 = net->sizes[0];
    for (int64_t start = 0; start < N; start += net->capacity) {
        int rows = (int)(N - start < net->capacity ? N - start : net->capacity);
        double sum;
        int64_t e;
        mlp_batch_loss_grad(net, X + (size_t)start * n0, labels + start, rows, &sum, &e, NULL, NULL);
        total += sum;
        wrong += e;
    }
    *mean_loss = total / (double)N;
    *errors = wrong;
    return SDAGD_OK;
}
