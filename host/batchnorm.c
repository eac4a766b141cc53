/* Batch normalization, 2d (N, C, H, W) and 1d (N, C): training, eval and backward. */
#include <stdio.h>

#include "check.h"
#include "clcl/layers.h"
#include "layers_internal.h"

/* Work-items per channel's work-group at most: a deeper tree buys nothing once every
 * work-item has a few hundred values to add. */
#define BN_GROUP_CAP 256

/* Consecutive values a work-item takes per turn (BN_RUN in cl/batchnorm.cl): CPUs run a
 * work-group's work-items one after another, so interleaved single values would stream
 * each cache line 16 times; GPUs want neighbouring work-items on neighbouring values. */
#define BN_RUN_CPU 64
#define BN_RUN_GPU 1

/* x's layout as (N, C, L). */
typedef struct {
    int n, c, l;
} bn_geom;

/* Checks x (N, C, H, W) or (N, C) and each of the (C) parameter tensors `params`
 * (NULL-terminated list of name, tensor pairs), and gives x's (N, C, L). */
static clcl_status bn_check(const char *fn, const char *xname, const clcl_tensor *x,
                            const char *const *names, const clcl_tensor *const *params,
                            bn_geom *g) {
    char tx[120];
    if (!x || !x->buf || (x->ndim != 2 && x->ndim != 4))
        return clcl_fail(CLCL_ERR_SHAPE, "%s: %s: expected (N, C, H, W) or (N, C)", fn,
                         clcl_layers_describe(xname, x, tx, sizeof tx));
    CLCL_TRY(clcl_layers_expect_ndim(fn, xname, x, x->ndim));
    g->n = x->shape[0];
    g->c = x->shape[1];
    g->l = x->ndim == 4 ? x->shape[2] * x->shape[3] : 1;
    for (int i = 0; names[i]; i++)
        CLCL_TRY(clcl_layers_expect_shape(fn, names[i], params[i], 1, &g->c));
    return CLCL_OK;
}

/* The work-group size of a per-channel kernel using `floats` local floats per work-item:
 * a power of two within the kernel's and the device's limits, its local buffer within
 * half the local memory (the rest is left to the implementation). Depends on nothing that
 * changes between calls, so the summation order, and the bits, stay the same. */
static clcl_status bn_group(clcl_context *ctx, cl_kernel k, int floats, size_t *out) {
    const clcl_device_info *dev = clcl_context_device(ctx);
    size_t limit;

    CLCL_TRY(clcl_kernel_max_work_group(ctx, k, &limit));
    size_t by_local = (size_t)(dev->local_mem / 2) / ((size_t)floats * sizeof(float));
    if (by_local < limit)
        limit = by_local;
    if (limit > BN_GROUP_CAP)
        limit = BN_GROUP_CAP;
    if (limit < 1)
        return clcl_fail(CLCL_ERR_TOO_LARGE,
                         "batchnorm: no work-group fits in %llu bytes of "
                         "local memory",
                         (unsigned long long)dev->local_mem);
    *out = clcl_layers_pow2_floor(limit);
    return CLCL_OK;
}

/* A kernel of cl/batchnorm.cl built with BN_RUN `run` (0: this device's default). */
static clcl_status bn_kernel(clcl_context *ctx, const char *name, int run, cl_kernel *k) {
    char options[32];
    int cpu = (clcl_context_device(ctx)->type & CL_DEVICE_TYPE_CPU) != 0;
    if (run < 1)
        run = cpu ? BN_RUN_CPU : BN_RUN_GPU;
    snprintf(options, sizeof options, "-DBN_RUN=%d", run);
    return clcl_context_kernel(ctx, "batchnorm", name, options, k);
}

/* Enqueues a per-channel kernel: C work-groups of `group` work-items. */
static clcl_status bn_launch(clcl_context *ctx, cl_kernel k, int channels, size_t group) {
    size_t global = (size_t)channels * group;
    return clcl_launch(ctx, k, 1, &global, &group);
}

clcl_status clcl_batchnorm_forward_train_run(clcl_context *ctx, const clcl_tensor *x,
                                             const clcl_tensor *gamma, const clcl_tensor *beta,
                                             clcl_tensor *running_mean, clcl_tensor *running_var,
                                             float momentum, float eps, clcl_tensor *y,
                                             clcl_tensor *save_mean, clcl_tensor *save_invstd,
                                             int run) {
    const char *fn = "batchnorm_forward_train";
    const char *names[] = {"gamma",       "beta", "running_mean", "running_var", "save_mean",
                           "save_invstd", NULL};
    const clcl_tensor *params[] = {gamma, beta, running_mean, running_var, save_mean, save_invstd};
    char tx[120];
    bn_geom g;
    cl_kernel k;
    size_t group;

    CLCL_TRY(bn_check(fn, "x", x, names, params, &g));
    CLCL_TRY(clcl_layers_expect_shape(fn, "y", y, x->ndim, x->shape));
    if ((long long)g.n * g.l < 2)
        return clcl_fail(CLCL_ERR_SHAPE,
                         "%s: %s: training needs more than one value per "
                         "channel",
                         fn, clcl_layers_describe("x", x, tx, sizeof tx));
    CLCL_TRY(bn_kernel(ctx, "bn_forward_train", run, &k));
    CLCL_TRY(bn_group(ctx, k, 1, &group));
    CLCL_TRY(clcl_kernel_args(
        k, CLCL_ARG_MEM(x->buf), CLCL_ARG_MEM(gamma->buf), CLCL_ARG_MEM(beta->buf),
        CLCL_ARG_MEM(running_mean->buf), CLCL_ARG_MEM(running_var->buf), CLCL_ARG_MEM(y->buf),
        CLCL_ARG_MEM(save_mean->buf), CLCL_ARG_MEM(save_invstd->buf), CLCL_ARG_INT(g.n),
        CLCL_ARG_INT(g.c), CLCL_ARG_INT(g.l), CLCL_ARG_FLOAT(momentum), CLCL_ARG_FLOAT(eps),
        CLCL_ARG_LOCAL(group * sizeof(float))));
    return bn_launch(ctx, k, g.c, group);
}

clcl_status clcl_batchnorm_forward_eval(clcl_context *ctx, const clcl_tensor *x,
                                        const clcl_tensor *gamma, const clcl_tensor *beta,
                                        const clcl_tensor *running_mean,
                                        const clcl_tensor *running_var, float eps, clcl_tensor *y) {
    const char *fn = "batchnorm_forward_eval";
    const char *names[] = {"gamma", "beta", "running_mean", "running_var", NULL};
    const clcl_tensor *params[] = {gamma, beta, running_mean, running_var};
    bn_geom g;
    cl_kernel k;

    CLCL_TRY(bn_check(fn, "x", x, names, params, &g));
    CLCL_TRY(clcl_layers_expect_shape(fn, "y", y, x->ndim, x->shape));
    CLCL_TRY(bn_kernel(ctx, "bn_forward_eval", 0, &k));
    CLCL_TRY(clcl_kernel_args(
        k, CLCL_ARG_MEM(x->buf), CLCL_ARG_MEM(gamma->buf), CLCL_ARG_MEM(beta->buf),
        CLCL_ARG_MEM(running_mean->buf), CLCL_ARG_MEM(running_var->buf), CLCL_ARG_MEM(y->buf),
        CLCL_ARG_INT((int)x->count), CLCL_ARG_INT(g.c), CLCL_ARG_INT(g.l), CLCL_ARG_FLOAT(eps)));
    return clcl_layers_launch(ctx, k, 1, (size_t[]){x->count});
}

clcl_status clcl_batchnorm_backward_run(clcl_context *ctx, const clcl_tensor *x,
                                        const clcl_tensor *dy, const clcl_tensor *gamma,
                                        const clcl_tensor *save_mean,
                                        const clcl_tensor *save_invstd, clcl_tensor *dx,
                                        clcl_tensor *dgamma, clcl_tensor *dbeta, int run) {
    const char *fn = "batchnorm_backward";
    const char *names[] = {"gamma", "save_mean", "save_invstd", "dgamma", "dbeta", NULL};
    const clcl_tensor *params[] = {gamma, save_mean, save_invstd, dgamma, dbeta};
    bn_geom g;
    cl_kernel k;
    size_t group;

    CLCL_TRY(bn_check(fn, "x", x, names, params, &g));
    CLCL_TRY(clcl_layers_expect_shape(fn, "dy", dy, x->ndim, x->shape));
    CLCL_TRY(clcl_layers_expect_shape(fn, "dx", dx, x->ndim, x->shape));
    CLCL_TRY(bn_kernel(ctx, "bn_backward", run, &k));
    CLCL_TRY(bn_group(ctx, k, 2, &group));
    CLCL_TRY(clcl_kernel_args(
        k, CLCL_ARG_MEM(x->buf), CLCL_ARG_MEM(dy->buf), CLCL_ARG_MEM(gamma->buf),
        CLCL_ARG_MEM(save_mean->buf), CLCL_ARG_MEM(save_invstd->buf), CLCL_ARG_MEM(dx->buf),
        CLCL_ARG_MEM(dgamma->buf), CLCL_ARG_MEM(dbeta->buf), CLCL_ARG_INT(g.n), CLCL_ARG_INT(g.c),
        CLCL_ARG_INT(g.l), CLCL_ARG_LOCAL(2 * group * sizeof(float))));
    return bn_launch(ctx, k, g.c, group);
}

clcl_status clcl_batchnorm_forward_train(clcl_context *ctx, clcl_pool *scratch,
                                         const clcl_tensor *x, const clcl_tensor *gamma,
                                         const clcl_tensor *beta, clcl_tensor *running_mean,
                                         clcl_tensor *running_var, float momentum, float eps,
                                         clcl_tensor *y, clcl_tensor *save_mean,
                                         clcl_tensor *save_invstd) {
    return clcl_batchnorm_forward_train_run(ctx, x, gamma, beta, running_mean, running_var,
                                            momentum, eps, y, save_mean, save_invstd, 0);
}

clcl_status clcl_batchnorm_backward(clcl_context *ctx, clcl_pool *scratch, const clcl_tensor *x,
                                    const clcl_tensor *dy, const clcl_tensor *gamma,
                                    const clcl_tensor *save_mean, const clcl_tensor *save_invstd,
                                    clcl_tensor *dx, clcl_tensor *dgamma, clcl_tensor *dbeta) {
    return clcl_batchnorm_backward_run(ctx, x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta,
                                       0);
}
