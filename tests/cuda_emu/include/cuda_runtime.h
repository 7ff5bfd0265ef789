/*
 * The CUDA runtime as the CPU emulation provides it: only what cuda/backend_cuda.cu uses, so
 * that a backend change calling anything else fails the emulated build with the name of the
 * missing function (the compiler's "was not declared in this scope"). Test code: never
 * installed with sdagd. Semantics follow the CUDA runtime API reference; what the emulation
 * checks beyond it is said in emu_runtime.cpp.
 */
#ifndef SDAGD_EMU_CUDA_RUNTIME_H
#define SDAGD_EMU_CUDA_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include <tuple>
#include <type_traits>
#include <utility>

#define CUDART_VERSION 12040 /* the version of the toolkit whose API this follows */

/* Kernels and device functions are plain host functions here; __shared__ memory is a static,
 * which is one block's because kernels, and the blocks of a grid, run one after another. */
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorStubLibrary = 34,
    cudaErrorInsufficientDriver = 35,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureWrongThread = 908,
} cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};

enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2,
};

#define cudaStreamDefault 0x00
#define cudaStreamNonBlocking 0x01

typedef struct sdagd_emu_stream *cudaStream_t;
typedef struct sdagd_emu_graph *cudaGraph_t;
typedef struct sdagd_emu_graph_exec *cudaGraphExec_t;

struct uint3 {
    unsigned int x, y, z;
};

struct dim3 {
    unsigned int x, y, z;
    dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
};

extern "C" {
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaDriverGetVersion(int *version);
cudaError_t cudaRuntimeGetVersion(int *version);
const char *cudaGetErrorString(cudaError_t error);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);

cudaError_t cudaMalloc(void **ptr, size_t bytes);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream);

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *status);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);
}

/* ---- inside a kernel ------------------------------------------------------------------------ */

namespace sdagd_emu {

/* The running GPU thread's coordinates, set by the scheduler before it resumes a thread. */
struct kernel_coords {
    uint3 thread_idx, block_idx, block_dim, grid_dim;
};
extern kernel_coords coords;

void syncthreads();

/* Host side of a launch (emu_runtime.cpp): checks the configuration and the pointer arguments,
 * then queues (or records, during capture) `body`, which runs one GPU thread. */
struct launch_body {
    virtual ~launch_body() {}
    virtual void run_thread() = 0;
};
cudaError_t launch(const char *name, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                   launch_body *body, const void *const *pointers, int n_pointers); /* takes body */

/* `kernel<<<grid, block, shared, stream>>>(args)` becomes `make_launcher("kernel", kernel, grid,
 * block, shared, stream)(args)` (rewrite_launches.py): the arguments convert to the kernel's
 * parameter types, as in a call, and are kept by value, as CUDA does; each GPU thread runs the
 * kernel on its own copy of them. */
template <typename... P> struct launcher {
    const char *name;
    void (*kernel)(P...);
    dim3 grid, block;
    size_t shared_bytes;
    cudaStream_t stream;

    struct body : launch_body {
        void (*kernel)(P...);
        std::tuple<P...> args;
        body(void (*k)(P...), P... a) : kernel(k), args(a...) {}
        void run_thread() override { std::apply(kernel, args); }
    };

    void operator()(P... args) const {
        const void *pointers[sizeof...(P) + 1];
        int n = 0;
        ((std::is_pointer<P>::value ? (void)(pointers[n++] = pointer_value(args)) : (void)0), ...);
        launch(name, grid, block, shared_bytes, stream, new body(kernel, args...), pointers, n);
    }

    template <typename T> static const void *pointer_value(const T &v) {
        if constexpr (std::is_pointer<T>::value)
            return (const void *)v;
        else
            return nullptr;
    }
};

template <typename... P>
launcher<P...> make_launcher(const char *name, void (*kernel)(P...), dim3 grid, dim3 block, size_t shared_bytes = 0,
                             cudaStream_t stream = 0) {
    return launcher<P...>{name, kernel, grid, block, shared_bytes, stream};
}

} // namespace sdagd_emu

#define threadIdx (sdagd_emu::coords.thread_idx)
#define blockIdx (sdagd_emu::coords.block_idx)
#define blockDim (sdagd_emu::coords.block_dim)
#define gridDim (sdagd_emu::coords.grid_dim)

static inline void __syncthreads(void) { sdagd_emu::syncthreads(); }

/* Every thread of the emulation runs on one OS thread, so an atomic is a plain update. */
static inline unsigned long long atomicAdd(unsigned long long *address, unsigned long long value) {
    unsigned long long old = *address;
    *address = old + value;
    return old;
}

#endif /* SDAGD_EMU_CUDA_RUNTIME_H */
