/* ReLU, add, max pool 3x3/2/1, global average pool and linear (with and without bias):
 * forward and backward against double-precision C references, backward against central
 * finite differences of the reference forward, in-place use where the header allows it,
 * and bad shapes.
 *
 * Tolerances: |got - ref| <= 1e-5 + 1e-5 |ref| for the element-wise layers and pools
 * (one or a few fp32 operations per element), 1e-4 + 1e-4 |ref| for linear (fp32 sums of
 * up to 37 products) and for every finite-difference check (step 1e-4). Max pool and ReLU
 * inputs are kept apart (distinct values, |x| >= 0.1) so that no step crosses a kink. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clcl/layers.h"
#include "support.h"
#include "support_layers.h"

#define FD_STEP 1e-4
#define FD_MAX  48

/* A layer's reference forward for finite differences: in -> out, with fixed extras. */
typedef struct {
    int kind; /* which layer */
    int a, b, c, d;
    const double *x, *w, *bias; /* operands held fixed */
} layer_fd;

enum { FD_RELU, FD_MAXPOOL, FD_AVGPOOL, FD_LINEAR_X, FD_LINEAR_W, FD_LINEAR_B };

static void layer_forward(const double *in, double *out, void *user) {
    layer_fd *f = user;
    size_t n = (size_t)f->a * f->b;
    switch (f->kind) {
        case FD_RELU:
            for (size_t i = 0; i < n; i++)
                out[i] = in[i] > 0 ? in[i] : 0;
            break;
        case FD_MAXPOOL: /* a = NC planes, c x d */
            clcl_ref_maxpool_forward_f64(f->a, f->c, f->d, in, out);
            break;
        case FD_AVGPOOL: /* a = NC planes of b values */
            for (int i = 0; i < f->a; i++) {
                double sum = 0;
                for (int j = 0; j < f->b; j++)
                    sum += in[(size_t)i * f->b + j];
                out[i] = sum / f->b;
            }
            break;
        case FD_LINEAR_X: /* a = N, b = in, c = out */
            ref_linear_forward(f->a, f->b, f->c, in, f->w, f->bias, out);
            break;
        case FD_LINEAR_W:
            ref_linear_forward(f->a, f->b, f->c, f->x, in, f->bias, out);
            break;
        default:
            ref_linear_forward(f->a, f->b, f->c, f->x, f->w, in, out);
    }
}

/* Checks the device gradient `got` (n values) by finite differences of f in `in`. */
static void check_fd(layer_fd *f, double *in, size_t n, size_t n_out, const double *proj,
                     const float *got, const char *what) {
    size_t idx[FD_MAX];
    double grad[FD_MAX];
    float picked[FD_MAX];
    uint64_t rng = n * 7 + n_out;
    size_t k = fd_pick(n, FD_MAX, &rng, idx);
    fd_gradient(layer_forward, f, in, n_out, proj, FD_STEP, idx, k, grad);
    fd_gather(got, idx, k, picked);
    expect_close(picked, grad, k, 1e-4, 1e-4, what);
}

/* n distinct values spread over [-1, 1) in a seeded random order. */
static float *distinct_floats(size_t n, uint64_t *rng) {
    float *f = malloc(n * sizeof *f);
    cr_assert_not_null(f);
    for (size_t i = 0; i < n; i++)
        f[i] = -1.0f + 2.0f * (float)i / (float)n;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)(test_rand_u64(rng) % (i + 1));
        float t = f[i];
        f[i] = f[j];
        f[j] = t;
    }
    return f;
}

Test(layers, relu_forward_backward_and_in_place) {
    clcl_context *ctx = test_context();
    const int shape[4] = {3, 5, 7, 7};
    const size_t n = 3 * 5 * 7 * 7;
    uint64_t rng = 1;
    float *hx = test_floats(n, &rng, -1, 1), *hdy = test_floats(n, &rng, -1, 1);
    for (size_t i = 0; i < n; i++)
        hx[i] += hx[i] < 0 ? -0.1f : 0.1f;
    double *x = test_doubles(hx, n), *dy = test_doubles(hdy, n);
    double *ry = malloc(n * sizeof *ry), *rdx = malloc(n * sizeof *rdx);
    for (size_t i = 0; i < n; i++) {
        ry[i] = x[i] > 0 ? x[i] : 0;
        rdx[i] = x[i] > 0 ? dy[i] : 0;
    }
    clcl_tensor tx, ty, tdy, tdx;
    test_tensor(ctx, &tx, 4, shape, hx);
    test_tensor(ctx, &ty, 4, shape, NULL);
    test_tensor(ctx, &tdy, 4, shape, hdy);
    test_tensor(ctx, &tdx, 4, shape, NULL);

    cr_assert_eq(clcl_relu_forward(ctx, &tx, &ty), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_relu_backward(ctx, &ty, &tdy, &tdx), CLCL_OK, "%s", clcl_last_error());
    float *gy = test_read(ctx, &ty), *gdx = test_read(ctx, &tdx);
    expect_close(gy, ry, n, 0, 0, "relu forward");
    expect_close(gdx, rdx, n, 0, 0, "relu backward");
    layer_fd f = {.kind = FD_RELU, .a = (int)n, .b = 1};
    check_fd(&f, x, n, n, dy, gdx, "relu dx by finite differences");

    /* In place: y = x and dx = dy. */
    cr_assert_eq(clcl_relu_forward(ctx, &tx, &tx), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_relu_backward(ctx, &tx, &tdy, &tdy), CLCL_OK, "%s", clcl_last_error());
    free(gy), free(gdx);
    gy = test_read(ctx, &tx), gdx = test_read(ctx, &tdy);
    expect_close(gy, ry, n, 0, 0, "relu forward in place");
    expect_close(gdx, rdx, n, 0, 0, "relu backward in place");

    free(hx), free(hdy), free(x), free(dy), free(ry), free(rdx), free(gy), free(gdx);
    clcl_tensor_free(&tx), clcl_tensor_free(&ty), clcl_tensor_free(&tdy), clcl_tensor_free(&tdx);
    clcl_context_free(ctx);
}

Test(layers, add_forward_and_in_place) {
    clcl_context *ctx = test_context();
    const size_t n = 3 * 7 * 5 * 5;
    uint64_t rng = 2;
    float *ha = test_floats(n, &rng, -1, 1), *hb = test_floats(n, &rng, -1, 1);
    double *ref = malloc(n * sizeof *ref);
    for (size_t i = 0; i < n; i++)
        ref[i] = (double)ha[i] + hb[i];
    clcl_tensor a, b, y;
    test_tensor(ctx, &a, 4, (int[]){3, 7, 5, 5}, ha);
    test_tensor(ctx, &b, 4, (int[]){3, 7, 5, 5}, hb);
    test_tensor(ctx, &y, 4, (int[]){3, 7, 5, 5}, NULL);
    cr_assert_eq(clcl_add_forward(ctx, &a, &b, &y), CLCL_OK, "%s", clcl_last_error());
    float *got = test_read(ctx, &y);
    expect_close(got, ref, n, 1e-6, 1e-6, "add");
    free(got);
    cr_assert_eq(clcl_add_forward(ctx, &a, &b, &b), CLCL_OK, "%s", clcl_last_error());
    got = test_read(ctx, &b);
    expect_close(got, ref, n, 1e-6, 1e-6, "add in place");

    free(ha), free(hb), free(ref), free(got);
    clcl_tensor_free(&a), clcl_tensor_free(&b), clcl_tensor_free(&y);
    clcl_context_free(ctx);
}

/* Max pool 3x3/2/1 on (n, c, h, w): forward, backward, finite differences. */
static void maxpool_case(clcl_context *ctx, int n, int c, int h, int w, uint64_t seed) {
    char what[120];
    uint64_t rng = seed;
    int p = clcl_conv2d_out_size(h, 3, 2, 1), q = clcl_conv2d_out_size(w, 3, 2, 1);
    size_t nx = (size_t)n * c * h * w, ny = (size_t)n * c * p * q;
    snprintf(what, sizeof what, "maxpool x (%d, %d, %d, %d)", n, c, h, w);
    float *hx = distinct_floats(nx, &rng), *hdy = test_floats(ny, &rng, -1, 1);
    double *x = test_doubles(hx, nx), *dy = test_doubles(hdy, ny);
    double *ry = malloc(ny * sizeof *ry), *rdx = malloc(nx * sizeof *rdx);
    clcl_ref_maxpool_forward(n * c, h, w, hx, ry);
    clcl_ref_maxpool_backward(n * c, h, w, hx, hdy, rdx);
    clcl_tensor tx, ty, tdy, tdx;
    test_tensor(ctx, &tx, 4, (int[]){n, c, h, w}, hx);
    test_tensor(ctx, &tdx, 4, (int[]){n, c, h, w}, NULL);
    test_tensor(ctx, &ty, 4, (int[]){n, c, p, q}, NULL);
    test_tensor(ctx, &tdy, 4, (int[]){n, c, p, q}, hdy);

    cr_assert_eq(clcl_maxpool_forward(ctx, &tx, &ty), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_maxpool_backward(ctx, &tx, &tdy, &tdx), CLCL_OK, "%s", clcl_last_error());
    float *gy = test_read(ctx, &ty), *gdx = test_read(ctx, &tdx);
    char part[160];
    snprintf(part, sizeof part, "%s forward", what);
    expect_close(gy, ry, ny, 0, 0, part);
    snprintf(part, sizeof part, "%s backward", what);
    expect_close(gdx, rdx, nx, 1e-6, 1e-6, part);
    layer_fd f = {.kind = FD_MAXPOOL, .a = n * c, .c = h, .d = w};
    snprintf(part, sizeof part, "%s dx by finite differences", what);
    check_fd(&f, x, nx, ny, dy, gdx, part);

    free(hx), free(hdy), free(x), free(dy), free(ry), free(rdx), free(gy), free(gdx);
    clcl_tensor_free(&tx), clcl_tensor_free(&ty), clcl_tensor_free(&tdy), clcl_tensor_free(&tdx);
}

/* Ties: on a constant 4x4 plane every window's gradient goes to its first pixel, window
 * (p, q) starting at pixel (2p - 1, 2q - 1) clipped to the plane: (0, 0), (0, 1), (1, 0),
 * (1, 1). */
static void maxpool_ties(clcl_context *ctx) {
    float hx[16], hdy[4] = {1, 2, 3, 4};
    double want[16] = {1, 2, 0, 0, 3, 4};
    for (int i = 0; i < 16; i++)
        hx[i] = 0.5f;
    clcl_tensor tx, tdy, tdx;
    test_tensor(ctx, &tx, 4, (int[]){1, 1, 4, 4}, hx);
    test_tensor(ctx, &tdy, 4, (int[]){1, 1, 2, 2}, hdy);
    test_tensor(ctx, &tdx, 4, (int[]){1, 1, 4, 4}, NULL);
    cr_assert_eq(clcl_maxpool_backward(ctx, &tx, &tdy, &tdx), CLCL_OK, "%s", clcl_last_error());
    float *got = test_read(ctx, &tdx);
    expect_close(got, want, 16, 0, 0, "maxpool backward with ties");
    free(got);
    clcl_tensor_free(&tx), clcl_tensor_free(&tdy), clcl_tensor_free(&tdx);
}

Test(layers, maxpool_3x3_stride_2_pad_1) {
    clcl_context *ctx = test_context();
    maxpool_case(ctx, 3, 5, 7, 7, 3);
    maxpool_case(ctx, 2, 3, 8, 8, 4);
    maxpool_case(ctx, 3, 2, 9, 6, 5);
    maxpool_case(ctx, 1, 3, 1, 2, 6);
    maxpool_ties(ctx);
    clcl_context_free(ctx);
}

Test(layers, avgpool_global) {
    clcl_context *ctx = test_context();
    const int n = 3, c = 5, h = 7, w = 7, l = h * w;
    const size_t nx = (size_t)n * c * l, ny = (size_t)n * c;
    uint64_t rng = 7;
    float *hx = test_floats(nx, &rng, -1, 1), *hdy = test_floats(ny, &rng, -1, 1);
    double *x = test_doubles(hx, nx), *dy = test_doubles(hdy, ny);
    double *ry = malloc(ny * sizeof *ry), *rdx = malloc(nx * sizeof *rdx);
    layer_fd f = {.kind = FD_AVGPOOL, .a = n * c, .b = l};
    layer_forward(x, ry, &f);
    for (size_t i = 0; i < nx; i++)
        rdx[i] = dy[i / (size_t)l] / l;
    clcl_tensor tx, ty, tdy, tdx;
    test_tensor(ctx, &tx, 4, (int[]){n, c, h, w}, hx);
    test_tensor(ctx, &tdx, 4, (int[]){n, c, h, w}, NULL);
    test_tensor(ctx, &ty, 2, (int[]){n, c}, NULL);
    test_tensor(ctx, &tdy, 2, (int[]){n, c}, hdy);

    cr_assert_eq(clcl_avgpool_forward(ctx, &tx, &ty), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_avgpool_backward(ctx, &tdy, &tdx), CLCL_OK, "%s", clcl_last_error());
    float *gy = test_read(ctx, &ty), *gdx = test_read(ctx, &tdx);
    expect_close(gy, ry, ny, 1e-5, 1e-5, "avgpool forward");
    expect_close(gdx, rdx, nx, 1e-5, 1e-5, "avgpool backward");
    check_fd(&f, x, nx, ny, dy, gdx, "avgpool dx by finite differences");

    free(hx), free(hdy), free(x), free(dy), free(ry), free(rdx), free(gy), free(gdx);
    clcl_tensor_free(&tx), clcl_tensor_free(&ty), clcl_tensor_free(&tdy), clcl_tensor_free(&tdx);
    clcl_context_free(ctx);
}

/* Linear (n, in) -> (n, out), with or without bias; dx skipped when want_dx is 0. */
static void linear_case(clcl_context *ctx, int n, int in, int out, int bias, int want_dx,
                        uint64_t seed) {
    char what[120], part[160];
    uint64_t rng = seed;
    size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
    snprintf(what, sizeof what, "linear (%d, %d) -> (%d, %d)%s", n, in, n, out,
             bias ? " with bias" : "");
    float *hx = test_floats(nx, &rng, -1, 1), *hw = test_floats(nw, &rng, -1, 1);
    float *hb = test_floats((size_t)out, &rng, -1, 1), *hdy = test_floats(ny, &rng, -1, 1);
    double *x = test_doubles(hx, nx), *w = test_doubles(hw, nw);
    double *b = test_doubles(hb, (size_t)out), *dy = test_doubles(hdy, ny);
    double *ry = malloc(ny * sizeof *ry), *rdx = malloc(nx * sizeof *rdx);
    double *rdw = malloc(nw * sizeof *rdw), *rdb = calloc((size_t)out, sizeof *rdb);
    ref_linear_forward(n, in, out, x, w, bias ? b : NULL, ry);
    clcl_ref_gemm(0, 0, n, in, out, 1.0, hdy, (size_t)out, hw, (size_t)in, 0.0, NULL, 0, rdx);
    clcl_ref_gemm(1, 0, out, in, n, 1.0, hdy, (size_t)out, hx, (size_t)in, 0.0, NULL, 0, rdw);
    for (size_t i = 0; i < ny; i++)
        rdb[i % (size_t)out] += dy[i];

    clcl_tensor tx, tw, tb, ty, tdy, tdx, tdw, tdb;
    test_tensor(ctx, &tx, 2, (int[]){n, in}, hx);
    test_tensor(ctx, &tw, 2, (int[]){out, in}, hw);
    test_tensor(ctx, &tb, 1, (int[]){out}, hb);
    test_tensor(ctx, &ty, 2, (int[]){n, out}, NULL);
    test_tensor(ctx, &tdy, 2, (int[]){n, out}, hdy);
    test_tensor(ctx, &tdx, 2, (int[]){n, in}, NULL);
    test_tensor(ctx, &tdw, 2, (int[]){out, in}, NULL);
    test_tensor(ctx, &tdb, 1, (int[]){out}, NULL);
    cr_assert_eq(clcl_linear_forward(ctx, &tx, &tw, bias ? &tb : NULL, &ty), CLCL_OK, "%s",
                 clcl_last_error());
    cr_assert_eq(clcl_linear_backward(ctx, NULL, &tx, &tw, &tdy, want_dx ? &tdx : NULL, &tdw,
                                      bias ? &tdb : NULL),
                 CLCL_OK, "%s", clcl_last_error());
    float *gy = test_read(ctx, &ty), *gdx = test_read(ctx, &tdx), *gdw = test_read(ctx, &tdw);
    float *gdb = test_read(ctx, &tdb);

    snprintf(part, sizeof part, "%s: y", what);
    expect_close(gy, ry, ny, 1e-4, 1e-4, part);
    snprintf(part, sizeof part, "%s: dw", what);
    expect_close(gdw, rdw, nw, 1e-4, 1e-4, part);
    layer_fd f = {
        .kind = FD_LINEAR_W, .a = n, .b = in, .c = out, .x = x, .w = w, .bias = bias ? b : NULL};
    snprintf(part, sizeof part, "%s: dw by finite differences", what);
    check_fd(&f, w, nw, ny, dy, gdw, part);
    if (want_dx) {
        snprintf(part, sizeof part, "%s: dx", what);
        expect_close(gdx, rdx, nx, 1e-4, 1e-4, part);
        f.kind = FD_LINEAR_X;
        snprintf(part, sizeof part, "%s: dx by finite differences", what);
        check_fd(&f, x, nx, ny, dy, gdx, part);
    } else {
        for (size_t i = 0; i < nx; i++)
            cr_assert(isnan(gdx[i]), "%s: dx was written though not asked for", what);
    }
    if (bias) {
        snprintf(part, sizeof part, "%s: db", what);
        expect_close(gdb, rdb, (size_t)out, 1e-4, 1e-4, part);
        f.kind = FD_LINEAR_B;
        snprintf(part, sizeof part, "%s: db by finite differences", what);
        check_fd(&f, b, (size_t)out, ny, dy, gdb, part);
    }

    free(hx), free(hw), free(hb), free(hdy), free(x), free(w), free(b), free(dy);
    free(ry), free(rdx), free(rdw), free(rdb), free(gy), free(gdx), free(gdw), free(gdb);
    clcl_tensor *all[] = {&tx, &tw, &tb, &ty, &tdy, &tdx, &tdw, &tdb};
    for (int i = 0; i < 8; i++)
        clcl_tensor_free(all[i]);
}

Test(layers, linear_with_and_without_bias) {
    clcl_context *ctx = test_context();
    linear_case(ctx, 3, 37, 11, 1, 1, 8);
    linear_case(ctx, 3, 37, 11, 0, 1, 9);
    linear_case(ctx, 5, 13, 7, 1, 0, 10);
    linear_case(ctx, 1, 1, 1, 1, 1, 11);
    clcl_context_free(ctx);
}

Test(layers, gpu_shaped_limits) {
    setenv("CLCL_MAX_WORK_GROUP", "256", 1);
    setenv("CLCL_MAX_LOCAL_MEM", "32768", 1);
    clcl_context *ctx = test_context();
    maxpool_case(ctx, 3, 5, 7, 7, 12);
    linear_case(ctx, 3, 37, 11, 1, 1, 13);
    clcl_context_free(ctx);
}

/* Expects CLCL_ERR_SHAPE and a message holding a and b. */
static void expect_shape_error(clcl_status got, const char *a, const char *b) {
    cr_expect_eq(got, CLCL_ERR_SHAPE, "got %d: %s", got, clcl_last_error());
    cr_expect(strstr(clcl_last_error(), a), "'%s' not in: %s", a, clcl_last_error());
    if (b)
        cr_expect(strstr(clcl_last_error(), b), "'%s' not in: %s", b, clcl_last_error());
}

Test(layers, bad_shapes_are_refused_with_the_shapes) {
    clcl_context *ctx = test_context();
    clcl_tensor x, x_odd, p, p_bad, v, v_bad, w, w_bad, b_bad, y, y_bad;
    test_tensor(ctx, &x, 4, (int[]){3, 5, 7, 7}, NULL);
    test_tensor(ctx, &x_odd, 4, (int[]){3, 5, 7, 6}, NULL);
    test_tensor(ctx, &p, 4, (int[]){3, 5, 4, 4}, NULL);
    test_tensor(ctx, &p_bad, 4, (int[]){3, 5, 3, 4}, NULL);
    test_tensor(ctx, &v, 2, (int[]){3, 5}, NULL);
    test_tensor(ctx, &v_bad, 2, (int[]){3, 4}, NULL);
    test_tensor(ctx, &w, 2, (int[]){7, 5}, NULL);
    test_tensor(ctx, &w_bad, 2, (int[]){7, 4}, NULL);
    test_tensor(ctx, &b_bad, 1, (int[]){6}, NULL);
    test_tensor(ctx, &y, 2, (int[]){3, 7}, NULL);
    test_tensor(ctx, &y_bad, 2, (int[]){4, 7}, NULL);

    expect_shape_error(clcl_relu_forward(ctx, &x, &x_odd), "x (3, 5, 7, 7)", "y (3, 5, 7, 6)");
    expect_shape_error(clcl_relu_backward(ctx, &x, &x, &x_odd), "dx (3, 5, 7, 6)", NULL);
    expect_shape_error(clcl_add_forward(ctx, &x, &x_odd, &x), "b (3, 5, 7, 6)", NULL);
    expect_shape_error(clcl_maxpool_forward(ctx, &x, &p_bad), "y (3, 5, 3, 4)",
                       "expected (3, 5, 4, 4)");
    expect_shape_error(clcl_maxpool_forward(ctx, &v, &p), "x (3, 5)", "4 dimensions");
    expect_shape_error(clcl_maxpool_backward(ctx, &x, &p, &x_odd), "dx (3, 5, 7, 6)", NULL);
    expect_shape_error(clcl_avgpool_forward(ctx, &x, &v_bad), "y (3, 4)", "expected (3, 5)");
    expect_shape_error(clcl_avgpool_backward(ctx, &v_bad, &x), "dy (3, 4)", NULL);
    expect_shape_error(clcl_linear_forward(ctx, &v, &w_bad, NULL, &y), "x (3, 5)", "w (7, 4)");
    expect_shape_error(clcl_linear_forward(ctx, &v, &w, &b_bad, &y), "b (6)", "expected (7)");
    expect_shape_error(clcl_linear_forward(ctx, &v, &w, NULL, &y_bad), "y (4, 7)", NULL);
    expect_shape_error(clcl_linear_backward(ctx, NULL, &v, &w, &y, &v_bad, &w, NULL), "dx (3, 4)",
                       NULL);
    expect_shape_error(clcl_linear_backward(ctx, NULL, &v, &w, &y, NULL, &w, &b_bad), "db (6)",
                       NULL);
    expect_shape_error(clcl_linear_backward(ctx, NULL, &v, &w, &y, NULL, &w_bad, NULL), "dw (7, 4)",
                       NULL);

    clcl_tensor *all[] = {&x, &x_odd, &p, &p_bad, &v, &v_bad, &w, &w_bad, &b_bad, &y, &y_bad};
    for (int i = 0; i < 11; i++)
        clcl_tensor_free(all[i]);
    clcl_context_free(ctx);
}
