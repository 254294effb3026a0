// Attention of a batch of queries over one layer's KV cache, with the mask derived from
// per-row (seq, pos) (see AttentionArgs in src/kernels/types.ts).
#ifndef PC_ATTENTION_H
#define PC_ATTENTION_H

#include <stdatomic.h>

#include "common.h"

typedef struct {
    const float *q;        // [T, nHeads, headDim]
    const float *k, *v;    // [nKvHeads, cap, headDim] (F32 cache), or NULL with:
    const uint16_t *k16, *v16; // [nKvHeads, cap, headDim] F16 bits (F16 cache)
    const int32_t *rowSeq; // [nKvHeads, cap]
    const int32_t *rowPos; // [nKvHeads, cap]
    const int32_t *nRows;  // [nKvHeads]
    int64_t cap;
    const int32_t *qSeq;   // [T]
    const int32_t *qPos;   // [T]
    const uint8_t *visible; // [nSeqMax, nSeqMax]
    int nSeqMax;
    int64_t T;
    int nHeads, nKvHeads, headDim;
    float scale;
    float softcap;         // > 0: each score s becomes softcap * tanh(s / softcap) (Gemma 2)
    int32_t window;        // > 0: keys with qPos - rowPos >= window are hidden (sliding window)
    float *out;            // [T, nHeads, headDim]
} pc_attn_args;

enum { PC_ATTN_OK = 0, PC_ATTN_ESHAPE = 1, PC_ATTN_ESEQ = 2, PC_ATTN_ENOMEM = 3 };

/** Runs attention; returns PC_ATTN_ESEQ if a qSeq / rowSeq value (of a row in use) is outside
 *  [0, nSeqMax) (the output is then unspecified). */
int pc_attention(const pc_attn_args *a);

// ---- internals shared with the SIMD implementations -------------------------------------------

#define PC_ATT_KB 64 // keys per block

typedef struct {
    const pc_attn_args *a;
    int G;            // query heads per KV head
    int QB;           // tokens per query tile
    int nQT;          // query tiles
    int nSplit;       // key ranges per (KV head, tile); > 1 only for few query tiles (decode)
    int64_t splitLen; // keys per split, a multiple of PC_ATT_KB
    int packed;       // 1: QK^T uses the pre-transposed K (kt), for tiles with many rows
    float *kt;        // [nKvHeads, headDim, ldkt] K transposed, zero padded (packed only)
    int64_t ldkt;
    float *part;      // partial results (nSplit > 1): [items, rowsMax, headDim + 2]
    int rowsMax;      // QB * G
    int nItems;
    atomic_int next;  // next item to take
    atomic_int bad_seq;
} pc_att_job;

/** Visibility of the keys of block [k0, k0 + nk) of KV head h for query token t: bit j set iff
 *  key k0 + j is visible. Sets job->bad_seq on an out-of-range rowSeq. */
uint64_t pc_att_visibility(pc_att_job *job, int h, int64_t k0, int nk, int64_t t);

/** Summary of query tokens [t0, t1): smallest and largest qPos, and their common qSeq (-1
 *  if they differ). */
void pc_att_tile_summary(const pc_att_job *job, int64_t t0, int64_t t1, int32_t *qmin, int32_t *qmax, int32_t *qseq);

/** Block-level test for a whole query tile (summarised by pc_att_tile_summary): 0 = no token
 *  sees any key of block [k0, k0 + nk) of KV head h, 1 = every token sees every key, 2 = mixed
 *  (use pc_att_visibility per token). */
int pc_att_block_class(pc_att_job *job, int h, int64_t k0, int nk, int32_t qmin, int32_t qmax, int32_t qseq);

/** Item index -> (KV head, query tile, split). Tiles are handed out last first: in causal
 *  prefill those have the most keys, and starting with the big items balances the threads. */
static inline void pc_att_item(const pc_att_job *job, int item, int *h, int *tile, int *split) {
    *split = item % job->nSplit;
    const int rest = item / job->nSplit;
    *h = rest % job->a->nKvHeads;
    *tile = job->nQT - 1 - rest / job->a->nKvHeads;
}

/** Per-row results of an item: m (running max), l (sum of exps), o[headDim] (unnormalised).
 *  Writes the final output when nSplit == 1, else the partial record. */
void pc_att_finish_rows(pc_att_job *job, int item, int h, int64_t t0, int64_t t1, const float *m, const float *l,
                        const float *o);

/** Per-thread working memory of an item. */
typedef struct {
    float *m, *l, *alpha; // [rowsMax] running max, running sum, last rescale factor
    float *kf, *vf;       // [PC_ATT_KB, headDim] a key / value block widened from F16
    float *o;             // [rowsMax, headDim] unnormalised outputs
    float *S;             // [rowsMax, PC_ATT_KB] scores / probabilities (64-byte aligned)
    const float **qrow;   // [rowsMax] query row pointers
    uint64_t *vis;        // [QB] visibility bits of the current key block per token
} pc_att_scr;

size_t pc_att_scratch_bytes(const pc_att_job *job);
/** Carves thread ith's scratch (reserved by pc_attention) into s. */
void pc_att_scratch(const pc_att_job *job, int ith, pc_att_scr *s);

#if PC_HAVE_X86_SIMD
/** dst[i] = src[i] widened from F16, i < n. */
void pc_att_widen(const uint16_t *src, int64_t n, float *dst);
#if PC_HAVE_X86_SIMD
void pc_att_widen_avx2(const uint16_t *src, int64_t n, float *dst);
#endif

/** Applies the soft cap (if any) to the scores S [rows, PC_ATT_KB] of one key block. */
void pc_att_softcap(const pc_attn_args *a, float *S, int rows, int nk);
void pc_att_item_avx2(pc_att_job *job, int ith, int item);
void pc_att_item_512(pc_att_job *job, int ith, int item);
void pc_att_transpose_k_avx2(pc_att_job *job, int h, int64_t k0);
#endif

// Per-thread scratch slots used by attention (threadpool.h).
#define PC_SLOT_ATT 1

#endif
