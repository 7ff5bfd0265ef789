/*
 * Data sets on a network's device: copied there once and checked on the copy (labels in
 * range, inputs finite), then read by every epoch of training and by the evaluation.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"
#include "error.h"
#include "network.h"

struct sdagd_dataset {
    uint64_t serial;         /* unique in the process */
    const sdagd_mlp *owner;        /* for its backend and context */
    int64_t N;
    int n0;
    const float *X;          /* (N, n0) backend memory: a copy, never the caller's arrays */
    const int32_t *labels;   /* (N) */
    int owned;               /* X and labels were allocated here */
    int32_t max_label;       /* largest label: a network with fewer outputs cannot train on it */
};

/* The data checked on the copy the core will read, so that no later change to the caller's
 * arrays can reach training: labels in [0, n_out) (their maximum kept), inputs finite. */
static sdagd_status check_data_copy(const sdagd_mlp *net, const float *X, const int32_t *labels, int64_t N,
                                    int32_t *max_label) {
    sdagd_status st = mlp_check_labels(net, labels, N);
    if (st != SDAGD_OK) return st;
    int32_t top = 0;
    for (int64_t i = 0; i < N; i++) top = labels[i] > top ? labels[i] : top;
    *max_label = top;
    size_t n0 = (size_t)net->sizes[0], count = (size_t)N * n0;
    for (size_t i = 0; i < count; i++)
        if (!isfinite(X[i]))
            return sdagd_fail(SDAGD_ERR_ARG, "X contains NaN or inf at row %zu, column %zu: the data are bad "
                              "(this is not a divergence); clean or rescale them", i / n0, i % n0);
    return SDAGD_OK;
}

/* The data are copied once into memory of the network's backend (the GPU's, or the host's on
 * the CPU) and checked there: training then reads only this copy, so the caller's arrays may
 * change, or a memory-mapped file shrink, during a fit without reaching it (the one window
 * is the copy itself). */
sdagd_status sdagd_dataset_create(sdagd_dataset **out, const sdagd_mlp *net, const float *X, const int32_t *labels, int64_t N) {
    *out = NULL;
    if (N < 1 || N > INT32_MAX) return sdagd_fail(SDAGD_ERR_ARG, "a data set needs 1 to 2**31-1 rows, got %lld", (long long)N);
    sdagd_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return sdagd_fail(SDAGD_ERR_NOMEM, "out of memory");
    *ds = (sdagd_dataset){next_serial(), net, N, net->sizes[0], NULL, NULL, 0, 0};
    size_t x_bytes = (size_t)N * (size_t)ds->n0 * sizeof(float), y_bytes = (size_t)N * sizeof(int32_t);
    float *dx = NULL, *hx = NULL;
    int32_t *dy = NULL, *hy = NULL;
    sdagd_status st = mlp_alloc_on(net, (void **)&dx, x_bytes);
    if (st == SDAGD_OK) st = mlp_alloc_on(net, (void **)&dy, y_bytes);
    if (st == SDAGD_OK && net->be->host_memory) { /* the copy is the data set */
        hx = dx;
        hy = dy;
    } else if (st == SDAGD_OK) { /* checked on the host, then uploaded: what is checked is what trains */
        hx = malloc(x_bytes);
        hy = malloc(y_bytes);
        if (!hx || !hy) st = sdagd_fail(SDAGD_ERR_NOMEM, "out of memory copying the data set");
    }
    if (st == SDAGD_OK) {
        memcpy(hx, X, x_bytes);
        memcpy(hy, labels, y_bytes);
        st = check_data_copy(net, hx, hy, N, &ds->max_label);
    }
    if (st == SDAGD_OK && !net->be->host_memory) {
        st = net->be->upload(net->ctx, dx, hx, x_bytes);
        if (st == SDAGD_OK) st = net->be->upload(net->ctx, dy, hy, y_bytes);
    }
    if (!net->be->host_memory) {
        free(hx);
        free(hy);
    }
    if (st != SDAGD_OK) {
        mlp_free_on(net, dx);
        mlp_free_on(net, dy);
        free(ds);
        return st;
    }
    ds->X = dx;
    ds->labels = dy;
    ds->owned = 1;
    *out = ds;
    return SDAGD_OK;
}

void sdagd_dataset_free(sdagd_dataset *ds) {
    if (!ds) return;
    if (ds->owned) {
        mlp_free_on(ds->owner, (void *)ds->X);
        mlp_free_on(ds->owner, (void *)ds->labels);
    }
    free(ds);
}

int64_t sdagd_dataset_rows(const sdagd_dataset *ds) { return ds->N; }
const float *dataset_inputs(const sdagd_dataset *ds) { return ds->X; }
const int32_t *dataset_labels(const sdagd_dataset *ds) { return ds->labels; }
int dataset_device(const sdagd_dataset *ds) { return ds->owner->device; }
int dataset_width(const sdagd_dataset *ds) { return ds->n0; }
int32_t dataset_max_label(const sdagd_dataset *ds) { return ds->max_label; }
uint64_t dataset_serial(const sdagd_dataset *ds) { return ds->serial; }

uint64_t next_serial(void) {
    static _Atomic uint64_t counter = 1;
    return counter++;
}
