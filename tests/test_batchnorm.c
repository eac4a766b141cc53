/* Batch normalization, 2d and 1d: training forward (outputs, saved statistics, running
 * statistics with momentum 0.1 and the unbiased variance), eval forward and backward
 * against double-precision C references; the backward against central finite differences
 * of the reference training forward (in x, gamma and beta); the same bits on every run;
 * bad shapes.
 *
 * Tolerances: |got - ref| <= 1e-4 + 1e-4 |ref| for outputs, statistics and gradients
 * against the references; 2e-4 + 1e-3 |ref| against finite differences (step 1e-4, whose
 * truncation error is about 1e-8 here). Inputs are uniform in [-1, 1) plus a channel
 * offset of up to 3, which a one-pass variance would lose precision on. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clcl/layers.h"
#include "layers_internal.h"
#include "support.h"
#include "support_layers.h"

#define MOMENTUM 0.1
#define EPS      1e-5
#define FD_STEP  1e-4
#define FD_MAX   40

typedef struct {
    int n, c, l;
    int ndim, shape[4];
} bn_case;

static bn_case bn_2d(int n, int c, int h, int w) {
    return (bn_case){n, c, h * w, 4, {n, c, h, w}};
}

static bn_case bn_1d(int n, int c) {
    return (bn_case){n, c, 1, 2, {n, c, 0, 0}};
}

/* Host data of a case: x with a per-channel offset, gamma, beta, running stats, dy. */
typedef struct {
    size_t count;
    float *x, *gamma, *beta, *rmean, *rvar, *dy;
} bn_data;

static bn_data bn_data_make(const bn_case *b, uint64_t seed) {
    uint64_t rng = seed;
    bn_data d = {.count = (size_t)b->n * b->c * b->l};
    d.x = test_floats(d.count, &rng, -1, 1);
    for (size_t i = 0; i < d.count; i++)
        d.x[i] += (float)((i / (size_t)b->l) % (size_t)b->c % 4) - 1.5f;
    d.gamma = test_floats((size_t)b->c, &rng, 0.5f, 1.5f);
    d.beta = test_floats((size_t)b->c, &rng, -0.5f, 0.5f);
    d.rmean = test_floats((size_t)b->c, &rng, -1, 1);
    d.rvar = test_floats((size_t)b->c, &rng, 0.5f, 2);
    d.dy = test_floats(d.count, &rng, -1, 1);
    return d;
}

static void bn_data_free(bn_data *d) {
    free(d->x), free(d->gamma), free(d->beta), free(d->rmean), free(d->rvar), free(d->dy);
}

/* Device tensors of a case. */
typedef struct {
    clcl_tensor x, gamma, beta, rmean, rvar, y, smean, sinvstd, dy, dx, dgamma, dbeta;
} bn_dev;

static void bn_dev_make(clcl_context *ctx, const bn_case *b, const bn_data *d, bn_dev *t) {
    int c[1] = {b->c};
    test_tensor(ctx, &t->x, b->ndim, b->shape, d->x);
    test_tensor(ctx, &t->dy, b->ndim, b->shape, d->dy);
    test_tensor(ctx, &t->y, b->ndim, b->shape, NULL);
    test_tensor(ctx, &t->dx, b->ndim, b->shape, NULL);
    test_tensor(ctx, &t->gamma, 1, c, d->gamma);
    test_tensor(ctx, &t->beta, 1, c, d->beta);
    test_tensor(ctx, &t->rmean, 1, c, d->rmean);
    test_tensor(ctx, &t->rvar, 1, c, d->rvar);
    test_tensor(ctx, &t->smean, 1, c, NULL);
    test_tensor(ctx, &t->sinvstd, 1, c, NULL);
    test_tensor(ctx, &t->dgamma, 1, c, NULL);
    test_tensor(ctx, &t->dbeta, 1, c, NULL);
}

static void bn_dev_free(bn_dev *t) {
    clcl_tensor *all[] = {&t->x,     &t->gamma,   &t->beta, &t->rmean, &t->rvar,   &t->y,
                          &t->smean, &t->sinvstd, &t->dy,   &t->dx,    &t->dgamma, &t->dbeta};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        clcl_tensor_free(all[i]);
}

/* Training forward and backward; run 0 goes through layers.h, others pick BN_RUN. */
static void bn_run(clcl_context *ctx, clcl_pool *pool, bn_dev *t, int run) {
    if (run == 0) {
        cr_assert_eq(clcl_batchnorm_forward_train(ctx, pool, &t->x, &t->gamma, &t->beta, &t->rmean,
                                                  &t->rvar, MOMENTUM, EPS, &t->y, &t->smean,
                                                  &t->sinvstd),
                     CLCL_OK, "%s", clcl_last_error());
        cr_assert_eq(clcl_batchnorm_backward(ctx, pool, &t->x, &t->dy, &t->gamma, &t->smean,
                                             &t->sinvstd, &t->dx, &t->dgamma, &t->dbeta),
                     CLCL_OK, "%s", clcl_last_error());
        return;
    }
    cr_assert_eq(clcl_batchnorm_forward_train_run(ctx, &t->x, &t->gamma, &t->beta, &t->rmean,
                                                  &t->rvar, MOMENTUM, EPS, &t->y, &t->smean,
                                                  &t->sinvstd, run),
                 CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_batchnorm_backward_run(ctx, &t->x, &t->dy, &t->gamma, &t->smean, &t->sinvstd,
                                             &t->dx, &t->dgamma, &t->dbeta, run),
                 CLCL_OK, "%s", clcl_last_error());
}

/* Finite differences of the reference training forward in x, gamma or beta. */
typedef struct {
    const bn_case *b;
    const double *x, *gamma, *beta;
    int wrt; /* 0: x, 1: gamma, 2: beta */
} bn_fd;

static void bn_fd_forward(const double *in, double *y, void *user) {
    bn_fd *f = user;
    clcl_ref_batchnorm_train_f64(f->b->n, f->b->c, f->b->l, EPS, MOMENTUM, f->wrt == 0 ? in : f->x,
                                 f->wrt == 1 ? in : f->gamma, f->wrt == 2 ? in : f->beta, NULL,
                                 NULL, y, NULL, NULL);
}

static void bn_check_fd(bn_fd *f, double *in, size_t n, const double *proj, const float *got,
                        uint64_t *rng, const char *what) {
    size_t idx[FD_MAX];
    double grad[FD_MAX];
    float picked[FD_MAX];
    size_t k = fd_pick(n, FD_MAX, rng, idx);
    fd_gradient(bn_fd_forward, f, in, (size_t)f->b->n * f->b->c * f->b->l, proj, FD_STEP, idx, k,
                grad);
    fd_gather(got, idx, k, picked);
    expect_close(picked, grad, k, 2e-4, 1e-3, what);
}

/* Training forward, backward and eval of one case against the references, with BN_RUN
 * `run` (0: the device's default). */
static void bn_check_case_run(clcl_context *ctx, bn_case b, int run, uint64_t seed) {
    char what[160];
    int n = b.n, c = b.c, l = b.l;
    snprintf(what, sizeof what, "batchnorm %s N %d C %d L %d, run %d", b.ndim == 4 ? "2d" : "1d", n,
             c, l, run);
    bn_data d = bn_data_make(&b, seed);
    bn_dev t;
    clcl_pool *pool;
    cr_assert_eq(clcl_pool_create(ctx, &pool), CLCL_OK);
    bn_dev_make(ctx, &b, &d, &t);
    bn_run(ctx, pool, &t, run);

    /* References. */
    double *x = test_doubles(d.x, d.count), *dy = test_doubles(d.dy, d.count);
    double *gamma = test_doubles(d.gamma, (size_t)c), *beta = test_doubles(d.beta, (size_t)c);
    double *y = malloc(d.count * sizeof *y), *dx = malloc(d.count * sizeof *dx);
    double *mean = malloc(c * sizeof *mean), *invstd = malloc(c * sizeof *invstd);
    double *rmean = test_doubles(d.rmean, (size_t)c), *rvar = test_doubles(d.rvar, (size_t)c);
    double *dgamma = malloc(c * sizeof *dgamma), *dbeta = malloc(c * sizeof *dbeta);
    clcl_ref_batchnorm_train(n, c, l, EPS, MOMENTUM, d.x, d.gamma, d.beta, rmean, rvar, y, mean,
                             invstd);
    clcl_ref_batchnorm_backward(n, c, l, EPS, d.x, d.dy, d.gamma, dx, dgamma, dbeta);

    /* Device against the references. */
    struct {
        const char *name;
        clcl_tensor *got;
        const double *ref;
    } checks[] = {{"y", &t.y, y},
                  {"save_mean", &t.smean, mean},
                  {"save_invstd", &t.sinvstd, invstd},
                  {"running_mean", &t.rmean, rmean},
                  {"running_var", &t.rvar, rvar},
                  {"dx", &t.dx, dx},
                  {"dgamma", &t.dgamma, dgamma},
                  {"dbeta", &t.dbeta, dbeta}};
    float *got[8];
    for (int i = 0; i < 8; i++) {
        char part[200];
        snprintf(part, sizeof part, "%s: %s", what, checks[i].name);
        got[i] = test_read(ctx, checks[i].got);
        expect_close(got[i], checks[i].ref, checks[i].got->count, 1e-4, 1e-4, part);
    }

    /* The backward against finite differences, dy being the projection. */
    uint64_t rng = seed * 31 + 7;
    char part[200];
    bn_fd f = {&b, x, gamma, beta, 0};
    snprintf(part, sizeof part, "%s: dx by finite differences", what);
    bn_check_fd(&f, x, d.count, dy, got[5], &rng, part);
    f.wrt = 1;
    snprintf(part, sizeof part, "%s: dgamma by finite differences", what);
    bn_check_fd(&f, gamma, (size_t)c, dy, got[6], &rng, part);
    f.wrt = 2;
    snprintf(part, sizeof part, "%s: dbeta by finite differences", what);
    bn_check_fd(&f, beta, (size_t)c, dy, got[7], &rng, part);

    /* Eval mode with the updated running statistics (the device's, checked above). */
    cr_assert_eq(
        clcl_batchnorm_forward_eval(ctx, &t.x, &t.gamma, &t.beta, &t.rmean, &t.rvar, EPS, &t.y),
        CLCL_OK, "%s", clcl_last_error());
    clcl_ref_batchnorm_eval(n, c, l, EPS, d.x, d.gamma, d.beta, got[3], got[4], y);
    float *gy = test_read(ctx, &t.y);
    snprintf(part, sizeof part, "%s: eval y", what);
    expect_close(gy, y, d.count, 1e-4, 1e-4, part);

    for (int i = 0; i < 8; i++)
        free(got[i]);
    free(gy), free(x), free(dy), free(gamma), free(beta), free(y), free(dx), free(mean);
    free(invstd), free(rmean), free(rvar), free(dgamma), free(dbeta);
    bn_dev_free(&t);
    bn_data_free(&d);
    clcl_pool_free(pool);
}

static void bn_check_case(clcl_context *ctx, bn_case b, uint64_t seed) {
    bn_check_case_run(ctx, b, 0, seed);
}

Test(batchnorm, two_d_odd_channels_7x7_batch_3) {
    clcl_context *ctx = test_context();
    bn_check_case(ctx, bn_2d(3, 5, 7, 7), 1);
    bn_check_case(ctx, bn_2d(2, 3, 1, 1), 2);
    bn_check_case(ctx, bn_2d(4, 3, 33, 31), 3); /* more values than work-items per channel */
    clcl_context_free(ctx);
}

Test(batchnorm, one_d) {
    clcl_context *ctx = test_context();
    bn_check_case(ctx, bn_1d(3, 7), 4);
    bn_check_case(ctx, bn_1d(300, 5), 5);
    clcl_context_free(ctx);
}

/* Both value layouts (interleaved, GPUs' default; runs of 64, CPUs') and an odd run. */
Test(batchnorm, runs_of_1_7_and_64_values) {
    clcl_context *ctx = test_context();
    int runs[3] = {1, 7, 64};
    for (int i = 0; i < 3; i++) {
        bn_check_case_run(ctx, bn_2d(3, 5, 7, 7), runs[i], 20 + i);
        bn_check_case_run(ctx, bn_2d(4, 3, 33, 31), runs[i], 23 + i);
        bn_check_case_run(ctx, bn_1d(300, 5), runs[i], 26 + i);
    }
    clcl_context_free(ctx);
}

Test(batchnorm, gpu_shaped_limits) {
    setenv("CLCL_MAX_WORK_GROUP", "256", 1);
    setenv("CLCL_MAX_LOCAL_MEM", "32768", 1);
    clcl_context *ctx = test_context();
    bn_check_case(ctx, bn_2d(3, 5, 7, 7), 6);
    bn_check_case(ctx, bn_1d(3, 7), 7);
    clcl_context_free(ctx);
    setenv("CLCL_MAX_WORK_GROUP", "96", 1); /* not a power of two */
    setenv("CLCL_MAX_LOCAL_MEM", "1024", 1);
    ctx = test_context();
    bn_check_case(ctx, bn_2d(3, 5, 9, 9), 8);
    clcl_context_free(ctx);
}

/* The same inputs give the same bits: outputs, statistics and gradients, twice over. */
Test(batchnorm, same_bits_every_run) {
    clcl_context *ctx = test_context();
    bn_case b = bn_2d(8, 16, 32, 32);
    bn_data d = bn_data_make(&b, 9);
    clcl_pool *pool;
    cr_assert_eq(clcl_pool_create(ctx, &pool), CLCL_OK);
    float *first[6];
    for (int run = 0; run < 2; run++) {
        bn_dev t;
        bn_dev_make(ctx, &b, &d, &t);
        bn_run(ctx, pool, &t, 0);
        clcl_tensor *outs[6] = {&t.y, &t.smean, &t.sinvstd, &t.rvar, &t.dx, &t.dgamma};
        for (int i = 0; i < 6; i++) {
            float *got = test_read(ctx, outs[i]);
            if (run == 0)
                first[i] = got;
            else {
                cr_expect_eq(memcmp(got, first[i], outs[i]->count * sizeof *got), 0,
                             "output %d differs between two runs", i);
                free(got);
                free(first[i]);
            }
        }
        bn_dev_free(&t);
    }
    bn_data_free(&d);
    clcl_pool_free(pool);
    clcl_context_free(ctx);
}

Test(batchnorm, bad_shapes_are_refused_with_the_shapes) {
    clcl_context *ctx = test_context();
    bn_case b = bn_2d(3, 5, 7, 7);
    bn_data d = bn_data_make(&b, 10);
    bn_dev t;
    bn_dev_make(ctx, &b, &d, &t);
    clcl_tensor c4, x3, one, y_bad;
    test_tensor(ctx, &c4, 1, (int[]){4}, NULL);
    test_tensor(ctx, &x3, 3, (int[]){3, 5, 49}, NULL);
    test_tensor(ctx, &one, 2, (int[]){1, 5}, NULL);
    test_tensor(ctx, &y_bad, 4, (int[]){3, 5, 7, 6}, NULL);

    cr_expect_eq(clcl_batchnorm_forward_train(ctx, NULL, &t.x, &c4, &t.beta, &t.rmean, &t.rvar,
                                              0.1f, 1e-5f, &t.y, &t.smean, &t.sinvstd),
                 CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "gamma (4)") && strstr(clcl_last_error(), "expected (5)"),
              "%s", clcl_last_error());
    cr_expect_eq(clcl_batchnorm_forward_train(ctx, NULL, &x3, &t.gamma, &t.beta, &t.rmean, &t.rvar,
                                              0.1f, 1e-5f, &t.y, &t.smean, &t.sinvstd),
                 CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "x (3, 5, 49)"), "%s", clcl_last_error());
    cr_expect_eq(clcl_batchnorm_forward_train(ctx, NULL, &t.x, &t.gamma, &t.beta, &t.rmean, &t.rvar,
                                              0.1f, 1e-5f, &y_bad, &t.smean, &t.sinvstd),
                 CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "y (3, 5, 7, 6)"), "%s", clcl_last_error());
    cr_expect_eq(clcl_batchnorm_forward_train(ctx, NULL, &one, &t.gamma, &t.beta, &t.rmean, &t.rvar,
                                              0.1f, 1e-5f, &one, &t.smean, &t.sinvstd),
                 CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "more than one value"), "%s", clcl_last_error());
    cr_expect_eq(
        clcl_batchnorm_forward_eval(ctx, &t.x, &t.gamma, &t.beta, &t.rmean, &c4, 1e-5f, &t.y),
        CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "running_var (4)"), "%s", clcl_last_error());
    cr_expect_eq(clcl_batchnorm_backward(ctx, NULL, &t.x, &y_bad, &t.gamma, &t.smean, &t.sinvstd,
                                         &t.dx, &t.dgamma, &t.dbeta),
                 CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "dy (3, 5, 7, 6)"), "%s", clcl_last_error());
    cr_expect_eq(clcl_batchnorm_backward(ctx, NULL, &t.x, &t.dy, &t.gamma, &t.smean, &t.sinvstd,
                                         &t.dx, &c4, &t.dbeta),
                 CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "dgamma (4)"), "%s", clcl_last_error());

    clcl_tensor_free(&c4), clcl_tensor_free(&x3), clcl_tensor_free(&one);
    clcl_tensor_free(&y_bad);
    bn_dev_free(&t);
    bn_data_free(&d);
    clcl_context_free(ctx);
}
