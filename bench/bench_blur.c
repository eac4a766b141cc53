/* Times the blur's two paths, the separable direct kernel and the clFFT one, over image
 * and kernel sizes, after checking that they agree, and prints for each image size the
 * smallest kernel from which the FFT path is faster: the crossover that clcl_blur_choose()
 * encodes (docs/augment.md).
 *
 *   bench_blur [--images N] [--channels 3] [--reps 5] [--sizes 32,64,96,224]
 *              [--kernels 3,5,9,15,23,31,47,63] [--device D]
 *
 * Every image is blurred (sigma 2), so both paths do their full work. Times are of the
 * blur alone (weights uploaded before), median and min of --reps runs after one warm-up;
 * "us" columns are microseconds per image at the median. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "augment_private.h"
#include "check.h"

#define MAX_LIST 16
#define MAX_REPS 101
#define AGREE    1e-4 /* FFT vs direct, absolute, on values in [-1, 1] */

typedef struct {
    int images, channels, reps;
    int sizes[MAX_LIST], n_sizes;
    int kernels[MAX_LIST], n_kernels;
    const char *device;
} options;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int parse_list(const char *s, int *out) {
    int n = 0;
    for (char *end; *s && n < MAX_LIST; s = *end ? end + 1 : end) {
        out[n++] = (int)strtol(s, &end, 10);
        if (end == s)
            return -1;
    }
    return n;
}

static int parse(int argc, char **argv, options *o) {
    *o = (options){.images = 64, .channels = 3, .reps = 5};
    o->n_sizes = parse_list("32,64,96,224", o->sizes);
    o->n_kernels = parse_list("3,5,9,15,23,31,47,63", o->kernels);
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--images") == 0 && v)
            o->images = atoi(argv[++i]);
        else if (strcmp(argv[i], "--channels") == 0 && v)
            o->channels = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && v)
            o->reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--sizes") == 0 && v)
            o->n_sizes = parse_list(argv[++i], o->sizes);
        else if (strcmp(argv[i], "--kernels") == 0 && v)
            o->n_kernels = parse_list(argv[++i], o->kernels);
        else if (strcmp(argv[i], "--device") == 0 && v)
            o->device = argv[++i];
        else {
            fprintf(stderr, "bench_blur: unknown or incomplete argument '%s'\n", argv[i]);
            return 0;
        }
    }
    if (o->images < 1 || o->channels < 1 || o->reps < 1 || o->reps > MAX_REPS || o->n_sizes < 1 ||
        o->n_kernels < 1) {
        fprintf(stderr,
                "bench_blur: --images, --channels, --reps (<= %d), --sizes and "
                "--kernels need positive values\n",
                MAX_REPS);
        return 0;
    }
    return 1;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Blurs x (restored from `input` before each run) with one path; leaves the last result
 * in `result` and the median and min seconds in t[0], t[1]. */
static clcl_status time_path(clcl_context *ctx, const options *o, int side, int kernel,
                             clcl_blur_method method, const float *input, clcl_tensor *x,
                             float *result, double t[2]) {
    clcl_blur *blur = NULL;
    float *sigma = malloc((size_t)o->images * sizeof *sigma);
    double times[MAX_REPS];
    clcl_status st;
    for (int i = 0; i < o->images; i++)
        sigma[i] = 2.0f;
    CLCL_TRY_GOTO(
        st, clcl_blur_create(ctx, o->images, o->channels, side, side, kernel, method, &blur), done);

    /* The warm-up through the public call, which uploads the weights the timed runs use. */
    CLCL_TRY_GOTO(st, clcl_tensor_write(ctx, x, input), done);
    CLCL_TRY_GOTO(st, clcl_blur_apply(blur, x, sigma, o->images), done);
    for (int rep = 0; rep < o->reps; rep++) {
        CLCL_TRY_GOTO(st, clcl_tensor_write(ctx, x, input), done);
        CLCL_TRY_GOTO(st, clcl_finish(ctx), done);
        double t0 = now();
        CLCL_TRY_GOTO(st, clcl_blur_run(blur, x->buf, o->images, blur->weights, 0), done);
        CLCL_TRY_GOTO(st, clcl_finish(ctx), done);
        times[rep] = now() - t0;
    }
    qsort(times, (size_t)o->reps, sizeof *times, cmp_double);
    t[0] = times[o->reps / 2];
    t[1] = times[0];
    st = clcl_tensor_read(ctx, x, result);
done:
    clcl_blur_free(blur);
    free(sigma);
    return st;
}

/* One image size: every kernel size with both paths; returns the crossover kernel (0 when
 * the FFT path never wins) or -1 on failure. */
static int bench_side(clcl_context *ctx, const options *o, int side) {
    size_t count = (size_t)o->images * o->channels * side * side;
    float *input = malloc(count * sizeof *input), *a = malloc(count * sizeof *a),
          *b = malloc(count * sizeof *b);
    clcl_tensor x;
    int crossover = 0, failed = 0;
    uint64_t s = 1;
    for (size_t i = 0; i < count; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        input[i] = (float)((s >> 40) / 8388608.0 - 1.0);
    }
    if (clcl_tensor_create(ctx, &x, 4, (int[]){o->images, o->channels, side, side}) != CLCL_OK)
        failed = 1;
    for (int k = 0; k < o->n_kernels && !failed; k++) {
        int kernel = o->kernels[k];
        double td[2], tf[2], worst = 0.0;
        if (kernel / 2 > side - 1 || kernel % 2 == 0)
            continue;
        if (time_path(ctx, o, side, kernel, CLCL_BLUR_DIRECT, input, &x, a, td) != CLCL_OK ||
            time_path(ctx, o, side, kernel, CLCL_BLUR_FFT, input, &x, b, tf) != CLCL_OK) {
            fprintf(stderr, "bench_blur: %dx%d, kernel %d: %s\n", side, side, kernel,
                    clcl_last_error());
            failed = 1;
            break;
        }

        /* Check before reporting: the two paths agree. */
        for (size_t i = 0; i < count; i++)
            worst = fmax(worst, fabs((double)a[i] - b[i]));
        if (!(worst <= AGREE)) {
            fprintf(stderr, "bench_blur: %dx%d kernel %d: FFT and direct differ by %g\n", side,
                    side, kernel, worst);
            failed = 1;
            break;
        }
        printf("%6d %6d %10.3f %10.3f %10.3f %10.3f %10.2f %10.2f  %-6s %9.1e\n", side, kernel,
               td[0] * 1e3, td[1] * 1e3, tf[0] * 1e3, tf[1] * 1e3, td[0] * 1e6 / o->images,
               tf[0] * 1e6 / o->images, tf[0] < td[0] ? "fft" : "direct", worst);
        fflush(stdout);
        if (tf[0] < td[0] && crossover == 0)
            crossover = kernel;
        if (tf[0] >= td[0])
            crossover = 0; /* the FFT must stay faster from the crossover on */
    }
    if (x.buf)
        clcl_tensor_free(&x);
    free(input);
    free(a);
    free(b);
    return failed ? -1 : crossover;
}

int main(int argc, char **argv) {
    options o;
    clcl_context *ctx;
    int crossover[MAX_LIST];
    if (!parse(argc, argv, &o))
        return 2;
    if (clcl_context_create(o.device, &ctx) != CLCL_OK) {
        fprintf(stderr, "bench_blur: %s\n", clcl_last_error());
        return 1;
    }
    printf("device: %s; %d images of %d channels per run; median and min of %d runs\n",
           clcl_context_device(ctx)->name, o.images, o.channels, o.reps);
    printf("%6s %6s %10s %10s %10s %10s %10s %10s  %-6s %9s\n", "side", "kernel", "direct ms",
           "min", "fft ms", "min", "direct us", "fft us", "faster", "max diff");
    for (int i = 0; i < o.n_sizes; i++) {
        crossover[i] = bench_side(ctx, &o, o.sizes[i]);
        if (crossover[i] < 0) {
            clcl_context_free(ctx);
            return 1;
        }
    }
    printf("\ncrossover (smallest kernel from which the FFT path stays faster):\n");
    for (int i = 0; i < o.n_sizes; i++) {
        if (crossover[i] > 0)
            printf("  %dx%d: kernel %d\n", o.sizes[i], o.sizes[i], crossover[i]);
        else
            printf("  %dx%d: none in the kernels measured\n", o.sizes[i], o.sizes[i]);
    }
    clcl_context_free(ctx);
    return 0;
}
