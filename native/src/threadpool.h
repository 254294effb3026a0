// A persistent pool of worker threads. The calling thread takes part as thread 0, so a pool
// of n threads owns n - 1 pthreads. Jobs are fork-join: pc_pool_run returns when every
// thread has finished its call.
#ifndef PC_THREADPOOL_H
#define PC_THREADPOOL_H

#include "common.h"

/** A job: called once on every thread with ith in [0, nth). */
typedef void (*pc_job_fn)(void *ctx, int ith, int nth);

/** Runs fn on all threads of the pool (creating the default pool on first use) and waits. */
void pc_pool_run(pc_job_fn fn, void *ctx);

/** Resizes the pool to n threads (clamped to [1, PC_MAX_THREADS]). Cheap when n is unchanged.
 *  Must not be called while a job runs (the binding serialises calls). Returns the size. */
int pc_pool_set_threads(int n);

/** Current pool size (the default is the number of online CPUs). */
int pc_pool_threads(void);

/** Per-thread scratch buffer slot `slot` of thread ith; only thread ith may use it. */
void *pc_thread_scratch(int ith, int slot, size_t bytes);

#define PC_MAX_THREADS 256
#define PC_SCRATCH_SLOTS 4

#endif
