/* Matrix products: argument checks, then CLBlast's row-major SGEMM. */
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
clcl_status clcl_gemm_clblast_status(CLBlastStatusCode code, const char *what) {
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
    return clcl_gemm_clblast_status(code, what);
}

clcl_status clcl_gemm(clcl_context *ctx, const clcl_gemm_args *args) {
    return clcl_gemm_clblast(ctx, args);
}
