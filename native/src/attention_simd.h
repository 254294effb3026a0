// SIMD attention item kernel, a template included by attention_x86.c once per instruction
// set. The includer defines the vector type and operations:
//   AT_TARGET, AT_NAME(x)     ISA attribute and name suffix
//   AT_W                      floats per vector (8 or 16)
//   V                         vector type
//   VZERO() VSET1(x) VLOAD(p) VSTORE(p, v) VFMA(a, b, c) = a * b + c, VMUL VADD VMAX
//   AT_NAME(hmax)(v), AT_NAME(hsum)(v)   horizontal max / sum
//   AT_NAME(exp)(v)           e^v for v <= 0 (inputs below -87 give ~0)
//   AT_NAME(keep)(v, bits, fill)  lanes whose bit (of the low AT_W bits) is 0 become fill
//   AT_NAME(sums_of)(acc)     vector whose lane j is the horizontal sum of acc[j] (AT_W inputs)
//   AT_QR, AT_KV              QK^T (packed) tile: AT_QR rows x AT_KV vectors of keys
//   AT_PR, AT_DV              P.V tile: AT_PR rows x AT_DV vectors of output dims
//
// One item = (KV head h, query tile, key split). Row r of the tile is query token t0 + r / G,
// head h * G + r % G. Per key block:
//   1. S = scale * Q K^T for the tile's rows (packed: from K pre-transposed, broadcasting q;
//      direct: dot products reduced AT_W keys at a time, for tiles of few rows)
//   2. per row: mask, block max, rescale of the running state, P = exp(S - m)
//   3. O = O * alpha + P V

#define AT_KBV (PC_ATT_KB / AT_W) // vectors per key block

/** S[i * KB + j] = scale * dot(q row i, key j) for i < rows, j < KB, from K^T.
 *  qrow: [rows] pointers to query rows (hd floats); kt: [hd, ldkt] transposed keys, column 0 =
 *  the block's first key; S: [rows, KB]. */
AT_TARGET static void AT_NAME(qk_packed)(int rows, const float *const *qrow, const float *kt, int64_t ldkt, int hd,
                                         float scale, float *S) {
    const V vs = VSET1(scale);
    for (int r = 0; r < rows; r += AT_QR) {
        const int qr = PC_MIN(AT_QR, rows - r);
        for (int kv0 = 0; kv0 < AT_KBV; kv0 += AT_KV) {
            V acc[AT_QR][AT_KV];
            for (int i = 0; i < AT_QR; i++)
                for (int v = 0; v < AT_KV; v++) acc[i][v] = VZERO();
            const float *kp = kt + kv0 * AT_W;
            for (int d = 0; d < hd; d++, kp += ldkt) {
                V kv[AT_KV];
                for (int v = 0; v < AT_KV; v++) kv[v] = VLOAD(kp + v * AT_W);
                for (int i = 0; i < AT_QR; i++) {
                    if (i >= qr) break;
                    const V b = VSET1(qrow[r + i][d]);
                    for (int v = 0; v < AT_KV; v++) acc[i][v] = VFMA(kv[v], b, acc[i][v]);
                }
            }
            for (int i = 0; i < qr; i++)
                for (int v = 0; v < AT_KV; v++) VSTORE(S + (r + i) * PC_ATT_KB + (kv0 + v) * AT_W, VMUL(acc[i][v], vs));
        }
    }
}

/** As qk_packed, from K rows directly (kb: [nk, hd]); keys j >= nk are not read (S = 0). */
AT_TARGET static void AT_NAME(qk_direct)(int rows, const float *const *qrow, const float *kb, int nk, int hd,
                                         float scale, float *S) {
    const V vs = VSET1(scale);
    for (int r = 0; r < rows; r++) {
        const float *q = qrow[r];
        for (int j0 = 0; j0 < PC_ATT_KB; j0 += AT_W) {
            const int nj = PC_MIN(AT_W, nk - j0);
            if (nj <= 0) {
                VSTORE(S + r * PC_ATT_KB + j0, VZERO());
                continue;
            }
            V acc[AT_W];
            for (int jj = 0; jj < AT_W; jj++) acc[jj] = VZERO();
            const float *kr = kb + (int64_t)j0 * hd;
            for (int d = 0; d < hd; d += AT_W) {
                const V qv = VLOAD(q + d);
                for (int jj = 0; jj < AT_W; jj++)
                    if (jj < nj) acc[jj] = VFMA(VLOAD(kr + (int64_t)jj * hd + d), qv, acc[jj]);
            }
            VSTORE(S + r * PC_ATT_KB + j0, VMUL(AT_NAME(sums_of)(acc), vs));
        }
    }
}

/** One chunk of DV vectors of output dims starting at dc: o[i, dc..] = o[i, dc..] * alpha[i]
 *  + sum_j P[i, j] * v[j, dc..] for i < rows.
 *  P: [rows, KB] (zero where masked); vb: [nk, hd] value rows; o: [rows, hd]. */
AT_TARGET PC_INLINE void AT_NAME(pv_chunk)(int DV, int rows, const float *P, const float *alpha, const float *vb,
                                          int nk, int hd, int dc, float *o) {
    for (int r = 0; r < rows; r += AT_PR) {
        const int pr = PC_MIN(AT_PR, rows - r);
        V acc[AT_PR][AT_DV];
        for (int i = 0; i < AT_PR; i++)
            for (int v = 0; v < DV; v++)
                acc[i][v] = i < pr ? VMUL(VLOAD(o + (int64_t)(r + i) * hd + dc + v * AT_W), VSET1(alpha[r + i])) : VZERO();
        const float *vp = vb + dc;
        for (int j = 0; j < nk; j++, vp += hd) {
            V vv[AT_DV];
            for (int v = 0; v < DV; v++) vv[v] = VLOAD(vp + v * AT_W);
            for (int i = 0; i < AT_PR; i++) {
                if (i >= pr) break;
                const V p = VSET1(P[(r + i) * PC_ATT_KB + j]);
                for (int v = 0; v < DV; v++) acc[i][v] = VFMA(vv[v], p, acc[i][v]);
            }
        }
        for (int i = 0; i < pr; i++)
            for (int v = 0; v < DV; v++) VSTORE(o + (int64_t)(r + i) * hd + dc + v * AT_W, acc[i][v]);
    }
}

/** o = o * alpha + P V over all dims (hd a multiple of AT_W). */
AT_TARGET static void AT_NAME(pv)(int rows, const float *P, const float *alpha, const float *vb, int nk, int hd,
                                  float *o) {
    int dc = 0;
    for (; dc + AT_DV * AT_W <= hd; dc += AT_DV * AT_W) AT_NAME(pv_chunk)(AT_DV, rows, P, alpha, vb, nk, hd, dc, o);
    for (; dc < hd; dc += AT_W) AT_NAME(pv_chunk)(1, rows, P, alpha, vb, nk, hd, dc, o);
}

AT_TARGET void AT_NAME(pc_att_item)(pc_att_job *job, int ith, int item) {
    const pc_attn_args *a = job->a;
    int h, tile, split;
    pc_att_item(job, item, &h, &tile, &split);
    const int G = job->G, hd = a->headDim;
    const int64_t t0 = (int64_t)tile * job->QB, t1 = PC_MIN(a->T, t0 + job->QB);
    const int ntok = (int)(t1 - t0), rows = ntok * G;

    pc_att_scr sc;
    pc_att_scratch(job, ith, &sc);
    float *m = sc.m, *l = sc.l, *alph = sc.alpha, *o = sc.o, *S = sc.S;
    const float **qrow = sc.qrow;
    uint64_t *visb = sc.vis;

    for (int r = 0; r < rows; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
        qrow[r] = a->q + ((t0 + r / G) * a->nHeads + (int64_t)h * G + r % G) * hd;
    }
    memset(o, 0, (size_t)rows * hd * sizeof(float));

    const int64_t nr = a->nRows[h];
    const int64_t kbeg = split * job->splitLen, kend = PC_MIN(nr, kbeg + job->splitLen);
    int32_t qmin, qmax, qseq;
    pc_att_tile_summary(job, t0, t1, &qmin, &qmax, &qseq);
    const float *kt_h = job->packed ? job->kt + (int64_t)h * hd * job->ldkt : NULL;
    const V ninf = VSET1(-INFINITY), zero = VZERO();

    for (int64_t k0 = kbeg; k0 < kend; k0 += PC_ATT_KB) {
        const int nk = (int)PC_MIN(PC_ATT_KB, kend - k0);
        const int cls = pc_att_block_class(job, h, k0, nk, qmin, qmax, qseq);
        if (cls == 0) continue;
        const uint64_t full = nk == 64 ? ~(uint64_t)0 : (((uint64_t)1 << nk) - 1);
        uint64_t any = 0;
        for (int i = 0; i < ntok; i++) {
            visb[i] = cls == 1 ? full : pc_att_visibility(job, h, k0, nk, t0 + i);
            any |= visb[i];
        }
        if (!any) continue;

        // 1. scores (an F16 block is widened first: keys here unless packed, values for step 3)
        const int64_t off = ((int64_t)h * a->cap + k0) * hd;
        const float *kb = a->k ? a->k + off : sc.kf;
        if (a->k16 && !job->packed) pc_att_widen_avx2(a->k16 + off, (int64_t)nk * hd, sc.kf);
        if (job->packed) AT_NAME(qk_packed)(rows, qrow, kt_h + k0, job->ldkt, hd, a->scale, S);
        else AT_NAME(qk_direct)(rows, qrow, kb, nk, hd, a->scale, S);
        pc_att_softcap(a, S, rows, nk);

        // 2. online softmax: scores -> probabilities in place
        for (int r = 0; r < rows; r++) {
            const uint64_t vis = visb[r / G];
            float *s = S + r * PC_ATT_KB;
            if (!vis) {
                for (int v = 0; v < AT_KBV; v++) VSTORE(s + v * AT_W, zero);
                alph[r] = 1.0f;
                continue;
            }
            V mx = ninf;
            for (int v = 0; v < AT_KBV; v++) {
                const V sv = AT_NAME(keep)(VLOAD(s + v * AT_W), (unsigned)(vis >> (v * AT_W)), ninf);
                VSTORE(s + v * AT_W, sv);
                mx = VMAX(mx, sv);
            }
            const float mnew = PC_MAX(m[r], AT_NAME(hmax)(mx));
            const float al = expf(m[r] - mnew); // 0 while m is -inf
            V sum = zero;
            for (int v = 0; v < AT_KBV; v++) {
                const unsigned bits = (unsigned)(vis >> (v * AT_W));
                // masked lanes hold -inf; keep() also zeroes them exactly
                const V p = AT_NAME(keep)(AT_NAME(exp)(VADD(VLOAD(s + v * AT_W), VSET1(-mnew))), bits, zero);
                VSTORE(s + v * AT_W, p);
                sum = VADD(sum, p);
            }
            l[r] = l[r] * al + AT_NAME(hsum)(sum);
            m[r] = mnew;
            alph[r] = al;
        }

        // 3. values
        const float *vb = a->v ? a->v + off : sc.vf;
        if (a->v16) pc_att_widen_avx2(a->v16 + off, (int64_t)nk * hd, sc.vf);
        AT_NAME(pv)(rows, S, alph, vb, nk, hd, o);
    }
    pc_att_finish_rows(job, item, h, t0, t1, m, l, o);
}

#undef AT_KBV
