/* The elementwise loops of loops.h, three times: loops_body.h compiled for AVX-512, for AVX2
 * with FMA, and for the baseline, each under its own names (LOOP), and a table for each.
 *
 * The copies are chosen through a table rather than GCC's target_clones so that a person can
 * ask for one (the AVX2 code measured on an AVX-512 machine): target_clones picks by the
 * processor alone. */
#include <stdatomic.h>
#include <string.h>

#include "../backend.h"
#include "../kernels.h"
#include "loops.h"

#define SDAGD_CAT_(a, b) a##b
#define SDAGD_CAT(a, b) SDAGD_CAT_(a, b)

#define TABLE(suffix, name)                                                                      \
    static const cpu_loops SDAGD_CAT(loops_, suffix) = {                                         \
        name,                                                                                    \
        SDAGD_CAT(hidden_epilogue_, suffix),                                                     \
        SDAGD_CAT(row_sum_of_squares_, suffix),                                                  \
        SDAGD_CAT(column_sums_, suffix),                                                         \
        SDAGD_CAT(activation_backward_, suffix),                                                 \
        SDAGD_CAT(square_block_, suffix),                                                        \
        SDAGD_CAT(sdagd_step_sq_range_, suffix),                                                 \
        SDAGD_CAT(update_range_, suffix),                                                        \
        SDAGD_CAT(range_finite_, suffix),                                                        \
    };

#define LOOP(name) SDAGD_CAT(name##_, baseline)
#include "loops_body.h"
#undef LOOP
TABLE(baseline, "baseline")

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HAVE_X86_COPIES 1

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define LOOP(name) SDAGD_CAT(name##_, avx2)
#include "loops_body.h"
#undef LOOP
#pragma GCC pop_options
TABLE(avx2, "avx2")

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#define LOOP(name) SDAGD_CAT(name##_, avx512)
#include "loops_body.h"
#undef LOOP
#pragma GCC pop_options
TABLE(avx512, "avx512")
#endif

/* The best set this processor runs, after `wanted` ("auto" for no limit). */
static const cpu_loops *usable(const char *wanted) {
#ifdef HAVE_X86_COPIES
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                 __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    int is_auto = !wanted || !strcmp(wanted, "auto");
    if ((is_auto || !strcmp(wanted, "avx512")) && avx512) return &loops_avx512;
    if ((is_auto || !strcmp(wanted, "avx2")) && avx2) return &loops_avx2;
    if (is_auto || !strcmp(wanted, "baseline")) return &loops_baseline;
    return NULL;
#else
    return !wanted || !strcmp(wanted, "auto") || !strcmp(wanted, "baseline") ? &loops_baseline : NULL;
#endif
}

static _Atomic(const cpu_loops *) chosen;

const cpu_loops *loops(void) {
    const cpu_loops *set = atomic_load_explicit(&chosen, memory_order_acquire);
    if (!set) {
        set = usable(NULL);
        atomic_store_explicit(&chosen, set, memory_order_release);
    }
    return set;
}

const char *loops_choose(const char *wanted) {
    const cpu_loops *set = usable(wanted);
    if (!set) return NULL;
    atomic_store_explicit(&chosen, set, memory_order_release);
    return set->isa;
}
