/* The kNN monitor and the linear probe against the plain C references in double precision of
 * host/reference_eval.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clcl/eval.h"
#include "clcl/reference.h"
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
        cr_assert_eq(clcl_ref_knn(bank, bl, nb, q, ql, nq, f, classes, k, 0.1, &r1, &r5), CLCL_OK);
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
    cr_assert_eq(clcl_ref_probe(xt, yt, nt, xe, ye, ne, f, classes, &cfg, &ref_top1, &ref_loss),
                 CLCL_OK);
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
