// Persistent fork-join thread pool.
//
// Why this shape: a decode step issues a few hundred small kernel calls per token, so waking
// threads through the kernel scheduler on every call would cost more than the work. Workers
// therefore spin (with a pause instruction) for a short while after each job, watching a
// generation counter, and only then sleep on a condition variable. The calling thread runs
// share 0 of each job itself, then spins until the others are done.
#define _GNU_SOURCE
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

// How long an idle worker keeps spinning before it sleeps.
#define SPIN_NS 300000LL

typedef struct {
    pthread_t thread;
    int ith;
    unsigned start_gen; // job_gen when the worker was created: jobs after it are new
} worker_t;

static worker_t *workers = NULL; // [n_threads - 1], worker i has ith = i + 1
static int n_threads = 0;        // 0 = not created yet

static pc_job_fn job_fn = NULL;
static void *job_ctx = NULL;
static atomic_uint job_gen;      // bumped once per job (and once to stop)
static atomic_int job_pending;   // workers still running the current job
static atomic_int stopping;
static atomic_int sleepers;      // workers blocked (or about to block) on wake_cond

static pthread_mutex_t wake_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cond = PTHREAD_COND_INITIALIZER;

static pc_buf_t scratch[PC_MAX_THREADS][PC_SCRATCH_SLOTS];

static inline void cpu_relax(void) {
#if PC_X86
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *worker_main(void *arg) {
    const worker_t *self = (const worker_t *)arg;
    unsigned seen = self->start_gen;
    for (;;) {
        // Wait for a new generation: spin first, then sleep.
        unsigned gen = atomic_load_explicit(&job_gen, memory_order_acquire);
        if (gen == seen) {
            const long long deadline = now_ns() + SPIN_NS;
            for (unsigned i = 1;; i++) {
                cpu_relax();
                gen = atomic_load_explicit(&job_gen, memory_order_acquire);
                if (gen != seen) break;
                if ((i & 255) == 0 && now_ns() > deadline) break;
            }
        }
        if (gen == seen) {
            pthread_mutex_lock(&wake_mutex);
            // Dekker pattern with pc_pool_run: we announce ourselves as a sleeper and then
            // re-read the generation; the runner bumps the generation and then reads the
            // sleeper count (both seq_cst), so at least one side sees the other.
            atomic_fetch_add(&sleepers, 1);
            while ((gen = atomic_load(&job_gen)) == seen) pthread_cond_wait(&wake_cond, &wake_mutex);
            atomic_fetch_sub(&sleepers, 1);
            pthread_mutex_unlock(&wake_mutex);
        }
        seen = gen;
        if (atomic_load_explicit(&stopping, memory_order_acquire)) break;
        job_fn(job_ctx, self->ith, n_threads);
        atomic_fetch_sub_explicit(&job_pending, 1, memory_order_acq_rel);
    }
    return NULL;
}

static void pool_stop(void) {
    if (n_threads <= 1) {
        free(workers);
        workers = NULL;
        n_threads = 0;
        return;
    }
    atomic_store(&stopping, 1);
    atomic_fetch_add(&job_gen, 1);
    pthread_mutex_lock(&wake_mutex);
    pthread_cond_broadcast(&wake_cond);
    pthread_mutex_unlock(&wake_mutex);
    for (int i = 0; i < n_threads - 1; i++) pthread_join(workers[i].thread, NULL);
    free(workers);
    workers = NULL;
    n_threads = 0;
    atomic_store(&stopping, 0);
}

static int default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

int pc_pool_set_threads(int n) {
    if (n < 1) n = 1;
    if (n > PC_MAX_THREADS) n = PC_MAX_THREADS;
    if (n == n_threads) return n;
    pool_stop();
    if (n > 1) {
        workers = (worker_t *)calloc((size_t)(n - 1), sizeof(worker_t));
        if (!workers) n = 1;
    }
    n_threads = n;
    int started = 1;
    for (int i = 0; i < n - 1; i++) {
        workers[i].ith = i + 1;
        workers[i].start_gen = atomic_load(&job_gen);
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) break;
        started++;
    }
    if (started != n) {
        // Could not create every thread: stop the ones that started and run single-threaded.
        const int ok = started;
        n_threads = ok; // pool_stop joins n_threads - 1 workers
        pool_stop();
        n_threads = 1;
    }
    return n_threads;
}

int pc_pool_threads(void) {
    if (n_threads == 0) pc_pool_set_threads(default_threads());
    return n_threads;
}

void pc_pool_run(pc_job_fn fn, void *ctx) {
    const int nth = pc_pool_threads();
    if (nth == 1) {
        fn(ctx, 0, 1);
        return;
    }
    job_fn = fn;
    job_ctx = ctx;
    atomic_store_explicit(&job_pending, nth - 1, memory_order_relaxed);
    atomic_fetch_add(&job_gen, 1); // seq_cst: publishes job_fn/job_ctx/job_pending
    if (atomic_load(&sleepers) > 0) {
        pthread_mutex_lock(&wake_mutex);
        pthread_cond_broadcast(&wake_cond);
        pthread_mutex_unlock(&wake_mutex);
    }
    fn(ctx, 0, nth);
    // Wait for the workers. Spin, but yield the CPU after a while in case a worker was
    // descheduled (more threads than free cores).
    for (unsigned i = 0; atomic_load_explicit(&job_pending, memory_order_acquire) > 0; i++) {
        if (i < 100000) cpu_relax();
        else sched_yield();
    }
}

void *pc_thread_scratch(int ith, int slot, size_t bytes) {
    return pc_buf_reserve(&scratch[ith][slot], bytes);
}
