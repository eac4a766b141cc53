/* Times every convolution shape of ResNet-18 (CIFAR stem, no max pool) forward, backward
 * data and backward weights, after checking each against a direct double-precision sum
 * at sampled outputs. Prints a table (median and min ms, GFLOP/s at the median, and GFLOP
 * per second of the process's CPU time, which load from other processes disturbs less)
 * and, with --csv, the same rows as CSV.
 *
 *   bench_conv [--batch 128] [--size 32] [--in 3] [--width 1] [--reps 5] [--layer NAME]
 *              [--variants] [--gemm] [--blas-threads N] [--csv FILE] [--device D]
 *
 * --variants also times the alternatives docs/layers.md compares: the column path and the
 * direct kernel (where it fits) as such, one image per GEMM, our
 * GEMM kernel (cl/gemm.cl) in place of CLBlast's, and, forward only, CLBlast's
 * single-kernel convolution (CLBlastSconvgemm).
 * --gemm times instead the matrix products alone, as the convolutions issue them (one
 * chunk of images), for CLBlast and for our kernels of cl/gemm.cl, and, when the build
 * found OpenBLAS, for cblas_sgemm on host copies of the same operands with N threads
 * (--blas-threads, default: the online CPUs). Our kernel's row then gives its GFLOP/s as
 * a share of OpenBLAS's, and a last line sums the shares up (issue 7: at least one half). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <clblast_c.h>
#ifdef CLCL_HAVE_OPENBLAS
#include <cblas.h>
#endif

#include "clcl/gemm.h"
#include "clcl/layers.h"
#include "layers_internal.h"

#define MAX_REPS   101
#define CHECKS     48   /* sampled outputs verified per direction */
#define CHECK_ATOL 1e-3 /* against a double sum of up to ~10^5 fp32 products */
#define CHECK_RTOL 1e-3

typedef struct {
    const char *name;
    int uses;    /* how many layers of the network have this shape */
    int c, k, r; /* in channels, out channels, square kernel */
    int stride, pad;
    int h; /* input side */
} conv_shape;

typedef struct {
    int batch, size, in, reps, variants, gemm;
    int blas, blas_threads; /* --gemm: time OpenBLAS (built in), with this many threads */
    double width;
    const char *layer, *csv, *device;
} bench_options;

/* The distinct convolution shapes of ResNet-18 with the CIFAR stem at width w. */
static int resnet18_shapes(const bench_options *o, conv_shape *out) {
    int c1 = (int)(64 * o->width + 0.5), s = o->size, n = 0;
    int ch[4] = {c1, 2 * c1, 4 * c1, 8 * c1};
    out[n++] = (conv_shape){"conv1", 1, o->in, c1, 3, 1, 1, s};
    out[n++] = (conv_shape){"layer1.*.conv*", 4, c1, c1, 3, 1, 1, s};
    for (int st = 1; st < 4; st++) {
        int h = s >> (st - 1);
        static const char *names[3][3] = {
            {"layer2.0.conv1", "layer2.0.downsample", "layer2.*.conv* (3)"},
            {"layer3.0.conv1", "layer3.0.downsample", "layer3.*.conv* (3)"},
            {"layer4.0.conv1", "layer4.0.downsample", "layer4.*.conv* (3)"}};
        out[n++] = (conv_shape){names[st - 1][0], 1, ch[st - 1], ch[st], 3, 2, 1, h};
        out[n++] = (conv_shape){names[st - 1][1], 1, ch[st - 1], ch[st], 1, 2, 0, h};
        out[n++] = (conv_shape){names[st - 1][2], 3, ch[st], ch[st], 3, 1, 1, h / 2};
    }
    return n;
}

static double clock_s(clockid_t id) {
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double now_s(void) {
    return clock_s(CLOCK_MONOTONIC);
}

/* CPU time of the whole process, every thread (PoCL's workers) included. */
static double cpu_s(void) {
    return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what) {
    fprintf(stderr, "bench_conv: %s: %s\n", what, clcl_last_error());
    exit(1);
}

/* A seeded linear congruential generator: inputs and sampled positions. */
static unsigned long long rng_state = 12345;
static unsigned rand_bits(void) {
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(rng_state >> 40) & 0xffffffu;
}

/* Uniform in [-1, 1). */
static float rand_unit(void) {
    return (float)rand_bits() / 16777216.0f * 2.0f - 1.0f;
}

/* Uniform in 0 .. n-1. */
static int rand_below(int n) {
    return (int)(rand_bits() % (unsigned)n);
}

/* Host and device copies of one shape's operands. */
typedef struct {
    conv_shape s;
    int n, p;
    float *x, *w, *dy, *out;
    clcl_tensor tx, tw, tdy, ty, tdx, tdw;
} conv_run;

static void make_tensor(clcl_context *ctx, clcl_tensor *t, int a, int b, int c, int d,
                        float *host) {
    if (clcl_tensor_create(ctx, t, 4, (int[]){a, b, c, d}) != CLCL_OK)
        die("tensor");
    if (host && clcl_tensor_write(ctx, t, host) != CLCL_OK)
        die("tensor write");
    if (!host && clcl_tensor_fill(ctx, t, 0.0f) != CLCL_OK)
        die("tensor fill");
}

static float *random_floats(size_t n) {
    float *f = malloc(n * sizeof *f);
    if (!f) {
        fprintf(stderr, "bench_conv: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        f[i] = rand_unit();
    return f;
}

static void run_make(clcl_context *ctx, const conv_shape *s, int batch, conv_run *r) {
    memset(r, 0, sizeof *r);
    r->s = *s;
    r->n = batch;
    r->p = clcl_conv2d_out_size(s->h, s->r, s->stride, s->pad);
    size_t nx = (size_t)batch * s->c * s->h * s->h, nw = (size_t)s->k * s->c * s->r * s->r;
    size_t ny = (size_t)batch * s->k * r->p * r->p;
    r->x = random_floats(nx), r->w = random_floats(nw), r->dy = random_floats(ny);
    r->out = malloc((nx > ny ? (nx > nw ? nx : nw) : (ny > nw ? ny : nw)) * sizeof *r->out);
    make_tensor(ctx, &r->tx, batch, s->c, s->h, s->h, r->x);
    make_tensor(ctx, &r->tw, s->k, s->c, s->r, s->r, r->w);
    make_tensor(ctx, &r->tdy, batch, s->k, r->p, r->p, r->dy);
    make_tensor(ctx, &r->ty, batch, s->k, r->p, r->p, NULL);
    make_tensor(ctx, &r->tdx, batch, s->c, s->h, s->h, NULL);
    make_tensor(ctx, &r->tdw, s->k, s->c, s->r, s->r, NULL);
}

static void run_free(conv_run *r) {
    free(r->x), free(r->w), free(r->dy), free(r->out);
    clcl_tensor *all[] = {&r->tx, &r->tw, &r->tdy, &r->ty, &r->tdx, &r->tdw};
    for (int i = 0; i < 6; i++)
        clcl_tensor_free(all[i]);
}

enum { DIR_FORWARD, DIR_DATA, DIR_WEIGHTS };
static const char *dir_names[] = {"forward", "backward data", "backward weights"};

/* Direct double sums of sampled elements of the direction's output in r->out; returns
 * the number of elements that are off. */
static int run_verify(const conv_run *r, int dir) {
    const conv_shape *s = &r->s;
    int n = r->n, c = s->c, k = s->k, h = s->h, p = r->p, ks = s->r, bad = 0;
    for (int t = 0; t < CHECKS; t++) {
        double sum = 0.0;
        size_t at;
        if (dir == DIR_FORWARD) { /* y[b, o, i, j] */
            int b = rand_below(n), o = rand_below(k), i = rand_below(p), j = rand_below(p);
            for (int ci = 0; ci < c; ci++)
                for (int u = 0; u < ks; u++)
                    for (int v = 0; v < ks; v++) {
                        int y = i * s->stride - s->pad + u, x = j * s->stride - s->pad + v;
                        if (y >= 0 && y < h && x >= 0 && x < h)
                            sum += (double)r->x[(((size_t)b * c + ci) * h + y) * h + x] *
                                   r->w[(((size_t)o * c + ci) * ks + u) * ks + v];
                    }
            at = (((size_t)b * k + o) * p + i) * p + j;
        } else if (dir == DIR_DATA) { /* dx[b, ci, y, x] */
            int b = rand_below(n), ci = rand_below(c), y = rand_below(h), x = rand_below(h);
            for (int o = 0; o < k; o++)
                for (int u = 0; u < ks; u++)
                    for (int v = 0; v < ks; v++) {
                        int iy = y + s->pad - u, jx = x + s->pad - v;
                        if (iy < 0 || jx < 0 || iy % s->stride || jx % s->stride)
                            continue;
                        iy /= s->stride, jx /= s->stride;
                        if (iy < p && jx < p)
                            sum += (double)r->dy[(((size_t)b * k + o) * p + iy) * p + jx] *
                                   r->w[(((size_t)o * c + ci) * ks + u) * ks + v];
                    }
            at = (((size_t)b * c + ci) * h + y) * h + x;
        } else { /* dw[o, ci, u, v] */
            int o = rand_below(k), ci = rand_below(c), u = rand_below(ks), v = rand_below(ks);
            for (int b = 0; b < n; b++)
                for (int i = 0; i < p; i++)
                    for (int j = 0; j < p; j++) {
                        int y = i * s->stride - s->pad + u, x = j * s->stride - s->pad + v;
                        if (y >= 0 && y < h && x >= 0 && x < h)
                            sum += (double)r->x[(((size_t)b * c + ci) * h + y) * h + x] *
                                   r->dy[(((size_t)b * k + o) * p + i) * p + j];
                    }
            at = (((size_t)o * c + ci) * ks + u) * ks + v;
        }
        if (!(fabs(r->out[at] - sum) <= CHECK_ATOL + CHECK_RTOL * fabs(sum)))
            bad++;
    }
    return bad;
}

/* One way of computing a direction. */
typedef enum {
    VARIANT_DEFAULT,
    VARIANT_COLUMNS,
    VARIANT_DIRECT,
    VARIANT_ONE_IMAGE,
    VARIANT_OWN_GEMM,
    VARIANT_CONVGEMM
} variant;
static const char *variant_names[] = {"default",         "columns",
                                      "direct kernel",   "one image per GEMM",
                                      "own GEMM kernel", "CLBlastSconvgemm"};

static clcl_status run_once(clcl_context *ctx, clcl_pool *pool, conv_run *r, int dir, variant v) {
    const conv_shape *s = &r->s;
    clcl_conv_options opt = {.max_images = v == VARIANT_ONE_IMAGE,
                             .own_gemm = v == VARIANT_OWN_GEMM,
                             .algo = v == VARIANT_DIRECT    ? CLCL_CONV_DIRECT
                                     : v == VARIANT_DEFAULT ? CLCL_CONV_AUTO
                                                            : CLCL_CONV_COLUMNS};
    if (v == VARIANT_CONVGEMM) {
        cl_command_queue q = clcl_context_queue(ctx);
        CLBlastStatusCode code = CLBlastSconvgemm(
            CLBlastKernelModeCrossCorrelation, (size_t)s->c, (size_t)s->h, (size_t)s->h,
            (size_t)s->r, (size_t)s->r, (size_t)s->pad, (size_t)s->pad, (size_t)s->stride,
            (size_t)s->stride, 1, 1, (size_t)s->k, (size_t)r->n, r->tx.buf, 0, r->tw.buf, 0,
            r->ty.buf, 0, &q, NULL);
        return code == CLBlastSuccess ? CLCL_OK
                                      : clcl_fail(CLCL_ERR_ARGUMENT, "CLBlastSconvgemm: %d", code);
    }
    if (dir == DIR_FORWARD)
        return clcl_conv2d_forward_with(ctx, pool, &r->tx, &r->tw, s->stride, s->pad, &r->ty, &opt);
    if (dir == DIR_DATA)
        return clcl_conv2d_backward_data_with(ctx, pool, &r->tdy, &r->tw, s->stride, s->pad,
                                              &r->tdx, &opt);
    return clcl_conv2d_backward_weights_with(ctx, pool, &r->tx, &r->tdy, s->stride, s->pad, &r->tdw,
                                             &opt);
}

/* Verifies, then times one direction and variant; prints a row. */
static void run_time(clcl_context *ctx, clcl_pool *pool, conv_run *r, int dir, variant v,
                     const bench_options *o, FILE *csv) {
    const conv_shape *s = &r->s;
    double times[MAX_REPS];
    const clcl_tensor *out = dir == DIR_FORWARD ? &r->ty : dir == DIR_DATA ? &r->tdx : &r->tdw;

    if (run_once(ctx, pool, r, dir, v) != CLCL_OK || clcl_finish(ctx) != CLCL_OK)
        die(dir_names[dir]);
    if (clcl_tensor_read(ctx, out, r->out) != CLCL_OK)
        die("read");
    int bad = run_verify(r, dir);
    if (bad) {
        fprintf(stderr, "bench_conv: %s %s (%s): %d of %d sampled outputs are wrong\n", s->name,
                dir_names[dir], variant_names[v], bad, CHECKS);
        exit(1);
    }
    double c0 = cpu_s();
    for (int i = 0; i < o->reps; i++) {
        double t0 = now_s();
        if (run_once(ctx, pool, r, dir, v) != CLCL_OK || clcl_finish(ctx) != CLCL_OK)
            die(dir_names[dir]);
        times[i] = now_s() - t0;
    }
    double cpu = (cpu_s() - c0) / o->reps;
    qsort(times, (size_t)o->reps, sizeof *times, cmp_double);
    double med = times[o->reps / 2], min = times[0];
    double flop = 2.0 * r->n * s->k * r->p * r->p * s->c * s->r * s->r;
    printf("%-22s %4d %4d %2dx%-2d %d %3d  %-16s %-18s %9.2f %9.2f %8.1f %8.1f\n", s->name, s->c,
           s->k, s->r, s->r, s->stride, s->h, dir_names[dir], variant_names[v], 1e3 * med,
           1e3 * min, flop / med * 1e-9, flop / cpu * 1e-9);
    if (csv)
        fprintf(csv, "%s,%d,%d,%d,%d,%d,%d,%d,%d,%s,%s,%.4f,%.4f,%.2f,%.2f\n", s->name, s->uses,
                o->batch, s->c, s->k, s->r, s->stride, s->pad, s->h, dir_names[dir],
                variant_names[v], 1e3 * med, 1e3 * min, flop / med * 1e-9, flop / cpu * 1e-9);
    fflush(stdout);
}

/* ---- --gemm: the matrix products alone ---------------------------------------------- */

/* Bytes of one chunk's column matrix, as host/conv.c budgets it (CONV_COLUMN_BYTES). */
#define CHUNK_BYTES ((size_t)64 << 20)

/* Images per chunk for a shape, as host/conv.c chooses them. */
static int chunk_images(const conv_shape *s, int batch, int p) {
    size_t rows = (size_t)s->c * s->r * s->r;
    if ((size_t)s->k > rows)
        rows = (size_t)s->k;
    size_t fit = (CHUNK_BYTES / sizeof(float) / rows - 32) / ((size_t)p * p);
    int nb = fit < 1 ? 1 : fit < (size_t)batch ? (int)fit : batch;
    int chunks = (batch + nb - 1) / nb;
    return (batch + chunks - 1) / chunks;
}

/* Double-precision check of sampled entries of C; returns how many are off. */
static int gemm_verify(const clcl_gemm_args *g, const float *a, const float *b, const float *c) {
    int bad = 0;
    for (int t = 0; t < CHECKS; t++) {
        int i = rand_below(g->m), j = rand_below(g->n);
        double sum = 0.0;
        for (int l = 0; l < g->k; l++) {
            double av = g->trans_a ? a[(size_t)l * g->lda + i] : a[(size_t)i * g->lda + l];
            double bv = g->trans_b ? b[(size_t)j * g->ldb + l] : b[(size_t)l * g->ldb + j];
            sum += av * bv;
        }
        double got = c[(size_t)i * g->ldc + j];
        if (!(fabs(got - sum) <= CHECK_ATOL + CHECK_RTOL * fabs(sum)))
            bad++;
    }
    return bad;
}

/* The backends --gemm compares. OpenBLAS runs on the host copies of the operands. */
typedef enum { BACKEND_OPENBLAS, BACKEND_CLBLAST, BACKEND_OWN } gemm_backend;
static const char *backend_names[] = {"OpenBLAS", "CLBlast", "own (cl/gemm.cl)"};

/* Seconds to wait after timing OpenBLAS: its idle worker threads spin for about 2^28
 * cycles before they sleep, and would take cores from the device backend timed next. */
#define BLAS_SETTLE_S 0.2

/* Written into C before a checked run, so that a backend that writes nothing fails the
 * check instead of passing on the previous backend's result (finite: beta is 0). */
#define C_SENTINEL 1e30f

/* Most products one run times: three per shape. */
#define MAX_PRODUCTS 48

/* One product of a shape's chunk: the device call and host copies of its operands. */
typedef struct {
    const char *dir;
    clcl_gemm_args g;
    const float *a, *b; /* the contents of g.a and g.b, with the same layout */
} gemm_product;

/* Runs one product to completion: on the device, into g.c, or with OpenBLAS on the host
 * copies, into c (g's sizes, transposes and leading dimensions either way). */
static clcl_status gemm_once(clcl_context *ctx, gemm_backend be, const gemm_product *p, float *c) {
    const clcl_gemm_args *g = &p->g;
    if (be == BACKEND_OPENBLAS) {
#ifdef CLCL_HAVE_OPENBLAS
        cblas_sgemm(CblasRowMajor, g->trans_a ? CblasTrans : CblasNoTrans,
                    g->trans_b ? CblasTrans : CblasNoTrans, g->m, g->n, g->k, g->alpha, p->a,
                    (blasint)g->lda, p->b, (blasint)g->ldb, g->beta, c, (blasint)g->ldc);
        return CLCL_OK;
#else
        return clcl_fail(CLCL_ERR_ARGUMENT, "bench_conv was built without OpenBLAS");
#endif
    }
    clcl_status st = be == BACKEND_OWN ? clcl_gemm_own(ctx, NULL, g) : clcl_gemm_clblast(ctx, g);
    return st == CLCL_OK ? clcl_finish(ctx) : st;
}

/* Runs one product once, fetches C to the host and checks it; exits if it is wrong. */
static void gemm_check(clcl_context *ctx, const conv_shape *s, gemm_backend be,
                       const gemm_product *p, float *c) {
    const clcl_gemm_args *g = &p->g;
    size_t n = (size_t)g->m * g->ldc;
    float sentinel = C_SENTINEL;

    /* C holds the sentinel on both sides before the run. */
    for (size_t i = 0; i < n; i++)
        c[i] = sentinel;
    if (clEnqueueFillBuffer(clcl_context_queue(ctx), g->c, &sentinel, sizeof sentinel, 0,
                            n * sizeof(float), 0, NULL, NULL) != CL_SUCCESS)
        die("fill");

    if (gemm_once(ctx, be, p, c) != CLCL_OK)
        die(backend_names[be]);
    if (be != BACKEND_OPENBLAS &&
        clEnqueueReadBuffer(clcl_context_queue(ctx), g->c, CL_TRUE, 0, n * sizeof(float), c, 0,
                            NULL, NULL) != CL_SUCCESS)
        die("read");
    int bad = gemm_verify(g, p->a, p->b, c);
    if (bad) {
        fprintf(stderr, "bench_conv: %s %s GEMM (%s): %d of %d sampled entries are wrong\n",
                s->name, p->dir, backend_names[be], bad, CHECKS);
        exit(1);
    }
}

/* Checks (the warm-up), then times one product with one backend; prints a row and returns
 * GFLOP/s at the median. blas_gflops is OpenBLAS's rate at this product (0: not measured);
 * our kernel's row gives its share of it. */
static double gemm_time(clcl_context *ctx, const conv_shape *s, const gemm_product *p,
                        gemm_backend be, float *c, double blas_gflops, const bench_options *o,
                        FILE *csv) {
    const clcl_gemm_args *g = &p->g;
    double times[MAX_REPS];
    gemm_check(ctx, s, be, p, c);

    double c0 = cpu_s();
    for (int i = 0; i < o->reps; i++) {
        double t0 = now_s();
        if (gemm_once(ctx, be, p, c) != CLCL_OK)
            die(backend_names[be]);
        times[i] = now_s() - t0;
    }
    double cpu = (cpu_s() - c0) / o->reps;
    qsort(times, (size_t)o->reps, sizeof *times, cmp_double);
    double med = times[o->reps / 2], min = times[0], flop = 2.0 * g->m * g->n * g->k;
    double rate = flop / med * 1e-9;
    double share = be == BACKEND_OWN && blas_gflops > 0 ? rate / blas_gflops : -1.0;

    char share_text[16] = "-";
    if (share >= 0)
        snprintf(share_text, sizeof share_text, "%.2f", share);
    printf("%-22s %-16s %c%c %6d %6d %6d  %-18s %9.2f %9.2f %8.1f %8.1f %8s\n", s->name, p->dir,
           g->trans_a ? 'T' : 'N', g->trans_b ? 'T' : 'N', g->m, g->n, g->k, backend_names[be],
           1e3 * med, 1e3 * min, rate, flop / cpu * 1e-9, share_text);
    if (csv)
        fprintf(csv, "%s,%s,%c%c,%d,%d,%d,%s,%.4f,%.4f,%.2f,%.2f,%s\n", s->name, p->dir,
                g->trans_a ? 'T' : 'N', g->trans_b ? 'T' : 'N', g->m, g->n, g->k, backend_names[be],
                1e3 * med, 1e3 * min, rate, flop / cpu * 1e-9, share >= 0 ? share_text : "");
    fflush(stdout);
    if (be == BACKEND_OPENBLAS)
        nanosleep(&(struct timespec){0, (long)(BLAS_SETTLE_S * 1e9)}, NULL);
    return rate;
}

/* Shares of OpenBLAS's rate that our kernel reached, one per product timed. */
typedef struct {
    double share[MAX_PRODUCTS];
    int n;
} share_list;

/* The three products of one shape's chunk: forward NN (K, L) = (K, CRS) (CRS, L), backward
 * data TN (CRS, L) = (K, CRS)^T (K, L), backward weights NT (K, CRS) = (K, L) (CRS, L)^T,
 * with L = images per chunk * P * Q. Each runs on OpenBLAS (when built in), CLBlast and
 * our kernel; our kernel's share of OpenBLAS's rate goes into shares. */
static void gemm_shape(clcl_context *ctx, const conv_shape *s, const bench_options *o, FILE *csv,
                       share_list *shares) {
    int p = clcl_conv2d_out_size(s->h, s->r, s->stride, s->pad);
    int crs = s->c * s->r * s->r, l = chunk_images(s, o->batch, p) * p * p, kk = s->k;
    size_t big = (size_t)crs * l > (size_t)kk * l ? (size_t)crs * l : (size_t)kk * l;
    if ((size_t)kk * crs > big)
        big = (size_t)kk * crs;
    float *hw = random_floats((size_t)kk * crs), *hcol = random_floats((size_t)crs * l);
    float *ht = random_floats((size_t)kk * l), *hc = malloc(big * sizeof *hc);
    clcl_tensor w, col, t, c;
    make_tensor(ctx, &w, 1, 1, kk, crs, hw);
    make_tensor(ctx, &col, 1, 1, crs, l, hcol);
    make_tensor(ctx, &t, 1, 1, kk, l, ht);
    make_tensor(ctx, &c, 1, 1, 1, (int)big, NULL);

    /* W (K, CRS), columns (CRS, L), output gradient (K, L); C is the shared output. */
    clcl_gemm_args fwd = {0, 0,           kk,      l, crs,       1.0f,  0.0f, w.buf,
                          0, (size_t)crs, col.buf, 0, (size_t)l, c.buf, 0,    (size_t)l};
    clcl_gemm_args data = {1, 0,           crs,   l, kk,        1.0f,  0.0f, w.buf,
                           0, (size_t)crs, t.buf, 0, (size_t)l, c.buf, 0,    (size_t)l};
    clcl_gemm_args wts = {0, 1,         kk,      crs, l,         1.0f,  0.0f, t.buf,
                          0, (size_t)l, col.buf, 0,   (size_t)l, c.buf, 0,    (size_t)crs};
    gemm_product prods[3] = {{"forward", fwd, hw, hcol},
                             {"backward data", data, hw, ht},
                             {"backward weights", wts, ht, hcol}};
    for (int i = 0; i < 3; i++) {
        double blas = o->blas ? gemm_time(ctx, s, &prods[i], BACKEND_OPENBLAS, hc, 0, o, csv) : 0;
        gemm_time(ctx, s, &prods[i], BACKEND_CLBLAST, hc, 0, o, csv);
        double own = gemm_time(ctx, s, &prods[i], BACKEND_OWN, hc, blas, o, csv);
        if (blas > 0 && shares->n < MAX_PRODUCTS)
            shares->share[shares->n++] = own / blas;
    }
    free(hw), free(hcol), free(ht), free(hc);
    clcl_tensor_free(&w), clcl_tensor_free(&col), clcl_tensor_free(&t), clcl_tensor_free(&c);
}

/* The one-line verdict on issue 7's target: our kernel at half of OpenBLAS or better. */
static void gemm_summary(share_list *shares) {
    int n = shares->n, half = 0;
    if (n == 0)
        return;
    qsort(shares->share, (size_t)n, sizeof *shares->share, cmp_double);
    for (int i = 0; i < n; i++)
        half += shares->share[i] >= 0.5;
    double med =
        n % 2 ? shares->share[n / 2] : 0.5 * (shares->share[n / 2 - 1] + shares->share[n / 2]);
    printf("own (cl/gemm.cl) / OpenBLAS, GFLOP/s at the median, over %d products: median %.2f, "
           "min %.2f; %d of %d reach one half\n",
           n, med, shares->share[0], half, n);
}

/* Says which OpenBLAS runs (or why none does), then the --gemm table's header. */
static void gemm_header(const bench_options *o) {
#ifdef CLCL_HAVE_OPENBLAS
    openblas_set_num_threads(o->blas_threads);
    printf("OpenBLAS: %s (core %s), %d threads\n", openblas_get_config(), openblas_get_corename(),
           openblas_get_num_threads());
#else
    printf("OpenBLAS: not found when bench_conv was built; install Debian's libopenblas-dev "
           "and reconfigure to time it beside the device backends\n");
#endif
    printf("%-22s %-16s %2s %6s %6s %6s  %-18s %9s %9s %8s %8s %8s\n", "layer", "direction", "op",
           "M", "N", "K", "backend", "median ms", "min ms", "GFLOP/s", "GF/cpu-s", "own/BLAS");
}

static void usage(void) {
    fprintf(stderr, "usage: bench_conv [--batch N] [--size S] [--in C] [--width W] [--reps R] "
                    "[--layer NAME] [--variants] [--gemm] [--blas-threads N] [--csv FILE] "
                    "[--device D]\n");
    exit(2);
}

static bench_options parse(int argc, char **argv) {
    bench_options o = {.batch = 128, .size = 32, .in = 3, .reps = 5, .width = 1.0};
#ifdef CLCL_HAVE_OPENBLAS
    o.blas = 1;
#endif
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    o.blas_threads = cpus > 0 ? (int)cpus : 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--variants") == 0 || strcmp(a, "--gemm") == 0) {
            *(strcmp(a, "--gemm") == 0 ? &o.gemm : &o.variants) = 1;
            continue;
        }
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--batch") == 0)
            o.batch = atoi(v);
        else if (strcmp(a, "--size") == 0)
            o.size = atoi(v);
        else if (strcmp(a, "--in") == 0)
            o.in = atoi(v);
        else if (strcmp(a, "--width") == 0)
            o.width = atof(v);
        else if (strcmp(a, "--reps") == 0)
            o.reps = atoi(v);
        else if (strcmp(a, "--blas-threads") == 0)
            o.blas_threads = atoi(v);
        else if (strcmp(a, "--layer") == 0)
            o.layer = v;
        else if (strcmp(a, "--csv") == 0)
            o.csv = v;
        else if (strcmp(a, "--device") == 0)
            o.device = v;
        else
            usage();
    }
    if (o.batch < 1 || o.size < 8 || o.in < 1 || o.width <= 0 || o.reps < 1 || o.reps > MAX_REPS ||
        o.blas_threads < 1)
        usage();
    return o;
}

int main(int argc, char **argv) {
    bench_options o = parse(argc, argv);
    clcl_context *ctx;
    clcl_pool *pool;
    conv_shape shapes[16];
    if (clcl_context_create(o.device, &ctx) != CLCL_OK)
        die("context");
    if (clcl_pool_create(ctx, &pool) != CLCL_OK)
        die("pool");
    FILE *csv = o.csv ? fopen(o.csv, "w") : NULL;
    if (o.csv && !csv) {
        fprintf(stderr, "bench_conv: cannot write --csv %s\n", o.csv);
        return 1;
    }
    if (csv && o.gemm)
        fprintf(csv, "layer,direction,transposes,m,n,k,backend,median_ms,min_ms,gflops,"
                     "gflop_per_cpu_s,share_of_openblas\n");
    else if (csv)
        fprintf(csv, "layer,uses,batch,c,k,r,stride,pad,h,direction,variant,median_ms,min_ms,"
                     "gflops,gflop_per_cpu_s\n");

    const clcl_device_info *dev = clcl_context_device(ctx);
    printf("device: %s (%s), batch %d, %dx%d input with %d channels, width %g, %d repetitions\n",
           dev->name, dev->platform, o.batch, o.size, o.size, o.in, o.width, o.reps);
    if (o.gemm)
        gemm_header(&o);
    else
        printf("%-22s %4s %4s %5s %s %3s  %-16s %-18s %9s %9s %8s %8s\n", "layer", "C", "K", "RxS",
               "s", "H", "direction", "variant", "median ms", "min ms", "GFLOP/s", "GF/cpu-s");
    share_list shares = {.n = 0};
    int n = resnet18_shapes(&o, shapes);
    for (int i = 0; i < n; i++) {
        if (o.layer && !strstr(shapes[i].name, o.layer))
            continue;
        if (o.gemm) {
            gemm_shape(ctx, &shapes[i], &o, csv, &shares);
            continue;
        }
        conv_run r;
        run_make(ctx, &shapes[i], o.batch, &r);
        for (int dir = 0; dir < 3; dir++) {
            run_time(ctx, pool, &r, dir, VARIANT_DEFAULT, &o, csv);
            if (o.variants)
                run_time(ctx, pool, &r, dir, VARIANT_COLUMNS, &o, csv);
            if (o.variants && (dir == DIR_FORWARD || (dir == DIR_DATA && r.s.stride == 1) ||
                               (dir != DIR_DATA && r.s.r <= 3)))
                run_time(ctx, pool, &r, dir, VARIANT_DIRECT, &o, csv);
            if (o.variants)
                run_time(ctx, pool, &r, dir, VARIANT_ONE_IMAGE, &o, csv);
            if (o.variants)
                run_time(ctx, pool, &r, dir, VARIANT_OWN_GEMM, &o, csv);
            if (o.variants && dir == DIR_FORWARD)
                run_time(ctx, pool, &r, dir, VARIANT_CONVGEMM, &o, csv);
        }
        run_free(&r);
        clcl_pool_reset(pool);
    }
    if (o.gemm)
        gemm_summary(&shares);
    if (csv)
        fclose(csv);
    clcl_pool_free(pool);
    clcl_context_free(ctx);
    return 0;
}
