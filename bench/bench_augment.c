/* Times the two-view augmentation at the sizes of the datasets clcl trains on: 28x28x1
 * (Fashion-MNIST), 32x32x3 (CIFAR) and 96x96x3 (STL-10), each with its default recipe
 * (clcl_augment_config_default) and a batch of 256 generated images.
 *
 *   bench_augment [--batch 256] [--reps 10] [--device D]
 *
 * For each size: the host's draw of the batch's records; the device's work (records
 * upload, fused kernel, blur) with the images already on the device; the whole step from
 * host images (clcl_augment_batch). Images/s count input images, each giving two views.
 * GB/s is the float output written per second, next to the device's measured copy rate.
 * Before timing, each size is checked: records of the whole image without colour steps
 * reproduce the input exactly, and two runs of one seed give identical bytes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clcl/augment.h"

#define MAX_REPS 101

typedef struct {
    int batch, reps;
    const char *device;
} options;

typedef struct {
    const char *name;
    int channels, side;
} shape;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void summarise(double *t, int n, double out[2]) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    out[0] = t[n / 2];
    out[1] = t[0];
}

static int fail(const char *what) {
    fprintf(stderr, "bench_augment: %s: %s\n", what, clcl_last_error());
    return 0;
}

/* The device's copy rate (read + write bytes per second) over a 64 MiB buffer. */
static double copy_rate(clcl_context *ctx) {
    size_t bytes = (size_t)64 << 20;
    cl_mem a, b;
    double best = 0.0;
    if (clcl_buffer_create(ctx, bytes, "copy source", &a) != CLCL_OK)
        return 0.0;
    if (clcl_buffer_create(ctx, bytes, "copy target", &b) != CLCL_OK) {
        clReleaseMemObject(a);
        return 0.0;
    }
    cl_command_queue q = clcl_context_queue(ctx);
    float zero = 0.0f;
    clEnqueueFillBuffer(q, a, &zero, sizeof zero, 0, bytes, 0, NULL, NULL);
    for (int rep = 0; rep < 6; rep++) {
        double t0 = now();
        clEnqueueCopyBuffer(q, a, b, 0, 0, bytes, 0, NULL, NULL);
        clcl_finish(ctx);
        double rate = 2.0 * bytes / (now() - t0);
        best = rep > 0 && rate > best ? rate : best; /* rep 0 is the warm-up */
    }
    clReleaseMemObject(a);
    clReleaseMemObject(b);
    return best;
}

/* Whole-image records without colour steps must give v / 255 exactly (mean 0, std 1). */
static int check_identity(clcl_augment *aug, clcl_context *ctx, cl_mem images, const uint8_t *host,
                          int n, int channels, int side, clcl_tensor *out) {
    clcl_augment_record *r = calloc((size_t)2 * n, sizeof *r);
    size_t count = out->count;
    float *got = malloc(count * sizeof *got);
    int ok = 1;
    for (int m = 0; m < 2 * n; m++)
        r[m] = (clcl_augment_record){.scale_y = 1,
                                     .scale_x = 1,
                                     .limit_y = side - 1,
                                     .limit_x = side - 1,
                                     .source = (float)(m % n)};
    if (clcl_augment_apply(aug, images, n, r, out) != CLCL_OK ||
        clcl_tensor_read(ctx, out, got) != CLCL_OK)
        ok = fail("identity check");
    size_t per = (size_t)channels * side * side;
    for (size_t i = 0; ok && i < count; i++) {
        float want = (float)host[(i / per) % n * per + i % per] * (float)(1.0 / 255.0);
        if (got[i] != want) {
            fprintf(stderr, "bench_augment: identity check: element %zu is %.9g, not %.9g\n", i,
                    got[i], want);
            ok = 0;
        }
    }
    free(r);
    free(got);
    return ok;
}

/* Two batches of one seed are identical and finite. */
static int check_determinism(clcl_augment *aug, clcl_context *ctx, const uint8_t *host, int n,
                             clcl_tensor *out) {
    size_t count = out->count;
    float *a = malloc(count * sizeof *a), *b = malloc(count * sizeof *b);
    int ok = clcl_augment_batch(aug, host, n, 7, 1, NULL, out) == CLCL_OK &&
             clcl_tensor_read(ctx, out, a) == CLCL_OK &&
             clcl_augment_batch(aug, host, n, 7, 1, NULL, out) == CLCL_OK &&
             clcl_tensor_read(ctx, out, b) == CLCL_OK;
    if (!ok)
        fail("determinism check");
    if (ok && memcmp(a, b, count * sizeof *a) != 0) {
        fprintf(stderr, "bench_augment: one seed gave two different batches\n");
        ok = 0;
    }
    for (size_t i = 0; ok && i < count; i++)
        if (!isfinite(a[i])) {
            fprintf(stderr, "bench_augment: element %zu is not finite\n", i);
            ok = 0;
        }
    free(a);
    free(b);
    return ok;
}

/* Times the three parts: host draw, device apply, whole step. t[part][median, min]. */
static int time_parts(clcl_augment *aug, clcl_context *ctx, const clcl_augment_config *c,
                      cl_mem images, const uint8_t *host, int n, const shape *s, int reps,
                      clcl_tensor *out, double t[3][2]) {
    clcl_augment_record *r = malloc((size_t)2 * n * sizeof *r);
    double draw[MAX_REPS], apply[MAX_REPS], step[MAX_REPS];
    int ok = 1;
    for (int rep = -1; rep < reps && ok; rep++) {
        double t0 = now();
        ok = clcl_augment_draw(c, s->channels, s->side, s->side, 3, (uint64_t)rep + 1, NULL, n,
                               r) == CLCL_OK;
        double t1 = now();
        ok = ok && clcl_augment_apply(aug, images, n, r, out) == CLCL_OK &&
             clcl_finish(ctx) == CLCL_OK;
        double t2 = now();
        ok = ok && clcl_augment_batch(aug, host, n, 3, (uint64_t)rep + 1, NULL, out) == CLCL_OK &&
             clcl_finish(ctx) == CLCL_OK;
        double t3 = now();
        if (rep >= 0) {
            draw[rep] = t1 - t0;
            apply[rep] = t2 - t1;
            step[rep] = t3 - t2;
        }
    }
    if (!ok)
        fail("timed run");
    summarise(draw, reps, t[0]);
    summarise(apply, reps, t[1]);
    summarise(step, reps, t[2]);
    free(r);
    return ok;
}

static int bench_shape(clcl_context *ctx, const options *o, const shape *s, double peak) {
    int n = o->batch, side = s->side;
    size_t bytes = (size_t)n * s->channels * side * side;
    uint8_t *host = malloc(bytes);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < bytes; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        host[i] = (uint8_t)(x >> 56);
    }
    clcl_augment_config c = clcl_augment_config_default(side, side);
    clcl_augment *aug = NULL;
    cl_mem images = NULL;
    clcl_tensor out = {0};
    double t[3][2];
    int ok = clcl_augment_create(ctx, &c, s->channels, side, side, n, &aug) == CLCL_OK &&
             clcl_buffer_create(ctx, bytes, "bench images", &images) == CLCL_OK &&
             clEnqueueWriteBuffer(clcl_context_queue(ctx), images, CL_TRUE, 0, bytes, host, 0, NULL,
                                  NULL) == CL_SUCCESS &&
             clcl_tensor_create(ctx, &out, 4, (int[]){2 * n, s->channels, side, side}) == CLCL_OK;
    if (!ok)
        fail(s->name);

    /* Check, then time. */
    ok = ok && check_identity(aug, ctx, images, host, n, s->channels, side, &out) &&
         check_determinism(aug, ctx, host, n, &out) &&
         time_parts(aug, ctx, &c, images, host, n, s, o->reps, &out, t);
    if (ok) {
        double gbs = clcl_tensor_bytes(&out) / t[1][0] / 1e9;
        printf("%-10s %5.2f %-6s %9.3f %9.3f %9.3f %9.3f %9.3f %10.0f %10.0f %7.2f %7.2f\n",
               s->name, c.blur_p,
               c.blur_p > 0 ? (clcl_augment_blur_method(aug) == CLCL_BLUR_FFT ? "fft" : "direct")
                            : "-",
               t[0][0] * 1e3, t[1][0] * 1e3, t[1][1] * 1e3, t[2][0] * 1e3, t[2][1] * 1e3,
               n / t[1][0], n / t[2][0], gbs, peak / 1e9);
    }
    clcl_tensor_free(&out);
    if (images)
        clReleaseMemObject(images);
    clcl_augment_free(aug);
    free(host);
    return ok;
}

int main(int argc, char **argv) {
    options o = {.batch = 256, .reps = 10};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            o.batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            o.reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            o.device = argv[++i];
        else {
            fprintf(stderr,
                    "bench_augment: unknown or incomplete argument '%s'; expected "
                    "--batch N, --reps N or --device D\n",
                    argv[i]);
            return 2;
        }
    }
    if (o.batch < 1 || o.reps < 1 || o.reps > MAX_REPS) {
        fprintf(stderr, "bench_augment: --batch must be >= 1 and --reps in [1, %d]\n", MAX_REPS);
        return 2;
    }
    clcl_context *ctx;
    if (clcl_context_create(o.device, &ctx) != CLCL_OK)
        return fail("context") + 1;
    double peak = copy_rate(ctx);
    printf("device: %s; batch %d (two views each); median of %d runs (min too)\n",
           clcl_context_device(ctx)->name, o.batch, o.reps);
    printf("%-10s %5s %-6s %9s %9s %9s %9s %9s %10s %10s %7s %7s\n", "shape", "blur", "path",
           "draw ms", "apply ms", "min", "step ms", "min", "apply im/s", "step im/s", "out GB/s",
           "copy");
    static const shape shapes[] = {{"28x28x1", 1, 28}, {"32x32x3", 3, 32}, {"96x96x3", 3, 96}};
    int ok = 1;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes && ok; i++)
        ok = bench_shape(ctx, &o, &shapes[i], peak);
    clcl_context_free(ctx);
    return ok ? 0 : 1;
}
