/*
 * The CUDA runtime on the CPU, for testing cuda/backend_cuda.cu without a GPU (test code, never
 * installed). What it checks beyond running the kernels:
 *
 * - Device memory is its own mmap per allocation, with a PROT_NONE page before and after it
 *   (the buffer ends at the page after it, up to 4-byte alignment: not the GPU's 256, so
 *   that one element too far faults), filled with 0xFF bytes
 *   (NaN as float and double) when allocated. While host code runs, every allocation is
 *   PROT_NONE too (SDAGD_EMU_PROTECT=0 turns that off), so a host read of device memory faults;
 *   a fault is reported with what was hit, then the process aborts.
 * - Work is queued per stream and runs only when that stream is synchronised (or a copy to the
 *   host, or cudaFree, needs it), so a missing synchronisation between streams shows.
 * - A kernel's grid runs block by block (in reverse with SDAGD_EMU_REVERSE=1); each GPU thread
 *   of a block is a fiber, switched at __syncthreads, so a barrier works as on the GPU and one
 *   reached by only some threads of a block is an error. Pointer arguments must be device
 *   memory (or NULL); the launch configuration is checked against the GPU's limits.
 * - Stream capture records every operation with its arguments by value; allocation, freeing,
 *   synchronisation and copies from or to (pageable) host memory are refused while a stream
 *   captures, and invalidate the capture, as CUDA does in the global and thread-local modes.
 *
 * - Modules load lazily (as with CUDA_MODULE_LOADING=LAZY on drivers that then refuse it): the
 *   first launch of a kernel, or of a cuBLAS product, may not happen during a capture
 *   (SDAGD_EMU_LAZY_LOADING=0 turns that off). SDAGD_EMU_CAPTURE_FAILS=begin|launch|end|instantiate
 *   makes every capture fail at that point, for the tests of the backend's fallback.
 * - SDAGD_EMU_STATS=1 prints the numbers of kernel launches and graph launches at exit.
 *
 * Error details go to stderr, to the file SDAGD_EMU_LOG if set (pytest's capture loses what a
 * crashing test wrote to stderr), and into cudaGetErrorString's text for the error returned.
 */
#include "cuda_runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "emu_internal.h"

#define EXPORT extern "C" __attribute__((visibility("default")))

namespace sdagd_emu {

/* ---- errors ------------------------------------------------------------------------------ */

static thread_local cudaError_t last_error = cudaSuccess;
static thread_local char last_detail[1024];
static std::mutex pending_lock;
static cudaError_t pending_error = cudaSuccess; /* from work run at a synchronisation */
static char pending_detail[1024];

/* A line to stderr and to SDAGD_EMU_LOG; async-signal-safe. */
void report_line(const char *line) {
    size_t n = strlen(line);
    ssize_t unused = write(2, line, n);
    const char *log = getenv("SDAGD_EMU_LOG");
    int fd = log ? open(log, O_WRONLY | O_APPEND | O_CREAT, 0644) : -1;
    if (fd >= 0) {
        unused = write(fd, line, n);
        close(fd);
    }
    (void)unused;
}

void vreport(char *into, size_t size, const char *fmt, va_list ap) {
    char text[900], line[1000];
    vsnprintf(text, sizeof text, fmt, ap);
    snprintf(line, sizeof line, "sdagd CUDA emulation: %s\n", text);
    report_line(line);
    if (into) snprintf(into, size, "%s", text);
}

/* An error of the call being made: returned, and kept for cudaGetLastError. */
cudaError_t call_error(cudaError_t err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vreport(last_detail, sizeof last_detail, fmt, ap);
    va_end(ap);
    last_error = err;
    return err;
}

/* An error of queued work (a kernel, a product): returned by the next synchronisation. */
void work_error(cudaError_t err, const char *fmt, ...) {
    std::lock_guard<std::mutex> hold(pending_lock);
    va_list ap;
    va_start(ap, fmt);
    vreport(pending_error == cudaSuccess ? pending_detail : NULL, sizeof pending_detail, fmt, ap);
    va_end(ap);
    if (pending_error == cudaSuccess) pending_error = err;
}

static cudaError_t take_pending(void) {
    std::lock_guard<std::mutex> hold(pending_lock);
    cudaError_t err = pending_error;
    if (err != cudaSuccess) {
        snprintf(last_detail, sizeof last_detail, "%s", pending_detail);
        last_error = err;
    }
    pending_error = cudaSuccess;
    return err;
}

static const char *error_name(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorStubLibrary: return "CUDA driver is a stub library";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureWrongThread: return "attempt to terminate a thread-local capture sequence from another thread";
    }
    return "unknown error";
}

/* ---- device memory ------------------------------------------------------------------------- */

struct allocation {
    char *map;      /* guard page, data pages, guard page */
    size_t map_len;
    char *data;     /* the data pages */
    size_t data_len;
    char *user;     /* what cudaMalloc returned: ends at most 3 bytes before the guard */
    size_t bytes;
    bool sealed;    /* never accessible (cuBLAS's workspace: the emulated cuBLAS needs none) */
};

static std::mutex memory_lock;
static std::map<uintptr_t, allocation> allocations; /* by user address */
static int open_count = 0;                          /* > 0 while emulated device code runs */
static size_t allocated = 0;                        /* bytes, against the device's capacity */
static size_t page_size;

static bool protect_enabled(void) {
    static int enabled = -1;
    if (enabled < 0) {
        const char *v = getenv("SDAGD_EMU_PROTECT");
        enabled = !(v && strcmp(v, "0") == 0);
    }
    return enabled;
}

device_access::device_access() {
    std::lock_guard<std::mutex> hold(memory_lock);
    if (open_count++ == 0 && protect_enabled())
        for (auto &a : allocations)
            if (!a.second.sealed) mprotect(a.second.data, a.second.data_len, PROT_READ | PROT_WRITE);
}

device_access::~device_access() {
    std::lock_guard<std::mutex> hold(memory_lock);
    if (--open_count == 0 && protect_enabled())
        for (auto &a : allocations)
            if (!a.second.sealed) mprotect(a.second.data, a.second.data_len, PROT_NONE);
}

void seal(const void *p) {
    std::lock_guard<std::mutex> hold(memory_lock);
    auto it = allocations.find((uintptr_t)p);
    if (it == allocations.end()) return;
    allocation &a = it->second;
    a.sealed = true;
    mprotect(a.data, a.data_len, PROT_NONE);
    madvise(a.data, a.data_len, MADV_DONTNEED); /* its pages are not kept (nor walked by mprotect) */
}

/* The allocation holding [p, p + bytes), or NULL. With bytes == 0, p may be one past the end. */
static const allocation *find_locked(const void *p, size_t bytes) {
    uintptr_t at = (uintptr_t)p;
    auto it = allocations.upper_bound(at);
    if (it == allocations.begin()) return NULL;
    --it;
    const allocation &a = it->second;
    uintptr_t lo = (uintptr_t)a.user, hi = lo + a.bytes;
    if (at < lo || at > hi) return NULL;
    if (bytes > hi - at || (bytes > 0 && at == hi)) return NULL;
    return &a;
}

bool device_range(const void *p, size_t bytes, size_t *room) {
    std::lock_guard<std::mutex> hold(memory_lock);
    const allocation *a = find_locked(p, 0);
    if (room) *room = a ? (size_t)(a->user + a->bytes - (const char *)p) : 0;
    return a && find_locked(p, bytes) != NULL;
}

bool is_device(const void *p) { return device_range(p, 0, NULL); }

/* What an address is, for a fault report (no allocation, no lock wait: from a signal handler). */
static void describe(const void *p, char *out, size_t size) {
    snprintf(out, size, "not device memory");
    if (!memory_lock.try_lock()) return;
    uintptr_t at = (uintptr_t)p;
    for (auto &e : allocations) {
        const allocation &a = e.second;
        uintptr_t user = (uintptr_t)a.user, map = (uintptr_t)a.map;
        if (at >= user && at < user + a.bytes)
            snprintf(out, size, "byte %zu of a device allocation of %zu bytes at %p", (size_t)(at - user), a.bytes,
                     (void *)a.user);
        else if (at >= map && at < map + a.map_len)
            snprintf(out, size, "%s a device allocation of %zu bytes at %p (%zd bytes from its start)",
                     at < user ? "before" : "past the end of", a.bytes, (void *)a.user, (ssize_t)(at - user));
    }
    memory_lock.unlock();
}

/* ---- streams -------------------------------------------------------------------------------- */

typedef std::function<void()> operation;

} // namespace sdagd_emu

struct sdagd_emu_stream {
    std::vector<sdagd_emu::operation> queue;
    bool capturing = false, invalidated = false;
    cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
    std::shared_ptr<std::vector<sdagd_emu::operation>> recorded;
};

struct sdagd_emu_graph {
    std::shared_ptr<std::vector<sdagd_emu::operation>> ops;
};

struct sdagd_emu_graph_exec {
    std::shared_ptr<std::vector<sdagd_emu::operation>> ops;
};

namespace sdagd_emu {

static std::mutex stream_lock;
static std::mutex device_lock; /* held while queued work runs: one kernel at a time */
static std::set<cudaStream_t> streams;
static sdagd_emu_stream default_stream;
static thread_local int captures_in_thread = 0; /* streams this thread captures on */
static std::set<std::string> loaded;            /* kernels launched outside a capture */
static size_t kernel_launches = 0, graph_launches = 0;

static bool env_is(const char *name, const char *value) {
    const char *v = getenv(name);
    return v && strcmp(v, value) == 0;
}

/* True (reported) when `name`'s launch must be refused: during a capture, before its module
 * was loaded by a launch outside one, or when SDAGD_EMU_CAPTURE_FAILS=launch. */
bool refused_in_capture(cudaStream_t s, const char *name) {
    s = s ? s : &default_stream;
    std::lock_guard<std::mutex> hold(stream_lock);
    if (!s->capturing) {
        loaded.insert(name);
        return false;
    }
    bool lazy = !env_is("SDAGD_EMU_LAZY_LOADING", "0") && !loaded.count(name);
    if (!lazy && !env_is("SDAGD_EMU_CAPTURE_FAILS", "launch")) return false;
    s->invalidated = true;
    call_error(cudaErrorStreamCaptureUnsupported, "%s launched during a capture %s (the capture is now invalid)", name,
               lazy ? "before any launch outside one loaded its module" : "(SDAGD_EMU_CAPTURE_FAILS=launch)");
    return true;
}

static cudaStream_t resolve(cudaStream_t s) { return s ? s : &default_stream; }

static bool valid_stream(cudaStream_t s) {
    if (!s) return true;
    std::lock_guard<std::mutex> hold(stream_lock);
    return streams.count(s) > 0;
}

/* A call that is not allowed while this thread captures: it invalidates the capture. */
static cudaError_t refuse_during_capture(const char *what) {
    std::lock_guard<std::mutex> hold(stream_lock);
    for (cudaStream_t s : streams)
        if (s->capturing) s->invalidated = true;
    if (default_stream.capturing) default_stream.invalidated = true;
    return call_error(cudaErrorStreamCaptureUnsupported, "%s while a stream is being captured (the capture is now invalid)",
                      what);
}

cudaError_t enqueue(cudaStream_t s, operation op) {
    s = resolve(s);
    if (s->capturing) {
        if (!s->invalidated) s->recorded->push_back(std::move(op));
        return cudaSuccess;
    }
    s->queue.push_back(std::move(op));
    return cudaSuccess;
}

bool capturing(cudaStream_t s) { return resolve(s)->capturing; }

static void run_queue(cudaStream_t s) {
    std::vector<operation> work;
    work.swap(s->queue);
    if (work.empty()) return;
    std::lock_guard<std::mutex> one_at_a_time(device_lock);
    device_access open;
    for (auto &op : work) op();
}

static void run_all(void) {
    std::vector<cudaStream_t> all;
    {
        std::lock_guard<std::mutex> hold(stream_lock);
        all.assign(streams.begin(), streams.end());
    }
    all.push_back(&default_stream);
    for (cudaStream_t s : all) run_queue(s);
}

/* ---- kernels: blocks and fibers ------------------------------------------------------------ */

/* The emulated GPU runs one kernel at a time (device_lock), so the running thread's
 * coordinates, the fibers and __shared__ memory are plain globals. */
kernel_coords coords;

/* One GPU thread of the running block. */
struct fiber {
    void *sp;
    bool done;
};

struct block_runner {
    std::vector<fiber> fibers;
    char *stacks = NULL;
    size_t capacity = 0;  /* fibers whose stacks are mapped */
    void *scheduler_sp = NULL;
    int current = -1;
    launch_body *body = NULL;
    const char *kernel = NULL; /* the running kernel's name, or NULL */
};
static block_runner runner;
static const size_t STACK_BYTES = 64 << 10;

extern "C" void sdagd_emu_switch(void **save_sp, void *load_sp);
/* Saves the callee-saved registers and the stack pointer in *save_sp, and resumes the context
 * saved at load_sp. (The SSE and x87 control words are not switched: no kernel changes them.) (A fiber switch of ucontext's
 * swapcontext also saves the signal mask: a system call per switch, too slow for 256 threads
 * per block over every kernel of a training run.) */
__asm__(".text\n"
        ".globl sdagd_emu_switch\n"
        ".hidden sdagd_emu_switch\n"
        ".type sdagd_emu_switch,@function\n"
        "sdagd_emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
                "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
                "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n"
        ".size sdagd_emu_switch,.-sdagd_emu_switch\n");

static void fiber_main(void) {
    block_runner &r = runner;
    r.body->run_thread();
    r.fibers[(size_t)r.current].done = true;
    void *unused;
    sdagd_emu_switch(&unused, r.scheduler_sp); /* never resumed */
    abort();
}

static bool ensure_stacks(block_runner &r, size_t n) {
    if (n <= r.capacity) return true;
    if (r.stacks) munmap(r.stacks, r.capacity * STACK_BYTES);
    r.capacity = 0;
    r.stacks = (char *)mmap(NULL, n * STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                            -1, 0);
    if (r.stacks == MAP_FAILED) {
        r.stacks = NULL;
        return false;
    }
    for (size_t i = 0; i < n; i++) mprotect(r.stacks + i * STACK_BYTES, page_size, PROT_NONE); /* overflow guard */
    r.capacity = n;
    r.fibers.resize(n);
    return true;
}

/* A fresh context for fiber i: sdagd_emu_switch into it "returns" to fiber_main. */
static void fiber_init(block_runner &r, size_t i) {
    /* the tops staggered by a cache line each, so that 256 fibers' frames do not all fall in the
     * same cache sets (the stacks are 64 KiB apart) */
    uintptr_t top = ((uintptr_t)(r.stacks + (i + 1) * STACK_BYTES - (i % 64) * 64)) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 64); /* fiber_main starts with rsp = top - 8, as after a call */
    memset(sp, 0, 64);
    sp[6] = (uint64_t)(uintptr_t)&fiber_main; /* above the six saved registers */
    r.fibers[i].sp = sp;
    r.fibers[i].done = false;
}

void syncthreads() {
    block_runner &r = runner;
    if (!r.kernel) {
        fprintf(stderr, "sdagd CUDA emulation: __syncthreads called outside a kernel\n");
        abort();
    }
    sdagd_emu_switch(&r.fibers[(size_t)r.current].sp, r.scheduler_sp);
}

static bool reverse_order(void) {
    const char *v = getenv("SDAGD_EMU_REVERSE");
    return v && strcmp(v, "1") == 0;
}

/* Runs one block; false (reported) when a barrier was not reached by all its threads. */
static bool run_block(block_runner &r, const char *name, size_t n, bool reverse) {
    for (size_t i = 0; i < n; i++) fiber_init(r, i);
    const uint3 bd = coords.block_dim;
    size_t alive = n;
    for (int phase = 0; alive > 0; phase++) {
        size_t waiting = 0, finished = 0;
        for (size_t step = 0; step < n; step++) {
            size_t i = reverse ? n - 1 - step : step;
            if (r.fibers[i].done) continue;
            r.current = (int)i;
            coords.thread_idx = {(unsigned)(i % bd.x), (unsigned)(i / bd.x % bd.y), (unsigned)(i / bd.x / bd.y)};
            sdagd_emu_switch(&r.scheduler_sp, r.fibers[i].sp);
            if (r.fibers[i].done)
                finished++;
            else
                waiting++;
        }
        if (waiting && finished) {
            work_error(cudaErrorLaunchFailure,
                       "kernel %s, block (%u, %u, %u): __syncthreads number %d was reached by %zu threads while %zu "
                       "others of the block had returned (a barrier must be reached by all threads or none)",
                       name, coords.block_idx.x, coords.block_idx.y, coords.block_idx.z, phase + 1, waiting, finished);
            return false;
        }
        alive = waiting;
    }
    return true;
}

static void run_grid(const char *name, dim3 grid, dim3 block, launch_body *body) {
    block_runner &r = runner;
    size_t n = (size_t)block.x * block.y * block.z;
    if (!ensure_stacks(r, n)) {
        work_error(cudaErrorMemoryAllocation, "kernel %s: no memory for %zu fiber stacks", name, n);
        return;
    }
    bool reverse = reverse_order();
    size_t blocks = (size_t)grid.x * grid.y * grid.z;
    r.body = body;
    r.kernel = name;
    coords.block_dim = {block.x, block.y, block.z};
    coords.grid_dim = {grid.x, grid.y, grid.z};
    for (size_t step = 0; step < blocks; step++) {
        size_t b = reverse ? blocks - 1 - step : step;
        coords.block_idx = {(unsigned)(b % grid.x), (unsigned)(b / grid.x % grid.y), (unsigned)(b / grid.x / grid.y)};
        if (!run_block(r, name, n, reverse)) break;
    }
    r.kernel = NULL;
    r.body = NULL;
    r.current = -1;
}

cudaError_t launch(const char *name, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                   launch_body *body, const void *const *pointers, int n_pointers) {
    std::shared_ptr<launch_body> owned(body);
    size_t threads = (size_t)block.x * block.y * block.z;
    if (threads < 1 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x < 1 ||
        grid.y < 1 || grid.z < 1 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535 || shared_bytes > 49152)
        return call_error(cudaErrorInvalidConfiguration,
                          "kernel %s launched with grid (%u, %u, %u), block (%u, %u, %u), %zu bytes of shared memory: "
                          "outside the GPU's limits", name, grid.x, grid.y, grid.z, block.x, block.y, block.z,
                          shared_bytes);
    if (!valid_stream(stream)) return call_error(cudaErrorInvalidResourceHandle, "kernel %s: unknown stream", name);
    for (int i = 0; i < n_pointers; i++)
        if (pointers[i] && !is_device(pointers[i]))
            return call_error(cudaErrorInvalidValue,
                              "kernel %s: its pointer argument number %d (%p) is not device memory", name, i + 1,
                              pointers[i]);
    if (refused_in_capture(stream, name)) return cudaErrorStreamCaptureUnsupported;
    kernel_launches++;
    return enqueue(stream, [name, grid, block, owned]() { run_grid(name, grid, block, owned.get()); });
}

/* ---- faults --------------------------------------------------------------------------------- */

static struct sigaction previous_segv, previous_bus;

static void on_fault(int sig, siginfo_t *info, void *uctx) {
    char what[300], line[700];
    if (info->si_code <= 0) { /* sent (re-raised by a handler before this one): no address to tell */
        sigaction(sig, sig == SIGSEGV ? &previous_segv : &previous_bus, NULL);
        raise(sig);
        return;
    }
    describe(info->si_addr, what, sizeof what);
    block_runner &r = runner;
    if (r.kernel)
        snprintf(line, sizeof line,
                 "sdagd CUDA emulation: kernel %s, block (%u, %u, %u), thread (%u, %u, %u) accessed %p: %s\n",
                 r.kernel, coords.block_idx.x, coords.block_idx.y, coords.block_idx.z, coords.thread_idx.x,
                 coords.thread_idx.y, coords.thread_idx.z, info->si_addr, what);
    else
        snprintf(line, sizeof line, "sdagd CUDA emulation: host code accessed %p: %s%s\n", info->si_addr, what,
                 strncmp(what, "byte", 4) == 0 ? " (device memory is not readable from the host)" : "");
    report_line(line);
    /* then whoever handled it before (Python's faulthandler prints the traceback) */
    sigaction(sig, sig == SIGSEGV ? &previous_segv : &previous_bus, NULL);
    (void)uctx;
}

__attribute__((destructor)) static void print_stats(void) {
    if (!env_is("SDAGD_EMU_STATS", "1")) return;
    char line[200];
    snprintf(line, sizeof line, "sdagd CUDA emulation: %zu kernel launches, %zu graph launches\n", kernel_launches,
             graph_launches);
    report_line(line);
}

__attribute__((constructor)) static void install(void) {
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
    sigaction(SIGBUS, &sa, &previous_bus);
}

static cudaError_t check_copy(const void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, bool *to_host,
                              bool *from_host) {
    bool dst_dev = is_device(dst), src_dev = is_device(src);
    if (kind == cudaMemcpyDefault) kind = dst_dev ? (src_dev ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
                                                  : (src_dev ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    bool want_dst = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool want_src = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (want_dst != dst_dev || want_src != src_dev)
        return call_error(cudaErrorInvalidValue, "cudaMemcpyAsync of kind %d from %s %p to %s %p", (int)kind,
                          src_dev ? "device" : "host", src, dst_dev ? "device" : "host", dst);
    size_t room;
    if (dst_dev && !device_range(dst, bytes, &room))
        return call_error(cudaErrorInvalidValue, "cudaMemcpyAsync of %zu bytes to %p: only %zu bytes of its allocation "
                          "lie there", bytes, dst, room);
    if (src_dev && !device_range(src, bytes, &room))
        return call_error(cudaErrorInvalidValue, "cudaMemcpyAsync of %zu bytes from %p: only %zu bytes of its "
                          "allocation lie there", bytes, src, room);
    *to_host = !dst_dev;
    *from_host = !src_dev;
    return cudaSuccess;
}

} // namespace sdagd_emu

using namespace sdagd_emu;

/* ---- the API --------------------------------------------------------------------------------- */

EXPORT cudaError_t cudaGetDeviceCount(int *count) {
    const char *none = getenv("SDAGD_EMU_NO_DEVICE");
    *count = 0;
    if (none && strcmp(none, "1") == 0) return call_error(cudaErrorNoDevice, "SDAGD_EMU_NO_DEVICE=1");
    *count = 1;
    return cudaSuccess;
}

EXPORT cudaError_t cudaDriverGetVersion(int *version) {
    *version = CUDART_VERSION;
    return cudaSuccess;
}

EXPORT cudaError_t cudaRuntimeGetVersion(int *version) {
    *version = CUDART_VERSION;
    return cudaSuccess;
}

EXPORT const char *cudaGetErrorString(cudaError_t error) {
    static thread_local char text[1200];
    if (error == last_error && error != cudaSuccess && last_detail[0]) {
        snprintf(text, sizeof text, "%s [emulation: %s]", error_name(error), last_detail);
        return text;
    }
    return error_name(error);
}

EXPORT cudaError_t cudaGetLastError(void) {
    cudaError_t err = last_error;
    last_error = cudaSuccess;
    return err;
}

EXPORT cudaError_t cudaPeekAtLastError(void) { return last_error; }

/* The emulated GPU's memory: SDAGD_EMU_MEMORY_MB, 4 GiB by default (this machine's memory
 * stands in for it, so a request beyond that fails as cudaMalloc does on a full GPU). */
static size_t capacity(void) {
    const char *v = getenv("SDAGD_EMU_MEMORY_MB");
    return (v ? (size_t)strtoull(v, NULL, 10) : 4096) << 20;
}

/* 0xFF bytes to map allocations of up to FILL_BYTES from, copy-on-write: a fresh allocation reads
 * as NaN without its pages being written first (cuBLAS's 32 MiB workspaces are never touched). */
static const size_t FILL_BYTES = (size_t)64 << 20;
static int fill_fd = -2;

static int fill_file(void) {
    if (fill_fd != -2) return fill_fd;
    fill_fd = memfd_create("sdagd_emu_nan", MFD_CLOEXEC);
    if (fill_fd >= 0 && ftruncate(fill_fd, (off_t)FILL_BYTES) == 0) {
        std::vector<char> chunk((size_t)1 << 20, (char)0xFF);
        for (size_t at = 0; at < FILL_BYTES; at += chunk.size())
            if (pwrite(fill_fd, chunk.data(), chunk.size(), (off_t)at) != (ssize_t)chunk.size()) {
                close(fill_fd);
                fill_fd = -1;
                break;
            }
    } else if (fill_fd >= 0) {
        close(fill_fd);
        fill_fd = -1;
    }
    return fill_fd;
}

EXPORT cudaError_t cudaMalloc(void **ptr, size_t bytes) {
    *ptr = NULL;
    if (captures_in_thread) return refuse_during_capture("cudaMalloc");
    if (bytes == 0) return cudaSuccess;
    {
        std::lock_guard<std::mutex> hold(memory_lock);
        if (bytes > capacity() - allocated)
            return call_error(cudaErrorMemoryAllocation, "cudaMalloc of %zu bytes: the emulated GPU has %zu of its %zu "
                              "bytes free (SDAGD_EMU_MEMORY_MB)", bytes, capacity() - allocated, capacity());
        allocated += bytes;
    }
    size_t data_len = (bytes + page_size - 1) / page_size * page_size;
    size_t map_len = data_len + 2 * page_size;
    char *map = (char *)mmap(NULL, map_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) {
        std::lock_guard<std::mutex> hold(memory_lock);
        allocated -= bytes;
        return call_error(cudaErrorMemoryAllocation, "cudaMalloc of %zu bytes: mmap failed", bytes);
    }
    allocation a;
    a.map = map;
    a.map_len = map_len;
    a.data = map + page_size;
    a.data_len = data_len;
    a.bytes = bytes;
    a.user = a.data + data_len - ((bytes + 3) & ~(size_t)3);
    a.sealed = false;
    /* NaN as float or double: nothing may read before writing */
    std::lock_guard<std::mutex> hold(memory_lock);
    int fd = data_len <= FILL_BYTES ? fill_file() : -1;
    if (fd < 0 || mmap(a.data, data_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) {
        mprotect(a.data, data_len, PROT_READ | PROT_WRITE);
        memset(a.data, 0xFF, data_len);
    }
    if (open_count == 0 && protect_enabled()) mprotect(a.data, data_len, PROT_NONE);
    allocations[(uintptr_t)a.user] = a;
    *ptr = a.user;
    return cudaSuccess;
}

EXPORT cudaError_t cudaFree(void *ptr) {
    if (captures_in_thread) return refuse_during_capture("cudaFree");
    if (!ptr) return cudaSuccess;
    run_all(); /* cudaFree synchronises the device */
    std::lock_guard<std::mutex> hold(memory_lock);
    auto it = allocations.find((uintptr_t)ptr);
    if (it == allocations.end())
        return call_error(cudaErrorInvalidValue, "cudaFree(%p): not an address cudaMalloc returned", ptr);
    munmap(it->second.map, it->second.map_len);
    allocated -= it->second.bytes;
    allocations.erase(it);
    return cudaSuccess;
}

EXPORT cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, enum cudaMemcpyKind kind,
                                   cudaStream_t stream) {
    if (!valid_stream(stream)) return call_error(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: unknown stream");
    if (bytes == 0) return cudaSuccess;
    bool to_host = false, from_host = false;
    cudaError_t err = check_copy(dst, src, bytes, kind, &to_host, &from_host);
    if (err != cudaSuccess) return err;
    if ((to_host || from_host) && (capturing(stream) || captures_in_thread))
        return refuse_during_capture("cudaMemcpyAsync between pageable host memory and the device");
    if (from_host && to_host) {
        memcpy(dst, src, bytes);
        return cudaSuccess;
    }
    if (from_host) { /* staged: the host buffer may be reused as soon as this returns */
        auto staged = std::make_shared<std::vector<char>>((const char *)src, (const char *)src + bytes);
        return enqueue(stream, [dst, staged]() { memcpy(dst, staged->data(), staged->size()); });
    }
    if (to_host) { /* to pageable memory: returns when the copy is done */
        run_queue(resolve(stream));
        device_access open;
        memcpy(dst, src, bytes);
        return take_pending();
    }
    return enqueue(stream, [dst, src, bytes]() { memmove(dst, src, bytes); });
}

EXPORT cudaError_t cudaMemsetAsync(void *dst, int value, size_t bytes, cudaStream_t stream) {
    if (!valid_stream(stream)) return call_error(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: unknown stream");
    size_t room;
    if (bytes && !device_range(dst, bytes, &room))
        return call_error(cudaErrorInvalidValue, "cudaMemsetAsync of %zu bytes at %p: only %zu bytes of device "
                          "memory lie there", bytes, dst, room);
    return enqueue(stream, [dst, value, bytes]() { memset(dst, value, bytes); });
}

EXPORT cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
    (void)flags;
    *stream = new sdagd_emu_stream();
    std::lock_guard<std::mutex> hold(stream_lock);
    streams.insert(*stream);
    return cudaSuccess;
}

EXPORT cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    if (!stream || !valid_stream(stream)) return call_error(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: unknown stream");
    if (stream->capturing) return call_error(cudaErrorStreamCaptureUnsupported, "cudaStreamDestroy of a capturing stream");
    run_queue(stream); /* its work completes first */
    {
        std::lock_guard<std::mutex> hold(stream_lock);
        streams.erase(stream);
    }
    delete stream;
    return cudaSuccess;
}

EXPORT cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (!valid_stream(stream)) return call_error(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: unknown stream");
    if (capturing(stream) || captures_in_thread) return refuse_during_capture("cudaStreamSynchronize");
    run_queue(resolve(stream));
    return take_pending();
}

EXPORT cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode) {
    if (!valid_stream(stream)) return call_error(cudaErrorInvalidResourceHandle, "cudaStreamBeginCapture: unknown stream");
    cudaStream_t s = resolve(stream);
    if (!stream) return call_error(cudaErrorStreamCaptureUnsupported, "capture on the legacy default stream");
    if (s->capturing) return call_error(cudaErrorInvalidValue, "cudaStreamBeginCapture: the stream already captures");
    if (env_is("SDAGD_EMU_CAPTURE_FAILS", "begin"))
        return call_error(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture refused (SDAGD_EMU_CAPTURE_FAILS=begin)");
    s->capturing = true;
    s->invalidated = false;
    s->mode = mode;
    s->recorded = std::make_shared<std::vector<operation>>();
    if (mode != cudaStreamCaptureModeRelaxed) captures_in_thread++;
    return cudaSuccess;
}

EXPORT cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
    *graph = NULL;
    if (!stream || !valid_stream(stream)) return call_error(cudaErrorInvalidResourceHandle, "cudaStreamEndCapture: unknown stream");
    if (!stream->capturing) return call_error(cudaErrorInvalidValue, "cudaStreamEndCapture: the stream does not capture");
    stream->capturing = false;
    if (stream->mode != cudaStreamCaptureModeRelaxed) captures_in_thread--;
    auto ops = std::move(stream->recorded);
    if (stream->invalidated)
        return call_error(cudaErrorStreamCaptureInvalidated, "the capture was invalidated by a call not allowed during it");
    if (env_is("SDAGD_EMU_CAPTURE_FAILS", "end"))
        return call_error(cudaErrorStreamCaptureInvalidated, "cudaStreamEndCapture refused (SDAGD_EMU_CAPTURE_FAILS=end)");
    *graph = new sdagd_emu_graph{ops};
    return cudaSuccess;
}

EXPORT cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *status) {
    cudaStream_t s = resolve(stream);
    *status = !s->capturing ? cudaStreamCaptureStatusNone
                            : s->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

EXPORT cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags) {
    (void)flags;
    *exec = NULL;
    if (!graph) return call_error(cudaErrorInvalidValue, "cudaGraphInstantiate of NULL");
    if (env_is("SDAGD_EMU_CAPTURE_FAILS", "instantiate"))
        return call_error(cudaErrorInvalidValue, "cudaGraphInstantiate refused (SDAGD_EMU_CAPTURE_FAILS=instantiate)");
    *exec = new sdagd_emu_graph_exec{std::make_shared<std::vector<operation>>(*graph->ops)};
    return cudaSuccess;
}

EXPORT cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    if (!exec) return call_error(cudaErrorInvalidValue, "cudaGraphLaunch of NULL");
    if (!valid_stream(stream)) return call_error(cudaErrorInvalidResourceHandle, "cudaGraphLaunch: unknown stream");
    if (capturing(stream)) return refuse_during_capture("cudaGraphLaunch");
    auto ops = exec->ops;
    graph_launches++;
    return enqueue(stream, [ops]() {
        for (auto &op : *ops) op();
    });
}

EXPORT cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}

EXPORT cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}
