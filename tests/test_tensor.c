/* Tensors: round trips, shape checks, element-wise kernels against C, the pool. */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clcl/tensor.h"
#include "support.h"

Test(tensor, round_trip_keeps_every_bit) {
    clcl_context *ctx = test_context();
    clcl_tensor t;
    int shape[] = {3, 5, 7, 7};
    cr_assert_eq(clcl_tensor_create(ctx, &t, 4, shape), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(t.count, 3u * 5 * 7 * 7);
    cr_expect_eq(clcl_tensor_bytes(&t), t.count * sizeof(float));

    float *in = malloc(t.count * sizeof *in), *out = malloc(t.count * sizeof *out);
    uint64_t rng = 1;
    for (size_t i = 0; i < t.count; i++)
        in[i] = test_rand_uniform(&rng, -1e6f, 1e6f);
    cr_assert_eq(clcl_tensor_write(ctx, &t, in), CLCL_OK);
    cr_assert_eq(clcl_tensor_read(ctx, &t, out), CLCL_OK);
    cr_expect_eq(memcmp(in, out, clcl_tensor_bytes(&t)), 0);
    free(in);
    free(out);
    clcl_tensor_free(&t);
    cr_expect_null(t.buf);
    clcl_context_free(ctx);
}

Test(tensor, bad_shapes_are_refused_before_allocation) {
    clcl_context *ctx = test_context();
    clcl_tensor t;
    cr_expect_eq(clcl_tensor_create(ctx, &t, 2, (int[]){4, 0}), CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "(4, 0)"), "%s", clcl_last_error());
    cr_expect_eq(clcl_tensor_create(ctx, &t, 5, (int[]){1, 1, 1, 1, 1}), CLCL_ERR_SHAPE);
    cr_expect_eq(clcl_tensor_create(ctx, &t, 2, (int[]){-3, 2}), CLCL_ERR_SHAPE);
    cr_expect_null(t.buf);
    clcl_context_free(ctx);
}

Test(tensor, larger_than_max_allocation_is_refused) {
    clcl_context *ctx = test_context();
    const clcl_device_info *d = clcl_context_device(ctx);
    cl_mem m;
    cr_expect_eq(clcl_buffer_create(ctx, (size_t)d->max_alloc + 4, "the test workspace", &m),
                 CLCL_ERR_TOO_LARGE);
    cr_expect(strstr(clcl_last_error(), "the test workspace"), "%s", clcl_last_error());
    cr_expect(strstr(clcl_last_error(), "CL_DEVICE_MAX_MEM_ALLOC_SIZE"), "%s", clcl_last_error());
    clcl_context_free(ctx);
}

Test(tensor, elementwise_kernels_match_c) {
    clcl_context *ctx = test_context();
    const int n = 1000 + 37; /* not a multiple of the work-group size */
    clcl_tensor x, y;
    cr_assert_eq(clcl_tensor_create(ctx, &x, 1, &n), CLCL_OK);
    cr_assert_eq(clcl_tensor_create(ctx, &y, 1, &n), CLCL_OK);
    float *hx = malloc(n * sizeof *hx), *hy = malloc(n * sizeof *hy);
    double *ref = malloc(n * sizeof *ref);
    uint64_t rng = 7;
    for (int i = 0; i < n; i++) {
        hx[i] = test_rand_uniform(&rng, -2, 2);
        hy[i] = test_rand_uniform(&rng, -2, 2);
        ref[i] = ((double)hy[i] + 0.75 * hx[i]) * -1.5;
    }
    cr_assert_eq(clcl_tensor_write(ctx, &x, hx), CLCL_OK);
    cr_assert_eq(clcl_tensor_write(ctx, &y, hy), CLCL_OK);
    cr_assert_eq(clcl_tensor_axpy(ctx, 0.75f, &x, &y), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_tensor_scale(ctx, -1.5f, &y), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_tensor_read(ctx, &y, hy), CLCL_OK);
    expect_close(hy, ref, (size_t)n, 1e-6, 1e-6, "(y + 0.75 x) * -1.5");

    cr_assert_eq(clcl_tensor_fill(ctx, &x, 3.25f), CLCL_OK);
    cr_assert_eq(clcl_tensor_read(ctx, &x, hx), CLCL_OK);
    for (int i = 0; i < n; i++)
        ref[i] = 3.25;
    expect_close(hx, ref, (size_t)n, 0, 0, "fill");

    clcl_tensor z;
    cr_assert_eq(clcl_tensor_create(ctx, &z, 1, (int[]){n - 1}), CLCL_OK);
    cr_expect_eq(clcl_tensor_axpy(ctx, 1, &z, &y), CLCL_ERR_SHAPE);
    free(hx);
    free(hy);
    free(ref);
    clcl_tensor_free(&x);
    clcl_tensor_free(&y);
    clcl_tensor_free(&z);
    clcl_context_free(ctx);
}

Test(pool, a_repeated_step_allocates_nothing) {
    clcl_context *ctx = test_context();
    clcl_pool *pool;
    cr_assert_eq(clcl_pool_create(ctx, &pool), CLCL_OK);
    clcl_tensor a, b, c;
    for (int step = 0; step < 3; step++) {
        cr_assert_eq(clcl_pool_tensor(pool, &a, 2, (int[]){16, 8}), CLCL_OK);
        cr_assert_eq(clcl_pool_tensor(pool, &b, 2, (int[]){16, 8}), CLCL_OK);
        cr_assert_eq(clcl_pool_tensor(pool, &c, 1, (int[]){5}), CLCL_OK);
        cr_expect_neq(a.buf, b.buf, "two live tensors never share a buffer");
        cr_expect_eq(clcl_pool_allocations(pool), 3, "step %d", step);
        clcl_pool_reset(pool);
    }
    cr_expect_eq(clcl_pool_bytes(pool), (16 * 8 * 2 + 5) * sizeof(float));

    /* a released buffer is handed out again before the step ends */
    cr_assert_eq(clcl_pool_tensor(pool, &a, 1, (int[]){5}), CLCL_OK);
    cl_mem first = a.buf;
    clcl_pool_release(pool, &a);
    cr_assert_eq(clcl_pool_tensor(pool, &b, 1, (int[]){5}), CLCL_OK);
    cr_expect_eq(b.buf, first);
    cr_expect_eq(clcl_pool_allocations(pool), 3);
    clcl_pool_free(pool);
    clcl_context_free(ctx);
}
