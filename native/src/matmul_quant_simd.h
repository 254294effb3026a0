// SIMD quantized matmul kernels, a template included by matmul_quant.c once per instruction
// set. The includer defines:
//   QT_TARGET  function attribute selecting the ISA
//   QT_NAME(x) suffixes a name with the ISA
//   QT_VNNI    1: use AVX512-VNNI's vpdpbusd / vpdpwssd (on ymm, through AVX512VL)
//   QT_RM      rows per tile, QT_RN tokens per tile (QT_RM_Q8_0: rows of the AVX2 Q8_0 tile)
//
// All kernels are "dot" shaped: a tile of QT_RM weight rows x QT_RN tokens, walking the blocks
// of the rows once. Per block, each weight row is unpacked to bytes once and reused for
// QT_RN tokens, and each activation vector is loaded once and reused for QT_RM rows.
//
// Integer products use vpmaddubsw (unsigned x signed bytes -> int16 pairs). It saturates
// only when a pair exceeds 32767; our operands never get there: |w| <= 128 and |x| <= 128
// for Q8_0 (2 * 128 * 128 = 32768 needs w = x = -128 in a pair, which x's quantizer never
// produces: |x| <= 127), and the other weights are unsigned and < 64.

// ---- ISA-specific integer helpers --------------------------------------------------------------

/** acc (int32 x 8) += sum over each group of 4 bytes of u (unsigned) * s (signed). */
QT_TARGET PC_INLINE __m256i QT_NAME(dot_u8s8)(__m256i acc, __m256i u, __m256i s) {
#if QT_VNNI
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

/** acc (int32 x 8) += a[2i] * b[2i] + a[2i + 1] * b[2i + 1] (int16 inputs). */
QT_TARGET PC_INLINE __m256i QT_NAME(madd16)(__m256i acc, __m256i a, __m256i b) {
#if QT_VNNI
    return _mm256_dpwssd_epi32(acc, a, b);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(a, b));
#endif
}

QT_TARGET PC_INLINE float QT_NAME(h2f)(uint16_t h) { return _cvtsh_ss(h); }

/** The 8 scales and the 8 mins of a Q4_K / Q5_K super-block (kq_scales_packed) as the low 8
 *  bytes of *sc and *mn. Going through byte arrays cost a failed store-to-load forward per
 *  array (two 4-byte stores read back as one 8-byte load) in every tile and block. */
QT_TARGET PC_INLINE void QT_NAME(kq_scales_v)(const uint8_t *q, __m128i *sc, __m128i *mn) {
    uint64_t s, m;
    kq_scales_packed(q, &s, &m);
    *sc = _mm_cvtsi64_si128((long long)s);
    *mn = _mm_cvtsi64_si128((long long)m);
}

/** A Q4_K / Q5_K super-block's end: its d and dmin, and its 8 mins widened as m0 m0 m1 m1 ...
 *  m7 m7 to pair with the 16 block sums of x (16 values each). Shared by both tile widths. */
QT_TARGET PC_INLINE void QT_NAME(q45_K_tail)(const uint8_t *blk, __m128i mn, float *d, float *dmin, __m256i *mins16) {
    uint16_t d16, dmin16;
    memcpy(&d16, blk, 2);
    memcpy(&dmin16, blk + 2, 2);
    *d = QT_NAME(h2f)(d16);
    *dmin = QT_NAME(h2f)(dmin16);
    *mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(mn, mn));
}

/** sum over the super-block's 16-value groups of min * sum(x), 8 int32 lanes (token tj, block b). */
QT_TARGET PC_INLINE __m256i QT_NAME(q45_K_minsum)(const pc_acts_t *a, int64_t tj, int64_t nb, int64_t b, __m256i mins16) {
    return _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(a->sums + (tj * nb + b) * 16)), mins16);
}

/** Decode streams w from DRAM. The RM rows of a tile are adjacent, one linear range of
 *  RM * row_bytes; tiles prefetch that range QT_PF_BYTES ahead into L2, a share per block (the
 *  hardware prefetcher alone loses track of the many short row streams). */
#define QT_PF_BYTES 8192

typedef struct {
    const char *p; // next line to prefetch
    int64_t lines; // lines per block
} QT_NAME(pf_t);

QT_TARGET PC_INLINE QT_NAME(pf_t) QT_NAME(pf_init)(const uint8_t *w, int RM, size_t row_bytes, int64_t nb) {
    QT_NAME(pf_t) pf = {(const char *)w + QT_PF_BYTES, ((int64_t)RM * (int64_t)row_bytes + 63) / 64 / nb + 1};
    return pf;
}

QT_TARGET PC_INLINE void QT_NAME(pf_step)(QT_NAME(pf_t) *pf) {
    for (int64_t l = 0; l < pf->lines; l++) _mm_prefetch(pf->p + 64 * l, _MM_HINT_T1);
    pf->p += 64 * pf->lines;
}

// ---- 32-value blocks: Q8_0, Q4_0, Q5_0 x Q8_0 activations; Q4_1, Q5_1 x Q8_1 ---------------------

/** Byte l of the result = 0x10 if bit l of the 32-bit qh is set, else 0 (Q5_0 / Q5_1). */
QT_TARGET PC_INLINE __m256i QT_NAME(q5_high)(const uint8_t *qh4) {
    uint32_t qh;
    memcpy(&qh, qh4, 4);
    // spread byte l / 8 of qh to byte l, then test bit l % 8
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh),
                                               _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL, 0x0303030303030303LL));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
}

#if QT_VNNI
/** Q8_0 x Q8_0 with VNNI: as tile_q8_0_h, without the sign trick, two blocks per 512-bit vector.
 *  vpdpbusd wants unsigned x signed bytes and does not saturate, so x is moved to unsigned
 *  (x + 128, an xor of the sign bit) and the excess 128 * sum(w) is subtracted by starting the
 *  sum at -128 * sum(w), once per weight block instead of one vpsignb per (row, token) pair.
 *  The 64 activations of two blocks are contiguous; the weights come from two 32-byte loads and
 *  the two blocks' scales fill the two halves (an odd last block runs with zero upper halves).
 *  Same integers as tile_q8_0_h; the float sums run over 16 lanes. */
QT_TARGET PC_INLINE void QT_NAME(tile_q8_0_z)(int RM, int RN, const uint8_t *w, size_t row_bytes, const pc_acts_t *a,
                                             int64_t t, int64_t nb, float *y, int64_t ldy, int prefetch) {
    __m512 acc[QT_RM][QT_RN];
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) acc[i][j] = _mm512_setzero_ps();
    const int64_t K = nb * 32;
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    QT_NAME(pf_t) pf = QT_NAME(pf_init)(w, RM, row_bytes, nb);
    for (int64_t b = 0; b < nb; b += 2) {
        if (prefetch) {
            QT_NAME(pf_step)(&pf);
            QT_NAME(pf_step)(&pf);
        }
        const int two = b + 1 < nb;
        __m512i wq[QT_RM], corr[QT_RM];
        __m512 dw[QT_RM];
        for (int i = 0; i < RM; i++) {
            const block_q8_0 *blk = (const block_q8_0 *)(w + i * row_bytes) + b;
            const __m256i lo = _mm256_loadu_si256((const __m256i *)blk[0].qs);
            const __m256i hi = two ? _mm256_loadu_si256((const __m256i *)blk[1].qs) : _mm256_setzero_si256();
            wq[i] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            corr[i] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, wq[i]));
            dw[i] = _mm512_insertf32x8(_mm512_set1_ps(QT_NAME(h2f)(blk[0].d)), _mm256_set1_ps(two ? QT_NAME(h2f)(blk[1].d) : 0.0f), 1);
        }
        for (int j = 0; j < RN; j++) {
            const int64_t tj = t + j;
            const int8_t *xq = a->qs + tj * K + b * 32;
            const __m512i x = two ? _mm512_loadu_si512((const void *)xq) : _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)xq));
            const __m512i xu = _mm512_xor_si512(x, bias); // an odd last block: its upper half meets zero weights
            const __m512 dx = _mm512_insertf32x8(_mm512_set1_ps(a->d[tj * nb + b]), _mm256_set1_ps(two ? a->d[tj * nb + b + 1] : 0.0f), 1);
            for (int i = 0; i < RM; i++) {
                const __m512i p = _mm512_dpbusd_epi32(corr[i], xu, wq[i]);
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw[i], dx), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) y[j * ldy + i] = _mm512_reduce_add_ps(acc[i][j]);
}
#endif

#if !QT_VNNI
/** Q8_0 x Q8_0 without VNNI: up to 4 rows x 4 tokens, one float accumulator per row.
 *  Per block and row, the tokens' integer dot products (8 int32 lanes each; sign trick: |w| is
 *  unsigned, w's sign moves onto x by vpsignb, the product unchanged) are folded by horizontal
 *  adds into one vector: with 3 or 4 tokens lane j holds token j's sum over the block's first 16
 *  values and lane j + 4 over its last 16 (with 2 tokens, lanes 2j, 2j + 1, 2j + 4, 2j + 5 are
 *  token j's; with 1, all 8). One conversion and one multiply-add by dw times the matching lanes
 *  of dx then serve every token of the tile, where the previous 2 x 4 tile converted, scaled and
 *  accumulated each (row, token) pair on its own: that float work was most of the block's
 *  instructions (the Q8_0 matmul at T=512 1.29x faster for it on AVX2, docs/performance.md).
 *  The integers are the previous tile's; the float sum per token runs over 2 lanes (8 with one
 *  token) instead of 8. A third token's tile computes a zero fourth. */
QT_TARGET PC_INLINE void QT_NAME(tile_q8_0_h)(int RM, int RN, const uint8_t *w, size_t row_bytes, const pc_acts_t *a,
                                             int64_t t, int64_t nb, float *y, int64_t ldy, int prefetch) {
    __m256 acc[4];
    for (int i = 0; i < RM; i++) acc[i] = _mm256_setzero_ps();
    const int64_t K = nb * 32;
    const int NX = RN <= 2 ? RN : 4; // token vectors computed per row
    const __m256i ones = _mm256_set1_epi16(1);
    QT_NAME(pf_t) pf = QT_NAME(pf_init)(w, RM, row_bytes, nb);
    for (int64_t b = 0; b < nb; b++) {
        if (prefetch) QT_NAME(pf_step)(&pf);
        __m256i x[4];
        float dx[4];
        for (int j = 0; j < NX; j++) {
            if (j < RN) {
                x[j] = _mm256_loadu_si256((const __m256i *)(a->qs + (t + j) * K + b * 32));
                dx[j] = a->d[(t + j) * nb + b];
            } else {
                x[j] = _mm256_setzero_si256();
                dx[j] = 0.0f;
            }
        }
        __m256 dx8;
        if (NX == 1) dx8 = _mm256_set1_ps(dx[0]);
        else if (NX == 2) dx8 = _mm256_setr_ps(dx[0], dx[0], dx[1], dx[1], dx[0], dx[0], dx[1], dx[1]);
        else {
            const __m128 dx4 = _mm_setr_ps(dx[0], dx[1], dx[2], dx[3]);
            dx8 = _mm256_set_m128(dx4, dx4);
        }
        for (int i = 0; i < RM; i++) {
            const block_q8_0 *blk = (const block_q8_0 *)(w + i * row_bytes) + b;
            const __m256i ws = _mm256_loadu_si256((const __m256i *)blk->qs);
            const __m256i u = _mm256_abs_epi8(ws);
            __m256i p[4];
            for (int j = 0; j < NX; j++) p[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(u, _mm256_sign_epi8(x[j], ws)), ones);
            const __m256i h = NX == 1   ? p[0]
                              : NX == 2 ? _mm256_hadd_epi32(p[0], p[1])
                                        : _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h), _mm256_mul_ps(_mm256_set1_ps(QT_NAME(h2f)(blk->d)), dx8), acc[i]);
        }
    }
    for (int i = 0; i < RM; i++) {
        float s[4];
        _mm_storeu_ps(s, _mm_add_ps(_mm256_castps256_ps128(acc[i]), _mm256_extractf128_ps(acc[i], 1)));
        if (NX == 1) y[i] = (s[0] + s[1]) + (s[2] + s[3]);
        else if (NX == 2) {
            y[i] = s[0] + s[1];
            y[ldy + i] = s[2] + s[3];
        } else
            for (int j = 0; j < RN; j++) y[j * ldy + i] = s[j];
    }
}
#endif

/** Tile: y[j * ldy + i] = dot(w row i, token t + j), i < RM, j < RN, for Q4_0, Q5_0, Q4_1, Q5_1
 *  (Q8_0 has its own tiles). w: RM rows of nb 32-value blocks of wtype, row_bytes apart; a: Q8_0
 *  activations (Q8_1 for Q4_1 / Q5_1); y: [RN, ldy]. */
QT_TARGET PC_INLINE void QT_NAME(tile_b32)(int wtype, int RM, int RN, const uint8_t *w, size_t row_bytes,
                                          const pc_acts_t *a, int64_t t, int64_t nb, float *y, int64_t ldy, int prefetch) {
    __m256 acc[QT_RM][QT_RN];
    float msum[QT_RM][QT_RN]; // Q4_1 / Q5_1: sum over blocks of m * s
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) {
            acc[i][j] = _mm256_setzero_ps();
            msum[i][j] = 0;
        }
    const int64_t K = nb * 32;
    const int has_min = wtype == PC_Q4_1 || wtype == PC_Q5_1;
    // Q4_0 / Q5_0 store value + 8 / + 16; the offset is removed through the block sum of x.
    const int offset = wtype == PC_Q4_0 ? 8 : wtype == PC_Q5_0 ? 16 : 0;
    const __m256i lo4 = _mm256_set1_epi8(0x0F);
    QT_NAME(pf_t) pf = QT_NAME(pf_init)(w, RM, row_bytes, nb);
    for (int64_t b = 0; b < nb; b++) {
        if (prefetch) QT_NAME(pf_step)(&pf);
        __m256i u[QT_RM];
        float dw[QT_RM], mw[QT_RM];
        for (int i = 0; i < RM; i++) {
            const uint8_t *row = w + i * row_bytes;
            uint16_t d16, m16 = 0;
            const uint8_t *blk, *qs, *qh = NULL;
            switch (wtype) {
                case PC_Q4_0: blk = row + b * sizeof(block_q4_0); qs = blk + 2; break;
                case PC_Q5_0: blk = row + b * sizeof(block_q5_0); qh = blk + 2; qs = blk + 6; break;
                case PC_Q4_1: blk = row + b * sizeof(block_q4_1); qs = blk + 4; break;
                default: blk = row + b * sizeof(block_q5_1); qh = blk + 4; qs = blk + 8; break;
            }
            memcpy(&d16, blk, 2);
            if (has_min) memcpy(&m16, blk + 2, 2);
            // Unsigned nibbles: low nibbles are values 0..15, high nibbles values 16..31.
            const __m128i q = _mm_loadu_si128((const __m128i *)qs);
            u[i] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), lo4);
            if (qh) u[i] = _mm256_or_si256(u[i], QT_NAME(q5_high)(qh));
            dw[i] = QT_NAME(h2f)(d16);
            mw[i] = has_min ? QT_NAME(h2f)(m16) : 0.0f;
        }
        for (int j = 0; j < RN; j++) {
            const int64_t tj = t + j;
            const __m256i xq = _mm256_loadu_si256((const __m256i *)(a->qs + tj * K + b * 32));
            const float dx = a->d[tj * nb + b];
            // Start the integer sum at -offset * sum(x) (in lane 0).
            const __m256i init = offset ? _mm256_castsi128_si256(_mm_cvtsi32_si128(-offset * a->sums[tj * nb + b]))
                                        : _mm256_setzero_si256();
            const float sx = has_min ? a->s[tj * nb + b] : 0.0f;
            for (int i = 0; i < RM; i++) {
                const __m256i p = QT_NAME(dot_u8s8)(init, u[i], xq);
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw[i] * dx), acc[i][j]);
                if (has_min) msum[i][j] += mw[i] * sx;
            }
        }
    }
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) y[j * ldy + i] = pc_hsum8(acc[i][j]) + msum[i][j];
}

// ---- K-quants x Q8_K activations ---------------------------------------------------------------

/** Tile for Q4_K (is_q5 = 0) and Q5_K (is_q5 = 1). Shapes as tile_q8_0, nb super-blocks. */
QT_TARGET PC_INLINE void QT_NAME(tile_q45_K)(int is_q5, int RM, int RN, const uint8_t *w, size_t row_bytes,
                                            const pc_acts_t *a, int64_t t, int64_t nb, float *y, int64_t ldy, int prefetch) {
    __m256 acc[QT_RM][QT_RN];
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) acc[i][j] = _mm256_setzero_ps();
    const int64_t K = nb * QK_K;
    const size_t bsize = is_q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const __m256i lo4 = _mm256_set1_epi8(0x0F);
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    QT_NAME(pf_t) pf = QT_NAME(pf_init)(w, RM, row_bytes, nb);
    for (int64_t b = 0; b < nb; b++) {
        if (prefetch) QT_NAME(pf_step)(&pf);
        const uint8_t *blk[QT_RM];
        uint8_t sc[QT_RM][16];
        __m128i mn[QT_RM];
        __m256i qh[QT_RM];
        for (int i = 0; i < RM; i++) {
            blk[i] = w + i * row_bytes + b * bsize;
            __m128i scv;
            QT_NAME(kq_scales_v)(blk[i] + 4, &scv, &mn[i]);
            _mm_storeu_si128((__m128i *)sc[i], scv); // read back byte by byte (no wide reload)
            if (is_q5) qh[i] = _mm256_loadu_si256((const __m256i *)(blk[i] + 16));
        }
        __m256i isum[QT_RM][QT_RN];
        for (int i = 0; i < RM; i++)
            for (int j = 0; j < RN; j++) isum[i][j] = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++) { // sub-block c: values 32c .. 32c + 31
            __m256i u[QT_RM], s16[QT_RM];
            for (int i = 0; i < RM; i++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(blk[i] + (is_q5 ? 48 : 16) + 32 * (c / 2)));
                u[i] = _mm256_and_si256(c & 1 ? _mm256_srli_epi16(q, 4) : q, lo4);
                if (is_q5) {
                    // fifth bit: bit c of qh[l], moved to bit 4 (16-bit shifts do not carry
                    // neighbouring bytes into bit 4 for these distances).
                    const __m256i hb = c <= 4 ? _mm256_slli_epi16(qh[i], 4 - c) : _mm256_srli_epi16(qh[i], c - 4);
                    u[i] = _mm256_or_si256(u[i], _mm256_and_si256(hb, bit4));
                }
                s16[i] = _mm256_set1_epi16(sc[i][c]);
            }
            for (int j = 0; j < RN; j++) {
                const __m256i xq = _mm256_loadu_si256((const __m256i *)(a->qs + (t + j) * K + b * QK_K + 32 * c));
                for (int i = 0; i < RM; i++)
                    isum[i][j] = QT_NAME(madd16)(isum[i][j], _mm256_maddubs_epi16(u[i], xq), s16[i]);
            }
        }
        for (int i = 0; i < RM; i++) {
            float d, dmin;
            __m256i mins16;
            QT_NAME(q45_K_tail)(blk[i], mn[i], &d, &dmin, &mins16);
            for (int j = 0; j < RN; j++) {
                const float dx = a->d[(t + j) * nb + b];
                const __m256i msum = QT_NAME(q45_K_minsum)(a, t + j, nb, b, mins16);
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i][j]), _mm256_set1_ps(d * dx), acc[i][j]);
                acc[i][j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(dmin * dx), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) y[j * ldy + i] = pc_hsum8(acc[i][j]);
}

/** Tile for Q6_K. Shapes as tile_q8_0, nb super-blocks. */
QT_TARGET PC_INLINE void QT_NAME(tile_q6_K)(int RM, int RN, const uint8_t *w, size_t row_bytes, const pc_acts_t *a,
                                           int64_t t, int64_t nb, float *y, int64_t ldy, int prefetch) {
    __m256 acc[QT_RM][QT_RN];
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) acc[i][j] = _mm256_setzero_ps();
    const int64_t K = nb * QK_K;
    const __m256i lo4 = _mm256_set1_epi8(0x0F);
    const __m256i hi2 = _mm256_set1_epi8(0x30);
    QT_NAME(pf_t) pf = QT_NAME(pf_init)(w, RM, row_bytes, nb);
    for (int64_t b = 0; b < nb; b++) {
        if (prefetch) QT_NAME(pf_step)(&pf);
        const block_q6_K *blk[QT_RM];
        for (int i = 0; i < RM; i++) blk[i] = (const block_q6_K *)(w + i * row_bytes) + b;
        __m256i isum[QT_RM][QT_RN];
        for (int i = 0; i < RM; i++)
            for (int j = 0; j < RN; j++) isum[i][j] = _mm256_setzero_si256();
        for (int g = 0; g < 8; g++) { // chunk g: values 32g .. 32g + 31; half h = g / 4, c = g % 4
            const int h = g / 4, c = g % 4;
            __m256i u[QT_RM], s16[QT_RM];
            for (int i = 0; i < RM; i++) {
                const __m256i ql = _mm256_loadu_si256((const __m256i *)(blk[i]->ql + 64 * h + 32 * (c & 1)));
                const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk[i]->qh + 32 * h));
                const __m256i lo = _mm256_and_si256(c < 2 ? ql : _mm256_srli_epi16(ql, 4), lo4);
                // bits 2c, 2c + 1 of qh -> bits 4, 5
                const __m256i hb = c == 0 ? _mm256_slli_epi16(qh, 4)
                                 : c == 1 ? _mm256_slli_epi16(qh, 2)
                                 : c == 2 ? qh
                                          : _mm256_srli_epi16(qh, 2);
                u[i] = _mm256_or_si256(lo, _mm256_and_si256(hb, hi2)); // 0..63; the "- 32" comes later
                const int8_t *sc = blk[i]->scales + 2 * g;
                s16[i] = _mm256_set_m128i(_mm_set1_epi16(sc[1]), _mm_set1_epi16(sc[0]));
            }
            for (int j = 0; j < RN; j++) {
                const __m256i xq = _mm256_loadu_si256((const __m256i *)(a->qs + (t + j) * K + b * QK_K + 32 * g));
                for (int i = 0; i < RM; i++)
                    isum[i][j] = QT_NAME(madd16)(isum[i][j], _mm256_maddubs_epi16(u[i], xq), s16[i]);
            }
        }
        for (int i = 0; i < RM; i++) {
            const float d = QT_NAME(h2f)(blk[i]->d);
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk[i]->scales));
            for (int j = 0; j < RN; j++) {
                const int64_t tj = t + j;
                const float dx = a->d[tj * nb + b];
                // sum over 16-groups of scale * (dot(u, x) - 32 * sum(x))
                const __m256i bs = _mm256_loadu_si256((const __m256i *)(a->sums + (tj * nb + b) * 16));
                const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5);
                const __m256i tot = _mm256_sub_epi32(isum[i][j], corr);
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(tot), _mm256_set1_ps(d * dx), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) y[j * ldy + i] = pc_hsum8(acc[i][j]);
}

#if QT_VNNI
// ---- K-quants with 512-bit vectors (AVX-512 targets) -------------------------------------------
// Two 32-value pieces of a super-block per instruction: their 64 activations are contiguous, and
// the weights of both come from one 32-byte load (Q4_K: the low and the high nibbles of the same
// bytes; Q6_K: 64 adjacent bytes of ql). Measured on the project's Zen 5 machine, these take
// about half the instructions of the 256-bit tiles above for the same integer sums (which stay
// exact); the float sums run over 16 lanes instead of 8, so results differ in the last bits.

/** Tile for Q4_K (is_q5 = 0) and Q5_K (is_q5 = 1), as tile_q45_K. The bytes of pair k hold
 *  sub-block 2k in their low nibbles and 2k + 1 in their high ones: broadcast to both halves,
 *  the upper half shifted by 4; vpermw puts the two sub-blocks' scales into the halves. */
QT_TARGET PC_INLINE void QT_NAME(tile_q45_K_z)(int is_q5, int RM, int RN, const uint8_t *w, size_t row_bytes,
                                              const pc_acts_t *a, int64_t t, int64_t nb, float *y, int64_t ldy, int prefetch) {
    __m512 acc[QT_RM][QT_RN];
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) acc[i][j] = _mm512_setzero_ps();
    const int64_t K = nb * QK_K;
    const size_t bsize = is_q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    const __m512i lo4 = _mm512_set1_epi8(0x0F);
    const __m512i bit4 = _mm512_set1_epi8(0x10);
    const __mmask32 upper = 0xFFFF0000u; // 16-bit lanes of the upper 256 bits
    __m512i pick[4], hshift[4];
    for (int k = 0; k < 4; k++) {
        pick[k] = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * k)), _mm256_set1_epi16((short)(2 * k + 1)), 1);
        hshift[k] = pick[k]; // Q5_K: bit 2k (lower half) / 2k + 1 (upper half) of qh
    }
    QT_NAME(pf_t) pf = QT_NAME(pf_init)(w, RM, row_bytes, nb);
    for (int64_t b = 0; b < nb; b++) {
        if (prefetch) QT_NAME(pf_step)(&pf);
        const uint8_t *blk[QT_RM];
        __m128i mn[QT_RM];
        __m512i scv[QT_RM], qh[QT_RM];
        for (int i = 0; i < RM; i++) {
            blk[i] = w + i * row_bytes + b * bsize;
            __m128i sc;
            QT_NAME(kq_scales_v)(blk[i] + 4, &sc, &mn[i]);
            scv[i] = _mm512_castsi128_si512(_mm_cvtepu8_epi16(sc));
            if (is_q5) qh[i] = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk[i] + 16)));
        }
        __m512i isum[QT_RM][QT_RN];
        for (int i = 0; i < RM; i++)
            for (int j = 0; j < RN; j++) isum[i][j] = _mm512_setzero_si512();
        for (int k = 0; k < 4; k++) { // values 64k .. 64k + 63
            __m512i u[QT_RM], s16[QT_RM];
            for (int i = 0; i < RM; i++) {
                const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk[i] + (is_q5 ? 48 : 16) + 32 * k)));
                u[i] = _mm512_and_si512(_mm512_mask_srli_epi16(q, upper, q, 4), lo4);
                if (is_q5) {
                    // bit c of each byte to bit 4 (shifting 16-bit lanes: the neighbour byte's
                    // bits land outside bit 4)
                    const __m512i hb = _mm512_slli_epi16(_mm512_srlv_epi16(qh[i], hshift[k]), 4);
                    u[i] = _mm512_or_si512(u[i], _mm512_and_si512(hb, bit4));
                }
                s16[i] = _mm512_permutexvar_epi16(pick[k], scv[i]);
            }
            for (int j = 0; j < RN; j++) {
                const __m512i xq = _mm512_loadu_si512((const void *)(a->qs + (t + j) * K + b * QK_K + 64 * k));
                for (int i = 0; i < RM; i++)
                    isum[i][j] = _mm512_dpwssd_epi32(isum[i][j], _mm512_maddubs_epi16(u[i], xq), s16[i]);
            }
        }
        for (int i = 0; i < RM; i++) {
            float d, dmin;
            __m256i mins16;
            QT_NAME(q45_K_tail)(blk[i], mn[i], &d, &dmin, &mins16);
            for (int j = 0; j < RN; j++) {
                const float dx = a->d[(t + j) * nb + b];
                const __m512i msum = _mm512_zextsi256_si512(QT_NAME(q45_K_minsum)(a, t + j, nb, b, mins16));
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i][j]), _mm512_set1_ps(d * dx), acc[i][j]);
                acc[i][j] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(msum), _mm512_set1_ps(dmin * dx), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) y[j * ldy + i] = _mm512_reduce_add_ps(acc[i][j]);
}

/** Tile for Q6_K, as tile_q6_K. Pair p covers values 64p .. 64p + 63: half h = p / 2 of the
 *  super-block, 64 adjacent bytes of ql (low nibbles for even p, high for odd), the qh bits
 *  4 (p % 2) .. + 3, and the scales 4p .. 4p + 3 (one per 8 int16 lanes, by vpermw). */
QT_TARGET PC_INLINE void QT_NAME(tile_q6_K_z)(int RM, int RN, const uint8_t *w, size_t row_bytes, const pc_acts_t *a,
                                             int64_t t, int64_t nb, float *y, int64_t ldy, int prefetch) {
    __m512 acc[QT_RM][QT_RN];
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) acc[i][j] = _mm512_setzero_ps();
    const int64_t K = nb * QK_K;
    const __m512i lo4 = _mm512_set1_epi8(0x0F);
    const __m512i hi2 = _mm512_set1_epi8(0x30);
    const __mmask32 lower = 0x0000FFFFu, upper = 0xFFFF0000u;
    __m512i pick[4];
    for (int p = 0; p < 4; p++) {
        short idx[32];
        for (int l = 0; l < 32; l++) idx[l] = (short)(4 * p + l / 8);
        pick[p] = _mm512_loadu_si512((const void *)idx);
    }
    QT_NAME(pf_t) pf = QT_NAME(pf_init)(w, RM, row_bytes, nb);
    for (int64_t b = 0; b < nb; b++) {
        if (prefetch) QT_NAME(pf_step)(&pf);
        const block_q6_K *blk[QT_RM];
        __m512i scv[QT_RM];
        for (int i = 0; i < RM; i++) {
            blk[i] = (const block_q6_K *)(w + i * row_bytes) + b;
            scv[i] = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk[i]->scales)));
        }
        __m512i isum[QT_RM][QT_RN];
        for (int i = 0; i < RM; i++)
            for (int j = 0; j < RN; j++) isum[i][j] = _mm512_setzero_si512();
        for (int p = 0; p < 4; p++) {
            const int h = p / 2;
            __m512i u[QT_RM], s16[QT_RM];
            for (int i = 0; i < RM; i++) {
                const __m512i ql = _mm512_loadu_si512((const void *)(blk[i]->ql + 64 * h));
                const __m512i lo = _mm512_and_si512(p & 1 ? _mm512_srli_epi16(ql, 4) : ql, lo4);
                const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(blk[i]->qh + 32 * h)));
                // bits (2c, 2c + 1) of qh to bits 4, 5: c = 0 / 1 (shift left 4 / 2) for even p,
                // c = 2 / 3 (0 / right 2) for odd p; the lower half holds c, the upper c + 1
                __m512i hb;
                if (p & 1) hb = _mm512_mask_srli_epi16(qh, upper, qh, 2);
                else {
                    hb = _mm512_slli_epi16(qh, 2);
                    hb = _mm512_mask_slli_epi16(hb, lower, hb, 2);
                }
                u[i] = _mm512_or_si512(lo, _mm512_and_si512(hb, hi2)); // 0..63; the "- 32" comes later
                s16[i] = _mm512_permutexvar_epi16(pick[p], scv[i]);
            }
            for (int j = 0; j < RN; j++) {
                const __m512i xq = _mm512_loadu_si512((const void *)(a->qs + (t + j) * K + b * QK_K + 64 * p));
                for (int i = 0; i < RM; i++)
                    isum[i][j] = _mm512_dpwssd_epi32(isum[i][j], _mm512_maddubs_epi16(u[i], xq), s16[i]);
            }
        }
        for (int i = 0; i < RM; i++) {
            const float d = QT_NAME(h2f)(blk[i]->d);
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)blk[i]->scales));
            for (int j = 0; j < RN; j++) {
                const int64_t tj = t + j;
                const float dx = a->d[tj * nb + b];
                const __m256i bs = _mm256_loadu_si256((const __m256i *)(a->sums + (tj * nb + b) * 16));
                const __m512i corr = _mm512_zextsi256_si512(_mm256_slli_epi32(_mm256_madd_epi16(bs, sc16), 5));
                const __m512i tot = _mm512_sub_epi32(isum[i][j], corr);
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(tot), _mm512_set1_ps(d * dx), acc[i][j]);
            }
        }
    }
    for (int i = 0; i < RM; i++)
        for (int j = 0; j < RN; j++) y[j * ldy + i] = _mm512_reduce_add_ps(acc[i][j]);
}
#endif

// ---- Kernels: loop over token blocks, row groups and token groups --------------------------------

// Tokens per block: the block's activations (QT_TBLOCK x nIn bytes) stay in L2 while every row
// group of the thread passes over them; each row group (a few KB) stays in L1 across the block.
#define QT_TBLOCK 64

#define QT_TILE_CASES(CALL, RMAX)                                                                       \
    switch (rm * 8 + rn) {                                                                        \
        case RMAX * 8 + 1: CALL(RMAX, 1); break;                                                \
        case RMAX * 8 + 2: CALL(RMAX, 2); break;                                                \
        case RMAX * 8 + 3: CALL(RMAX, 3); break;                                                \
        case RMAX * 8 + 4: CALL(RMAX, 4); break;                                                \
        case 1 * 8 + 1: CALL(1, 1); break;                                                        \
        case 1 * 8 + 2: CALL(1, 2); break;                                                        \
        case 1 * 8 + 3: CALL(1, 3); break;                                                        \
        case 1 * 8 + 4: CALL(1, 4); break;                                                        \
    }

#define QT_KERNEL_R(NAME, CALL, RMAX)                                                                      \
    QT_TARGET static void QT_NAME(NAME)(const pc_mm_job *job, int ith, int64_t r0, int64_t r1, int64_t t0, int64_t t1) { \
        (void)ith;                                                                                 \
        const pc_acts_t *a = &job->acts;                                                           \
        const int64_t ldy = job->nOut;                                                             \
        for (int64_t tb = t0; tb < t1; tb += QT_TBLOCK) {                                          \
            const int64_t te = PC_MIN(t1, tb + QT_TBLOCK);                                         \
            for (int64_t r = r0; r < r1;) {                                                        \
                const int rm = r1 - r >= (RMAX) ? (RMAX) : 1;                                        \
                const uint8_t *wr = job->w + (size_t)r * job->row_bytes;                           \
                for (int64_t t = tb; t < te; t += QT_RN) {                                         \
                    const int rn = (int)PC_MIN(QT_RN, te - t);                                     \
                    float *yr = job->y + t * ldy + r;                                              \
                    QT_TILE_CASES(CALL, RMAX)                                                            \
                }                                                                                  \
                r += rm;                                                                           \
            }                                                                                      \
        }                                                                                          \
    }

#define QT_KERNEL(NAME, CALL) QT_KERNEL_R(NAME, CALL, QT_RM)

#if QT_VNNI
#define CALL_Q8_0(RM, RN) QT_NAME(tile_q8_0_z)(RM, RN, wr, job->row_bytes, a, t, job->nIn / 32, yr, ldy, t == tb)
#else
#define CALL_Q8_0(RM, RN) QT_NAME(tile_q8_0_h)(RM, RN, wr, job->row_bytes, a, t, job->nIn / 32, yr, ldy, t == tb)
#endif
#define CALL_Q4_0(RM, RN) QT_NAME(tile_b32)(PC_Q4_0, RM, RN, wr, job->row_bytes, a, t, job->nIn / 32, yr, ldy, t == tb)
#define CALL_Q5_0(RM, RN) QT_NAME(tile_b32)(PC_Q5_0, RM, RN, wr, job->row_bytes, a, t, job->nIn / 32, yr, ldy, t == tb)
#define CALL_Q4_1(RM, RN) QT_NAME(tile_b32)(PC_Q4_1, RM, RN, wr, job->row_bytes, a, t, job->nIn / 32, yr, ldy, t == tb)
#define CALL_Q5_1(RM, RN) QT_NAME(tile_b32)(PC_Q5_1, RM, RN, wr, job->row_bytes, a, t, job->nIn / 32, yr, ldy, t == tb)
#if QT_VNNI
#define CALL_Q4_K(RM, RN) QT_NAME(tile_q45_K_z)(0, RM, RN, wr, job->row_bytes, a, t, job->nIn / QK_K, yr, ldy, t == tb)
#define CALL_Q5_K(RM, RN) QT_NAME(tile_q45_K_z)(1, RM, RN, wr, job->row_bytes, a, t, job->nIn / QK_K, yr, ldy, t == tb)
#define CALL_Q6_K(RM, RN) QT_NAME(tile_q6_K_z)(RM, RN, wr, job->row_bytes, a, t, job->nIn / QK_K, yr, ldy, t == tb)
#else
#define CALL_Q4_K(RM, RN) QT_NAME(tile_q45_K)(0, RM, RN, wr, job->row_bytes, a, t, job->nIn / QK_K, yr, ldy, t == tb)
#define CALL_Q5_K(RM, RN) QT_NAME(tile_q45_K)(1, RM, RN, wr, job->row_bytes, a, t, job->nIn / QK_K, yr, ldy, t == tb)
#define CALL_Q6_K(RM, RN) QT_NAME(tile_q6_K)(RM, RN, wr, job->row_bytes, a, t, job->nIn / QK_K, yr, ldy, t == tb)
#endif

#if QT_VNNI
QT_KERNEL(mm_q8_0, CALL_Q8_0)
#else
QT_KERNEL_R(mm_q8_0, CALL_Q8_0, QT_RM_Q8_0)
#endif
QT_KERNEL(mm_q4_0, CALL_Q4_0)
QT_KERNEL(mm_q5_0, CALL_Q5_0)
QT_KERNEL(mm_q4_1, CALL_Q4_1)
QT_KERNEL(mm_q5_1, CALL_Q5_1)
QT_KERNEL(mm_q4_K, CALL_Q4_K)
QT_KERNEL(mm_q5_K, CALL_Q5_K)
QT_KERNEL(mm_q6_K, CALL_Q6_K)

#undef QT_TILE_CASES
#undef QT_KERNEL
#undef QT_KERNEL_R
#undef QT_TBLOCK
#undef CALL_Q8_0
#undef CALL_Q4_0
#undef CALL_Q5_0
#undef CALL_Q4_1
#undef CALL_Q5_1
#undef CALL_Q4_K
#undef CALL_Q5_K
#undef CALL_Q6_K
