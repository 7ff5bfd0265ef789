/* Vanishing-gradient diagnostics, gathered during training from what the step computed
 * anyway (the gradient and the layer outputs), so they need no second pass over the data. */
#include "internal.h"

void diagnostics_accumulate(const mlp *net, int B, const float *grad, train_stats *stats) {
    if (stats->grad_sq) /* weight-gradient mean square per layer: the direct vanishing measure */
        for (int l = 0; l < net->n_layers; l++) {
            const float *dW = grad + net->w_off[l];
            size_t n = net->b_off[l] - net->w_off[l];
            stats->grad_sq[l] += sum_of_squares(dW, n) / (double)n;
        }
    size_t unit_base = 0;
    for (int l = 0; l + 1 < net->n_layers; l++) { /* hidden layers only */
        int width = net->sizes[l + 1];
        const float *h = net->h[l]; /* (B, width) */
        if (stats->saturated && stats->unit_rows &&
            (net->hidden == ACT_SIGMOID || net->hidden == ACT_TANH)) {
            /* f'(a) < 0.01 max f': sigmoid h(1-h) < 0.0025, tanh 1-h^2 < 0.01 */
            int64_t count = 0;
            size_t n = (size_t)B * width;
            if (net->hidden == ACT_SIGMOID)
                for (size_t i = 0; i < n; i++) count += h[i] * (1.0f - h[i]) < 0.0025f;
            else
                for (size_t i = 0; i < n; i++) count += 1.0f - h[i] * h[i] < 0.01f;
            stats->saturated[l] += count;
            stats->unit_rows[l] += (int64_t)n;
        }
        if (stats->ever_active && (net->hidden == ACT_RELU || net->hidden == ACT_LEAKY_RELU)) {
            uint8_t *active = stats->ever_active + unit_base;
            for (int r = 0; r < B; r++) {
                const float *row = h + (size_t)r * width;
                for (int j = 0; j < width; j++) active[j] |= row[j] > 0.0f;
            }
        }
        unit_base += (size_t)width;
    }
}
