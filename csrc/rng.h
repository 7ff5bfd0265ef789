/*
 * The core's random numbers: initial weights and the epochs' shuffles.
 */
#ifndef SDAGD_RNG_H
#define SDAGD_RNG_H

#include <stdint.h>

/* SplitMix64 seeding a xoshiro256** stream (Blackman & Vigna 2018). Portable:
 * the same seed gives the same numbers on every platform and compiler. */
typedef struct { uint64_t s[4]; } rng_state;
void rng_seed(rng_state *rng, uint64_t seed, uint64_t stream);
uint64_t rng_next(rng_state *rng);
double rng_uniform(rng_state *rng);               /* [0, 1), 53 random bits */
double rng_normal(rng_state *rng);                /* N(0, 1), Box-Muller */
uint64_t rng_below(rng_state *rng, uint64_t n);   /* uniform in [0, n), unbiased */

/* The epoch's order as int32 row indices (N < 2^31), the same as sdagd_shuffle_order. */
void shuffle_order32(int32_t *perm, int64_t N, uint64_t seed, int64_t epoch);

#endif
