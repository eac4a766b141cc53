/* Double-precision references of the evaluation (kNN, linear probe) and of the optimizers'
 * update (include/clcl/reference.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clcl/reference.h"
#include "clcl/rng.h"

#define PI 3.14159265358979323846

static clcl_status no_memory(const char *what) {
    return clcl_fail(CLCL_ERR_NO_MEMORY, "reference %s: out of host memory", what);
}

/* ---- kNN ------------------------------------------------------------------------------ */

/* The class rank of query i's label among the votes of its k nearest bank rows: 0 when it
 * wins; ties count against it. sim (nb), score (classes), taken (nb) are work space. */
static int knn_rank(const float *bank, const int *bl, int nb, const float *q, int label, int f,
                    int classes, int k, double t, double *sim, double *score, char *taken) {
    double qn = 0;
    for (int d = 0; d < f; d++)
        qn += (double)q[d] * q[d];
    for (int j = 0; j < nb; j++) {
        double dot = 0, bn = 0;
        for (int d = 0; d < f; d++) {
            dot += (double)q[d] * bank[(size_t)j * f + d];
            bn += (double)bank[(size_t)j * f + d] * bank[(size_t)j * f + d];
        }
        sim[j] = dot / sqrt(qn * bn);
    }
    memset(taken, 0, (size_t)nb);
    for (int c = 0; c < classes; c++)
        score[c] = 0;
    for (int r = 0; r < k && r < nb; r++) {
        int best = -1;
        for (int j = 0; j < nb; j++)
            if (!taken[j] && (best < 0 || sim[j] > sim[best]))
                best = j;
        taken[best] = 1;
        score[bl[best]] += exp(sim[best] / t);
    }
    int rank = 0;
    for (int c = 0; c < classes; c++)
        rank += c != label && score[c] >= score[label];
    return rank;
}

clcl_status clcl_ref_knn(const float *bank, const int *bank_labels, int nb, const float *q,
                         const int *query_labels, int nq, int f, int classes, int k, double t,
                         double *top1, double *top5) {
    double *sim = malloc((size_t)nb * sizeof *sim), *score = malloc(classes * sizeof *score);
    char *taken = malloc((size_t)nb);
    long c1 = 0, c5 = 0;

    if (nb < 1 || nq < 1 || f < 1 || classes < 1 || k < 1) {
        free(sim);
        free(score);
        free(taken);
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "reference kNN: nb %d, nq %d, f %d, classes %d, k %d: "
                         "expected all positive",
                         nb, nq, f, classes, k);
    }
    if (!sim || !score || !taken) {
        free(sim);
        free(score);
        free(taken);
        return no_memory("kNN");
    }
    for (int i = 0; i < nq; i++) {
        int rank = knn_rank(bank, bank_labels, nb, q + (size_t)i * f, query_labels[i], f, classes,
                            k, t, sim, score, taken);
        c1 += rank == 0;
        c5 += rank < 5;
    }
    *top1 = (double)c1 / nq;
    *top5 = (double)c5 / nq;
    free(sim);
    free(score);
    free(taken);
    return CLCL_OK;
}

/* ---- linear probe ------------------------------------------------------------------- */

typedef struct {
    int f, classes;
    double *mean, *istd; /* (f) standardization */
    double *w, *b;       /* (classes, f), (classes) */
    double *vw, *vb;     /* momentum */
    double *gw, *gb;     /* gradients of one batch */
    double *z, *xs;      /* (classes) logits, (f) one standardized row */
} probe_state;

static void probe_free(probe_state *p) {
    free(p->mean), free(p->istd), free(p->w), free(p->b), free(p->vw), free(p->vb);
    free(p->gw), free(p->gb), free(p->z), free(p->xs);
}

static int probe_alloc(probe_state *p, int f, int classes) {
    size_t cf = (size_t)classes * f;
    memset(p, 0, sizeof *p);
    p->f = f;
    p->classes = classes;
    p->mean = calloc(f, sizeof *p->mean), p->istd = calloc(f, sizeof *p->istd);
    p->w = calloc(cf, sizeof *p->w), p->b = calloc(classes, sizeof *p->b);
    p->vw = calloc(cf, sizeof *p->vw), p->vb = calloc(classes, sizeof *p->vb);
    p->gw = calloc(cf, sizeof *p->gw), p->gb = calloc(classes, sizeof *p->gb);
    p->z = calloc(classes, sizeof *p->z), p->xs = calloc(f, sizeof *p->xs);
    return p->mean && p->istd && p->w && p->b && p->vw && p->vb && p->gw && p->gb && p->z && p->xs;
}

/* Statistics of the training features: mean and 1 / max(std, 1e-6), population std. */
static void probe_standardize(probe_state *p, const float *xt, int nt) {
    const int f = p->f;
    for (int j = 0; j < f; j++) {
        double m = 0, v = 0;
        for (int i = 0; i < nt; i++)
            m += xt[(size_t)i * f + j];
        m /= nt;
        for (int i = 0; i < nt; i++)
            v += (xt[(size_t)i * f + j] - m) * (xt[(size_t)i * f + j] - m);
        p->mean[j] = m;
        p->istd[j] = 1 / fmax(sqrt(v / nt), 1e-6);
    }
}

/* Logits of the standardized row x into p->z; returns the largest. */
static double probe_logits(probe_state *p, const float *x) {
    double zmax = -INFINITY;
    for (int j = 0; j < p->f; j++)
        p->xs[j] = (x[j] - p->mean[j]) * p->istd[j];
    for (int k = 0; k < p->classes; k++) {
        p->z[k] = p->b[k];
        for (int j = 0; j < p->f; j++)
            p->z[k] += p->w[(size_t)k * p->f + j] * p->xs[j];
        zmax = fmax(zmax, p->z[k]);
    }
    return zmax;
}

/* One mini-batch of the rows order[0..n): gradients, then the momentum update; returns the
 * batch's summed cross-entropy. */
static double probe_batch(probe_state *p, const float *xt, const int *yt, const int *order, int n,
                          const clcl_probe_config *c, double lr) {
    const int f = p->f, classes = p->classes;
    double sum = 0;
    memset(p->gw, 0, (size_t)classes * f * sizeof *p->gw);
    memset(p->gb, 0, classes * sizeof *p->gb);
    for (int r = 0; r < n; r++) {
        int i = order[r];
        double zmax = probe_logits(p, xt + (size_t)i * f), s = 0;
        for (int k = 0; k < classes; k++)
            s += exp(p->z[k] - zmax);
        sum += log(s) + zmax - p->z[yt[i]];
        for (int k = 0; k < classes; k++) {
            double g = (exp(p->z[k] - zmax) / s - (k == yt[i])) / n;
            p->gb[k] += g;
            for (int j = 0; j < f; j++)
                p->gw[(size_t)k * f + j] += g * p->xs[j];
        }
    }
    for (size_t k = 0; k < (size_t)classes * f; k++) {
        p->vw[k] = c->momentum * p->vw[k] + p->gw[k] + c->weight_decay * p->w[k];
        p->w[k] -= lr * p->vw[k];
    }
    for (int k = 0; k < classes; k++) {
        p->vb[k] = c->momentum * p->vb[k] + p->gb[k];
        p->b[k] -= lr * p->vb[k];
    }
    return sum;
}

clcl_status clcl_ref_probe(const float *xt, const int *yt, int nt, const float *xe, const int *ye,
                           int ne, int f, int classes, const clcl_probe_config *c, double *top1,
                           double *loss) {
    probe_state p;
    int *order = malloc((size_t)nt * sizeof *order);
    if (!probe_alloc(&p, f, classes) || !order) {
        probe_free(&p);
        free(order);
        return no_memory("linear probe");
    }
    probe_standardize(&p, xt, nt);

    /* Epochs of shuffled mini-batches under the cosine learning rate. */
    long step = 0, total = (long)c->epochs * ((nt + c->batch - 1) / c->batch);
    for (int e = 0; e < c->epochs; e++) {
        clcl_rng rng;
        for (int i = 0; i < nt; i++)
            order[i] = i;
        clcl_rng_seed_stream(&rng, c->seed, (uint64_t)e);
        clcl_rng_shuffle(&rng, order, nt);
        double sum = 0;
        for (int off = 0; off < nt; off += c->batch, step++) {
            int n = nt - off < c->batch ? nt - off : c->batch;
            double lr = c->lr * 0.5 * (1 + cos(PI * step / total));
            sum += probe_batch(&p, xt, yt, order + off, n, c, lr);
        }
        *loss = sum / nt;
    }

    /* Test accuracy: the first largest logit. */
    long correct = 0;
    for (int i = 0; i < ne; i++) {
        probe_logits(&p, xe + (size_t)i * f);
        int best = 0;
        for (int k = 0; k < classes; k++)
            if (p.z[k] > p.z[best])
                best = k;
        correct += best == ye[i];
    }
    *top1 = (double)correct / ne;
    probe_free(&p);
    free(order);
    return CLCL_OK;
}

/* ---- optimizers --------------------------------------------------------------------- */

void clcl_ref_optim_step(const clcl_optim_config *c, int excluded, size_t n, const float *g,
                         double *w, double *buf, double lr) {
    double eta = c->trust_coefficient ? c->trust_coefficient : 0.001;
    double wd = excluded && !c->decay_all ? 0.0 : c->weight_decay;
    double s = lr, m = c->momentum, wn = 0, dn = 0;

    /* LARS: the trust ratio of the whole tensor. */
    if (c->kind == CLCL_OPTIM_LARS && !excluded) {
        for (size_t j = 0; j < n; j++) {
            double d = g[j] + wd * w[j];
            wn += w[j] * w[j];
            dn += d * d;
        }
        s = wn > 0 && dn > 0 ? lr * eta * sqrt(wn) / sqrt(dn) : lr;
    }
    for (size_t j = 0; j < n; j++) {
        double d = g[j] + wd * w[j], *b = &buf[j];
        if (c->kind == CLCL_OPTIM_SGD) {
            *b = m * *b + d;
            d = m == 0 ? d : c->nesterov ? d + m * *b : *b;
            w[j] -= lr * d;
        } else {
            *b = m * *b + s * d;
            w[j] -= m == 0 ? s * d : c->nesterov ? m * *b + s * d : *b;
        }
    }
}
