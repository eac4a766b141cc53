/* Matrix products on the device, row-major: C = alpha op(A) op(B) + beta C, where op(A)
 * is (M, K) and op(B) is (K, N). Offsets and leading dimensions are in elements.
 *
 * CLBlast is the portable default. Our own kernel (cl/gemm.cl) may be chosen per device
 * and shape by measurement (`clcl tune`); callers never choose. */
#ifndef CLCL_GEMM_H
#define CLCL_GEMM_H

#include "clcl/runtime.h"

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

#endif
