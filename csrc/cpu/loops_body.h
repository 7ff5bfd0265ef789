/* The bodies of the CPU backend's elementwise loops, compiled once per instruction set by
 * loops.c, which includes this file three times with LOOP(name) giving each copy its own
 * names. Not a header to include anywhere else.
 *
 * No fast-math and no FMA contraction (-std=c11), so every copy computes the same bits;
 * the instruction sets differ only in vector width. */

/* Bias, activation and, for hidden layers, h o h and the diagnostics, over one row's block
 * of columns; one loop per activation so that each vectorises. */
static int64_t LOOP(hidden_epilogue)(int act, float slope, float *restrict row, const float *restrict b, int n,
                                     float *restrict sq, uint8_t *restrict ever) {
    switch (act) {
    case SDAGD_ACT_SIGMOID:
        for (int c = 0; c < n; c++) row[c] = sigmoid_f(row[c] + b[c]);
        break;
    case SDAGD_ACT_RELU:
        for (int c = 0; c < n; c++) row[c] = relu_f(row[c] + b[c]);
        break;
    case SDAGD_ACT_LEAKY_RELU:
        for (int c = 0; c < n; c++) row[c] = leaky_relu_f(row[c] + b[c], slope);
        break;
    default:
        for (int c = 0; c < n; c++) row[c] = activation_value(act, slope, row[c] + b[c]);
        break;
    }
    if (sq)
        for (int c = 0; c < n; c++) sq[c] = row[c] * row[c];
    int64_t saturated = 0;
    if (act == SDAGD_ACT_SIGMOID)
        for (int c = 0; c < n; c++) saturated += activation_saturated(SDAGD_ACT_SIGMOID, row[c]);
    else if (act == SDAGD_ACT_TANH)
        for (int c = 0; c < n; c++) saturated += activation_saturated(SDAGD_ACT_TANH, row[c]);
    if (ever)
        for (int c = 0; c < n; c++) ever[c] |= row[c] > 0.0f;
    return saturated;
}


/* Sum of squares of one row, in double: eight float lanes (lane j sums x[j], x[j + 8], ...
 * in order), then the tail and the lanes in order, in double. Written with GCC's vector
 * type, which keeps exactly that order in every instruction set (AVX-512 and AVX2 use one
 * 8-wide register, the baseline two 4-wide halves); as a plain loop over the eight lanes the
 * compiler vectorised it badly (shuffles instead of one multiply-add per 8 values). */
static double LOOP(row_sum_of_squares)(const float *x, int n) {
    typedef float lanes8 __attribute__((vector_size(32)));
    lanes8 lane = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        lanes8 v;
        memcpy(&v, x + i, sizeof v);
        lane += v * v;
    }
    double total = 0.0;
    for (; i < n; i++) total += (double)x[i] * x[i];
    for (int j = 0; j < 8; j++) total += lane[j];
    return total;
}


/* dst[c] = scale * sum_r M[r, c] for the columns [c0, c1) of M (rows, n). */
static void LOOP(column_sums)(float *dst, const float *M, int rows, int n, int c0, int c1, float scale) {
    for (int c = c0; c < c1; c++) dst[c] = 0.0f;
    for (int r = 0; r < rows; r++) {
        const float *row = M + (size_t)r * n;
        for (int c = c0; c < c1; c++) dst[c] += row[c];
    }
    for (int c = c0; c < c1; c++) dst[c] *= scale;
}


/* delta *= f'(a), s *= f'(a)^2 over one row's block (s may be NULL). */
static void LOOP(activation_backward)(int act, float slope, const float *h, float *delta, float *s, int n) {
    switch (act) {
    case SDAGD_ACT_SIGMOID:
        for (int c = 0; c < n; c++) {
            float d = activation_slope(SDAGD_ACT_SIGMOID, slope, h[c]);
            delta[c] *= d;
            if (s) s[c] *= d * d;
        }
        break;
    case SDAGD_ACT_RELU:
        for (int c = 0; c < n; c++) {
            float d = activation_slope(SDAGD_ACT_RELU, slope, h[c]);
            delta[c] *= d;
            if (s) s[c] *= d * d;
        }
        break;
    default:
        for (int c = 0; c < n; c++) {
            float d = activation_slope(act, slope, h[c]);
            delta[c] *= d;
            if (s) s[c] *= d * d;
        }
        break;
    }
}


static void LOOP(square_block)(float *dst, const float *src, int rows, int ld, int c0, int c1) {
    for (int r = 0; r < rows; r++)
        for (int c = c0; c < c1; c++) dst[(size_t)r * ld + c] = src[(size_t)r * ld + c] * src[(size_t)r * ld + c];
}


static double LOOP(sdagd_step_sq_range)(const optim_hyper *hp, const step_coef *c, const float *g_, const float *fresh,
                                  const float *kept, float mu, size_t lo, size_t hi) {
    double total = 0.0;
    for (size_t i = lo; i < hi; i++) {
        double s = sdagd_step(g_[i], mu, sdagd_curvature_peek(hp, c, fresh ? fresh[i] : 0.0f, kept[i]), hp->eps);
        total += s * s;
    }
    return total;
}


/* The SDAGD update of [lo, hi): kernels.h's optimizer_update(SDAGD_OPT_SDAGD), with two common
 * cases written out so that their loops vectorise (no store into the state, which `fresh`
 * may alias when K = 1): the same arithmetic, so the same bits. */
static int64_t LOOP(sdagd_range)(optim_hyper hp, step_coef c, float *theta, const float *g_, const float *fresh, float *kept,
                           float mu, float scale, size_t lo, size_t hi) {
    int64_t phase1 = 0;
    float eps = hp.eps, hs = hp.hessian_scale;
    if (!c.fresh_hessian) { /* the h kept from an earlier step */
        for (size_t i = lo; i < hi; i++) {
            float hv = kept[i];
            theta[i] = sdagd_update(theta[i], g_[i], mu, hv, eps, scale);
            phase1 += mu > hv;
        }
    } else if (!hp.average && fresh == kept && hs == 1.0f) { /* h written straight into the state */
        for (size_t i = lo; i < hi; i++) {
            float hv = fresh[i];
            theta[i] = sdagd_update(theta[i], g_[i], mu, hv, eps, scale);
            phase1 += mu > hv;
        }
    } else {
        for (size_t i = lo; i < hi; i++) phase1 += optimizer_update(SDAGD_OPT_SDAGD, &hp, &c, i, theta, g_, fresh, kept, NULL, mu, scale);
    }
    return phase1;
}


/* One optimizer's update of [lo, hi): kernels.h's optimizer_update, in one loop per
 * optimizer of tables.h with the kind a constant, and the hyperparameters by value, so that
 * no store can change them and every loop vectorises (loop-invariant tests such as SGD's
 * momentum > 0 are hoisted out by the compiler). */
static int64_t LOOP(update_range)(optim_hyper hp, step_coef c, float *theta, const float *g_, const float *fresh, float *s0,
                            float *s1, float mu, float scale, size_t lo, size_t hi) {
    int64_t phase1 = 0;
    if (hp.kind == SDAGD_OPT_SDAGD) return LOOP(sdagd_range)(hp, c, theta, g_, fresh, s0, mu, scale, lo, hi);
#define UPDATE_LOOP(code, ...)                                                                          \
    case code:                                                                                        \
        for (size_t i = lo; i < hi; i++) phase1 += optimizer_update(code, &hp, &c, i, theta, g_, fresh, s0, s1, mu, scale); \
        break;
    switch (hp.kind) { SDAGD_OPTIMIZERS(UPDATE_LOOP) }
#undef UPDATE_LOOP
    return phase1;
}


static int LOOP(range_finite)(const float *x, size_t lo, size_t hi) {
    /* Summing x * 0 keeps the loop branch-free and vectorised: NaN or inf turns it NaN. */
    float acc = 0.0f;
    for (size_t i = lo; i < hi; i++) acc += x[i] * 0.0f;
    return acc == 0.0f;
}
