/* 2-D convolution (groups 1, no bias) as im2col + GEMM, a chunk of images per GEMM.
 *
 * A chunk of nb images becomes one column matrix col (C*R*S, nb*P*Q) and one GEMM:
 *   forward          t (K, nb*P*Q)     = w (K, C*R*S) col
 *   backward data    dcol (C*R*S, nb*P*Q) = w^T t, where t is dy as (K, nb*P*Q)
 *   backward weights dw (K, C*R*S)    += t col^T, over the chunks
 * and t moves between (nb, K, P*Q), the image order, and (K, nb, P*Q) by a permute. A 1x1
 * stride-1 convolution without padding needs no im2col: its column matrix is x itself,
 * permuted the same way. A chunk of one image needs no permute at all. The rows of col
 * and t are padded (see chunk_ld), so that a GEMM walking down a column does not hit the
 * same cache set on every row. docs/layers.md says why this path and how it was
 * measured. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "clcl/gemm.h"
#include "clcl/layers.h"
#include "clcl/log.h"
#include "layers_internal.h"
#include "tuning_internal.h"

/* Bytes the column matrix of one chunk may take (the permute buffer takes less or about
 * as much); also bounded by the device's largest allocation. */
#define CONV_COLUMN_BYTES ((size_t)64 << 20)

typedef struct {
    int n, c, h, w; /* input (N, C, H, W) */
    int k, r, s;    /* weights (K, C, R, S) */
    int p, q;       /* output (N, K, P, Q) */
    int stride, pad;
    int pointwise; /* 1x1, stride 1, no padding: the input is its own column matrix */
    int nb;        /* images per chunk */
    int own_gemm;  /* run cl/gemm.cl's kernels rather than clcl_gemm's backend */
    int ld;        /* row length of the chunk buffers col and t: nb*P*Q and padding */
} conv_geom;

/* A GEMM operand: a buffer, the offset of its first element and its row length. */
typedef struct {
    cl_mem mem;
    size_t off, ld;
} conv_operand;

/* Row length for `cols` columns: rounded up to 16 floats, plus 16 more, so that rows are
 * 64-byte aligned but their stride is never a multiple of a large power of two. */
static int chunk_ld(int cols) {
    return (cols + 15) / 16 * 16 + 16;
}

int clcl_conv2d_out_size(int in, int k, int stride, int pad) {
    if (in <= 0 || k <= 0 || stride <= 0 || pad < 0 || in + 2 * pad < k)
        return 0;
    return (in + 2 * pad - k) / stride + 1;
}

/* Fills g from x-like (N, C, H, W), w-like (K, C, R, S) and y-like (N, K, P, Q) tensors,
 * checking that they fit together; the names are for the messages. */
static clcl_status conv_geometry(const char *fn, const char *xname, const clcl_tensor *x,
                                 const char *wname, const clcl_tensor *w, const char *yname,
                                 const clcl_tensor *y, int stride, int pad, conv_geom *g) {
    char tx[120], tw[120];
    CLCL_TRY(clcl_layers_expect_ndim(fn, xname, x, 4));
    CLCL_TRY(clcl_layers_expect_ndim(fn, wname, w, 4));
    if (stride < 1 || pad < 0)
        return clcl_fail(CLCL_ERR_ARGUMENT, "%s: stride %d, pad %d: expected stride >= 1, pad >= 0",
                         fn, stride, pad);
    if (x->shape[1] != w->shape[1])
        return clcl_fail(CLCL_ERR_SHAPE,
                         "%s: %s and %s: expected the same channels C in "
                         "x (N, C, H, W) and w (K, C, R, S)",
                         fn, clcl_layers_describe(xname, x, tx, sizeof tx),
                         clcl_layers_describe(wname, w, tw, sizeof tw));
    *g = (conv_geom){.n = x->shape[0],
                     .c = x->shape[1],
                     .h = x->shape[2],
                     .w = x->shape[3],
                     .k = w->shape[0],
                     .r = w->shape[2],
                     .s = w->shape[3],
                     .stride = stride,
                     .pad = pad};
    g->p = clcl_conv2d_out_size(g->h, g->r, stride, pad);
    g->q = clcl_conv2d_out_size(g->w, g->s, stride, pad);
    if (g->p == 0 || g->q == 0)
        return clcl_fail(CLCL_ERR_SHAPE,
                         "%s: %s with %s, stride %d, pad %d: the window is "
                         "larger than the padded input",
                         fn, clcl_layers_describe(xname, x, tx, sizeof tx),
                         clcl_layers_describe(wname, w, tw, sizeof tw), stride, pad);
    CLCL_TRY(clcl_layers_expect_shape(fn, yname, y, 4, (int[]){g->n, g->k, g->p, g->q}));
    g->pointwise = g->r == 1 && g->s == 1 && stride == 1 && pad == 0;
    return CLCL_OK;
}

/* Chooses the images per chunk: as many as the column budget (and opt->max_images, when
 * positive) allow, then evened out over the chunks so that the last one is not a sliver. */
static clcl_status conv_plan(clcl_context *ctx, const char *fn, const clcl_conv_options *opt,
                             conv_geom *g) {
    int max_images = opt ? opt->max_images : 0;
    g->own_gemm = opt ? opt->own_gemm : 0;
    const clcl_device_info *dev = clcl_context_device(ctx);
    size_t budget = CONV_COLUMN_BYTES < dev->max_alloc ? CONV_COLUMN_BYTES : dev->max_alloc;
    size_t rows = (size_t)g->c * g->r * g->s;
    if ((size_t)g->k > rows)
        rows = (size_t)g->k;
    size_t pq = (size_t)g->p * g->q, floats = budget / sizeof(float) / rows;
    if (floats < pq + 32) /* a row's padding is at most 31 floats */
        return clcl_fail(CLCL_ERR_TOO_LARGE,
                         "%s: one image's column matrix needs %zu bytes, more "
                         "than the %zu this device allows in one buffer",
                         fn, rows * (pq + 32) * sizeof(float), budget);
    size_t fit = (floats - 32) / pq;
    int nb = fit < (size_t)g->n ? (int)fit : g->n;
    if (max_images > 0 && nb > max_images)
        nb = max_images;
    int chunks = (g->n + nb - 1) / nb;
    g->nb = (g->n + chunks - 1) / chunks;
    g->ld = chunk_ld(g->nb * g->p * g->q);
    return CLCL_OK;
}

/* The column matrix (C*R*S, nb*P*Q) of images n0 .. n0+nb-1 of x: im2col into `col`;
 * for a pointwise convolution the permute (nb, C, H*W) -> (C, nb, H*W) into `col`, or x's
 * own slice when nb is 1. */
static clcl_status conv_columns(clcl_context *ctx, const conv_geom *g, const clcl_tensor *x, int n0,
                                int nb, cl_mem col, conv_operand *out) {
    cl_kernel k;
    int x_off = n0 * g->c * g->h * g->w;
    *out = (conv_operand){col, 0, (size_t)g->ld};
    if (g->pointwise && nb == 1) {
        *out = (conv_operand){x->buf, (size_t)x_off, (size_t)g->h * g->w};
        return CLCL_OK;
    }
    if (g->pointwise) {
        CLCL_TRY(clcl_context_kernel(ctx, "conv", "knl_from_nkl", NULL, &k));
        CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(x->buf), CLCL_ARG_INT(x_off), CLCL_ARG_MEM(col),
                                  CLCL_ARG_INT(g->ld), CLCL_ARG_INT(nb), CLCL_ARG_INT(g->c),
                                  CLCL_ARG_INT(g->h * g->w)));
        size_t global[3] = {(size_t)g->h * g->w, (size_t)g->c, (size_t)nb};
        return clcl_layers_launch(ctx, k, 3, global);
    }
    CLCL_TRY(clcl_context_kernel(ctx, "conv", "im2col", NULL, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(x->buf), CLCL_ARG_INT(x_off), CLCL_ARG_MEM(col),
                              CLCL_ARG_INT(g->ld), CLCL_ARG_INT(nb), CLCL_ARG_INT(g->c),
                              CLCL_ARG_INT(g->h), CLCL_ARG_INT(g->w), CLCL_ARG_INT(g->r),
                              CLCL_ARG_INT(g->s), CLCL_ARG_INT(g->p), CLCL_ARG_INT(g->q),
                              CLCL_ARG_INT(g->stride), CLCL_ARG_INT(g->pad)));
    size_t global[3] = {(size_t)g->p, (size_t)nb, (size_t)g->c * g->r * g->s};
    return clcl_layers_launch(ctx, k, 3, global);
}

/* The permute between image order (nb, rows, L) at `img_off` of `img` and chunk order
 * (rows, nb*L, row length ld) in `chunk`; to_image picks the direction. */
static clcl_status conv_permute(clcl_context *ctx, int to_image, cl_mem img, int img_off,
                                cl_mem chunk, int ld, int nb, int rows, int l) {
    cl_kernel k;
    size_t global[3] = {(size_t)l, (size_t)rows, (size_t)nb};
    if (to_image) {
        CLCL_TRY(clcl_context_kernel(ctx, "conv", "nkl_from_knl", NULL, &k));
        CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(chunk), CLCL_ARG_INT(ld), CLCL_ARG_MEM(img),
                                  CLCL_ARG_INT(img_off), CLCL_ARG_INT(nb), CLCL_ARG_INT(rows),
                                  CLCL_ARG_INT(l)));
    } else {
        CLCL_TRY(clcl_context_kernel(ctx, "conv", "knl_from_nkl", NULL, &k));
        CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(img), CLCL_ARG_INT(img_off), CLCL_ARG_MEM(chunk),
                                  CLCL_ARG_INT(ld), CLCL_ARG_INT(nb), CLCL_ARG_INT(rows),
                                  CLCL_ARG_INT(l)));
    }
    return clcl_layers_launch(ctx, k, 3, global);
}

/* dy's images n0 .. n0+nb-1 as a (K, nb*P*Q) operand: permuted into `t`, or dy's own
 * slice when nb is 1. */
static clcl_status conv_dy_chunk(clcl_context *ctx, const conv_geom *g, const clcl_tensor *dy,
                                 int n0, int nb, cl_mem t, conv_operand *out) {
    int pq = g->p * g->q, off = n0 * g->k * pq;
    if (nb == 1) {
        *out = (conv_operand){dy->buf, (size_t)off, (size_t)pq};
        return CLCL_OK;
    }
    *out = (conv_operand){t, 0, (size_t)g->ld};
    return conv_permute(ctx, 0, dy->buf, off, t, g->ld, nb, g->k, pq);
}

/* dx images n0 .. n0+nb-1 from dcol (C*R*S, nb*P*Q): col2im, or for a pointwise
 * convolution the permute back. */
static clcl_status conv_uncolumns(clcl_context *ctx, const conv_geom *g, cl_mem dcol, int n0,
                                  int nb, const clcl_tensor *dx) {
    cl_kernel k;
    char options[32];
    int dx_off = n0 * g->c * g->h * g->w;
    if (g->pointwise)
        return conv_permute(ctx, 1, dx->buf, dx_off, dcol, g->ld, nb, g->c, g->h * g->w);
    snprintf(options, sizeof options, "-DCOL2IM_STRIDE=%d", g->stride);
    CLCL_TRY(clcl_context_kernel(ctx, "conv", "col2im", options, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(dcol), CLCL_ARG_INT(g->ld), CLCL_ARG_MEM(dx->buf),
                              CLCL_ARG_INT(dx_off), CLCL_ARG_INT(nb), CLCL_ARG_INT(g->c),
                              CLCL_ARG_INT(g->h), CLCL_ARG_INT(g->w), CLCL_ARG_INT(g->r),
                              CLCL_ARG_INT(g->s), CLCL_ARG_INT(g->p), CLCL_ARG_INT(g->q),
                              CLCL_ARG_INT(g->pad)));
    size_t global[2] = {(size_t)g->h, (size_t)nb * g->c};
    return clcl_layers_launch(ctx, k, 2, global);
}

/* Takes the chunk buffers from the pool: col (C*R*S, ld) and t (K, ld). The entry points
 * have refused a NULL pool already. */
static clcl_status conv_buffers(clcl_pool *scratch, const conv_geom *g, clcl_tensor *col,
                                clcl_tensor *t) {
    CLCL_TRY(clcl_pool_tensor(scratch, col, 2, (int[]){g->c * g->r * g->s, g->ld}));
    clcl_status st = clcl_pool_tensor(scratch, t, 2, (int[]){g->k, g->ld});
    if (st != CLCL_OK)
        clcl_pool_release(scratch, col);
    return st;
}

static void conv_release(clcl_pool *scratch, clcl_tensor *col, clcl_tensor *t) {
    if (col->buf)
        clcl_pool_release(scratch, col);
    if (t->buf)
        clcl_pool_release(scratch, t);
}

/* Runs a chunk's GEMM on the chosen backend. */
static clcl_status conv_run_gemm(clcl_context *ctx, clcl_pool *scratch, const conv_geom *g,
                                 const clcl_gemm_args *ga) {
    return g->own_gemm ? clcl_gemm_own(ctx, NULL, ga) : clcl_gemm_pooled(ctx, scratch, ga);
}

/* The GEMM args of op(a) op(b) into c (alpha 1). */
static clcl_gemm_args conv_gemm(int trans_a, int trans_b, int m, int n, int k, conv_operand a,
                                conv_operand b, conv_operand c, float beta) {
    return (clcl_gemm_args){trans_a, trans_b, m,     n,     k,    1.0f,  beta,  a.mem,
                            a.off,   a.ld,    b.mem, b.off, b.ld, c.mem, c.off, c.ld};
}

/* ---- the direct path ----------------------------------------------------------------- */

/* The three passes. */
enum { PASS_FORWARD = 0, PASS_DATA = 1, PASS_WEIGHTS = 2 };

/* 1 when the direct kernels can do this pass: any forward convolution; backward data when
 * it is itself a convolution (stride 1, a square window, pad < R); backward weights for
 * windows of at most 9 taps. */
static int direct_fits(const conv_geom *g, int pass) {
    if (pass == PASS_DATA)
        return g->stride == 1 && g->r == g->s && g->pad < g->r;
    if (pass == PASS_WEIGHTS)
        return g->r * g->s <= 9;
    return 1;
}

/* conv_direct's outputs per work-item for rows of q outputs: the fewest blocks of at most 8,
 * evened out (28 -> 4 of 7, 14 -> 2 of 7, 4 -> 1 of 4). */
static int direct_qb(int q) {
    int blocks = (q + 7) / 8;
    return (q + blocks - 1) / blocks;
}

/* The forward pass y = conv(x, w), or (backward) dx = conv(dy, w flipped and transposed,
 * pad R-1-pad), by conv_direct; the weights' layout is made in a scratch buffer first. */
static clcl_status conv_direct_run(clcl_context *ctx, clcl_pool *scratch, const conv_geom *g,
                                   int backward, cl_mem in, cl_mem w, cl_mem out) {
    const int ci = backward ? g->k : g->c, hi = backward ? g->p : g->h;
    const int wi = backward ? g->q : g->w, ko = backward ? g->c : g->k;
    const int po = backward ? g->h : g->p, qo = backward ? g->w : g->q;
    const int stride = backward ? 1 : g->stride, pad = backward ? g->r - 1 - g->pad : g->pad;
    const int cols = (ko + 7) / 8 * 8, rows = ci * g->r * g->s, qb = direct_qb(qo);
    clcl_tensor wt = {0};
    clcl_status st = CLCL_OK;
    cl_kernel k;
    char options[80];

    CLCL_TRY(clcl_pool_tensor(scratch, &wt, 2, (int[]){rows, cols}));
    CLCL_TRY_GOTO(st, clcl_context_kernel(ctx, "conv", "conv_direct_weights", NULL, &k), done);
    CLCL_TRY_GOTO(st,
                  clcl_kernel_args(k, CLCL_ARG_MEM(w), CLCL_ARG_MEM(wt.buf), CLCL_ARG_INT(g->k),
                                   CLCL_ARG_INT(g->c), CLCL_ARG_INT(g->r), CLCL_ARG_INT(g->s),
                                   CLCL_ARG_INT(cols), CLCL_ARG_INT(backward)),
                  done);
    CLCL_TRY_GOTO(st, clcl_layers_launch(ctx, k, 2, (size_t[]){(size_t)cols, (size_t)rows}), done);

    snprintf(options, sizeof options, "-DDIRECT_QB=%d -DDIRECT_S=%d -DDIRECT_STRIDE=%d", qb, g->s,
             stride);
    CLCL_TRY_GOTO(st, clcl_context_kernel(ctx, "conv", "conv_direct", options, &k), done);
    CLCL_TRY_GOTO(st,
                  clcl_kernel_args(
                      k, CLCL_ARG_MEM(in), CLCL_ARG_INT(0), CLCL_ARG_MEM(wt.buf), CLCL_ARG_MEM(out),
                      CLCL_ARG_INT(0), CLCL_ARG_INT(g->n), CLCL_ARG_INT(ci), CLCL_ARG_INT(hi),
                      CLCL_ARG_INT(wi), CLCL_ARG_INT(ko), CLCL_ARG_INT(g->r), CLCL_ARG_INT(g->s),
                      CLCL_ARG_INT(po), CLCL_ARG_INT(qo), CLCL_ARG_INT(stride), CLCL_ARG_INT(pad)),
                  done);
    size_t global[3] = {(size_t)(qo + qb - 1) / qb, (size_t)po, (size_t)g->n * cols / 8};
    st = clcl_layers_launch(ctx, k, 3, global);
done:
    clcl_pool_release(scratch, &wt);
    return st;
}

/* dw by conv_direct_dw_part and conv_direct_dw_sum: dy is first laid out channels last,
 * groups of images are summed into partial dw blocks (enough groups for about 256
 * work-items), then the groups are added in order. */
static clcl_status conv_direct_dw_run(clcl_context *ctx, clcl_pool *scratch, const conv_geom *g,
                                      cl_mem x, cl_mem dy, cl_mem dw) {
    const int kp = (g->k + 7) / 8 * 8, pq = g->p * g->q, taps = g->r * g->s;
    const int items = (kp / 8) * g->c;
    int groups = (256 + items - 1) / items;
    if (groups > g->n)
        groups = g->n;
    const int per = (g->n + groups - 1) / groups;
    groups = (g->n + per - 1) / per;
    clcl_tensor dyt = {0}, part = {0};
    clcl_status st = CLCL_OK;
    cl_kernel k;
    char options[80];

    CLCL_TRY(clcl_pool_tensor(scratch, &dyt, 2, (int[]){g->n * pq, kp}));
    CLCL_TRY_GOTO(st, clcl_pool_tensor(scratch, &part, 2, (int[]){groups * kp, g->c * taps}), done);
    CLCL_TRY_GOTO(st, clcl_context_kernel(ctx, "conv", "conv_dy_channels_last", NULL, &k), done);
    CLCL_TRY_GOTO(st,
                  clcl_kernel_args(k, CLCL_ARG_MEM(dy), CLCL_ARG_MEM(dyt.buf), CLCL_ARG_INT(g->n),
                                   CLCL_ARG_INT(g->k), CLCL_ARG_INT(pq), CLCL_ARG_INT(kp)),
                  done);
    CLCL_TRY_GOTO(
        st, clcl_layers_launch(ctx, k, 3, (size_t[]){(size_t)kp, (size_t)pq, (size_t)g->n}), done);

    snprintf(options, sizeof options, "-DDIRECT_R=%d -DDIRECT_S=%d", g->r, g->s);
    CLCL_TRY_GOTO(st, clcl_context_kernel(ctx, "conv", "conv_direct_dw_part", options, &k), done);
    CLCL_TRY_GOTO(st,
                  clcl_kernel_args(k, CLCL_ARG_MEM(x), CLCL_ARG_MEM(dyt.buf),
                                   CLCL_ARG_MEM(part.buf), CLCL_ARG_INT(g->n), CLCL_ARG_INT(g->c),
                                   CLCL_ARG_INT(g->h), CLCL_ARG_INT(g->w), CLCL_ARG_INT(kp),
                                   CLCL_ARG_INT(g->p), CLCL_ARG_INT(g->q), CLCL_ARG_INT(g->stride),
                                   CLCL_ARG_INT(g->pad), CLCL_ARG_INT(per)),
                  done);
    CLCL_TRY_GOTO(
        st, clcl_layers_launch(ctx, k, 3, (size_t[]){(size_t)kp / 8, (size_t)g->c, (size_t)groups}),
        done);

    CLCL_TRY_GOTO(st, clcl_context_kernel(ctx, "conv", "conv_direct_dw_sum", NULL, &k), done);
    CLCL_TRY_GOTO(st,
                  clcl_kernel_args(k, CLCL_ARG_MEM(part.buf), CLCL_ARG_MEM(dw), CLCL_ARG_INT(g->k),
                                   CLCL_ARG_INT(g->c * taps), CLCL_ARG_INT(kp),
                                   CLCL_ARG_INT(groups)),
                  done);
    st = clcl_layers_launch(ctx, k, 2, (size_t[]){(size_t)g->c * taps, (size_t)g->k});
done:
    if (part.buf)
        clcl_pool_release(scratch, &part);
    clcl_pool_release(scratch, &dyt);
    return st;
}

/* The forward pass by the columns, a chunk of images per GEMM. */
static clcl_status conv_forward_columns(clcl_context *ctx, clcl_pool *scratch, const char *fn,
                                        const clcl_conv_options *opt, conv_geom g,
                                        const clcl_tensor *x, const clcl_tensor *w,
                                        const clcl_tensor *y) {
    clcl_tensor col = {0}, t = {0};
    clcl_status st = CLCL_OK;

    CLCL_TRY(conv_plan(ctx, fn, opt, &g));
    CLCL_TRY(conv_buffers(scratch, &g, &col, &t));
    const int crs = g.c * g.r * g.s, pq = g.p * g.q;
    const conv_operand wo = {w->buf, 0, (size_t)crs};
    for (int n0 = 0; n0 < g.n; n0 += g.nb) {
        int nb = g.n - n0 < g.nb ? g.n - n0 : g.nb;

        /* t (K, nb*P*Q) = w (K, C*R*S) col; a single image's t is its slice of y */
        conv_operand b, c = {t.buf, 0, (size_t)g.ld};
        if (nb == 1)
            c = (conv_operand){y->buf, (size_t)n0 * g.k * pq, (size_t)pq};
        CLCL_TRY_GOTO(st, conv_columns(ctx, &g, x, n0, nb, col.buf, &b), done);
        clcl_gemm_args ga = conv_gemm(0, 0, g.k, nb * pq, crs, wo, b, c, 0.0f);
        CLCL_TRY_GOTO(st, conv_run_gemm(ctx, scratch, &g, &ga), done);
        if (nb > 1)
            CLCL_TRY_GOTO(st, conv_permute(ctx, 1, y->buf, n0 * g.k * pq, t.buf, g.ld, nb, g.k, pq),
                          done);
    }
done:
    conv_release(scratch, &col, &t);
    return st;
}

/* The backward data pass by the columns. */
static clcl_status conv_data_columns(clcl_context *ctx, clcl_pool *scratch, const char *fn,
                                     const clcl_conv_options *opt, conv_geom g,
                                     const clcl_tensor *dy, const clcl_tensor *w,
                                     const clcl_tensor *dx) {
    clcl_tensor col = {0}, t = {0};
    clcl_status st = CLCL_OK;

    CLCL_TRY(conv_plan(ctx, fn, opt, &g));
    CLCL_TRY(conv_buffers(scratch, &g, &col, &t));
    const int crs = g.c * g.r * g.s, pq = g.p * g.q;
    const conv_operand wo = {w->buf, 0, (size_t)crs};
    for (int n0 = 0; n0 < g.n; n0 += g.nb) {
        int nb = g.n - n0 < g.nb ? g.n - n0 : g.nb;

        /* dcol (C*R*S, nb*P*Q) = w^T dy, then back to image order; a pointwise
         * convolution's single image is written in place */
        conv_operand b, c = {col.buf, 0, (size_t)g.ld};
        int in_place = g.pointwise && nb == 1;
        if (in_place)
            c = (conv_operand){dx->buf, (size_t)n0 * g.c * g.h * g.w, (size_t)pq};
        CLCL_TRY_GOTO(st, conv_dy_chunk(ctx, &g, dy, n0, nb, t.buf, &b), done);
        clcl_gemm_args ga = conv_gemm(1, 0, crs, nb * pq, g.k, wo, b, c, 0.0f);
        CLCL_TRY_GOTO(st, conv_run_gemm(ctx, scratch, &g, &ga), done);
        if (!in_place)
            CLCL_TRY_GOTO(st, conv_uncolumns(ctx, &g, col.buf, n0, nb, dx), done);
    }
done:
    conv_release(scratch, &col, &t);
    return st;
}

/* The backward weights pass by the columns: dw (K, C*R*S) = sum over the chunks of
 * dy col^T, the first chunk writing. */
static clcl_status conv_weights_columns(clcl_context *ctx, clcl_pool *scratch, const char *fn,
                                        const clcl_conv_options *opt, conv_geom g,
                                        const clcl_tensor *x, const clcl_tensor *dy,
                                        const clcl_tensor *dw) {
    clcl_tensor col = {0}, t = {0};
    clcl_status st = CLCL_OK;

    CLCL_TRY(conv_plan(ctx, fn, opt, &g));
    CLCL_TRY(conv_buffers(scratch, &g, &col, &t));
    const int crs = g.c * g.r * g.s, pq = g.p * g.q;
    const conv_operand c = {dw->buf, 0, (size_t)crs};
    for (int n0 = 0; n0 < g.n; n0 += g.nb) {
        int nb = g.n - n0 < g.nb ? g.n - n0 : g.nb;
        conv_operand a, b;
        CLCL_TRY_GOTO(st, conv_dy_chunk(ctx, &g, dy, n0, nb, t.buf, &a), done);
        CLCL_TRY_GOTO(st, conv_columns(ctx, &g, x, n0, nb, col.buf, &b), done);
        clcl_gemm_args ga = conv_gemm(0, 1, g.k, crs, nb * pq, a, b, c, n0 == 0 ? 0.0f : 1.0f);
        CLCL_TRY_GOTO(st, conv_run_gemm(ctx, scratch, &g, &ga), done);
    }
done:
    conv_release(scratch, &col, &t);
    return st;
}

/* One pass by one path: forward (a x, b w, out y), backward data (a dy, b w, out dx) or
 * backward weights (a x, b dy, out dw). */
static clcl_status conv_pass(clcl_context *ctx, clcl_pool *scratch, const char *fn,
                             const clcl_conv_options *opt, const conv_geom *g, int pass, int direct,
                             const clcl_tensor *a, const clcl_tensor *b, const clcl_tensor *out) {
    if (pass == PASS_WEIGHTS)
        return direct ? conv_direct_dw_run(ctx, scratch, g, a->buf, b->buf, out->buf)
                      : conv_weights_columns(ctx, scratch, fn, opt, *g, a, b, out);
    if (direct)
        return conv_direct_run(ctx, scratch, g, pass == PASS_DATA, a->buf, b->buf, out->buf);
    return pass == PASS_DATA ? conv_data_columns(ctx, scratch, fn, opt, *g, a, b, out)
                             : conv_forward_columns(ctx, scratch, fn, opt, *g, a, b, out);
}

static double conv_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Device milliseconds of one run of a path, queue drained before and after. */
static clcl_status conv_time(clcl_context *ctx, clcl_pool *scratch, const char *fn,
                             const clcl_conv_options *opt, const conv_geom *g, int data, int direct,
                             const clcl_tensor *in, const clcl_tensor *w, const clcl_tensor *out,
                             double *ms) {
    CLCL_TRY(clcl_finish(ctx));
    double t0 = conv_now_ms();
    CLCL_TRY(conv_pass(ctx, scratch, fn, opt, g, data, direct, in, w, out));
    CLCL_TRY(clcl_finish(ctx));
    double t = conv_now_ms() - t0;
    if (*ms < 0 || t < *ms)
        *ms = t;
    return CLCL_OK;
}

/* Whether this pass runs the direct kernel: where it fits, as the caller asks, or under
 * CLCL_CONV_AUTO as the tuning table says; a shape not yet there is measured on the
 * caller's own tensors (both paths once to warm up, then twice each, the minimum kept)
 * and the faster path recorded. A forced GEMM backend (CLCL_GEMM) means the columns,
 * unmeasured. */
static clcl_status conv_choose(clcl_context *ctx, clcl_pool *scratch, const char *fn,
                               const clcl_conv_options *opt, const conv_geom *g, int data,
                               const clcl_tensor *in, const clcl_tensor *w, const clcl_tensor *out,
                               int *direct) {
    clcl_conv_algo algo = opt ? (clcl_conv_algo)opt->algo : CLCL_CONV_AUTO;
    *direct = 0;
    if (!direct_fits(g, data) || algo == CLCL_CONV_COLUMNS)
        return CLCL_OK;
    if (algo == CLCL_CONV_DIRECT) {
        *direct = 1;
        return CLCL_OK;
    }
    if (strcmp(tuning_gemm_mode(), "auto") != 0)
        return CLCL_OK;
    tuning_conv_entry e = {
        .key = {data, g->n, g->c, g->h, g->w, g->k, g->r, g->s, g->stride, g->pad},
        .ms_direct = -1,
        .ms_columns = -1};
    if (tuning_conv_find(ctx, &e.key, &e)) {
        *direct = e.direct;
        return CLCL_OK;
    }
    double warm = -1;
    CLCL_TRY(conv_time(ctx, scratch, fn, opt, g, data, 0, in, w, out, &warm));
    CLCL_TRY(conv_time(ctx, scratch, fn, opt, g, data, 1, in, w, out, &warm));
    for (int rep = 0; rep < 2; rep++) {
        CLCL_TRY(conv_time(ctx, scratch, fn, opt, g, data, 0, in, w, out, &e.ms_columns));
        CLCL_TRY(conv_time(ctx, scratch, fn, opt, g, data, 1, in, w, out, &e.ms_direct));
    }
    e.direct = e.ms_direct < e.ms_columns;
    CLCL_LOG_DEBUG("conv",
                   "%s n %d c %d %dx%d k %d %dx%d stride %d pad %d: direct %.3f ms, "
                   "columns %.3f ms",
                   data == PASS_WEIGHTS ? "backward weights"
                   : data == PASS_DATA  ? "backward data"
                                        : "forward",
                   g->n, g->c, g->h, g->w, g->k, g->r, g->s, g->stride, g->pad, e.ms_direct,
                   e.ms_columns);
    tuning_conv_entry kept;
    tuning_conv_store(ctx, &e, &kept);
    *direct = kept.direct;
    return CLCL_OK;
}

clcl_status clcl_conv2d_forward_with(clcl_context *ctx, clcl_pool *scratch, const clcl_tensor *x,
                                     const clcl_tensor *w, int stride, int pad, clcl_tensor *y,
                                     const clcl_conv_options *opt) {
    const char *fn = "conv2d_forward";
    conv_geom g;
    int direct;
    CLCL_TRY(conv_geometry(fn, "x", x, "w", w, "y", y, stride, pad, &g));
    if (!scratch)
        return clcl_fail(CLCL_ERR_ARGUMENT, "%s: scratch pool is NULL; pass a clcl_pool", fn);
    CLCL_TRY(conv_choose(ctx, scratch, fn, opt, &g, 0, x, w, y, &direct));
    return conv_pass(ctx, scratch, fn, opt, &g, 0, direct, x, w, y);
}

clcl_status clcl_conv2d_backward_data_with(clcl_context *ctx, clcl_pool *scratch,
                                           const clcl_tensor *dy, const clcl_tensor *w, int stride,
                                           int pad, clcl_tensor *dx, const clcl_conv_options *opt) {
    const char *fn = "conv2d_backward_data";
    conv_geom g;
    int direct;
    CLCL_TRY(conv_geometry(fn, "dx", dx, "w", w, "dy", dy, stride, pad, &g));
    if (!scratch)
        return clcl_fail(CLCL_ERR_ARGUMENT, "%s: scratch pool is NULL; pass a clcl_pool", fn);
    CLCL_TRY(conv_choose(ctx, scratch, fn, opt, &g, 1, dy, w, dx, &direct));
    return conv_pass(ctx, scratch, fn, opt, &g, 1, direct, dy, w, dx);
}

clcl_status clcl_conv2d_backward_weights_with(clcl_context *ctx, clcl_pool *scratch,
                                              const clcl_tensor *x, const clcl_tensor *dy,
                                              int stride, int pad, clcl_tensor *dw,
                                              const clcl_conv_options *opt) {
    const char *fn = "conv2d_backward_weights";
    char tdw[120];
    conv_geom g;
    int direct;

    CLCL_TRY(clcl_layers_expect_ndim(fn, "dw", dw, 4));
    CLCL_TRY(conv_geometry(fn, "x", x, "dw", dw, "dy", dy, stride, pad, &g));
    if (dw->buf == x->buf || dw->buf == dy->buf)
        return clcl_fail(CLCL_ERR_ARGUMENT, "%s: %s shares its buffer with an input", fn,
                         clcl_layers_describe("dw", dw, tdw, sizeof tdw));
    if (!scratch)
        return clcl_fail(CLCL_ERR_ARGUMENT, "%s: scratch pool is NULL; pass a clcl_pool", fn);
    CLCL_TRY(conv_choose(ctx, scratch, fn, opt, &g, PASS_WEIGHTS, x, dy, dw, &direct));
    return conv_pass(ctx, scratch, fn, opt, &g, PASS_WEIGHTS, direct, x, dy, dw);
}

clcl_status clcl_conv2d_forward(clcl_context *ctx, clcl_pool *scratch, const clcl_tensor *x,
                                const clcl_tensor *w, int stride, int pad, clcl_tensor *y) {
    return clcl_conv2d_forward_with(ctx, scratch, x, w, stride, pad, y, NULL);
}

clcl_status clcl_conv2d_backward_data(clcl_context *ctx, clcl_pool *scratch, const clcl_tensor *dy,
                                      const clcl_tensor *w, int stride, int pad, clcl_tensor *dx) {
    return clcl_conv2d_backward_data_with(ctx, scratch, dy, w, stride, pad, dx, NULL);
}

clcl_status clcl_conv2d_backward_weights(clcl_context *ctx, clcl_pool *scratch,
                                         const clcl_tensor *x, const clcl_tensor *dy, int stride,
                                         int pad, clcl_tensor *dw) {
    return clcl_conv2d_backward_weights_with(ctx, scratch, x, dy, stride, pad, dw, NULL);
}
