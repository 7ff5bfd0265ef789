/* Reductions over the parameter slab, written so the compiler vectorises them without
 * fast-math: eight independent float lanes per block, blocks summed in double. */
#include "internal.h"

double sum_of_squares(const float *x, size_t n) {
    enum { LANES = 8, BLOCK = 4096 };
    double total = 0.0;
    size_t i = 0;
    while (i < n) {
        size_t end = n - i > BLOCK ? i + BLOCK : n;
        float lane[LANES] = {0};
        for (; i + LANES <= end; i += LANES)
            for (int k = 0; k < LANES; k++) lane[k] += x[i + k] * x[i + k];
        for (; i < end; i++) lane[0] += x[i] * x[i];
        double block = 0.0;
        for (int k = 0; k < LANES; k++) block += lane[k];
        total += block;
    }
    return total;
}
