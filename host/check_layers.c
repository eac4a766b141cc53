/* `clcl check`'s rows for the tensor kernels, the GEMM backends and the layers, each against
 * the double-precision references of host/reference_layers.c. Shapes are small and awkward:
 * no size is a multiple of a work-group, GEMM operands sit at offsets inside wider rows.
 *
 * Tolerances: a float32 result of a sum of k terms of size ~1 is within a few k * 6e-8 of
 * the exact value; the stated atol and rtol leave about ten times that. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "check_private.h"
#include "clcl/gemm.h"
#include "clcl/layers.h"
#include "clcl/reference.h"

#define BN_EPS      1e-5
#define BN_MOMENTUM 0.1

/* ---- element-wise ------------------------------------------------------------------------ */

/* y = 3 (1.5 - 0.75 x) through fill, axpy and scale. */
static clcl_status check_elementwise(check_env *e, clcl_check_row *row, const void *arg) {
    const int n = 4099;
    float *x;
    double *ref;
    clcl_tensor tx, ty;
    CLCL_TRY(check_random(e, n, -2, 2, &x));
    CLCL_TRY(check_upload(e, &tx, 1, &n, x));
    CLCL_TRY(check_tensor(e, &ty, 1, &n));
    CLCL_TRY(clcl_tensor_fill(e->ctx, &ty, 1.5f));
    CLCL_TRY(clcl_tensor_axpy(e->ctx, -0.75f, &tx, &ty));
    CLCL_TRY(clcl_tensor_scale(e->ctx, 3.0f, &ty));
    CLCL_TRY(check_doubles(e, n, &ref));
    for (int i = 0; i < n; i++)
        ref[i] = 3.0 * (1.5 - 0.75 * x[i]);
    return check_compare_tensor(e, row, &ty, ref);
}

/* ---- GEMM -------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int own; /* 0: clcl_gemm_clblast, 1: clcl_gemm_own with its defaults */
    int trans_a, trans_b, m, n, k;
} gemm_case;

static const gemm_case GEMMS[] = {
    {"gemm clblast NN 37x29x43", 0, 0, 0, 37, 29, 43},
    {"gemm clblast TN 1x65x17", 0, 1, 0, 1, 65, 17},
    {"gemm clblast NT 64x1x130", 0, 0, 1, 64, 1, 130},
    {"gemm clblast TT 33x17x1", 0, 1, 1, 33, 17, 1},
    {"gemm own NN 37x29x43", 1, 0, 0, 37, 29, 43},
    {"gemm own TN 1x65x17", 1, 1, 0, 1, 65, 17},
    {"gemm own NT 64x1x130", 1, 0, 1, 64, 1, 130},
    {"gemm own TT 33x17x1", 1, 1, 1, 33, 17, 1},
};

/* C = 0.7 op(A) op(B) - 0.4 C with every operand at an offset inside wider rows; the whole
 * of C's buffer is compared, so a write outside the product's block fails too. */
static clcl_status check_gemm(check_env *e, clcl_check_row *row, const void *arg) {
    const gemm_case *g = arg;
    int rows_a = g->trans_a ? g->k : g->m, cols_a = g->trans_a ? g->m : g->k;
    int rows_b = g->trans_b ? g->n : g->k, cols_b = g->trans_b ? g->k : g->n;
    size_t lda = (size_t)cols_a + 3, ldb = (size_t)cols_b + 1, ldc = (size_t)g->n + 5;
    int size_a = (int)(5 + rows_a * lda), size_b = (int)(3 + rows_b * ldb);
    int size_c = (int)(7 + g->m * ldc + 4);
    float *a, *b, *c0;
    double *ref, *block;
    clcl_tensor ta, tb, tc;

    CLCL_TRY(check_random(e, (size_t)size_a, -1, 1, &a));
    CLCL_TRY(check_random(e, (size_t)size_b, -1, 1, &b));
    CLCL_TRY(check_random(e, (size_t)size_c, -1, 1, &c0));
    CLCL_TRY(check_upload(e, &ta, 1, &size_a, a));
    CLCL_TRY(check_upload(e, &tb, 1, &size_b, b));
    CLCL_TRY(check_upload(e, &tc, 1, &size_c, c0));
    clcl_gemm_args args = {.trans_a = g->trans_a,
                           .trans_b = g->trans_b,
                           .m = g->m,
                           .n = g->n,
                           .k = g->k,
                           .alpha = 0.7f,
                           .beta = -0.4f,
                           .a = ta.buf,
                           .a_offset = 5,
                           .lda = lda,
                           .b = tb.buf,
                           .b_offset = 3,
                           .ldb = ldb,
                           .c = tc.buf,
                           .c_offset = 7,
                           .ldc = ldc};
    CLCL_TRY(g->own ? clcl_gemm_own(e->ctx, NULL, &args) : clcl_gemm_clblast(e->ctx, &args));

    /* The reference: C's buffer as it was, the block replaced by the product. */
    CLCL_TRY(check_doubles(e, (size_t)size_c, &ref));
    CLCL_TRY(check_doubles(e, (size_t)g->m * g->n, &block));
    for (int i = 0; i < size_c; i++)
        ref[i] = c0[i];
    clcl_ref_gemm(g->trans_a, g->trans_b, g->m, g->n, g->k, 0.7f, a + 5, lda, b + 3, ldb, -0.4f,
                  c0 + 7, ldc, block);
    for (int i = 0; i < g->m; i++)
        memcpy(ref + 7 + i * ldc, block + (size_t)i * g->n, (size_t)g->n * sizeof *ref);
    return check_compare_tensor(e, row, &tc, ref);
}

/* ---- convolution ------------------------------------------------------------------------- */

typedef enum { CONV_FORWARD, CONV_DATA, CONV_WEIGHTS } conv_direction;

typedef struct {
    const char *name;
    conv_direction dir;
    clcl_ref_conv_shape g;
} conv_case;

static const conv_case CONVS[] = {
    {"conv2d 3x3 s2 p1 forward", CONV_FORWARD, {3, 5, 9, 7, 6, 3, 3, 2, 1, 0, 0}},
    {"conv2d 3x3 s2 p1 backward data", CONV_DATA, {3, 5, 9, 7, 6, 3, 3, 2, 1, 0, 0}},
    {"conv2d 3x3 s2 p1 backward weights", CONV_WEIGHTS, {3, 5, 9, 7, 6, 3, 3, 2, 1, 0, 0}},
    {"conv2d 1x1 s1 forward", CONV_FORWARD, {2, 7, 5, 5, 4, 1, 1, 1, 0, 0, 0}},
    {"conv2d 1x1 s1 backward data", CONV_DATA, {2, 7, 5, 5, 4, 1, 1, 1, 0, 0, 0}},
    {"conv2d 1x1 s1 backward weights", CONV_WEIGHTS, {2, 7, 5, 5, 4, 1, 1, 1, 0, 0, 0}},
    {"conv2d 1x1 s2 backward weights", CONV_WEIGHTS, {3, 6, 7, 7, 8, 1, 1, 2, 0, 0, 0}},
    {"conv2d 7x7 s2 p3 forward", CONV_FORWARD, {2, 3, 11, 13, 5, 7, 7, 2, 3, 0, 0}},
};

static clcl_status check_conv(check_env *e, clcl_check_row *row, const void *arg) {
    const conv_case *cc = arg;
    clcl_ref_conv_shape g = cc->g;
    clcl_ref_conv_shape_init(&g);
    int xs[4] = {g.n, g.c, g.h, g.w}, ws[4] = {g.k, g.c, g.r, g.s}, ys[4] = {g.n, g.k, g.p, g.q};
    size_t nx = (size_t)g.n * g.c * g.h * g.w, nw = (size_t)g.k * g.c * g.r * g.s;
    size_t ny = (size_t)g.n * g.k * g.p * g.q;
    float *x, *w, *dy;
    double *ref;
    clcl_tensor tx, tw, ty, out;

    CLCL_TRY(check_random(e, nx, -1, 1, &x));
    CLCL_TRY(check_random(e, nw, -0.5f, 0.5f, &w));
    CLCL_TRY(check_random(e, ny, -1, 1, &dy));
    CLCL_TRY(check_upload(e, &tx, 4, xs, x));
    CLCL_TRY(check_upload(e, &tw, 4, ws, w));
    CLCL_TRY(check_upload(e, &ty, 4, ys, dy));
    if (cc->dir == CONV_FORWARD) {
        CLCL_TRY(check_tensor(e, &out, 4, ys));
        CLCL_TRY(clcl_conv2d_forward(e->ctx, e->pool, &tx, &tw, g.stride, g.pad, &out));
        CLCL_TRY(check_doubles(e, ny, &ref));
        clcl_ref_conv2d_forward(&g, x, w, ref);
    } else if (cc->dir == CONV_DATA) {
        CLCL_TRY(check_tensor(e, &out, 4, xs));
        CLCL_TRY(clcl_conv2d_backward_data(e->ctx, e->pool, &ty, &tw, g.stride, g.pad, &out));
        CLCL_TRY(check_doubles(e, nx, &ref));
        clcl_ref_conv2d_backward_data(&g, dy, w, ref);
    } else {
        CLCL_TRY(check_tensor(e, &out, 4, ws));
        CLCL_TRY(clcl_conv2d_backward_weights(e->ctx, e->pool, &tx, &ty, g.stride, g.pad, &out));
        CLCL_TRY(check_doubles(e, nw, &ref));
        clcl_ref_conv2d_backward_weights(&g, x, dy, ref);
    }
    return check_compare_tensor(e, row, &out, ref);
}

/* ---- batch normalization ----------------------------------------------------------------- */

typedef enum { BN_TRAIN, BN_EVAL, BN_BACKWARD } bn_kind;

typedef struct {
    int ndim;
    int shape[4];
    bn_kind kind;
} bn_case;

static const bn_case BN_TRAIN_2D = {4, {3, 5, 4, 3}, BN_TRAIN};
static const bn_case BN_EVAL_2D = {4, {3, 5, 4, 3}, BN_EVAL};
static const bn_case BN_BACKWARD_2D = {4, {3, 5, 4, 3}, BN_BACKWARD};
static const bn_case BN_TRAIN_1D = {2, {6, 7, 1, 1}, BN_TRAIN};
static const bn_case BN_BACKWARD_1D = {2, {6, 7, 1, 1}, BN_BACKWARD};

/* Inputs of a batchnorm check: x, gamma, beta and running statistics, on both sides. */
typedef struct {
    int n, c, l;
    size_t count;
    float *x, *gamma, *beta, *rmean, *rvar;
    clcl_tensor tx, tg, tb, tm, tv, ty;
} bn_inputs;

static clcl_status bn_prepare(check_env *e, const bn_case *bc, bn_inputs *in) {
    in->n = bc->shape[0];
    in->c = bc->shape[1];
    in->l = bc->ndim == 4 ? bc->shape[2] * bc->shape[3] : 1;
    in->count = (size_t)in->n * in->c * in->l;
    CLCL_TRY(check_random(e, in->count, -2, 3, &in->x));
    CLCL_TRY(check_random(e, (size_t)in->c, 0.5f, 1.5f, &in->gamma));
    CLCL_TRY(check_random(e, (size_t)in->c, -0.5f, 0.5f, &in->beta));
    CLCL_TRY(check_random(e, (size_t)in->c, -0.1f, 0.1f, &in->rmean));
    CLCL_TRY(check_random(e, (size_t)in->c, 0.5f, 1.5f, &in->rvar));
    CLCL_TRY(check_upload(e, &in->tx, bc->ndim, bc->shape, in->x));
    CLCL_TRY(check_upload(e, &in->tg, 1, &in->c, in->gamma));
    CLCL_TRY(check_upload(e, &in->tb, 1, &in->c, in->beta));
    CLCL_TRY(check_upload(e, &in->tm, 1, &in->c, in->rmean));
    CLCL_TRY(check_upload(e, &in->tv, 1, &in->c, in->rvar));
    return check_tensor(e, &in->ty, bc->ndim, bc->shape);
}

/* Training forward: y, the running statistics and the saved ones. */
static clcl_status bn_train(check_env *e, clcl_check_row *row, bn_inputs *in) {
    double *y, *rm, *rv, *sm, *si;
    clcl_tensor tsm, tsi;
    CLCL_TRY(check_tensor(e, &tsm, 1, &in->c));
    CLCL_TRY(check_tensor(e, &tsi, 1, &in->c));
    CLCL_TRY(clcl_batchnorm_forward_train(e->ctx, e->pool, &in->tx, &in->tg, &in->tb, &in->tm,
                                          &in->tv, (float)BN_MOMENTUM, (float)BN_EPS, &in->ty, &tsm,
                                          &tsi));
    CLCL_TRY(check_doubles(e, in->count, &y));
    CLCL_TRY(check_doubles(e, (size_t)in->c, &rm));
    CLCL_TRY(check_doubles(e, (size_t)in->c, &rv));
    CLCL_TRY(check_doubles(e, (size_t)in->c, &sm));
    CLCL_TRY(check_doubles(e, (size_t)in->c, &si));
    for (int ch = 0; ch < in->c; ch++) {
        rm[ch] = in->rmean[ch];
        rv[ch] = in->rvar[ch];
    }
    clcl_ref_batchnorm_train(in->n, in->c, in->l, BN_EPS, BN_MOMENTUM, in->x, in->gamma, in->beta,
                             rm, rv, y, sm, si);
    CLCL_TRY(check_compare_tensor(e, row, &in->ty, y));
    CLCL_TRY(check_compare_tensor(e, row, &in->tm, rm));
    CLCL_TRY(check_compare_tensor(e, row, &in->tv, rv));
    CLCL_TRY(check_compare_tensor(e, row, &tsm, sm));
    return check_compare_tensor(e, row, &tsi, si);
}

/* Backward from the reference's saved statistics: dx, dgamma, dbeta. */
static clcl_status bn_backward(check_env *e, clcl_check_row *row, const bn_case *bc,
                               const bn_inputs *in) {
    float *dy, *sm, *si;
    double *y, *rm, *rv, *dsm, *dsi, *dx, *dg, *db;
    clcl_tensor tdy, tsm, tsi, tdx, tdg, tdb;
    CLCL_TRY(check_random(e, in->count, -1, 1, &dy));
    CLCL_TRY(check_doubles(e, in->count, &y));
    CLCL_TRY(check_doubles(e, (size_t)in->c, &rm));
    CLCL_TRY(check_doubles(e, (size_t)in->c, &rv));
    CLCL_TRY(check_doubles(e, (size_t)in->c, &dsm));
    CLCL_TRY(check_doubles(e, (size_t)in->c, &dsi));
    clcl_ref_batchnorm_train(in->n, in->c, in->l, BN_EPS, BN_MOMENTUM, in->x, in->gamma, in->beta,
                             rm, rv, y, dsm, dsi);
    CLCL_TRY(check_floats(e, (size_t)in->c, &sm));
    CLCL_TRY(check_floats(e, (size_t)in->c, &si));
    for (int ch = 0; ch < in->c; ch++) {
        sm[ch] = (float)dsm[ch];
        si[ch] = (float)dsi[ch];
    }
    CLCL_TRY(check_upload(e, &tdy, bc->ndim, bc->shape, dy));
    CLCL_TRY(check_upload(e, &tsm, 1, &in->c, sm));
    CLCL_TRY(check_upload(e, &tsi, 1, &in->c, si));
    CLCL_TRY(check_tensor(e, &tdx, bc->ndim, bc->shape));
    CLCL_TRY(check_tensor(e, &tdg, 1, &in->c));
    CLCL_TRY(check_tensor(e, &tdb, 1, &in->c));
    CLCL_TRY(clcl_batchnorm_backward(e->ctx, e->pool, &in->tx, &tdy, &in->tg, &tsm, &tsi, &tdx,
                                     &tdg, &tdb));
    CLCL_TRY(check_doubles(e, in->count, &dx));
    CLCL_TRY(check_doubles(e, (size_t)in->c, &dg));
    CLCL_TRY(check_doubles(e, (size_t)in->c, &db));
    clcl_ref_batchnorm_backward(in->n, in->c, in->l, BN_EPS, in->x, dy, in->gamma, dx, dg, db);
    CLCL_TRY(check_compare_tensor(e, row, &tdx, dx));
    CLCL_TRY(check_compare_tensor(e, row, &tdg, dg));
    return check_compare_tensor(e, row, &tdb, db);
}

static clcl_status check_batchnorm(check_env *e, clcl_check_row *row, const void *arg) {
    const bn_case *bc = arg;
    bn_inputs in;
    CLCL_TRY(bn_prepare(e, bc, &in));
    if (bc->kind == BN_TRAIN)
        return bn_train(e, row, &in);
    if (bc->kind == BN_BACKWARD)
        return bn_backward(e, row, bc, &in);

    double *ref;
    CLCL_TRY(clcl_batchnorm_forward_eval(e->ctx, &in.tx, &in.tg, &in.tb, &in.tm, &in.tv,
                                         (float)BN_EPS, &in.ty));
    CLCL_TRY(check_doubles(e, in.count, &ref));
    clcl_ref_batchnorm_eval(in.n, in.c, in.l, BN_EPS, in.x, in.gamma, in.beta, in.rmean, in.rvar,
                            ref);
    return check_compare_tensor(e, row, &in.ty, ref);
}

/* ---- ReLU and add ------------------------------------------------------------------------ */

static const int ACT_SHAPE[4] = {3, 5, 7, 11};

/* relu_forward of program "layers" built with -DCLCL_BREAK=1 (CLCL_CHECK_BREAK=relu). */
static clcl_status relu_broken(check_env *e, const clcl_tensor *x, clcl_tensor *y) {
    cl_kernel k;
    size_t n = x->count;
    CLCL_TRY(clcl_context_kernel(e->ctx, "layers", "relu_forward", "-DCLCL_BREAK=1", &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(x->buf), CLCL_ARG_MEM(y->buf), CLCL_ARG_INT((int)n)));
    return clcl_launch(e->ctx, k, 1, &n, NULL);
}

static clcl_status check_relu_forward(check_env *e, clcl_check_row *row, const void *arg) {
    size_t n = clcl_shape_count(4, ACT_SHAPE);
    float *x;
    double *ref;
    clcl_tensor tx, ty;
    CLCL_TRY(check_random(e, n, -1, 1, &x));
    CLCL_TRY(check_upload(e, &tx, 4, ACT_SHAPE, x));
    CLCL_TRY(check_tensor(e, &ty, 4, ACT_SHAPE));
    if (check_broken(e, "relu")) {
        check_note(row, "CLCL_CHECK_BREAK=relu: relu_forward built with -DCLCL_BREAK=1");
        CLCL_TRY(relu_broken(e, &tx, &ty));
    } else {
        CLCL_TRY(clcl_relu_forward(e->ctx, &tx, &ty));
    }
    CLCL_TRY(check_doubles(e, n, &ref));
    for (size_t i = 0; i < n; i++)
        ref[i] = x[i] > 0 ? x[i] : 0.0;
    return check_compare_tensor(e, row, &ty, ref);
}

static clcl_status check_relu_backward(check_env *e, clcl_check_row *row, const void *arg) {
    size_t n = clcl_shape_count(4, ACT_SHAPE);
    float *y, *dy;
    double *ref;
    clcl_tensor ty, tdy, tdx;
    CLCL_TRY(check_random(e, n, -1, 1, &y));
    CLCL_TRY(check_random(e, n, -1, 1, &dy));
    for (size_t i = 0; i < n; i++)
        y[i] = y[i] > 0 ? y[i] : 0.0f; /* a forward's output */
    CLCL_TRY(check_upload(e, &ty, 4, ACT_SHAPE, y));
    CLCL_TRY(check_upload(e, &tdy, 4, ACT_SHAPE, dy));
    CLCL_TRY(check_tensor(e, &tdx, 4, ACT_SHAPE));
    CLCL_TRY(clcl_relu_backward(e->ctx, &ty, &tdy, &tdx));
    CLCL_TRY(check_doubles(e, n, &ref));
    for (size_t i = 0; i < n; i++)
        ref[i] = y[i] > 0 ? dy[i] : 0.0;
    return check_compare_tensor(e, row, &tdx, ref);
}

static clcl_status check_add(check_env *e, clcl_check_row *row, const void *arg) {
    size_t n = clcl_shape_count(4, ACT_SHAPE);
    float *a, *b;
    double *ref;
    clcl_tensor ta, tb, ty;
    CLCL_TRY(check_random(e, n, -1, 1, &a));
    CLCL_TRY(check_random(e, n, -1, 1, &b));
    CLCL_TRY(check_upload(e, &ta, 4, ACT_SHAPE, a));
    CLCL_TRY(check_upload(e, &tb, 4, ACT_SHAPE, b));
    CLCL_TRY(check_tensor(e, &ty, 4, ACT_SHAPE));
    CLCL_TRY(clcl_add_forward(e->ctx, &ta, &tb, &ty));
    CLCL_TRY(check_doubles(e, n, &ref));
    for (size_t i = 0; i < n; i++)
        ref[i] = (double)a[i] + b[i];
    return check_compare_tensor(e, row, &ty, ref);
}

/* ---- pooling ----------------------------------------------------------------------------- */

static const int MAXPOOL_X[4] = {2, 3, 9, 8};
static const int AVGPOOL_X[4] = {3, 5, 3, 5};

static clcl_status check_maxpool(check_env *e, clcl_check_row *row, const void *arg) {
    const int backward = arg != NULL;
    const int nc = MAXPOOL_X[0] * MAXPOOL_X[1], h = MAXPOOL_X[2], w = MAXPOOL_X[3];
    int ys[4] = {MAXPOOL_X[0], MAXPOOL_X[1], clcl_conv2d_out_size(h, 3, 2, 1),
                 clcl_conv2d_out_size(w, 3, 2, 1)};
    size_t nx = clcl_shape_count(4, MAXPOOL_X), ny = clcl_shape_count(4, ys);
    float *x, *dy;
    double *ref;
    clcl_tensor tx, tdy, out;
    CLCL_TRY(check_random(e, nx, -1, 1, &x));
    CLCL_TRY(check_random(e, ny, -1, 1, &dy));
    CLCL_TRY(check_upload(e, &tx, 4, MAXPOOL_X, x));
    if (!backward) {
        CLCL_TRY(check_tensor(e, &out, 4, ys));
        CLCL_TRY(clcl_maxpool_forward(e->ctx, &tx, &out));
        CLCL_TRY(check_doubles(e, ny, &ref));
        clcl_ref_maxpool_forward(nc, h, w, x, ref);
    } else {
        CLCL_TRY(check_upload(e, &tdy, 4, ys, dy));
        CLCL_TRY(check_tensor(e, &out, 4, MAXPOOL_X));
        CLCL_TRY(clcl_maxpool_backward(e->ctx, &tx, &tdy, &out));
        CLCL_TRY(check_doubles(e, nx, &ref));
        clcl_ref_maxpool_backward(nc, h, w, x, dy, ref);
    }
    return check_compare_tensor(e, row, &out, ref);
}

static clcl_status check_avgpool(check_env *e, clcl_check_row *row, const void *arg) {
    const int backward = arg != NULL;
    const int nc = AVGPOOL_X[0] * AVGPOOL_X[1], l = AVGPOOL_X[2] * AVGPOOL_X[3];
    const int ys[2] = {AVGPOOL_X[0], AVGPOOL_X[1]};
    float *x, *dy;
    double *ref;
    clcl_tensor tx, tdy, out;
    CLCL_TRY(check_random(e, (size_t)nc * l, -1, 1, &x));
    CLCL_TRY(check_random(e, (size_t)nc, -1, 1, &dy));
    if (!backward) {
        CLCL_TRY(check_upload(e, &tx, 4, AVGPOOL_X, x));
        CLCL_TRY(check_tensor(e, &out, 2, ys));
        CLCL_TRY(clcl_avgpool_forward(e->ctx, &tx, &out));
        CLCL_TRY(check_doubles(e, (size_t)nc, &ref));
        clcl_ref_avgpool_forward(nc, l, x, ref);
    } else {
        CLCL_TRY(check_upload(e, &tdy, 2, ys, dy));
        CLCL_TRY(check_tensor(e, &out, 4, AVGPOOL_X));
        CLCL_TRY(clcl_avgpool_backward(e->ctx, &tdy, &out));
        CLCL_TRY(check_doubles(e, (size_t)nc * l, &ref));
        clcl_ref_avgpool_backward(nc, l, dy, ref);
    }
    return check_compare_tensor(e, row, &out, ref);
}

/* ---- linear ------------------------------------------------------------------------------ */

typedef enum { LINEAR_BIAS, LINEAR_NO_BIAS, LINEAR_BACKWARD } linear_kind;

static const linear_kind LINEAR_KINDS[] = {LINEAR_BIAS, LINEAR_NO_BIAS, LINEAR_BACKWARD};

/* y (5, 7) = x (5, 13) w (7, 13)^T + b; backward: dx, dw, db from dy (5, 7). */
static clcl_status check_linear(check_env *e, clcl_check_row *row, const void *arg) {
    const linear_kind kind = *(const linear_kind *)arg;
    const int n = 5, in = 13, out = 7;
    float *x, *w, *b, *dy;
    double *ref, *dx, *dw, *db;
    clcl_tensor tx, tw, tb, ty, tdx, tdw, tdb;
    CLCL_TRY(check_random(e, (size_t)n * in, -1, 1, &x));
    CLCL_TRY(check_random(e, (size_t)out * in, -0.5f, 0.5f, &w));
    CLCL_TRY(check_random(e, (size_t)out, -1, 1, &b));
    CLCL_TRY(check_random(e, (size_t)n * out, -1, 1, &dy));
    CLCL_TRY(check_upload(e, &tx, 2, (int[]){n, in}, x));
    CLCL_TRY(check_upload(e, &tw, 2, (int[]){out, in}, w));
    CLCL_TRY(check_upload(e, &tb, 1, &out, b));
    if (kind != LINEAR_BACKWARD) {
        CLCL_TRY(check_tensor(e, &ty, 2, (int[]){n, out}));
        CLCL_TRY(clcl_linear_forward(e->ctx, &tx, &tw, kind == LINEAR_BIAS ? &tb : NULL, &ty));
        CLCL_TRY(check_doubles(e, (size_t)n * out, &ref));
        clcl_ref_gemm(0, 1, n, out, in, 1.0, x, (size_t)in, w, (size_t)in, 0.0, NULL, 0, ref);
        for (int i = 0; i < n * out && kind == LINEAR_BIAS; i++)
            ref[i] += b[i % out];
        return check_compare_tensor(e, row, &ty, ref);
    }
    CLCL_TRY(check_upload(e, &ty, 2, (int[]){n, out}, dy));
    CLCL_TRY(check_tensor(e, &tdx, 2, (int[]){n, in}));
    CLCL_TRY(check_tensor(e, &tdw, 2, (int[]){out, in}));
    CLCL_TRY(check_tensor(e, &tdb, 1, &out));
    CLCL_TRY(clcl_linear_backward(e->ctx, e->pool, &tx, &tw, &ty, &tdx, &tdw, &tdb));
    CLCL_TRY(check_doubles(e, (size_t)n * in, &dx));
    CLCL_TRY(check_doubles(e, (size_t)out * in, &dw));
    CLCL_TRY(check_doubles(e, (size_t)out, &db));
    clcl_ref_gemm(0, 0, n, in, out, 1.0, dy, (size_t)out, w, (size_t)in, 0.0, NULL, 0, dx);
    clcl_ref_gemm(1, 0, out, in, n, 1.0, dy, (size_t)out, x, (size_t)in, 0.0, NULL, 0, dw);
    for (int i = 0; i < n * out; i++)
        db[i % out] += dy[i];
    CLCL_TRY(check_compare_tensor(e, row, &tdx, dx));
    CLCL_TRY(check_compare_tensor(e, row, &tdw, dw));
    return check_compare_tensor(e, row, &tdb, db);
}

/* ---- the rows ---------------------------------------------------------------------------- */

void check_layers_rows(check_env *e) {
    check_row(e, "tensor fill, axpy, scale", 1e-6, 1e-6, check_elementwise, NULL);
    for (size_t i = 0; i < sizeof GEMMS / sizeof *GEMMS; i++)
        check_row(e, GEMMS[i].name, 2e-5, 2e-5, check_gemm, &GEMMS[i]);
    for (size_t i = 0; i < sizeof CONVS / sizeof *CONVS; i++)
        check_row(e, CONVS[i].name, 2e-5, 1e-4, check_conv, &CONVS[i]);
    check_row(e, "batchnorm2d train", 2e-5, 1e-4, check_batchnorm, &BN_TRAIN_2D);
    check_row(e, "batchnorm2d eval", 2e-5, 1e-4, check_batchnorm, &BN_EVAL_2D);
    check_row(e, "batchnorm2d backward", 2e-5, 1e-4, check_batchnorm, &BN_BACKWARD_2D);
    check_row(e, "batchnorm1d train", 2e-5, 1e-4, check_batchnorm, &BN_TRAIN_1D);
    check_row(e, "batchnorm1d backward", 2e-5, 1e-4, check_batchnorm, &BN_BACKWARD_1D);
    check_row(e, "relu forward", 0, 0, check_relu_forward, NULL);
    check_row(e, "relu backward", 0, 0, check_relu_backward, NULL);
    check_row(e, "add", 0, 6e-8, check_add, NULL);
    check_row(e, "maxpool forward", 0, 0, check_maxpool, NULL);
    check_row(e, "maxpool backward", 1e-6, 1e-6, check_maxpool, "backward");
    check_row(e, "avgpool forward", 1e-6, 1e-6, check_avgpool, NULL);
    check_row(e, "avgpool backward", 1e-7, 1e-6, check_avgpool, "backward");
    check_row(e, "linear forward", 1e-5, 1e-5, check_linear, &LINEAR_KINDS[0]);
    check_row(e, "linear forward, no bias", 1e-5, 1e-5, check_linear, &LINEAR_KINDS[1]);
    check_row(e, "linear backward", 1e-5, 1e-5, check_linear, &LINEAR_KINDS[2]);
}
