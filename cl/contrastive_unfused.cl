/* The contrastive loss the plain way, for comparison with cl/contrastive.cl: the host
 * computes the whole similarity matrix S (2N, 2N) with CLBlast, these kernels turn it into
 * per-row results and then, in place, into A = G + G^T (G = dL/dS), and CLBlast multiplies
 * A by z. Same definitions, same per-row layout (rowf, rowi) as cl/contrastive.cl; the code
 * is written independently so each path checks the other. */

#ifndef LOSS_CAP
#define LOSS_CAP 0 /* most pseudo-positives kept per anchor; 0: every one above theta */
#endif

#define MODE_ATTRACT   0
#define MODE_ELIMINATE 1

/* the layout of cl/contrastive.cl */
#define RF_MAX     0
#define RF_LOGSUM  1
#define RF_INVW    2
#define RF_BOUND   3
#define RF_LOSS    4
#define RF_PARTNER 5
#define RF_POSSUM  6
#define RI_BOUND   0
#define RI_COUNT   1
#define RI_ABOVE   2
#define RI_TP      3
#define RI_SAME    4
#define RI_TOP1    5

/* (s, j) comes before (t, k) in the order of the cap: more similar, then lower index. */
static int before(const float s, const int j, const float t, const int k) {
    return s > t || (s == t && j < k);
}

/* Is column j (outside {i, p(i)}) one of row i's kept pseudo-positives? */
static int is_kept(const float s, const int j, const float theta, const float bound,
                   const int bound_j) {
    return s > theta && !before(bound, bound_j, s, j);
}

/* The LOSS_CAP-th candidate of row i in the cap's order, by LOSS_CAP selection sweeps;
 * (-inf, 0) when the row has no more than LOSS_CAP candidates. */
static void cap_bound(__global const float *row, const int i, const int p, const int n2,
                      const float theta, const int above, float *bound, int *bound_j) {
    *bound = -INFINITY;
    *bound_j = 0;
    if (LOSS_CAP == 0 || above <= LOSS_CAP)
        return;
    float prev = INFINITY;
    int prev_j = -1;
    for (int t = 0; t < LOSS_CAP; t++) {
        float best = -INFINITY;
        int best_j = n2;
        for (int j = 0; j < n2; j++) {
            const float s = row[j];
            if (j == i || j == p || !(s > theta) || !before(prev, prev_j, s, j))
                continue;
            if (before(s, j, best, best_j)) {
                best = s;
                best_j = j;
            }
        }
        prev = best;
        prev_j = best_j;
    }
    *bound = prev;
    *bound_j = prev_j;
}

/* One work-item per anchor row i of S: three sweeps over the row. */
__kernel void unfused_rows(__global const float *sim, __global const int *labels,
                           __global float *rowf, __global int *rowi, const int n2,
                           const float inv_tau, const float theta, const float weight,
                           const int mode, const int has_labels) {
    const int i = get_global_id(0);
    if (i >= n2)
        return;
    __global const float *row = sim + (size_t)i * n2;
    const int p = (i + n2 / 2) % n2;
    const int li = has_labels ? labels[i] : 0;

    /* candidates above theta, and the cap's boundary */
    int above = 0;
    for (int j = 0; j < n2; j++)
        above += j != i && j != p && row[j] > theta;
    float bound;
    int bound_j;
    cap_bound(row, i, p, n2, theta, above, &bound, &bound_j);

    /* the denominator's max */
    float m = -INFINITY;
    for (int j = 0; j < n2; j++) {
        const int kept = j != i && j != p && is_kept(row[j], j, theta, bound, bound_j);
        if (j != i && !(kept && mode == MODE_ELIMINATE))
            m = fmax(m, row[j]);
    }

    /* sums and counts */
    float sum = 0.0f, possum = 0.0f, top = -INFINITY;
    int count = 0, tp = 0, same = 0;
    for (int j = 0; j < n2; j++) {
        if (j == i)
            continue;
        const float s = row[j];
        const int kept = j != p && is_kept(s, j, theta, bound, bound_j);
        if (!(kept && mode == MODE_ELIMINATE))
            sum += exp((s - m) * inv_tau);
        if (j == p)
            continue;
        const int same_label = has_labels && labels[j] == li;
        top = fmax(top, s);
        same += same_label;
        if (kept) {
            count++;
            possum += s;
            tp += same_label;
        }
    }
    const float sp = row[p];
    const float invw = mode == MODE_ATTRACT ? 1.0f / (1.0f + weight * (float)count) : 1.0f;
    const float mean_pos = mode == MODE_ATTRACT ? (sp + weight * possum) * invw : sp;
    rowf[RF_MAX * n2 + i] = m;
    rowf[RF_LOGSUM * n2 + i] = log(sum);
    rowf[RF_INVW * n2 + i] = invw;
    rowf[RF_BOUND * n2 + i] = bound;
    rowf[RF_LOSS * n2 + i] = log(sum) + (m - mean_pos) * inv_tau;
    rowf[RF_PARTNER * n2 + i] = sp;
    rowf[RF_POSSUM * n2 + i] = possum;
    rowi[RI_BOUND * n2 + i] = bound_j;
    rowi[RI_COUNT * n2 + i] = count;
    rowi[RI_ABOVE * n2 + i] = above;
    rowi[RI_TP * n2 + i] = tp;
    rowi[RI_SAME * n2 + i] = same;
    rowi[RI_TOP1 * n2 + i] = sp >= top;
}

/* G_ij = dL/ds_ij for j != i, from row i's results. */
static float grad_entry(const float s, const int i, const int j, __global const float *rowf,
                        __global const int *rowi, const int n2, const float inv_tau,
                        const float theta, const float weight, const int mode, const float scale) {
    const int p = (i + n2 / 2) % n2;
    const int kept =
        j != p && is_kept(s, j, theta, rowf[RF_BOUND * n2 + i], rowi[RI_BOUND * n2 + i]);
    const float invw = rowf[RF_INVW * n2 + i];
    float target = 0.0f;
    if (j == p)
        target = invw;
    else if (kept && mode == MODE_ATTRACT)
        target = weight * invw;
    float prob = 0.0f;
    if (!(kept && mode == MODE_ELIMINATE))
        prob = exp((s - rowf[RF_MAX * n2 + i]) * inv_tau - rowf[RF_LOGSUM * n2 + i]);
    return scale * (prob - target);
}

/* sim = G + G^T in place: the work-item of (i, j) with j > i reads s_ij and s_ji and writes
 * both entries, the one of (i, i) writes 0; scale is 1 / (2N tau). */
__kernel void unfused_grad(__global float *sim, __global const float *rowf,
                           __global const int *rowi, const int n2, const float inv_tau,
                           const float theta, const float weight, const int mode,
                           const float scale) {
    const int j = get_global_id(0), i = get_global_id(1);
    if (i >= n2 || j >= n2 || j < i)
        return;
    const size_t ij = (size_t)i * n2 + j, ji = (size_t)j * n2 + i;
    if (i == j) {
        sim[ij] = 0.0f;
        return;
    }
    const float sij = sim[ij], sji = sim[ji];
    const float a = grad_entry(sij, i, j, rowf, rowi, n2, inv_tau, theta, weight, mode, scale) +
                    grad_entry(sji, j, i, rowf, rowi, n2, inv_tau, theta, weight, mode, scale);
    sim[ij] = a;
    sim[ji] = a;
}
