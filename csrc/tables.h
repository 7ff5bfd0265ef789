/*
 * The descriptor tables: every optimizer and every activation the core implements, one row
 * each. Everything else is generated from these rows: the enum codes (sdagd.h), validation of
 * hyperparameters (optim.c), the one dispatch of the per-element update (kernels.h) that
 * both backends call, whether and when the curvature is computed, the binding's exports
 * (_core.optimizer_table(), _core.sdagd_activation_table()) and from them the Python classes and
 * the CLI's choices.
 *
 * Adding an optimizer: a row in SDAGD_OPTIMIZERS and its hyperparameters in
 * SDAGD_HYPERPARAMETERS here, its per-element update in kernels.h (optimizer_update), its
 * float64 reference in tests/reference.py and a test (README, "Adding an optimizer").
 *
 * X-macro lists (expanded with a macro of the caller's choosing) rather than arrays, so that
 * C code (an enum, a switch in a kernel) and data (the arrays of optim.c) both come from them.
 */
#ifndef SDAGD_TABLES_H
#define SDAGD_TABLES_H

/* ---- optimizers ---------------------------------------------------------------------------
 * X(code, name, state slabs, slabs only when this slot is nonzero (-1: always),
 *   curvature, step-size slot, "what the state slabs hold")
 * curvature: SDAGD_CURVATURE_NEVER, SDAGD_CURVATURE_ALWAYS (every step) or SDAGD_CURVATURE_EVERY (every
 * hessian_every steps). The step-size slot is the hyperparameter a schedule acts on. Codes
 * are stable (saved files and records name optimizers by name, the core by code): new rows
 * go at the end. */
#define SDAGD_OPTIMIZERS(X)                                                                                  \
    X(SDAGD_OPT_SGD, "SGD", 1, SDAGD_HP_MOMENTUM, SDAGD_CURVATURE_NEVER, SDAGD_HP_LR, "momentum buffer m (only with momentum > 0)")  \
    X(SDAGD_OPT_SDAGD, "SDAGD", 1, -1, SDAGD_CURVATURE_EVERY, SDAGD_HP_RADIUS, "the h in use: kept between steps, or averaged") \
    X(SDAGD_OPT_SDLM, "SDLM", 1, -1, SDAGD_CURVATURE_ALWAYS, SDAGD_HP_LR, "running average hbar of h")                         \
    X(SDAGD_OPT_ADAGRAD, "AdaGrad", 1, -1, SDAGD_CURVATURE_NEVER, SDAGD_HP_LR, "sum of g^2")                                   \
    X(SDAGD_OPT_ADADELTA, "AdaDelta", 2, -1, SDAGD_CURVATURE_NEVER, SDAGD_HP_LR, "averages of g^2 and of delta^2")             \
    X(SDAGD_OPT_ADAM, "Adam", 2, -1, SDAGD_CURVATURE_NEVER, SDAGD_HP_LR, "first and second moments m, v")                     \
    X(SDAGD_OPT_RMSPROP, "RMSprop", 1, -1, SDAGD_CURVATURE_NEVER, SDAGD_HP_LR, "running average v of g^2")

/* The hyperparameter slots of sdagd_optim_config.hyper: one per meaning, shared by the optimizers
 * that have it (each with its own default and range below). */
#define SDAGD_HYPER_SLOTS(X)                                                                    \
    X(SDAGD_HP_LR) X(SDAGD_HP_MOMENTUM) X(SDAGD_HP_RADIUS) X(SDAGD_HP_EPS) X(SDAGD_HP_NORM) X(SDAGD_HP_HESSIAN_EVERY) X(SDAGD_HP_MAX_STEP) \
    X(SDAGD_HP_MU) X(SDAGD_HP_GAMMA) X(SDAGD_HP_BETA1) X(SDAGD_HP_BETA2) X(SDAGD_HP_RHO) X(SDAGD_HP_AVERAGE) X(SDAGD_HP_HESSIAN_SCALE)

/* Hyperparameters, in each optimizer's argument order:
 * H(optimizer, slot, "name", default, low, low closed, high, high closed, type, "meaning")
 * types: SDAGD_HYPER_REAL; SDAGD_HYPER_INT (a C int); SDAGD_HYPER_CHOICE (a code, named by the choices of
 * SDAGD_CHOICES); SDAGD_HYPER_OPTIONAL (a real, or 0 for "off": None in Python). POS is (0, inf):
 * a positive finite number. Every hyperparameter is assignable between steps (Python rebuilds
 * the core optimizer with its state). */
#define SDAGD_HYPERPARAMETERS(H)                                                                                   \
    H(SDAGD_OPT_SGD, SDAGD_HP_LR, "lr", 0.0, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "learning rate")                       \
    H(SDAGD_OPT_SGD, SDAGD_HP_MOMENTUM, "momentum", 0.0, 0.0, 1, 1.0, 0, SDAGD_HYPER_REAL, "m <- momentum m + g")                     \
    H(SDAGD_OPT_SDAGD, SDAGD_HP_RADIUS, "radius", 0.0, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "R, mu_k = ||g|| / R")      \
    H(SDAGD_OPT_SDAGD, SDAGD_HP_EPS, "eps", 1e-8, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "guards 0/0")                                \
    H(SDAGD_OPT_SDAGD, SDAGD_HP_NORM, "norm", 0.0, 0.0, 1, 1.0, 1, SDAGD_HYPER_CHOICE, "norm groups of mu_k: layer or global")       \
    H(SDAGD_OPT_SDAGD, SDAGD_HP_HESSIAN_EVERY, "hessian_every", 1.0, 1.0, 1, 2147483647.0, 1, SDAGD_HYPER_INT,                        \
      "recompute h every N steps")                                                                                  \
    H(SDAGD_OPT_SDAGD, SDAGD_HP_MAX_STEP, "max_step", 0.0, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_OPTIONAL,                                 \
      "cap on each norm group's step length")                                                                       \
    H(SDAGD_OPT_SDAGD, SDAGD_HP_AVERAGE, "average", 0.0, 0.0, 0, 1.0, 1, SDAGD_HYPER_OPTIONAL,                                        \
      "weight gamma of a running average of h")                                                                     \
    H(SDAGD_OPT_SDAGD, SDAGD_HP_HESSIAN_SCALE, "hessian_scale", 1.0, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "h is multiplied by this") \
    H(SDAGD_OPT_SDLM, SDAGD_HP_LR, "lr", 0.0, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "learning rate")                      \
    H(SDAGD_OPT_SDLM, SDAGD_HP_MU, "mu", 0.0, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "damping added to hbar")             \
    H(SDAGD_OPT_SDLM, SDAGD_HP_GAMMA, "gamma", 0.05, 0.0, 0, 1.0, 1, SDAGD_HYPER_REAL, "weight of the newest h in hbar")             \
    H(SDAGD_OPT_ADAGRAD, SDAGD_HP_LR, "lr", 1e-2, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "learning rate")                             \
    H(SDAGD_OPT_ADAGRAD, SDAGD_HP_EPS, "eps", 1e-10, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "added to sqrt(sum)")                     \
    H(SDAGD_OPT_ADADELTA, SDAGD_HP_LR, "lr", 1.0, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "learning rate")                             \
    H(SDAGD_OPT_ADADELTA, SDAGD_HP_RHO, "rho", 0.9, 0.0, 1, 1.0, 0, SDAGD_HYPER_REAL, "decay of the averages")                        \
    H(SDAGD_OPT_ADADELTA, SDAGD_HP_EPS, "eps", 1e-6, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "added under the square roots")           \
    H(SDAGD_OPT_ADAM, SDAGD_HP_LR, "lr", 1e-3, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "learning rate")                                \
    H(SDAGD_OPT_ADAM, SDAGD_HP_BETA1, "beta1", 0.9, 0.0, 1, 1.0, 0, SDAGD_HYPER_REAL, "decay of m")                                   \
    H(SDAGD_OPT_ADAM, SDAGD_HP_BETA2, "beta2", 0.999, 0.0, 1, 1.0, 0, SDAGD_HYPER_REAL, "decay of v")                                 \
    H(SDAGD_OPT_ADAM, SDAGD_HP_EPS, "eps", 1e-8, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "added to sqrt(v)")                          \
    H(SDAGD_OPT_RMSPROP, SDAGD_HP_LR, "lr", 1e-2, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "learning rate")                             \
    H(SDAGD_OPT_RMSPROP, SDAGD_HP_RHO, "rho", 0.99, 0.0, 1, 1.0, 0, SDAGD_HYPER_REAL, "decay of v (torch's alpha)")                   \
    H(SDAGD_OPT_RMSPROP, SDAGD_HP_EPS, "eps", 1e-8, 0.0, 0, HUGE_VAL, 0, SDAGD_HYPER_REAL, "added to sqrt(v)")

/* The names of SDAGD_HYPER_CHOICE codes, 0, 1, ... */
#define SDAGD_CHOICES(C) C(SDAGD_HP_NORM, "layer,global")

/* ---- activations --------------------------------------------------------------------------
 * X(code, name, usable as hidden, usable as output, diagnostic)
 * diagnostic: SDAGD_DIAG_SATURATION (count units with f'(a) < 1 % of its maximum), SDAGD_DIAG_INACTIVE
 * (count units never above 0) or SDAGD_DIAG_NONE. f and f' are activation_value and
 * activation_slope in kernels.h (softmax: softmax_row, output only, with the cross-entropy). */
#define SDAGD_ACTIVATIONS(X)                                \
    X(SDAGD_ACT_SIGMOID, "sigmoid", 1, 1, SDAGD_DIAG_SATURATION)        \
    X(SDAGD_ACT_RELU, "relu", 1, 0, SDAGD_DIAG_INACTIVE)                \
    X(SDAGD_ACT_TANH, "tanh", 1, 0, SDAGD_DIAG_SATURATION)              \
    X(SDAGD_ACT_LEAKY_RELU, "leaky_relu", 1, 0, SDAGD_DIAG_INACTIVE)    \
    X(SDAGD_ACT_LINEAR, "linear", 0, 1, SDAGD_DIAG_NONE)                \
    X(SDAGD_ACT_SOFTMAX, "softmax", 0, 1, SDAGD_DIAG_NONE)

/* ---- what the lists expand to ---------------------------------------------------------- */

#define SDAGD_TABLE_CODE(code, ...) code,
typedef enum { SDAGD_OPTIMIZERS(SDAGD_TABLE_CODE) SDAGD_OPT_COUNT } sdagd_optimizer_kind;
typedef enum { SDAGD_ACTIVATIONS(SDAGD_TABLE_CODE) SDAGD_ACT_COUNT } sdagd_activation;
#define SDAGD_TABLE_SLOT(slot) slot,
typedef enum { SDAGD_HYPER_SLOTS(SDAGD_TABLE_SLOT) SDAGD_HP_COUNT } sdagd_hyper_slot;

typedef enum { SDAGD_CURVATURE_NEVER = 0, SDAGD_CURVATURE_ALWAYS, SDAGD_CURVATURE_EVERY } sdagd_curvature_need;
typedef enum { SDAGD_HYPER_REAL = 0, SDAGD_HYPER_INT, SDAGD_HYPER_CHOICE, SDAGD_HYPER_OPTIONAL } sdagd_hyper_type;
typedef enum { SDAGD_DIAG_NONE = 0, SDAGD_DIAG_SATURATION, SDAGD_DIAG_INACTIVE } sdagd_diagnostic;

/* One hyperparameter of one optimizer. */
typedef struct {
    sdagd_optimizer_kind optimizer;
    sdagd_hyper_slot slot;    /* where sdagd_optim_config.hyper keeps it */
    const char *name;
    double fallback;          /* the default (0 for a required lr / radius / mu: no default) */
    double low, high;
    int low_closed, high_closed;
    sdagd_hyper_type type;
    const char *doc;
} sdagd_hyper_desc;

typedef struct {
    sdagd_optimizer_kind code;
    const char *name;
    int slabs;                /* float slabs of P of state */
    int slabs_unless_zero;    /* a slot: no slabs while it is 0 (SGD without momentum), or -1 */
    sdagd_curvature_need curvature;
    sdagd_hyper_slot step_slot; /* the step size's slot, which a schedule acts on */
    const char *state;        /* what the slabs hold */
} sdagd_optimizer_desc;

typedef struct {
    sdagd_activation code;
    const char *name;
    int hidden, output;       /* usable as */
    sdagd_diagnostic diagnostic;
} sdagd_activation_desc;

#endif /* SDAGD_TABLES_H */
