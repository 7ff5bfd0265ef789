/*
 * Which backend serves a device. The CPU backend is linked in; the CUDA backend is its own
 * shared library (libsdagd_cuda.so, built when nvcc is found), loaded on the first request
 * for a CUDA device, so that the core never needs the CUDA runtime otherwise.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "error.h"

static pthread_mutex_t cuda_lock = PTHREAD_MUTEX_INITIALIZER;
static char cuda_path[4096];
static const sdagd_backend_ops *cuda_ops;  /* once loaded and checked */
static sdagd_status cuda_status = SDAGD_OK; /* a failure to load is final for the process */
static char cuda_message[512];

void sdagd_set_cuda_library(const char *path) {
    pthread_mutex_lock(&cuda_lock);
    snprintf(cuda_path, sizeof cuda_path, "%s", path ? path : "");
    pthread_mutex_unlock(&cuda_lock);
}

static const sdagd_host_services host_services = {sdagd_fail};

/* With cuda_lock held. */
static sdagd_status load_cuda(void) {
    if (cuda_ops) return SDAGD_OK;
    if (cuda_status != SDAGD_OK) return sdagd_fail(cuda_status, "%s", cuda_message);
    if (!cuda_path[0])
        return sdagd_fail(SDAGD_ERR_DEVICE, "this build of sdagd has no CUDA backend (it was built without nvcc); "
                                            "rebuild on a machine with the CUDA toolkit, or use device='cpu'");
    void *lib = dlopen(cuda_path, RTLD_NOW | RTLD_LOCAL);
    sdagd_status st = SDAGD_OK;
    if (!lib) {
        const char *why = dlerror();
        st = sdagd_fail(SDAGD_ERR_DEVICE,
                        "the CUDA backend could not be loaded (the CUDA runtime or cuBLAS libraries are "
                        "missing here?): %s",
                        why ? why : "unknown reason");
    } else {
        sdagd_cuda_entry_fn entry;
        *(void **)&entry = dlsym(lib, SDAGD_CUDA_ENTRY);
        const sdagd_backend_ops *ops = entry ? entry(&host_services) : NULL;
        void *probe = NULL;
        if (!entry)
            st = sdagd_fail(SDAGD_ERR_DEVICE, "%s is not an sdagd CUDA backend (no %s)", cuda_path, SDAGD_CUDA_ENTRY);
        else if (!ops)
            st = SDAGD_ERR_DEVICE; /* the entry said why: no driver, no device */
        else if ((st = ops->context_create(&probe)) == SDAGD_OK)
            ops->context_free(probe);
        if (st == SDAGD_OK) {
            cuda_ops = ops;
            return SDAGD_OK;
        }
    }
    cuda_status = st;
    snprintf(cuda_message, sizeof cuda_message, "%s", sdagd_last_error());
    return st;
}

sdagd_status backend_for_device(int device, const sdagd_backend_ops **ops) {
    *ops = NULL;
    if (device == SDAGD_DEVICE_CPU) {
        *ops = cpu_backend();
        return SDAGD_OK;
    }
    if (device != SDAGD_DEVICE_CUDA) return sdagd_fail(SDAGD_ERR_ARG, "unknown device code %d", device);
    pthread_mutex_lock(&cuda_lock);
    sdagd_status st = load_cuda();
    *ops = cuda_ops;
    pthread_mutex_unlock(&cuda_lock);
    return st;
}

sdagd_status sdagd_device_check(int device) {
    const sdagd_backend_ops *ops;
    return backend_for_device(device, &ops);
}
