/* Times the contrastive loss's forward + backward, fused (cl/contrastive.cl) against unfused
 * (CLBlast similarity matrix, separate row and gradient kernels, CLBlast product), after
 * checking the two against each other. Reports median and min ms over the repeats, GFLOP/s
 * and the share of the device's CLBlastSgemm rate measured here.
 *
 *   bench_loss [--sizes 256,512,1024,4096,8192] [--dims 128,256] [--reps 5] [--warmup 2]
 *              [--tau 0.2] [--theta 0.8] [--mode attract|eliminate] [--weight 1] [--cap 0]
 *              [--gemm 2048] [--csv FILE] [--device D]
 *
 * GFLOP/s counts 4 (2N)^2 d flops per call, the two products of the plain algorithm (S = z
 * z^T and dz = A z); the fused kernels do one more product's work (the forward and backward
 * passes each recompute S), which the rate does not credit. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <clblast_c.h>

#include "clcl/loss.h"

#define MAX_REPS  101
#define MAX_LIST  16
#define CHECK_TOL 1e-2 /* largest |fused - unfused| gradient entry, as a share of the largest */

typedef struct {
    int sizes[MAX_LIST], n_sizes;
    int dims[MAX_LIST], n_dims;
    int reps, warmup, cap, gemm;
    float tau, theta, weight;
    clcl_fn_mode mode;
    const char *csv, *device;
} bench_options;

typedef struct {
    double median_ms, min_ms;
} timing;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what) {
    fprintf(stderr, "bench_loss: %s: %s\n", what, clcl_last_error());
    exit(1);
}

static void usage(void) {
    fprintf(stderr, "usage: bench_loss [--sizes 256,512,...] [--dims 128,256] [--reps N] "
                    "[--warmup N] [--tau T] [--theta T] [--mode attract|eliminate] "
                    "[--weight W] [--cap K] [--gemm M] [--csv FILE] [--device D]\n");
    exit(2);
}

static int parse_list(const char *text, int *out) {
    int n = 0;
    char *end;
    for (const char *p = text; *p && n < MAX_LIST; p = *end ? end + 1 : end) {
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || (*end && *end != ','))
            usage();
        out[n++] = (int)v;
    }
    return n;
}

static bench_options parse_options(int argc, char **argv) {
    bench_options o = {.sizes = {256, 512, 1024, 4096, 8192},
                       .n_sizes = 5,
                       .dims = {128, 256},
                       .n_dims = 2,
                       .reps = 5,
                       .warmup = 2,
                       .gemm = 2048,
                       .tau = 0.2f,
                       .theta = 0.8f,
                       .weight = 1.0f,
                       .mode = CLCL_FN_ATTRACT};
    for (int a = 1; a < argc; a++) {
        const char *key = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;
        if (!val)
            usage();
        a++;
        if (strcmp(key, "--sizes") == 0)
            o.n_sizes = parse_list(val, o.sizes);
        else if (strcmp(key, "--dims") == 0)
            o.n_dims = parse_list(val, o.dims);
        else if (strcmp(key, "--reps") == 0)
            o.reps = atoi(val);
        else if (strcmp(key, "--warmup") == 0)
            o.warmup = atoi(val);
        else if (strcmp(key, "--tau") == 0)
            o.tau = strtof(val, NULL);
        else if (strcmp(key, "--theta") == 0)
            o.theta = strtof(val, NULL);
        else if (strcmp(key, "--weight") == 0)
            o.weight = strtof(val, NULL);
        else if (strcmp(key, "--cap") == 0)
            o.cap = atoi(val);
        else if (strcmp(key, "--gemm") == 0)
            o.gemm = atoi(val);
        else if (strcmp(key, "--mode") == 0) {
            if (clcl_fn_mode_parse(val, &o.mode) != CLCL_OK)
                die("--mode");
        } else if (strcmp(key, "--csv") == 0)
            o.csv = val;
        else if (strcmp(key, "--device") == 0)
            o.device = val;
        else
            usage();
    }
    if (o.reps < 1 || o.reps > MAX_REPS || o.warmup < 0)
        usage();
    return o;
}

/* Two views of n2 / 2 images with 10 classes: a class centre, an image offset, view noise. */
static void make_batch(float *h, int *labels, int n2, int d) {
    unsigned long long s = 12345;
    float *centers = malloc((size_t)10 * d * sizeof *centers);
#define UNIFORM()                                                                                  \
    ((s = s * 6364136223846793005ULL + 1442695040888963407ULL),                                    \
     (float)((double)(s >> 11) / 9007199254740992.0 * 2.0 - 1.0))
    for (int e = 0; e < 10 * d; e++)
        centers[e] = UNIFORM();
    for (int m = 0; m < n2 / 2; m++) {
        int c = m % 10;
        for (int k = 0; k < d; k++) {
            float base = centers[c * d + k] + 0.6f * UNIFORM();
            h[(size_t)m * d + k] = base + 0.35f * UNIFORM();
            h[(size_t)(m + n2 / 2) * d + k] = base + 0.35f * UNIFORM();
        }
        labels[m] = labels[m + n2 / 2] = c;
    }
#undef UNIFORM
    free(centers);
}

static timing time_loss(clcl_loss *loss, const clcl_tensor *h, const clcl_loss_labels *lab,
                        clcl_tensor *dh, const bench_options *o) {
    double ms[MAX_REPS];
    float value;
    for (int r = 0; r < o->warmup + o->reps; r++) {
        double t0 = now_s();
        if (clcl_loss_forward_backward(loss, h, lab, o->tau, o->theta, &value, dh, NULL) != CLCL_OK)
            die("forward_backward");
        if (r >= o->warmup)
            ms[r - o->warmup] = 1e3 * (now_s() - t0);
    }
    qsort(ms, (size_t)o->reps, sizeof *ms, cmp_double);
    return (timing){ms[o->reps / 2], ms[0]};
}

/* CLBlastSgemm's rate on m x m x m, GFLOP/s at the median of the repeats. */
static double gemm_rate(clcl_context *ctx, int m, const bench_options *o) {
    double ms[MAX_REPS];
    cl_mem a, c;
    size_t bytes = (size_t)m * m * sizeof(float);
    cl_command_queue q = clcl_context_queue(ctx);
    if (clcl_buffer_create(ctx, bytes, "GEMM A", &a) != CLCL_OK ||
        clcl_buffer_create(ctx, bytes, "GEMM C", &c) != CLCL_OK)
        die("GEMM buffers");
    float one = 1.0f;
    clEnqueueFillBuffer(q, a, &one, sizeof one, 0, bytes, 0, NULL, NULL);
    for (int r = 0; r < o->warmup + o->reps; r++) {
        double t0 = now_s();
        CLBlastStatusCode st =
            CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, m, m, m,
                         1.0f, a, 0, m, a, 0, m, 0.0f, c, 0, m, &q, NULL);
        if (st != CLBlastSuccess || clFinish(q) != CL_SUCCESS) {
            fprintf(stderr, "bench_loss: CLBlastSgemm %d^3 failed (%d)\n", m, (int)st);
            exit(1);
        }
        if (r >= o->warmup)
            ms[r - o->warmup] = 1e3 * (now_s() - t0);
    }
    clReleaseMemObject(a);
    clReleaseMemObject(c);
    qsort(ms, (size_t)o->reps, sizeof *ms, cmp_double);
    return 2.0 * m * (double)m * m / (ms[o->reps / 2] * 1e6);
}

/* Runs both implementations once and compares loss, counts and gradient. */
static int check_pair(clcl_loss *fused, clcl_loss *unfused, const clcl_tensor *h,
                      const clcl_loss_labels *lab, clcl_tensor *dh, float *g1, float *g2,
                      const bench_options *o, clcl_context *ctx, double *worst) {
    float l1, l2;
    clcl_loss_stats s1, s2;
    if (clcl_loss_forward_backward(fused, h, lab, o->tau, o->theta, &l1, dh, &s1) != CLCL_OK ||
        clcl_tensor_read(ctx, dh, g1) != CLCL_OK)
        die("fused check run");
    if (clcl_loss_forward_backward(unfused, h, lab, o->tau, o->theta, &l2, dh, &s2) != CLCL_OK ||
        clcl_tensor_read(ctx, dh, g2) != CLCL_OK)
        die("unfused check run");
    double big = 0, diff = 0;
    for (size_t e = 0; e < dh->count; e++) {
        big = fmax(big, fabs(g2[e]));
        diff = fmax(diff, fabs((double)g1[e] - g2[e]));
    }
    *worst = big > 0 ? diff / big : diff;
    long long dc = s1.pseudo_total - s2.pseudo_total;
    int ok = fabs(l1 - l2) <= 1e-4 * (1.0 + fabs(l2)) && *worst <= CHECK_TOL &&
             llabs(dc) <= 2 + s2.pseudo_total / 10000;
    if (!ok)
        fprintf(stderr,
                "bench_loss: fused and unfused disagree: loss %.7g / %.7g, pseudo-positives "
                "%lld / %lld, gradient off by %.2g of its largest entry\n",
                l1, l2, s1.pseudo_total, s2.pseudo_total, *worst);
    return ok;
}

static void bench_shape(clcl_context *ctx, int n2, int d, double peak, const bench_options *o,
                        FILE *csv) {
    clcl_loss_config base = {.mode = o->mode, .weight = o->weight, .cap = o->cap};
    clcl_loss_config unf = base;
    unf.impl = CLCL_LOSS_UNFUSED;
    clcl_loss *fused, *unfused;
    clcl_tensor h, dh;
    float *host = malloc((size_t)n2 * d * sizeof *host), *g2 = malloc((size_t)n2 * d * sizeof *g2);
    int *labels = malloc((size_t)n2 * sizeof *labels);
    make_batch(host, labels, n2, d);
    clcl_loss_labels lab = {.host = labels};
    if (clcl_loss_create(ctx, n2, d, &base, &fused) != CLCL_OK ||
        clcl_loss_create(ctx, n2, d, &unf, &unfused) != CLCL_OK ||
        clcl_tensor_create(ctx, &h, 2, (int[]){n2, d}) != CLCL_OK ||
        clcl_tensor_create(ctx, &dh, 2, (int[]){n2, d}) != CLCL_OK ||
        clcl_tensor_write(ctx, &h, host) != CLCL_OK)
        die("setup");

    /* check, then time each */
    double worst;
    float *g1 = malloc((size_t)n2 * d * sizeof *g1);
    if (!check_pair(fused, unfused, &h, &lab, &dh, g1, g2, o, ctx, &worst))
        exit(1);
    timing tf = time_loss(fused, &h, &lab, &dh, o), tu = time_loss(unfused, &h, &lab, &dh, o);
    double gflop = 4.0 * (double)n2 * n2 * d * 1e-9;
    printf("%6d %5d  %9.3f %9.3f %8.1f %6.1f%%  %9.3f %9.3f %8.1f %6.1f%%  %6.2fx  %.1e\n", n2, d,
           tf.median_ms, tf.min_ms, gflop / (tf.median_ms * 1e-3),
           100 * gflop / (tf.median_ms * 1e-3) / peak, tu.median_ms, tu.min_ms,
           gflop / (tu.median_ms * 1e-3), 100 * gflop / (tu.median_ms * 1e-3) / peak,
           tu.median_ms / tf.median_ms, worst);
    fflush(stdout);
    if (csv)
        fprintf(csv, "%d,%d,%.4f,%.4f,%.4f,%.4f,%.2f\n", n2, d, tf.median_ms, tf.min_ms,
                tu.median_ms, tu.min_ms, peak);
    free(g1);
    free(g2);
    free(labels);
    free(host);
    clcl_tensor_free(&h);
    clcl_tensor_free(&dh);
    clcl_loss_free(fused);
    clcl_loss_free(unfused);
}

int main(int argc, char **argv) {
    bench_options o = parse_options(argc, argv);
    clcl_context *ctx;
    char text[160];
    if (clcl_context_create(o.device, &ctx) != CLCL_OK)
        die("context");
    const clcl_device_info *dev = clcl_context_device(ctx);
    double peak = gemm_rate(ctx, o.gemm, &o);
    printf("device: %s (%s), %u compute units\n", dev->name, dev->platform, dev->compute_units);
    printf("loss: %s, tau %g, theta %g, %d warm-up + %d timed calls each\n",
           clcl_fn_mode_name(o.mode), (double)o.tau, (double)o.theta, o.warmup, o.reps);
    printf("CLBlastSgemm %d^3: %.1f GFLOP/s (median)\n", o.gemm, peak);
    printf("GFLOP/s counts 4 (2N)^2 d per call; 'check' is max |fused - unfused| / max |dh|\n\n");
    printf("%6s %5s  %9s %9s %8s %7s  %9s %9s %8s %7s  %7s  %s\n", "2N", "d", "fused ms", "min",
           "GFLOP/s", "of GEMM", "unfused", "min", "GFLOP/s", "of GEMM", "speedup", "check");
    FILE *csv = NULL;
    if (o.csv) {
        csv = fopen(o.csv, "w");
        if (!csv) {
            fprintf(stderr, "bench_loss: cannot write --csv %s\n", o.csv);
            return 1;
        }
        fprintf(csv, "n2,d,fused_median_ms,fused_min_ms,unfused_median_ms,unfused_min_ms,"
                     "gemm_gflops\n");
    }
    for (int a = 0; a < o.n_sizes; a++)
        for (int b = 0; b < o.n_dims; b++)
            bench_shape(ctx, o.sizes[a], o.dims[b], peak, &o, csv);
    if (csv)
        fclose(csv);
    clcl_loss *probe;
    clcl_loss_config cfg = {.mode = o.mode, .weight = o.weight, .cap = o.cap};
    if (clcl_loss_create(ctx, o.sizes[0], o.dims[0], &cfg, &probe) == CLCL_OK) {
        printf("\nfused kernels: %s\n", clcl_loss_describe(probe, text, sizeof text));
        clcl_loss_free(probe);
    }
    clcl_context_free(ctx);
    return 0;
}
