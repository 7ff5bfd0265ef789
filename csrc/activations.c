#include <math.h>

#include "activations.h"

void activation_forward(int act, float slope, float *h, size_t n) {
    switch (act) {
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) h[i] = 1.0f / (1.0f + expf(-h[i]));
        break;
    case ACT_RELU:
        for (size_t i = 0; i < n; i++) h[i] = h[i] > 0.0f ? h[i] : 0.0f;
        break;
    case ACT_TANH:
        for (size_t i = 0; i < n; i++) h[i] = tanhf(h[i]);
        break;
    case ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) h[i] = h[i] > 0.0f ? h[i] : slope * h[i];
        break;
    default: /* ACT_LINEAR */
        break;
    }
}

void softmax_rows(float *h, int rows, int cols) {
    for (int r = 0; r < rows; r++) {
        float *row = h + (size_t)r * cols;
        float max = row[0];
        for (int c = 1; c < cols; c++) max = row[c] > max ? row[c] : max;
        double sum = 0.0;
        for (int c = 0; c < cols; c++) {
            row[c] = expf(row[c] - max);
            sum += row[c];
        }
        float inv = (float)(1.0 / sum);
        for (int c = 0; c < cols; c++) row[c] *= inv;
    }
}

/* One loop per activation so each vectorises; the derivative needs only h (see header). For
 * leaky_relu with slope >= 0, h > 0 exactly when a > 0, and relu'(0) = 0 by convention. */
void activation_backward(int act, float slope, const float *h, float *delta, float *s, size_t n) {
    switch (act) {
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) {
            float d = h[i] * (1.0f - h[i]);
            delta[i] *= d;
            if (s) s[i] *= d * d;
        }
        break;
    case ACT_TANH:
        for (size_t i = 0; i < n; i++) {
            float d = 1.0f - h[i] * h[i];
            delta[i] *= d;
            if (s) s[i] *= d * d;
        }
        break;
    case ACT_RELU:
        for (size_t i = 0; i < n; i++) {
            float d = h[i] > 0.0f ? 1.0f : 0.0f;
            delta[i] *= d;
            if (s) s[i] *= d;
        }
        break;
    case ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) {
            float d = h[i] > 0.0f ? 1.0f : slope;
            delta[i] *= d;
            if (s) s[i] *= d * d;
        }
        break;
    default: /* ACT_LINEAR: f' = 1 */
        break;
    }
}
