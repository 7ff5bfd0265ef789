/*
 * The descriptor tables: every optimizer and every activation the core implements, one row
 * each. Everything else is generated from these rows: the enum codes (sdagd.h), validation of
 * hyperparameters (optim.c), the one dispatch of the per-element update (kernels.h) that
 * both backends call, whether and when the curvature is computed, the binding's exports
 * (_core.optimizer_table(), _core.activation_table()) and from them the Python classes and
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
 * curvature: CURVATURE_NEVER, CURVATURE_ALWAYS (every step) or CURVATURE_EVERY (every
 * hessian_every steps). The step-size slot is the hyperparameter a schedule acts on. Codes
 * are stable (saved files and records name optimizers by name, the core by code): new rows
 * go at the end. */
#define SDAGD_OPTIMIZERS(X)                                                                                  \
    X(OPT_SGD, "SGD", 1, HP_MOMENTUM, CURVATURE_NEVER, HP_LR, "momentum buffer m (only with momentum > 0)")  \
    X(OPT_SDAGD, "SDAGD", 1, -1, CURVATURE_EVERY, HP_RADIUS, "the h in use: kept between steps, or averaged") \
    X(OPT_SDLM, "SDLM", 1, -1, CURVATURE_ALWAYS, HP_LR, "running average hbar of h")                         \
    X(OPT_ADAGRAD, "AdaGrad", 1, -1, CURVATURE_NEVER, HP_LR, "sum of g^2")                                   \
    X(OPT_ADADELTA, "AdaDelta", 2, -1, CURVATURE_NEVER, HP_LR, "averages of g^2 and of delta^2")             \
    X(OPT_ADAM, "Adam", 2, -1, CURVATURE_NEVER, HP_LR, "first and second moments m, v")                     \
    X(OPT_RMSPROP, "RMSprop", 1, -1, CURVATURE_NEVER, HP_LR, "running average v of g^2")

/* The hyperparameter slots of optim_config.hyper: one per meaning, shared by the optimizers
 * that have it (each with its own default and range below). */
#define SDAGD_HYPER_SLOTS(X)                                                                    \
    X(HP_LR) X(HP_MOMENTUM) X(HP_RADIUS) X(HP_EPS) X(HP_NORM) X(HP_HESSIAN_EVERY) X(HP_MAX_STEP) \
    X(HP_MU) X(HP_GAMMA) X(HP_BETA1) X(HP_BETA2) X(HP_RHO) X(HP_AVERAGE) X(HP_HESSIAN_SCALE)

/* Hyperparameters, in each optimizer's argument order:
 * H(optimizer, slot, "name", default, low, low closed, high, high closed, type, "meaning")
 * types: HYPER_REAL; HYPER_INT (a C int); HYPER_CHOICE (a code, named by the choices of
 * SDAGD_CHOICES); HYPER_OPTIONAL (a real, or 0 for "off": None in Python). POS is (0, inf):
 * a positive finite number. Every hyperparameter is assignable between steps (Python rebuilds
 * the core optimizer with its state). */
#define SDAGD_HYPERPARAMETERS(H)                                                                                   \
    H(OPT_SGD, HP_LR, "lr", 0.0, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "learning rate")                       \
    H(OPT_SGD, HP_MOMENTUM, "momentum", 0.0, 0.0, 1, 1.0, 0, HYPER_REAL, "m <- momentum m + g")                     \
    H(OPT_SDAGD, HP_RADIUS, "radius", 0.0, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "R, mu_k = ||g|| / R")      \
    H(OPT_SDAGD, HP_EPS, "eps", 1e-8, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "guards 0/0")                                \
    H(OPT_SDAGD, HP_NORM, "norm", 0.0, 0.0, 1, 1.0, 1, HYPER_CHOICE, "norm groups of mu_k: layer or global")       \
    H(OPT_SDAGD, HP_HESSIAN_EVERY, "hessian_every", 1.0, 1.0, 1, 2147483647.0, 1, HYPER_INT,                        \
      "recompute h every N steps")                                                                                  \
    H(OPT_SDAGD, HP_MAX_STEP, "max_step", 0.0, 0.0, 0, HUGE_VAL, 0, HYPER_OPTIONAL,                                 \
      "cap on each norm group's step length")                                                                       \
    H(OPT_SDAGD, HP_AVERAGE, "average", 0.0, 0.0, 0, 1.0, 1, HYPER_OPTIONAL,                                        \
      "weight gamma of a running average of h")                                                                     \
    H(OPT_SDAGD, HP_HESSIAN_SCALE, "hessian_scale", 1.0, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "h is multiplied by this") \
    H(OPT_SDLM, HP_LR, "lr", 0.0, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "learning rate")                      \
    H(OPT_SDLM, HP_MU, "mu", 0.0, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "damping added to hbar")             \
    H(OPT_SDLM, HP_GAMMA, "gamma", 0.05, 0.0, 0, 1.0, 1, HYPER_REAL, "weight of the newest h in hbar")             \
    H(OPT_ADAGRAD, HP_LR, "lr", 1e-2, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "learning rate")                             \
    H(OPT_ADAGRAD, HP_EPS, "eps", 1e-10, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "added to sqrt(sum)")                     \
    H(OPT_ADADELTA, HP_LR, "lr", 1.0, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "learning rate")                             \
    H(OPT_ADADELTA, HP_RHO, "rho", 0.9, 0.0, 1, 1.0, 0, HYPER_REAL, "decay of the averages")                        \
    H(OPT_ADADELTA, HP_EPS, "eps", 1e-6, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "added under the square roots")           \
    H(OPT_ADAM, HP_LR, "lr", 1e-3, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "learning rate")                                \
    H(OPT_ADAM, HP_BETA1, "beta1", 0.9, 0.0, 1, 1.0, 0, HYPER_REAL, "decay of m")                                   \
    H(OPT_ADAM, HP_BETA2, "beta2", 0.999, 0.0, 1, 1.0, 0, HYPER_REAL, "decay of v")                                 \
    H(OPT_ADAM, HP_EPS, "eps", 1e-8, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "added to sqrt(v)")                          \
    H(OPT_RMSPROP, HP_LR, "lr", 1e-2, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "learning rate")                             \
    H(OPT_RMSPROP, HP_RHO, "rho", 0.99, 0.0, 1, 1.0, 0, HYPER_REAL, "decay of v (torch's alpha)")                   \
    H(OPT_RMSPROP, HP_EPS, "eps", 1e-8, 0.0, 0, HUGE_VAL, 0, HYPER_REAL, "added to sqrt(v)")

/* The names of HYPER_CHOICE codes, 0, 1, ... */
#define SDAGD_CHOICES(C) C(HP_NORM, "layer,global")

/* ---- activations --------------------------------------------------------------------------
 * X(code, name, usable as hidden, usable as output, diagnostic)
 * diagnostic: DIAG_SATURATION (count units with f'(a) < 1 % of its maximum), DIAG_INACTIVE
 * (count units never above 0) or DIAG_NONE. f and f' are activation_value and
 * activation_slope in kernels.h (softmax: softmax_row, output only, with the cross-entropy). */
#define SDAGD_ACTIVATIONS(X)                                \
    X(ACT_SIGMOID, "sigmoid", 1, 1, DIAG_SATURATION)        \
    X(ACT_RELU, "relu", 1, 0, DIAG_INACTIVE)                \
    X(ACT_TANH, "tanh", 1, 0, DIAG_SATURATION)              \
    X(ACT_LEAKY_RELU, "leaky_relu", 1, 0, DIAG_INACTIVE)    \
    X(ACT_LINEAR, "linear", 0, 1, DIAG_NONE)                \
    X(ACT_SOFTMAX, "softmax", 0, 1, DIAG_NONE)

/* ---- what the lists expand to ---------------------------------------------------------- */

#define SDAGD_TABLE_CODE(code, ...) code,
typedef enum { SDAGD_OPTIMIZERS(SDAGD_TABLE_CODE) OPT_COUNT } sdagd_optimizer_kind;
typedef enum { SDAGD_ACTIVATIONS(SDAGD_TABLE_CODE) ACT_COUNT } sdagd_activation;
#define SDAGD_TABLE_SLOT(slot) slot,
typedef enum { SDAGD_HYPER_SLOTS(SDAGD_TABLE_SLOT) HP_COUNT } sdagd_hyper_slot;

typedef enum { CURVATURE_NEVER = 0, CURVATURE_ALWAYS, CURVATURE_EVERY } sdagd_curvature_need;
typedef enum { HYPER_REAL = 0, HYPER_INT, HYPER_CHOICE, HYPER_OPTIONAL } sdagd_hyper_type;
typedef enum { DIAG_NONE = 0, DIAG_SATURATION, DIAG_INACTIVE } sdagd_diagnostic;

/* One hyperparameter of one optimizer. */
typedef struct {
    int optimizer;            /* sdagd_optimizer_kind */
    int slot;                 /* sdagd_hyper_slot: where optim_config.hyper keeps it */
    const char *name;
    double fallback;          /* the default (0 for a required lr / radius / mu: no default) */
    double low, high;
    int low_closed, high_closed;
    int type;                 /* sdagd_hyper_type */
    const char *doc;
} sdagd_hyper_desc;

typedef struct {
    int code;                 /* sdagd_optimizer_kind */
    const char *name;
    int slabs;                /* float slabs of P of state */
    int slabs_unless_zero;    /* a slot: no slabs while it is 0 (SGD without momentum), or -1 */
    int curvature;            /* sdagd_curvature_need */
    int step_slot;            /* the step size's slot, which a schedule acts on */
    const char *state;        /* what the slabs hold */
} sdagd_optimizer_desc;

typedef struct {
    int code;                 /* sdagd_activation */
    const char *name;
    int hidden, output;       /* usable as */
    int diagnostic;           /* sdagd_diagnostic */
} sdagd_activation_desc;

#endif /* SDAGD_TABLES_H */
