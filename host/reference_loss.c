/* The contrastive loss in plain C and double precision (include/clcl/reference.h), and
 * the seeded inputs its tests use. Same definitions as include/clcl/loss.h, without tiles. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clcl/reference.h"

static clcl_status no_memory(void) {
    return clcl_fail(CLCL_ERR_NO_MEMORY, "reference: out of host memory");
}

uint64_t clcl_ref_rand_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

float clcl_ref_rand_uniform(uint64_t *state, float lo, float hi) {
    double u = (double)(clcl_ref_rand_u64(state) >> 11) / 9007199254740992.0;
    return lo + (float)u * (hi - lo);
}

clcl_status clcl_ref_batch_init(clcl_ref_batch *b, const float *h, int n2, int d) {
    memset(b, 0, sizeof *b);
    b->n2 = n2;
    b->d = d;
    b->z = malloc((size_t)n2 * d * sizeof *b->z);
    b->norm = malloc((size_t)n2 * sizeof *b->norm);
    if (!b->z || !b->norm) {
        clcl_ref_batch_free(b);
        return no_memory();
    }
    for (int i = 0; i < n2; i++) {
        double ss = 0;
        for (int k = 0; k < d; k++)
            ss += (double)h[(size_t)i * d + k] * h[(size_t)i * d + k];
        b->norm[i] = fmax(sqrt(ss), 1e-12);
        for (int k = 0; k < d; k++)
            b->z[(size_t)i * d + k] = h[(size_t)i * d + k] / b->norm[i];
    }
    if (n2 > CLCL_REF_STORE_MAX)
        return CLCL_OK;
    b->s = malloc((size_t)n2 * n2 * sizeof *b->s);
    if (!b->s) {
        clcl_ref_batch_free(b);
        return no_memory();
    }
    for (int i = 0; i < n2; i++)
        for (int j = 0; j <= i; j++) {
            double dot = 0;
            for (int k = 0; k < d; k++)
                dot += b->z[(size_t)i * d + k] * b->z[(size_t)j * d + k];
            b->s[(size_t)i * n2 + j] = b->s[(size_t)j * n2 + i] = dot;
        }
    return CLCL_OK;
}

void clcl_ref_batch_free(clcl_ref_batch *b) {
    free(b->z);
    free(b->norm);
    free(b->s);
    memset(b, 0, sizeof *b);
}

double clcl_ref_sim(const clcl_ref_batch *b, int i, int j) {
    if (b->s)
        return b->s[(size_t)i * b->n2 + j];
    double dot = 0;
    for (int k = 0; k < b->d; k++)
        dot += b->z[(size_t)i * b->d + k] * b->z[(size_t)j * b->d + k];
    return dot;
}

/* ---- the loss --------------------------------------------------------------------------- */

typedef struct {
    double s;
    int j;
} ranked;

static int by_rank(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return x->j - y->j;
}

/* One anchor's masks and log-sum-exp. */
typedef struct {
    double lse;          /* log sum over the denominator of exp(s / tau) */
    double wsum;         /* total weight of the positives */
    unsigned char *kept; /* (n2) 1 for the kept pseudo-positives */
} ref_row;

static void row_masks(const clcl_ref_batch *b, const clcl_ref_loss_config *c, int i, ranked *work,
                      ref_row *row, clcl_ref_loss_result *out, const int *labels) {
    const int n2 = b->n2, p = (i + n2 / 2) % n2;
    int n = 0;

    /* candidates above theta, most similar first, then the cap */
    memset(row->kept, 0, (size_t)n2);
    for (int j = 0; j < n2; j++) {
        double s = clcl_ref_sim(b, i, j);
        if (j != i && j != p && c->theta <= 1.0 && s > c->theta)
            work[n++] = (ranked){s, j};
    }
    qsort(work, (size_t)n, sizeof *work, by_rank);
    int kept = c->cap > 0 && n > c->cap ? c->cap : n;
    for (int e = 0; e < kept; e++)
        row->kept[work[e].j] = 1;
    out->above_total += n;
    out->pseudo_total += kept;
    out->capped += kept < n;

    /* the denominator, the positives, the counts */
    double mx = -INFINITY, top = -INFINITY, pos = clcl_ref_sim(b, i, p);
    for (int j = 0; j < n2; j++) {
        double s = clcl_ref_sim(b, i, j);
        if (j != i && !(c->mode == 1 && row->kept[j]))
            mx = fmax(mx, s);
        if (j == i || j == p)
            continue;
        top = fmax(top, s);
        if (labels && labels[j] == labels[i]) {
            out->same_total++;
            out->pseudo_same += row->kept[j];
        }
        if (row->kept[j]) {
            out->pseudo_sum += s;
            if (c->mode == 0)
                pos += c->weight * s;
        }
    }
    double sum = 0;
    for (int j = 0; j < n2; j++)
        if (j != i && !(c->mode == 1 && row->kept[j]))
            sum += exp((clcl_ref_sim(b, i, j) - mx) / c->tau);
    row->lse = mx / c->tau + log(sum);
    row->wsum = c->mode == 0 ? 1.0 + c->weight * kept : 1.0;
    out->partner_sum += clcl_ref_sim(b, i, p);
    out->top1 += clcl_ref_sim(b, i, p) >= top;
    out->loss += row->lse - pos / (c->tau * row->wsum);
}

/* dL/ds_ij for j != i. */
static double grad_entry(const clcl_ref_batch *b, const clcl_ref_loss_config *c, const ref_row *row,
                         int i, int j, double s) {
    const int p = (i + b->n2 / 2) % b->n2;
    double target = j == p ? 1.0 : (c->mode == 0 && row->kept[j] ? c->weight : 0.0);
    double prob = c->mode == 1 && row->kept[j] ? 0.0 : exp(s / c->tau - row->lse);
    return (prob - target / row->wsum) / (b->n2 * c->tau);
}

static clcl_status gradient(const clcl_ref_batch *b, const clcl_ref_loss_config *c,
                            const ref_row *rows, double *dh, int row_step) {
    const int n2 = b->n2, d = b->d;
    double *dz = malloc((size_t)d * sizeof *dz);
    if (!dz)
        return no_memory();
    for (int i = 0; i < n2; i += row_step) {
        /* dz_i = sum_j (G_ij + G_ji) z_j */
        memset(dz, 0, (size_t)d * sizeof *dz);
        for (int j = 0; j < n2; j++) {
            if (j == i)
                continue;
            double s = clcl_ref_sim(b, i, j);
            double a = grad_entry(b, c, &rows[i], i, j, s) + grad_entry(b, c, &rows[j], j, i, s);
            for (int k = 0; k < d; k++)
                dz[k] += a * b->z[(size_t)j * d + k];
        }

        /* through the normalisation */
        double dot = 0;
        for (int k = 0; k < d; k++)
            dot += dz[k] * b->z[(size_t)i * d + k];
        for (int k = 0; k < d; k++)
            dh[(size_t)i * d + k] = (dz[k] - b->z[(size_t)i * d + k] * dot) / b->norm[i];
    }
    free(dz);
    return CLCL_OK;
}

clcl_status clcl_ref_loss(const clcl_ref_batch *b, const int *labels, const clcl_ref_loss_config *c,
                          clcl_ref_loss_result *out, double *dh, int row_step) {
    const int n2 = b->n2;
    ref_row *rows = malloc((size_t)n2 * sizeof *rows);
    unsigned char *kept = malloc((size_t)n2 * n2);
    ranked *work = malloc((size_t)n2 * sizeof *work);
    clcl_status st = CLCL_OK;

    memset(out, 0, sizeof *out);
    if (!rows || !kept || !work)
        st = no_memory();
    for (int i = 0; i < n2 && st == CLCL_OK; i++) {
        rows[i].kept = kept + (size_t)i * n2;
        row_masks(b, c, i, work, &rows[i], out, labels);
    }
    out->loss /= n2;
    if (dh && st == CLCL_OK)
        st = gradient(b, c, rows, dh, row_step > 0 ? row_step : 1);
    free(work);
    free(kept);
    free(rows);
    return st;
}

double clcl_ref_ntxent(const float *h, int n2, int d, double tau) {
    double *u = malloc((size_t)n2 * d * sizeof *u);
    double *logits = malloc((size_t)n2 * sizeof *logits);
    double total = 0;

    if (!u || !logits) {
        free(u);
        free(logits);
        return NAN;
    }
    for (int i = 0; i < n2; i++) {
        double len = 0;
        for (int k = 0; k < d; k++)
            len = hypot(len, h[(size_t)i * d + k]);
        for (int k = 0; k < d; k++)
            u[(size_t)i * d + k] = h[(size_t)i * d + k] / fmax(len, 1e-12);
    }
    for (int a = 0; a < n2; a++) {
        /* cross-entropy of row a's logits (itself left out) against its partner */
        double big = -INFINITY, norm = 0;
        for (int j = 0; j < n2; j++) {
            double dot = 0;
            for (int k = 0; k < d; k++)
                dot += u[(size_t)a * d + k] * u[(size_t)j * d + k];
            logits[j] = j == a ? -INFINITY : dot / tau;
            big = logits[j] > big ? logits[j] : big;
        }
        for (int j = 0; j < n2; j++)
            norm += j == a ? 0.0 : exp(logits[j] - big);
        total += big + log(norm) - logits[(a + n2 / 2) % n2];
    }
    free(logits);
    free(u);
    return total / n2;
}

/* ---- inputs ----------------------------------------------------------------------------- */

static void draw_view(float *row, const float *base, int d, double scale, uint64_t *rng) {
    for (int k = 0; k < d; k++)
        row[k] = (float)((base[k] + 0.35 * clcl_ref_rand_uniform(rng, -1, 1)) * scale);
}

clcl_status clcl_ref_make_views(float *h, int *labels, int n2, int d, int classes, uint64_t *rng) {
    const int n = n2 / 2;
    float *centers = malloc((size_t)classes * d * sizeof *centers);
    float *base = malloc((size_t)d * sizeof *base);
    if (!centers || !base) {
        free(centers);
        free(base);
        return no_memory();
    }
    for (size_t e = 0; e < (size_t)classes * d; e++)
        centers[e] = clcl_ref_rand_uniform(rng, -1, 1);
    for (int m = 0; m < n; m++) {
        int c = (int)(clcl_ref_rand_u64(rng) % (uint64_t)classes);
        for (int k = 0; k < d; k++)
            base[k] = centers[(size_t)c * d + k] + 0.6f * clcl_ref_rand_uniform(rng, -1, 1);
        draw_view(h + (size_t)m * d, base, d, clcl_ref_rand_uniform(rng, 0.5f, 2.0f), rng);
        draw_view(h + (size_t)(m + n) * d, base, d, clcl_ref_rand_uniform(rng, 0.5f, 2.0f), rng);
        if (labels)
            labels[m] = labels[m + n] = c;
    }
    free(base);
    free(centers);
    return CLCL_OK;
}

/* Marks the rows that make row i's masks depend on rounding. */
static void mark_ambiguous(const clcl_ref_batch *b, int i, const double *thetas, int n_thetas,
                           int cap, double margin, ranked *work, unsigned char *redo) {
    const int n2 = b->n2, p = (i + n2 / 2) % n2;
    for (int t = 0; t < n_thetas; t++) {
        int n = 0;
        for (int j = 0; j < n2; j++) {
            if (j == i || j == p)
                continue;
            double s = clcl_ref_sim(b, i, j);
            if (fabs(s - thetas[t]) < margin)
                redo[j] = 1;
            if (s > thetas[t])
                work[n++] = (ranked){s, j};
        }
        if (cap <= 0 || n <= cap)
            continue;
        qsort(work, (size_t)n, sizeof *work, by_rank);
        if (work[cap - 1].s - work[cap].s < margin)
            redo[work[cap].j] = 1;
    }
}

int clcl_ref_make_unambiguous(float *h, int n2, int d, const double *thetas, int n_thetas, int cap,
                              double margin, uint64_t *rng) {
    unsigned char *redo = malloc((size_t)n2);
    ranked *work = malloc((size_t)n2 * sizeof *work);
    float *base = malloc((size_t)d * sizeof *base);
    int rounds = -1;

    for (int round = 0; round < 60 && rounds < 0 && redo && work && base; round++) {
        clcl_ref_batch b;
        if (clcl_ref_batch_init(&b, h, n2, d) != CLCL_OK)
            break;
        memset(redo, 0, (size_t)n2);
        for (int i = 0; i < n2; i++)
            mark_ambiguous(&b, i, thetas, n_thetas, cap, margin, work, redo);
        clcl_ref_batch_free(&b);
        int any = 0;
        for (int i = 0; i < n2; i++) {
            if (!redo[i])
                continue;
            any = 1;
            memcpy(base, h + (size_t)i * d, (size_t)d * sizeof *base);
            draw_view(h + (size_t)i * d, base, d, 1.0, rng);
        }
        if (!any)
            rounds = round;
    }
    free(base);
    free(work);
    free(redo);
    return rounds;
}
