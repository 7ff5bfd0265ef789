/* Optimizer internals shared with the training loop (train.c). */
#ifndef SDAGD_OPTIM_H
#define SDAGD_OPTIM_H

#include "internal.h"

struct optimizer {
    optim_config config;
    size_t n;              /* P */
    int n_slabs;           /* state slabs in use, 0..2 */
    float *state[2];       /* (P) each; meaning per kind, see slabs_for() in optim.c */
    float *hess_scratch;   /* (P) SDLM: this step's h before it enters the average */
    int n_groups;          /* SDAGD norm groups: layers, or 1 for the global norm */
    size_t *group_start;   /* (n_groups + 1) slab offsets of the groups */
    int64_t step;          /* steps taken */
};

/* Where this step's Hessian diagonal must be written, or NULL when the step needs none. */
float *optim_hessian_target(optimizer *opt);

/* theta <- update(theta, g, state); accumulates SDAGD diagnostics into stats (may be NULL). */
sdagd_status optim_step(optimizer *opt, float *theta, const float *g, train_stats *stats);

#endif
