/* The kNN monitor and the linear probe against plain C references in double precision. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clcl/eval.h"
#include "clcl/rng.h"
#include "support.h"

/* Features clustered around one random centre per class, plus noise. */
static void make_features(uint64_t seed, int n, int f, int classes, double noise, float *x,
                          int *labels) {
    uint64_t rng = seed, crng = 12345;
    double *centres = malloc((size_t)classes * f * sizeof *centres);
    for (int i = 0; i < classes * f; i++)
        centres[i] = test_rand_uniform(&crng, -1, 1);
    for (int i = 0; i < n; i++) {
        labels[i] = (int)(test_rand_u64(&rng) % (uint64_t)classes);
        for (int j = 0; j < f; j++)
            x[(size_t)i * f + j] =
                (float)(centres[labels[i] * f + j] + noise * test_rand_uniform(&rng, -1, 1));
    }
    free(centres);
}

static clcl_tensor upload_matrix(clcl_context *ctx, const float *x, int rows, int cols) {
    clcl_tensor t;
    cr_assert_eq(clcl_tensor_create(ctx, &t, 2, (int[]){rows, cols}), CLCL_OK);
    cr_assert_eq(clcl_tensor_write(ctx, &t, x), CLCL_OK);
    return t;
}

/* Weighted kNN in double precision: the accuracy the device must reproduce. */
static void knn_reference(const float *bank, const int *bl, int nb, const float *q, const int *ql,
                          int nq, int f, int classes, int k, double t, double *top1, double *top5) {
    double *sim = malloc(nb * sizeof *sim), *score = malloc(classes * sizeof *score);
    char *taken = malloc(nb);
    long c1 = 0, c5 = 0;
    for (int i = 0; i < nq; i++) {
        double qn = 0;
        for (int d = 0; d < f; d++)
            qn += (double)q[i * f + d] * q[i * f + d];
        for (int j = 0; j < nb; j++) {
            double dot = 0, bn = 0;
            for (int d = 0; d < f; d++) {
                dot += (double)q[i * f + d] * bank[j * f + d];
                bn += (double)bank[j * f + d] * bank[j * f + d];
            }
            sim[j] = dot / sqrt(qn * bn);
        }
        memset(taken, 0, nb);
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
            rank += c != ql[i] && score[c] >= score[ql[i]];
        c1 += rank == 0;
        c5 += rank < 5;
    }
    *top1 = (double)c1 / nq;
    *top5 = (double)c5 / nq;
    free(sim);
    free(score);
    free(taken);
}

Test(knn, matches_the_double_reference) {
    clcl_context *ctx = test_context();
    const int nb = 300, nq = 130, f = 17, classes = 7;
    float *bank = malloc(nb * f * sizeof *bank), *q = malloc(nq * f * sizeof *q);
    int *bl = malloc(nb * sizeof *bl), *ql = malloc(nq * sizeof *ql);
    make_features(1, nb, f, classes, 1.2, bank, bl);
    make_features(2, nq, f, classes, 1.2, q, ql);

    for (int k = 1; k <= 400; k *= 20) { /* 1, 20, and 400 > bank: clamped to the bank */
        clcl_tensor tb = upload_matrix(ctx, bank, nb, f), tq = upload_matrix(ctx, q, nq, f);
        clcl_knn_config cfg = {.k = k, .temperature = 0.1};
        clcl_accuracy acc;
        cr_assert_eq(clcl_knn_evaluate(ctx, &tb, bl, &tq, ql, classes, &cfg, &acc), CLCL_OK, "%s",
                     clcl_last_error());
        double r1, r5;
        knn_reference(bank, bl, nb, q, ql, nq, f, classes, k, 0.1, &r1, &r5);
        cr_expect_float_eq(acc.top1, r1, 1e-12, "k %d: top-1 %g, reference %g", k, acc.top1, r1);
        cr_expect_float_eq(acc.top5, r5, 1e-12, "k %d: top-5 %g, reference %g", k, acc.top5, r5);
        cr_expect(r1 > 0.3 && r1 < 1.0, "the case is neither trivial nor hopeless: %g", r1);
        clcl_tensor_free(&tb);
        clcl_tensor_free(&tq);
    }
    free(bank);
    free(q);
    free(bl);
    free(ql);
    clcl_context_free(ctx);
}

Test(knn, bad_labels_and_shapes_are_refused) {
    clcl_context *ctx = test_context();
    float x[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    int labels[4] = {0, 1, 2, 0};
    clcl_tensor a = upload_matrix(ctx, x, 4, 3), b = upload_matrix(ctx, x, 3, 4);
    clcl_knn_config cfg = CLCL_KNN_DEFAULTS;
    clcl_accuracy acc;
    cr_expect_eq(clcl_knn_evaluate(ctx, &a, labels, &a, labels, 2, &cfg, &acc), CLCL_ERR_ARGUMENT,
                 "label 2 with 2 classes");
    cr_expect(strstr(clcl_last_error(), "label 2 of row 2"), "%s", clcl_last_error());
    cr_expect_eq(clcl_knn_evaluate(ctx, &a, labels, &b, labels, 3, &cfg, &acc), CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "(3, 4)"), "%s", clcl_last_error());
    clcl_tensor_free(&a);
    clcl_tensor_free(&b);
    clcl_context_free(ctx);
}

/* The probe's algorithm in double precision: standardize, shuffled mini-batch SGD with
 * momentum on softmax cross-entropy, cosine learning rate; returns test top-1 and the last
 * epoch's mean loss. */
static void probe_reference(const float *xt, const int *yt, int nt, const float *xe, const int *ye,
                            int ne, int f, int classes, const clcl_probe_config *c, double *top1,
                            double *loss) {
    double *mean = calloc(f, sizeof *mean), *istd = calloc(f, sizeof *istd);
    double *w = calloc((size_t)classes * f, sizeof *w), *b = calloc(classes, sizeof *b);
    double *vw = calloc((size_t)classes * f, sizeof *vw), *vb = calloc(classes, sizeof *vb);
    double *gw = malloc((size_t)classes * f * sizeof *gw), *gb = malloc(classes * sizeof *gb);
    double *z = malloc(classes * sizeof *z), *xs = malloc(f * sizeof *xs);
    int *order = malloc(nt * sizeof *order);
    for (int j = 0; j < f; j++) {
        double m = 0, v = 0;
        for (int i = 0; i < nt; i++)
            m += xt[i * f + j];
        m /= nt;
        for (int i = 0; i < nt; i++)
            v += (xt[i * f + j] - m) * (xt[i * f + j] - m);
        mean[j] = m;
        istd[j] = 1 / fmax(sqrt(v / nt), 1e-6);
    }
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
            double lr = c->lr * 0.5 * (1 + cos(3.14159265358979323846 * step / total));
            memset(gw, 0, (size_t)classes * f * sizeof *gw);
            memset(gb, 0, classes * sizeof *gb);
            for (int r = 0; r < n; r++) {
                int i = order[off + r];
                double zmax = -INFINITY, s = 0;
                for (int j = 0; j < f; j++)
                    xs[j] = (xt[i * f + j] - mean[j]) * istd[j];
                for (int k = 0; k < classes; k++) {
                    z[k] = b[k];
                    for (int j = 0; j < f; j++)
                        z[k] += w[k * f + j] * xs[j];
                    zmax = fmax(zmax, z[k]);
                }
                for (int k = 0; k < classes; k++)
                    s += exp(z[k] - zmax);
                sum += log(s) + zmax - z[yt[i]];
                for (int k = 0; k < classes; k++) {
                    double g = (exp(z[k] - zmax) / s - (k == yt[i])) / n;
                    gb[k] += g;
                    for (int j = 0; j < f; j++)
                        gw[k * f + j] += g * xs[j];
                }
            }
            for (int k = 0; k < classes * f; k++) {
                vw[k] = c->momentum * vw[k] + gw[k] + c->weight_decay * w[k];
                w[k] -= lr * vw[k];
            }
            for (int k = 0; k < classes; k++) {
                vb[k] = c->momentum * vb[k] + gb[k];
                b[k] -= lr * vb[k];
            }
        }
        *loss = sum / nt;
    }
    long correct = 0;
    for (int i = 0; i < ne; i++) {
        int best = 0;
        for (int k = 0; k < classes; k++) {
            z[k] = b[k];
            for (int j = 0; j < f; j++)
                z[k] += w[k * f + j] * (xe[i * f + j] - mean[j]) * istd[j];
            if (z[k] > z[best])
                best = k;
        }
        correct += best == ye[i];
    }
    *top1 = (double)correct / ne;
    free(mean), free(istd), free(w), free(b), free(vw), free(vb);
    free(gw), free(gb), free(z), free(xs), free(order);
}

Test(probe, follows_the_double_reference) {
    clcl_context *ctx = test_context();
    const int nt = 500, ne = 211, f = 13, classes = 6;
    float *xt = malloc(nt * f * sizeof *xt), *xe = malloc(ne * f * sizeof *xe);
    int *yt = malloc(nt * sizeof *yt), *ye = malloc(ne * sizeof *ye);
    make_features(3, nt, f, classes, 1.5, xt, yt);
    make_features(4, ne, f, classes, 1.5, xe, ye);
    clcl_tensor tt = upload_matrix(ctx, xt, nt, f), te = upload_matrix(ctx, xe, ne, f);

    clcl_probe_config cfg = {
        .epochs = 6, .batch = 64, .lr = 0.2, .momentum = 0.9, .weight_decay = 1e-3, .seed = 9};
    clcl_accuracy acc;
    double loss, ref_top1, ref_loss;
    cr_assert_eq(clcl_linear_probe(ctx, &tt, yt, &te, ye, classes, &cfg, &acc, &loss), CLCL_OK,
                 "%s", clcl_last_error());
    probe_reference(xt, yt, nt, xe, ye, ne, f, classes, &cfg, &ref_top1, &ref_loss);
    cr_expect_float_eq(loss, ref_loss, 1e-4 + 1e-4 * ref_loss, "loss %g, reference %g", loss,
                       ref_loss);
    /* float rounding may move a borderline test point: allow one of them */
    cr_expect_float_eq(acc.top1, ref_top1, 1.01 / ne, "top-1 %g, reference %g", acc.top1, ref_top1);
    cr_expect(ref_top1 > 0.5, "the classifier learned something: %g", ref_top1);
    cr_expect(acc.top5 >= acc.top1);
    clcl_tensor_free(&tt);
    clcl_tensor_free(&te);
    free(xt), free(xe), free(yt), free(ye);
    clcl_context_free(ctx);
}
