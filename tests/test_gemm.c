/* GEMM against a double-precision C reference: all four transposes, offsets, leading
 * dimensions larger than the matrices, alpha and beta, beta 0 over NaN, bad arguments;
 * clcl_gemm (CLBlast forced, and the measured choice) and our own kernels (cl/gemm.cl) with
 * several sets of tunables.
 *
 * Tolerance: |got - ref| <= 1e-4 + 1e-4 |ref| for inputs in [-1, 1); fp32 sums of k <= 400
 * products of that size stay well inside it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clcl/gemm.h"
#include "support.h"
#include "support_layers.h"

/* Runs one GEMM case on the device and against clcl_ref_gemm. C starts as NaN when beta is 0,
 * so a GEMM that reads C there fails. Elements outside the (m, n) block, in the ld gap
 * and before the offset, must come back unchanged. */
static void gemm_case_with(clcl_context *ctx, const clcl_gemm_params *own, int ta, int tb, int m,
                           int n, int k, float alpha, float beta, size_t pad_ld, size_t offset,
                           uint64_t seed) {
    uint64_t rng = seed;
    size_t a_rows = ta ? k : m, a_cols = ta ? m : k, b_rows = tb ? n : k, b_cols = tb ? k : n;
    size_t lda = a_cols + pad_ld, ldb = b_cols + pad_ld, ldc = n + pad_ld;
    size_t na = offset + a_rows * lda, nb = offset + b_rows * ldb, nc = offset + m * ldc;
    float *ha = test_floats(na, &rng, -1, 1), *hb = test_floats(nb, &rng, -1, 1);
    float *hc = test_floats(nc, &rng, -1, 1);
    if (beta == 0.0f)
        for (size_t i = 0; i < (size_t)m; i++)
            for (size_t j = 0; j < (size_t)n; j++)
                hc[offset + i * ldc + j] = NAN;

    clcl_tensor a, b, c;
    test_tensor(ctx, &a, 1, (int[]){(int)na}, ha);
    test_tensor(ctx, &b, 1, (int[]){(int)nb}, hb);
    test_tensor(ctx, &c, 1, (int[]){(int)nc}, hc);
    clcl_gemm_args g = {ta,     tb,  m,     n,      k,   alpha, beta,   a.buf,
                        offset, lda, b.buf, offset, ldb, c.buf, offset, ldc};
    clcl_status st = own ? clcl_gemm_own(ctx, own, &g) : clcl_gemm(ctx, &g);
    cr_assert_eq(st, CLCL_OK, "%s", clcl_last_error());
    float *got = test_read(ctx, &c);

    /* The product into the (m, n) block of C's copy; the rest keeps C's values. */
    double *ref = test_doubles(hc, nc), *block = malloc((size_t)m * n * sizeof *block);
    cr_assert_not_null(block);
    clcl_ref_gemm(ta, tb, m, n, k, alpha, ha + offset, lda, hb + offset, ldb, beta, hc + offset,
                  ldc, block);
    for (size_t i = 0; i < (size_t)m; i++)
        memcpy(ref + offset + i * ldc, block + i * n, (size_t)n * sizeof *ref);
    char what[128];
    snprintf(what, sizeof what, "gemm %s %c%c m %d n %d k %d alpha %g beta %g ld+%zu offset %zu",
             own ? "own" : "default", ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, beta, pad_ld,
             offset);
    expect_close(got, ref, nc, 1e-4, 1e-4, what);

    free(ha), free(hb), free(hc), free(got), free(ref), free(block);
    clcl_tensor_free(&a), clcl_tensor_free(&b), clcl_tensor_free(&c);
}

static void gemm_case(clcl_context *ctx, int ta, int tb, int m, int n, int k, float alpha,
                      float beta, size_t pad_ld, size_t offset, uint64_t seed) {
    gemm_case_with(ctx, NULL, ta, tb, m, n, k, alpha, beta, pad_ld, offset, seed);
}

/* clcl_gemm with CLBlast forced and with the measured choice (CLCL_GEMM, clcl/tuning.h). */
static const char *const modes[] = {"clblast", "auto"};

Test(gemm, all_transposes_small_odd_sizes) {
    clcl_context *ctx = test_context();
    for (int mode = 0; mode < 2; mode++) {
        setenv("CLCL_GEMM", modes[mode], 1);
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                gemm_case(ctx, ta, tb, 37, 29, 53, 1.0f, 0.0f, 0, 0, 1 + ta * 2 + tb);
                gemm_case(ctx, ta, tb, 5, 1, 7, -0.5f, 0.75f, 3, 11, 5 + ta * 2 + tb);
            }
    }
    unsetenv("CLCL_GEMM");
    clcl_context_free(ctx);
}

Test(gemm, all_transposes_with_offsets_and_leading_dims) {
    clcl_context *ctx = test_context();
    for (int mode = 0; mode < 2; mode++) {
        setenv("CLCL_GEMM", modes[mode], 1);
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                gemm_case(ctx, ta, tb, 67, 45, 31, 1.5f, 0.0f, 9, 13, 11 + ta * 2 + tb);
                gemm_case(ctx, ta, tb, 64, 96, 80, 1.0f, 1.0f, 1, 7, 17 + ta * 2 + tb);
            }
    }
    unsetenv("CLCL_GEMM");
    clcl_context_free(ctx);
}

/* Large enough for CLBlast's indirect (padded, tiled) kernel rather than its direct one. */
Test(gemm, all_transposes_large) {
    clcl_context *ctx = test_context();
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            gemm_case(ctx, ta, tb, 389, 403, 397, 1.0f, ta ? 0.5f : 0.0f, tb * 5, ta * 3,
                      23 + ta * 2 + tb);
    clcl_context_free(ctx);
}

/* Our kernels: the defaults and other tunables, at sizes that leave partial tiles in every
 * direction, plus exact multiples of the tiles. */
Test(gemm, own_kernels_all_transposes_and_tunables) {
    clcl_context *ctx = test_context();
    clcl_gemm_params sets[3] = {
        clcl_gemm_params_default(),
        {.tm = 3, .vw = 4, .nv = 1, .dot_tm = 2, .dot_tn = 1, .lx = 8, .ly = 1},
        {.tm = 4, .vw = 16, .nv = 1, .dot_tm = 1, .dot_tn = 4, .lx = 2, .ly = 2}};
    for (int s = 0; s < 3; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                uint64_t seed = 100 + s * 4 + ta * 2 + tb;
                gemm_case_with(ctx, &sets[s], ta, tb, 37, 29, 53, 1.0f, 0.0f, 0, 0, seed);
                gemm_case_with(ctx, &sets[s], ta, tb, 67, 45, 31, 1.5f, 0.0f, 9, 13, seed);
                gemm_case_with(ctx, &sets[s], ta, tb, 5, 1, 7, -0.5f, 0.75f, 3, 11, seed);
                gemm_case_with(ctx, &sets[s], ta, tb, 48, 64, 80, 1.0f, 1.0f, 0, 0, seed);
            }
    clcl_context_free(ctx);
}

/* The pooled variant at a size where CLBlast takes its indirect kernel and wants a
 * temporary buffer (1100^3 here): the pool provides it, a second call allocates nothing,
 * and sampled entries match double sums. CLBlast is forced: the measured choice may be
 * our kernel, which needs no temporary buffer. */
Test(gemm, pooled_temporary_buffer) {
    setenv("CLCL_GEMM", "clblast", 1);
    clcl_context *ctx = test_context();
    const int m = 1100, n = 1100, k = 1100, samples = 500;
    uint64_t rng = 31;
    float *ha = test_floats((size_t)m * k, &rng, -1, 1),
          *hb = test_floats((size_t)k * n, &rng, -1, 1);
    clcl_tensor a, b, c;
    clcl_pool *pool;
    test_tensor(ctx, &a, 2, (int[]){k, m}, ha);
    test_tensor(ctx, &b, 2, (int[]){n, k}, hb);
    test_tensor(ctx, &c, 2, (int[]){m, n}, NULL);
    cr_assert_eq(clcl_pool_create(ctx, &pool), CLCL_OK);
    clcl_gemm_args g = {1, 1,         m,     n, k,         1.0f,  0.0f, a.buf,
                        0, (size_t)m, b.buf, 0, (size_t)k, c.buf, 0,    (size_t)n};
    cr_assert_eq(clcl_gemm_pooled(ctx, pool, &g), CLCL_OK, "%s", clcl_last_error());
    size_t allocations = clcl_pool_allocations(pool);
    cr_assert_eq(clcl_gemm_pooled(ctx, pool, &g), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(clcl_pool_allocations(pool), allocations);
    float *got = test_read(ctx, &c), picked[500];
    double ref[500];
    for (int t = 0; t < samples; t++) {
        int i = (int)(test_rand_u64(&rng) % (uint64_t)m),
            j = (int)(test_rand_u64(&rng) % (uint64_t)n);
        double sum = 0;
        for (int l = 0; l < k; l++)
            sum += (double)ha[(size_t)l * m + i] * hb[(size_t)j * k + l];
        ref[t] = sum;
        picked[t] = got[(size_t)i * n + j];
    }
    expect_close(picked, ref, (size_t)samples, 1e-3, 1e-4, "pooled gemm TT 1100^3, sampled");
    cr_expect_gt(allocations, 0,
                 "CLBlast asked for no temporary buffer: the pooled path is untested");
    free(ha), free(hb), free(got);
    clcl_tensor_free(&a), clcl_tensor_free(&b), clcl_tensor_free(&c);
    clcl_pool_free(pool);
    clcl_context_free(ctx);
}

Test(gemm, own_kernel_refuses_bad_tunables) {
    clcl_context *ctx = test_context();
    clcl_tensor a;
    test_tensor(ctx, &a, 1, (int[]){16}, NULL);
    clcl_gemm_args g = {0, 0, 4, 4, 4, 1.0f, 0.0f, a.buf, 0, 4, a.buf, 0, 4, a.buf, 0, 4};
    clcl_gemm_params p = clcl_gemm_params_default();
    p.vw = 3;
    cr_expect_eq(clcl_gemm_own(ctx, &p, &g), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "vw 3"), "%s", clcl_last_error());
    clcl_tensor_free(&a);
    clcl_context_free(ctx);
}

Test(gemm, bad_arguments_are_refused_with_the_shapes) {
    clcl_context *ctx = test_context();
    clcl_tensor a, b, c;
    test_tensor(ctx, &a, 1, (int[]){6 * 4}, NULL);
    test_tensor(ctx, &b, 1, (int[]){4 * 5}, NULL);
    test_tensor(ctx, &c, 1, (int[]){6 * 5}, NULL);
    clcl_gemm_args ok = {0, 0, 6, 5, 4, 1.0f, 0.0f, a.buf, 0, 4, b.buf, 0, 5, c.buf, 0, 5};

    clcl_gemm_args g = ok;
    g.k = 0;
    cr_expect_eq(clcl_gemm(ctx, &g), CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "k 0"), "%s", clcl_last_error());
    g = ok;
    g.lda = 3;
    cr_expect_eq(clcl_gemm(ctx, &g), CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "ldA 3"), "%s", clcl_last_error());
    g = ok;
    g.c_offset = 1;
    cr_expect_eq(clcl_gemm(ctx, &g), CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "matrix C (6 x 5"), "%s", clcl_last_error());
    g = ok;
    g.trans_b = 1; /* B as stored is then (5, 4): ldb 5 >= 4 fits, but 5 rows of 5 do not */
    cr_expect_eq(clcl_gemm(ctx, &g), CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "matrix B (5 x 4"), "%s", clcl_last_error());
    g = ok;
    g.trans_a = 2;
    cr_expect_eq(clcl_gemm(ctx, &g), CLCL_ERR_ARGUMENT);
    g = ok;
    g.b = NULL;
    cr_expect_eq(clcl_gemm(ctx, &g), CLCL_ERR_ARGUMENT);
    cr_expect_eq(clcl_gemm(ctx, &ok), CLCL_OK, "%s", clcl_last_error());

    clcl_tensor_free(&a), clcl_tensor_free(&b), clcl_tensor_free(&c);
    clcl_context_free(ctx);
}
