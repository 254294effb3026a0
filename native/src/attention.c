// Attention: planning, masking, the scalar kernel and the merge of split results.
//
// Work is cut into items (KV head, query tile, key split). A query tile is QB consecutive query
// tokens times the G query heads that share the KV head, so every key and value loaded from
// the cache serves G * QB query rows. Each item walks its keys in blocks of PC_ATT_KB with an
// online (streaming) softmax: per row a running max m, a running sum of exponentials l and an
// unnormalised output o, rescaled whenever the max grows. Blocks that no query of the tile can
// see (future positions, invisible sequences) are skipped without being read.
//
// For decode (few query rows) the keys of each KV head are split into ranges handled by
// different threads; their (m, l, o) records are merged at the end ("flash decoding").
#include "attention.h"

#include <math.h>
#include <stdlib.h>

#include "threadpool.h"

// ---------------------------------------------------------------------------------------------
// Masks.

uint64_t pc_att_visibility(pc_att_job *job, int h, int64_t k0, int nk, int64_t t) {
    const pc_attn_args *a = job->a;
    const int32_t *seq = a->rowSeq + (int64_t)h * a->cap + k0;
    const int32_t *pos = a->rowPos + (int64_t)h * a->cap + k0;
    const uint8_t *vis = a->visible + (int64_t)a->qSeq[t] * a->nSeqMax;
    const int32_t qp = a->qPos[t];
    // rowPos > qp - window, written so that window = 0 (none) cannot overflow
    const int64_t lo = a->window > 0 ? (int64_t)qp - a->window : INT64_MIN;
    uint64_t bits = 0;
    for (int j = 0; j < nk; j++) {
        const int32_t s = seq[j];
        if ((uint32_t)s >= (uint32_t)a->nSeqMax) {
            atomic_store(&job->bad_seq, 1);
            continue;
        }
        if (vis[s] && pos[j] <= qp && pos[j] > lo) bits |= (uint64_t)1 << j;
    }
    return bits;
}

void pc_att_tile_summary(const pc_att_job *job, int64_t t0, int64_t t1, int32_t *qmin, int32_t *qmax, int32_t *qseq) {
    const pc_attn_args *a = job->a;
    int32_t lo = a->qPos[t0], hi = a->qPos[t0], s = a->qSeq[t0];
    for (int64_t t = t0 + 1; t < t1; t++) {
        lo = PC_MIN(lo, a->qPos[t]);
        hi = PC_MAX(hi, a->qPos[t]);
        if (a->qSeq[t] != s) s = -1;
    }
    *qmin = lo;
    *qmax = hi;
    *qseq = s;
}

int pc_att_block_class(pc_att_job *job, int h, int64_t k0, int nk, int32_t qmin, int32_t qmax, int32_t qseq) {
    const pc_attn_args *a = job->a;
    const int32_t *seq = a->rowSeq + (int64_t)h * a->cap + k0;
    const int32_t *pos = a->rowPos + (int64_t)h * a->cap + k0;
    int32_t kmin = pos[0], kmax = pos[0], ks = seq[0];
    int bad = 0;
    for (int j = 0; j < nk; j++) {
        kmin = PC_MIN(kmin, pos[j]);
        kmax = PC_MAX(kmax, pos[j]);
        if (seq[j] != ks) ks = -1;
        bad |= (uint32_t)seq[j] >= (uint32_t)a->nSeqMax;
    }
    if (bad) return 2; // the per-token pass reports it
    if (kmin > qmax) return 0;
    const int win = a->window > 0;
    if (win && (int64_t)qmin - kmax >= a->window) return 0; // every key slid out of every window
    if (qseq >= 0 && ks >= 0) {
        if (!a->visible[(int64_t)qseq * a->nSeqMax + ks]) return 0;
        if (kmax <= qmin && (!win || (int64_t)qmax - kmin < a->window)) return 1;
    }
    return 2;
}

void pc_att_widen(const uint16_t *src, int64_t n, float *dst) {
    for (int64_t i = 0; i < n; i++) dst[i] = pc_fp16_to_fp32(src[i]);
}

void pc_att_softcap(const pc_attn_args *a, float *S, int rows, int nk) {
    if (!(a->softcap > 0)) return;
    // as ggml: scale by the float reciprocal, tanh, scale back (masked scores are overwritten later)
    const float inv = 1.0f / a->softcap;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < nk; j++) S[(int64_t)r * PC_ATT_KB + j] = tanhf(S[(int64_t)r * PC_ATT_KB + j] * inv) * a->softcap;
}

// ---------------------------------------------------------------------------------------------
// Scratch.

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t pc_att_scratch_bytes(const pc_att_job *job) {
    const size_t R = (size_t)job->rowsMax, hd = (size_t)job->a->headDim;
    return round64(3 * R * sizeof(float)) + round64(R * hd * sizeof(float)) +
           round64(R * PC_ATT_KB * sizeof(float)) + round64(R * sizeof(float *)) +
           round64((size_t)job->QB * sizeof(uint64_t)) + 2 * round64(PC_ATT_KB * hd * sizeof(float));
}

void pc_att_scratch(const pc_att_job *job, int ith, pc_att_scr *s) {
    const size_t R = (size_t)job->rowsMax, hd = (size_t)job->a->headDim;
    uint8_t *p = (uint8_t *)pc_thread_scratch(ith, PC_SLOT_ATT, 0); // 64-byte aligned
    s->m = (float *)p;
    s->l = s->m + R;
    s->alpha = s->l + R;
    p += round64(3 * R * sizeof(float));
    s->o = (float *)p;
    p += round64(R * hd * sizeof(float));
    s->S = (float *)p;
    p += round64(R * PC_ATT_KB * sizeof(float));
    s->qrow = (const float **)p;
    p += round64(R * sizeof(float *));
    s->vis = (uint64_t *)p;
    p += round64((size_t)job->QB * sizeof(uint64_t));
    s->kf = (float *)p;
    p += round64(PC_ATT_KB * hd * sizeof(float));
    s->vf = (float *)p;
}

// ---------------------------------------------------------------------------------------------
// Results.

void pc_att_finish_rows(pc_att_job *job, int item, int h, int64_t t0, int64_t t1, const float *m, const float *l,
                        const float *o) {
    const pc_attn_args *a = job->a;
    const int G = job->G, hd = a->headDim;
    const int rows = (int)(t1 - t0) * G;
    if (job->nSplit == 1) {
        for (int r = 0; r < rows; r++) {
            const int64_t t = t0 + r / G;
            float *dst = a->out + (t * a->nHeads + (int64_t)h * G + r % G) * hd;
            if (l[r] > 0) {
                const float inv = 1.0f / l[r];
                for (int d = 0; d < hd; d++) dst[d] = o[(int64_t)r * hd + d] * inv;
            } else {
                memset(dst, 0, (size_t)hd * sizeof(float));
            }
        }
    } else {
        float *rec = job->part + (int64_t)item * job->rowsMax * (hd + 2);
        for (int r = 0; r < rows; r++) {
            float *p = rec + (int64_t)r * (hd + 2);
            p[0] = m[r];
            p[1] = l[r];
            memcpy(p + 2, o + (int64_t)r * hd, (size_t)hd * sizeof(float));
        }
    }
}

/** Merges the nSplit partial records of every (KV head, tile) into the output. */
static void merge_splits(pc_att_job *job) {
    const pc_attn_args *a = job->a;
    const int G = job->G, hd = a->headDim, S = job->nSplit;
    for (int tile = 0; tile < job->nQT; tile++) {
        const int64_t t0 = (int64_t)tile * job->QB, t1 = PC_MIN(a->T, t0 + job->QB);
        const int rows = (int)(t1 - t0) * G;
        for (int h = 0; h < a->nKvHeads; h++) {
            const int base = ((job->nQT - 1 - tile) * a->nKvHeads + h) * S;
            for (int r = 0; r < rows; r++) {
                const int64_t t = t0 + r / G;
                float *dst = a->out + (t * a->nHeads + (int64_t)h * G + r % G) * hd;
                float M = -INFINITY;
                for (int s = 0; s < S; s++) {
                    const float *p = job->part + ((int64_t)(base + s) * job->rowsMax + r) * (hd + 2);
                    if (p[1] > 0) M = PC_MAX(M, p[0]);
                }
                memset(dst, 0, (size_t)hd * sizeof(float));
                if (M == -INFINITY) continue; // the row sees no key
                float L = 0;
                for (int s = 0; s < S; s++) {
                    const float *p = job->part + ((int64_t)(base + s) * job->rowsMax + r) * (hd + 2);
                    if (!(p[1] > 0)) continue;
                    const float f = expf(p[0] - M);
                    L += p[1] * f;
                    for (int d = 0; d < hd; d++) dst[d] += p[2 + d] * f;
                }
                const float inv = 1.0f / L;
                for (int d = 0; d < hd; d++) dst[d] *= inv;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar kernel: one item, row by row within each key block.

static void att_item_scalar(pc_att_job *job, int ith, int item) {
    const pc_attn_args *a = job->a;
    int h, tile, split;
    pc_att_item(job, item, &h, &tile, &split);
    const int G = job->G, hd = a->headDim;
    const int64_t t0 = (int64_t)tile * job->QB, t1 = PC_MIN(a->T, t0 + job->QB);
    const int rows = (int)(t1 - t0) * G;
    pc_att_scr sc;
    pc_att_scratch(job, ith, &sc);
    float *m = sc.m, *l = sc.l, *o = sc.o, *s = sc.S; // s: scores of one row [PC_ATT_KB]
    for (int r = 0; r < rows; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
    }
    memset(o, 0, (size_t)rows * hd * sizeof(float));
    const int64_t nr = a->nRows[h];
    const int64_t kbeg = split * job->splitLen, kend = PC_MIN(nr, kbeg + job->splitLen);
    int32_t qmin, qmax, qseq;
    pc_att_tile_summary(job, t0, t1, &qmin, &qmax, &qseq);
    for (int64_t k0 = kbeg; k0 < kend; k0 += PC_ATT_KB) {
        const int nk = (int)PC_MIN(PC_ATT_KB, kend - k0);
        const int cls = pc_att_block_class(job, h, k0, nk, qmin, qmax, qseq);
        if (cls == 0) continue;
        const int64_t off = ((int64_t)h * a->cap + k0) * hd;
        const float *kb = a->k ? a->k + off : sc.kf;
        const float *vb = a->v ? a->v + off : sc.vf;
        if (a->k16) pc_att_widen(a->k16 + off, (int64_t)nk * hd, sc.kf);
        if (a->v16) pc_att_widen(a->v16 + off, (int64_t)nk * hd, sc.vf);
        for (int64_t t = t0; t < t1; t++) {
            const uint64_t vis = cls == 1 ? (nk == 64 ? ~(uint64_t)0 : (((uint64_t)1 << nk) - 1))
                                          : pc_att_visibility(job, h, k0, nk, t);
            if (!vis) continue;
            for (int g = 0; g < G; g++) {
                const int r = (int)(t - t0) * G + g;
                const float *qr = a->q + (t * a->nHeads + (int64_t)h * G + g) * hd;
                float mx = -INFINITY;
                for (int j = 0; j < nk; j++) {
                    if (!((vis >> j) & 1)) continue;
                    float dot = 0;
                    for (int d = 0; d < hd; d++) dot += qr[d] * kb[(int64_t)j * hd + d];
                    s[j] = dot * a->scale;
                    if (a->softcap > 0) s[j] = tanhf(s[j] * (1.0f / a->softcap)) * a->softcap;
                    mx = PC_MAX(mx, s[j]);
                }
                const float mnew = PC_MAX(m[r], mx);
                const float alpha = expf(m[r] - mnew); // 0 when m was -inf
                float *orow = o + (int64_t)r * hd;
                for (int d = 0; d < hd; d++) orow[d] *= alpha;
                float sum = 0;
                for (int j = 0; j < nk; j++) {
                    if (!((vis >> j) & 1)) continue;
                    const float p = expf(s[j] - mnew);
                    sum += p;
                    for (int d = 0; d < hd; d++) orow[d] += p * vb[(int64_t)j * hd + d];
                }
                l[r] = l[r] * alpha + sum;
                m[r] = mnew;
            }
        }
    }
    pc_att_finish_rows(job, item, h, t0, t1, m, l, o);
}

// ---------------------------------------------------------------------------------------------
// Driver.

static void att_run_items(void *ctx, int ith, int nth) {
    (void)nth;
    pc_att_job *job = (pc_att_job *)ctx;
    for (;;) {
        const int item = atomic_fetch_add(&job->next, 1);
        if (item >= job->nItems) break;
#if PC_HAVE_X86_SIMD
        if (pc_isa >= PC_ISA_AVX512 && job->a->headDim % 16 == 0) { pc_att_item_512(job, ith, item); continue; }
        if (pc_isa >= PC_ISA_AVX2 && job->a->headDim % 8 == 0) { pc_att_item_avx2(job, ith, item); continue; }
#endif
        att_item_scalar(job, ith, item);
    }
}

#if PC_HAVE_X86_SIMD
/** Pre-pass for the packed path: transposes every block of K (items = KV head x key block). */
static void att_run_transpose(void *ctx, int ith, int nth) {
    (void)ith;
    (void)nth;
    pc_att_job *job = (pc_att_job *)ctx;
    const int nkb = (int)(job->ldkt / PC_ATT_KB);
    const int n = job->a->nKvHeads * nkb;
    for (;;) {
        const int i = atomic_fetch_add(&job->next, 1);
        if (i >= n) break;
        pc_att_transpose_k_avx2(job, i / nkb, (int64_t)(i % nkb) * PC_ATT_KB);
    }
}
#endif

static pc_buf_t kt_buf, part_buf;

int pc_attention(const pc_attn_args *a) {
    if (a->nKvHeads <= 0 || a->nHeads <= 0 || a->nHeads % a->nKvHeads || a->headDim <= 0 || a->T < 0 ||
        a->cap < 0 || a->nSeqMax <= 0 || !(a->k ? !a->k16 : !!a->k16) || !(a->v ? !a->v16 : !!a->v16))
        return PC_ATTN_ESHAPE;
    if (a->T == 0) return PC_ATTN_OK;
    int64_t maxRows = 0;
    for (int h = 0; h < a->nKvHeads; h++) {
        if (a->nRows[h] < 0 || a->nRows[h] > a->cap) return PC_ATTN_ESHAPE;
        maxRows = PC_MAX(maxRows, a->nRows[h]);
    }
    for (int64_t t = 0; t < a->T; t++)
        if ((uint32_t)a->qSeq[t] >= (uint32_t)a->nSeqMax) return PC_ATTN_ESEQ;

    pc_att_job job;
    memset(&job, 0, sizeof job);
    job.a = a;
    job.G = a->nHeads / a->nKvHeads;
    job.QB = (int)PC_MIN(a->T, PC_MAX(1, 48 / job.G));
    job.nQT = (int)((a->T + job.QB - 1) / job.QB);
    job.rowsMax = job.QB * job.G;
    const int nth = pc_pool_threads();

    // Split the keys when there are too few (head, tile) items to keep the threads busy.
    job.nSplit = 1;
    job.splitLen = (maxRows + PC_ATT_KB - 1) / PC_ATT_KB * PC_ATT_KB;
    const int base = a->nKvHeads * job.nQT;
    if (base < 4 * nth && maxRows >= 4 * PC_ATT_KB) {
        const int64_t want = (8 * nth + base - 1) / base;
        const int64_t maxSplits = maxRows / (4 * PC_ATT_KB); // at least 256 keys per split
        const int64_t ns = PC_MAX(1, PC_MIN(want, maxSplits));
        const int64_t blocks = (maxRows + PC_ATT_KB - 1) / PC_ATT_KB;
        job.splitLen = (blocks + ns - 1) / ns * PC_ATT_KB;
        job.nSplit = (int)((maxRows + job.splitLen - 1) / job.splitLen);
    }
    if (job.splitLen == 0) job.splitLen = PC_ATT_KB;
    job.nItems = base * job.nSplit;

    if (job.nSplit > 1) {
        job.part = (float *)pc_buf_reserve(&part_buf, (size_t)job.nItems * job.rowsMax * (a->headDim + 2) * sizeof(float));
        if (!job.part) return PC_ATTN_ENOMEM;
    }
    const size_t scratch = pc_att_scratch_bytes(&job);
    for (int i = 0; i < nth; i++)
        if (!pc_thread_scratch(i, PC_SLOT_ATT, scratch)) return PC_ATTN_ENOMEM;

#if PC_HAVE_X86_SIMD
    // Tiles with many rows use the packed QK^T kernel, which reads K transposed.
    const int w = pc_isa >= PC_ISA_AVX512 ? 16 : 8;
    // Transposing K costs about one pass over it; worth it once enough query rows share it.
    job.packed = pc_isa >= PC_ISA_AVX2 && a->headDim % w == 0 && job.rowsMax >= 8 && a->T * job.G >= 32 && maxRows > 0;
    if (job.packed) {
        job.ldkt = (maxRows + PC_ATT_KB - 1) / PC_ATT_KB * PC_ATT_KB;
        job.kt = (float *)pc_buf_reserve(&kt_buf, (size_t)a->nKvHeads * a->headDim * job.ldkt * sizeof(float));
        if (!job.kt) return PC_ATTN_ENOMEM;
        atomic_store(&job.next, 0);
        pc_pool_run(att_run_transpose, &job);
    }
#endif
    atomic_store(&job.next, 0);
    atomic_store(&job.bad_seq, 0);
    pc_pool_run(att_run_items, &job);
    if (job.nSplit > 1) merge_splits(&job);
    return atomic_load(&job.bad_seq) ? PC_ATTN_ESEQ : PC_ATTN_OK;
}
