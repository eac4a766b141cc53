/* The blur's FFT path through clFFT: reflect-pad each plane, a batched 2-D real-to-complex
 * transform, a multiplication by each image's (real, separable) transfer function, the
 * inverse transform, and the centre copied back. Padding by the kernel's radius on every
 * side makes the circular convolution equal to the direct one with reflected borders.
 *
 * clFFT keeps process-wide state (clfftSetup / clfftTeardown); it is set up by the first
 * FFT blur and torn down with the last one. */
#include <pthread.h>
#include <stdlib.h>

#include "augment_private.h"
#include "check.h"

static pthread_mutex_t fft_lock = PTHREAD_MUTEX_INITIALIZER;
static int fft_users;

/* clFFT's own codes (4096 and up) are not OpenCL's; name them plainly. */
static clcl_status fft_fail(clfftStatus err, const char *call, int line) {
    if (err < CLFFT_BUGCHECK)
        return clcl_fail(err, "%s:%d: %s: %s", __FILE__, line, call, clcl_status_name(err));
    return clcl_fail(CLCL_ERR_ARGUMENT, "%s:%d: %s: clFFT status %d", __FILE__, line, call,
                     (int)err);
}

#define TRY_FFT(call)                                                                              \
    do {                                                                                           \
        clfftStatus fft_err_ = (call);                                                             \
        if (fft_err_ != CLFFT_SUCCESS)                                                             \
            return fft_fail(fft_err_, #call, __LINE__);                                            \
    } while (0)

int clcl_fft_length(int n) {
    for (int m = n + (n & 1);; m += 2) {
        int r = m;
        for (int p = 2; p <= 7; p++)
            while (r % p == 0)
                r /= p;
        if (r == 1)
            return m;
    }
}

static clcl_status fft_setup(void) {
    clfftStatus err = CLFFT_SUCCESS;
    pthread_mutex_lock(&fft_lock);
    if (fft_users == 0) {
        clfftSetupData setup;
        err = clfftInitSetupData(&setup);
        if (err == CLFFT_SUCCESS)
            err = clfftSetup(&setup);
    }
    if (err == CLFFT_SUCCESS)
        fft_users++;
    pthread_mutex_unlock(&fft_lock);
    return err == CLFFT_SUCCESS ? CLCL_OK : fft_fail(err, "clfftSetup", __LINE__);
}

static void fft_teardown(void) {
    pthread_mutex_lock(&fft_lock);
    if (--fft_users == 0)
        clfftTeardown();
    pthread_mutex_unlock(&fft_lock);
}

/* A batched 2-D single-precision real <-> Hermitian plan over (ph, pw) planes. */
static clcl_status make_plan(clcl_blur *b, int forward, clfftPlanHandle *plan) {
    size_t lengths[2] = {(size_t)b->pw, (size_t)b->ph};
    size_t cw = (size_t)b->pw / 2 + 1;
    size_t real_strides[2] = {1, (size_t)b->pw}, complex_strides[2] = {1, cw};
    size_t real_dist = (size_t)b->pw * b->ph, complex_dist = cw * b->ph;

    TRY_FFT(clfftCreateDefaultPlan(plan, clcl_context_cl(b->ctx), CLFFT_2D, lengths));
    TRY_FFT(clfftSetPlanPrecision(*plan, CLFFT_SINGLE));
    TRY_FFT(clfftSetResultLocation(*plan, CLFFT_OUTOFPLACE));
    if (forward) {
        TRY_FFT(clfftSetLayout(*plan, CLFFT_REAL, CLFFT_HERMITIAN_INTERLEAVED));
        TRY_FFT(clfftSetPlanInStride(*plan, CLFFT_2D, real_strides));
        TRY_FFT(clfftSetPlanOutStride(*plan, CLFFT_2D, complex_strides));
        TRY_FFT(clfftSetPlanDistance(*plan, real_dist, complex_dist));
    } else {
        TRY_FFT(clfftSetLayout(*plan, CLFFT_HERMITIAN_INTERLEAVED, CLFFT_REAL));
        TRY_FFT(clfftSetPlanInStride(*plan, CLFFT_2D, complex_strides));
        TRY_FFT(clfftSetPlanOutStride(*plan, CLFFT_2D, real_strides));
        TRY_FFT(clfftSetPlanDistance(*plan, complex_dist, real_dist));
    }
    TRY_FFT(clfftSetPlanScale(*plan, CLFFT_FORWARD, 1.0f));
    TRY_FFT(clfftSetPlanScale(*plan, CLFFT_BACKWARD, 1.0f / (float)real_dist));
    return CLCL_OK;
}

clcl_status clcl_blur_fft_init(clcl_blur *b) {
    size_t planes = (size_t)b->max_images * b->channels;
    b->ph = clcl_fft_length(b->height + 2 * b->radius);
    b->pw = clcl_fft_length(b->width + 2 * b->radius);
    size_t reals = (size_t)b->ph * b->pw, complexes = (size_t)b->ph * (b->pw / 2 + 1);

    CLCL_TRY(clcl_buffer_create(b->ctx, planes * reals * sizeof(float), "blur FFT padded planes",
                                &b->padded));
    CLCL_TRY(clcl_buffer_create(b->ctx, planes * complexes * 2 * sizeof(float), "blur FFT spectra",
                                &b->spectrum));
    CLCL_TRY(fft_setup());
    b->fft_ready = 1;
    CLCL_TRY(make_plan(b, 1, &b->forward));
    b->fft_ready |= 2;
    CLCL_TRY(make_plan(b, 0, &b->backward));
    b->fft_ready |= 4;
    return CLCL_OK;
}

void clcl_blur_fft_release(clcl_blur *b) {
    if (b->fft_ready) {
        if (b->fft_ready & 2)
            clfftDestroyPlan(&b->forward);
        if (b->fft_ready & 4)
            clfftDestroyPlan(&b->backward);
        fft_teardown();
        b->fft_ready = 0;
    }
    if (b->padded)
        clReleaseMemObject(b->padded);
    if (b->spectrum)
        clReleaseMemObject(b->spectrum);
    if (b->fft_tmp)
        clReleaseMemObject(b->fft_tmp);
    b->padded = b->spectrum = b->fft_tmp = NULL;
}

/* Bakes both plans for `planes` transforms, with the workspace clFFT asks for. */
static clcl_status bake(clcl_blur *b, int planes) {
    cl_command_queue q = clcl_context_queue(b->ctx);
    size_t need = 0, size;
    TRY_FFT(clfftSetPlanBatchSize(b->forward, (size_t)planes));
    TRY_FFT(clfftSetPlanBatchSize(b->backward, (size_t)planes));
    TRY_FFT(clfftBakePlan(b->forward, 1, &q, NULL, NULL));
    TRY_FFT(clfftBakePlan(b->backward, 1, &q, NULL, NULL));
    TRY_FFT(clfftGetTmpBufSize(b->forward, &size));
    need = size;
    TRY_FFT(clfftGetTmpBufSize(b->backward, &size));
    need = size > need ? size : need;
    if (b->fft_tmp)
        clReleaseMemObject(b->fft_tmp);
    b->fft_tmp = NULL;
    if (need > 0)
        CLCL_TRY(clcl_buffer_create(b->ctx, need, "clFFT workspace", &b->fft_tmp));
    b->baked_planes = planes;
    return CLCL_OK;
}

clcl_status clcl_blur_fft_run(clcl_blur *b, cl_mem x, int n, cl_mem weights, int offset) {
    cl_command_queue q = clcl_context_queue(b->ctx);
    int planes = n * b->channels, cw = b->pw / 2 + 1;
    cl_kernel pad, mul, unpad;

    if (planes != b->baked_planes)
        CLCL_TRY(bake(b, planes));

    /* Reflect-pad every plane into (planes, ph, pw). */
    CLCL_TRY(clcl_context_kernel(b->ctx, "blur", "blur_fft_pad", NULL, &pad));
    CLCL_TRY(clcl_kernel_args(pad, CLCL_ARG_MEM(x), CLCL_ARG_MEM(b->padded), CLCL_ARG_INT(planes),
                              CLCL_ARG_INT(b->height), CLCL_ARG_INT(b->width), CLCL_ARG_INT(b->ph),
                              CLCL_ARG_INT(b->pw), CLCL_ARG_INT(b->radius)));
    CLCL_TRY(clcl_blur_launch(b->ctx, pad, (size_t)planes * b->ph * b->pw));

    /* Forward transform, multiply by the transfer functions, inverse transform. */
    TRY_FFT(clfftEnqueueTransform(b->forward, CLFFT_FORWARD, 1, &q, 0, NULL, NULL, &b->padded,
                                  &b->spectrum, b->fft_tmp));
    CLCL_TRY(clcl_context_kernel(b->ctx, "blur", "blur_fft_multiply", NULL, &mul));
    CLCL_TRY(clcl_kernel_args(mul, CLCL_ARG_MEM(b->spectrum), CLCL_ARG_INT(b->channels),
                              CLCL_ARG_INT(planes), CLCL_ARG_INT(b->ph), CLCL_ARG_INT(b->pw),
                              CLCL_ARG_MEM(weights), CLCL_ARG_INT(offset),
                              CLCL_ARG_INT(b->radius)));
    CLCL_TRY(clcl_blur_launch(b->ctx, mul, (size_t)planes * b->ph * cw));
    TRY_FFT(clfftEnqueueTransform(b->backward, CLFFT_BACKWARD, 1, &q, 0, NULL, NULL, &b->spectrum,
                                  &b->padded, b->fft_tmp));

    /* The centre of each padded plane back into x. */
    CLCL_TRY(clcl_context_kernel(b->ctx, "blur", "blur_fft_unpad", NULL, &unpad));
    CLCL_TRY(clcl_kernel_args(
        unpad, CLCL_ARG_MEM(b->padded), CLCL_ARG_MEM(x), CLCL_ARG_INT(n), CLCL_ARG_INT(b->channels),
        CLCL_ARG_INT(b->height), CLCL_ARG_INT(b->width), CLCL_ARG_INT(b->ph), CLCL_ARG_INT(b->pw),
        CLCL_ARG_MEM(weights), CLCL_ARG_INT(offset), CLCL_ARG_INT(b->radius)));
    return clcl_blur_launch(b->ctx, unpad, (size_t)n * b->channels * b->height * b->width);
}
