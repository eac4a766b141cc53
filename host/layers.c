/* ReLU, residual add, max and average pooling, linear; the launch and shape helpers that
 * every layer file shares. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "clcl/gemm.h"
#include "clcl/layers.h"
#include "layers_internal.h"

/* ResNet's max pool: window, stride, padding. */
#define MAXPOOL_K      3
#define MAXPOOL_STRIDE 2
#define MAXPOOL_PAD    1

/* Work-items per group at most, even where the device allows more: enough to fill a SIMD
 * unit or a wavefront several times over. */
#define LAUNCH_GROUP_CAP 256

/* ---- shared helpers ------------------------------------------------------------------ */

size_t clcl_layers_pow2_floor(size_t limit) {
    size_t p = 1;
    while (p * 2 <= limit)
        p *= 2;
    return p;
}

clcl_status clcl_layers_launch(clcl_context *ctx, cl_kernel kernel, cl_uint dims,
                               const size_t *global) {
    size_t limit, local[3] = {1, 1, 1};

    CLCL_TRY(clcl_kernel_max_work_group(ctx, kernel, &limit));
    size_t left = clcl_layers_pow2_floor(limit < LAUNCH_GROUP_CAP ? limit : LAUNCH_GROUP_CAP);

    /* Powers of two, dimension 0 first, none larger than the next power of two of its
     * global size, so that small dimensions do not waste work-items. */
    for (cl_uint d = 0; d < dims; d++) {
        size_t want = 1;
        while (want < global[d] && want < left)
            want *= 2;
        local[d] = want;
        left /= want;
    }
    return clcl_launch(ctx, kernel, dims, global, local);
}

const char *clcl_layers_describe(const char *name, const clcl_tensor *t, char *buf, size_t size) {
    char shape[80];
    if (!t || !t->buf)
        snprintf(buf, size, "%s (none)", name);
    else
        snprintf(buf, size, "%s %s", name,
                 clcl_shape_string(t->ndim, t->shape, shape, sizeof shape));
    return buf;
}

clcl_status clcl_layers_expect_ndim(const char *fn, const char *name, const clcl_tensor *t,
                                    int ndim) {
    char text[120];
    if (!t || !t->buf)
        return clcl_fail(CLCL_ERR_SHAPE, "%s: %s is not a tensor (NULL or unallocated)", fn, name);
    if (t->ndim != ndim)
        return clcl_fail(CLCL_ERR_SHAPE, "%s: %s: expected %d dimensions", fn,
                         clcl_layers_describe(name, t, text, sizeof text), ndim);
    if (t->count > INT_MAX)
        return clcl_fail(CLCL_ERR_SHAPE, "%s: %s holds more than %d elements", fn,
                         clcl_layers_describe(name, t, text, sizeof text), INT_MAX);
    return CLCL_OK;
}

clcl_status clcl_layers_expect_shape(const char *fn, const char *name, const clcl_tensor *t,
                                     int ndim, const int *shape) {
    char text[120], want[80];
    CLCL_TRY(clcl_layers_expect_ndim(fn, name, t, ndim));
    if (memcmp(t->shape, shape, (size_t)ndim * sizeof *shape) != 0)
        return clcl_fail(CLCL_ERR_SHAPE, "%s: %s: expected %s", fn,
                         clcl_layers_describe(name, t, text, sizeof text),
                         clcl_shape_string(ndim, shape, want, sizeof want));
    return CLCL_OK;
}

/* CLCL_ERR_SHAPE unless a and b are tensors of the same element count. */
static clcl_status expect_same_count(const char *fn, const char *na, const clcl_tensor *a,
                                     const char *nb, const clcl_tensor *b) {
    char ta[120], tb[120];
    CLCL_TRY(clcl_layers_expect_ndim(fn, na, a, a ? a->ndim : 0));
    CLCL_TRY(clcl_layers_expect_ndim(fn, nb, b, b ? b->ndim : 0));
    if (a->count != b->count)
        return clcl_fail(CLCL_ERR_SHAPE, "%s: %s and %s: expected the same number of elements", fn,
                         clcl_layers_describe(na, a, ta, sizeof ta),
                         clcl_layers_describe(nb, b, tb, sizeof tb));
    return CLCL_OK;
}

static clcl_status launch_flat(clcl_context *ctx, cl_kernel k, size_t n) {
    return clcl_layers_launch(ctx, k, 1, &n);
}

/* ---- ReLU and add -------------------------------------------------------------------- */

clcl_status clcl_relu_forward(clcl_context *ctx, const clcl_tensor *x, clcl_tensor *y) {
    cl_kernel k;
    CLCL_TRY(expect_same_count("relu_forward", "x", x, "y", y));
    CLCL_TRY(clcl_context_kernel(ctx, "layers", "relu_forward", NULL, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(x->buf), CLCL_ARG_MEM(y->buf),
                              CLCL_ARG_INT((int)x->count)));
    return launch_flat(ctx, k, x->count);
}

clcl_status clcl_relu_backward(clcl_context *ctx, const clcl_tensor *y, const clcl_tensor *dy,
                               clcl_tensor *dx) {
    cl_kernel k;
    CLCL_TRY(expect_same_count("relu_backward", "y", y, "dy", dy));
    CLCL_TRY(expect_same_count("relu_backward", "y", y, "dx", dx));
    CLCL_TRY(clcl_context_kernel(ctx, "layers", "relu_backward", NULL, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(y->buf), CLCL_ARG_MEM(dy->buf), CLCL_ARG_MEM(dx->buf),
                              CLCL_ARG_INT((int)y->count)));
    return launch_flat(ctx, k, y->count);
}

clcl_status clcl_add_forward(clcl_context *ctx, const clcl_tensor *a, const clcl_tensor *b,
                             clcl_tensor *y) {
    cl_kernel k;
    CLCL_TRY(expect_same_count("add_forward", "a", a, "b", b));
    CLCL_TRY(expect_same_count("add_forward", "a", a, "y", y));
    CLCL_TRY(clcl_context_kernel(ctx, "layers", "add_forward", NULL, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(a->buf), CLCL_ARG_MEM(b->buf), CLCL_ARG_MEM(y->buf),
                              CLCL_ARG_INT((int)a->count)));
    return launch_flat(ctx, k, a->count);
}

/* ---- pooling ------------------------------------------------------------------------- */

/* Checks x (N, C, H, W) against y (N, C, P, Q) of ResNet's max pool. */
static clcl_status maxpool_check(const char *fn, const clcl_tensor *x, const char *yname,
                                 const clcl_tensor *y) {
    CLCL_TRY(clcl_layers_expect_ndim(fn, "x", x, 4));
    int p = clcl_conv2d_out_size(x->shape[2], MAXPOOL_K, MAXPOOL_STRIDE, MAXPOOL_PAD);
    int q = clcl_conv2d_out_size(x->shape[3], MAXPOOL_K, MAXPOOL_STRIDE, MAXPOOL_PAD);
    return clcl_layers_expect_shape(fn, yname, y, 4, (int[]){x->shape[0], x->shape[1], p, q});
}

clcl_status clcl_maxpool_forward(clcl_context *ctx, const clcl_tensor *x, clcl_tensor *y) {
    cl_kernel k;
    CLCL_TRY(maxpool_check("maxpool_forward", x, "y", y));
    const int nc = x->shape[0] * x->shape[1];
    CLCL_TRY(clcl_context_kernel(ctx, "layers", "maxpool_forward", NULL, &k));
    CLCL_TRY(clcl_kernel_args(
        k, CLCL_ARG_MEM(x->buf), CLCL_ARG_MEM(y->buf), CLCL_ARG_INT(nc), CLCL_ARG_INT(x->shape[2]),
        CLCL_ARG_INT(x->shape[3]), CLCL_ARG_INT(y->shape[2]), CLCL_ARG_INT(y->shape[3]),
        CLCL_ARG_INT(MAXPOOL_K), CLCL_ARG_INT(MAXPOOL_STRIDE), CLCL_ARG_INT(MAXPOOL_PAD)));
    size_t global[3] = {(size_t)y->shape[3], (size_t)y->shape[2], (size_t)nc};
    return clcl_layers_launch(ctx, k, 3, global);
}

clcl_status clcl_maxpool_backward(clcl_context *ctx, const clcl_tensor *x, const clcl_tensor *dy,
                                  clcl_tensor *dx) {
    cl_kernel k;
    CLCL_TRY(maxpool_check("maxpool_backward", x, "dy", dy));
    CLCL_TRY(clcl_layers_expect_shape("maxpool_backward", "dx", dx, 4, x->shape));
    const int nc = x->shape[0] * x->shape[1];
    CLCL_TRY(clcl_context_kernel(ctx, "layers", "maxpool_backward", NULL, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(x->buf), CLCL_ARG_MEM(dy->buf), CLCL_ARG_MEM(dx->buf),
                              CLCL_ARG_INT(nc), CLCL_ARG_INT(x->shape[2]),
                              CLCL_ARG_INT(x->shape[3]), CLCL_ARG_INT(dy->shape[2]),
                              CLCL_ARG_INT(dy->shape[3]), CLCL_ARG_INT(MAXPOOL_K),
                              CLCL_ARG_INT(MAXPOOL_STRIDE), CLCL_ARG_INT(MAXPOOL_PAD)));
    size_t global[3] = {(size_t)x->shape[3], (size_t)x->shape[2], (size_t)nc};
    return clcl_layers_launch(ctx, k, 3, global);
}

clcl_status clcl_avgpool_forward(clcl_context *ctx, const clcl_tensor *x, clcl_tensor *y) {
    cl_kernel k;
    CLCL_TRY(clcl_layers_expect_ndim("avgpool_forward", "x", x, 4));
    CLCL_TRY(clcl_layers_expect_shape("avgpool_forward", "y", y, 2, x->shape));
    const int nc = x->shape[0] * x->shape[1], l = x->shape[2] * x->shape[3];
    CLCL_TRY(clcl_context_kernel(ctx, "layers", "avgpool_forward", NULL, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(x->buf), CLCL_ARG_MEM(y->buf), CLCL_ARG_INT(nc),
                              CLCL_ARG_INT(l)));
    return launch_flat(ctx, k, (size_t)nc);
}

clcl_status clcl_avgpool_backward(clcl_context *ctx, const clcl_tensor *dy, clcl_tensor *dx) {
    cl_kernel k;
    CLCL_TRY(clcl_layers_expect_ndim("avgpool_backward", "dx", dx, 4));
    CLCL_TRY(clcl_layers_expect_shape("avgpool_backward", "dy", dy, 2, dx->shape));
    const int nc = dx->shape[0] * dx->shape[1], l = dx->shape[2] * dx->shape[3];
    CLCL_TRY(clcl_context_kernel(ctx, "layers", "avgpool_backward", NULL, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(dy->buf), CLCL_ARG_MEM(dx->buf), CLCL_ARG_INT(nc),
                              CLCL_ARG_INT(l)));
    size_t global[2] = {(size_t)l, (size_t)nc};
    return clcl_layers_launch(ctx, k, 2, global);
}

/* ---- linear -------------------------------------------------------------------------- */

/* Checks x (N, in), w (out, in), b (out) or NULL, y (N, out); the names (b or db, y or
 * dy) are for the messages. */
static clcl_status linear_check(const char *fn, const clcl_tensor *x, const clcl_tensor *w,
                                const char *bname, const clcl_tensor *b, const char *yname,
                                const clcl_tensor *y) {
    char tx[120], tw[120];
    CLCL_TRY(clcl_layers_expect_ndim(fn, "x", x, 2));
    CLCL_TRY(clcl_layers_expect_ndim(fn, "w", w, 2));
    if (x->shape[1] != w->shape[1])
        return clcl_fail(CLCL_ERR_SHAPE, "%s: %s and %s: expected x (N, in) and w (out, in)", fn,
                         clcl_layers_describe("x", x, tx, sizeof tx),
                         clcl_layers_describe("w", w, tw, sizeof tw));
    if (b)
        CLCL_TRY(clcl_layers_expect_shape(fn, bname, b, 1, (int[]){w->shape[0]}));
    return clcl_layers_expect_shape(fn, yname, y, 2, (int[]){x->shape[0], w->shape[0]});
}

clcl_status clcl_linear_forward(clcl_context *ctx, const clcl_tensor *x, const clcl_tensor *w,
                                const clcl_tensor *b, clcl_tensor *y) {
    cl_kernel k;
    CLCL_TRY(linear_check("linear_forward", x, w, "b", b, "y", y));
    const int n = x->shape[0], in = x->shape[1], out = w->shape[0];

    /* y = b in every row, then y += x w^T; without a bias the GEMM writes y alone. */
    if (b) {
        CLCL_TRY(clcl_context_kernel(ctx, "layers", "bias_rows", NULL, &k));
        CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(y->buf), CLCL_ARG_MEM(b->buf), CLCL_ARG_INT(n),
                                  CLCL_ARG_INT(out)));
        CLCL_TRY(clcl_layers_launch(ctx, k, 2, (size_t[]){(size_t)out, (size_t)n}));
    }
    clcl_gemm_args g = {.trans_b = 1,
                        .m = n,
                        .n = out,
                        .k = in,
                        .alpha = 1.0f,
                        .beta = b ? 1.0f : 0.0f,
                        .a = x->buf,
                        .lda = (size_t)in,
                        .b = w->buf,
                        .ldb = (size_t)in,
                        .c = y->buf,
                        .ldc = (size_t)out};
    return clcl_gemm(ctx, &g);
}

clcl_status clcl_linear_backward(clcl_context *ctx, clcl_pool *scratch, const clcl_tensor *x,
                                 const clcl_tensor *w, const clcl_tensor *dy, clcl_tensor *dx,
                                 clcl_tensor *dw, clcl_tensor *db) {
    cl_kernel k;
    CLCL_TRY(linear_check("linear_backward", x, w, "db", db, "dy", dy));
    CLCL_TRY(clcl_layers_expect_shape("linear_backward", "dw", dw, 2, w->shape));
    if (dx)
        CLCL_TRY(clcl_layers_expect_shape("linear_backward", "dx", dx, 2, x->shape));
    const int n = x->shape[0], in = x->shape[1], out = w->shape[0];

    /* dx (N, in) = dy (N, out) w (out, in) */
    if (dx) {
        clcl_gemm_args g = {.m = n,
                            .n = in,
                            .k = out,
                            .alpha = 1.0f,
                            .a = dy->buf,
                            .lda = (size_t)out,
                            .b = w->buf,
                            .ldb = (size_t)in,
                            .c = dx->buf,
                            .ldc = (size_t)in};
        CLCL_TRY(clcl_gemm_pooled(ctx, scratch, &g));
    }

    /* dw (out, in) = dy^T (out, N) x (N, in) */
    clcl_gemm_args g = {.trans_a = 1,
                        .m = out,
                        .n = in,
                        .k = n,
                        .alpha = 1.0f,
                        .a = dy->buf,
                        .lda = (size_t)out,
                        .b = x->buf,
                        .ldb = (size_t)in,
                        .c = dw->buf,
                        .ldc = (size_t)in};
    CLCL_TRY(clcl_gemm_pooled(ctx, scratch, &g));

    /* db (out) = column sums of dy */
    if (db) {
        CLCL_TRY(clcl_context_kernel(ctx, "layers", "column_sums", NULL, &k));
        CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(dy->buf), CLCL_ARG_MEM(db->buf), CLCL_ARG_INT(n),
                                  CLCL_ARG_INT(out)));
        CLCL_TRY(launch_flat(ctx, k, (size_t)out));
    }
    return CLCL_OK;
}
