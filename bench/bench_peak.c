/* The device's measured peaks, the denominators of docs/benchmarks.md: a large square
 * SGEMM (CLBlast, and our kernel with each tuning `clcl tune` tries for B as stored) and a
 * large device-to-device copy. Each candidate is checked at sampled outputs against a
 * double-precision host sum before it is timed (a warm-up run, then the repeats); reports
 * the minimum, GFLOP/s or GB/s (a copy moves 2 bytes per byte copied: one read, one
 * write). Each size runs twice: rows of exactly n floats (a power-of-two stride for the
 * usual sizes, which maps a column strip onto few cache sets) and rows padded by 16.
 *
 *   bench_peak [--sizes 1024,2048] [--copy-mib 256] [--reps 5] [--device D] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clcl/gemm.h"
#include "tuning_internal.h"

#define MAX_REPS 51

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static void die(const char *what) {
    fprintf(stderr, "bench_peak: %s: %s\n", what, clcl_last_error());
    exit(1);
}

/* Repeats of a timed trial (tuning_trial_measure gives the best of up to 3 per call). */
static void gemm_row(clcl_context *ctx, tuning_trial *t, int n, int own, const clcl_gemm_params *p,
                     int reps, const char *name) {
    double best = -1;
    for (int r = 0; r < (reps + 2) / 3; r++) {
        double ms;
        if (tuning_trial_measure(ctx, t, own, p, 0, &ms) != CLCL_OK)
            die("gemm trial");
        if (ms < 0) {
            printf("  %-34s failed its check or did not run\n", name);
            return;
        }
        best = best < 0 || ms < best ? ms : best;
    }
    double flops = 2.0 * n * n * n;
    printf("  %-34s min %9.2f ms %7.1f GFLOP/s\n", name, best, flops / (best * 1e6));
}

static void copy_row(clcl_context *ctx, size_t mib, int reps) {
    size_t bytes = mib << 20;
    cl_mem a, b;
    double ms[MAX_REPS];
    cl_command_queue q = clcl_context_queue(ctx);
    const float zero = 0.0f;

    if (clcl_buffer_create(ctx, bytes, "copy source", &a) != CLCL_OK ||
        clcl_buffer_create(ctx, bytes, "copy target", &b) != CLCL_OK)
        die("copy buffers");
    if (clEnqueueFillBuffer(q, a, &zero, sizeof zero, 0, bytes, 0, NULL, NULL) != CL_SUCCESS ||
        clEnqueueCopyBuffer(q, a, b, 0, 0, bytes, 0, NULL, NULL) != CL_SUCCESS ||
        clcl_finish(ctx) != CLCL_OK)
        die("copy warm-up");
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        if (clEnqueueCopyBuffer(q, a, b, 0, 0, bytes, 0, NULL, NULL) != CL_SUCCESS ||
            clcl_finish(ctx) != CLCL_OK)
            die("copy");
        ms[r] = now_ms() - t0;
    }
    double best = ms[0];
    for (int r = 1; r < reps; r++)
        best = ms[r] < best ? ms[r] : best;
    printf("copy %zu MiB device to device: min %.2f ms, %.1f GB/s (read + write)\n", mib, best,
           2.0 * bytes / (best * 1e6));
    clReleaseMemObject(a);
    clReleaseMemObject(b);
}

int main(int argc, char **argv) {
    int sizes[8] = {1024, 2048}, n_sizes = 2, reps = 5;
    size_t copy_mib = 256;
    const char *device = NULL;
    clcl_context *ctx;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--sizes")) {
            n_sizes = 0;
            for (char *s = strtok(argv[i + 1], ","); s && n_sizes < 8; s = strtok(NULL, ","))
                sizes[n_sizes++] = atoi(s);
        } else if (!strcmp(argv[i], "--copy-mib"))
            copy_mib = (size_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--device"))
            device = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_peak [--sizes 1024,2048] [--copy-mib 256] [--reps 5] "
                            "[--device D]\n");
            return 2;
        }
    }
    if (reps < 1 || reps > MAX_REPS)
        reps = 5;
    if (clcl_context_create(device, &ctx) != CLCL_OK)
        die("context");
    printf("device %s\n", clcl_context_device(ctx)->name);

    for (int s = 0; s < 2 * n_sizes; s++) {
        int n = sizes[s / 2], ld = n + (s % 2) * 16;
        tuning_trial *t;
        clcl_gemm_args g = {0, 0, n, n, n, 1.0f, 0.0f, NULL, 0, ld, NULL, 0, ld, NULL, 0, ld};
        char name[96];
        if (n < 1 || tuning_trial_create(ctx, &g, &t) != CLCL_OK)
            die("gemm buffers");
        printf("SGEMM NN %d^3, leading dimensions %d:\n", n, ld);
        gemm_row(ctx, t, n, 0, NULL, reps, "CLBlast");
        for (int c = 0; c < TUNING_CANDIDATES; c++) {
            const clcl_gemm_params *p = &tuning_candidates_bcast[c];
            snprintf(name, sizeof name, "own bcast %dx%dx%d wg %dx%d", p->tm, p->vw, p->nv, p->lx,
                     p->ly);
            gemm_row(ctx, t, n, 1, p, reps, name);
        }
        tuning_trial_free(t);
    }
    copy_row(ctx, copy_mib, reps);
    clcl_context_free(ctx);
    return 0;
}
