/*
 * The optimizer inside the core (optim.c): its struct, and what the trainer asks of it (the
 * hyperparameters as the kernels read them, and when it needs the curvature). The rows it
 * is made from are in tables.h.
 */
#ifndef SDAGD_OPTIMIZER_H
#define SDAGD_OPTIMIZER_H

#include "backend.h"
#include "network.h"
#include "sdagd.h"

struct sdagd_optimizer {
    sdagd_optim_config config;
    const sdagd_mlp *net;        /* made for this network's shape and backend (not owned) */
    size_t n;              /* P */
    int n_slabs;           /* state slabs in use, 0..2 */
    float *state[2];       /* (P) each, backend memory; meaning per kind: tables.h */
    int64_t step;          /* steps taken */
};

/* The hyperparameters as the kernels read them, with this epoch's radius. */
optim_hyper optim_hyper_for(const sdagd_optimizer *opt, int64_t epoch);
/* Does step `step` of this optimizer need the Hessian diagonal? */
int optim_needs_hessian_at(const sdagd_optimizer *opt, int64_t step);
/* When optimizers of this kind need the Hessian diagonal (tables.h: sdagd_curvature_need). */
int optim_curvature_need(int kind);
/* Does this optimizer use the Hessian diagonal at all (SDAGD, SDLM)? */
int optim_uses_curvature(const sdagd_optimizer *opt);
const char *optimizer_name(int kind);

#endif /* SDAGD_OPTIMIZER_H */
