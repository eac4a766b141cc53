/* The contrastive loss against the double-precision C reference, finite differences, an
 * independent NT-Xent and PyTorch's values; edge cases; bad input; GPU-shaped limits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clcl/loss.h"
#include "support.h"
#include "support_loss.h"

typedef struct {
    const char *name;
    clcl_fn_mode mode;
    float weight;
    int cap;
} variant;

static const variant VARIANTS[] = {
    {"attract w=1", CLCL_FN_ATTRACT, 1.0f, 0},
    {"attract w=0.5", CLCL_FN_ATTRACT, 0.5f, 0},
    {"eliminate", CLCL_FN_ELIMINATE, 1.0f, 0},
    {"attract w=1 cap 3", CLCL_FN_ATTRACT, 1.0f, 3},
    {"eliminate cap 3", CLCL_FN_ELIMINATE, 1.0f, 3},
};
#define N_VARIANTS ((int)(sizeof VARIANTS / sizeof VARIANTS[0]))
#define TEST_CAP   3

static const char *IMPL_NAMES[] = {"fused", "unfused"};

/* Tolerances of one comparison; `slack` multiplies them all (low temperatures). */
typedef struct {
    double loss_atol, loss_rtol;
    double grad_atol_share; /* of the largest |dL/dh| */
    double grad_rtol;
} tolerance;

static const tolerance TOL = {2e-5, 2e-5, 2e-4, 2e-3};

/* One device run: loss, stats and (n2, d) gradient. */
typedef struct {
    float loss;
    clcl_loss_stats stats;
    float *dh;
} device_run;

static void run_device(clcl_context *ctx, const float *h, const int *labels, int n2, int d,
                       const variant *v, clcl_loss_impl impl, float tau, float theta,
                       device_run *out) {
    clcl_loss_config cfg = {.mode = v->mode, .weight = v->weight, .cap = v->cap, .impl = impl};
    clcl_loss *loss;
    clcl_tensor th, tdh;
    cr_assert_eq(clcl_loss_create(ctx, n2, d, &cfg, &loss), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_tensor_create(ctx, &th, 2, (int[]){n2, d}), CLCL_OK);
    cr_assert_eq(clcl_tensor_create(ctx, &tdh, 2, (int[]){n2, d}), CLCL_OK);
    cr_assert_eq(clcl_tensor_write(ctx, &th, h), CLCL_OK);
    clcl_loss_labels lab = {.host = labels};
    cr_assert_eq(clcl_loss_forward_backward(loss, &th, labels ? &lab : NULL, tau, theta, &out->loss,
                                            &tdh, &out->stats),
                 CLCL_OK, "%s", clcl_last_error());
    out->dh = malloc((size_t)n2 * d * sizeof *out->dh);
    cr_assert_eq(clcl_tensor_read(ctx, &tdh, out->dh), CLCL_OK);

    /* the forward-only call gives the same loss and statistics */
    float again;
    clcl_loss_stats st2;
    cr_assert_eq(clcl_loss_forward(loss, &th, labels ? &lab : NULL, tau, theta, &again, &st2),
                 CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(again, out->loss, "forward-only loss %.9g, with backward %.9g", again, out->loss);
    cr_expect_eq(st2.pseudo_total, out->stats.pseudo_total);
    clcl_tensor_free(&th);
    clcl_tensor_free(&tdh);
    clcl_loss_free(loss);
}

static void expect_stats(const clcl_loss_stats *s, const ref_result *r, int n2, int has_labels,
                         const char *what) {
    cr_expect_eq(s->pseudo_total, r->pseudo_total, "%s: pseudo-positives %lld, reference %lld",
                 what, s->pseudo_total, r->pseudo_total);
    cr_expect_float_eq(s->pseudo_per_anchor, (double)r->pseudo_total / n2, 1e-12, "%s", what);
    cr_expect_float_eq(s->above_per_anchor, (double)r->above_total / n2, 1e-12, "%s", what);
    cr_expect_float_eq(s->capped_share, (double)r->capped / n2, 1e-12, "%s", what);
    cr_expect_float_eq(s->partner_top1, (double)r->top1 / n2, 1e-12, "%s: partner top-1", what);
    cr_expect(fabs(s->partner_similarity - r->partner_sum / n2) < 1e-5, "%s: partner sim %g / %g",
              what, s->partner_similarity, r->partner_sum / n2);
    if (r->pseudo_total)
        cr_expect(fabs(s->pseudo_similarity - r->pseudo_sum / r->pseudo_total) < 1e-5,
                  "%s: pseudo sim %g / %g", what, s->pseudo_similarity,
                  r->pseudo_sum / r->pseudo_total);
    cr_expect_eq(s->has_labels, has_labels, "%s", what);
    if (!has_labels)
        return;
    cr_expect_eq(s->pseudo_same, r->pseudo_same, "%s: same-label pseudo-positives %lld / %lld",
                 what, s->pseudo_same, r->pseudo_same);
    cr_expect_eq(s->same_total, r->same_total, "%s: same-label others", what);
    double precision = r->pseudo_total ? (double)r->pseudo_same / r->pseudo_total : 0.0;
    double recall = r->same_total ? (double)r->pseudo_same / r->same_total : 0.0;
    cr_expect_float_eq(s->precision, precision, 1e-12, "%s: precision", what);
    cr_expect_float_eq(s->recall, recall, 1e-12, "%s: recall", what);
}

/* Compares the device's gradient with rows i % row_step == 0 of the reference's. */
static void expect_gradient(const float *dh, const double *ref, int n2, int d, int row_step,
                            double slack, const char *what) {
    double big = 0;
    for (int i = 0; i < n2; i += row_step)
        for (int k = 0; k < d; k++)
            big = fmax(big, fabs(ref[(size_t)i * d + k]));
    for (int i = 0; i < n2; i += row_step)
        expect_close(dh + (size_t)i * d, ref + (size_t)i * d, (size_t)d,
                     slack * TOL.grad_atol_share * big + 1e-9, slack * TOL.grad_rtol, what);
}

/* Device (both implementations) against the reference for one input and one setting. */
static void check_setting(clcl_context *ctx, const float *h, const int *labels, const ref_batch *b,
                          const variant *v, float tau, float theta, double slack,
                          const char *label) {
    const int n2 = b->n2, d = b->d;
    ref_config rc = {(int)v->mode, v->weight, v->cap, tau, theta};
    ref_result r;
    double *ref_dh = malloc((size_t)n2 * d * sizeof *ref_dh);
    ref_loss(b, labels, &rc, &r, ref_dh, 1);

    for (int impl = 0; impl < 2; impl++) {
        char what[256];
        snprintf(what, sizeof what, "%s, 2N %d, d %d, %s, tau %g, theta %g (%s)", label, n2, d,
                 v->name, (double)tau, (double)theta, IMPL_NAMES[impl]);
        device_run run;
        run_device(ctx, h, labels, n2, d, v, (clcl_loss_impl)impl, tau, theta, &run);
        double err = fabs(run.loss - r.loss);
        cr_expect(err <= slack * (TOL.loss_atol + TOL.loss_rtol * fabs(r.loss)),
                  "%s: loss %.9g, reference %.12g", what, run.loss, r.loss);
        expect_stats(&run.stats, &r, n2, labels != NULL, what);
        expect_gradient(run.dh, ref_dh, n2, d, 1, slack, what);
        free(run.dh);
    }
    free(ref_dh);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of the similarities between rows and their others. */
static double others_quantile(const float *h, int n2, int d, double q) {
    ref_batch b;
    ref_batch_init(&b, h, n2, d);
    double *all = malloc((size_t)n2 * n2 * sizeof *all);
    size_t n = 0;
    for (int i = 0; i < n2; i++)
        for (int j = 0; j < n2; j++)
            if (j != i && j != (i + n2 / 2) % n2)
                all[n++] = ref_sim(&b, i, j);
    double v = 0.5;
    if (n) {
        qsort(all, n, sizeof *all, cmp_double);
        v = all[(size_t)(q * (double)(n - 1))];
    }
    free(all);
    ref_batch_free(&b);
    return v;
}

/* Every size, threshold (off, low, high), variant and implementation at one d. */
static void sweep(int d) {
    static const int SIZES[] = {2, 6, 130, 512, 1030};
    clcl_context *ctx = test_context();
    for (size_t si = 0; si < sizeof SIZES / sizeof SIZES[0]; si++) {
        const int n2 = SIZES[si];
        uint64_t rng = 1000u * (uint64_t)n2 + (uint64_t)d;
        float *h = malloc((size_t)n2 * d * sizeof *h);
        int *labels = malloc((size_t)n2 * sizeof *labels);
        ref_make_views(h, labels, n2, d, n2 < 20 ? 2 : 10, &rng);

        /* thresholds from the data: about 30% and 3% of the others above them */
        double thetas[3] = {2.0, others_quantile(h, n2, d, 0.7), others_quantile(h, n2, d, 0.97)};
        cr_assert_geq(ref_make_unambiguous(h, n2, d, thetas + 1, 2, TEST_CAP, 2e-5, &rng), 0,
                      "2N %d, d %d: could not make the masks unambiguous", n2, d);
        ref_batch b;
        ref_batch_init(&b, h, n2, d);
        for (int t = 0; t < 3; t++) {
            for (int v = 0; v < N_VARIANTS; v++)
                check_setting(ctx, h, labels, &b, &VARIANTS[v], 0.2f, (float)thetas[t], 1.0,
                              t == 0   ? "theta off"
                              : t == 1 ? "theta low"
                                       : "theta high");
        }

        /* the low threshold really finds pseudo-positives, and the cap really cuts */
        if (n2 >= 130) {
            ref_config rc = {0, 1.0, TEST_CAP, 0.2, thetas[1]};
            ref_result r;
            ref_loss(&b, labels, &rc, &r, NULL, 1);
            cr_expect_gt(r.pseudo_total, 0, "2N %d, d %d: the low threshold finds nothing", n2, d);
            cr_expect_gt(r.capped, 0, "2N %d, d %d: the cap never binds", n2, d);
        }
        ref_batch_free(&b);
        free(labels);
        free(h);
    }
    clcl_context_free(ctx);
}

Test(loss, matches_reference_d3, .timeout = 600) {
    sweep(3);
}

Test(loss, matches_reference_d128, .timeout = 600) {
    sweep(128);
}

Test(loss, matches_reference_d200, .timeout = 600) {
    sweep(200);
}
