/*
 * The network: creation, parameters, work buffers, and the forward pass and backward sweep
 * (docs/algorithms.md sections 1-4) written once over the backend table (backend.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "error.h"
#include "network.h"
#include "rng.h"

/* Where each activation may be used: tables.h. */
#define HIDDEN_CASE(code, name, hidden, output, diagnostic) \
    case code: return hidden;
#define OUTPUT_CASE(code, name, hidden, output, diagnostic) \
    case code: return output;
static int is_hidden_activation(int a) {
    switch (a) { SDAGD_ACTIVATIONS(HIDDEN_CASE) }
    return 0;
}

static int is_output_activation(int a) {
    switch (a) { SDAGD_ACTIVATIONS(OUTPUT_CASE) }
    return 0;
}

/* ---- backend memory helpers ---------------------------------------------------------- */


/* ---- work buffers --------------------------------------------------------------------- */

static size_t partials_per_net(const sdagd_mlp *net) {
    /* room for any backend's per-row, per-chunk or per-block partial sums */
    return (size_t)net->max_width + net->n_params / 256 + 4 * (size_t)net->n_layers + 256;
}

void workspace_free(const sdagd_mlp *net, workspace *ws) {
    float **floats[] = {&ws->x, &ws->x_sq, &ws->out, &ws->out_sq, &ws->pre, &ws->delta[0], &ws->delta[1],
                        &ws->s[0], &ws->s[1], &ws->w_sq};
    for (size_t i = 0; i < sizeof floats / sizeof *floats; i++) {
        mlp_free_on(net, *floats[i]);
        *floats[i] = NULL;
    }
    mlp_free_on(net, ws->y);
    mlp_free_on(net, ws->partials);
    free(ws->out_off);
    ws->y = NULL;
    ws->partials = NULL;
    ws->out_off = NULL;
    ws->capacity = ws->curvature = 0;
}

/* Allocates every buffer of `ws` for K networks and C rows, all or nothing. */
static sdagd_status workspace_alloc(const sdagd_mlp *net, workspace *ws, int K, int C, int curvature) {
    size_t k = (size_t)K, c = (size_t)C, n0 = (size_t)net->sizes[0], n_out = (size_t)net->sizes[net->n_layers];
    size_t width = (size_t)net->max_width, f = sizeof(float);
    memset(ws, 0, sizeof *ws);
    ws->generation = next_serial();
    ws->K = K;
    ws->capacity = C;
    ws->curvature = curvature;
    ws->out_off = malloc((size_t)net->n_layers * sizeof(size_t));
    if (!ws->out_off) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    ws->out_width = 0;
    for (int l = 0; l < net->n_layers; l++) {
        ws->out_off[l] = c * ws->out_width;
        ws->out_width += (size_t)net->sizes[l + 1];
    }
    sdagd_status st = SDAGD_OK;
#define ALLOC(field, bytes) \
    if (st == SDAGD_OK) st = mlp_alloc_on(net, (void **)&ws->field, bytes)
    ALLOC(x, k * c * n0 * f);
    ALLOC(y, k * c * sizeof(int32_t));
    ALLOC(out, k * c * ws->out_width * f);
    ALLOC(pre, k * c * n_out * f);
    ALLOC(delta[0], k * c * width * f);
    ALLOC(delta[1], k * c * width * f);
    ALLOC(partials, k * partials_per_net(net) * sizeof(double));
    if (curvature) {
        ALLOC(x_sq, k * c * n0 * f);
        ALLOC(out_sq, k * c * ws->out_width * f);
        ALLOC(s[0], k * c * width * f);
        ALLOC(s[1], k * c * width * f);
        ALLOC(w_sq, k * net->max_layer * f);
    }
#undef ALLOC
    return st;
}

/* Makes `ws` hold at least `rows` rows for K networks, with the curvature buffers when asked.
 * Called before training with the batch size, so the training loop itself never allocates.
 * If the larger buffers cannot be had, the old ones stay in place: the network remains
 * usable after the error. */
sdagd_status workspace_reserve(sdagd_mlp *net, workspace *ws, int K, int rows, int curvature) {
    if (ws->out_off && ws->K == K && rows <= ws->capacity && (!curvature || ws->curvature)) return SDAGD_OK;
    int C = rows > ws->capacity ? rows : ws->capacity;
    workspace fresh;
    sdagd_status st = workspace_alloc(net, &fresh, K, C, curvature || ws->curvature);
    if (st != SDAGD_OK) {
        workspace_free(net, &fresh);
        return st == SDAGD_ERR_NOMEM
                   ? sdagd_fail(SDAGD_ERR_NOMEM, "out of memory allocating work buffers for %d rows of %d network(s)",
                                C, K)
                   : st;
    }
    workspace_free(net, ws);
    *ws = fresh;
    return SDAGD_OK;
}

void group_view_init(group_view *g, const sdagd_mlp *net, const workspace *ws, int K, const int32_t *act,
                     const float *slope, uint8_t *active) {
    size_t c = (size_t)ws->capacity;
    *g = (group_view){
        .K = K,
        .n_layers = net->n_layers,
        .sizes = net->sizes,
        .w_off = net->w_off,
        .b_off = net->b_off,
        .offsets = net->offsets,
        .P = net->n_params,
        .capacity = ws->capacity,
        .output = net->output,
        .loss = net->loss,
        .act = act,
        .slope = slope,
        .active = active,
        .x = ws->x,
        .x_sq = ws->x_sq,
        .y = ws->y,
        .x_stride = c * (size_t)net->sizes[0],
        .y_stride = c,
        .out = ws->out,
        .out_sq = ws->out_sq,
        .out_off = ws->out_off,
        .out_stride = c * ws->out_width,
        .pre = ws->pre,
        .pre_stride = c * (size_t)net->sizes[net->n_layers],
        .delta = {ws->delta[0], ws->delta[1]},
        .s = {ws->s[0], ws->s[1]},
        .d_stride = c * (size_t)net->max_width,
        .w_sq = ws->w_sq,
        .w_sq_stride = net->max_layer,
        .partials = ws->partials,
        .partials_stride = partials_per_net(net),
    };
}

/* The network's own group of one. */
static void own_view(const sdagd_mlp *net, group_view *g) {
    group_view_init(g, net, &net->ws, 1, net->act, net->slope, net->active);
}

/* ---- creation ------------------------------------------------------------------------- */

void sdagd_mlp_free(sdagd_mlp *net) {
    if (!net) return;
    if (net->be) {
        workspace_free(net, &net->ws);
        void *buffers[] = {net->params, net->grad, net->hess, net->act, net->slope, net->active,
                           net->counters, net->loss_slot, net->error_slot, net->segments, net->offsets};
        for (size_t i = 0; i < sizeof buffers / sizeof *buffers; i++) mlp_free_on(net, buffers[i]);
        if (net->ctx) net->be->context_free(net->ctx);
    }
    free(net->sizes);
    free(net->w_off);
    free(net->b_off);
    free(net);
}

static sdagd_status check_config(const sdagd_mlp_config *c) {
    if (!c || !c->sizes) return sdagd_fail(SDAGD_ERR_ARG, "mlp_create: no configuration");
    if (c->n_layers < 1) return sdagd_fail(SDAGD_ERR_ARG, "a network needs at least one weight layer (two sizes)");
    for (int i = 0; i <= c->n_layers; i++)
        if (c->sizes[i] < 1)
            return sdagd_fail(SDAGD_ERR_ARG, "layer size %d is %d; sizes must be >= 1", i, c->sizes[i]);
    if (!is_hidden_activation(c->hidden))
        return sdagd_fail(SDAGD_ERR_ARG, "unknown hidden activation code %d", c->hidden);
    if (!is_output_activation(c->output))
        return sdagd_fail(SDAGD_ERR_ARG, "unknown output activation code %d", c->output);
    if (c->loss != SDAGD_LOSS_MSE && c->loss != SDAGD_LOSS_CE) return sdagd_fail(SDAGD_ERR_ARG, "unknown loss code %d", c->loss);
    if ((c->output == SDAGD_ACT_SOFTMAX) != (c->loss == SDAGD_LOSS_CE))
        return sdagd_fail(SDAGD_ERR_ARG, "softmax output goes with cross-entropy loss, and only with it");
    if (!(c->leaky_slope >= 0.0f && c->leaky_slope < 1.0f))
        return sdagd_fail(SDAGD_ERR_ARG, "leaky_relu slope must be in [0, 1), got %g", (double)c->leaky_slope);
    if (c->batch_capacity < 0) return sdagd_fail(SDAGD_ERR_ARG, "batch_capacity must be >= 0, got %d", c->batch_capacity);
    return SDAGD_OK;
}

sdagd_status sdagd_mlp_create(sdagd_mlp **out, const sdagd_mlp_config *c) {
    *out = NULL;
    sdagd_status st = check_config(c);
    const sdagd_backend_ops *be = NULL;
    if (st == SDAGD_OK) st = backend_for_device(c->device, &be);
    if (st != SDAGD_OK) return st;
    sdagd_mlp *net = calloc(1, sizeof *net);
    if (!net) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    net->device = c->device;
    net->n_layers = c->n_layers;
    net->hidden = c->hidden;
    net->output = c->output;
    net->loss = c->loss;
    net->leaky_slope = c->leaky_slope;
    net->sizes = malloc((size_t)(c->n_layers + 1) * sizeof(int));
    net->w_off = malloc((size_t)c->n_layers * sizeof(size_t));
    net->b_off = malloc((size_t)c->n_layers * sizeof(size_t));
    if (!net->sizes || !net->w_off || !net->b_off) {
        sdagd_mlp_free(net);
        return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    }
    memcpy(net->sizes, c->sizes, (size_t)(c->n_layers + 1) * sizeof(int));
    size_t p = 0;
    for (int l = 0; l < c->n_layers; l++) {
        size_t n_in = (size_t)c->sizes[l], n_out = (size_t)c->sizes[l + 1];
        net->w_off[l] = p;
        p += n_in * n_out;
        net->b_off[l] = p;
        p += n_out;
        if (c->sizes[l + 1] > net->max_width) net->max_width = c->sizes[l + 1];
        if (n_in * n_out > net->max_layer) net->max_layer = n_in * n_out;
        if (l + 1 < c->n_layers) net->hidden_units += n_out;
    }
    net->n_params = p;
    if ((st = be->context_create(&net->ctx)) != SDAGD_OK) {
        sdagd_mlp_free(net);
        return st;
    }
    net->be = be;
    int32_t act = c->hidden;
    float slope = c->leaky_slope;
    uint8_t one = 1;
    int64_t zeros[2] = {0, 0};
#define ALLOC(field, bytes) \
    if (st == SDAGD_OK) st = mlp_alloc_on(net, (void **)&net->field, bytes)
    ALLOC(params, p * sizeof(float));
    ALLOC(act, sizeof act);
    ALLOC(slope, sizeof slope);
    ALLOC(active, sizeof one);
    ALLOC(counters, sizeof zeros);
    ALLOC(loss_slot, sizeof(double));
    ALLOC(error_slot, sizeof(int64_t));
    ALLOC(segments, 2 * (size_t)c->n_layers * sizeof(double));
    ALLOC(offsets, (2 * (size_t)c->n_layers + 1) * sizeof(size_t));
#undef ALLOC
    size_t *offsets = malloc((2 * (size_t)c->n_layers + 1) * sizeof(size_t));
    if (!offsets && st == SDAGD_OK) st = sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    if (st == SDAGD_OK) {
        for (int l = 0; l < c->n_layers; l++) {
            offsets[l] = net->w_off[l];
            offsets[c->n_layers + l] = net->b_off[l];
        }
        offsets[2 * c->n_layers] = p;
        st = be->upload(net->ctx, net->offsets, offsets, (2 * (size_t)c->n_layers + 1) * sizeof(size_t));
    }
    free(offsets);
    if (st == SDAGD_OK) st = be->zero(net->ctx, net->params, p * sizeof(float));
    if (st == SDAGD_OK) st = be->upload(net->ctx, net->act, &act, sizeof act);
    if (st == SDAGD_OK) st = be->upload(net->ctx, net->slope, &slope, sizeof slope);
    if (st == SDAGD_OK) st = be->upload(net->ctx, net->active, &one, sizeof one);
    if (st == SDAGD_OK) st = be->upload(net->ctx, net->counters, zeros, sizeof zeros);
    if (st == SDAGD_OK) st = workspace_reserve(net, &net->ws, 1, c->batch_capacity > 0 ? c->batch_capacity : 100, 0);
    if (st != SDAGD_OK) {
        sdagd_mlp_free(net);
        return st == SDAGD_ERR_NOMEM ? sdagd_fail(st, "out of memory allocating a network of this size") : st;
    }
    *out = net;
    return SDAGD_OK;
}

size_t sdagd_mlp_num_params(const sdagd_mlp *net) { return net->n_params; }
size_t sdagd_mlp_weight_offset(const sdagd_mlp *net, int layer) { return net->w_off[layer]; }
size_t sdagd_mlp_bias_offset(const sdagd_mlp *net, int layer) { return net->b_off[layer]; }

sdagd_status sdagd_mlp_init_params(sdagd_mlp *net, int init, uint64_t seed) {
    if (init != SDAGD_INIT_XAVIER_UNIFORM && init != SDAGD_INIT_HE_NORMAL)
        return sdagd_fail(SDAGD_ERR_ARG, "unknown initialisation code %d", init);
    float *host = malloc(net->n_params * sizeof(float));
    if (!host) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    rng_state rng;
    rng_seed(&rng, seed, 0);
    for (int l = 0; l < net->n_layers; l++) {
        int n_in = net->sizes[l], n_out = net->sizes[l + 1];
        float *W = host + net->w_off[l];
        size_t count = (size_t)n_in * (size_t)n_out;
        if (init == SDAGD_INIT_XAVIER_UNIFORM) { /* Glorot & Bengio 2010, eq. 16 */
            double r = sqrt(6.0 / (n_in + n_out));
            for (size_t i = 0; i < count; i++) W[i] = (float)(r * (2.0 * rng_uniform(&rng) - 1.0));
        } else { /* He et al. 2015: N(0, 2 / n_in) */
            double std = sqrt(2.0 / n_in);
            for (size_t i = 0; i < count; i++) W[i] = (float)(std * rng_normal(&rng));
        }
        memset(host + net->b_off[l], 0, (size_t)n_out * sizeof(float));
    }
    sdagd_status st = sdagd_mlp_set_params(net, host);
    free(host);
    return st;
}

sdagd_status sdagd_mlp_get_params(const sdagd_mlp *net, float *dst) {
    return net->be->download(net->ctx, dst, net->params, net->n_params * sizeof(float));
}

sdagd_status sdagd_mlp_set_params(sdagd_mlp *net, const float *src) {
    return net->be->upload(net->ctx, net->params, src, net->n_params * sizeof(float));
}

sdagd_status mlp_check_labels(const sdagd_mlp *net, const int32_t *labels, int64_t n) {
    int n_out = net->sizes[net->n_layers];
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= n_out)
            return sdagd_fail(SDAGD_ERR_ARG, "label %d at row %lld is outside [0, %d)", labels[i], (long long)i, n_out);
    return SDAGD_OK;
}

/* ---- the algorithm -------------------------------------------------------------------- */

sdagd_status mlp_forward_group(const sdagd_mlp *net, const group_view *g, int B, const float *in, size_t in_stride,
                               slab params, int want_sq, int64_t *saturated, uint8_t *ever_active) {
    sdagd_status st = SDAGD_OK;
    size_t unit = 0; /* first unit of layer l among the hidden units */
    for (int l = 0; l < net->n_layers && st == SDAGD_OK; l++) {
        int hidden = l + 1 < net->n_layers;
        forward_args a = {
            .g = g,
            .layer = l,
            .B = B,
            .in = l == 0 ? in : g->out + g->out_off[l - 1],
            .in_stride = l == 0 ? in_stride : g->out_stride,
            .params = params,
            .want_sq = want_sq && hidden,
            .saturated = hidden ? saturated : NULL,
            .ever_active = hidden ? ever_active : NULL,
            .active_offset = unit,
            .active_stride = net->hidden_units + 1, /* + 1: never zero-sized */
        };
        st = net->be->forward(net->ctx, &a);
        unit += (size_t)net->sizes[l + 1];
    }
    return st;
}

/* From the output to the first layer (docs/algorithms.md 3, 4), each layer in one backend call:
 *   dW_l = (1/B) delta_l^T h_{l-1},              db_l = mean_rows delta_l
 *   hW_l = (1/B) s_l^T (h_{l-1} o h_{l-1}),      hb_l = mean_rows s_l
 *   delta_{l-1} = f'(a_{l-1}) * (delta_l W_l),   s_{l-1} = f'(a_{l-1})^2 * (s_l (W_l o W_l)) */
sdagd_status mlp_backward_group(const sdagd_mlp *net, const group_view *g, int B, slab params, slab grad, slab hess,
                                double *segments) {
    sdagd_status st = SDAGD_OK;
    int cur = 0;
    for (int l = net->n_layers - 1; l >= 0 && st == SDAGD_OK; l--) {
        backward_args a = {g, l, B, cur, params, grad, hess, segments};
        st = net->be->backward(net->ctx, &a);
        cur = 1 - cur;
    }
    return st;
}

/* ---- one network, host buffers ------------------------------------------------------- */

/* Puts B host rows (and labels) into the network's work buffers: x (and x o x). */
static sdagd_status load_batch(sdagd_mlp *net, const group_view *g, const float *X, const int32_t *labels, int B, int want_sq) {
    const sdagd_backend_ops *be = net->be;
    sdagd_status st = be->upload(net->ctx, g->x, X, (size_t)B * (size_t)net->sizes[0] * sizeof(float));
    if (st == SDAGD_OK && labels) st = be->upload(net->ctx, g->y, labels, (size_t)B * sizeof(int32_t));
    if (st == SDAGD_OK && want_sq) {
        gather_args a = {g, B, g->x, NULL, NULL, 0, net->counters, 1};
        st = be->gather(net->ctx, &a);
    }
    return st;
}

sdagd_status sdagd_mlp_forward(sdagd_mlp *net, const float *X, int B, float *Y) {
    if (B < 1) return sdagd_fail(SDAGD_ERR_ARG, "a batch needs at least one row, got %d", B);
    int n0 = net->sizes[0], n_out = net->sizes[net->n_layers];
    group_view g;
    own_view(net, &g);
    slab params = {net->params, 0};
    sdagd_status st = SDAGD_OK;
    for (int64_t start = 0; start < B && st == SDAGD_OK; start += net->ws.capacity) {
        int rows = (int)(B - start < net->ws.capacity ? B - start : net->ws.capacity);
        const float *in = X + (size_t)start * n0;
        if (!net->be->host_memory) {
            st = net->be->upload(net->ctx, g.x, in, (size_t)rows * n0 * sizeof(float));
            in = g.x;
        }
        if (st == SDAGD_OK) st = mlp_forward_group(net, &g, rows, in, 0, params, 0, NULL, NULL);
        if (st == SDAGD_OK)
            st = net->be->download(net->ctx, Y + (size_t)start * n_out, g.out + g.out_off[net->n_layers - 1],
                                   (size_t)rows * n_out * sizeof(float));
    }
    return st;
}

/* Forward pass and loss of B <= capacity rows in the work buffers; the sum of the loss and
 * the misclassified count come back to the host. */
static sdagd_status batch_loss(sdagd_mlp *net, const group_view *g, int B, const float *in, int want_delta, int want_s,
                               double *loss_sum, int64_t *errors) {
    slab params = {net->params, 0};
    sdagd_status st = mlp_forward_group(net, g, B, in, 0, params, want_s, NULL, NULL);
    loss_args a = {g, B, net->loss_slot, net->error_slot, 1, net->counters + 1, want_delta, want_s};
    if (st == SDAGD_OK) st = net->be->loss(net->ctx, &a);
    if (st == SDAGD_OK) st = net->be->download(net->ctx, loss_sum, net->loss_slot, sizeof *loss_sum);
    if (st == SDAGD_OK) st = net->be->download(net->ctx, errors, net->error_slot, sizeof *errors);
    return st;
}

sdagd_status sdagd_mlp_loss_grad(sdagd_mlp *net, const float *X, const int32_t *labels, int B, double *loss, int64_t *errors,
                           float *grad, float *hess) {
    if (B < 1) return sdagd_fail(SDAGD_ERR_ARG, "a batch needs at least one row, got %d", B);
    sdagd_status st = mlp_check_labels(net, labels, B);
    size_t bytes = net->n_params * sizeof(float);
    int backward = grad || hess; /* the Hessian comes out of the same sweep as the gradient */
    if (st == SDAGD_OK) st = workspace_reserve(net, &net->ws, 1, B, hess != NULL); /* the whole batch at once */
    if (st == SDAGD_OK && backward && !net->grad) st = mlp_alloc_on(net, (void **)&net->grad, bytes);
    if (st == SDAGD_OK && hess && !net->hess) st = mlp_alloc_on(net, (void **)&net->hess, bytes);
    if (st != SDAGD_OK) return st;
    group_view g;
    own_view(net, &g);
    double sum;
    st = load_batch(net, &g, X, labels, B, hess != NULL);
    if (st == SDAGD_OK) st = batch_loss(net, &g, B, g.x, backward, hess != NULL, &sum, errors);
    if (st == SDAGD_OK && backward) {
        slab params = {net->params, 0}, g_slab = {net->grad, 0}, h_slab = {hess ? net->hess : NULL, 0};
        st = mlp_backward_group(net, &g, B, params, g_slab, h_slab, net->segments);
    }
    if (st == SDAGD_OK && grad) st = net->be->download(net->ctx, grad, net->grad, bytes);
    if (st == SDAGD_OK && hess) st = net->be->download(net->ctx, hess, net->hess, bytes);
    if (st == SDAGD_OK) *loss = sum / B;
    return st;
}

/* Rows per chunk of an evaluation: the work buffers as they are (they hold at least a batch
 * of training), grown to 100 rows at most on the CPU. Growing them to the whole evaluation set
 * would not pay there: batch-100 products already run at the BLAS's speed, and the buffers of
 * a training network (with the Hessian's) would grow tenfold, for the rest of its life. On a
 * GPU a chunk costs a synchronisation, and memory is plentiful: 1,000 rows. */
static int evaluation_rows(const sdagd_mlp *net, int64_t N) {
    int64_t least = net->be->host_memory ? 100 : 1000;
    int64_t rows = net->ws.capacity > least ? net->ws.capacity : least;
    return (int)(N < rows ? N : rows);
}

sdagd_status sdagd_mlp_evaluate(sdagd_mlp *net, const float *X, const int32_t *labels, int64_t N, double *mean_loss,
                          int64_t *errors) {
    if (N < 1) return sdagd_fail(SDAGD_ERR_ARG, "evaluation needs at least one row");
    sdagd_status st = mlp_check_labels(net, labels, N);
    if (st == SDAGD_OK) st = workspace_reserve(net, &net->ws, 1, evaluation_rows(net, N), 0);
    if (st != SDAGD_OK) return st;
    group_view g;
    own_view(net, &g);
    double total = 0.0;
    int64_t wrong = 0;
    int n0 = net->sizes[0];
    for (int64_t start = 0; start < N && st == SDAGD_OK; start += net->ws.capacity) {
        int rows = (int)(N - start < net->ws.capacity ? N - start : net->ws.capacity);
        const float *in = X + (size_t)start * n0;
        st = net->be->upload(net->ctx, g.y, labels + start, (size_t)rows * sizeof(int32_t));
        if (st == SDAGD_OK && !net->be->host_memory) {
            st = net->be->upload(net->ctx, g.x, in, (size_t)rows * n0 * sizeof(float));
            in = g.x;
        }
        double sum;
        int64_t e;
        if (st == SDAGD_OK) st = batch_loss(net, &g, rows, in, 0, 0, &sum, &e);
        total += sum;
        wrong += e;
    }
    *mean_loss = total / (double)N;
    *errors = wrong;
    return st;
}

sdagd_status sdagd_mlp_evaluate_dataset(sdagd_mlp *net, const sdagd_dataset *ds, double *mean_loss, int64_t *errors) {
    if (dataset_device(ds) != net->device || dataset_width(ds) != net->sizes[0])
        return sdagd_fail(SDAGD_ERR_ARG, "this data set was made for a network of another input size or device");
    if (dataset_max_label(ds) >= net->sizes[net->n_layers])
        return sdagd_fail(SDAGD_ERR_ARG, "this data set holds label %d; a network with %d outputs takes labels in [0, %d)",
                          dataset_max_label(ds), net->sizes[net->n_layers], net->sizes[net->n_layers]);
    int64_t N = sdagd_dataset_rows(ds);
    sdagd_status st = workspace_reserve(net, &net->ws, 1, evaluation_rows(net, N), 0);
    if (st != SDAGD_OK) return st;
    group_view g;
    own_view(net, &g);
    double total = 0.0;
    int64_t wrong = 0;
    for (int64_t start = 0; start < N && st == SDAGD_OK; start += net->ws.capacity) {
        int rows = (int)(N - start < net->ws.capacity ? N - start : net->ws.capacity);
        gather_args a = {&g, rows, dataset_inputs(ds), dataset_labels(ds), NULL, 0, net->counters, 0};
        st = net->be->upload(net->ctx, net->counters, &start, sizeof start);
        if (st == SDAGD_OK) st = net->be->gather(net->ctx, &a);
        double sum = 0.0;
        int64_t e = 0;
        if (st == SDAGD_OK) st = batch_loss(net, &g, rows, g.x, 0, 0, &sum, &e);
        total += sum;
        wrong += e;
    }
    int64_t zero = 0; /* back to 0 also after a failure: the in-place squaring gather reads it */
    sdagd_status reset = net->be->upload(net->ctx, net->counters, &zero, sizeof zero);
    if (st == SDAGD_OK) st = reset;
    *mean_loss = total / (double)N;
    *errors = wrong;
    return st;
}
