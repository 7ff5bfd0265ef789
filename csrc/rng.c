/* Seeded, portable random numbers: xoshiro256** seeded through SplitMix64
 * (Blackman & Vigna, "Scrambled linear pseudorandom number generators", 2018). */
#include <math.h>

#include "rng.h"
#include "sdagd.h"
#include "error.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* `stream` separates independent uses of one seed (initialisation, epoch e's shuffle). */
void rng_seed(rng_state *rng, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
}

uint64_t rng_next(rng_state *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double rng_uniform(rng_state *rng) { return (double)(rng_next(rng) >> 11) * 0x1.0p-53; }

double rng_normal(rng_state *rng) {
    /* Box-Muller; 1 - u keeps the logarithm's argument in (0, 1]. */
    double u1 = 1.0 - rng_uniform(rng), u2 = rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Rejection sampling on the top of the range: no modulo bias. */
uint64_t rng_below(rng_state *rng, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng_next(rng); while (x >= limit);
    return x % n;
}

/* Fisher-Yates over the identity, drawn from (seed, epoch); one body for both index types. */
#define SHUFFLE(perm, N, seed, epoch)                                     \
    do {                                                                  \
        rng_state rng;                                                    \
        rng_seed(&rng, seed, 1000003ULL + (uint64_t)(epoch));             \
        for (int64_t i = 0; i < (N); i++) (perm)[i] = i;                  \
        for (int64_t i = (N)-1; i > 0; i--) {                             \
            int64_t j = (int64_t)rng_below(&rng, (uint64_t)i + 1);        \
            __typeof__((perm)[0]) t = (perm)[i];                          \
            (perm)[i] = (perm)[j];                                        \
            (perm)[j] = t;                                                \
        }                                                                 \
    } while (0)

sdagd_status sdagd_shuffle_order(int64_t *perm, int64_t N, uint64_t seed, int64_t epoch) {
    if (N < 0) return sdagd_fail(SDAGD_ERR_ARG, "shuffle: N must be >= 0, got %lld", (long long)N);
    SHUFFLE(perm, N, seed, epoch);
    return SDAGD_OK;
}

void shuffle_order32(int32_t *perm, int64_t N, uint64_t seed, int64_t epoch) { SHUFFLE(perm, N, seed, epoch); }
