/* Matrix products on the device, row-major: C = alpha op(A) op(B) + beta C, where op(A)
 * is (M, K) and op(B) is (K, N). Offsets and leading dimensions are in elements.
 *
 * clcl_gemm runs CLBlast or our own kernel (cl/gemm.cl), chosen per device and shape by
 * measurement, never by vendor: the first time a shape is seen both run once on scratch
 * buffers of that shape, ours must agree with CLBlast, the faster wins, and the choice is
 * kept in the tuning file (clcl/tuning.h), so later calls and later processes take the
 * same backend without measuring. CLCL_GEMM=clblast|own|auto (default auto) forces one;
 * any other value makes every call fail with CLCL_ERR_ARGUMENT. Callers never choose. */
#ifndef CLCL_GEMM_H
#define CLCL_GEMM_H

#include "clcl/tensor.h"

typedef struct {
    int trans_a, trans_b; /* 0: as stored, 1: transposed */
    int m, n, k;
    float alpha, beta;
    cl_mem a;
    size_t a_offset, lda;
    cl_mem b;
    size_t b_offset, ldb;
    cl_mem c;
    size_t c_offset, ldc;
} clcl_gemm_args;

clcl_status clcl_gemm(clcl_context *ctx, const clcl_gemm_args *args);

/* clcl_gemm, with the temporary buffer CLBlast needs for large products taken from
 * `scratch` and given back, so that repeated calls allocate nothing (clcl_gemm lets
 * CLBlast allocate and free one per call). scratch NULL is clcl_gemm. */
clcl_status clcl_gemm_pooled(clcl_context *ctx, clcl_pool *scratch, const clcl_gemm_args *args);

/* ---- the backends, for benchmarks, tests and the tuner ------------------------------- */

/* Checks the arguments alone (sizes, transposes, leading dimensions, buffer sizes):
 * CLCL_ERR_SHAPE or CLCL_ERR_ARGUMENT with the shapes in the message. */
clcl_status clcl_gemm_check(const clcl_gemm_args *args);

/* CLBlast's SGEMM. */
clcl_status clcl_gemm_clblast(clcl_context *ctx, const clcl_gemm_args *args);

/* The tunables of our kernels in cl/gemm.cl (see there); each combination is one program
 * build per context. */
typedef struct {
    int tm, vw, nv;     /* B as stored: rows per work-item, vector width, vectors of columns */
    int dot_tm, dot_tn; /* B transposed: rows and columns per work-item */
    int lx, ly;         /* work-group: work-items along N and along M (capped by the device) */
} clcl_gemm_params;

/* cl/gemm.cl's defaults. */
clcl_gemm_params clcl_gemm_params_default(void);

/* Our kernel with the given tunables (NULL: the defaults). Offsets, leading dimensions and
 * sizes must fit in an int (CLCL_ERR_TOO_LARGE otherwise). */
clcl_status clcl_gemm_own(clcl_context *ctx, const clcl_gemm_params *params,
                          const clcl_gemm_args *args);

#endif
