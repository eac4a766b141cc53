/* The Gaussian blur: weights, the choice of method, the direct separable path. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment_private.h"
#include "check.h"
#include "clcl/log.h"

/* The kernel size from which the FFT path is faster, as bench/bench_blur measures it
 * (docs/augment.md); 0: no crossover was found, the direct path is always used. Measured on
 * PoCL (CPU): the FFT path was 2.6 to 50 times slower at every image size (32 to 224) and
 * kernel size (3 to 191) tried, so there is none. No GPU has been measured. */
#define CLCL_BLUR_FFT_MIN_KERNEL 0

clcl_blur_method clcl_blur_choose(int kernel, int height, int width) {
    if (CLCL_BLUR_FFT_MIN_KERNEL > 0 && kernel >= CLCL_BLUR_FFT_MIN_KERNEL)
        return CLCL_BLUR_FFT;
    return CLCL_BLUR_DIRECT;
}

void clcl_blur_weights(double sigma, int kernel, double *w) {
    int radius = kernel / 2;
    double sum = 0.0;
    for (int k = 0; k <= radius; k++) {
        double x = k / sigma;
        w[k] = exp(-0.5 * x * x);
        sum += k == 0 ? w[k] : 2.0 * w[k];
    }
    for (int k = 0; k <= radius; k++)
        w[k] /= sum;
}

void clcl_blur_weights_float(float sigma, int kernel, float *w) {
    double wd[kernel / 2 + 1];
    int radius = kernel / 2;
    if (sigma <= 0.0f) {
        memset(w, 0, (size_t)(radius + 1) * sizeof *w);
        return;
    }
    clcl_blur_weights(sigma, kernel, wd);
    for (int k = 0; k <= radius; k++)
        w[k] = (float)wd[k];
}

static clcl_status check_blur_size(int channels, int height, int width, int kernel) {
    int side = height < width ? height : width;
    if (kernel < 1 || kernel % 2 == 0)
        return clcl_fail(CLCL_ERR_ARGUMENT, "blur: kernel size %d; expected an odd size >= 1",
                         kernel);
    if (kernel / 2 > side - 1)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "blur: kernel size %d is too large for %dx%d images; its radius must "
                         "be below the short side (reflected borders)",
                         kernel, height, width);
    if (channels < 1)
        return clcl_fail(CLCL_ERR_ARGUMENT, "blur: %d channels; expected at least 1", channels);
    return CLCL_OK;
}

clcl_status clcl_blur_create(clcl_context *ctx, int max_images, int channels, int height, int width,
                             int kernel, clcl_blur_method method, clcl_blur **out) {
    *out = NULL;
    CLCL_TRY(check_blur_size(channels, height, width, kernel));
    if (max_images < 1)
        return clcl_fail(CLCL_ERR_ARGUMENT, "blur: max_images %d; expected at least 1", max_images);
    clcl_blur *b = calloc(1, sizeof *b);
    if (!b)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "blur: out of host memory");
    *b = (clcl_blur){.ctx = ctx,
                     .method = method == CLCL_BLUR_AUTO ? clcl_blur_choose(kernel, height, width)
                                                        : method,
                     .max_images = max_images,
                     .channels = channels,
                     .height = height,
                     .width = width,
                     .kernel = kernel,
                     .radius = kernel / 2};
    size_t plane = (size_t)height * width;
    clcl_status st;

    /* The weights of clcl_blur_apply(), then the workspace of the chosen path. */
    b->host_weights = malloc((size_t)max_images * (b->radius + 1) * sizeof *b->host_weights);
    if (!b->host_weights) {
        clcl_blur_free(b);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "blur: out of host memory");
    }
    CLCL_TRY_GOTO(st,
                  clcl_buffer_create(ctx, (size_t)max_images * (b->radius + 1) * sizeof(float),
                                     "blur weights", &b->weights),
                  fail);
    if (b->method == CLCL_BLUR_DIRECT)
        CLCL_TRY_GOTO(st,
                      clcl_buffer_create(ctx, (size_t)max_images * channels * plane * sizeof(float),
                                         "blur row pass", &b->tmp),
                      fail);
    else
        CLCL_TRY_GOTO(st, clcl_blur_fft_init(b), fail);
    *out = b;
    return CLCL_OK;

fail:
    clcl_blur_free(b);
    return st;
}

void clcl_blur_free(clcl_blur *b) {
    if (!b)
        return;
    clcl_blur_fft_release(b);
    if (b->tmp)
        clReleaseMemObject(b->tmp);
    if (b->weights)
        clReleaseMemObject(b->weights);
    free(b->host_weights);
    free(b);
}

clcl_blur_method clcl_blur_get_method(const clcl_blur *blur) {
    return blur->method;
}

clcl_status clcl_blur_launch(clcl_context *ctx, cl_kernel k, size_t items) {
    size_t local;
    CLCL_TRY(clcl_kernel_max_work_group(ctx, k, &local));
    local = local > 256 ? 256 : local;
    return clcl_launch(ctx, k, 1, &items, &local);
}

/* A (col, row, plane) launch in work-groups of 16 x up to 16 x 1, within the kernel's
 * limit. */
static clcl_status launch_planes(clcl_blur *b, cl_kernel k, int planes) {
    size_t max;
    CLCL_TRY(clcl_kernel_max_work_group(b->ctx, k, &max));
    size_t lx = max < 16 ? max : 16, ly = max / lx < 16 ? max / lx : 16;
    size_t global[3] = {(size_t)b->width, (size_t)b->height, (size_t)planes};
    size_t local[3] = {lx, ly, 1};
    return clcl_launch(b->ctx, k, 3, global, local);
}

static clcl_status run_direct(clcl_blur *b, cl_mem x, int n, cl_mem weights, int offset) {
    cl_kernel rows, cols;

    /* Rows from x into tmp, then columns from tmp back into x. */
    CLCL_TRY(clcl_context_kernel(b->ctx, "blur", "blur_rows", NULL, &rows));
    CLCL_TRY(clcl_kernel_args(rows, CLCL_ARG_MEM(x), CLCL_ARG_MEM(b->tmp), CLCL_ARG_INT(n),
                              CLCL_ARG_INT(b->channels), CLCL_ARG_INT(b->height),
                              CLCL_ARG_INT(b->width), CLCL_ARG_MEM(weights), CLCL_ARG_INT(offset),
                              CLCL_ARG_INT(b->radius)));
    CLCL_TRY(launch_planes(b, rows, n * b->channels));
    CLCL_TRY(clcl_context_kernel(b->ctx, "blur", "blur_cols", NULL, &cols));
    CLCL_TRY(clcl_kernel_args(cols, CLCL_ARG_MEM(b->tmp), CLCL_ARG_MEM(x), CLCL_ARG_INT(n),
                              CLCL_ARG_INT(b->channels), CLCL_ARG_INT(b->height),
                              CLCL_ARG_INT(b->width), CLCL_ARG_MEM(weights), CLCL_ARG_INT(offset),
                              CLCL_ARG_INT(b->radius)));
    return launch_planes(b, cols, n * b->channels);
}

clcl_status clcl_blur_run(clcl_blur *b, cl_mem x, int n, cl_mem weights, int offset) {
    if (n < 1 || n > b->max_images)
        return clcl_fail(CLCL_ERR_SHAPE, "blur: %d images; this blur takes 1 to %d", n,
                         b->max_images);
    if (b->method == CLCL_BLUR_FFT)
        return clcl_blur_fft_run(b, x, n, weights, offset);
    return run_direct(b, x, n, weights, offset);
}

clcl_status clcl_blur_apply(clcl_blur *b, clcl_tensor *x, const float *sigma, int n) {
    char got[64];
    if (x->ndim != 4 || x->shape[0] != n || x->shape[1] != b->channels ||
        x->shape[2] != b->height || x->shape[3] != b->width)
        return clcl_fail(CLCL_ERR_SHAPE, "blur: x is %s; expected (%d, %d, %d, %d)",
                         clcl_shape_string(x->ndim, x->shape, got, sizeof got), n, b->channels,
                         b->height, b->width);
    if (n < 1 || n > b->max_images)
        return clcl_fail(CLCL_ERR_SHAPE, "blur: %d images; this blur takes 1 to %d", n,
                         b->max_images);

    /* Weights per image, uploaded in one blocking write. */
    int stride = b->radius + 1;
    for (int i = 0; i < n; i++) {
        if (!(sigma[i] >= 0.0f) || !isfinite(sigma[i]))
            return clcl_fail(CLCL_ERR_ARGUMENT, "blur: sigma[%d] = %g; expected >= 0", i,
                             (double)sigma[i]);
        clcl_blur_weights_float(sigma[i], b->kernel, b->host_weights + (size_t)i * stride);
    }
    CLCL_TRY_CL(clEnqueueWriteBuffer(clcl_context_queue(b->ctx), b->weights, CL_TRUE, 0,
                                     (size_t)n * stride * sizeof(float), b->host_weights, 0, NULL,
                                     NULL));
    return clcl_blur_run(b, x->buf, n, b->weights, 0);
}
