/* Matrix products: argument checks, CLBlast's row-major SGEMM, our own kernels of
 * cl/gemm.cl, and the dispatch that picks one of them per device and shape by measurement
 * (clcl/tuning.h). */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <clblast_c.h>

#include "check.h"
#include "clcl/gemm.h"
#include "clcl/log.h"
#include "tuning_internal.h"

/* A short name for the CLBlast codes that are not OpenCL's own. */
static const char *clblast_code_name(CLBlastStatusCode code) {
    switch (code) {
        case CLBlastNotImplemented:
            return "CLBlastNotImplemented";
        case CLBlastInvalidMatrixA:
            return "CLBlastInvalidMatrixA";
        case CLBlastInvalidMatrixB:
            return "CLBlastInvalidMatrixB";
        case CLBlastInvalidMatrixC:
            return "CLBlastInvalidMatrixC";
        case CLBlastInvalidDimension:
            return "CLBlastInvalidDimension";
        case CLBlastInvalidLeadDimA:
            return "CLBlastInvalidLeadDimA";
        case CLBlastInvalidLeadDimB:
            return "CLBlastInvalidLeadDimB";
        case CLBlastInvalidLeadDimC:
            return "CLBlastInvalidLeadDimC";
        case CLBlastInsufficientMemoryA:
            return "CLBlastInsufficientMemoryA";
        case CLBlastInsufficientMemoryB:
            return "CLBlastInsufficientMemoryB";
        case CLBlastInsufficientMemoryC:
            return "CLBlastInsufficientMemoryC";
        case CLBlastInsufficientMemoryTemp:
            return "CLBlastInsufficientMemoryTemp";
        case CLBlastInvalidLocalMemUsage:
            return "CLBlastInvalidLocalMemUsage";
        case CLBlastDatabaseError:
            return "CLBlastDatabaseError";
        case CLBlastUnknownError:
            return "CLBlastUnknownError";
        case CLBlastUnexpectedError:
            return "CLBlastUnexpectedError";
        default:
            return "a CLBlast error";
    }
}

/* Turns a CLBlast status into ours: OpenCL's codes pass through (they are the same
 * numbers), CLBlast's own become CLCL_ERR_ARGUMENT, since its -2039..-2050 would collide
 * with clcl's range. */
static clcl_status clblast_status(CLBlastStatusCode code, const char *what) {
    if (code == CLBlastSuccess)
        return CLCL_OK;
    if (code > -1000)
        return clcl_fail(code, "%s: %s", what, clcl_status_name(code));
    return clcl_fail(CLCL_ERR_ARGUMENT, "%s: %s (%d)", what, clblast_code_name(code), (int)code);
}

/* Checks one operand: a `rows` x `cols` row-major block at `offset` with leading
 * dimension `ld` must fit in the buffer `mem`. */
static clcl_status check_operand(const char *name, cl_mem mem, size_t rows, size_t cols,
                                 size_t offset, size_t ld) {
    size_t bytes = 0;

    if (!mem)
        return clcl_fail(CLCL_ERR_ARGUMENT, "gemm: matrix %s is a NULL buffer", name);
    if (ld < cols)
        return clcl_fail(CLCL_ERR_SHAPE,
                         "gemm: ld%s %zu is less than the %zu columns of %s as stored (%zu x %zu)",
                         name, ld, cols, name, rows, cols);
    CLCL_TRY_CL(clGetMemObjectInfo(mem, CL_MEM_SIZE, sizeof bytes, &bytes, NULL));
    size_t need = offset + (rows - 1) * ld + cols;
    if (need > bytes / sizeof(float))
        return clcl_fail(CLCL_ERR_SHAPE,
                         "gemm: matrix %s (%zu x %zu, ld %zu, offset %zu) needs %zu floats, "
                         "its buffer holds %zu",
                         name, rows, cols, ld, offset, need, bytes / sizeof(float));
    return CLCL_OK;
}

clcl_status clcl_gemm_check(const clcl_gemm_args *g) {
    if (g->m <= 0 || g->n <= 0 || g->k <= 0)
        return clcl_fail(CLCL_ERR_SHAPE, "gemm: m %d, n %d, k %d: expected all positive", g->m,
                         g->n, g->k);
    if ((g->trans_a != 0 && g->trans_a != 1) || (g->trans_b != 0 && g->trans_b != 1))
        return clcl_fail(CLCL_ERR_ARGUMENT, "gemm: trans_a %d, trans_b %d: expected 0 or 1",
                         g->trans_a, g->trans_b);

    /* As stored: A is (m, k) or, transposed, (k, m); B is (k, n) or (n, k); C is (m, n). */
    size_t m = (size_t)g->m, n = (size_t)g->n, k = (size_t)g->k;
    CLCL_TRY(check_operand("A", g->a, g->trans_a ? k : m, g->trans_a ? m : k, g->a_offset, g->lda));
    CLCL_TRY(check_operand("B", g->b, g->trans_b ? n : k, g->trans_b ? k : n, g->b_offset, g->ldb));
    CLCL_TRY(check_operand("C", g->c, m, n, g->c_offset, g->ldc));
    return CLCL_OK;
}

clcl_status clcl_gemm_clblast(clcl_context *ctx, const clcl_gemm_args *g) {
    char what[160];
    cl_command_queue queue = clcl_context_queue(ctx);

    CLCL_TRY(clcl_gemm_check(g));
    CLBlastStatusCode code =
        CLBlastSgemm(CLBlastLayoutRowMajor, g->trans_a ? CLBlastTransposeYes : CLBlastTransposeNo,
                     g->trans_b ? CLBlastTransposeYes : CLBlastTransposeNo, (size_t)g->m,
                     (size_t)g->n, (size_t)g->k, g->alpha, g->a, g->a_offset, g->lda, g->b,
                     g->b_offset, g->ldb, g->beta, g->c, g->c_offset, g->ldc, &queue, NULL);
    if (code == CLBlastSuccess)
        return CLCL_OK;
    snprintf(what, sizeof what, "CLBlastSgemm(row-major, %s%s, m %d, n %d, k %d)",
             g->trans_a ? "T" : "N", g->trans_b ? "T" : "N", g->m, g->n, g->k);
    return clblast_status(code, what);
}

/* CLBlast with its temporary buffer from `scratch` (NULL: CLBlast allocates one). */
static clcl_status clblast_pooled(clcl_context *ctx, clcl_pool *scratch, const clcl_gemm_args *g) {
    char what[160];
    cl_command_queue queue = clcl_context_queue(ctx);
    CLBlastTranspose ta = g->trans_a ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastTranspose tb = g->trans_b ? CLBlastTransposeYes : CLBlastTransposeNo;
    size_t bytes = 0;
    clcl_tensor temp;

    if (!scratch)
        return clcl_gemm_clblast(ctx, g);
    CLCL_TRY(clcl_gemm_check(g));
    snprintf(what, sizeof what, "CLBlastSgemm(row-major, %s%s, m %d, n %d, k %d)",
             g->trans_a ? "T" : "N", g->trans_b ? "T" : "N", g->m, g->n, g->k);

    /* How much CLBlast wants (bytes); none for its direct kernel. */
    CLCL_TRY(clblast_status(CLBlastSGemmTempBufferSize(CLBlastLayoutRowMajor, ta, tb, (size_t)g->m,
                                                       (size_t)g->n, (size_t)g->k, g->a_offset,
                                                       g->lda, g->b_offset, g->ldb, g->c_offset,
                                                       g->ldc, &queue, &bytes),
                            what));
    if (bytes == 0)
        return clcl_gemm_clblast(ctx, g);
    size_t floats = (bytes + sizeof(float) - 1) / sizeof(float);
    if (floats > INT_MAX)
        return clcl_gemm_clblast(ctx, g);
    CLCL_TRY(clcl_pool_tensor(scratch, &temp, 1, (int[]){(int)floats}));
    CLBlastStatusCode code = CLBlastSgemmWithTempBuffer(
        CLBlastLayoutRowMajor, ta, tb, (size_t)g->m, (size_t)g->n, (size_t)g->k, g->alpha, g->a,
        g->a_offset, g->lda, g->b, g->b_offset, g->ldb, g->beta, g->c, g->c_offset, g->ldc, &queue,
        NULL, temp.buf);
    clcl_pool_release(scratch, &temp);
    return clblast_status(code, what);
}

/* ---- our kernels --------------------------------------------------------------------- */

/* 6 x 16 outputs per work-item fill 12 of the 16 AVX2 vector registers; 16 work-items of
 * consecutive rows share a strip of B in cache. Measured on PoCL (docs/layers.md); other
 * devices get theirs from the tuner. */
clcl_gemm_params clcl_gemm_params_default(void) {
    return (clcl_gemm_params){
        .tm = 6, .vw = 8, .nv = 2, .dot_tm = 3, .dot_tn = 3, .lx = 1, .ly = 16};
}

static int fits_int(size_t v) {
    return v <= (size_t)INT_MAX;
}

int tuning_gemm_params_valid(const clcl_gemm_params *p) {
    int vw_ok = p->vw == 2 || p->vw == 4 || p->vw == 8 || p->vw == 16;
    return vw_ok && p->tm >= 1 && p->nv >= 1 && p->dot_tm >= 1 && p->dot_tn >= 1 && p->lx >= 1 &&
           p->ly >= 1 && p->tm * p->nv <= 64 && p->dot_tm * p->dot_tn <= 64;
}

static clcl_status check_params(const clcl_gemm_params *p) {
    if (!tuning_gemm_params_valid(p))
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "gemm tunables tm %d vw %d nv %d dot_tm %d dot_tn %d lx %d ly %d: "
                         "expected vw 2, 4, 8 or 16, all positive, at most 64 vectors of "
                         "accumulators",
                         p->tm, p->vw, p->nv, p->dot_tm, p->dot_tn, p->lx, p->ly);
    return CLCL_OK;
}

clcl_status clcl_gemm_own(clcl_context *ctx, const clcl_gemm_params *params,
                          const clcl_gemm_args *g) {
    clcl_gemm_params p = params ? *params : clcl_gemm_params_default();
    char options[160];
    cl_kernel k;
    size_t limit;

    CLCL_TRY(clcl_gemm_check(g));
    CLCL_TRY(check_params(&p));
    if (!fits_int(g->a_offset) || !fits_int(g->b_offset) || !fits_int(g->c_offset) ||
        !fits_int(g->lda) || !fits_int(g->ldb) || !fits_int(g->ldc))
        return clcl_fail(CLCL_ERR_TOO_LARGE,
                         "gemm: offsets and leading dimensions above %d "
                         "need the CLBlast backend",
                         INT_MAX);

    /* One program per transpose of A and set of tunables; B's transpose picks the kernel. */
    snprintf(options, sizeof options,
             "-DGEMM_TRANS_A=%d -DGEMM_TM=%d -DGEMM_VW=%d -DGEMM_NV=%d -DGEMM_DOT_TM=%d "
             "-DGEMM_DOT_TN=%d",
             g->trans_a, p.tm, p.vw, p.nv, p.dot_tm, p.dot_tn);
    CLCL_TRY(clcl_context_kernel(ctx, "gemm", g->trans_b ? "gemm_dot" : "gemm_bcast", options, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_INT(g->m), CLCL_ARG_INT(g->n), CLCL_ARG_INT(g->k),
                              CLCL_ARG_FLOAT(g->alpha), CLCL_ARG_FLOAT(g->beta), CLCL_ARG_MEM(g->a),
                              CLCL_ARG_INT((int)g->a_offset), CLCL_ARG_INT((int)g->lda),
                              CLCL_ARG_MEM(g->b), CLCL_ARG_INT((int)g->b_offset),
                              CLCL_ARG_INT((int)g->ldb), CLCL_ARG_MEM(g->c),
                              CLCL_ARG_INT((int)g->c_offset), CLCL_ARG_INT((int)g->ldc)));

    /* One work-item per tile; the work-group shrinks to what the kernel allows. */
    int tile_n = g->trans_b ? p.dot_tn : p.nv * p.vw, tile_m = g->trans_b ? p.dot_tm : p.tm;
    size_t global[2] = {(size_t)(g->n + tile_n - 1) / tile_n, (size_t)(g->m + tile_m - 1) / tile_m};
    size_t local[2] = {(size_t)p.lx, (size_t)p.ly};
    CLCL_TRY(clcl_kernel_max_work_group(ctx, k, &limit));
    while (local[0] * local[1] > limit)
        local[local[1] > 1 ? 1 : 0] /= 2;
    return clcl_launch(ctx, k, 2, global, local);
}

/* ---- choosing the backend by measurement --------------------------------------------- */

/* A product of the caller's shape on scratch buffers filled with seeded values. */
typedef struct tuning_trial {
    clcl_gemm_args g;
    float *ha, *hb, *hc; /* the initial contents of A, B and C */
    size_t na, nb, nc;   /* their lengths in floats */
} gemm_trial;

static uint64_t splitmix(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* n values uniform in [-1, 1); NULL when out of memory. */
static float *seeded_floats(size_t n, uint64_t *state) {
    float *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; v && i < n; i++)
        v[i] = (float)(splitmix(state) >> 40) * (2.0f / 16777216.0f) - 1.0f;
    return v;
}

static void trial_free(gemm_trial *t) {
    free(t->ha), free(t->hb), free(t->hc);
    if (t->g.a)
        clReleaseMemObject(t->g.a);
    if (t->g.b)
        clReleaseMemObject(t->g.b);
    if (t->g.c)
        clReleaseMemObject(t->g.c);
    memset(t, 0, sizeof *t);
}

/* One operand: a buffer of offset + rows * ld floats holding host values. */
static clcl_status trial_operand(clcl_context *ctx, size_t rows, size_t ld, size_t offset,
                                 uint64_t *rng, float **host, size_t *count, cl_mem *mem) {
    *count = offset + rows * ld;
    *host = seeded_floats(*count, rng);
    if (!*host)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "gemm tuning: out of host memory");
    CLCL_TRY(clcl_buffer_create(ctx, *count * sizeof(float), "gemm tuning scratch", mem));
    CLCL_TRY_CL(clEnqueueWriteBuffer(clcl_context_queue(ctx), *mem, CL_TRUE, 0,
                                     *count * sizeof(float), *host, 0, NULL, NULL));
    return CLCL_OK;
}

/* Scratch operands with the caller's sizes, leading dimensions and offsets modulo 16. */
static clcl_status trial_create(clcl_context *ctx, const clcl_gemm_args *caller, gemm_trial *t) {
    const clcl_gemm_args *g = caller;
    size_t m = (size_t)g->m, n = (size_t)g->n, k = (size_t)g->k;
    uint64_t rng = 0x5eed ^ (m * 1000003u + n * 10007u + k * 101u + g->trans_a * 2u + g->trans_b);
    clcl_status st;

    memset(t, 0, sizeof *t);
    t->g = *caller;
    t->g.a_offset %= 16, t->g.b_offset %= 16, t->g.c_offset %= 16;
    st = trial_operand(ctx, g->trans_a ? k : m, g->lda, t->g.a_offset, &rng, &t->ha, &t->na,
                       &t->g.a);
    if (st == CLCL_OK)
        st = trial_operand(ctx, g->trans_b ? n : k, g->ldb, t->g.b_offset, &rng, &t->hb, &t->nb,
                           &t->g.b);
    if (st == CLCL_OK)
        st = trial_operand(ctx, m, g->ldc, t->g.c_offset, &rng, &t->hc, &t->nc, &t->g.c);
    if (st != CLCL_OK)
        trial_free(t);
    return st;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static clcl_status trial_launch(clcl_context *ctx, gemm_trial *t, int own,
                                const clcl_gemm_params *p) {
    return own ? clcl_gemm_own(ctx, p, &t->g) : clcl_gemm_clblast(ctx, &t->g);
}

/* Runs once from the initial C and reads the result into out (nc floats). */
static clcl_status trial_result(clcl_context *ctx, gemm_trial *t, int own,
                                const clcl_gemm_params *p, float *out) {
    cl_command_queue q = clcl_context_queue(ctx);
    CLCL_TRY_CL(
        clEnqueueWriteBuffer(q, t->g.c, CL_TRUE, 0, t->nc * sizeof(float), t->hc, 0, NULL, NULL));
    CLCL_TRY(trial_launch(ctx, t, own, p));
    CLCL_TRY_CL(
        clEnqueueReadBuffer(q, t->g.c, CL_TRUE, 0, t->nc * sizeof(float), out, 0, NULL, NULL));
    return CLCL_OK;
}

/* The minimum over up to 3 timed runs (fewer once 0.3 s are spent), in ms; the result
 * has been computed once before, so programs are built and caches warm. */
static clcl_status trial_time(clcl_context *ctx, gemm_trial *t, int own, const clcl_gemm_params *p,
                              double *best) {
    double spent = 0;
    *best = -1;
    for (int r = 0; r < 3 && spent < 300; r++) {
        double t0 = now_ms();
        CLCL_TRY(trial_launch(ctx, t, own, p));
        CLCL_TRY(clcl_finish(ctx));
        double ms = now_ms() - t0;
        spent += ms;
        if (*best < 0 || ms < *best)
            *best = ms;
    }
    return CLCL_OK;
}

/* Element (i, j) of op(A) op(B) from the host copies, in double precision. */
static double trial_dot(const gemm_trial *t, size_t i, size_t j) {
    const clcl_gemm_args *g = &t->g;
    double s = 0;
    for (size_t l = 0; l < (size_t)g->k; l++) {
        double a = t->ha[g->a_offset + (g->trans_a ? l * g->lda + i : i * g->lda + l)];
        double b = t->hb[g->b_offset + (g->trans_b ? j * g->ldb + l : l * g->ldb + j)];
        s += a * b;
    }
    return s;
}

/* 1 when got matches ref over the (m, n) block: max |got - ref| <= 1e-4 max |ref| + 1e-5
 * (fp32 sums of k products in [-1, 1) stay far inside it), NaN included. ref NULL: 64
 * sampled elements (the corners among them) against the host in double precision. */
static int trial_agrees(const gemm_trial *t, const float *got, const float *ref) {
    const clcl_gemm_args *g = &t->g;
    double worst = 0, scale = 0;
    uint64_t rng = 77;

    for (int s = 0; s < (ref ? g->m : 64); s++) {
        for (int c = 0; c < (ref ? g->n : 1); c++) {
            size_t i = (size_t)s, j = (size_t)c;
            double want;
            if (!ref) {
                i = s < 2 ? (size_t)(s * (g->m - 1)) : splitmix(&rng) % (size_t)g->m;
                j = s % 2 ? (size_t)(g->n - 1) : splitmix(&rng) % (size_t)g->n;
            }
            size_t at = g->c_offset + i * g->ldc + j;
            want = ref ? ref[at] : g->alpha * trial_dot(t, i, j) + g->beta * t->hc[at];
            double d = fabs(got[at] - want);
            if (!(d <= worst))
                worst = isnan(d) ? INFINITY : d;
            if (fabs(want) > scale)
                scale = fabs(want);
        }
    }
    return worst <= 1e-4 * scale + 1e-5;
}

/* Both backends on scratch buffers of g's shape; our kernel must agree with CLBlast (or,
 * if CLBlast fails, with the host) to be eligible; the faster eligible one wins. A
 * CLBlast time that is only its first run's (an upper bound) is recorded as such. */
static clcl_status gemm_measure(clcl_context *ctx, const clcl_gemm_args *g, tuning_gemm_entry *e,
                                int *disqualified) {
    gemm_trial t;
    clcl_gemm_params p = clcl_gemm_params_default();
    clcl_status st_blas, st_own = CLCL_OK;

    *disqualified = 0;
    e->key = tuning_gemm_key_of(g);
    e->params = p;
    e->ms_own = e->ms_clblast = -1;
    e->tuned = 0;
    CLCL_TRY(trial_create(ctx, g, &t));
    float *ref = malloc(t.nc * sizeof *ref), *got = malloc(t.nc * sizeof *got);
    if (!ref || !got) {
        free(ref), free(got), trial_free(&t);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "gemm tuning: out of host memory");
    }

    /* Our kernel: its result from the initial C (this also builds its program), its time. */
    st_own = trial_result(ctx, &t, 1, &p, got);
    if (st_own == CLCL_OK)
        st_own = trial_time(ctx, &t, 1, &p, &e->ms_own);

    /* CLBlast's result, the reference. Its first run (transfers included) bounds its time;
     * it is timed properly only when that bound comes within twice our kernel's time. */
    double t0 = now_ms();
    st_blas = trial_result(ctx, &t, 0, NULL, ref);
    e->ms_clblast = now_ms() - t0;
    if (st_blas == CLCL_OK && st_own == CLCL_OK && e->ms_clblast < 2 * e->ms_own)
        st_blas = trial_time(ctx, &t, 0, NULL, &e->ms_clblast);
    if (st_blas != CLCL_OK) {
        e->ms_clblast = -1;
        CLCL_LOG_WARN("gemm", "CLBlast failed at a tuning trial: %s", clcl_last_error());
    }
    if (st_own == CLCL_OK && !trial_agrees(&t, got, st_blas == CLCL_OK ? ref : NULL))
        st_own = clcl_fail(CLCL_ERR_ARGUMENT, "its result differs from %s",
                           st_blas == CLCL_OK ? "CLBlast's" : "the host's");
    if (st_own != CLCL_OK) {
        *disqualified = 1;
        e->ms_own = -1;
        CLCL_LOG_WARN("gemm", "our kernel is disqualified at %c%c m %d n %d k %d: %s",
                      g->trans_a ? 'T' : 'N', g->trans_b ? 'T' : 'N', g->m, g->n, g->k,
                      clcl_last_error());
    }
    free(ref), free(got), trial_free(&t);
    if (st_blas != CLCL_OK && st_own != CLCL_OK)
        return clcl_fail(st_blas, "gemm: neither backend ran %c%c m %d n %d k %d",
                         g->trans_a ? 'T' : 'N', g->trans_b ? 'T' : 'N', g->m, g->n, g->k);

    e->backend = st_own != CLCL_OK           ? TUNING_CLBLAST
                 : st_blas != CLCL_OK        ? TUNING_OWN
                 : e->ms_own < e->ms_clblast ? TUNING_OWN
                                             : TUNING_CLBLAST;
    return CLCL_OK;
}

/* ---- the tuner's interface ----------------------------------------------------------- */

static tuning_gemm_recorder *recorder;

void tuning_gemm_record(tuning_gemm_recorder *r) {
    recorder = r;
}

/* Adds g to the recorder unless its key is there already. */
static void record(const clcl_gemm_args *g) {
    tuning_gemm_key key = tuning_gemm_key_of(g);
    for (int i = 0; i < recorder->count; i++) {
        tuning_gemm_key seen = tuning_gemm_key_of(&recorder->args[i]);
        if (tuning_gemm_key_equal(&seen, &key))
            return;
    }
    if (recorder->count == recorder->cap) {
        int cap = recorder->cap ? 2 * recorder->cap : 64;
        clcl_gemm_args *p = realloc(recorder->args, (size_t)cap * sizeof *p);
        if (!p) {
            recorder->failed = 1;
            return;
        }
        recorder->args = p, recorder->cap = cap;
    }
    /* the shape only: the buffers may be gone by the time the tuner runs */
    clcl_gemm_args *kept = &recorder->args[recorder->count++];
    *kept = *g;
    kept->a = kept->b = kept->c = NULL;
}

clcl_status tuning_trial_create(clcl_context *ctx, const clcl_gemm_args *g, tuning_trial **out) {
    *out = NULL;
    gemm_trial *t = malloc(sizeof *t);
    if (!t)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "gemm tuning: out of host memory");
    clcl_status st = trial_create(ctx, g, t);
    if (st != CLCL_OK) {
        free(t);
        return st;
    }
    *out = t;
    return CLCL_OK;
}

void tuning_trial_free(tuning_trial *t) {
    if (t)
        trial_free(t);
    free(t);
}

/* Our kernel's candidates: B as stored (gemm_bcast) and B transposed (gemm_dot). The
 * first of each is cl/gemm.cl's default; the last is shaped for GPUs (128 work-items). */
const clcl_gemm_params tuning_candidates_bcast[TUNING_CANDIDATES] = {
    {.tm = 6, .vw = 8, .nv = 2, .dot_tm = 3, .dot_tn = 3, .lx = 1, .ly = 16},
    {.tm = 4, .vw = 8, .nv = 2, .dot_tm = 3, .dot_tn = 3, .lx = 1, .ly = 16},
    {.tm = 8, .vw = 8, .nv = 1, .dot_tm = 3, .dot_tn = 3, .lx = 1, .ly = 16},
    {.tm = 6, .vw = 8, .nv = 2, .dot_tm = 3, .dot_tn = 3, .lx = 1, .ly = 4},
    {.tm = 4, .vw = 16, .nv = 1, .dot_tm = 3, .dot_tn = 3, .lx = 1, .ly = 16},
    {.tm = 2, .vw = 4, .nv = 2, .dot_tm = 3, .dot_tn = 3, .lx = 16, .ly = 8},
};
const clcl_gemm_params tuning_candidates_dot[TUNING_CANDIDATES] = {
    {.tm = 6, .vw = 8, .nv = 2, .dot_tm = 3, .dot_tn = 3, .lx = 1, .ly = 16},
    {.tm = 6, .vw = 8, .nv = 2, .dot_tm = 2, .dot_tn = 4, .lx = 1, .ly = 16},
    {.tm = 6, .vw = 8, .nv = 2, .dot_tm = 4, .dot_tn = 2, .lx = 1, .ly = 16},
    {.tm = 6, .vw = 8, .nv = 2, .dot_tm = 4, .dot_tn = 4, .lx = 1, .ly = 16},
    {.tm = 6, .vw = 16, .nv = 1, .dot_tm = 3, .dot_tn = 3, .lx = 1, .ly = 16},
    {.tm = 6, .vw = 4, .nv = 2, .dot_tm = 2, .dot_tn = 2, .lx = 16, .ly = 8},
};

clcl_status tuning_trial_measure(clcl_context *ctx, tuning_trial *t, int own,
                                 const clcl_gemm_params *p, double bound_ms, double *ms) {
    float *got = malloc(t->nc * sizeof *got);
    *ms = -1;
    if (!got)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "gemm tuning: out of host memory");
    double t0 = now_ms();
    clcl_status st = trial_result(ctx, t, own, p, got);
    double first = now_ms() - t0;
    int agrees = st == CLCL_OK && trial_agrees(t, got, NULL);
    if (agrees && bound_ms > 0 && first > bound_ms)
        *ms = first;
    else if (agrees)
        st = trial_time(ctx, t, own, p, ms);
    else if (st == CLCL_OK)
        CLCL_LOG_WARN("gemm", "%s disagrees with the host at sampled outputs",
                      own ? "a candidate of our kernel" : "CLBlast");
    else
        CLCL_LOG_WARN("gemm", "a candidate failed: %s", clcl_last_error());
    free(got);
    if (st != CLCL_OK)
        *ms = -1;
    return CLCL_OK;
}

/* The decision for g's shape: from the table, or measured now and stored. */
static clcl_status gemm_decide(clcl_context *ctx, const clcl_gemm_args *g, tuning_gemm_entry *e) {
    tuning_gemm_key key = tuning_gemm_key_of(g);
    int disqualified;

    if (tuning_gemm_find(ctx, &key, e))
        return CLCL_OK;
    tuning_gemm_entry measured;
    CLCL_TRY(gemm_measure(ctx, g, &measured, &disqualified));
    CLCL_LOG_INFO("gemm",
                  "%c%c m %d n %d k %d lda %zu ldb %zu ldc %zu: own %.3f ms, CLBlast %.3f "
                  "ms -> %s",
                  g->trans_a ? 'T' : 'N', g->trans_b ? 'T' : 'N', g->m, g->n, g->k, g->lda, g->ldb,
                  g->ldc, measured.ms_own, measured.ms_clblast,
                  measured.backend == TUNING_OWN ? "own" : "CLBlast");
    tuning_gemm_store(ctx, &measured, disqualified, e);
    return CLCL_OK;
}

/* CLCL_GEMM forces a backend, else the table decides (our kernel only where its int
 * offsets and leading dimensions fit). */
static clcl_status gemm_dispatch(clcl_context *ctx, clcl_pool *scratch, const clcl_gemm_args *g) {
    const char *mode = tuning_gemm_mode();
    tuning_gemm_entry e;

    CLCL_TRY(clcl_gemm_check(g));
    if (strcmp(mode, "clblast") == 0)
        return clblast_pooled(ctx, scratch, g);
    if (strcmp(mode, "own") == 0)
        return clcl_gemm_own(ctx, NULL, g);
    if (strcmp(mode, "auto") != 0)
        return clcl_fail(CLCL_ERR_ARGUMENT, "CLCL_GEMM=%s: expected auto, own or clblast", mode);

    int own_fits = fits_int(g->a_offset) && fits_int(g->b_offset) && fits_int(g->c_offset) &&
                   fits_int(g->lda) && fits_int(g->ldb) && fits_int(g->ldc);
    if (recorder) {
        record(g);
        return own_fits ? clcl_gemm_own(ctx, NULL, g) : clblast_pooled(ctx, scratch, g);
    }
    if (!own_fits)
        return clblast_pooled(ctx, scratch, g);
    CLCL_TRY(gemm_decide(ctx, g, &e));
    if (e.backend == TUNING_OWN)
        return clcl_gemm_own(ctx, &e.params, g);
    return clblast_pooled(ctx, scratch, g);
}

clcl_status clcl_gemm(clcl_context *ctx, const clcl_gemm_args *args) {
    return gemm_dispatch(ctx, NULL, args);
}

clcl_status clcl_gemm_pooled(clcl_context *ctx, clcl_pool *scratch, const clcl_gemm_args *args) {
    return gemm_dispatch(ctx, scratch, args);
}
