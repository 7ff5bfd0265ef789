/* What emu_cublas.cpp uses of the emulated runtime (emu_runtime.cpp). Test code. */
#ifndef SDAGD_EMU_INTERNAL_H
#define SDAGD_EMU_INTERNAL_H

#include <functional>

#include "cuda_runtime.h"

namespace sdagd_emu {

/* While one exists, device memory is readable and writable (it is PROT_NONE otherwise). */
struct device_access {
    device_access();
    ~device_access();
    device_access(const device_access &) = delete;
    device_access &operator=(const device_access &) = delete;
};

/* [p, p + bytes) lies in one device allocation; *room: the bytes of it from p on (0 if none). */
bool device_range(const void *p, size_t bytes, size_t *room);
bool is_device(const void *p);

/* The allocation at p (as cudaMalloc returned it) becomes inaccessible for good, and its pages
 * are dropped: for cuBLAS's workspace, which nothing emulated uses. */
void seal(const void *p);

void report_line(const char *line); /* to stderr and SDAGD_EMU_LOG */
cudaError_t call_error(cudaError_t err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void work_error(cudaError_t err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A launch of `name` that the capture on `stream` refuses (reported, capture invalidated). */
bool refused_in_capture(cudaStream_t stream, const char *name);

/* Queues op on the stream (or records it, while the stream captures). */
cudaError_t enqueue(cudaStream_t stream, std::function<void()> op);

} // namespace sdagd_emu

#endif
