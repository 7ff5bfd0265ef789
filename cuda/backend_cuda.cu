/*
 * The CUDA backend: the operations of csrc/backend.h on an NVIDIA GPU, built as its own
 * shared library (libsdagd_cuda.so) that the core loads only when a CUDA device is asked for.
 *
 * - Matrix products go through cuBLAS in plain FP32 (CUBLAS_DEFAULT_MATH: no TF32 unless the
 *   user opts in with SDAGD_CUDA_TF32=1). cuBLAS is column-major and the core row-major:
 *   gemm() below swaps the operands (C^T = op(B)^T op(A)^T), so no data is transposed.
 * - K networks of one shape run as strided-batched GEMMs and as one launch of each
 *   elementwise kernel over all K slabs (gridDim.y = network).
 * - Per-element formulas come from csrc/kernels.h, shared with the CPU backend.
 * - Every floating-point reduction is summed in a fixed order (per-block partials, then one
 *   block per network): the same seed gives the same bits on the same GPU. Only integer
 *   counters use atomics.
 * - Nothing in a step talks to the host: the batch offset, the loss slot and the step counts
 *   live in device memory, so one step can be recorded as a CUDA graph and replayed
 *   (SDAGD_CUDA_GRAPHS=0 turns that off, for comparison).
 *
 * Naming: *_kernel is a kernel; the host function of the same stem launches it.
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "kernels.h"

#define EXPORT extern "C" __attribute__((visibility("default")))

#define THREADS 256
static const size_t MAX_BLOCKS_PER_NET = 1024;
static const int MAX_NETS = 65535;
enum { MAX_RECORDED = 16 };
/* cuBLAS's workspace per context: 32 MiB, NVIDIA's recommendation for Hopper (smaller ones
 * restrict the kernels cuBLAS may choose). Grouped sweeps hold one context (stream, handle,
 * workspace) per network: 262 networks take 8.4 GB of the H200's 141. */
static const size_t WORKSPACE_BYTES = (size_t)32 << 20;

static sdagd_status (*fail)(sdagd_status, const char *, ...); /* the core's, from the entry point */

static sdagd_status cuda_ok(cudaError_t err, const char *what) {
    if (err == cudaSuccess) return SDAGD_OK;
    return fail(SDAGD_ERR_DEVICE, "CUDA error in %s: %s", what, cudaGetErrorString(err));
}

static sdagd_status blas_ok(cublasStatus_t st, const char *what) {
    if (st == CUBLAS_STATUS_SUCCESS) return SDAGD_OK;
    return fail(SDAGD_ERR_DEVICE, "cuBLAS error in %s: %s", what, cublasGetStatusString(st));
}

/* After a launch: its configuration error, if any (a kernel's own failure shows at the next
 * synchronisation, which every download is). */
static sdagd_status launched(const char *what) { return cuda_ok(cudaGetLastError(), what); }

/* ---- context and memory --------------------------------------------------------------- */

/* The operations of the step being recorded, kept so that the step can be launched without a
 * graph if the recording fails (see capture_end). The arguments' pointers stay valid until the
 * step ends, which is when the journal is read. */
typedef enum { OP_GATHER, OP_FORWARD, OP_LOSS, OP_BACKWARD, OP_PREPARE, OP_UPDATE, OP_ADVANCE } step_op;
typedef struct {
    step_op op;
    union {
        gather_args gather;
        forward_args forward;
        loss_args loss;
        backward_args backward;
        prepare_args prepare;
        update_args update;
        advance_args advance;
    } a;
} journal_entry;

typedef struct {
    cudaStream_t stream;
    cublasHandle_t blas;
    void *workspace;   /* cuBLAS's own, so that it never allocates while a step is recorded */
    uint8_t *flags;    /* all_finite's per-network results */
    size_t flag_capacity;
    int recording;             /* a step is being captured on `stream` */
    int recording_failed;      /* an operation failed while it was: the rest is only journaled */
    journal_entry *journal;    /* the step's operations so far */
    int journal_len, journal_cap;
} cuda_ctx;

static void cuda_context_free(void *p) {
    cuda_ctx *c = (cuda_ctx *)p;
    if (!c) return;
    if (c->blas) cublasDestroy(c->blas);
    if (c->workspace) cudaFree(c->workspace);
    if (c->flags) cudaFree(c->flags);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c->journal);
    free(c);
}

static sdagd_status device_present(void) {
    /* The runtime says "driver version is insufficient" also when there is no driver at all. */
    void *driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!driver) return fail(SDAGD_ERR_DEVICE, "CUDA cannot be used: no NVIDIA driver is installed here (libcuda.so.1 not found); "
                                       "use device='cpu'");
    dlclose(driver);
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err == cudaErrorInsufficientDriver)
        return fail(SDAGD_ERR_DEVICE, "the NVIDIA driver is older than the CUDA %d.%d runtime sdagd was built with; "
                    "update the driver or rebuild sdagd with an older CUDA toolkit", CUDART_VERSION / 1000,
                    CUDART_VERSION % 1000 / 10);
    if (err == cudaErrorNoDevice || err == cudaErrorInitializationError || err == cudaErrorStubLibrary)
        return fail(SDAGD_ERR_DEVICE, "CUDA cannot be used: the driver found no usable GPU (%s); use device='cpu'",
                    cudaGetErrorString(err));
    if (err != cudaSuccess) return cuda_ok(err, "cudaGetDeviceCount");
    if (count < 1) return fail(SDAGD_ERR_DEVICE, "CUDA cannot be used: the driver found no GPU; use device='cpu'");
    return SDAGD_OK;
}

static sdagd_status cuda_context_create(void **out) {
    *out = NULL;
    sdagd_status st = device_present();
    if (st != SDAGD_OK) return st;
    cuda_ctx *c = (cuda_ctx *)calloc(1, sizeof *c);
    if (!c) return fail(SDAGD_ERR_NOMEM, "out of memory");
    st = cuda_ok(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    if (st == SDAGD_OK) st = blas_ok(cublasCreate(&c->blas), "cublasCreate");
    if (st == SDAGD_OK) st = blas_ok(cublasSetStream(c->blas, c->stream), "cublasSetStream");
    if (st == SDAGD_OK) st = cuda_ok(cudaMalloc(&c->workspace, WORKSPACE_BYTES), "cudaMalloc (cuBLAS workspace)");
    if (st == SDAGD_OK) st = blas_ok(cublasSetWorkspace(c->blas, c->workspace, WORKSPACE_BYTES), "cublasSetWorkspace");
    const char *tf32 = getenv("SDAGD_CUDA_TF32");
    cublasMath_t math = tf32 && strcmp(tf32, "1") == 0 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
    if (st == SDAGD_OK) st = blas_ok(cublasSetMathMode(c->blas, math), "cublasSetMathMode");
    if (st != SDAGD_OK) {
        cuda_context_free(c);
        return st;
    }
    *out = c;
    return SDAGD_OK;
}

static cudaStream_t stream_of(void *ctx) { return ((cuda_ctx *)ctx)->stream; }

static sdagd_status cuda_alloc(void *ctx, void **p, size_t bytes) {
    (void)ctx;
    *p = NULL;
    cudaError_t err = cudaMalloc(p, bytes);
    if (err == cudaErrorMemoryAllocation) {
        cudaGetLastError(); /* clear it: the context stays usable */
        return fail(SDAGD_ERR_NOMEM, "out of GPU memory (%zu bytes)", bytes);
    }
    return cuda_ok(err, "cudaMalloc");
}

static void cuda_dealloc(void *ctx, void *p) {
    (void)ctx;
    if (p) cudaFree(p);
}

static sdagd_status cuda_sync(void *ctx) {
    return cuda_ok(cudaStreamSynchronize(stream_of(ctx)), "a kernel or copy on the GPU");
}

/* Host buffers may be freed as soon as these return, so they wait for the copy. */
static sdagd_status cuda_upload(void *ctx, void *dst, const void *src, size_t bytes) {
    sdagd_status st = cuda_ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_of(ctx)), "upload");
    return st == SDAGD_OK ? cuda_sync(ctx) : st;
}

static sdagd_status cuda_download(void *ctx, void *dst, const void *src, size_t bytes) {
    sdagd_status st = cuda_ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_of(ctx)), "download");
    return st == SDAGD_OK ? cuda_sync(ctx) : st;
}

/* Copies and zeroing also wait: each network has its own stream, and these move memory that
 * another network's stream uses next (a trainer hands parameters back to the networks, an
 * optimizer's zeroed state is copied into a trainer). Neither is on a step's path. */
static sdagd_status cuda_copy(void *ctx, void *dst, const void *src, size_t bytes) {
    sdagd_status st = cuda_ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_of(ctx)), "copy");
    return st == SDAGD_OK ? cuda_sync(ctx) : st;
}

static sdagd_status cuda_zero(void *ctx, void *dst, size_t bytes) {
    sdagd_status st = cuda_ok(cudaMemsetAsync(dst, 0, bytes, stream_of(ctx)), "memset");
    return st == SDAGD_OK ? cuda_sync(ctx) : st;
}

/* ---- launch geometry ------------------------------------------------------------------- */

static sdagd_status check_nets(int K) {
    if (K > MAX_NETS) return fail(SDAGD_ERR_ARG, "the CUDA backend trains at most %d networks at once, got %d", MAX_NETS, K);
    return SDAGD_OK;
}

/* Blocks along x for `work` elements of one network, covered by grid-stride loops. */
static unsigned blocks_for(size_t work) {
    size_t blocks = (work + THREADS - 1) / THREADS;
    return (unsigned)(blocks < 1 ? 1 : blocks > MAX_BLOCKS_PER_NET ? MAX_BLOCKS_PER_NET : blocks);
}

static dim3 grid_for(size_t work, int K) { return dim3(blocks_for(work), (unsigned)K); }

#define GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

/* Sum of a block's values in a fixed order (a tree over threadIdx): deterministic. */
template <typename T>
__device__ T block_sum(T v) {
    __shared__ T shared[THREADS];
    shared[threadIdx.x] = v;
    __syncthreads();
    for (unsigned width = THREADS / 2; width > 0; width /= 2) {
        if (threadIdx.x < width) shared[threadIdx.x] += shared[threadIdx.x + width];
        __syncthreads();
    }
    T total = shared[0];
    __syncthreads(); /* shared is reused by the next call */
    return total;
}

/* ---- GEMM -------------------------------------------------------------------------------- */

/* Row-major C (M, N) = alpha op(A) op(B) + beta C for `count` networks whose matrices lie
 * sa, sb, sc elements apart. cuBLAS sees the row-major matrices as their transposes, so it
 * computes C^T = op(B)^T op(A)^T: the operands and the sizes M, N swap places. */
static sdagd_status gemm(void *ctx, int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                         size_t sa, const float *B, int ldb, size_t sb, float beta, float *C, int ldc, size_t sc,
                         int count) {
    cublasHandle_t h = ((cuda_ctx *)ctx)->blas;
    cublasOperation_t op_a = ta ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (count == 1)
        return blas_ok(cublasSgemm(h, op_b, op_a, N, M, K, &alpha, B, ldb, A, lda, &beta, C, ldc), "cublasSgemm");
    return blas_ok(cublasSgemmStridedBatched(h, op_b, op_a, N, M, K, &alpha, B, ldb, (long long)sb, A, lda,
                                             (long long)sa, &beta, C, ldc, (long long)sc, count),
                   "cublasSgemmStridedBatched");
}

/* ---- gather -------------------------------------------------------------------------------- */

__global__ void gather_kernel(int B, int n0, const float *X, const int32_t *labels, const int32_t *perm,
                              size_t perm_stride, const int64_t *start, float *x, float *x_sq, int32_t *y,
                              size_t x_stride, size_t y_stride, const uint8_t *active) {
    int k = blockIdx.y;
    if (!active[k]) return;
    int64_t first = *start;
    GRID_STRIDE(i, (size_t)B * n0) {
        int r = (int)(i / n0), c = (int)(i % n0);
        int64_t src = perm ? perm[(size_t)k * perm_stride + first + r] : first + r;
        float v = X[(size_t)src * n0 + c];
        x[(size_t)k * x_stride + i] = v;
        if (x_sq) x_sq[(size_t)k * x_stride + i] = v * v;
        if (labels && c == 0) y[(size_t)k * y_stride + r] = labels[src];
    }
}

static sdagd_status cuda_gather(void *ctx, const gather_args *a) {
    const group_view *g = a->g;
    sdagd_status st = check_nets(g->K);
    if (st != SDAGD_OK) return st;
    int n0 = g->sizes[0];
    gather_kernel<<<grid_for((size_t)a->B * n0, g->K), THREADS, 0, stream_of(ctx)>>>(
        a->B, n0, a->X, a->labels, a->perm, a->perm_stride, a->start, g->x, a->want_sq ? g->x_sq : NULL, g->y,
        g->x_stride, g->y_stride, g->active);
    return launched("gather");
}

/* ---- forward ------------------------------------------------------------------------------- */

/* Bias, activation, h o h and the diagnostics of a hidden layer's (B, n) output. */
__global__ void hidden_epilogue_kernel(int B, int n, float *out, float *out_sq, size_t out_stride, const float *bias,
                                       size_t p_stride, const int32_t *act, const float *slope,
                                       const uint8_t *active, int64_t *saturated, size_t saturated_stride,
                                       uint8_t *ever, size_t ever_stride) {
    int k = blockIdx.y;
    if (!active[k]) return; /* block-uniform: block_sum below is reached by all threads or none */
    int code = act[k], rectifies = activation_rectifies(code); /* as the CPU: units of rectifiers only */
    float s = slope[k];
    const float *b = bias + (size_t)k * p_stride;
    float *o = out + (size_t)k * out_stride;
    unsigned long long count = 0;
    GRID_STRIDE(i, (size_t)B * n) {
        int c = (int)(i % n);
        float v = activation_value(code, s, o[i] + b[c]);
        o[i] = v;
        if (out_sq) out_sq[(size_t)k * out_stride + i] = v * v;
        count += activation_saturated(code, v);
        if (ever && rectifies && v > 0.0f) ever[(size_t)k * ever_stride + c] = 1; /* only ever set */
    }
    if (saturated) {
        unsigned long long total = block_sum(count);
        if (threadIdx.x == 0 && total)
            atomicAdd((unsigned long long *)&saturated[(size_t)k * saturated_stride], total);
    }
}

/* The output layer's bias, the copy of its pre-activation (for cross-entropy) and an
 * elementwise output activation: one thread per element. */
__global__ void output_epilogue_kernel(int B, int n, float *out, size_t out_stride, const float *bias, size_t p_stride,
                                       float *pre, size_t pre_stride, int output, const uint8_t *active) {
    int k = blockIdx.y;
    if (!active[k]) return;
    const float *b = bias + (size_t)k * p_stride;
    float *o = out + (size_t)k * out_stride;
    GRID_STRIDE(i, (size_t)B * n) {
        float v = o[i] + b[i % n];
        if (pre) pre[(size_t)k * pre_stride + i] = v;
        o[i] = output == SDAGD_ACT_SOFTMAX ? v : activation_value(output, 0.0f, v);
    }
}

/* Softmax needs its whole row (n outputs, a few): one thread per row, after the bias. */
__global__ void softmax_kernel(int B, int n, float *out, size_t out_stride, const uint8_t *active) {
    int k = blockIdx.y;
    if (!active[k]) return;
    GRID_STRIDE(r, (size_t)B) softmax_row(out + (size_t)k * out_stride + r * n, n);
}

static sdagd_status cuda_forward(void *ctx, const forward_args *a) {
    const group_view *g = a->g;
    sdagd_status st = check_nets(g->K);
    if (st != SDAGD_OK) return st;
    int l = a->layer, B = a->B, n_in = g->sizes[l], n_out = g->sizes[l + 1], K = g->K;
    float *out = g->out + g->out_off[l];
    /* a (B, n_out) = in (B, n_in) W^T */
    st = gemm(ctx, 0, 1, B, n_out, n_in, 1.0f, a->in, n_in, a->in_stride, a->params.p + g->w_off[l], n_in,
              a->params.stride, 0.0f, out, n_out, g->out_stride, K);
    if (st != SDAGD_OK) return st;
    const float *bias = a->params.p + g->b_off[l];
    if (l == g->n_layers - 1) {
        output_epilogue_kernel<<<grid_for((size_t)B * n_out, K), THREADS, 0, stream_of(ctx)>>>(
            B, n_out, out, g->out_stride, bias, a->params.stride, g->loss == SDAGD_LOSS_CE ? g->pre : NULL, g->pre_stride,
            g->output, g->active);
        if ((st = launched("output layer")) != SDAGD_OK || g->output != SDAGD_ACT_SOFTMAX) return st;
        softmax_kernel<<<grid_for((size_t)B, K), THREADS, 0, stream_of(ctx)>>>(B, n_out, out, g->out_stride, g->active);
        return launched("softmax");
    }
    /* network k's counter for layer l is saturated[k L + l] */
    hidden_epilogue_kernel<<<grid_for((size_t)B * n_out, K), THREADS, 0, stream_of(ctx)>>>(
        B, n_out, out, a->want_sq ? g->out_sq + g->out_off[l] : NULL, g->out_stride, bias, a->params.stride, g->act,
        g->slope, g->active, a->saturated ? a->saturated + l : NULL, (size_t)g->n_layers,
        a->ever_active ? a->ever_active + a->active_offset : NULL, a->active_stride);
    return launched("hidden layer");
}

/* ---- loss and output delta ------------------------------------------------------------------ */

/* The loss, in two fixed-order stages as the sums of squares below. Each block takes rows by
 * a grid-stride loop, writes their output deltas, and leaves the sum of their losses and of
 * their misclassified counts (exact in a double) in partials[k][b] and [k][blocks + b] ... */
__global__ void loss_partial_kernel(int B, int n, const float *Y, size_t y_stride, const float *pre, size_t pre_stride,
                                    const int32_t *labels, size_t label_stride, int loss, int output, float *delta,
                                    float *s, size_t d_stride, int want_delta, int want_s, double *partials,
                                    size_t partial_stride, const uint8_t *active) {
    int k = blockIdx.y;
    if (!active[k]) return;
    double total = 0.0, wrong = 0.0;
    GRID_STRIDE(r, (size_t)B) {
        const float *y = Y + (size_t)k * y_stride + r * n;
        int label = labels[(size_t)k * label_stride + r], miss;
        total += row_loss(loss, y, pre ? pre + (size_t)k * pre_stride + r * n : NULL, n, label, &miss);
        wrong += miss;
        if (!want_delta) continue;
        for (int j = 0; j < n; j++) {
            float d, c;
            output_delta_value(output, loss, y[j], j == label ? 1.0f : 0.0f, &d, &c);
            delta[(size_t)k * d_stride + r * n + j] = d;
            if (want_s) s[(size_t)k * d_stride + r * n + j] = c;
        }
    }
    total = block_sum(total);
    wrong = block_sum(wrong);
    if (threadIdx.x == 0) {
        partials[(size_t)k * partial_stride + blockIdx.x] = total;
        partials[(size_t)k * partial_stride + gridDim.x + blockIdx.x] = wrong;
    }
}

/* ... then one block per network adds them in order into the step's loss slot. */
__global__ void loss_total_kernel(int blocks, const double *partials, size_t partial_stride, double *loss_out,
                                  int64_t *errors_out, int window, const int64_t *slot, const uint8_t *active) {
    int k = blockIdx.x;
    if (!active[k]) return;
    double total = 0.0, wrong = 0.0;
    for (int b = threadIdx.x; b < blocks; b += blockDim.x) {
        total += partials[(size_t)k * partial_stride + b];
        wrong += partials[(size_t)k * partial_stride + blocks + b];
    }
    total = block_sum(total);
    wrong = block_sum(wrong);
    if (threadIdx.x == 0) {
        size_t at = (size_t)k * window + (size_t)*slot;
        loss_out[at] = total;
        errors_out[at] = (int64_t)wrong;
    }
}

static sdagd_status cuda_loss(void *ctx, const loss_args *a) {
    const group_view *g = a->g;
    sdagd_status st = check_nets(g->K);
    if (st != SDAGD_OK) return st;
    int L = g->n_layers, n = g->sizes[L];
    unsigned blocks = blocks_for((size_t)a->B);
    if (2 * (size_t)blocks > g->partials_stride) blocks = (unsigned)(g->partials_stride / 2); /* >= 128 */
    loss_partial_kernel<<<dim3(blocks, g->K), THREADS, 0, stream_of(ctx)>>>(
        a->B, n, g->out + g->out_off[L - 1], g->out_stride, g->loss == SDAGD_LOSS_CE ? g->pre : NULL, g->pre_stride, g->y,
        g->y_stride, g->loss, g->output, g->delta[0], a->want_s ? g->s[0] : NULL, g->d_stride, a->want_delta,
        a->want_s, g->partials, g->partials_stride, g->active);
    if ((st = launched("loss")) != SDAGD_OK) return st;
    loss_total_kernel<<<g->K, THREADS, 0, stream_of(ctx)>>>((int)blocks, g->partials, g->partials_stride, a->loss,
                                                            a->errors, a->window, a->slot, g->active);
    return launched("loss total");
}

/* ---- backward ------------------------------------------------------------------------------ */

/* dst[c] = scale * sum_r M[r, c]. A block of SUM_COLS x SUM_ROWS threads takes SUM_COLS
 * columns: thread (x, y) sums rows y, y + SUM_ROWS, ... of column x (neighbouring threads read
 * neighbouring columns), then the first row of threads adds the SUM_ROWS partial sums in order.
 * A fixed order: the same bits every run (not the CPU's row-by-row order: parity is to rounding). */
enum { SUM_COLS = 32, SUM_ROWS = THREADS / SUM_COLS };

__global__ void column_sums_kernel(int B, int n, const float *M, size_t m_stride, float *dst, size_t dst_stride,
                                   float scale, const uint8_t *active) {
    __shared__ float partial[SUM_ROWS][SUM_COLS];
    int k = blockIdx.y;
    if (!active[k]) return; /* block-uniform */
    size_t c = (size_t)blockIdx.x * SUM_COLS + threadIdx.x;
    float sum = 0.0f;
    if (c < (size_t)n)
        for (int r = threadIdx.y; r < B; r += SUM_ROWS) sum += M[(size_t)k * m_stride + (size_t)r * n + c];
    partial[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y == 0 && c < (size_t)n) {
        float total = 0.0f;
        for (int y = 0; y < SUM_ROWS; y++) total += partial[y][threadIdx.x];
        dst[(size_t)k * dst_stride + c] = total * scale;
    }
}

/* dst = scale * the column sums of each network's (B, n) M. */
static sdagd_status column_sums(cudaStream_t stream, const group_view *g, int B, int n, const float *M, size_t m_stride,
                                float *dst, size_t dst_stride, float scale, const char *what) {
    dim3 grid((unsigned)((n + SUM_COLS - 1) / SUM_COLS), (unsigned)g->K), block(SUM_COLS, SUM_ROWS);
    column_sums_kernel<<<grid, block, 0, stream>>>(B, n, M, m_stride, dst, dst_stride, scale, g->active);
    return launched(what);
}

__global__ void square_kernel(size_t n, const float *src, size_t src_stride, float *dst, size_t dst_stride,
                              const uint8_t *active) {
    int k = blockIdx.y;
    if (!active[k]) return;
    GRID_STRIDE(i, n) {
        float v = src[(size_t)k * src_stride + i];
        dst[(size_t)k * dst_stride + i] = v * v;
    }
}

/* delta *= f'(a), s *= f'(a)^2, with f' read from the layer's output h. */
__global__ void activation_backward_kernel(size_t n, const float *h, size_t h_stride, float *delta, float *s,
                                           size_t d_stride, const int32_t *act, const float *slope,
                                           const uint8_t *active) {
    int k = blockIdx.y;
    if (!active[k]) return;
    int code = act[k];
    float sl = slope[k];
    GRID_STRIDE(i, n) {
        float d = activation_slope(code, sl, h[(size_t)k * h_stride + i]);
        delta[(size_t)k * d_stride + i] *= d;
        if (s) s[(size_t)k * d_stride + i] *= d * d;
    }
}

/* Sums of squares of n values per network, in double: per-block partials ... */
__global__ void sum_squares_partial_kernel(size_t n, const float *x, size_t x_stride, double *partials,
                                           size_t partial_stride, const uint8_t *active) {
    int k = blockIdx.y;
    if (!active[k]) return;
    double sum = 0.0;
    GRID_STRIDE(i, n) {
        double v = x[(size_t)k * x_stride + i];
        sum += v * v;
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) partials[(size_t)k * partial_stride + blockIdx.x] = sum;
}

/* ... then one block per network adds its partials in order. */
__global__ void sum_partials_kernel(int count, const double *partials, size_t partial_stride, double *out,
                                    size_t out_stride, const uint8_t *active) {
    int k = blockIdx.x;
    if (!active[k]) return;
    double sum = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) sum += partials[(size_t)k * partial_stride + i];
    sum = block_sum(sum);
    if (threadIdx.x == 0) out[(size_t)k * out_stride] = sum;
}

/* out[k * out_stride] = sum of squares of x[k * x_stride .. + n), for every active network. */
static sdagd_status sum_of_squares(void *ctx, const group_view *g, size_t n, const float *x, size_t x_stride,
                                   double *out, size_t out_stride) {
    unsigned blocks = blocks_for(n);
    if (blocks > g->partials_stride) blocks = (unsigned)g->partials_stride;
    sum_squares_partial_kernel<<<dim3(blocks, g->K), THREADS, 0, stream_of(ctx)>>>(n, x, x_stride, g->partials,
                                                                                   g->partials_stride, g->active);
    sdagd_status st = launched("sum of squares");
    if (st != SDAGD_OK) return st;
    sum_partials_kernel<<<g->K, THREADS, 0, stream_of(ctx)>>>((int)blocks, g->partials, g->partials_stride, out,
                                                              out_stride, g->active);
    return launched("sum of partials");
}

static sdagd_status cuda_backward(void *ctx, const backward_args *a) {
    const group_view *g = a->g;
    sdagd_status st = check_nets(g->K);
    if (st != SDAGD_OK) return st;
    int l = a->layer, B = a->B, n_in = g->sizes[l], n_out = g->sizes[l + 1], K = g->K, L = g->n_layers;
    int cur = a->cur, other = 1 - cur, curvature = a->hess.p != NULL;
    float scale = 1.0f / (float)B;
    cudaStream_t stream = stream_of(ctx);
    const float *in = l == 0 ? g->x : g->out + g->out_off[l - 1];
    const float *in_sq = !curvature ? NULL : l == 0 ? g->x_sq : g->out_sq + g->out_off[l - 1];
    size_t in_stride = l == 0 ? g->x_stride : g->out_stride;
    const float *W = a->params.p + g->w_off[l];
    float *dW = a->grad.p + g->w_off[l], *db = a->grad.p + g->b_off[l];
    /* dW = (1/B) delta^T in, db = mean_rows delta */
    st = gemm(ctx, 1, 0, n_out, n_in, B, scale, g->delta[cur], n_out, g->d_stride, in, n_in, in_stride, 0.0f, dW, n_in,
              a->grad.stride, K);
    if (st != SDAGD_OK) return st;
    st = column_sums(stream, g, B, n_out, g->delta[cur], g->d_stride, db, a->grad.stride, scale, "bias gradient");
    if (st != SDAGD_OK) return st;
    if (curvature) { /* hW = (1/B) s^T (in o in), hb = mean_rows s */
        float *hW = a->hess.p + g->w_off[l], *hb = a->hess.p + g->b_off[l];
        st = gemm(ctx, 1, 0, n_out, n_in, B, scale, g->s[cur], n_out, g->d_stride, in_sq, n_in, in_stride, 0.0f, hW,
                  n_in, a->hess.stride, K);
        if (st != SDAGD_OK) return st;
        st = column_sums(stream, g, B, n_out, g->s[cur], g->d_stride, hb, a->hess.stride, scale, "bias curvature");
        if (st != SDAGD_OK) return st;
    }
    /* the segments' sums of squares, for SDAGD's norms and the diagnostics */
    st = sum_of_squares(ctx, g, (size_t)n_out * n_in, dW, a->grad.stride, a->segments + 2 * l, 2 * (size_t)L);
    if (st == SDAGD_OK)
        st = sum_of_squares(ctx, g, (size_t)n_out, db, a->grad.stride, a->segments + 2 * l + 1, 2 * (size_t)L);
    if (st != SDAGD_OK || l == 0) return st;
    /* delta_below = f'(in) * (delta W),  s_below = f'(in)^2 * (s (W o W)) */
    st = gemm(ctx, 0, 0, B, n_in, n_out, 1.0f, g->delta[cur], n_out, g->d_stride, W, n_in, a->params.stride, 0.0f,
              g->delta[other], n_in, g->d_stride, K);
    if (st == SDAGD_OK && curvature) {
        square_kernel<<<grid_for((size_t)n_out * n_in, K), THREADS, 0, stream>>>(
            (size_t)n_out * n_in, W, a->params.stride, g->w_sq, g->w_sq_stride, g->active);
        st = launched("W o W");
        if (st == SDAGD_OK)
            st = gemm(ctx, 0, 0, B, n_in, n_out, 1.0f, g->s[cur], n_out, g->d_stride, g->w_sq, n_in, g->w_sq_stride,
                      0.0f, g->s[other], n_in, g->d_stride, K);
    }
    if (st != SDAGD_OK) return st;
    activation_backward_kernel<<<grid_for((size_t)B * n_in, K), THREADS, 0, stream>>>(
        (size_t)B * n_in, in, in_stride, g->delta[other], curvature ? g->s[other] : NULL, g->d_stride, g->act,
        g->slope, g->active);
    return launched("activation backward");
}

/* ---- the optimizer ------------------------------------------------------------------------- */

__global__ void prepare_kernel(prepare_job job, int K) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k < K) prepare_network(job, k);
}

static sdagd_status cuda_prepare(void *ctx, const prepare_args *a) {
    int K = a->g->K;
    prepare_kernel<<<(K + 63) / 64, 64, 0, stream_of(ctx)>>>(prepare_job_of(a), K);
    return launched("prepare");
}

/* Everything the update kernels read; pointers are device memory. */
typedef struct {
    int L;
    const size_t *offsets; /* (2L + 1) w_off, b_off, P */
    float *params, *grad, *hess, *s0, *s1;
    size_t params_stride, grad_stride, hess_stride, s0_stride, s1_stride;
    const optim_hyper *hyper;
    const step_coef *coef;
    const float *mu;       /* [K][L] */
    double *step_sq;       /* [K][L] */
    net_stats *stats;
    const uint8_t *active;
    size_t P;
} update_job;

/* The layer of parameter i (offsets: w_off of each layer, ascending). */
__device__ int layer_of(const size_t *offsets, int L, size_t i) {
    int l = 0;
    while (l + 1 < L && i >= offsets[l + 1]) l++;
    return l;
}

/* For max_step: each network's squared SDAGD step length per layer, in two fixed-order stages. */
__global__ void step_length_partial_kernel(update_job j, double *partials, size_t partial_stride) {
    int k = blockIdx.y;
    if (!j.active[k]) return;
    optim_hyper h = j.hyper[k];
    if (h.kind != SDAGD_OPT_SDAGD || !(h.max_step > 0.0)) return; /* block-uniform */
    step_coef c = j.coef[k];
    const float *g = j.grad + (size_t)k * j.grad_stride;
    const float *fresh = j.hess ? j.hess + (size_t)k * j.hess_stride : NULL;
    const float *kept = j.s0 + (size_t)k * j.s0_stride;
    for (int l = 0; l < j.L; l++) { /* one partial per (block, layer): the layer loop is block-uniform */
        size_t lo = j.offsets[l], hi = l + 1 < j.L ? j.offsets[l + 1] : j.P;
        float mu = j.mu[(size_t)k * j.L + l];
        double sum = 0.0;
        for (size_t i = lo + (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < hi; i += (size_t)gridDim.x * blockDim.x) {
            double s = sdagd_step(g[i], mu, sdagd_curvature_peek(&h, &c, fresh ? fresh[i] : 0.0f, kept[i]), h.eps);
            sum += s * s;
        }
        sum = block_sum(sum);
        if (threadIdx.x == 0) partials[(size_t)k * partial_stride + (size_t)l * gridDim.x + blockIdx.x] = sum;
    }
}

__global__ void step_length_total_kernel(update_job j, int blocks, const double *partials, size_t partial_stride) {
    int k = blockIdx.x;
    if (!j.active[k]) return;
    optim_hyper h = j.hyper[k];
    if (h.kind != SDAGD_OPT_SDAGD || !(h.max_step > 0.0)) return;
    double global = 0.0;
    for (int l = 0; l < j.L; l++) {
        double sum = 0.0;
        for (int b = threadIdx.x; b < blocks; b += blockDim.x) sum += partials[(size_t)k * partial_stride + (size_t)l * blocks + b];
        sum = block_sum(sum);
        global += sum;
        if (threadIdx.x == 0) j.step_sq[(size_t)k * j.L + l] = h.norm == SDAGD_NORM_GLOBAL ? global : sum;
    }
    if (threadIdx.x == 0 && h.norm == SDAGD_NORM_GLOBAL) j.step_sq[(size_t)k * j.L] = global;
}

/* One optimizer step over every parameter of every active network (docs/algorithms.md section 5). */
__global__ void update_kernel(update_job j) {
    int k = blockIdx.y;
    if (!j.active[k]) return;
    optim_hyper h = j.hyper[k];
    step_coef c = j.coef[k];
    float *theta = j.params + (size_t)k * j.params_stride;
    const float *g = j.grad + (size_t)k * j.grad_stride;
    const float *fresh = j.hess ? j.hess + (size_t)k * j.hess_stride : NULL;
    float *s0 = j.s0 ? j.s0 + (size_t)k * j.s0_stride : NULL, *s1 = j.s1 ? j.s1 + (size_t)k * j.s1_stride : NULL;
    int capped = h.kind == SDAGD_OPT_SDAGD && h.max_step > 0.0;
    unsigned long long phase1 = 0;
    GRID_STRIDE(i, j.P) {
        int l = layer_of(j.offsets, j.L, i);
        float mu = j.mu[(size_t)k * j.L + l];
        float scale = capped ? max_step_scale(&h, j.step_sq[(size_t)k * j.L + (h.norm == SDAGD_NORM_GLOBAL ? 0 : l)]) : 1.0f;
        phase1 += optimizer_update(h.kind, &h, &c, i, theta, g, fresh, s0, s1, mu, scale);
    }
    if (h.kind == SDAGD_OPT_SDAGD) { /* block-uniform */
        unsigned long long total = block_sum(phase1);
        if (threadIdx.x == 0 && total) atomicAdd((unsigned long long *)&j.stats[k].phase1, total);
    }
}

static sdagd_status cuda_update(void *ctx, const update_args *a) {
    const group_view *g = a->g;
    sdagd_status st = check_nets(g->K);
    if (st != SDAGD_OK) return st;
    update_job j = {g->n_layers, g->offsets, a->params.p, a->grad.p, a->hess.p, a->state0.p, a->state1.p,
                    a->params.stride, a->grad.stride, a->hess.stride, a->state0.stride, a->state1.stride,
                    a->hyper, a->coef, a->mu, a->step_sq, a->stats, g->active, g->P};
    cudaStream_t stream = stream_of(ctx);
    /* the max_step cap needs each group's step length before any parameter moves: the
     * kernels skip every network without one, so this costs two near-empty launches otherwise */
    /* (partials_stride >= 4L + 256 leaves at least 4 blocks per layer) */
    unsigned blocks = blocks_for(g->P / (size_t)g->n_layers + 1);
    if (blocks * (unsigned)g->n_layers > g->partials_stride) blocks = (unsigned)(g->partials_stride / g->n_layers);
    step_length_partial_kernel<<<dim3(blocks, g->K), THREADS, 0, stream>>>(j, g->partials, g->partials_stride);
    if ((st = launched("step length")) != SDAGD_OK) return st;
    step_length_total_kernel<<<g->K, THREADS, 0, stream>>>(j, (int)blocks, g->partials, g->partials_stride);
    if ((st = launched("step length total")) != SDAGD_OK) return st;
    update_kernel<<<grid_for(g->P, g->K), THREADS, 0, stream>>>(j);
    return launched("update");
}

__global__ void advance_kernel(int B, int64_t *start, int64_t *slot, int window, int64_t *step, const uint8_t *active,
                               int K) {
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k == 0) {
        *start += B;
        *slot = (*slot + 1) % window;
    }
    if (k < K) step[k] += active[k] != 0;
}

static sdagd_status cuda_advance(void *ctx, const advance_args *a) {
    int K = a->g->K;
    advance_kernel<<<(K + 63) / 64, 64, 0, stream_of(ctx)>>>(a->B, a->start, a->slot, a->window, a->step,
                                                             a->g->active, K);
    return launched("advance");
}

/* ---- checks -------------------------------------------------------------------------------- */

__global__ void finite_kernel(size_t n, const float *x, size_t stride, uint8_t *bad) {
    int k = blockIdx.y;
    GRID_STRIDE(i, n) if (!isfinite(x[(size_t)k * stride + i])) bad[k] = 1; /* only ever set */
}

static sdagd_status cuda_all_finite(void *ctx, const float *x, size_t n, size_t stride, int K, uint8_t *ok_host) {
    cuda_ctx *c = (cuda_ctx *)ctx;
    sdagd_status st = check_nets(K);
    if (st != SDAGD_OK) return st;
    if (c->flag_capacity < (size_t)K) {
        if (c->flags) cudaFree(c->flags);
        c->flags = NULL;
        c->flag_capacity = 0;
        if ((st = cuda_alloc(ctx, (void **)&c->flags, (size_t)K)) != SDAGD_OK) return st;
        c->flag_capacity = (size_t)K;
    }
    if ((st = cuda_zero(ctx, c->flags, (size_t)K)) != SDAGD_OK) return st;
    finite_kernel<<<grid_for(n, K), THREADS, 0, c->stream>>>(n, x, stride, c->flags);
    if ((st = launched("finite check")) != SDAGD_OK) return st;
    if ((st = cuda_download(ctx, ok_host, c->flags, (size_t)K)) != SDAGD_OK) return st;
    for (int k = 0; k < K; k++) ok_host[k] = !ok_host[k];
    return SDAGD_OK;
}

/* ---- recorded steps (CUDA graphs) ---------------------------------------------------------- */

/* A step is recorded only the second time its key comes: the first runs plainly, so that every
 * kernel (cuBLAS's included) has been loaded outside a capture, which drivers that load modules
 * lazily require. If recording fails all the same, the step is launched plainly from the
 * journal, and this recorder records nothing more (one warning per process). */
typedef struct {
    int count;
    int keys[MAX_RECORDED];
    cudaGraphExec_t steps[MAX_RECORDED];
    int seen_count;
    int seen[MAX_RECORDED]; /* keys whose plain first step has run */
    int capturing;
    int off;                /* recording failed once: plain launches from now on */
} recorder;

static void recorder_clear(void *ctx, void *p) {
    (void)ctx;
    recorder *r = (recorder *)p;
    for (int i = 0; i < r->count; i++) cudaGraphExecDestroy(r->steps[i]);
    r->count = 0;
}

static sdagd_status recorder_create(void *ctx, void **out) {
    (void)ctx;
    *out = NULL;
    const char *graphs = getenv("SDAGD_CUDA_GRAPHS");
    if (graphs && strcmp(graphs, "0") == 0) return SDAGD_OK; /* no recorder: every step launched anew */
    recorder *r = (recorder *)calloc(1, sizeof *r);
    if (!r) return fail(SDAGD_ERR_NOMEM, "out of memory");
    *out = r;
    return SDAGD_OK;
}

static void recorder_free(void *ctx, void *p) {
    if (!p) return;
    recorder_clear(ctx, p);
    free(p);
}

/* Drops recording i. */
static void forget(recorder *r, int i) {
    cudaGraphExecDestroy(r->steps[i]);
    memmove(r->steps + i, r->steps + i + 1, (size_t)(r->count - i - 1) * sizeof *r->steps);
    memmove(r->keys + i, r->keys + i + 1, (size_t)(r->count - i - 1) * sizeof *r->keys);
    r->count--;
}

static int replay(void *ctx, void *p, int key) {
    recorder *r = (recorder *)p;
    for (int i = 0; i < r->count; i++)
        if (r->keys[i] == key) {
            if (cuda_ok(cudaGraphLaunch(r->steps[i], stream_of(ctx)), "launch a recorded step") == SDAGD_OK) return 1;
            forget(r, i); /* not to be tried again */
            return -1;
        }
    return 0;
}

/* Recording failed: plain launches from now on. The library has no other way to tell the
 * user than stderr, once per process: training goes on, only slower. */
static void recording_off(recorder *r, void *ctx, const char *why) {
    static int warned;
    cudaGetLastError(); /* the failure is handled here */
    r->off = 1;
    recorder_clear(ctx, r);
    if (!warned) {
        warned = 1;
        fprintf(stderr, "sdagd: warning: CUDA graph capture failed (%s); training goes on with plain kernel "
                        "launches (slower)\n", why);
    }
}

static sdagd_status capture_begin(void *ctx, void *p, int key) {
    recorder *r = (recorder *)p;
    cuda_ctx *c = (cuda_ctx *)ctx;
    if (r->off) return SDAGD_OK;
    int seen = 0;
    for (int i = 0; i < r->seen_count; i++) seen |= r->seen[i] == key;
    if (!seen) { /* the first step of this key runs plainly */
        if (r->seen_count == MAX_RECORDED) {
            memmove(r->seen, r->seen + 1, (MAX_RECORDED - 1) * sizeof *r->seen);
            r->seen_count--;
        }
        r->seen[r->seen_count++] = key;
        return SDAGD_OK;
    }
    cudaError_t err = cudaStreamBeginCapture(stream_of(ctx), cudaStreamCaptureModeThreadLocal);
    if (err != cudaSuccess) {
        recording_off(r, ctx, cudaGetErrorString(err));
        return SDAGD_OK;
    }
    r->capturing = c->recording = 1;
    c->recording_failed = 0;
    c->journal_len = 0;
    return SDAGD_OK;
}

static sdagd_status run_journal(cuda_ctx *c);

static sdagd_status capture_end(void *ctx, void *p, int key, int keep) {
    recorder *r = (recorder *)p;
    cuda_ctx *c = (cuda_ctx *)ctx;
    if (!r->capturing) return SDAGD_OK;
    r->capturing = c->recording = 0;
    cudaGraph_t graph = NULL;
    cudaError_t err = cudaStreamEndCapture(stream_of(ctx), &graph);
    if (!keep) { /* the step failed (not for being recorded): drop what was recorded */
        if (graph) cudaGraphDestroy(graph);
        cudaGetLastError();
        return SDAGD_OK;
    }
    cudaGraphExec_t exec = NULL;
    if (err == cudaSuccess && c->recording_failed) err = cudaErrorStreamCaptureInvalidated;
    if (err == cudaSuccess) err = cudaGraphInstantiate(&exec, graph, 0);
    if (graph) cudaGraphDestroy(graph);
    if (err != cudaSuccess) { /* nothing of the step has run: launch it plainly */
        recording_off(r, ctx, cudaGetErrorString(err));
        return run_journal(c);
    }
    if (r->count == MAX_RECORDED) forget(r, 0); /* the oldest */
    r->keys[r->count] = key;
    r->steps[r->count++] = exec;
    sdagd_status st = cuda_ok(cudaGraphLaunch(exec, stream_of(ctx)), "launch the recorded step"); /* it was only recorded */
    if (st != SDAGD_OK) forget(r, r->count - 1);
    return st;
}

/* The step's operations, as the core calls them: while a step is recorded each is journaled,
 * and one that fails (a launch the capture refuses) makes the recording fail, not the step. */
static sdagd_status journal_add(cuda_ctx *c, step_op op, const void *args, size_t size) {
    if (c->journal_len == c->journal_cap) {
        int cap = c->journal_cap ? 2 * c->journal_cap : 64;
        journal_entry *grown = (journal_entry *)realloc(c->journal, (size_t)cap * sizeof *grown);
        if (!grown) return fail(SDAGD_ERR_NOMEM, "out of memory");
        c->journal = grown;
        c->journal_cap = cap;
    }
    journal_entry *e = &c->journal[c->journal_len++];
    e->op = op;
    memcpy(&e->a, args, size);
    return SDAGD_OK;
}

#define RECORDED_OP(name, args_type, tag)                                                         \
    static sdagd_status recorded_##name(void *ctx, const args_type *a) {                            \
        cuda_ctx *c = (cuda_ctx *)ctx;                                                              \
        if (!c->recording) return cuda_##name(ctx, a);                                              \
        sdagd_status st = journal_add(c, tag, a, sizeof *a);                                        \
        if (st != SDAGD_OK || c->recording_failed) return st;                                       \
        if (cuda_##name(ctx, a) != SDAGD_OK) c->recording_failed = 1; /* run from the journal */     \
        return SDAGD_OK;                                                                            \
    }
RECORDED_OP(gather, gather_args, OP_GATHER)
RECORDED_OP(forward, forward_args, OP_FORWARD)
RECORDED_OP(loss, loss_args, OP_LOSS)
RECORDED_OP(backward, backward_args, OP_BACKWARD)
RECORDED_OP(prepare, prepare_args, OP_PREPARE)
RECORDED_OP(update, update_args, OP_UPDATE)
RECORDED_OP(advance, advance_args, OP_ADVANCE)

static sdagd_status run_journal(cuda_ctx *c) {
    sdagd_status st = SDAGD_OK;
    for (int i = 0; i < c->journal_len && st == SDAGD_OK; i++) {
        journal_entry *e = &c->journal[i];
        switch (e->op) {
        case OP_GATHER: st = cuda_gather(c, &e->a.gather); break;
        case OP_FORWARD: st = cuda_forward(c, &e->a.forward); break;
        case OP_LOSS: st = cuda_loss(c, &e->a.loss); break;
        case OP_BACKWARD: st = cuda_backward(c, &e->a.backward); break;
        case OP_PREPARE: st = cuda_prepare(c, &e->a.prepare); break;
        case OP_UPDATE: st = cuda_update(c, &e->a.update); break;
        case OP_ADVANCE: st = cuda_advance(c, &e->a.advance); break;
        }
    }
    c->journal_len = 0;
    return st;
}

/* ---- the table ----------------------------------------------------------------------------- */

static sdagd_backend_ops cuda_ops;

EXPORT const sdagd_backend_ops *sdagd_cuda_backend(const sdagd_host_services *host) {
    fail = host->fail;
    if (device_present() != SDAGD_OK) return NULL;
    cuda_ops.host_memory = 0;
    cuda_ops.loss_window = 64; /* losses come back every 64 steps; the divergence step is still exact */
    cuda_ops.context_create = cuda_context_create;
    cuda_ops.context_free = cuda_context_free;
    cuda_ops.alloc = cuda_alloc;
    cuda_ops.dealloc = cuda_dealloc;
    cuda_ops.upload = cuda_upload;
    cuda_ops.download = cuda_download;
    cuda_ops.copy = cuda_copy;
    cuda_ops.zero = cuda_zero;
    cuda_ops.recorder_create = recorder_create;
    cuda_ops.recorder_free = recorder_free;
    cuda_ops.recorder_clear = recorder_clear;
    cuda_ops.replay = replay;
    cuda_ops.capture_begin = capture_begin;
    cuda_ops.capture_end = capture_end;
    cuda_ops.gather = recorded_gather;
    cuda_ops.forward = recorded_forward;
    cuda_ops.loss = recorded_loss;
    cuda_ops.backward = recorded_backward;
    cuda_ops.prepare = recorded_prepare;
    cuda_ops.update = recorded_update;
    cuda_ops.advance = recorded_advance;
    cuda_ops.all_finite = cuda_all_finite;
    return &cuda_ops;
}
