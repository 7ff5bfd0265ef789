/*
 * The CPU backend: the operations of backend.h on host memory, with OpenBLAS for the
 * products and the per-element formulas of kernels.h for everything else.
 *
 * How the work is spread over the cores: every operation is cut into tasks for the thread
 * pool (pool.h). With one network, a layer's product is cut into column (or row) blocks, one
 * per thread, each a single-threaded GEMM followed at once by its elementwise epilogue (bias,
 * activation, squares, diagnostics) while the block is still in cache; with several networks
 * each task is one network. Reductions are summed in a fixed order (per row or per fixed
 * chunk, then in index order), so results do not depend on the number of threads.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../backend.h"
#include "../backend.h"
#include "../error.h"
#include "../kernels.h"
#include "blas.h"
#include "loops.h"
#include "pool.h"

enum { CHUNK = 16384 }; /* elements per task of the elementwise passes over parameter slabs */

/* Network k's part of a per-network buffer, or NULL for a buffer that does not exist. */
static float *part(float *p, size_t stride, int k) { return p ? p + (size_t)k * stride : NULL; }
static const float *cpart(const float *p, size_t stride, int k) { return p ? p + (size_t)k * stride : NULL; }
static void add_count(int64_t *counter, int64_t n) { __atomic_fetch_add(counter, n, __ATOMIC_RELAXED); }

/* ---- memory --------------------------------------------------------------------------- */

static sdagd_status cpu_context_create(void **ctx) {
    blas_single_threaded();
    *ctx = NULL;
    return SDAGD_OK;
}

static void cpu_context_free(void *ctx) { (void)ctx; }

static sdagd_status cpu_alloc(void *ctx, void **p, size_t bytes) {
    (void)ctx;
    /* 64-byte lines: whole vectors, and no line shared by two threads' outputs */
    size_t rounded = (bytes + 63) / 64 * 64;
    *p = rounded ? aligned_alloc(64, rounded) : NULL;
    if (rounded && !*p) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory (%zu bytes)", bytes);
    return SDAGD_OK;
}

static void cpu_dealloc(void *ctx, void *p) {
    (void)ctx;
    free(p);
}

static sdagd_status cpu_copy(void *ctx, void *dst, const void *src, size_t bytes) {
    (void)ctx;
    if (bytes && dst != src) memmove(dst, src, bytes);
    return SDAGD_OK;
}

static sdagd_status cpu_zero(void *ctx, void *dst, size_t bytes) {
    (void)ctx;
    if (bytes) memset(dst, 0, bytes);
    return SDAGD_OK;
}

/* ---- task layout ---------------------------------------------------------------------- */

/* Blocks a product of one network is cut into: from its shape alone, about 176 columns
 * each (the paper's 700-unit layers in quarters), so that the same products are computed,
 * and round the same, whatever the number of threads or of networks trained together.
 * Quarters rather than halves so that the pool can balance a core that another process
 * slows down (a thread takes the next block when it is free); a single-threaded GEMM of a
 * quarter runs within about 2 % of the speed of a half at these shapes (BENCHMARKS.md). */
static int blocks_for_extent(int extent) {
    int blocks = (extent + 88) / 176;
    return blocks < 1 ? 1 : blocks > 16 ? 16 : blocks;
}

/* Blocks of an elementwise or copying pass (no rounding depends on them): enough for the
 * threads. */
static int blocks_per_net(int K, int extent) {
    int threads = pool_threads(), blocks = (threads + K - 1) / K;
    int most = extent / 32 > 1 ? extent / 32 : 1;
    return blocks < 1 ? 1 : blocks > most ? most : blocks;
}

/* Block j of S over [0, n), boundaries on multiples of 16 floats (one cache line). */
static void block_range(int n, int S, int j, int *lo, int *hi) {
    *lo = j == 0 ? 0 : (int)((int64_t)n * j / S) / 16 * 16;
    *hi = j == S - 1 ? n : (int)((int64_t)n * (j + 1) / S) / 16 * 16;
}

/* ---- gather --------------------------------------------------------------------------- */

typedef struct {
    const gather_args *a;
    int S;
} gather_job;

static void gather_task(void *p, int task) {
    const gather_job *job = p;
    const gather_args *a = job->a;
    const group_view *g = a->g;
    int k = task / job->S, r0, r1, n0 = g->sizes[0];
    block_range(a->B, job->S, task % job->S, &r0, &r1);
    if (!g->active[k]) return;
    float *x = part(g->x, g->x_stride, k), *x_sq = part(g->x_sq, g->x_stride, k);
    int32_t *y = g->y + (size_t)k * g->y_stride;
    const int32_t *perm = a->perm ? a->perm + (size_t)k * a->perm_stride : NULL;
    int64_t start = *a->start;
    for (int r = r0; r < r1; r++) {
        int64_t src = perm ? perm[start + r] : start + r;
        float *row = x + (size_t)r * n0;
        const float *from = a->X + (size_t)src * n0;
        if (from != row) memcpy(row, from, (size_t)n0 * sizeof(float));
        if (a->labels) y[r] = a->labels[src];
        if (a->want_sq)
            for (int c = 0; c < n0; c++) x_sq[(size_t)r * n0 + c] = row[c] * row[c];
    }
}

static sdagd_status cpu_gather(void *ctx, const gather_args *a) {
    (void)ctx;
    gather_job job = {a, blocks_per_net(a->g->K, a->B)};
    pool_run(a->g->K * job.S, gather_task, &job);
    return SDAGD_OK;
}

/* ---- forward -------------------------------------------------------------------------- */

typedef struct {
    const forward_args *a;
    int S;
} forward_job;

static void forward_task(void *p, int task) {
    const forward_job *job = p;
    const forward_args *a = job->a;
    const group_view *g = a->g;
    int k = task / job->S, l = a->layer, B = a->B, c0, c1;
    if (!g->active[k]) return;
    int n_in = g->sizes[l], n_out = g->sizes[l + 1], output = l == g->n_layers - 1;
    block_range(n_out, job->S, task % job->S, &c0, &c1);
    const float *in = a->in + (size_t)k * a->in_stride;
    const float *W = a->params.p + (size_t)k * a->params.stride + g->w_off[l];
    const float *b = a->params.p + (size_t)k * a->params.stride + g->b_off[l];
    float *out = g->out + (size_t)k * g->out_stride + g->out_off[l];
    /* a (B, block) = in (B, n_in) W[block]^T */
    blas_sgemm(0, 1, B, c1 - c0, n_in, 1.0f, in, n_in, W + (size_t)c0 * n_in, n_in, 0.0f, out + c0, n_out);
    if (output) {
        float *pre = part(g->pre, g->pre_stride, k);
        for (int r = 0; r < B; r++) {
            float *row = out + (size_t)r * n_out;
            for (int c = c0; c < c1; c++) row[c] += b[c];
            if (g->loss == SDAGD_LOSS_CE) memcpy(pre + (size_t)r * n_out + c0, row + c0, (size_t)(c1 - c0) * sizeof(float));
            if (g->output == SDAGD_ACT_SOFTMAX) /* the whole row: the output layer is one block */
                softmax_row(row, n_out);
            else
                for (int c = c0; c < c1; c++) row[c] = activation_value(g->output, 0.0f, row[c]);
        }
        return;
    }
    int act = g->act[k];
    float slope = g->slope[k];
    float *sq = a->want_sq ? g->out_sq + (size_t)k * g->out_stride + g->out_off[l] : NULL;
    uint8_t *ever = a->ever_active && activation_rectifies(act)
                        ? a->ever_active + (size_t)k * a->active_stride + a->active_offset + c0
                        : NULL;
    int64_t saturated = 0;
    for (int r = 0; r < B; r++) {
        size_t at = (size_t)r * n_out + c0;
        saturated += loops()->hidden_epilogue(act, slope, out + at, b + c0, c1 - c0, sq ? sq + at : NULL, ever);
    }
    if (a->saturated && saturated) add_count(&a->saturated[(size_t)k * g->n_layers + l], saturated);
}

static sdagd_status cpu_forward(void *ctx, const forward_args *a) {
    (void)ctx;
    const group_view *g = a->g;
    int output = a->layer == g->n_layers - 1;
    forward_job job = {a, output && g->output == SDAGD_ACT_SOFTMAX ? 1 : blocks_for_extent(g->sizes[a->layer + 1])};
    pool_run(g->K * job.S, forward_task, &job);
    return SDAGD_OK;
}

/* ---- loss and output delta ------------------------------------------------------------- */

static void loss_task(void *p, int k) {
    const loss_args *a = p;
    const group_view *g = a->g;
    if (!g->active[k]) return;
    int n = g->sizes[g->n_layers], L = g->n_layers;
    const float *Y = g->out + (size_t)k * g->out_stride + g->out_off[L - 1];
    const float *pre = cpart(g->pre, g->pre_stride, k);
    const int32_t *labels = g->y + (size_t)k * g->y_stride;
    float *delta = part(g->delta[0], g->d_stride, k), *s = part(g->s[0], g->d_stride, k);
    double total = 0.0;
    int64_t wrong = 0;
    for (int r = 0; r < a->B; r++) {
        const float *y = Y + (size_t)r * n;
        int miss;
        total += row_loss(g->loss, y, pre ? pre + (size_t)r * n : NULL, n, labels[r], &miss);
        wrong += miss;
        if (!a->want_delta) continue;
        for (int j = 0; j < n; j++) {
            float d, c;
            output_delta_value(g->output, g->loss, y[j], j == labels[r] ? 1.0f : 0.0f, &d, &c);
            delta[(size_t)r * n + j] = d;
            if (a->want_s) s[(size_t)r * n + j] = c;
        }
    }
    size_t at = (size_t)k * a->window + (size_t)*a->slot;
    a->loss[at] = total;
    a->errors[at] = wrong;
}

static sdagd_status cpu_loss(void *ctx, const loss_args *a) {
    (void)ctx;
    pool_run(a->g->K, loss_task, (void *)a);
    return SDAGD_OK;
}

/* ---- backward ------------------------------------------------------------------------- */

typedef struct {
    const backward_args *a;
    int S;          /* blocks per network and kind */
    int kinds;      /* 1: weight rows only (first layer); 2: also the layer below's columns */
} backward_job;

/* Task (k, kind, j). Kind 0, rows [r0, r1) of the layer's outputs:
 *   dW = (1/B) delta^T in,  db = mean_rows delta,  hW = (1/B) s^T (in o in),  hb = mean_rows s.
 * Kind 1, columns [c0, c1) of the layer below:
 *   delta_below = f'(in) * (delta W),  s_below = f'(in)^2 * (s (W o W)). */
static void backward_task(void *p, int task) {
    const backward_job *job = p;
    const backward_args *a = job->a;
    const group_view *g = a->g;
    int per_net = job->S * job->kinds;
    int k = task / per_net, kind = task % per_net / job->S, j = task % job->S;
    if (!g->active[k]) return;
    int l = a->layer, B = a->B, n_in = g->sizes[l], n_out = g->sizes[l + 1];
    float scale = 1.0f / (float)B;
    int cur = a->cur, curvature = a->hess.p != NULL;
    const float *delta = part(g->delta[cur], g->d_stride, k), *s = curvature ? part(g->s[cur], g->d_stride, k) : NULL;
    const float *in = l == 0 ? part(g->x, g->x_stride, k) : part(g->out, g->out_stride, k) + g->out_off[l - 1];
    const float *in_sq = !curvature ? NULL
                         : l == 0   ? part(g->x_sq, g->x_stride, k)
                                    : part(g->out_sq, g->out_stride, k) + g->out_off[l - 1];
    const float *W = a->params.p + (size_t)k * a->params.stride + g->w_off[l];
    if (kind == 0) {
        int r0, r1;
        block_range(n_out, job->S, j, &r0, &r1);
        float *dW = a->grad.p + (size_t)k * a->grad.stride + g->w_off[l];
        float *db = a->grad.p + (size_t)k * a->grad.stride + g->b_off[l];
        blas_sgemm(1, 0, r1 - r0, n_in, B, scale, delta + r0, n_out, in, n_in, 0.0f, dW + (size_t)r0 * n_in, n_in);
        loops()->column_sums(db, delta, B, n_out, r0, r1, scale);
        double *row_sq = g->partials + (size_t)k * g->partials_stride;
        for (int r = r0; r < r1; r++) row_sq[r] = loops()->row_sum_of_squares(dW + (size_t)r * n_in, n_in);
        if (curvature) {
            float *hW = a->hess.p + (size_t)k * a->hess.stride + g->w_off[l];
            float *hb = a->hess.p + (size_t)k * a->hess.stride + g->b_off[l];
            blas_sgemm(1, 0, r1 - r0, n_in, B, scale, s + r0, n_out, in_sq, n_in, 0.0f, hW + (size_t)r0 * n_in, n_in);
            loops()->column_sums(hb, s, B, n_out, r0, r1, scale);
        }
        return;
    }
    int c0, c1, act = g->act[k];
    float slope = g->slope[k];
    block_range(n_in, job->S, j, &c0, &c1);
    int other = 1 - cur;
    float *delta_below = part(g->delta[other], g->d_stride, k);
    float *s_below = curvature ? part(g->s[other], g->d_stride, k) : NULL;
    blas_sgemm(0, 0, B, c1 - c0, n_out, 1.0f, delta, n_out, W + c0, n_in, 0.0f, delta_below + c0, n_in);
    if (curvature) {
        float *w_sq = g->w_sq + (size_t)k * g->w_sq_stride;
        loops()->square_block(w_sq, W, n_out, n_in, c0, c1);
        blas_sgemm(0, 0, B, c1 - c0, n_out, 1.0f, s, n_out, w_sq + c0, n_in, 0.0f, s_below + c0, n_in);
    }
    for (int r = 0; r < B; r++) {
        size_t at = (size_t)r * n_in + c0;
        loops()->activation_backward(act, slope, in + at, delta_below + at, s_below ? s_below + at : NULL, c1 - c0);
    }
}

static sdagd_status cpu_backward(void *ctx, const backward_args *a) {
    (void)ctx;
    const group_view *g = a->g;
    int l = a->layer, n_in = g->sizes[l], n_out = g->sizes[l + 1];
    int S = blocks_for_extent(n_out < n_in ? n_out : n_in);
    backward_job job = {a, S, l > 0 ? 2 : 1};
    pool_run(g->K * S * job.kinds, backward_task, &job);
    /* The segments' sums of squares: dW row by row, then db, in index order. */
    for (int k = 0; k < g->K; k++) {
        if (!g->active[k]) continue;
        const double *row_sq = g->partials + (size_t)k * g->partials_stride;
        double w = 0.0;
        for (int r = 0; r < n_out; r++) w += row_sq[r];
        const float *db = a->grad.p + (size_t)k * a->grad.stride + g->b_off[l];
        a->segments[(size_t)k * 2 * g->n_layers + 2 * l] = w;
        a->segments[(size_t)k * 2 * g->n_layers + 2 * l + 1] = loops()->row_sum_of_squares(db, n_out);
    }
    return SDAGD_OK;
}

/* ---- the optimizer -------------------------------------------------------------------- */

static sdagd_status cpu_prepare(void *ctx, const prepare_args *a) {
    (void)ctx;
    prepare_job job = prepare_job_of(a);
    for (int k = 0; k < a->g->K; k++) prepare_network(job, k);
    return SDAGD_OK;
}

typedef struct {
    const update_args *a;
    size_t chunks_per_net;      /* sum over layers of ceil(layer size / CHUNK) */
    int pass;                   /* 0: squared SDAGD step lengths (max_step); 1: the update */
} update_job;

/* Chunk `chunk` of network k's slab: its layer and range. */
static int chunk_range(const group_view *g, size_t chunk, size_t *lo, size_t *hi) {
    for (int l = 0; l < g->n_layers; l++) {
        size_t start = g->w_off[l], end = l + 1 < g->n_layers ? g->w_off[l + 1] : g->P;
        size_t n = (end - start + CHUNK - 1) / CHUNK;
        if (chunk < n) {
            *lo = start + chunk * CHUNK;
            *hi = *lo + CHUNK < end ? *lo + CHUNK : end;
            return l;
        }
        chunk -= n;
    }
    return -1;
}

static void update_task(void *p, int task) {
    const update_job *job = p;
    const update_args *a = job->a;
    const group_view *g = a->g;
    int k = (int)(task / job->chunks_per_net);
    if (!g->active[k]) return;
    size_t lo = 0, hi = 0;
    int l = chunk_range(g, (size_t)task % job->chunks_per_net, &lo, &hi);
    const optim_hyper *hp = &a->hyper[k];
    const step_coef *c = &a->coef[k];
    int L = g->n_layers;
    float mu = a->mu[(size_t)k * L + l];
    float *theta = part(a->params.p, a->params.stride, k), *gr = part(a->grad.p, a->grad.stride, k);
    float *fresh = part(a->hess.p, a->hess.stride, k);
    float *s0 = part(a->state0.p, a->state0.stride, k), *s1 = part(a->state1.p, a->state1.stride, k);
    if (job->pass == 0) {
        if (hp->kind != SDAGD_OPT_SDAGD || !(hp->max_step > 0.0)) return;
        g->partials[(size_t)k * g->partials_stride + (size_t)task % job->chunks_per_net] =
            loops()->sdagd_step_sq_range(hp, c, gr, fresh, s0, mu, lo, hi);
        return;
    }
    int capped = hp->kind == SDAGD_OPT_SDAGD && hp->max_step > 0.0;
    float scale = capped ? max_step_scale(hp, a->step_sq[(size_t)k * L + (hp->norm == SDAGD_NORM_GLOBAL ? 0 : l)]) : 1.0f;
    int64_t phase1 = loops()->update_range(*hp, *c, theta, gr, fresh, s0, s1, mu, scale, lo, hi);
    if (phase1) add_count(&a->stats[k].phase1, phase1);
}

static sdagd_status cpu_update(void *ctx, const update_args *a) {
    (void)ctx;
    const group_view *g = a->g;
    update_job job = {a, 0, 0};
    for (int l = 0; l < g->n_layers; l++) {
        size_t start = g->w_off[l], end = l + 1 < g->n_layers ? g->w_off[l + 1] : g->P;
        job.chunks_per_net += (end - start + CHUNK - 1) / CHUNK;
    }
    int capped = 0;
    for (int k = 0; k < g->K; k++) capped |= g->active[k] && a->hyper[k].kind == SDAGD_OPT_SDAGD && a->hyper[k].max_step > 0;
    if (capped) { /* the step length of each norm group, before any parameter moves */
        pool_run((int)(g->K * job.chunks_per_net), update_task, &job);
        for (int k = 0; k < g->K; k++) {
            const double *part = g->partials + (size_t)k * g->partials_stride;
            double *out = a->step_sq + (size_t)k * g->n_layers;
            for (int l = 0; l < g->n_layers; l++) out[l] = 0.0;
            for (size_t chunk = 0; chunk < job.chunks_per_net; chunk++) {
                size_t lo, hi;
                int l = chunk_range(g, chunk, &lo, &hi);
                out[a->hyper[k].norm == SDAGD_NORM_GLOBAL ? 0 : l] += part[chunk];
            }
        }
    }
    job.pass = 1;
    pool_run((int)(g->K * job.chunks_per_net), update_task, &job);
    return SDAGD_OK;
}

static sdagd_status cpu_advance(void *ctx, const advance_args *a) {
    (void)ctx;
    *a->start += a->B;
    *a->slot = (*a->slot + 1) % a->window;
    for (int k = 0; k < a->g->K; k++) a->step[k] += a->g->active[k] != 0;
    return SDAGD_OK;
}

/* ---- checks --------------------------------------------------------------------------- */

typedef struct {
    const float *x;
    size_t n, stride, chunks;
    uint8_t *bad; /* [K] */
} finite_job;

static void finite_task(void *p, int task) {
    const finite_job *job = p;
    size_t k = (size_t)task / job->chunks, chunk = (size_t)task % job->chunks;
    size_t lo = chunk * CHUNK, hi = lo + CHUNK < job->n ? lo + CHUNK : job->n;
    if (!loops()->range_finite(job->x + k * job->stride, lo, hi)) __atomic_store_n(&job->bad[k], 1, __ATOMIC_RELAXED);
}

static sdagd_status cpu_all_finite(void *ctx, const float *x, size_t n, size_t stride, int K, uint8_t *ok_host) {
    (void)ctx;
    uint8_t bad[256];
    for (int k0 = 0; k0 < K; k0 += 256) {
        int count = K - k0 < 256 ? K - k0 : 256;
        memset(bad, 0, sizeof bad);
        finite_job job = {x + (size_t)k0 * stride, n, stride, (n + CHUNK - 1) / CHUNK, bad};
        pool_run((int)(count * job.chunks), finite_task, &job);
        for (int k = 0; k < count; k++) ok_host[k0 + k] = !bad[k];
    }
    return SDAGD_OK;
}

static const sdagd_backend_ops cpu_ops = {
    .host_memory = 1,
    .loss_window = 1,
    .context_create = cpu_context_create,
    .context_free = cpu_context_free,
    .alloc = cpu_alloc,
    .dealloc = cpu_dealloc,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .zero = cpu_zero,
    .gather = cpu_gather,
    .forward = cpu_forward,
    .loss = cpu_loss,
    .backward = cpu_backward,
    .prepare = cpu_prepare,
    .update = cpu_update,
    .advance = cpu_advance,
    .all_finite = cpu_all_finite,
};

const sdagd_backend_ops *cpu_backend(void) { return &cpu_ops; }

int sdagd_set_threads(int n) { return pool_set_threads(n); }
int sdagd_get_threads(void) { return pool_threads(); }
int64_t sdagd_cpu_solo_spans(void) { return pool_solo_spans(); }
const char *sdagd_cpu_loops(const char *wanted) { return wanted ? loops_choose(wanted) : loops()->isa; }
