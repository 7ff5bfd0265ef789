/*
 * Shared by the core's translation units only (not the public interface, sdagd.h): each
 * concern's header, and the optimizer's struct and helpers.
 */
#ifndef SDAGD_INTERNAL_H
#define SDAGD_INTERNAL_H

#include "backend.h"
#include "dataset.h"
#include "error.h"
#include "network.h"
#include "rng.h"
#include "sdagd.h"

/* ---- Optimizers. */
struct optimizer {
    optim_config config;
    const mlp *net;        /* made for this network's shape and backend (not owned) */
    size_t n;              /* P */
    int n_slabs;           /* state slabs in use, 0..2 */
    float *state[2];       /* (P) each, backend memory; meaning per kind: tables.h */
    int64_t step;          /* steps taken */
};

/* The hyperparameters as the kernels read them, with this epoch's radius. */
optim_hyper optim_hyper_for(const optimizer *opt, int64_t epoch);
/* Does step `step` of this optimizer need the Hessian diagonal? */
int optim_needs_hessian_at(const optimizer *opt, int64_t step);
/* When optimizers of this kind need the Hessian diagonal (tables.h: sdagd_curvature_need). */
int optim_curvature_need(int kind);
/* Does this optimizer use the Hessian diagonal at all (SDAGD, SDLM)? */
int optim_uses_curvature(const optimizer *opt);
const char *optimizer_name(int kind);

#endif
