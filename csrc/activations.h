/* Elementwise activations and the derivative factors backprop needs (ALGORITHMS.md 1, 3, 4). */
#ifndef SDAGD_ACTIVATIONS_H
#define SDAGD_ACTIVATIONS_H

#include "sdagd.h"

/* h <- f(h) in place over n values (h holds a = W x + b on entry). Not for softmax. */
void activation_forward(int act, float slope, float *h, size_t n);

/* Row-wise softmax in place over (rows, cols); a stable max shift. */
void softmax_rows(float *h, int rows, int cols);

/* f'(a) expressed through the output h = f(a), which is all the backward sweep keeps:
 * sigmoid h(1-h), tanh 1-h^2, relu [h>0], leaky_relu h>0 ? 1 : s, linear 1.
 * delta <- delta * f'(a);  and when s != NULL, s <- s * f'(a)^2 (Gauss-Newton truncation). */
void activation_backward(int act, float slope, const float *h, float *delta, float *s, size_t n);

#endif
