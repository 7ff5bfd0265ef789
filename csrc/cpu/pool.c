/* A spin-then-sleep thread pool for the CPU backend (see pool.h).
 *
 * One operation at a time: the caller publishes fn and arg, then one atomic word that holds
 * the run's generation, its number of tasks and the next task to take. Every thread, the
 * caller included, claims tasks by compare-and-swap on that word, one at a time, so a thread
 * that a busy machine slows down simply takes fewer tasks; a worker that wakes late, after
 * its run is over, sees another generation and claims nothing. fn and arg are read only
 * after a successful claim, which the caller waits for before it publishes the next run.
 *
 * Waiting is bounded: a thread with nothing to do spins for at most SPIN_NS (during training,
 * operations follow each other within microseconds, and a spinning thread answers at once),
 * then sleeps on a condition variable. That holds for the caller too, which waits for the
 * last tasks the workers hold: on a machine where another process competes for the cores, a
 * caller that spun instead would keep the core the descheduled worker needs to finish. */
#include "pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

enum { MAX_THREADS = 256 };

/* How long an idle thread spins before it sleeps: longer than the gaps between the
 * operations of one training step, far shorter than a scheduler's time slice. */
#define SPIN_NS 100000

static int64_t clock_ns(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int64_t now_ns(void) { return clock_ns(CLOCK_MONOTONIC); }

/* The claim word: generation (24 bits) | tasks (20 bits) | next task (20 bits). */
#define TASK_BITS 20
#define TASK_MASK ((UINT64_C(1) << TASK_BITS) - 1)
#define MAX_TASKS ((int)TASK_MASK)
static uint64_t pack(uint64_t gen, uint64_t n, uint64_t next) {
    return (gen << (2 * TASK_BITS)) | (n << TASK_BITS) | next;
}

static struct {
    pthread_mutex_t busy; /* held by the caller of pool_run */
    pthread_mutex_t lock; /* guards sleeping, thread creation and the thread count */
    pthread_cond_t wake;  /* workers sleep on it between runs */
    pthread_cond_t finished; /* the caller sleeps on it while workers finish the last tasks */
    int caller_sleeping;  /* guarded by lock */
    atomic_int threads;   /* requested, including the caller; 0 until first asked */
    int started;          /* worker threads running */
    atomic_uint_fast64_t claim;
    atomic_int done;
    atomic_int measuring;           /* this run's tasks add their CPU time to task_cpu_ns */
    atomic_int_fast64_t task_cpu_ns;
    pool_task_fn fn;
    void *arg;
} pool = {.busy = PTHREAD_MUTEX_INITIALIZER,
          .lock = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .finished = PTHREAD_COND_INITIALIZER};

static uint64_t generation_of(uint64_t word) { return word >> (2 * TASK_BITS); }

/* Claims and runs tasks of generation `gen` until none is left; returns how many it ran. */
static int work(uint64_t gen) {
    uint64_t word = atomic_load(&pool.claim);
    for (int ran = 0;; ran++) {
        uint64_t n = (word >> TASK_BITS) & TASK_MASK, next = word & TASK_MASK;
        if (generation_of(word) != gen || next >= n) return ran;
        if (!atomic_compare_exchange_weak(&pool.claim, &word, word + 1)) continue;
        if (atomic_load(&pool.measuring)) { /* the CPU time the task took, whichever thread ran it */
            int64_t cpu_from = clock_ns(CLOCK_THREAD_CPUTIME_ID);
            pool.fn(pool.arg, (int)next);
            atomic_fetch_add(&pool.task_cpu_ns, clock_ns(CLOCK_THREAD_CPUTIME_ID) - cpu_from);
        } else {
            pool.fn(pool.arg, (int)next);
        }
        if (atomic_fetch_add(&pool.done, 1) + 1 == (int)n) { /* the run's last task */
            pthread_mutex_lock(&pool.lock);
            if (pool.caller_sleeping) pthread_cond_signal(&pool.finished);
            pthread_mutex_unlock(&pool.lock);
        }
        word = atomic_load(&pool.claim);
    }
}

static void *worker_main(void *index_ptr) {
    int index = (int)(intptr_t)index_ptr; /* 1.. : the caller is thread 0 */
    uint64_t seen = generation_of(atomic_load(&pool.claim));
    for (;;) {
        uint64_t now;
        int64_t give_up = now_ns() + SPIN_NS;
        for (int spins = 1; (now = generation_of(atomic_load(&pool.claim))) == seen; spins++) {
            CPU_RELAX();
            if (spins % 64 == 0 && now_ns() > give_up) break;
        }
        if (now == seen) {
            pthread_mutex_lock(&pool.lock);
            while ((now = generation_of(atomic_load(&pool.claim))) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = now;
        if (index < atomic_load(&pool.threads)) (void)work(now); /* a worker beyond a lowered thread count idles */
    }
    return NULL;
}

/* After fork() only the calling thread exists in the child: forget the workers. */
static void forget_workers_in_child(void) {
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.finished, NULL);
    pool.caller_sleeping = 0;
    pool.started = 0;
}

/* With pool.lock held. */
static void start_workers(int wanted) {
    static int registered = 0;
    if (!registered) {
        pthread_atfork(NULL, NULL, forget_workers_in_child);
        registered = 1;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    while (pool.started < wanted) {
        pthread_t id;
        if (pthread_create(&id, &attr, worker_main, (void *)(intptr_t)(pool.started + 1)) != 0)
            break; /* fewer threads: slower, same results */
        pool.started++;
    }
    pthread_attr_destroy(&attr);
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (int)n;
}

/* The caller, its own share done: spins a little for the tasks workers still hold, then sleeps
 * until the last one signals. */
static void wait_until_done(int n_tasks) {
    int64_t give_up = now_ns() + SPIN_NS;
    for (int spins = 1; atomic_load(&pool.done) < n_tasks; spins++) {
        CPU_RELAX();
        if (spins % 64 == 0 && now_ns() > give_up) {
            pthread_mutex_lock(&pool.lock);
            pool.caller_sleeping = 1;
            while (atomic_load(&pool.done) < n_tasks) pthread_cond_wait(&pool.finished, &pool.lock);
            pool.caller_sleeping = 0;
            pthread_mutex_unlock(&pool.lock);
            return;
        }
    }
}

/* Never slower than one thread. On a machine where another process keeps a core busy, a
 * worker may be descheduled for a whole time slice while it holds a task, and the caller
 * then waits longer than it would have taken to run every task itself. So the caller keeps
 * score on a sample of the runs (one in SAMPLE_ONE_IN, drawn at random so that the sample
 * does not lock onto the same operations of every training step): the run's wall time
 * against the CPU time its tasks took, summed over every thread that ran them, which is what
 * one thread running them all without a pause would take. When a window of samples comes
 * out slower in parallel, the next runs go solo, for a span that doubles each time the retry
 * loses again (up to a few seconds of training) and resets when parallel wins. Which thread
 * runs a task never changes a result, so this changes the speed only. The sampled runs pay
 * two clock reads per task. Touched only by the caller holding pool.busy. */
enum { SAMPLE_ONE_IN = 4, WINDOW_SAMPLES = 16, FIRST_SOLO_RUNS = 256, MOST_SOLO_RUNS = 16384 };
static struct {
    int64_t parallel_ns, solo_estimate_ns; /* over the current window's samples */
    int window_samples;
    int solo_left;   /* runs still to do alone */
    int solo_span;   /* the next solo span's length */
    uint64_t draw;   /* xorshift state of the sampling */
    int64_t solo_spans_taken; /* reported by pool_solo_spans */
} adapt = {.solo_span = FIRST_SOLO_RUNS, .draw = 0x9E3779B97F4A7C15u};

static int sample_this_run(void) {
    adapt.draw ^= adapt.draw << 13;
    adapt.draw ^= adapt.draw >> 7;
    adapt.draw ^= adapt.draw << 17;
    return adapt.draw % SAMPLE_ONE_IN == 0;
}

/* The score of one sampled run: it took `wall_ns`; its tasks took `task_cpu_ns` of CPU. */
static void score_parallel_run(int64_t wall_ns, int64_t task_cpu_ns) {
    adapt.parallel_ns += wall_ns;
    adapt.solo_estimate_ns += task_cpu_ns;
    if (++adapt.window_samples < WINDOW_SAMPLES) return;
    if (adapt.parallel_ns > adapt.solo_estimate_ns) {
        adapt.solo_left = adapt.solo_span;
        adapt.solo_span = adapt.solo_span * 2 > MOST_SOLO_RUNS ? MOST_SOLO_RUNS : adapt.solo_span * 2;
        adapt.solo_spans_taken++;
    } else {
        adapt.solo_span = FIRST_SOLO_RUNS;
    }
    adapt.parallel_ns = adapt.solo_estimate_ns = 0;
    adapt.window_samples = 0;
}

void pool_run(int n_tasks, pool_task_fn fn, void *arg) {
    if (n_tasks <= 0) return;
    int threads = pool_threads();
    if (threads <= 1 || n_tasks == 1 || n_tasks > MAX_TASKS || pthread_mutex_trylock(&pool.busy) != 0) {
        for (int t = 0; t < n_tasks; t++) fn(arg, t);
        return;
    }
    if (adapt.solo_left > 0) {
        adapt.solo_left--;
        for (int t = 0; t < n_tasks; t++) fn(arg, t);
        pthread_mutex_unlock(&pool.busy);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    if (pool.started < threads - 1) start_workers(threads - 1);
    pthread_mutex_unlock(&pool.lock);
    pool.fn = fn;
    pool.arg = arg;
    atomic_store(&pool.done, 0);
    int measure = sample_this_run();
    atomic_store(&pool.measuring, measure);
    atomic_store(&pool.task_cpu_ns, 0);
    uint64_t gen = (generation_of(atomic_load(&pool.claim)) + 1) & ((UINT64_C(1) << 24) - 1);
    int64_t start = now_ns();
    pthread_mutex_lock(&pool.lock); /* so that a worker about to sleep sees the new word */
    atomic_store(&pool.claim, pack(gen, (uint64_t)n_tasks, 0));
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    (void)work(gen);
    wait_until_done(n_tasks); /* every task has added its CPU time before it counted as done */
    if (measure) score_parallel_run(now_ns() - start, atomic_load(&pool.task_cpu_ns));
    pthread_mutex_unlock(&pool.busy);
}

int64_t pool_solo_spans(void) {
    pthread_mutex_lock(&pool.busy);
    int64_t n = adapt.solo_spans_taken;
    pthread_mutex_unlock(&pool.busy);
    return n;
}

int pool_threads(void) {
    pthread_mutex_lock(&pool.lock);
    if (pool.threads == 0) pool.threads = default_threads();
    int n = pool.threads;
    pthread_mutex_unlock(&pool.lock);
    return n;
}

int pool_set_threads(int n) {
    int previous = pool_threads();
    pthread_mutex_lock(&pool.lock);
    pool.threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
    pthread_mutex_unlock(&pool.lock);
    return previous;
}
