// Matmul driver: activation conversion, kernel choice, and the split of work across threads.
//
// The work is cut into a few chunks per thread: contiguous ranges of output rows (multiples of
// the kernel's row unit) when there are enough rows, otherwise of tokens. Threads take chunks
// from a shared counter rather than a fixed share each: the machine may be shared, and a
// thread that gets descheduled then delays the call by one chunk instead of by its whole share.
#include "matmul.h"

#include <stdatomic.h>

#include "threadpool.h"

// Below this many multiply-adds the fork/join costs more than it saves.
#define SERIAL_WORK 32768.0
// Below this many activation values the conversion is done by the calling thread alone.
#define SERIAL_CONVERT 16384
// Chunks per thread.
#define CHUNKS_PER_THREAD 4

static pc_buf_t acts_buf; // converted activations, reused across calls

typedef struct {
    pc_mm_job *job;
    int nchunks;
    atomic_int next;
} mm_run;

static void convert_job(void *ctx, int ith, int nth) {
    (void)ith;
    (void)nth;
    mm_run *run = (mm_run *)ctx;
    pc_mm_job *job = run->job;
    for (;;) {
        const int c = atomic_fetch_add(&run->next, 1);
        if (c >= run->nchunks) break;
        pc_acts_convert(&job->acts, job->x, job->T * c / run->nchunks, job->T * (c + 1) / run->nchunks);
    }
}

static void compute_job(void *ctx, int ith, int nth) {
    (void)nth;
    mm_run *run = (mm_run *)ctx;
    pc_mm_job *job = run->job;
    const int64_t units = (job->nOut + job->row_unit - 1) / job->row_unit;
    for (;;) {
        const int c = atomic_fetch_add(&run->next, 1);
        if (c >= run->nchunks) break;
        if (job->split_tokens) {
            const int64_t t0 = job->T * c / run->nchunks, t1 = job->T * (c + 1) / run->nchunks;
            if (t0 >= t1) continue;
            if (job->convert_in_job) pc_acts_convert(&job->acts, job->x, t0, t1);
            job->kernel(job, ith, 0, job->nOut, t0, t1);
        } else {
            const int64_t u0 = units * c / run->nchunks, u1 = units * (c + 1) / run->nchunks;
            const int64_t r0 = u0 * job->row_unit, r1 = PC_MIN(job->nOut, u1 * job->row_unit);
            if (r0 >= r1) continue;
            job->kernel(job, ith, r0, r1, 0, job->T);
        }
    }
}

int pc_matmul(const uint8_t *w, int type, int64_t nOut, int64_t nIn, const float *x, int64_t T, float *y) {
    const int vtype = pc_vec_dot_type(type);
    if (vtype < 0) return PC_EUNSUPPORTED;
    if (nOut < 0 || nIn < 0 || T < 0) return PC_ESHAPE;
    if (T == 0 || nOut == 0) return PC_OK;
    if (nIn == 0) {
        memset(y, 0, (size_t)(T * nOut) * sizeof(float));
        return PC_OK;
    }
    const size_t rb = pc_row_bytes(type, nIn);
    if (rb == 0) return PC_ESHAPE;

    pc_mm_job job;
    memset(&job, 0, sizeof job);
    job.w = w;
    job.row_bytes = rb;
    job.type = type;
    job.nOut = nOut;
    job.nIn = nIn;
    job.T = T;
    job.x = x;
    job.y = y;
    job.kernel = pc_mm_float_kernel(type, pc_isa, T, &job.row_unit);
    if (!job.kernel) job.kernel = pc_mm_quant_kernel(type, pc_isa, T, &job.row_unit);
    if (!job.kernel) return PC_EUNSUPPORTED;

    const size_t abytes = pc_acts_bytes(vtype, T, nIn);
    void *amem = NULL;
    if (abytes) {
        amem = pc_buf_reserve(&acts_buf, abytes);
        if (!amem) return PC_ENOMEM;
    }
    pc_acts_init(&job.acts, vtype, x, T, nIn, amem);

    const double work = (double)T * (double)nOut * (double)nIn;
    const int nth = work < SERIAL_WORK ? 1 : pc_pool_threads();

    // Per-thread scratch for the float kernels (a packed panel of 64 rows, or 4 widened rows).
    if (vtype == PC_F32 || vtype == PC_F16 || vtype == PC_BF16) {
        for (int i = 0; i < nth; i++)
            if (!pc_thread_scratch(i, PC_SLOT_PANEL, (size_t)nIn * 64 * sizeof(float))) return PC_ENOMEM;
    }

    if (nth == 1) {
        pc_acts_convert(&job.acts, x, 0, T);
        job.kernel(&job, 0, 0, nOut, 0, T);
        return PC_OK;
    }
    const int64_t units = (nOut + job.row_unit - 1) / job.row_unit;
    mm_run run;
    run.job = &job;
    // Prefer splitting rows (each thread streams only its chunks of w). Split tokens when there
    // are too few row units to go round and enough tokens.
    job.split_tokens = units < 2 * nth && T >= 2 * nth;
    if (job.split_tokens) {
        job.convert_in_job = 1; // each chunk converts its own tokens
        run.nchunks = (int)PC_MIN(T, (int64_t)CHUNKS_PER_THREAD * nth);
        atomic_store(&run.next, 0);
        pc_pool_run(compute_job, &run);
        return PC_OK;
    }
    if ((double)T * (double)nIn < SERIAL_CONVERT) {
        pc_acts_convert(&job.acts, x, 0, T);
    } else {
        run.nchunks = (int)PC_MIN(T, (int64_t)CHUNKS_PER_THREAD * nth);
        atomic_store(&run.next, 0);
        pc_pool_run(convert_job, &run);
    }
    run.nchunks = (int)PC_MIN(units, (int64_t)CHUNKS_PER_THREAD * nth);
    atomic_store(&run.next, 0);
    pc_pool_run(compute_job, &run);
    return PC_OK;
}
