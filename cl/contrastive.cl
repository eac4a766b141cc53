/* The fused contrastive loss (see docs/method.md).
 *
 * Rows z (2N, LOSS_DIM) are the L2-normalised projections; the partner of row i is
 * (i + N) mod 2N and s_ij = z_i . z_j. A pseudo-positive of anchor i is a j outside
 * {i, p(i)} with s_ij > theta, at most LOSS_CAP of them (the most similar, ties to the lower
 * index). Attract mode adds them to the positives with weight w; eliminate mode takes them out
 * of the denominator. The similarity matrix is never stored: loss_forward and loss_backward
 * each recompute it tile by tile from z.
 *
 * Per-row results travel between the kernels in two field-major buffers, rowf (RF_FIELDS, 2N)
 * and rowi (RI_FIELDS, 2N); the same layout is written by cl/contrastive_unfused.cl. */

#ifndef LOSS_DIM
#define LOSS_DIM 128 /* feature dimension d (the host always sets it) */
#endif
#ifndef LOSS_CAP
#define LOSS_CAP 0 /* most pseudo-positives kept per anchor; 0: every one above theta */
#endif
#ifndef TILE_I
#define TILE_I 32 /* anchor rows per work-group */
#endif
#ifndef TILE_J
#define TILE_J 32 /* columns of the similarity tile computed at once */
#endif
#ifndef TILE_D
#define TILE_D 16 /* features staged in local memory per step; divides the work-group size */
#endif
#ifndef MICRO_I
#define MICRO_I 2 /* similarity rows each work-item computes */
#endif
#ifndef MICRO_J
#define MICRO_J 2 /* similarity columns each work-item computes */
#endif

#if TILE_I != TILE_J
#error "TILE_I and TILE_J must be equal (the staged tiles share one layout)"
#endif

#define WG       ((TILE_I / MICRO_I) * (TILE_J / MICRO_J))
#define LANES    (WG / TILE_I)                      /* work-items sharing one anchor row */
#define DZ_ROWS  (TILE_I * TILE_D / WG)             /* gradient rows per work-item and chunk */
#define CHUNKS   ((LOSS_DIM + TILE_D - 1) / TILE_D) /* feature chunks of a row */
#define KEPT     (LOSS_CAP > 0 ? LOSS_CAP : 1)      /* kept-list length in local memory */
#define NORM_EPS 1e-12f                             /* as torch.nn.functional.normalize */

#define MODE_ATTRACT   0
#define MODE_ELIMINATE 1

/* rowf fields */
#define RF_MAX     0 /* largest similarity in the denominator */
#define RF_LOGSUM  1 /* log sum over the denominator of exp((s - max) / tau) */
#define RF_INVW    2 /* 1 / (total weight of the positives) */
#define RF_BOUND   3 /* similarity of the LOSS_CAP-th kept pseudo-positive; -inf: fewer kept */
#define RF_LOSS    4 /* l_i */
#define RF_PARTNER 5 /* s_{i p(i)} */
#define RF_POSSUM  6 /* sum of the pseudo-positives' similarities */
#define RF_FIELDS  7
/* rowi fields */
#define RI_BOUND  0 /* column index of that pseudo-positive */
#define RI_COUNT  1 /* pseudo-positives kept */
#define RI_ABOVE  2 /* candidates above theta before the cap */
#define RI_TP     3 /* kept ones with the anchor's label */
#define RI_SAME   4 /* others (not i, not p(i)) with the anchor's label */
#define RI_TOP1   5 /* 1 when the partner is the most similar other row */
#define RI_FIELDS 6
/* result words: sums over rows (floats stored as their bits), then the first bad row */
#define R_LOSS    0
#define R_PARTNER 1
#define R_POSSUM  2
#define R_COUNT   3
#define R_ABOVE   4
#define R_TP      5
#define R_SAME    6
#define R_TOP1    7
#define R_CAPPED  8
#define R_BAD     9

#define REQD_WG __attribute__((reqd_work_group_size(WG, 1, 1)))

/* ---- normalisation ------------------------------------------------------------------ */

/* z_i = h_i / max(||h_i||, eps), rnorm_i = 1 / max(||h_i||, eps). A row holding a NaN or an
 * infinity, or whose squared norm overflows, lowers result[R_BAD] to its index. */
__kernel REQD_WG void loss_normalize(__global const float *h, __global float *z,
                                     __global float *rnorm, __global int *result, const int n2) {
    const int i = get_global_id(0);
    if (i >= n2)
        return;
    float ss = 0.0f;
    int finite = 1;
    for (int k = 0; k < LOSS_DIM; k++) {
        float v = h[i * LOSS_DIM + k];
        finite &= isfinite(v);
        ss = fma(v, v, ss);
    }
    if (!finite || !isfinite(ss))
        atomic_min(&result[R_BAD], i);
    const float r = 1.0f / fmax(sqrt(ss), NORM_EPS);
    rnorm[i] = r;
    for (int k = 0; k < LOSS_DIM; k++)
        z[i * LOSS_DIM + k] = h[i * LOSS_DIM + k] * r;
}

/* dh holds dL/dz on entry and dL/dh on exit: dh_i = (dz_i - z_i (z_i . dz_i)) rnorm_i. */
__kernel REQD_WG void loss_normalize_backward(__global const float *z, __global const float *rnorm,
                                              __global float *dh, const int n2) {
    const int i = get_global_id(0);
    if (i >= n2)
        return;
    float dot = 0.0f;
    for (int k = 0; k < LOSS_DIM; k++)
        dot = fma(z[i * LOSS_DIM + k], dh[i * LOSS_DIM + k], dot);
    const float r = rnorm[i];
    for (int k = 0; k < LOSS_DIM; k++)
        dh[i * LOSS_DIM + k] = (dh[i * LOSS_DIM + k] - z[i * LOSS_DIM + k] * dot) * r;
}

/* ---- similarity tiles --------------------------------------------------------------- */

/* tile[r][k] = z[row0 + r][k0 + k], zero past the last row or feature. */
static void stage(__global const float *z, const int n2, const int row0, const int k0,
                  __local float (*tile)[TILE_D + 1], const int rows) {
    for (int e = get_local_id(0); e < rows * TILE_D; e += WG) {
        const int r = e / TILE_D, k = e % TILE_D;
        const int gr = row0 + r, gk = k0 + k;
        tile[r][k] = (gr < n2 && gk < LOSS_DIM) ? z[gr * LOSS_DIM + gk] : 0.0f;
    }
}

/* The same transposed, for TILE_J rows: tile[k][r] = z[row0 + r][k0 + k]. */
static void stage_t(__global const float *z, const int n2, const int row0, const int k0,
                    __local float (*tile)[TILE_J + 1]) {
    for (int e = get_local_id(0); e < TILE_J * TILE_D; e += WG) {
        const int r = e / TILE_D, k = e % TILE_D;
        const int gr = row0 + r, gk = k0 + k;
        tile[k][r] = (gr < n2 && gk < LOSS_DIM) ? z[gr * LOSS_DIM + gk] : 0.0f;
    }
}

/* acc[a][b] = s_ij for i = i0 + ty + a (TILE_I / MICRO_I), j = j0 + tx + b (TILE_J / MICRO_J),
 * 0 past the last row. Every element sums over k in the same order with fma, so s_ij and s_ji
 * come out bit for bit equal and every kernel sees the same value for a pair. Starts with a
 * barrier, so the caller may reuse zi and zj right before. */
static void tile_dot(__global const float *z, const int n2, const int i0, const int j0,
                     __local float (*zi)[TILE_J + 1], __local float (*zj)[TILE_J + 1],
                     float acc[MICRO_I][MICRO_J]) {
    const int ty = get_local_id(0) / (TILE_J / MICRO_J), tx = get_local_id(0) % (TILE_J / MICRO_J);
    for (int a = 0; a < MICRO_I; a++)
        for (int b = 0; b < MICRO_J; b++)
            acc[a][b] = 0.0f;
    for (int k0 = 0; k0 < LOSS_DIM; k0 += TILE_D) {
        barrier(CLK_LOCAL_MEM_FENCE);
        stage_t(z, n2, i0, k0, zi);
        stage_t(z, n2, j0, k0, zj);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < TILE_D; k++) {
            float x[MICRO_I], y[MICRO_J];
            for (int a = 0; a < MICRO_I; a++)
                x[a] = zi[k][ty + a * (TILE_I / MICRO_I)];
            for (int b = 0; b < MICRO_J; b++)
                y[b] = zj[k][tx + b * (TILE_J / MICRO_J)];
            for (int a = 0; a < MICRO_I; a++)
                for (int b = 0; b < MICRO_J; b++)
                    acc[a][b] = fma(x[a], y[b], acc[a][b]);
        }
    }
}

/* ---- one anchor row's running state ------------------------------------------------ */

typedef struct {
    float m, sum;  /* log-sum-exp so far: max similarity, sum of exp((s - m) / tau) */
    float top;     /* largest similarity outside {i, p(i)} */
    float partner; /* s_{i p(i)} once seen */
    int above;     /* candidates above theta */
    int same;      /* others with the anchor's label */
#if LOSS_CAP > 0
    int n;             /* entries of the kept list, best first */
    float v[LOSS_CAP]; /* their similarities */
    int idx[LOSS_CAP]; /* their column indices */
#else
    float possum; /* sum of the pseudo-positives' similarities */
    int tp;       /* pseudo-positives with the anchor's label */
#endif
} row_state;

static void row_init(row_state *st) {
    st->m = -INFINITY;
    st->sum = 0.0f;
    st->top = -INFINITY;
    st->partner = 0.0f;
    st->above = 0;
    st->same = 0;
#if LOSS_CAP > 0
    st->n = 0;
#else
    st->possum = 0.0f;
    st->tp = 0;
#endif
}

/* Adds exp(s / tau) to the running sum, rescaling when s is a new maximum. */
static void lse_add(row_state *st, const float s, const float inv_tau) {
    if (s > st->m) {
        st->sum = st->sum * exp((st->m - s) * inv_tau) + 1.0f;
        st->m = s;
    } else {
        st->sum += exp((s - st->m) * inv_tau);
    }
}

/* Adds another partial sum (m, sum) to the running one. */
static void lse_merge(row_state *st, const float m, const float sum, const float inv_tau) {
    if (m == -INFINITY)
        return;
    if (m > st->m) {
        st->sum = st->sum * exp((st->m - m) * inv_tau) + sum;
        st->m = m;
    } else {
        st->sum += sum * exp((m - st->m) * inv_tau);
    }
}

#if LOSS_CAP > 0
/* The order of the kept list: more similar first, then the lower index. */
static int ranks_before(const float s, const int j, const float t, const int k) {
    return s > t || (s == t && j < k);
}

/* Offers (s, j) to the kept list. Returns 1 and the similarity of what does not stay (s
 * itself, or the entry it pushed out) when the list was full, 0 otherwise. */
static int keep_offer(row_state *st, const float s, const int j, float *dropped) {
    int pos;
    int full = st->n == LOSS_CAP;
    if (full) {
        if (!ranks_before(s, j, st->v[LOSS_CAP - 1], st->idx[LOSS_CAP - 1])) {
            *dropped = s;
            return 1;
        }
        *dropped = st->v[LOSS_CAP - 1];
        pos = LOSS_CAP - 1;
    } else {
        pos = st->n++;
    }
    while (pos > 0 && ranks_before(s, j, st->v[pos - 1], st->idx[pos - 1])) {
        st->v[pos] = st->v[pos - 1];
        st->idx[pos] = st->idx[pos - 1];
        pos--;
    }
    st->v[pos] = s;
    st->idx[pos] = j;
    return full;
}

/* A pseudo-positive candidate: kept in the list; attract counts it in the denominator
 * anyway, eliminate only once it has been pushed out of the list. */
static void candidate(row_state *st, const float s, const int j, const float inv_tau,
                      const int mode) {
    float dropped;
    int out = keep_offer(st, s, j, &dropped);
    if (mode == MODE_ATTRACT)
        lse_add(st, s, inv_tau);
    else if (out)
        lse_add(st, dropped, inv_tau);
}
#else
static void candidate(row_state *st, const float s, const int same_label, const float inv_tau,
                      const int mode) {
    st->possum += s;
    st->tp += same_label;
    if (mode == MODE_ATTRACT)
        lse_add(st, s, inv_tau);
}
#endif

/* Column j (j != i) of anchor i's row. */
static void row_visit(row_state *st, const float s, const int j, const int partner,
                      const int same_label, const float inv_tau, const float theta,
                      const int mode) {
    if (j == partner) {
        st->partner = s;
        lse_add(st, s, inv_tau);
        return;
    }
    st->top = fmax(st->top, s);
    st->same += same_label;
    if (s > theta) {
        st->above++;
#if LOSS_CAP > 0
        candidate(st, s, j, inv_tau, mode);
#else
        candidate(st, s, same_label, inv_tau, mode);
#endif
        return;
    }
    lse_add(st, s, inv_tau);
}

/* ---- merging the lanes of a row ------------------------------------------------------ */

#define MG_FIELDS 8

static void lane_put(const row_state *st, __local float *mg, __local float *mv, __local int *mi) {
    mg[0] = st->m;
    mg[1] = st->sum;
    mg[2] = st->top;
    mg[3] = st->partner;
    mg[4] = as_float(st->above);
    mg[5] = as_float(st->same);
#if LOSS_CAP > 0
    mg[6] = as_float(st->n);
    for (int e = 0; e < st->n; e++) {
        mv[e] = st->v[e];
        mi[e] = st->idx[e];
    }
#else
    mg[6] = st->possum;
    mg[7] = as_float(st->tp);
#endif
}

static void lane_take(row_state *st, __local const float *mg, __local const float *mv,
                      __local const int *mi, const float inv_tau, const int mode) {
    lse_merge(st, mg[0], mg[1], inv_tau);
    st->top = fmax(st->top, mg[2]);
    st->partner += mg[3];
    st->above += as_int(mg[4]);
    st->same += as_int(mg[5]);
#if LOSS_CAP > 0
    for (int e = 0; e < as_int(mg[6]); e++) {
        float dropped;
        if (keep_offer(st, mv[e], mi[e], &dropped) && mode == MODE_ELIMINATE)
            lse_add(st, dropped, inv_tau);
    }
#else
    st->possum += mg[6];
    st->tp += as_int(mg[7]);
#endif
}

/* Writes row i's results from its merged state. */
static void row_finish(const row_state *st, const int i, const int n2, __global const int *labels,
                       const int has_labels, const float inv_tau, const float weight,
                       const int mode, __global float *rowf, __global int *rowi) {
    float possum, bound = -INFINITY;
    int count, tp, bound_j = 0;
#if LOSS_CAP > 0
    possum = 0.0f;
    tp = 0;
    for (int e = 0; e < st->n; e++) {
        possum += st->v[e];
        tp += has_labels && labels[st->idx[e]] == labels[i];
    }
    count = st->n;
    if (st->n == LOSS_CAP) {
        bound = st->v[LOSS_CAP - 1];
        bound_j = st->idx[LOSS_CAP - 1];
    }
#else
    possum = st->possum;
    tp = st->tp;
    count = st->above;
#endif

    /* l_i = log-sum-exp - weighted mean of the positives' s / tau, around the max */
    const float invw = mode == MODE_ATTRACT ? 1.0f / (1.0f + weight * (float)count) : 1.0f;
    const float mean_pos =
        mode == MODE_ATTRACT ? (st->partner + weight * possum) * invw : st->partner;
    const float logsum = log(st->sum);
    rowf[RF_MAX * n2 + i] = st->m;
    rowf[RF_LOGSUM * n2 + i] = logsum;
    rowf[RF_INVW * n2 + i] = invw;
    rowf[RF_BOUND * n2 + i] = bound;
    rowf[RF_LOSS * n2 + i] = logsum + (st->m - mean_pos) * inv_tau;
    rowf[RF_PARTNER * n2 + i] = st->partner;
    rowf[RF_POSSUM * n2 + i] = possum;
    rowi[RI_BOUND * n2 + i] = bound_j;
    rowi[RI_COUNT * n2 + i] = count;
    rowi[RI_ABOVE * n2 + i] = st->above;
    rowi[RI_TP * n2 + i] = tp;
    rowi[RI_SAME * n2 + i] = st->same;
    rowi[RI_TOP1 * n2 + i] = st->partner >= st->top;
}

/* ---- forward: one work-group per TILE_I anchors, sweeping every column tile -------- */

__kernel REQD_WG void loss_forward(__global const float *z, __global const int *labels,
                                   __global float *rowf, __global int *rowi, const int n2,
                                   const float inv_tau, const float theta, const float weight,
                                   const int mode, const int has_labels) {
    __local float zi[TILE_D][TILE_J + 1], zj[TILE_D][TILE_J + 1];
    __local float tile[TILE_I][TILE_J + 1];
    __local int lab[TILE_J];
    __local float mg[TILE_I][MG_FIELDS];
    __local float mv[TILE_I][KEPT];
    __local int mi[TILE_I][KEPT];
    const int lid = get_local_id(0);
    const int ty = lid / (TILE_J / MICRO_J), tx = lid % (TILE_J / MICRO_J);
    const int i0 = get_group_id(0) * TILE_I;
    const int r = lid / LANES, lane = lid % LANES;
    const int i = i0 + r;
    const int partner = i < n2 ? (i + n2 / 2) % n2 : -1;
    const int my_label = has_labels && i < n2 ? labels[i] : 0;
    row_state st;
    row_init(&st);

    for (int j0 = 0; j0 < n2; j0 += TILE_J) {
        /* the tile of similarities, then each lane walks its columns of its row */
        float acc[MICRO_I][MICRO_J];
        tile_dot(z, n2, i0, j0, zi, zj, acc);
        for (int a = 0; a < MICRO_I; a++)
            for (int b = 0; b < MICRO_J; b++)
                tile[ty + a * (TILE_I / MICRO_I)][tx + b * (TILE_J / MICRO_J)] = acc[a][b];
        if (lid < TILE_J)
            lab[lid] = has_labels && j0 + lid < n2 ? labels[j0 + lid] : 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        if (i < n2) {
            for (int c = lane; c < TILE_J; c += LANES) {
                const int j = j0 + c;
                if (j < n2 && j != i)
                    row_visit(&st, tile[r][c], j, partner, has_labels && lab[c] == my_label,
                              inv_tau, theta, mode);
            }
        }
    }

    /* lane 0 of each row takes in the other lanes one at a time */
    for (int l = 1; l < LANES; l++) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lane == l)
            lane_put(&st, mg[r], mv[r], mi[r]);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lane == 0)
            lane_take(&st, mg[r], mv[r], mi[r], inv_tau, mode);
    }
    if (lane == 0 && i < n2)
        row_finish(&st, i, n2, labels, has_labels, inv_tau, weight, mode, rowf, rowi);
}

/* ---- backward ---------------------------------------------------------------------- */

/* tau * d l_i / d s_ij for j != i: the weight of j in i's softmax minus its target weight.
 * rs holds row i's RF_MAX, RF_LOGSUM, RF_INVW, RF_BOUND and, as bits, RI_BOUND. */
static float grad_term(const float s, const int j, const int partner, __local const float *rs,
                       const float inv_tau, const float theta, const float weight, const int mode) {
    const int is_partner = j == partner;
    const int kept = !is_partner && s > theta && (s > rs[3] || (s == rs[3] && j <= as_int(rs[4])));
    const float target =
        is_partner ? rs[2] : (kept && mode == MODE_ATTRACT ? weight * rs[2] : 0.0f);
    const float p = kept && mode == MODE_ELIMINATE ? 0.0f : exp((s - rs[0]) * inv_tau - rs[1]);
    return p - target;
}

static void load_stats(__global const float *rowf, __global const int *rowi, const int n2,
                       const int row0, __local float (*dst)[5], const int rows) {
    const int t = get_local_id(0);
    if (t < rows) {
        const int g = row0 + t < n2 ? row0 + t : n2 - 1;
        dst[t][0] = rowf[RF_MAX * n2 + g];
        dst[t][1] = rowf[RF_LOGSUM * n2 + g];
        dst[t][2] = rowf[RF_INVW * n2 + g];
        dst[t][3] = rowf[RF_BOUND * n2 + g];
        dst[t][4] = as_float(rowi[RI_BOUND * n2 + g]);
    }
}

/* dz_i = sum_j (G_ij + G_ji) z_j with G = dL/ds, written (=) to dz (2N, LOSS_DIM); scale is
 * 1 / (2N tau). */
__kernel REQD_WG void loss_backward(__global const float *z, __global const float *rowf,
                                    __global const int *rowi, __global float *dz, const int n2,
                                    const float inv_tau, const float theta, const float weight,
                                    const int mode, const float scale) {
    __local float zi[TILE_D][TILE_J + 1], zj[TILE_D][TILE_J + 1], zr[TILE_J][TILE_D + 1];
    __local float at[TILE_I][TILE_J + 1];
    __local float rs[TILE_I][5], cs[TILE_J][5];
    const int lid = get_local_id(0);
    const int ty = lid / (TILE_J / MICRO_J), tx = lid % (TILE_J / MICRO_J);
    const int kk = lid % TILE_D, rr = lid / TILE_D; /* this item's gradient column and row */
    const int i0 = get_group_id(0) * TILE_I;
    const int n = n2 / 2; /* images per view */
    float g[CHUNKS][DZ_ROWS];
    for (int q = 0; q < CHUNKS; q++)
        for (int e = 0; e < DZ_ROWS; e++)
            g[q][e] = 0.0f;
    load_stats(rowf, rowi, n2, i0, rs, TILE_I);

    for (int j0 = 0; j0 < n2; j0 += TILE_J) {
        /* similarities, then A_ij = G_ij + G_ji in local memory */
        float acc[MICRO_I][MICRO_J];
        tile_dot(z, n2, i0, j0, zi, zj, acc);
        load_stats(rowf, rowi, n2, j0, cs, TILE_J);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int a = 0; a < MICRO_I; a++) {
            for (int b = 0; b < MICRO_J; b++) {
                const int r = ty + a * (TILE_I / MICRO_I), c = tx + b * (TILE_J / MICRO_J);
                const int i = i0 + r, j = j0 + c;
                float v = 0.0f;
                if (i < n2 && j < n2 && i != j)
                    v = scale * (grad_term(acc[a][b], j, (i + n) % n2, rs[r], inv_tau, theta,
                                           weight, mode) +
                                 grad_term(acc[a][b], i, (j + n) % n2, cs[c], inv_tau, theta,
                                           weight, mode));
                at[r][c] = v;
            }
        }

        /* g += A (TILE_I, TILE_J) times z_j (TILE_J, LOSS_DIM), one feature chunk at a time */
        for (int q = 0; q < CHUNKS; q++) {
            barrier(CLK_LOCAL_MEM_FENCE);
            stage(z, n2, j0, q * TILE_D, zr, TILE_J);
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int c = 0; c < TILE_J; c++) {
                const float zv = zr[c][kk];
                for (int e = 0; e < DZ_ROWS; e++)
                    g[q][e] = fma(at[rr + e * (WG / TILE_D)][c], zv, g[q][e]);
            }
        }
    }

    for (int q = 0; q < CHUNKS; q++) {
        for (int e = 0; e < DZ_ROWS; e++) {
            const int i = i0 + rr + e * (WG / TILE_D), k = q * TILE_D + kk;
            if (i < n2 && k < LOSS_DIM)
                dz[i * LOSS_DIM + k] = g[q][e];
        }
    }
}

/* ---- statistics ---------------------------------------------------------------------- */

/* One work-group sums the per-row results into result[R_LOSS .. R_CAPPED]. */
__kernel REQD_WG void loss_reduce(__global const float *rowf, __global const int *rowi,
                                  __global int *result, const int n2) {
    __local float fs[3][WG];
    __local int is[6][WG];
    const int lid = get_local_id(0);
    float f[3] = {0.0f, 0.0f, 0.0f};
    int n[6] = {0, 0, 0, 0, 0, 0};
    for (int i = lid; i < n2; i += WG) {
        f[0] += rowf[RF_LOSS * n2 + i];
        f[1] += rowf[RF_PARTNER * n2 + i];
        f[2] += rowf[RF_POSSUM * n2 + i];
        n[0] += rowi[RI_COUNT * n2 + i];
        n[1] += rowi[RI_ABOVE * n2 + i];
        n[2] += rowi[RI_TP * n2 + i];
        n[3] += rowi[RI_SAME * n2 + i];
        n[4] += rowi[RI_TOP1 * n2 + i];
        n[5] += rowi[RI_ABOVE * n2 + i] > rowi[RI_COUNT * n2 + i];
    }
    for (int t = 0; t < 3; t++)
        fs[t][lid] = f[t];
    for (int t = 0; t < 6; t++)
        is[t][lid] = n[t];
    for (int stride = WG / 2; stride > 0; stride /= 2) {
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < stride) {
            for (int t = 0; t < 3; t++)
                fs[t][lid] += fs[t][lid + stride];
            for (int t = 0; t < 6; t++)
                is[t][lid] += is[t][lid + stride];
        }
    }
    if (lid == 0) {
        for (int t = 0; t < 3; t++)
            result[R_LOSS + t] = as_int(fs[t][0]);
        for (int t = 0; t < 6; t++)
            result[R_COUNT + t] = is[t][0];
    }
}

/* ---- row-block kernels: no local memory, no barriers (CPU-shaped) -------------------
 *
 * Each work-item owns ROWS_RB anchor rows and sweeps every column in blocks of ROWS_NV
 * vectors of ROWS_VW columns, the similarities of a block held in vector registers (as
 * cl/gemm.cl's gemm_bcast: a broadcast feature of each row against vector loads of zt, the
 * transposed copy of z made by loss_rows_layout). Every similarity is the same fma chain
 * over k = 0 .. LOSS_DIM - 1 as in tile_dot, so s_ij and s_ji are bit for bit equal and the
 * backward pass sees the forward's masks. They write the same rowf / rowi layout. */

#ifndef ROWS_RB
#define ROWS_RB 6 /* anchor rows per work-item */
#endif
#ifndef ROWS_VW
#define ROWS_VW 8 /* vector width of a column block: 4, 8 or 16 floats */
#endif
#ifndef ROWS_NV
#define ROWS_NV 2 /* vectors per column block (ROWS_NV * ROWS_VW columns) */
#endif
#ifndef ROWS_KV
#define ROWS_KV 2 /* backward: feature vectors of the dz accumulator updated at once */
#endif

#define CAT_(a, b) a##b
#define CAT(a, b)  CAT_(a, b)
#define RVEC       CAT(float, ROWS_VW)
#define RIVEC      CAT(int, ROWS_VW)
#define RVLOAD     CAT(vload, ROWS_VW)
#define RVSTORE    CAT(vstore, ROWS_VW)
#define RJB        (ROWS_NV * ROWS_VW)                /* columns per block */
#define RKV        (ROWS_KV * ROWS_VW)                /* features per step of the dz accumulator */
#define RDP        ((LOSS_DIM + RKV - 1) / RKV * RKV) /* row length of zp, zero-padded */

/* zt = z^T packed by column block: block b holds (LOSS_DIM, RJB) = features by its RJB
 * columns, contiguous (so a block's sweep over k reads one stream, without the cache-set
 * conflicts of a power-of-two row stride), zero in the columns from n2 to ld; and zp (n2,
 * RDP) = z with zero features past LOSS_DIM. One work-item per column of zt (ld items). */
__kernel void loss_rows_layout(__global const float *z, __global float *zt, __global float *zp,
                               const int n2, const int ld) {
    const int j = get_global_id(0);
    if (j >= ld)
        return;
    for (int k = 0; k < RDP; k++) {
        const float v = j < n2 && k < LOSS_DIM ? z[j * LOSS_DIM + k] : 0.0f;
        if (k < LOSS_DIM)
            zt[(j / RJB) * (LOSS_DIM * RJB) + k * RJB + j % RJB] = v;
        if (j < n2)
            zp[j * RDP + k] = v;
    }
}

static float rows_hmax(const RVEC v) {
    float t[ROWS_VW];
    RVSTORE(v, 0, t);
    float m = t[0];
#pragma unroll
    for (int e = 1; e < ROWS_VW; e++)
        m = fmax(m, t[e]);
    return m;
}

static float rows_hsum(const RVEC v) {
    float t[ROWS_VW];
    RVSTORE(v, 0, t);
    float s = 0.0f;
#pragma unroll
    for (int e = 0; e < ROWS_VW; e++)
        s += t[e];
    return s;
}

/* s[r][v] = s_ij for i = rows[r] and the ROWS_VW columns j0 + v ROWS_VW + lane (j0 a
 * multiple of RJB). */
static void rows_dot(__global const float *z, __global const float *zt, const int *rows,
                     const int j0, RVEC s[ROWS_RB][ROWS_NV]) {
    __global const float *panel = zt + (j0 / RJB) * (LOSS_DIM * RJB);
#pragma unroll
    for (int r = 0; r < ROWS_RB; r++)
#pragma unroll
        for (int v = 0; v < ROWS_NV; v++)
            s[r][v] = (RVEC)(0.0f);
    for (int k = 0; k < LOSS_DIM; k++) {
        RVEC b[ROWS_NV];
#pragma unroll
        for (int v = 0; v < ROWS_NV; v++)
            b[v] = RVLOAD(0, panel + k * RJB + v * ROWS_VW);
#pragma unroll
        for (int r = 0; r < ROWS_RB; r++) {
            const RVEC a = (RVEC)(z[rows[r] * LOSS_DIM + k]);
#pragma unroll
            for (int v = 0; v < ROWS_NV; v++)
                s[r][v] = fma(a, b[v], s[r][v]);
        }
    }
}

/* A row's state beside row_state: vector partial sums of the fast path, summed at the end. */
typedef struct {
    RVEC sum;   /* of exp((s - st.m) / tau), kept at st.m's scale */
    RVEC top;   /* largest similarity */
    RIVEC same; /* others with the anchor's label */
} rows_lanes;

/* ROWS_VW entries of a field-major row result from column j, zero past n2. */
static RVEC rows_cols(__global const float *f, const int j, const int n2) {
    if (j + ROWS_VW <= n2)
        return RVLOAD(0, f + j);
    float t[ROWS_VW];
    for (int e = 0; e < ROWS_VW; e++)
        t[e] = j + e < n2 ? f[j + e] : 0.0f;
    return RVLOAD(0, t);
}

static RIVEC rows_cols_int(__global const int *f, const int j, const int n2) {
    if (j + ROWS_VW <= n2)
        return RVLOAD(0, f + j);
    int t[ROWS_VW];
    for (int e = 0; e < ROWS_VW; e++)
        t[e] = j + e < n2 ? f[j + e] : 0;
    return RVLOAD(0, t);
}

/* Row i's block at j0. The ordinary columns (not i, not p(i), inside n2, not above theta)
 * only add to the denominator: as vectors, the others masked out. The special ones then go
 * one by one through row_visit, and the vector sum follows when that raises the maximum. */
static void rows_visit(row_state *st, rows_lanes *ln, const RVEC s[ROWS_NV], const int j0,
                       const RIVEC iota, const int i, const int partner, __global const int *labels,
                       const int has_labels, const int my_label, const int n2, const float inv_tau,
                       const float theta, const int mode) {
    RIVEC special[ROWS_NV];
    int any_special = 0;
    RVEC mx = (RVEC)(-INFINITY);
#pragma unroll
    for (int v = 0; v < ROWS_NV; v++) {
        const RIVEC j = (RIVEC)(j0 + v * ROWS_VW) + iota;
        special[v] = (s[v] > (RVEC)(theta)) | (j == (RIVEC)(i)) | (j == (RIVEC)(partner)) |
                     (j >= (RIVEC)(n2));
        any_special |= any(special[v]);
        mx = fmax(mx, select(s[v], (RVEC)(-INFINITY), special[v]));
    }

    /* the ordinary columns */
    ln->top = fmax(ln->top, mx);
    const float bm = rows_hmax(mx);
    if (bm > st->m) {
        const float f = exp((st->m - bm) * inv_tau);
        st->sum *= f;
        ln->sum *= f;
        st->m = bm;
    }
#pragma unroll
    for (int v = 0; v < ROWS_NV; v++)
        ln->sum += select(exp((s[v] - (RVEC)(st->m)) * inv_tau), (RVEC)(0.0f), special[v]);
    if (has_labels) {
#pragma unroll
        for (int v = 0; v < ROWS_NV; v++)
            ln->same -=
                (rows_cols_int(labels, j0 + v * ROWS_VW, n2) == (RIVEC)(my_label)) & ~special[v];
    }
    if (!any_special)
        return;

    /* the special ones */
    float e[RJB];
    int flag[RJB];
#pragma unroll
    for (int v = 0; v < ROWS_NV; v++) {
        RVSTORE(s[v], v, e);
        RVSTORE(special[v], v, flag);
    }
    const float m0 = st->m;
    for (int c = 0; c < RJB; c++) {
        const int j = j0 + c;
        if (flag[c] && j < n2 && j != i)
            row_visit(st, e[c], j, partner, has_labels && labels[j] == my_label, inv_tau, theta,
                      mode);
    }
    if (st->m != m0)
        ln->sum *= exp((m0 - st->m) * inv_tau);
}

/* The forward pass, rows [ROWS_RB g, ROWS_RB (g + 1)) for work-item g: rowf and rowi. */
__kernel void loss_rows_forward(__global const float *z, __global const float *zt,
                                __global const int *labels, __global float *rowf,
                                __global int *rowi, const int n2, const float inv_tau,
                                const float theta, const float weight, const int mode,
                                const int has_labels) {
    const int i0 = get_global_id(0) * ROWS_RB;
    if (i0 >= n2)
        return;
    int rows[ROWS_RB];
    row_state st[ROWS_RB];
    rows_lanes ln[ROWS_RB];
    int iota_t[ROWS_VW];
    for (int e = 0; e < ROWS_VW; e++)
        iota_t[e] = e;
    const RIVEC iota = RVLOAD(0, iota_t);
    for (int r = 0; r < ROWS_RB; r++) {
        rows[r] = min(i0 + r, n2 - 1);
        row_init(&st[r]);
        ln[r].sum = (RVEC)(0.0f);
        ln[r].top = (RVEC)(-INFINITY);
        ln[r].same = (RIVEC)(0);
    }

    for (int j0 = 0; j0 < n2; j0 += RJB) {
        RVEC s[ROWS_RB][ROWS_NV];
        rows_dot(z, zt, rows, j0, s);
        for (int r = 0; r < ROWS_RB; r++) {
            const int i = rows[r];
            rows_visit(&st[r], &ln[r], s[r], j0, iota, i, (i + n2 / 2) % n2, labels, has_labels,
                       has_labels ? labels[i] : 0, n2, inv_tau, theta, mode);
        }
    }

    for (int r = 0; r < ROWS_RB && i0 + r < n2; r++) {
        int same[ROWS_VW];
        CAT(vstore, ROWS_VW)(ln[r].same, 0, same);
        for (int e = 0; e < ROWS_VW; e++)
            st[r].same += same[e];
        st[r].sum += rows_hsum(ln[r].sum);
        st[r].top = fmax(st[r].top, rows_hmax(ln[r].top));
        row_finish(&st[r], i0 + r, n2, labels, has_labels, inv_tau, weight, mode, rowf, rowi);
    }
}

/* One row's (or ROWS_VW columns') forward results, as grad_term reads them. */
typedef struct {
    RVEC m, logsum, invw, bound;
    RIVEC bound_j;
} rows_stats;

/* grad_term for ROWS_VW pairs (a, b) at once: tau d l_a / d s_ab with a's results in rs,
 * b the column indices in a's row, is_p where b = p(a). */
static RVEC rows_grad_term(const RVEC s, const RIVEC b, const RIVEC is_p, const rows_stats *rs,
                           const float inv_tau, const float theta, const float weight,
                           const int mode) {
    const RIVEC kept =
        ~is_p & (s > (RVEC)(theta)) & ((s > rs->bound) | ((s == rs->bound) & (b <= rs->bound_j)));
    RVEC target = select((RVEC)(0.0f), rs->invw, is_p);
    RVEC p = exp((s - rs->m) * inv_tau - rs->logsum);
    if (mode == MODE_ATTRACT)
        target = select(target, weight * rs->invw, kept);
    else
        p = select(p, (RVEC)(0.0f), kept);
    return p - target;
}

/* dz_i = sum_j (G_ij + G_ji) z_j for rows [ROWS_RB g, ROWS_RB (g + 1)), written (=) to dz
 * (2N, LOSS_DIM); scale is 1 / (2N tau). */
__kernel void loss_rows_backward(__global const float *z, __global const float *zt,
                                 __global const float *zp, __global const float *rowf,
                                 __global const int *rowi, __global float *dz, const int n2,
                                 const float inv_tau, const float theta, const float weight,
                                 const int mode, const float scale) {
    const int i0 = get_global_id(0) * ROWS_RB;
    if (i0 >= n2)
        return;
    int rows[ROWS_RB], partner[ROWS_RB];
    rows_stats rs[ROWS_RB];
    RVEC g[ROWS_RB][RDP / ROWS_VW]; /* dz of the rows, (ROWS_RB, RDP) */
    for (int r = 0; r < ROWS_RB; r++) {
        const int i = min(i0 + r, n2 - 1);
        rows[r] = i;
        partner[r] = (i + n2 / 2) % n2;
        rs[r].m = (RVEC)(rowf[RF_MAX * n2 + i]);
        rs[r].logsum = (RVEC)(rowf[RF_LOGSUM * n2 + i]);
        rs[r].invw = (RVEC)(rowf[RF_INVW * n2 + i]);
        rs[r].bound = (RVEC)(rowf[RF_BOUND * n2 + i]);
        rs[r].bound_j = (RIVEC)(rowi[RI_BOUND * n2 + i]);
        for (int q = 0; q < RDP / ROWS_VW; q++)
            g[r][q] = (RVEC)(0.0f);
    }
    int iota_t[ROWS_VW];
    for (int e = 0; e < ROWS_VW; e++)
        iota_t[e] = e;
    const RIVEC iota = RVLOAD(0, iota_t);

    for (int j0 = 0; j0 < n2; j0 += RJB) {
        /* the block's similarities, then A = G_ij + G_ji in a[r][c] */
        RVEC s[ROWS_RB][ROWS_NV];
        float a[ROWS_RB][RJB];
        rows_dot(z, zt, rows, j0, s);
#pragma unroll
        for (int v = 0; v < ROWS_NV; v++) {
            const int j = j0 + v * ROWS_VW;
            const RIVEC jv = (RIVEC)(j) + iota;
            const rows_stats cs = {
                rows_cols(rowf + RF_MAX * n2, j, n2), rows_cols(rowf + RF_LOGSUM * n2, j, n2),
                rows_cols(rowf + RF_INVW * n2, j, n2), rows_cols(rowf + RF_BOUND * n2, j, n2),
                rows_cols_int(rowi + RI_BOUND * n2, j, n2)};
            for (int r = 0; r < ROWS_RB; r++) {
                const RIVEC is_p = jv == (RIVEC)(partner[r]);
                const RVEC t =
                    rows_grad_term(s[r][v], jv, is_p, &rs[r], inv_tau, theta, weight, mode) +
                    rows_grad_term(s[r][v], (RIVEC)(rows[r]), is_p, &cs, inv_tau, theta, weight,
                                   mode);
                const RIVEC off = (jv >= (RIVEC)(n2)) | (jv == (RIVEC)(rows[r]));
                RVSTORE(select(scale * t, (RVEC)(0.0f), off), v, a[r]);
            }
        }

        /* g += a (ROWS_RB, RJB) times zp rows j0 .. (RJB, RDP), ROWS_KV vectors at a time */
        for (int q = 0; q < RDP / ROWS_VW; q += ROWS_KV) {
            RVEC acc[ROWS_RB][ROWS_KV];
#pragma unroll
            for (int r = 0; r < ROWS_RB; r++)
#pragma unroll
                for (int t = 0; t < ROWS_KV; t++)
                    acc[r][t] = g[r][q + t];
            for (int c = 0; c < RJB; c++) {
                __global const float *zj = zp + min(j0 + c, n2 - 1) * RDP + q * ROWS_VW;
                RVEC b[ROWS_KV];
#pragma unroll
                for (int t = 0; t < ROWS_KV; t++)
                    b[t] = RVLOAD(t, zj);
#pragma unroll
                for (int r = 0; r < ROWS_RB; r++)
#pragma unroll
                    for (int t = 0; t < ROWS_KV; t++)
                        acc[r][t] = fma((RVEC)(a[r][c]), b[t], acc[r][t]);
            }
#pragma unroll
            for (int r = 0; r < ROWS_RB; r++)
#pragma unroll
                for (int t = 0; t < ROWS_KV; t++)
                    g[r][q + t] = acc[r][t];
        }
    }

    for (int r = 0; r < ROWS_RB && i0 + r < n2; r++) {
        float out[RDP];
        for (int q = 0; q < RDP / ROWS_VW; q++)
            RVSTORE(g[r][q], q, out);
        for (int k = 0; k < LOSS_DIM; k++)
            dz[(i0 + r) * LOSS_DIM + k] = out[k];
    }
}
