/* Matrix products: argument checks, CLBlast's row-major SGEMM, and our own kernels of
 * cl/gemm.cl. clcl_gemm runs CLBlast; issue 7's tuner may later pick ours per shape. */
#include <limits.h>
#include <stdio.h>

#include <clblast_c.h>

#include "check.h"
#include "clcl/gemm.h"

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

clcl_status clcl_gemm(clcl_context *ctx, const clcl_gemm_args *args) {
    return clcl_gemm_clblast(ctx, args);
}

clcl_status clcl_gemm_pooled(clcl_context *ctx, clcl_pool *scratch, const clcl_gemm_args *g) {
    char what[160];
    cl_command_queue queue = clcl_context_queue(ctx);
    CLBlastTranspose ta = g->trans_a ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastTranspose tb = g->trans_b ? CLBlastTransposeYes : CLBlastTransposeNo;
    size_t bytes = 0;
    clcl_tensor temp;

    if (!scratch)
        return clcl_gemm(ctx, g);
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

static clcl_status check_params(const clcl_gemm_params *p) {
    int vw_ok = p->vw == 2 || p->vw == 4 || p->vw == 8 || p->vw == 16;
    if (!vw_ok || p->tm < 1 || p->nv < 1 || p->dot_tm < 1 || p->dot_tn < 1 || p->lx < 1 ||
        p->ly < 1 || p->tm * p->nv > 64 || p->dot_tm * p->dot_tn > 64)
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
