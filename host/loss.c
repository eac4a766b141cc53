/* The contrastive loss: the object, its checks and the fused kernels' launches. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "clcl/log.h"
#include "loss_internal.h"
#include "tuning_internal.h"

#define TARGET_WG 256 /* largest work-group tried; every GPU of interest allows it */
#define MIN_TAU   1e-4f
#define MAX_TAU   100.0f
#define MAX_ROWS  46340 /* (2N)^2 pair counts stay below 2^31 */
#define ROWS_WG   16    /* work-items per group of the row-block kernels, at most */

/* The row-block kernels' tunables (cl/contrastive.cl's defaults, passed explicitly so that
 * clcl_loss_describe can say them). */
static const loss_rows ROWS_SHAPE = {.rb = 6, .vw = 8, .nv = 2, .kv = 2};

const char *clcl_fn_mode_name(clcl_fn_mode mode) {
    return mode == CLCL_FN_ELIMINATE ? "eliminate" : "attract";
}

clcl_status clcl_fn_mode_parse(const char *text, clcl_fn_mode *mode) {
    if (text && strcmp(text, "attract") == 0) {
        *mode = CLCL_FN_ATTRACT;
        return CLCL_OK;
    }
    if (text && strcmp(text, "eliminate") == 0) {
        *mode = CLCL_FN_ELIMINATE;
        return CLCL_OK;
    }
    return clcl_fail(CLCL_ERR_ARGUMENT,
                     "false-negative mode '%s': expected 'attract' (pseudo-positives join the "
                     "positives) or 'eliminate' (they leave the denominator)",
                     text ? text : "(null)");
}

/* ---- the kernels' shape -------------------------------------------------------------- */

/* The tiles for a work-group of wg items (a power of two). */
static loss_tiles tiles_for(int wg) {
    loss_tiles t = {.wg = wg};
    t.ti = t.tj = wg >= 64 ? 32 : wg >= 16 ? 16 : wg;
    int per_item = t.ti * t.tj / wg;
    t.mi = 1;
    while (4 * t.mi * t.mi <= per_item)
        t.mi *= 2;
    t.mj = per_item / t.mi;
    t.td = wg < 16 ? wg : 16;
    return t;
}

/* Local memory of the fused kernels at these tiles, in bytes (as cl/contrastive.cl
 * declares it); the largest of the three. */
static size_t tiles_local_bytes(const loss_tiles *t, int cap) {
    size_t staged = 2 * (size_t)t->td * (t->tj + 1) + (size_t)t->ti * (t->tj + 1);
    size_t kept = cap > 0 ? (size_t)cap : 1;
    size_t forward = staged + t->tj + 8 * (size_t)t->ti + 2 * kept * t->ti;
    size_t backward = staged + (size_t)t->tj * (t->td + 1) + 5 * (size_t)(t->ti + t->tj);
    size_t reduce = 9 * (size_t)t->wg;
    size_t most = forward > backward ? forward : backward;
    return 4 * (most > reduce ? most : reduce);
}

static clcl_status get_kernels(clcl_loss *loss) {
    clcl_context *ctx = loss->ctx;
    const char *o = loss->options;
    if (loss->cfg.impl == CLCL_LOSS_FUSED_ROWS) {
        CLCL_TRY(
            clcl_context_kernel(ctx, "contrastive", "loss_rows_layout", o, &loss->rows_layout));
        CLCL_TRY(
            clcl_context_kernel(ctx, "contrastive", "loss_rows_forward", o, &loss->rows_forward));
        CLCL_TRY(
            clcl_context_kernel(ctx, "contrastive", "loss_rows_backward", o, &loss->rows_backward));
    }
    CLCL_TRY(clcl_context_kernel(ctx, "contrastive", "loss_normalize", o, &loss->normalize));
    CLCL_TRY(clcl_context_kernel(ctx, "contrastive", "loss_forward", o, &loss->forward));
    CLCL_TRY(clcl_context_kernel(ctx, "contrastive", "loss_backward", o, &loss->backward));
    CLCL_TRY(clcl_context_kernel(ctx, "contrastive", "loss_normalize_backward", o,
                                 &loss->normalize_backward));
    return clcl_context_kernel(ctx, "contrastive", "loss_reduce", o, &loss->reduce);
}

/* Does every fused kernel run at loss->tiles here? */
static clcl_status kernels_fit(clcl_loss *loss, int *fits) {
    cl_kernel all[] = {loss->normalize, loss->forward, loss->backward, loss->normalize_backward,
                       loss->reduce};
    const clcl_device_info *dev = clcl_context_device(loss->ctx);
    *fits = 1;
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        size_t wg;
        cl_ulong local = 0;
        CLCL_TRY(clcl_kernel_max_work_group(loss->ctx, all[k], &wg));
        CLCL_TRY_CL(clGetKernelWorkGroupInfo(all[k], dev->device_id, CL_KERNEL_LOCAL_MEM_SIZE,
                                             sizeof local, &local, NULL));
        if (wg < (size_t)loss->tiles.wg || local > dev->local_mem)
            *fits = 0;
    }
    return CLCL_OK;
}

/* The largest work-group (a power of two up to TARGET_WG) whose tiles fit the device's
 * work-group and local-memory limits, built. */
static clcl_status choose_tiles(clcl_loss *loss) {
    const clcl_device_info *dev = clcl_context_device(loss->ctx);
    int wg = 1;
    while (2 * wg <= TARGET_WG && (size_t)(2 * wg) <= dev->max_work_group)
        wg *= 2;
    for (; wg >= 1; wg /= 2) {
        loss_tiles t = tiles_for(wg);
        if (tiles_local_bytes(&t, loss->cfg.cap) > dev->local_mem)
            continue;
        const loss_rows *r = &loss->rows_shape;
        loss->tiles = t;
        snprintf(loss->options, sizeof loss->options,
                 "-DLOSS_DIM=%d -DLOSS_CAP=%d -DTILE_I=%d -DTILE_J=%d -DTILE_D=%d -DMICRO_I=%d "
                 "-DMICRO_J=%d -DROWS_RB=%d -DROWS_VW=%d -DROWS_NV=%d -DROWS_KV=%d",
                 loss->dim, loss->cfg.cap, t.ti, t.tj, t.td, t.mi, t.mj, r->rb, r->vw, r->nv,
                 r->kv);
        int fits;
        CLCL_TRY(get_kernels(loss));
        CLCL_TRY(kernels_fit(loss, &fits));
        if (fits)
            return CLCL_OK;
    }
    return clcl_fail(CLCL_ERR_ARGUMENT,
                     "contrastive loss: no work-group size fits '%s' (max work-group %zu, local "
                     "memory %llu bytes) at d %d, cap %d",
                     dev->name, dev->max_work_group, (unsigned long long)dev->local_mem, loss->dim,
                     loss->cfg.cap);
}

/* The row-block kernels' shape for this (2N, d) and their work-group (built already). */
static clcl_status choose_rows(clcl_loss *loss) {
    loss_rows *r = &loss->rows_shape;
    int cols = r->nv * r->vw, feats = r->kv * r->vw;
    r->ld = (loss->n2 + cols - 1) / cols * cols;
    r->dp = (loss->dim + feats - 1) / feats * feats;
    r->wg = 1;
    if (loss->cfg.impl != CLCL_LOSS_FUSED_ROWS)
        return CLCL_OK;
    if ((long long)r->ld * loss->dim > INT_MAX || (long long)loss->n2 * r->dp > INT_MAX)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "contrastive loss (fused rows): 2N = %d rows of d = %d padded to %d x %d "
                         "exceed 2^31 elements (the kernels index in 32 bits); use CLCL_LOSS_FUSED",
                         loss->n2, loss->dim, r->ld, r->dp);
    cl_kernel all[] = {loss->rows_layout, loss->rows_forward, loss->rows_backward};
    size_t most = ROWS_WG;
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
        size_t wg;
        CLCL_TRY(clcl_kernel_max_work_group(loss->ctx, all[k], &wg));
        most = wg < most ? wg : most;
    }
    while ((size_t)(2 * r->wg) <= most)
        r->wg *= 2;
    return CLCL_OK;
}

/* ---- creation -------------------------------------------------------------------------- */

static clcl_status check_config(int n2, int dim, const clcl_loss_config *c) {
    if (n2 < 2 || n2 % 2 != 0)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "contrastive loss: 2N = %d rows; expected an even number >= 2 (two "
                         "views of each of N images)",
                         n2);
    if (dim < 1)
        return clcl_fail(CLCL_ERR_ARGUMENT, "contrastive loss: d = %d; expected d >= 1", dim);
    if (n2 > MAX_ROWS || (long long)n2 * dim > INT_MAX)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "contrastive loss: 2N = %d rows of d = %d; expected 2N <= %d and "
                         "2N d < 2^31 (the kernels index and count in 32 bits)",
                         n2, dim, MAX_ROWS);
    if (c->mode != CLCL_FN_ATTRACT && c->mode != CLCL_FN_ELIMINATE)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "contrastive loss: mode %d; expected CLCL_FN_ATTRACT or "
                         "CLCL_FN_ELIMINATE",
                         (int)c->mode);
    if (!(c->weight >= 0.0f && c->weight <= 1.0f))
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "contrastive loss: pseudo-positive weight %g; expected 0 <= w <= 1",
                         (double)c->weight);
    if (c->cap < 0 || c->cap > CLCL_LOSS_MAX_CAP)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "contrastive loss: cap %d; expected 0 (no cap) to %d pseudo-positives "
                         "per anchor",
                         c->cap, CLCL_LOSS_MAX_CAP);
    if (c->impl != CLCL_LOSS_FUSED && c->impl != CLCL_LOSS_FUSED_ROWS &&
        c->impl != CLCL_LOSS_UNFUSED && c->impl != CLCL_LOSS_AUTO)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "contrastive loss: implementation %d; expected CLCL_LOSS_FUSED, "
                         "CLCL_LOSS_FUSED_ROWS, CLCL_LOSS_UNFUSED or CLCL_LOSS_AUTO",
                         (int)c->impl);
    return CLCL_OK;
}

static clcl_status allocate(clcl_loss *loss) {
    clcl_context *ctx = loss->ctx;
    size_t n2 = (size_t)loss->n2;
    CLCL_TRY(clcl_buffer_create(ctx, n2 * loss->dim * sizeof(float), "loss z (2N, d)", &loss->z));
    CLCL_TRY(clcl_buffer_create(ctx, n2 * sizeof(float), "loss norms (2N)", &loss->rnorm));
    CLCL_TRY(clcl_buffer_create(ctx, LOSS_RF_FIELDS * n2 * sizeof(float), "loss row results",
                                &loss->rowf));
    CLCL_TRY(clcl_buffer_create(ctx, LOSS_RI_FIELDS * n2 * sizeof(cl_int), "loss row counts",
                                &loss->rowi));
    CLCL_TRY(clcl_buffer_create(ctx, n2 * sizeof(cl_int), "loss labels (2N)", &loss->labels));
    CLCL_TRY(clcl_buffer_create(ctx, sizeof loss->result_init, "loss result", &loss->result));
    if (loss->cfg.impl == CLCL_LOSS_FUSED_ROWS) {
        const loss_rows *r = &loss->rows_shape;
        CLCL_TRY(clcl_buffer_create(ctx, (size_t)loss->dim * r->ld * sizeof(float),
                                    "loss z transposed (d, 2N padded)", &loss->zt));
        CLCL_TRY(clcl_buffer_create(ctx, n2 * r->dp * sizeof(float), "loss z padded (2N, d padded)",
                                    &loss->zp));
    }

    /* the label copy starts as zeros, so that it is never read uninitialised */
    cl_int zero = 0;
    CLCL_TRY_CL(clEnqueueFillBuffer(clcl_context_queue(ctx), loss->labels, &zero, sizeof zero, 0,
                                    n2 * sizeof(cl_int), 0, NULL, NULL));
    memset(loss->result_init, 0, sizeof loss->result_init);
    loss->result_init[LOSS_R_BAD] = INT_MAX;
    return CLCL_OK;
}

/* ---- CLCL_LOSS_AUTO: the faster implementation, measured once ------------------------ */

static double loss_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* One implementation at tau 0.2, theta 2 (no detection) on h: the loss, dh (host, n2 * dim
 * floats) and the best of up to 3 timed calls after the first (ms), fewer once 0.3 s are
 * spent. The first call is not timed: on some devices it includes building the kernels. */
static clcl_status loss_trial(clcl_context *ctx, const clcl_tensor *h, const clcl_loss_config *cfg,
                              float *value, float *dh_host, double *best) {
    clcl_loss *loss = NULL;
    clcl_tensor dh = {0};
    clcl_status st;

    CLCL_TRY(clcl_loss_create(ctx, h->shape[0], h->shape[1], cfg, &loss));
    CLCL_TRY_GOTO(st, clcl_tensor_create(ctx, &dh, 2, h->shape), done);
    CLCL_TRY_GOTO(st, clcl_loss_forward_backward(loss, h, NULL, 0.2f, 2.0f, value, &dh, NULL),
                  done);
    CLCL_TRY_GOTO(st, clcl_tensor_read(ctx, &dh, dh_host), done);
    *best = -1;
    for (int r = 0, spent = 0; r < 3 && spent < 300; r++) {
        float v;
        double t0 = loss_now_ms();
        CLCL_TRY_GOTO(st, clcl_loss_forward_backward(loss, h, NULL, 0.2f, 2.0f, &v, &dh, NULL),
                      done);
        double ms = loss_now_ms() - t0;
        spent += (int)ms;
        if (*best < 0 || ms < *best)
            *best = ms;
    }
done:
    clcl_tensor_free(&dh);
    clcl_loss_free(loss);
    return st;
}

/* 1 when the two results agree: loss to 1e-4 relative, dh to 1e-3 of its largest entry. */
static int loss_results_agree(float va, const float *a, float vb, const float *b, size_t n) {
    double worst = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        worst = d > worst || isnan(d) ? (isnan(d) ? INFINITY : d) : worst;
        scale = fabs(a[i]) > scale ? fabs(a[i]) : scale;
    }
    return fabs((double)va - vb) <= 1e-4 * fabs((double)va) + 1e-6 && worst <= 1e-3 * scale + 1e-7;
}

/* Seeded rows h (n2, dim), uniform in [-1, 1). */
static clcl_status loss_seeded_rows(clcl_context *ctx, int n2, int dim, clcl_tensor *h) {
    size_t n = (size_t)n2 * dim;
    float *host = malloc(n * sizeof *host);
    uint64_t x = 0x10551234u + (uint64_t)n2 * 7919u + (uint64_t)dim;
    if (!host)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "loss tuning: out of host memory");
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        host[i] = (float)(x >> 40) * (2.0f / 16777216.0f) - 1.0f;
    }
    clcl_status st = clcl_tensor_create(ctx, h, 2, (int[]){n2, dim});
    if (st == CLCL_OK)
        st = clcl_tensor_write(ctx, h, host);
    free(host);
    return st;
}

/* Every implementation on seeded rows (the row blocks, unfused, the tiles); the tiled
 * kernels' result is the reference that the others must agree with to be chosen, and the
 * fastest of those wins. */
static clcl_status loss_measure(clcl_context *ctx, int n2, int dim, const clcl_loss_config *config,
                                tuning_loss_entry *e) {
    static const clcl_loss_impl order[3] = {CLCL_LOSS_FUSED_ROWS, CLCL_LOSS_UNFUSED,
                                            CLCL_LOSS_FUSED};
    static const char *names[3] = {"fused rows", "unfused", "fused tiles"};
    clcl_tensor h = {0};
    float v[3] = {0};
    int ran[3] = {0};
    size_t n = (size_t)n2 * dim;
    float *dh = malloc(3 * n * sizeof *dh);
    clcl_status st = dh ? loss_seeded_rows(ctx, n2, dim, &h)
                        : clcl_fail(CLCL_ERR_NO_MEMORY, "loss tuning: out of host memory");

    *e = (tuning_loss_entry){.n2 = n2,
                             .dim = dim,
                             .impl = CLCL_LOSS_FUSED,
                             .ms_fused = -1,
                             .ms_unfused = -1,
                             .ms_rows = -1};
    double *ms[3] = {&e->ms_rows, &e->ms_unfused, &e->ms_fused};
    for (int c = 0; c < 3 && st == CLCL_OK; c++) {
        clcl_loss_config cfg = *config;
        cfg.impl = order[c];
        clcl_status tried = loss_trial(ctx, &h, &cfg, &v[c], dh + c * n, ms[c]);
        if (tried != CLCL_OK && order[c] == CLCL_LOSS_FUSED) {
            st = tried;
        } else if (tried != CLCL_OK) {
            CLCL_LOG_WARN("loss", "%s loss failed at 2N %d d %d: %s", names[c], n2, dim,
                          clcl_last_error());
            *ms[c] = -1;
        } else {
            ran[c] = 1;
        }
    }

    /* the fastest of those that agree with the tiles */
    for (int c = 0; c < 2 && st == CLCL_OK; c++) {
        if (!ran[c])
            continue;
        if (!loss_results_agree(v[2], dh + 2 * n, v[c], dh + c * n, n)) {
            CLCL_LOG_WARN("loss",
                          "%s loss disagrees with the fused tiles at 2N %d d %d (%g against %g); "
                          "not chosen",
                          names[c], n2, dim, (double)v[c], (double)v[2]);
            continue;
        }
        double best = e->impl == CLCL_LOSS_FUSED     ? e->ms_fused
                      : e->impl == CLCL_LOSS_UNFUSED ? e->ms_unfused
                                                     : e->ms_rows;
        if (*ms[c] < best)
            e->impl = order[c];
    }
    clcl_tensor_free(&h);
    free(dh);
    return st;
}

static const char *impl_name(clcl_loss_impl impl) {
    return impl == CLCL_LOSS_FUSED        ? "fused tiles"
           : impl == CLCL_LOSS_FUSED_ROWS ? "fused rows"
                                          : "unfused";
}

/* The implementation CLCL_LOSS_AUTO stands for at (2N, d) on ctx's device. */
static clcl_status loss_choose(clcl_context *ctx, int n2, int dim, const clcl_loss_config *config,
                               clcl_loss_impl *impl) {
    tuning_loss_entry e, kept;
    if (!tuning_loss_find(ctx, n2, dim, &e)) {
        CLCL_TRY(loss_measure(ctx, n2, dim, config, &e));
        CLCL_LOG_INFO("loss",
                      "2N %d d %d: fused tiles %.3f ms, fused rows %.3f ms, unfused %.3f ms -> %s",
                      n2, dim, e.ms_fused, e.ms_rows, e.ms_unfused, impl_name(e.impl));
        tuning_loss_store(ctx, &e, &kept);
        e = kept;
    }
    *impl = e.impl;
    return CLCL_OK;
}

clcl_status clcl_loss_create(clcl_context *ctx, int n2, int dim, const clcl_loss_config *config,
                             clcl_loss **out) {
    *out = NULL;
    CLCL_TRY(check_config(n2, dim, config));
    clcl_loss *loss = calloc(1, sizeof *loss);
    if (!loss)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory creating a contrastive loss");
    loss->ctx = ctx;
    loss->n2 = n2;
    loss->dim = dim;
    loss->cfg = *config;
    loss->rows_shape = ROWS_SHAPE;

    clcl_status st;
    if (config->impl == CLCL_LOSS_AUTO)
        CLCL_TRY_GOTO(st, loss_choose(ctx, n2, dim, config, &loss->cfg.impl), fail);
    CLCL_TRY_GOTO(st, choose_tiles(loss), fail);
    CLCL_TRY_GOTO(st, choose_rows(loss), fail);
    CLCL_TRY_GOTO(st, allocate(loss), fail);
    if (loss->cfg.impl == CLCL_LOSS_UNFUSED)
        CLCL_TRY_GOTO(st, clcl_loss_unfused_prepare(loss), fail);
    char text[160];
    CLCL_LOG_DEBUG("loss", "%s", clcl_loss_describe(loss, text, sizeof text));
    *out = loss;
    return CLCL_OK;
fail:
    clcl_loss_free(loss);
    return st;
}

void clcl_loss_free(clcl_loss *loss) {
    if (!loss)
        return;
    cl_mem all[] = {loss->z,      loss->rnorm, loss->rowf, loss->rowi, loss->labels,
                    loss->result, loss->sim,   loss->zt,   loss->zp};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i])
            clReleaseMemObject(all[i]);
    free(loss);
}

const char *clcl_loss_describe(const clcl_loss *loss, char *buf, size_t size) {
    const loss_tiles *t = &loss->tiles;
    const loss_rows *r = &loss->rows_shape;
    if (loss->cfg.impl == CLCL_LOSS_FUSED_ROWS) {
        snprintf(buf, size,
                 "fused rows, %d rows x %dx%d columns per item, dz %d features a step, "
                 "work-group %d, 2N %d, d %d, %s, w %g, cap %d",
                 r->rb, r->nv, r->vw, r->kv * r->vw, r->wg, loss->n2, loss->dim,
                 clcl_fn_mode_name(loss->cfg.mode), (double)loss->cfg.weight, loss->cfg.cap);
        return buf;
    }
    snprintf(buf, size,
             "%s, tiles %dx%dx%d, %dx%d per item, work-group %d, 2N %d, d %d, %s, w %g, cap %d",
             loss->cfg.impl == CLCL_LOSS_FUSED ? "fused" : "unfused (CLBlast)", t->ti, t->tj, t->td,
             t->mi, t->mj, t->wg, loss->n2, loss->dim, clcl_fn_mode_name(loss->cfg.mode),
             (double)loss->cfg.weight, loss->cfg.cap);
    return buf;
}

/* ---- a call ---------------------------------------------------------------------------- */

static clcl_status check_tensor(const clcl_loss *loss, const clcl_tensor *t, const char *what) {
    char shape[96];
    if (!t || !t->buf)
        return clcl_fail(CLCL_ERR_ARGUMENT, "contrastive loss: %s is missing", what);
    if (t->ndim != 2 || t->shape[0] != loss->n2 || t->shape[1] != loss->dim)
        return clcl_fail(
            CLCL_ERR_SHAPE, "contrastive loss: %s has shape %s; this loss was made for (%d, %d)",
            what, clcl_shape_string(t->ndim, t->shape, shape, sizeof shape), loss->n2, loss->dim);
    return CLCL_OK;
}

static clcl_status check_labels(clcl_loss *loss, const clcl_loss_labels *labels) {
    if ((labels->host != NULL) == (labels->device != NULL))
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "contrastive loss: labels must name either host or device memory");
    if (labels->host) {
        CLCL_TRY_CL(clEnqueueWriteBuffer(clcl_context_queue(loss->ctx), loss->labels, CL_TRUE, 0,
                                         (size_t)loss->n2 * sizeof(cl_int), labels->host, 0, NULL,
                                         NULL));
        return CLCL_OK;
    }
    size_t bytes = 0;
    CLCL_TRY_CL(clGetMemObjectInfo(labels->device, CL_MEM_SIZE, sizeof bytes, &bytes, NULL));
    if (bytes < (size_t)loss->n2 * sizeof(cl_int))
        return clcl_fail(CLCL_ERR_SHAPE,
                         "contrastive loss: the label buffer holds %zu bytes; expected 2N = %d "
                         "ints (%zu bytes)",
                         bytes, loss->n2, (size_t)loss->n2 * sizeof(cl_int));
    return CLCL_OK;
}

static clcl_status make_params(clcl_loss *loss, const clcl_loss_labels *labels, float tau,
                               float theta, loss_params *p) {
    if (!(tau >= MIN_TAU && tau <= MAX_TAU))
        return clcl_fail(CLCL_ERR_ARGUMENT, "contrastive loss: temperature %g; expected %g to %g",
                         (double)tau, (double)MIN_TAU, (double)MAX_TAU);
    if (isnan(theta))
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "contrastive loss: threshold is NaN; expected a number (> 1: off)");
    p->inv_tau = 1.0f / tau;
    p->theta = theta > 1.0f ? INFINITY : theta;
    p->weight = loss->cfg.weight;
    p->mode = (int)loss->cfg.mode;
    p->scale = (float)(1.0 / ((double)loss->n2 * tau));
    p->labels = loss->labels;
    p->has_labels = labels != NULL;
    if (labels) {
        CLCL_TRY(check_labels(loss, labels));
        if (labels->device)
            p->labels = labels->device;
    }
    return CLCL_OK;
}

static clcl_status launch_rows(clcl_loss *loss, cl_kernel k) {
    size_t global = (size_t)loss->n2, local = (size_t)loss->tiles.wg;
    return clcl_launch(loss->ctx, k, 1, &global, &local);
}

static clcl_status launch_tiles(clcl_loss *loss, cl_kernel k) {
    size_t groups = (size_t)(loss->n2 + loss->tiles.ti - 1) / loss->tiles.ti;
    size_t local = (size_t)loss->tiles.wg, global = groups * local;
    return clcl_launch(loss->ctx, k, 1, &global, &local);
}

static clcl_status fused_forward(clcl_loss *loss, const loss_params *p) {
    CLCL_TRY(clcl_kernel_args(loss->forward, CLCL_ARG_MEM(loss->z), CLCL_ARG_MEM(p->labels),
                              CLCL_ARG_MEM(loss->rowf), CLCL_ARG_MEM(loss->rowi),
                              CLCL_ARG_INT(loss->n2), CLCL_ARG_FLOAT(p->inv_tau),
                              CLCL_ARG_FLOAT(p->theta), CLCL_ARG_FLOAT(p->weight),
                              CLCL_ARG_INT(p->mode), CLCL_ARG_INT(p->has_labels)));
    return launch_tiles(loss, loss->forward);
}

static clcl_status fused_backward(clcl_loss *loss, const loss_params *p, cl_mem dz) {
    CLCL_TRY(clcl_kernel_args(loss->backward, CLCL_ARG_MEM(loss->z), CLCL_ARG_MEM(loss->rowf),
                              CLCL_ARG_MEM(loss->rowi), CLCL_ARG_MEM(dz), CLCL_ARG_INT(loss->n2),
                              CLCL_ARG_FLOAT(p->inv_tau), CLCL_ARG_FLOAT(p->theta),
                              CLCL_ARG_FLOAT(p->weight), CLCL_ARG_INT(p->mode),
                              CLCL_ARG_FLOAT(p->scale)));
    return launch_tiles(loss, loss->backward);
}

static clcl_status launch_row_blocks(clcl_loss *loss, cl_kernel k) {
    const loss_rows *r = &loss->rows_shape;
    size_t global = (size_t)(loss->n2 + r->rb - 1) / r->rb, local = (size_t)r->wg;
    return clcl_launch(loss->ctx, k, 1, &global, &local);
}

/* zt and zp from z, then the forward pass in row blocks. */
static clcl_status rows_forward(clcl_loss *loss, const loss_params *p) {
    const loss_rows *r = &loss->rows_shape;
    CLCL_TRY(clcl_kernel_args(loss->rows_layout, CLCL_ARG_MEM(loss->z), CLCL_ARG_MEM(loss->zt),
                              CLCL_ARG_MEM(loss->zp), CLCL_ARG_INT(loss->n2), CLCL_ARG_INT(r->ld)));
    size_t global = (size_t)r->ld, local = (size_t)r->wg;
    CLCL_TRY(clcl_launch(loss->ctx, loss->rows_layout, 1, &global, &local));
    CLCL_TRY(clcl_kernel_args(
        loss->rows_forward, CLCL_ARG_MEM(loss->z), CLCL_ARG_MEM(loss->zt), CLCL_ARG_MEM(p->labels),
        CLCL_ARG_MEM(loss->rowf), CLCL_ARG_MEM(loss->rowi), CLCL_ARG_INT(loss->n2),
        CLCL_ARG_FLOAT(p->inv_tau), CLCL_ARG_FLOAT(p->theta), CLCL_ARG_FLOAT(p->weight),
        CLCL_ARG_INT(p->mode), CLCL_ARG_INT(p->has_labels)));
    return launch_row_blocks(loss, loss->rows_forward);
}

static clcl_status rows_backward(clcl_loss *loss, const loss_params *p, cl_mem dz) {
    CLCL_TRY(clcl_kernel_args(
        loss->rows_backward, CLCL_ARG_MEM(loss->z), CLCL_ARG_MEM(loss->zt), CLCL_ARG_MEM(loss->zp),
        CLCL_ARG_MEM(loss->rowf), CLCL_ARG_MEM(loss->rowi), CLCL_ARG_MEM(dz),
        CLCL_ARG_INT(loss->n2), CLCL_ARG_FLOAT(p->inv_tau), CLCL_ARG_FLOAT(p->theta),
        CLCL_ARG_FLOAT(p->weight), CLCL_ARG_INT(p->mode), CLCL_ARG_FLOAT(p->scale)));
    return launch_row_blocks(loss, loss->rows_backward);
}

/* Normalisation, the forward pass and, with dh, the backward pass, all enqueued. */
static clcl_status enqueue(clcl_loss *loss, const clcl_tensor *h, const loss_params *p,
                           clcl_tensor *dh) {
    cl_command_queue q = clcl_context_queue(loss->ctx);
    CLCL_TRY_CL(clEnqueueWriteBuffer(q, loss->result, CL_FALSE, 0, sizeof loss->result_init,
                                     loss->result_init, 0, NULL, NULL));
    CLCL_TRY(clcl_kernel_args(loss->normalize, CLCL_ARG_MEM(h->buf), CLCL_ARG_MEM(loss->z),
                              CLCL_ARG_MEM(loss->rnorm), CLCL_ARG_MEM(loss->result),
                              CLCL_ARG_INT(loss->n2)));
    CLCL_TRY(launch_rows(loss, loss->normalize));

    const clcl_loss_impl impl = loss->cfg.impl;
    if (impl == CLCL_LOSS_FUSED)
        CLCL_TRY(fused_forward(loss, p));
    else if (impl == CLCL_LOSS_FUSED_ROWS)
        CLCL_TRY(rows_forward(loss, p));
    else
        CLCL_TRY(clcl_loss_unfused_forward(loss, p));
    if (dh) {
        if (impl == CLCL_LOSS_FUSED)
            CLCL_TRY(fused_backward(loss, p, dh->buf));
        else if (impl == CLCL_LOSS_FUSED_ROWS)
            CLCL_TRY(rows_backward(loss, p, dh->buf));
        else
            CLCL_TRY(clcl_loss_unfused_backward(loss, p, dh->buf));
        CLCL_TRY(clcl_kernel_args(loss->normalize_backward, CLCL_ARG_MEM(loss->z),
                                  CLCL_ARG_MEM(loss->rnorm), CLCL_ARG_MEM(dh->buf),
                                  CLCL_ARG_INT(loss->n2)));
        CLCL_TRY(launch_rows(loss, loss->normalize_backward));
    }

    CLCL_TRY(clcl_kernel_args(loss->reduce, CLCL_ARG_MEM(loss->rowf), CLCL_ARG_MEM(loss->rowi),
                              CLCL_ARG_MEM(loss->result), CLCL_ARG_INT(loss->n2)));
    size_t one = (size_t)loss->tiles.wg;
    return clcl_launch(loss->ctx, loss->reduce, 1, &one, &one);
}

static float word_float(cl_int w) {
    float f;
    memcpy(&f, &w, sizeof f);
    return f;
}

static void fill_stats(const clcl_loss *loss, const cl_int *r, int has_labels, clcl_loss_stats *s) {
    double n2 = loss->n2;
    memset(s, 0, sizeof *s);
    s->pseudo_total = r[LOSS_R_COUNT];
    s->pseudo_per_anchor = r[LOSS_R_COUNT] / n2;
    s->above_per_anchor = r[LOSS_R_ABOVE] / n2;
    s->capped_share = r[LOSS_R_CAPPED] / n2;
    s->pseudo_similarity = r[LOSS_R_COUNT] ? word_float(r[LOSS_R_POSSUM]) / r[LOSS_R_COUNT] : 0;
    s->partner_similarity = word_float(r[LOSS_R_PARTNER]) / n2;
    s->partner_top1 = r[LOSS_R_TOP1] / n2;
    s->has_labels = has_labels;
    if (has_labels) {
        s->pseudo_same = r[LOSS_R_TP];
        s->same_total = r[LOSS_R_SAME];
        s->precision = r[LOSS_R_COUNT] ? (double)r[LOSS_R_TP] / r[LOSS_R_COUNT] : 0.0;
        s->recall = r[LOSS_R_SAME] ? (double)r[LOSS_R_TP] / r[LOSS_R_SAME] : 0.0;
    }
}

static clcl_status run(clcl_loss *loss, const clcl_tensor *h, const clcl_loss_labels *labels,
                       float tau, float theta, float *loss_value, clcl_tensor *dh,
                       clcl_loss_stats *stats) {
    cl_int r[LOSS_R_WORDS];
    loss_params p;

    /* checks, then everything enqueued, then one read of the sums */
    CLCL_TRY(check_tensor(loss, h, "h"));
    if (dh) {
        CLCL_TRY(check_tensor(loss, dh, "dh"));
        if (dh->buf == h->buf)
            return clcl_fail(CLCL_ERR_ARGUMENT, "contrastive loss: dh and h are the same buffer");
    }
    CLCL_TRY(make_params(loss, labels, tau, theta, &p));
    CLCL_TRY(enqueue(loss, h, &p, dh));
    CLCL_TRY_CL(clEnqueueReadBuffer(clcl_context_queue(loss->ctx), loss->result, CL_TRUE, 0,
                                    sizeof r, r, 0, NULL, NULL));

    /* a non-finite row: report it and leave no garbage behind */
    if (r[LOSS_R_BAD] != INT_MAX) {
        if (dh) {
            float zero = 0.0f;
            CLCL_TRY_CL(clEnqueueFillBuffer(clcl_context_queue(loss->ctx), dh->buf, &zero,
                                            sizeof zero, 0, clcl_tensor_bytes(dh), 0, NULL, NULL));
            CLCL_TRY(clcl_finish(loss->ctx));
        }
        return clcl_fail(CLCL_ERR_NON_FINITE,
                         "contrastive loss: row %d of h (%d, %d) holds a NaN or an infinity, "
                         "or its squared norm overflows float; check the network's output",
                         r[LOSS_R_BAD], loss->n2, loss->dim);
    }
    float value = (float)(word_float(r[LOSS_R_LOSS]) / (double)loss->n2);
    if (!isfinite(value))
        return clcl_fail(CLCL_ERR_NON_FINITE, "contrastive loss: the loss is %g at tau %g",
                         (double)value, (double)tau);
    if (loss_value)
        *loss_value = value;
    if (stats)
        fill_stats(loss, r, labels != NULL, stats);
    return CLCL_OK;
}

clcl_status clcl_loss_forward_backward(clcl_loss *loss, const clcl_tensor *h,
                                       const clcl_loss_labels *labels, float tau, float theta,
                                       float *loss_value, clcl_tensor *dh, clcl_loss_stats *stats) {
    if (!dh)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "contrastive loss: forward_backward needs dh; use clcl_loss_forward");
    return run(loss, h, labels, tau, theta, loss_value, dh, stats);
}

clcl_status clcl_loss_forward(clcl_loss *loss, const clcl_tensor *h, const clcl_loss_labels *labels,
                              float tau, float theta, float *loss_value, clcl_loss_stats *stats) {
    return run(loss, h, labels, tau, theta, loss_value, NULL, stats);
}
