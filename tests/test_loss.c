/* The contrastive loss against the double-precision C reference, finite differences, an
 * independent NT-Xent and PyTorch's values; edge cases; bad input; GPU-shaped limits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clcl/loss.h"
#include "clcl/reference.h"
#include "support.h"

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

/* Every implementation; the unfused one last (check_setting stops before it on big batches),
 * the two fused ones first (FUSED_IMPLS). */
static const clcl_loss_impl IMPLS[] = {CLCL_LOSS_FUSED, CLCL_LOSS_FUSED_ROWS, CLCL_LOSS_UNFUSED};
static const char *IMPL_NAMES[] = {"fused tiles", "fused rows", "unfused"};
#define N_IMPLS     3
#define FUSED_IMPLS 2

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
    const int check_forward = n2 <= 130;
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

    /* the forward-only call gives the same loss and statistics (small batches only) */
    if (check_forward) {
        float again;
        clcl_loss_stats st2;
        cr_assert_eq(clcl_loss_forward(loss, &th, labels ? &lab : NULL, tau, theta, &again, &st2),
                     CLCL_OK, "%s", clcl_last_error());
        cr_expect_eq(again, out->loss, "forward-only loss %.9g, with backward %.9g", again,
                     out->loss);
        cr_expect_eq(st2.pseudo_total, out->stats.pseudo_total);
    }
    clcl_tensor_free(&th);
    clcl_tensor_free(&tdh);
    clcl_loss_free(loss);
}

static void expect_stats(const clcl_loss_stats *s, const clcl_ref_loss_result *r, int n2,
                         int has_labels, const char *what) {
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

/* Device against the reference for one input and one setting: the fused path, and the
 * unfused one up to 2N = UNFUSED_MAX (it is the benchmark's baseline, not the trainer's). */
#define UNFUSED_MAX 512

static void check_setting(clcl_context *ctx, const float *h, const int *labels,
                          const clcl_ref_batch *b, const variant *v, float tau, float theta,
                          double slack, const char *label) {
    const int n2 = b->n2, d = b->d;
    clcl_ref_loss_config rc = {(int)v->mode, v->weight, v->cap, tau, theta};
    clcl_ref_loss_result r;
    double *ref_dh = malloc((size_t)n2 * d * sizeof *ref_dh);
    clcl_ref_loss(b, labels, &rc, &r, ref_dh, 1);

    for (int m = 0; m < (n2 <= UNFUSED_MAX ? N_IMPLS : FUSED_IMPLS); m++) {
        char what[256];
        snprintf(what, sizeof what, "%s, 2N %d, d %d, %s, tau %g, theta %g (%s)", label, n2, d,
                 v->name, (double)tau, (double)theta, IMPL_NAMES[m]);
        device_run run;
        run_device(ctx, h, labels, n2, d, v, IMPLS[m], tau, theta, &run);
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
    clcl_ref_batch b;
    clcl_ref_batch_init(&b, h, n2, d);
    double *all = malloc((size_t)n2 * n2 * sizeof *all);
    size_t n = 0;
    for (int i = 0; i < n2; i++)
        for (int j = 0; j < n2; j++)
            if (j != i && j != (i + n2 / 2) % n2)
                all[n++] = clcl_ref_sim(&b, i, j);
    double v = 0.5;
    if (n) {
        qsort(all, n, sizeof *all, cmp_double);
        v = all[(size_t)(q * (double)(n - 1))];
    }
    free(all);
    clcl_ref_batch_free(&b);
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
        clcl_ref_make_views(h, labels, n2, d, n2 < 20 ? 2 : 10, &rng);

        /* thresholds from the data: about 30% and 3% of the others above them */
        double thetas[3] = {2.0, others_quantile(h, n2, d, 0.7), others_quantile(h, n2, d, 0.97)};
        cr_assert_geq(clcl_ref_make_unambiguous(h, n2, d, thetas + 1, 2, TEST_CAP, 2e-5, &rng), 0,
                      "2N %d, d %d: could not make the masks unambiguous", n2, d);
        clcl_ref_batch b;
        clcl_ref_batch_init(&b, h, n2, d);
        for (int t = 0; t < 3; t++) {
            /* without detection every variant is NT-Xent (theta_above_one_is_ntxent_exactly) */
            for (int v = 0; v < (t == 0 ? 1 : N_VARIANTS); v++)
                check_setting(ctx, h, labels, &b, &VARIANTS[v], 0.2f, (float)thetas[t], 1.0,
                              t == 0   ? "theta off"
                              : t == 1 ? "theta low"
                                       : "theta high");
        }

        /* the low threshold really finds pseudo-positives, and the cap really cuts */
        if (n2 >= 130) {
            clcl_ref_loss_config rc = {0, 1.0, TEST_CAP, 0.2, thetas[1]};
            clcl_ref_loss_result r;
            clcl_ref_loss(&b, labels, &rc, &r, NULL, 1);
            cr_expect_gt(r.pseudo_total, 0, "2N %d, d %d: the low threshold finds nothing", n2, d);
            cr_expect_gt(r.capped, 0, "2N %d, d %d: the cap never binds", n2, d);
        }
        clcl_ref_batch_free(&b);
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

/* ---- gradients by finite differences ------------------------------------------------ */

/* The reference's analytic gradient against central differences of its own loss. */
Test(loss, reference_gradient_matches_finite_differences) {
    static const int SIZES[] = {6, 130};
    for (size_t si = 0; si < 2; si++) {
        const int n2 = SIZES[si], d = 3;
        uint64_t rng = 77 + (uint64_t)n2;
        float *h = malloc((size_t)n2 * d * sizeof *h);
        int *labels = malloc((size_t)n2 * sizeof *labels);
        double *dh = malloc((size_t)n2 * d * sizeof *dh);
        clcl_ref_make_views(h, labels, n2, d, 2, &rng);
        double theta = others_quantile(h, n2, d, 0.3);
        cr_assert_geq(clcl_ref_make_unambiguous(h, n2, d, &theta, 1, TEST_CAP, 1e-4, &rng), 0);
        clcl_ref_batch b;
        clcl_ref_batch_init(&b, h, n2, d);
        for (int v = 0; v < N_VARIANTS; v++) {
            clcl_ref_loss_config rc = {(int)VARIANTS[v].mode, VARIANTS[v].weight, VARIANTS[v].cap,
                                       0.3, theta};
            clcl_ref_loss_result r, rp, rm;
            clcl_ref_loss(&b, labels, &rc, &r, dh, 1);
            cr_assert_gt(r.pseudo_total, 0);
            for (int e = 0; e<n2 * d; e += n2> 6 ? 7 : 1) {
                const float keep = h[e], step = 1e-6f;
                clcl_ref_batch bp, bm;
                h[e] = keep + step;
                clcl_ref_batch_init(&bp, h, n2, d);
                h[e] = keep - step;
                clcl_ref_batch_init(&bm, h, n2, d);
                h[e] = keep;
                clcl_ref_loss(&bp, labels, &rc, &rp, NULL, 1);
                clcl_ref_loss(&bm, labels, &rc, &rm, NULL, 1);
                /* the float steps are what h[e] really moved by */
                double fd = (rp.loss - rm.loss) / ((double)(keep + step) - (double)(keep - step));
                cr_expect(fabs(fd - dh[e]) <= 1e-6 + 1e-5 * fabs(dh[e]),
                          "2N %d %s: dL/dh[%d] = %.10g, finite differences %.10g", n2,
                          VARIANTS[v].name, e, dh[e], fd);
                clcl_ref_batch_free(&bp);
                clcl_ref_batch_free(&bm);
            }
        }
        clcl_ref_batch_free(&b);
        free(dh);
        free(labels);
        free(h);
    }
}

/* The device's gradient against central differences of the device's own loss. */
Test(loss, device_gradient_matches_finite_differences) {
    const int n2 = 6, d = 3;
    uint64_t rng = 5;
    float h[6 * 3];
    int labels[6];
    clcl_ref_make_views(h, labels, n2, d, 2, &rng);
    double theta = others_quantile(h, n2, d, 0.2);
    cr_assert_geq(clcl_ref_make_unambiguous(h, n2, d, &theta, 1, TEST_CAP, 0.02, &rng), 0);
    clcl_context *ctx = test_context();
    clcl_tensor th;
    cr_assert_eq(clcl_tensor_create(ctx, &th, 2, (int[]){n2, d}), CLCL_OK);
    for (int vm = 0; vm < N_VARIANTS * FUSED_IMPLS; vm++) {
        const int v = vm % N_VARIANTS, m = vm / N_VARIANTS;
        device_run run;
        run_device(ctx, h, labels, n2, d, &VARIANTS[v], IMPLS[m], 0.5f, (float)theta, &run);
        cr_expect_gt(run.stats.pseudo_total, 0, "%s finds no pseudo-positive", VARIANTS[v].name);
        clcl_loss_config cfg = {.mode = VARIANTS[v].mode,
                                .weight = VARIANTS[v].weight,
                                .cap = VARIANTS[v].cap,
                                .impl = IMPLS[m]};
        clcl_loss *loss;
        cr_assert_eq(clcl_loss_create(ctx, n2, d, &cfg, &loss), CLCL_OK);
        for (int e = 0; e < n2 * d; e++) {
            float probe[6 * 3], lp, lm;
            const float step = 1e-3f;
            memcpy(probe, h, sizeof probe);
            probe[e] = h[e] + step;
            cr_assert_eq(clcl_tensor_write(ctx, &th, probe), CLCL_OK);
            cr_assert_eq(clcl_loss_forward(loss, &th, NULL, 0.5f, (float)theta, &lp, NULL),
                         CLCL_OK);
            probe[e] = h[e] - step;
            cr_assert_eq(clcl_tensor_write(ctx, &th, probe), CLCL_OK);
            cr_assert_eq(clcl_loss_forward(loss, &th, NULL, 0.5f, (float)theta, &lm, NULL),
                         CLCL_OK);
            double fd = ((double)lp - lm) / ((double)(h[e] + step) - (double)(h[e] - step));
            cr_expect(fabs(fd - run.dh[e]) <= 5e-4 + 1e-2 * fabs(fd),
                      "%s (%s): dL/dh[%d] = %.7g on the device, finite differences %.7g",
                      VARIANTS[v].name, IMPL_NAMES[m], e, (double)run.dh[e], fd);
        }
        clcl_loss_free(loss);
        free(run.dh);
    }
    clcl_tensor_free(&th);
    clcl_context_free(ctx);
}

/* ---- NT-Xent and PyTorch ------------------------------------------------------------- */

/* Above 1 the threshold detects nothing: every variant gives the same bits, equal to an
 * independently computed NT-Xent. */
Test(loss, theta_above_one_is_ntxent_exactly) {
    const int n2 = 130, d = 128;
    const float thetas[] = {1.0000001f, 1.5f, 1e30f, INFINITY};
    uint64_t rng = 9;
    float *h = malloc((size_t)n2 * d * sizeof *h);
    int *labels = malloc((size_t)n2 * sizeof *labels);
    clcl_ref_make_views(h, labels, n2, d, 10, &rng);
    clcl_context *ctx = test_context();

    double nt = clcl_ref_ntxent(h, n2, d, 0.2);
    for (int m = 0; m < FUSED_IMPLS; m++) {
        device_run base;
        run_device(ctx, h, labels, n2, d, &VARIANTS[0], IMPLS[m], 0.2f, 2.0f, &base);
        cr_expect(fabs(base.loss - nt) <= 2e-5 * (1 + nt), "%s: loss %.9g, NT-Xent %.12g",
                  IMPL_NAMES[m], base.loss, nt);
        cr_expect_eq(base.stats.pseudo_total, 0);
        for (int v = 0; v < N_VARIANTS; v++) {
            for (size_t t = 0; t < sizeof thetas / sizeof thetas[0]; t++) {
                device_run run;
                run_device(ctx, h, labels, n2, d, &VARIANTS[v], IMPLS[m], 0.2f, thetas[t], &run);
                cr_expect_eq(run.loss, base.loss, "%s (%s), theta %g: loss %.9g, NT-Xent run %.9g",
                             VARIANTS[v].name, IMPL_NAMES[m], (double)thetas[t], run.loss,
                             base.loss);
                cr_expect_eq(memcmp(run.dh, base.dh, (size_t)n2 * d * sizeof *run.dh), 0,
                             "%s (%s), theta %g: the gradient differs from NT-Xent's",
                             VARIANTS[v].name, IMPL_NAMES[m], (double)thetas[t]);
                free(run.dh);
            }
        }
        free(base.dh);
    }
    device_run unf;
    run_device(ctx, h, labels, n2, d, &VARIANTS[4], CLCL_LOSS_UNFUSED, 0.2f, 1.5f, &unf);
    cr_expect(fabs(unf.loss - nt) <= 2e-5 * (1 + nt), "unfused loss %.9g, NT-Xent %.12g", unf.loss,
              nt);
    free(unf.dh);
    free(labels);
    free(h);
    clcl_context_free(ctx);
}

/* tests/data/loss_golden.bin from tests/gen_loss_golden.py (PyTorch autograd, float64). */
#define GOLDEN_MAGIC   "CLCLLSG1"
#define GOLDEN_VERSION 1u

static void read_exact(FILE *f, void *dst, size_t bytes, const char *what) {
    cr_assert_eq(fread(dst, 1, bytes, f), bytes, "loss_golden.bin: truncated at %s", what);
}

Test(loss, matches_pytorch_golden) {
    const char *dir = getenv("CLCL_TEST_DATA");
    cr_assert(dir && *dir, "CLCL_TEST_DATA is not set");
    char path[1024];
    snprintf(path, sizeof path, "%s/loss_golden.bin", dir);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s (regenerate it with tests/gen_loss_golden.py)", path);
    char magic[8];
    uint32_t version, cases;
    read_exact(f, magic, 8, "magic");
    cr_assert_eq(memcmp(magic, GOLDEN_MAGIC, 8), 0, "%s: not a loss golden file", path);
    read_exact(f, &version, 4, "version");
    cr_assert_eq(version, GOLDEN_VERSION, "%s: version %u, expected %u", path, version,
                 GOLDEN_VERSION);
    read_exact(f, &cases, 4, "case count");
    cr_assert_gt(cases, 0);
    clcl_context *ctx = test_context();
    for (uint32_t c = 0; c < cases; c++) {
        int32_t head[4]; /* n2, d, mode, cap */
        double par[4];   /* weight, tau, theta, loss */
        int64_t counts[3];
        read_exact(f, head, sizeof head, "case header");
        read_exact(f, par, sizeof par, "case parameters");
        read_exact(f, counts, sizeof counts, "case counts");
        const int n2 = head[0], d = head[1];
        cr_assert(n2 >= 2 && n2 <= 4096 && d >= 1 && d <= 4096, "case %u: 2N %d, d %d", c, n2, d);
        float *h = malloc((size_t)n2 * d * sizeof *h);
        float *grad = malloc((size_t)n2 * d * sizeof *grad);
        int32_t *labels = malloc((size_t)n2 * sizeof *labels);
        read_exact(f, h, (size_t)n2 * d * sizeof *h, "h");
        read_exact(f, labels, (size_t)n2 * sizeof *labels, "labels");
        read_exact(f, grad, (size_t)n2 * d * sizeof *grad, "gradient");
        double *ref = malloc((size_t)n2 * d * sizeof *ref);
        for (size_t e = 0; e < (size_t)n2 * d; e++)
            ref[e] = grad[e];
        variant v = {"golden", (clcl_fn_mode)head[2], (float)par[0], head[3]};
        for (int m = 0; m < N_IMPLS; m++) {
            char what[160];
            snprintf(what, sizeof what, "golden case %u (2N %d, d %d, %s, w %g, cap %d, %s)", c, n2,
                     d, clcl_fn_mode_name(v.mode), par[0], v.cap, IMPL_NAMES[m]);
            device_run run;
            run_device(ctx, h, labels, n2, d, &v, IMPLS[m], (float)par[1], (float)par[2], &run);
            cr_expect(fabs(run.loss - par[3]) <= 2e-5 * (1 + fabs(par[3])),
                      "%s: loss %.9g, PyTorch %.12g", what, run.loss, par[3]);
            cr_expect_eq(run.stats.pseudo_total, counts[0], "%s: pseudo-positives", what);
            cr_expect_eq(run.stats.pseudo_same, counts[1], "%s: same-label ones", what);
            cr_expect_eq(run.stats.same_total, counts[2], "%s: same-label others", what);
            expect_gradient(run.dh, ref, n2, d, 1, 1.0, what);
            free(run.dh);
        }
        free(ref);
        free(labels);
        free(grad);
        free(h);
    }
    fclose(f);
    clcl_context_free(ctx);
}

/* ---- edge cases ------------------------------------------------------------------------ */

static float max_abs(const float *x, size_t n) {
    float m = 0;
    for (size_t e = 0; e < n; e++)
        m = fmaxf(m, fabsf(x[e]));
    return m;
}

/* Every row the same: all similarities tie, the cap keeps the lowest indices. */
Test(loss, identical_rows) {
    const int n2 = 130, d = 128;
    float *h = malloc((size_t)n2 * d * sizeof *h);
    int *labels = malloc((size_t)n2 * sizeof *labels);
    uint64_t rng = 3;
    for (int k = 0; k < d; k++)
        h[k] = test_rand_uniform(&rng, -1, 1);
    for (int i = 1; i < n2; i++)
        memcpy(h + (size_t)i * d, h, (size_t)d * sizeof *h);
    for (int i = 0; i < n2; i++)
        labels[i] = i % 3;
    clcl_ref_batch b;
    clcl_ref_batch_init(&b, h, n2, d);
    clcl_context *ctx = test_context();
    for (int v = 0; v < N_VARIANTS; v++) {
        clcl_ref_loss_config rc = {(int)VARIANTS[v].mode, VARIANTS[v].weight, VARIANTS[v].cap, 0.2,
                                   0.5};
        clcl_ref_loss_result r;
        clcl_ref_loss(&b, labels, &rc, &r, NULL, 1);
        /* attract: log(2N - 1) whatever the weights; eliminate: only the partner is left */
        double expect = VARIANTS[v].mode == CLCL_FN_ATTRACT || VARIANTS[v].cap ? log(n2 - 1.0) : 0;
        if (VARIANTS[v].mode == CLCL_FN_ELIMINATE && VARIANTS[v].cap)
            expect = log(n2 - 1.0 - VARIANTS[v].cap);
        cr_expect(fabs(r.loss - expect) < 1e-9, "%s: reference %.12g, expected %.12g",
                  VARIANTS[v].name, r.loss, expect);
        for (int m = 0; m < N_IMPLS; m++) {
            device_run run;
            run_device(ctx, h, labels, n2, d, &VARIANTS[v], IMPLS[m], 0.2f, 0.5f, &run);
            char what[96];
            snprintf(what, sizeof what, "identical rows, %s (%s)", VARIANTS[v].name, IMPL_NAMES[m]);
            cr_expect(fabs(run.loss - expect) < 1e-5, "%s: loss %.9g, expected %.9g", what,
                      run.loss, expect);
            expect_stats(&run.stats, &r, n2, 1, what);
            cr_expect_lt(max_abs(run.dh, (size_t)n2 * d), 1e-6f, "%s: gradient %g", what,
                         (double)max_abs(run.dh, (size_t)n2 * d));
            free(run.dh);
        }
    }
    clcl_ref_batch_free(&b);
    clcl_context_free(ctx);
    free(labels);
    free(h);
}

/* theta below -1: every other row is above it. */
Test(loss, all_above_threshold) {
    const int n2 = 130, d = 128;
    float *h = malloc((size_t)n2 * d * sizeof *h);
    int *labels = malloc((size_t)n2 * sizeof *labels);
    uint64_t rng = 4;
    clcl_ref_make_views(h, labels, n2, d, 10, &rng);
    double theta = -1.01;
    cr_assert_geq(clcl_ref_make_unambiguous(h, n2, d, &theta, 1, TEST_CAP, 2e-5, &rng), 0);
    clcl_ref_batch b;
    clcl_ref_batch_init(&b, h, n2, d);
    clcl_context *ctx = test_context();
    for (int v = 0; v < N_VARIANTS; v++)
        check_setting(ctx, h, labels, &b, &VARIANTS[v], 0.2f, (float)theta, 1.0, "all above");

    /* eliminate without a cap leaves only the partner: loss and gradient 0 */
    for (int m = 0; m < FUSED_IMPLS; m++) {
        device_run run;
        run_device(ctx, h, labels, n2, d, &VARIANTS[2], IMPLS[m], 0.2f, (float)theta, &run);
        cr_expect(fabs(run.loss) < 1e-6, "%s: loss %g", IMPL_NAMES[m], (double)run.loss);
        cr_expect_lt(max_abs(run.dh, (size_t)n2 * d), 1e-6f, "%s", IMPL_NAMES[m]);
        cr_expect_float_eq(run.stats.pseudo_per_anchor, n2 - 2.0, 1e-12);
        free(run.dh);
    }
    clcl_ref_batch_free(&b);
    clcl_context_free(ctx);
    free(labels);
    free(h);
}

Test(loss, low_temperature) {
    const int n2 = 512, d = 128;
    float *h = malloc((size_t)n2 * d * sizeof *h);
    int *labels = malloc((size_t)n2 * sizeof *labels);
    uint64_t rng = 6;
    clcl_ref_make_views(h, labels, n2, d, 10, &rng);
    double theta = others_quantile(h, n2, d, 0.9);
    cr_assert_geq(clcl_ref_make_unambiguous(h, n2, d, &theta, 1, TEST_CAP, 2e-5, &rng), 0);
    clcl_ref_batch b;
    clcl_ref_batch_init(&b, h, n2, d);
    clcl_context *ctx = test_context();
    for (int v = 0; v < N_VARIANTS; v++)
        check_setting(ctx, h, labels, &b, &VARIANTS[v], 0.01f, (float)theta, 10.0, "tau 0.01");
    clcl_ref_batch_free(&b);
    clcl_context_free(ctx);
    free(labels);
    free(h);
}

/* N = 1: the partner is the whole denominator, so loss and gradient vanish. */
Test(loss, one_pair) {
    const float h[2 * 3] = {0.3f, -1.2f, 2.0f, -0.7f, 0.1f, 0.4f};
    const int labels[2] = {5, 5};
    clcl_context *ctx = test_context();
    for (int v = 0; v < N_VARIANTS; v++) {
        for (int m = 0; m < N_IMPLS; m++) {
            device_run run;
            run_device(ctx, h, labels, 2, 3, &VARIANTS[v], IMPLS[m], 0.1f, 0.0f, &run);
            cr_expect(fabs(run.loss) < 1e-6, "%s: loss %g", VARIANTS[v].name, (double)run.loss);
            cr_expect_lt(max_abs(run.dh, 6), 1e-6f, "%s", VARIANTS[v].name);
            cr_expect_eq(run.stats.pseudo_total, 0);
            cr_expect_eq(run.stats.same_total, 0);
            cr_expect_float_eq(run.stats.partner_top1, 1.0, 1e-12);
            free(run.dh);
        }
    }
    clcl_context_free(ctx);
}

/* 2N = 8192 at tau = 0.01 stays finite and matches the reference (sampled gradient rows). */
Test(loss, large_batch_low_temperature, .timeout = 600) {
    const int n2 = 8192, d = 3, row_step = 97;
    float *h = malloc((size_t)n2 * d * sizeof *h);
    int *labels = malloc((size_t)n2 * sizeof *labels);
    double *ref_dh = malloc((size_t)n2 * d * sizeof *ref_dh);
    uint64_t rng = 8;
    clcl_ref_make_views(h, labels, n2, d, 10, &rng);
    double theta = 0.999;
    cr_assert_geq(clcl_ref_make_unambiguous(h, n2, d, &theta, 1, TEST_CAP, 1e-5, &rng), 0);
    clcl_ref_batch b;
    clcl_ref_batch_init(&b, h, n2, d);
    clcl_context *ctx = test_context();
    /* eliminate with a cap: the kept lists and their evictions into the log-sum-exp */
    const variant *v = &VARIANTS[4];
    clcl_ref_loss_config rc = {(int)v->mode, v->weight, v->cap, 0.01, theta};
    clcl_ref_loss_result r;
    clcl_ref_loss(&b, labels, &rc, &r, ref_dh, row_step);
    cr_assert_gt(r.pseudo_total, 0);
    for (int m = 0; m < FUSED_IMPLS; m++) {
        device_run run;
        run_device(ctx, h, labels, n2, d, v, IMPLS[m], 0.01f, (float)theta, &run);
        char what[96];
        snprintf(what, sizeof what, "2N 8192, tau 0.01, %s (%s)", v->name, IMPL_NAMES[m]);
        cr_expect(isfinite(run.loss) && fabs(run.loss - r.loss) <= 1e-3 * (1 + fabs(r.loss)),
                  "%s: loss %.9g, reference %.12g", what, run.loss, r.loss);
        size_t bad = 0;
        for (size_t e = 0; e < (size_t)n2 * d; e++)
            bad += !isfinite(run.dh[e]);
        cr_expect_eq(bad, 0, "%s: %zu non-finite gradient entries", what, bad);
        expect_stats(&run.stats, &r, n2, 1, what);
        expect_gradient(run.dh, ref_dh, n2, d, row_step, 10.0, what);
        free(run.dh);
    }
    clcl_ref_batch_free(&b);
    clcl_context_free(ctx);
    free(ref_dh);
    free(labels);
    free(h);
}

/* ---- limits, labels, bad input -------------------------------------------------------- */

/* A cap and a no-cap setting under capped device limits; the loss must pick the work-group
 * `expect` names. */
static void limited_device(const char *wg, const char *local, int cap, const char *expect) {
    setenv("CLCL_MAX_WORK_GROUP", wg, 1);
    setenv("CLCL_MAX_LOCAL_MEM", local, 1);
    clcl_context *ctx = test_context();
    const clcl_device_info *dev = clcl_context_device(ctx);
    cr_assert_leq(dev->max_work_group, (size_t)atoi(wg));
    cr_assert_leq(dev->local_mem, (cl_ulong)atoll(local));

    const int n2 = 130, d = 128;
    float *h = malloc((size_t)n2 * d * sizeof *h);
    int *labels = malloc((size_t)n2 * sizeof *labels);
    uint64_t rng = 10;
    clcl_ref_make_views(h, labels, n2, d, 10, &rng);
    double theta = others_quantile(h, n2, d, 0.8);
    cr_assert_geq(clcl_ref_make_unambiguous(h, n2, d, &theta, 1, cap, 2e-5, &rng), 0);
    clcl_ref_batch b;
    clcl_ref_batch_init(&b, h, n2, d);
    variant v[2] = {{"attract w=1", CLCL_FN_ATTRACT, 1.0f, 0},
                    {"eliminate cap", CLCL_FN_ELIMINATE, 1.0f, cap}};
    for (int k = 0; k < 2; k++)
        check_setting(ctx, h, labels, &b, &v[k], 0.2f, (float)theta, 1.0, "limited device");

    clcl_loss_config cfg = {.mode = CLCL_FN_ELIMINATE, .weight = 1.0f, .cap = cap};
    clcl_loss *loss;
    char text[160];
    cr_assert_eq(clcl_loss_create(ctx, n2, d, &cfg, &loss), CLCL_OK, "%s", clcl_last_error());
    clcl_loss_describe(loss, text, sizeof text);
    cr_expect(strstr(text, expect), "limits %s / %s: '%s' lacks '%s'", wg, local, text, expect);
    clcl_loss_free(loss);
    clcl_ref_batch_free(&b);
    clcl_context_free(ctx);
    free(labels);
    free(h);
}

Test(loss, gpu_shaped_limits) {
    limited_device("256", "32768", TEST_CAP, "work-group 256");
}

Test(loss, small_device_limits) {
    limited_device("32", "8192", CLCL_LOSS_MAX_CAP, "work-group 8");
}

/* Host and device labels give the same statistics, and labels never change the loss. */
static void labels_agree(clcl_context *ctx, const float *h, const int *labels, int n2, int d,
                         int m) {
    clcl_loss_config cfg = {
        .mode = CLCL_FN_ATTRACT, .weight = 1.0f, .cap = TEST_CAP, .impl = IMPLS[m]};
    clcl_loss *loss;
    clcl_tensor th;
    cl_mem dl;
    cr_assert_eq(clcl_loss_create(ctx, n2, d, &cfg, &loss), CLCL_OK);
    cr_assert_eq(clcl_tensor_create(ctx, &th, 2, (int[]){n2, d}), CLCL_OK);
    cr_assert_eq(clcl_tensor_write(ctx, &th, h), CLCL_OK);
    cr_assert_eq(clcl_buffer_create(ctx, (size_t)n2 * sizeof(cl_int), "labels", &dl), CLCL_OK);
    cr_assert_eq(clEnqueueWriteBuffer(clcl_context_queue(ctx), dl, CL_TRUE, 0,
                                      (size_t)n2 * sizeof(cl_int), labels, 0, NULL, NULL),
                 CL_SUCCESS);
    clcl_loss_stats a, b;
    float la, lb;
    clcl_loss_labels host = {.host = labels}, dev = {.device = dl};
    cr_assert_eq(clcl_loss_forward(loss, &th, &host, 0.2f, 0.5f, &la, &a), CLCL_OK);
    cr_assert_eq(clcl_loss_forward(loss, &th, &dev, 0.2f, 0.5f, &lb, &b), CLCL_OK);
    cr_expect_eq(la, lb, "%s", IMPL_NAMES[m]);
    cr_expect_gt(a.pseudo_total, 0);
    cr_expect_eq(a.pseudo_same, b.pseudo_same);
    cr_expect_eq(a.same_total, b.same_total);
    cr_expect_gt(a.same_total, 0);
    cr_expect_eq(a.has_labels, 1);

    /* labels never change the loss; without them the label statistics are 0 */
    cr_assert_eq(clcl_loss_forward(loss, &th, NULL, 0.2f, 0.5f, &lb, &b), CLCL_OK);
    cr_expect_eq(la, lb);
    cr_expect_eq(b.has_labels, 0);
    cr_expect_eq(b.same_total, 0);
    cr_expect_eq(b.pseudo_total, a.pseudo_total);
    clReleaseMemObject(dl);
    clcl_tensor_free(&th);
    clcl_loss_free(loss);
}

Test(loss, device_and_host_labels_agree) {
    const int n2 = 130, d = 3;
    float *h = malloc((size_t)n2 * d * sizeof *h);
    int *labels = malloc((size_t)n2 * sizeof *labels);
    uint64_t rng = 11;
    clcl_ref_make_views(h, labels, n2, d, 4, &rng);
    clcl_context *ctx = test_context();
    for (int m = 0; m < N_IMPLS; m++)
        labels_agree(ctx, h, labels, n2, d, m);
    clcl_context_free(ctx);
    free(labels);
    free(h);
}

static void expect_refused(clcl_status got, clcl_status want, const char *needle) {
    cr_expect_eq(got, want, "status %s, expected %s (%s)", clcl_status_name(got),
                 clcl_status_name(want), clcl_last_error());
    cr_expect(strstr(clcl_last_error(), needle), "message '%s' lacks '%s'", clcl_last_error(),
              needle);
}

Test(loss, bad_arguments_are_refused) {
    clcl_context *ctx = test_context();
    clcl_loss *loss = NULL;
    clcl_loss_config ok = {.mode = CLCL_FN_ATTRACT, .weight = 1.0f};
    expect_refused(clcl_loss_create(ctx, 7, 4, &ok, &loss), CLCL_ERR_ARGUMENT, "2N = 7");
    expect_refused(clcl_loss_create(ctx, 0, 4, &ok, &loss), CLCL_ERR_ARGUMENT, "even");
    expect_refused(clcl_loss_create(ctx, 8, 0, &ok, &loss), CLCL_ERR_ARGUMENT, "d = 0");
    expect_refused(clcl_loss_create(ctx, 50000, 4, &ok, &loss), CLCL_ERR_ARGUMENT, "2N <= 46340");
    clcl_loss_config c = ok;
    c.weight = 1.5f;
    expect_refused(clcl_loss_create(ctx, 8, 4, &c, &loss), CLCL_ERR_ARGUMENT, "0 <= w <= 1");
    c = ok;
    c.cap = CLCL_LOSS_MAX_CAP + 1;
    expect_refused(clcl_loss_create(ctx, 8, 4, &c, &loss), CLCL_ERR_ARGUMENT, "cap 65");
    c = ok;
    c.mode = (clcl_fn_mode)7;
    expect_refused(clcl_loss_create(ctx, 8, 4, &c, &loss), CLCL_ERR_ARGUMENT, "mode 7");
    cr_expect_null(loss);
    clcl_fn_mode m;
    expect_refused(clcl_fn_mode_parse("attrakt", &m), CLCL_ERR_ARGUMENT, "'attract'");
    cr_expect_eq(clcl_fn_mode_parse("eliminate", &m), CLCL_OK);
    cr_expect_eq(m, CLCL_FN_ELIMINATE);

    cr_assert_eq(clcl_loss_create(ctx, 8, 4, &ok, &loss), CLCL_OK);
    clcl_tensor h, dh, wrong;
    cr_assert_eq(clcl_tensor_create(ctx, &h, 2, (int[]){8, 4}), CLCL_OK);
    cr_assert_eq(clcl_tensor_create(ctx, &dh, 2, (int[]){8, 4}), CLCL_OK);
    cr_assert_eq(clcl_tensor_create(ctx, &wrong, 2, (int[]){8, 5}), CLCL_OK);
    cr_assert_eq(clcl_tensor_fill(ctx, &h, 1.0f), CLCL_OK);
    float v;
    expect_refused(clcl_loss_forward_backward(loss, &wrong, NULL, 0.2f, 0.5f, &v, &dh, NULL),
                   CLCL_ERR_SHAPE, "(8, 5)");
    expect_refused(clcl_loss_forward_backward(loss, &h, NULL, 0.2f, 0.5f, &v, &wrong, NULL),
                   CLCL_ERR_SHAPE, "dh");
    expect_refused(clcl_loss_forward_backward(loss, &h, NULL, 0.2f, 0.5f, &v, &h, NULL),
                   CLCL_ERR_ARGUMENT, "same buffer");
    expect_refused(clcl_loss_forward(loss, &h, NULL, 0.0f, 0.5f, &v, NULL), CLCL_ERR_ARGUMENT,
                   "temperature 0");
    expect_refused(clcl_loss_forward(loss, &h, NULL, NAN, 0.5f, &v, NULL), CLCL_ERR_ARGUMENT,
                   "temperature");
    expect_refused(clcl_loss_forward(loss, &h, NULL, 0.2f, NAN, &v, NULL), CLCL_ERR_ARGUMENT,
                   "threshold is NaN");
    clcl_loss_labels none = {0};
    expect_refused(clcl_loss_forward(loss, &h, &none, 0.2f, 0.5f, &v, NULL), CLCL_ERR_ARGUMENT,
                   "labels");
    cl_mem small;
    cr_assert_eq(clcl_buffer_create(ctx, 4 * sizeof(cl_int), "small", &small), CLCL_OK);
    clcl_loss_labels short_labels = {.device = small};
    expect_refused(clcl_loss_forward(loss, &h, &short_labels, 0.2f, 0.5f, &v, NULL), CLCL_ERR_SHAPE,
                   "2N = 8");
    clReleaseMemObject(small);
    clcl_tensor_free(&h);
    clcl_tensor_free(&dh);
    clcl_tensor_free(&wrong);
    clcl_loss_free(loss);
    clcl_context_free(ctx);
}

/* A NaN, an infinity or an overflowing norm is an error naming the row; dh comes back 0. */
Test(loss, non_finite_input_is_an_error) {
    const float poison[] = {NAN, INFINITY, -INFINITY, 3e19f};
    clcl_context *ctx = test_context();
    const int n2 = 16, d = 3;
    float h[16 * 3], out[16 * 3];
    uint64_t rng = 12;
    clcl_ref_make_views(h, NULL, n2, d, 2, &rng);
    for (int m = 0; m < N_IMPLS; m++) {
        clcl_loss_config cfg = {CLCL_FN_ATTRACT, 1.0f, 0, IMPLS[m]};
        clcl_loss *loss;
        clcl_tensor th, tdh;
        cr_assert_eq(clcl_loss_create(ctx, n2, d, &cfg, &loss), CLCL_OK);
        cr_assert_eq(clcl_tensor_create(ctx, &th, 2, (int[]){n2, d}), CLCL_OK);
        cr_assert_eq(clcl_tensor_create(ctx, &tdh, 2, (int[]){n2, d}), CLCL_OK);
        for (size_t p = 0; p < sizeof poison / sizeof poison[0]; p++) {
            float bad[16 * 3];
            memcpy(bad, h, sizeof bad);
            bad[7 * d + 1] = poison[p];
            bad[11 * d + 2] = poison[p];
            cr_assert_eq(clcl_tensor_write(ctx, &th, bad), CLCL_OK);
            cr_assert_eq(clcl_tensor_fill(ctx, &tdh, 5.0f), CLCL_OK);
            float v = 42.0f;
            expect_refused(clcl_loss_forward_backward(loss, &th, NULL, 0.2f, 0.5f, &v, &tdh, NULL),
                           CLCL_ERR_NON_FINITE, "row 7 of h");
            cr_expect_eq(v, 42.0f, "the loss value was written");
            cr_assert_eq(clcl_tensor_read(ctx, &tdh, out), CLCL_OK);
            cr_expect_eq(max_abs(out, (size_t)n2 * d), 0.0f, "dh is not zeroed");
        }

        /* the same object works again on good input */
        float v;
        cr_assert_eq(clcl_tensor_write(ctx, &th, h), CLCL_OK);
        cr_expect_eq(clcl_loss_forward_backward(loss, &th, NULL, 0.2f, 0.5f, &v, &tdh, NULL),
                     CLCL_OK, "%s", clcl_last_error());
        cr_expect(isfinite(v));
        clcl_tensor_free(&th);
        clcl_tensor_free(&tdh);
        clcl_loss_free(loss);
    }
    clcl_context_free(ctx);
}
