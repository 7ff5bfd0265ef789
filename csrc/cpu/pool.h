/*
 * The CPU backend's thread pool: runs the tasks of one operation on T threads (the caller
 * and T - 1 workers), so that independent GEMMs and their elementwise epilogues run side by
 * side on separate cores with a single-threaded BLAS each. Two single-threaded GEMMs of the
 * paper's shapes outrun one two-threaded GEMM of the same shape (BENCHMARKS.md).
 *
 * Tasks must write disjoint outputs; results never depend on which thread ran a task, so
 * they are the same for any number of threads. A caller that finds the pool in use (another
 * thread training another network) runs its tasks itself, one after another.
 */
#ifndef SDAGD_CPU_POOL_H
#define SDAGD_CPU_POOL_H

#include <stdint.h>

typedef void (*pool_task_fn)(void *arg, int task);

/* Runs fn(arg, task) for task = 0..n_tasks-1 and returns when all are done. */
void pool_run(int n_tasks, pool_task_fn fn, void *arg);

/* How many times pool_run found its parallel runs slower than one thread would have been
 * (another process holding a core) and ran alone for a while (see pool.c). */
int64_t pool_solo_spans(void);

/* Threads used by pool_run (1..256); set returns the previous value. */
int pool_set_threads(int n);
int pool_threads(void);

#endif
