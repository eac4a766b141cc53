/* Times the contrastive loss's forward + backward: the two fused implementations of
 * cl/contrastive.cl (GPU-shaped tiles, CPU-shaped row blocks) and the unfused one (CLBlast
 * similarity matrix, separate row and gradient kernels, CLBlast product), each checked
 * against the unfused one first. Reports median and min ms over the repeats, GFLOP/s, the
 * share of the device's GEMM rate measured here with our own kernel (cl/gemm.cl, what this
 * device achieves) and with CLBlastSgemm, and the speed-up over the unfused path.
 *
 *   bench_loss [--sizes 256,512,1024,4096,8192] [--dims 128,256] [--reps 5] [--warmup 2]
 *              [--tau 0.2] [--theta 0.8] [--mode attract|eliminate] [--weight 1] [--cap 0]
 *              [--impls tiles,rows,unfused] [--gemm 1024] [--csv FILE] [--device D]
 *
 * GFLOP/s counts 4 (2N)^2 d flops per call, the two products of the plain algorithm (S = z
 * z^T and dz = A z); the fused kernels do one more product's work (the forward and backward
 * passes each recompute S), which the rate does not credit. A last line per shape times the
 * unfused path's two products alone with our GEMM kernel, a floor for any unfused path. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <clblast_c.h>

#include "clcl/gemm.h"
#include "clcl/loss.h"

#define MAX_REPS  101
#define MAX_LIST  16
#define CHECK_TOL 1e-2 /* largest |fused - unfused| gradient entry, as a share of the largest */
#define N_IMPLS   3

static const clcl_loss_impl IMPLS[N_IMPLS] = {CLCL_LOSS_FUSED, CLCL_LOSS_FUSED_ROWS,
                                              CLCL_LOSS_UNFUSED};
static const char *IMPL_NAMES[N_IMPLS] = {"tiles", "rows", "unfused"};

typedef struct {
    int sizes[MAX_LIST], n_sizes;
    int dims[MAX_LIST], n_dims;
    int reps, warmup, cap, gemm;
    float tau, theta, weight;
    clcl_fn_mode mode;
    int timed[N_IMPLS]; /* 1: time IMPLS[i] (the unfused path always runs, as the check) */
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
                    "[--weight W] [--cap K] [--impls tiles,rows,unfused] [--gemm M] [--csv FILE] "
                    "[--device D]\n");
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

/* "--impls rows,unfused": which implementations to time. */
static void parse_impls(const char *text, int *timed) {
    char buf[64];
    snprintf(buf, sizeof buf, "%s", text);
    for (int i = 0; i < N_IMPLS; i++)
        timed[i] = 0;
    for (char *w = strtok(buf, ","); w; w = strtok(NULL, ",")) {
        int found = 0;
        for (int i = 0; i < N_IMPLS; i++)
            if (strcmp(w, IMPL_NAMES[i]) == 0)
                timed[i] = found = 1;
        if (!found) {
            fprintf(stderr, "bench_loss: --impls '%s': expected tiles, rows or unfused\n", w);
            exit(2);
        }
    }
}

static bench_options parse_options(int argc, char **argv) {
    bench_options o = {.sizes = {256, 512, 1024, 4096, 8192},
                       .n_sizes = 5,
                       .dims = {128, 256},
                       .n_dims = 2,
                       .reps = 5,
                       .warmup = 2,
                       .gemm = 1024,
                       .tau = 0.2f,
                       .theta = 0.8f,
                       .weight = 1.0f,
                       .mode = CLCL_FN_ATTRACT,
                       .timed = {1, 1, 1}};
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
        else if (strcmp(key, "--impls") == 0)
            parse_impls(val, o.timed);
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

/* The GEMM rate on m x m x m, GFLOP/s at the median of the repeats: CLBlastSgemm, or (own)
 * our kernel with its default tunables. */
static double gemm_rate(clcl_context *ctx, int m, int own, const bench_options *o) {
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
        if (own) {
            clcl_gemm_args g = {.m = m,
                                .n = m,
                                .k = m,
                                .alpha = 1.0f,
                                .a = a,
                                .lda = (size_t)m,
                                .b = a,
                                .ldb = (size_t)m,
                                .c = c,
                                .ldc = (size_t)m};
            if (clcl_gemm_own(ctx, NULL, &g) != CLCL_OK || clcl_finish(ctx) != CLCL_OK)
                die("our GEMM kernel");
        } else {
            CLBlastStatusCode st =
                CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, m, m, m,
                             1.0f, a, 0, m, a, 0, m, 0.0f, c, 0, m, &q, NULL);
            if (st != CLBlastSuccess || clFinish(q) != CL_SUCCESS) {
                fprintf(stderr, "bench_loss: CLBlastSgemm %d^3 failed (%d)\n", m, (int)st);
                exit(1);
            }
        }
        if (r >= o->warmup)
            ms[r - o->warmup] = 1e3 * (now_s() - t0);
    }
    clReleaseMemObject(a);
    clReleaseMemObject(c);
    qsort(ms, (size_t)o->reps, sizeof *ms, cmp_double);
    return 2.0 * m * (double)m * m / (ms[o->reps / 2] * 1e6);
}

/* The unfused path's two products alone, S = z z^T and dz = A z, with our GEMM kernel: a
 * floor for any unfused path on this device (S is filled with z z^T, then used as A). */
static timing time_products(clcl_context *ctx, const clcl_tensor *z, clcl_tensor *dz, int n2, int d,
                            const bench_options *o) {
    double ms[MAX_REPS];
    cl_mem sim;
    if (clcl_buffer_create(ctx, (size_t)n2 * n2 * sizeof(float), "S (2N, 2N)", &sim) != CLCL_OK)
        die("S buffer");
    clcl_gemm_args s = {.trans_b = 1,
                        .m = n2,
                        .n = n2,
                        .k = d,
                        .alpha = 1.0f,
                        .a = z->buf,
                        .lda = (size_t)d,
                        .b = z->buf,
                        .ldb = (size_t)d,
                        .c = sim,
                        .ldc = (size_t)n2};
    clcl_gemm_args g = {.m = n2,
                        .n = d,
                        .k = n2,
                        .alpha = 1.0f,
                        .a = sim,
                        .lda = (size_t)n2,
                        .b = z->buf,
                        .ldb = (size_t)d,
                        .c = dz->buf,
                        .ldc = (size_t)d};
    for (int r = 0; r < o->warmup + o->reps; r++) {
        double t0 = now_s();
        if (clcl_gemm_own(ctx, NULL, &s) != CLCL_OK || clcl_gemm_own(ctx, NULL, &g) != CLCL_OK ||
            clcl_finish(ctx) != CLCL_OK)
            die("the two products");
        if (r >= o->warmup)
            ms[r - o->warmup] = 1e3 * (now_s() - t0);
    }
    clReleaseMemObject(sim);
    qsort(ms, (size_t)o->reps, sizeof *ms, cmp_double);
    return (timing){ms[o->reps / 2], ms[0]};
}

/* Runs `loss` once and compares loss, counts and gradient with the unfused path's (l2, s2,
 * g2); *worst is the largest gradient difference as a share of the largest entry. */
static int check_against(clcl_loss *loss, const char *name, const clcl_tensor *h,
                         const clcl_loss_labels *lab, clcl_tensor *dh, float *g1, float l2,
                         const clcl_loss_stats *s2, const float *g2, const bench_options *o,
                         clcl_context *ctx, double *worst) {
    float l1;
    clcl_loss_stats s1;
    if (clcl_loss_forward_backward(loss, h, lab, o->tau, o->theta, &l1, dh, &s1) != CLCL_OK ||
        clcl_tensor_read(ctx, dh, g1) != CLCL_OK)
        die("check run");
    double big = 0, diff = 0;
    for (size_t e = 0; e < dh->count; e++) {
        big = fmax(big, fabs(g2[e]));
        diff = fmax(diff, fabs((double)g1[e] - g2[e]));
    }
    *worst = big > 0 ? diff / big : diff;
    long long dc = s1.pseudo_total - s2->pseudo_total;
    int ok = fabs(l1 - l2) <= 1e-4 * (1.0 + fabs(l2)) && *worst <= CHECK_TOL &&
             llabs(dc) <= 2 + s2->pseudo_total / 10000;
    if (!ok)
        fprintf(stderr,
                "bench_loss: %s and unfused disagree: loss %.7g / %.7g, pseudo-positives "
                "%lld / %lld, gradient off by %.2g of its largest entry\n",
                name, l1, l2, s1.pseudo_total, s2->pseudo_total, *worst);
    return ok;
}

/* Every timed implementation at (2N, d): checked against the unfused path, then timed; one
 * line each. */
static void bench_shape(clcl_context *ctx, int n2, int d, const double peak[2],
                        const bench_options *o, FILE *csv) {
    clcl_loss *loss[N_IMPLS] = {NULL};
    clcl_tensor h, dh;
    size_t n = (size_t)n2 * d;
    float *host = malloc(n * sizeof *host), *g1 = malloc(n * sizeof *g1);
    float *g2 = malloc(n * sizeof *g2);
    int *labels = malloc((size_t)n2 * sizeof *labels);
    make_batch(host, labels, n2, d);
    clcl_loss_labels lab = {.host = labels};
    for (int i = 0; i < N_IMPLS; i++) {
        clcl_loss_config cfg = {
            .mode = o->mode, .weight = o->weight, .cap = o->cap, .impl = IMPLS[i]};
        if ((o->timed[i] || IMPLS[i] == CLCL_LOSS_UNFUSED) &&
            clcl_loss_create(ctx, n2, d, &cfg, &loss[i]) != CLCL_OK)
            die("setup");
    }
    if (clcl_tensor_create(ctx, &h, 2, (int[]){n2, d}) != CLCL_OK ||
        clcl_tensor_create(ctx, &dh, 2, (int[]){n2, d}) != CLCL_OK ||
        clcl_tensor_write(ctx, &h, host) != CLCL_OK)
        die("setup");

    /* the unfused path's result, the one the others are checked against */
    float l2;
    clcl_loss_stats s2;
    if (clcl_loss_forward_backward(loss[N_IMPLS - 1], &h, &lab, o->tau, o->theta, &l2, &dh, &s2) !=
            CLCL_OK ||
        clcl_tensor_read(ctx, &dh, g2) != CLCL_OK)
        die("unfused check run");

    timing t[N_IMPLS];
    double worst[N_IMPLS] = {0};
    for (int i = 0; i < N_IMPLS; i++) {
        if (!o->timed[i])
            continue;
        if (IMPLS[i] != CLCL_LOSS_UNFUSED && !check_against(loss[i], IMPL_NAMES[i], &h, &lab, &dh,
                                                            g1, l2, &s2, g2, o, ctx, &worst[i]))
            exit(1);
        t[i] = time_loss(loss[i], &h, &lab, &dh, o);
    }
    double gflop = 4.0 * (double)n2 * n2 * d * 1e-9;
    timing tp = time_products(ctx, &h, &dh, n2, d, o);
    for (int i = 0; i < N_IMPLS; i++) {
        if (!o->timed[i])
            continue;
        double rate = gflop / (t[i].median_ms * 1e-3);
        printf("%6d %5d  %-8s %10.3f %10.3f %8.2f %7.1f%% %7.1f%%", n2, d, IMPL_NAMES[i],
               t[i].median_ms, t[i].min_ms, rate, 100 * rate / peak[0], 100 * rate / peak[1]);
        if (o->timed[N_IMPLS - 1])
            printf("  %7.2fx", t[N_IMPLS - 1].median_ms / t[i].median_ms);
        else
            printf("  %8s", "-");
        printf("  %.1e\n", worst[i]);
        if (csv)
            fprintf(csv, "%d,%d,%s,%.4f,%.4f,%.2f,%.2f,%.3e\n", n2, d, IMPL_NAMES[i],
                    t[i].median_ms, t[i].min_ms, peak[0], peak[1], worst[i]);
    }
    double rate = gflop / (tp.median_ms * 1e-3);
    printf("%6d %5d  %-8s %10.3f %10.3f %8.2f %7.1f%% %7.1f%%", n2, d, "2 GEMMs", tp.median_ms,
           tp.min_ms, rate, 100 * rate / peak[0], 100 * rate / peak[1]);
    if (o->timed[N_IMPLS - 1])
        printf("  %7.2fx\n", t[N_IMPLS - 1].median_ms / tp.median_ms);
    else
        printf("  %8s\n", "-");
    if (csv)
        fprintf(csv, "%d,%d,2gemm,%.4f,%.4f,%.2f,%.2f,0\n", n2, d, tp.median_ms, tp.min_ms, peak[0],
                peak[1]);
    fflush(stdout);
    free(g1);
    free(g2);
    free(labels);
    free(host);
    clcl_tensor_free(&h);
    clcl_tensor_free(&dh);
    for (int i = 0; i < N_IMPLS; i++)
        clcl_loss_free(loss[i]);
}

int main(int argc, char **argv) {
    bench_options o = parse_options(argc, argv);
    clcl_context *ctx;
    char text[160];
    if (clcl_context_create(o.device, &ctx) != CLCL_OK)
        die("context");
    const clcl_device_info *dev = clcl_context_device(ctx);
    double peak[2] = {gemm_rate(ctx, o.gemm, 1, &o), gemm_rate(ctx, o.gemm, 0, &o)};
    printf("device: %s (%s), %u compute units\n", dev->name, dev->platform, dev->compute_units);
    printf("loss: %s, w %g, cap %d, tau %g, theta %g, %d warm-up + %d timed calls each\n",
           clcl_fn_mode_name(o.mode), (double)o.weight, o.cap, (double)o.tau, (double)o.theta,
           o.warmup, o.reps);
    printf("GEMM %d^3 (median): our kernel %.1f GFLOP/s, CLBlastSgemm %.1f GFLOP/s\n", o.gemm,
           peak[0], peak[1]);
    printf("GFLOP/s counts 4 (2N)^2 d per call; 'speed-up' is unfused ms / this ms; 'check' is\n"
           "max |this - unfused| / max |dh|; '2 GEMMs' is the unfused path's two products alone\n"
           "with our GEMM kernel (a floor for any unfused path here)\n\n");
    printf("%6s %5s  %-8s %10s %10s %8s %8s %8s  %8s  %s\n", "2N", "d", "impl", "median ms",
           "min ms", "GFLOP/s", "of own", "of CLB", "speed-up", "check");
    FILE *csv = NULL;
    if (o.csv) {
        csv = fopen(o.csv, "w");
        if (!csv) {
            fprintf(stderr, "bench_loss: cannot write --csv %s\n", o.csv);
            return 1;
        }
        fprintf(csv, "n2,d,impl,median_ms,min_ms,own_gemm_gflops,clblast_gflops,check\n");
    }
    for (int a = 0; a < o.n_sizes; a++)
        for (int b = 0; b < o.n_dims; b++)
            bench_shape(ctx, o.sizes[a], o.dims[b], peak, &o, csv);
    if (csv)
        fclose(csv);
    printf("\n");
    for (int i = 0; i < N_IMPLS - 1; i++) {
        clcl_loss *probe;
        clcl_loss_config cfg = {.mode = o.mode, .weight = o.weight, .cap = o.cap, .impl = IMPLS[i]};
        if (clcl_loss_create(ctx, o.sizes[0], o.dims[0], &cfg, &probe) == CLCL_OK) {
            printf("%s: %s\n", IMPL_NAMES[i], clcl_loss_describe(probe, text, sizeof text));
            clcl_loss_free(probe);
        }
    }
    clcl_context_free(ctx);
    return 0;
}
