/* conv2d forward, backward data and backward weights against a double-precision C
 * reference, and the two backwards against central finite differences of the reference
 * forward (the gradient of sum(proj * conv(x, w)) in x and in w, proj a random
 * projection). Awkward sizes: odd channels, 7x7 and 11x11 maps, stride 2, batch 3, 1x1,
 * 3x3 and 7x7 kernels, padding 0, 1 and 3, chunks of 1, 2 and all images.
 *
 * Tolerances: outputs and gradients |got - ref| <= 1e-4 + 1e-4 |ref| (inputs in [-1, 1),
 * fp32 sums of at most a few hundred products); finite differences with step 1e-3 on a
 * function linear in each input are exact to rounding, so the same tolerance holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clcl/layers.h"
#include "clcl/tuning.h"
#include "layers_internal.h"
#include "support.h"
#include "support_layers.h"

#define TOL_ABS 1e-4
#define TOL_REL 1e-4
#define FD_STEP 1e-3
#define FD_MAX  48 /* inputs checked by finite differences per tensor */

/* Finite-difference adaptors: the reference forward as a function of x or of w. */
typedef struct {
    const ref_conv *g;
    const double *x, *w;
} conv_fd;

static void fd_of_x(const double *x, double *y, void *user) {
    conv_fd *f = user;
    clcl_ref_conv2d_forward_f64(f->g, x, f->w, y);
}

static void fd_of_w(const double *w, double *y, void *user) {
    conv_fd *f = user;
    clcl_ref_conv2d_forward_f64(f->g, f->x, w, y);
}

/* Checks a device gradient `got` (n values) against finite differences of `fn` in `in`. */
static void check_fd(fd_function fn, conv_fd *f, double *in, size_t n, const ref_conv *g,
                     const double *proj, const float *got, uint64_t *rng, const char *what) {
    size_t idx[FD_MAX];
    double grad[FD_MAX];
    float picked[FD_MAX];
    size_t k = fd_pick(n, FD_MAX, rng, idx);
    fd_gradient(fn, f, in, ref_conv_y_count(g), proj, FD_STEP, idx, k, grad);
    fd_gather(got, idx, k, picked);
    expect_close(picked, grad, k, TOL_ABS, TOL_REL, what);
}

/* One geometry, all three directions, run as opt says. */
static void conv_case_opt(clcl_context *ctx, ref_conv g, clcl_conv_options opt, uint64_t seed) {
    const int max_images = opt.max_images, own_gemm = opt.own_gemm;
    char what[200];
    uint64_t rng = seed;
    clcl_pool *pool;
    ref_conv_geom(&g);
    size_t nx = ref_conv_x_count(&g), nw = ref_conv_w_count(&g), ny = ref_conv_y_count(&g);
    int xs[4] = {g.n, g.c, g.h, g.w}, ws[4] = {g.k, g.c, g.r, g.s}, ys[4] = {g.n, g.k, g.p, g.q};
    snprintf(what, sizeof what,
             "conv x (%d, %d, %d, %d) w (%d, %d, %d, %d) stride %d pad %d, "
             "%d images per GEMM%s%s",
             g.n, g.c, g.h, g.w, g.k, g.c, g.r, g.s, g.stride, g.pad, max_images,
             own_gemm ? ", own GEMM kernel" : "",
             opt.algo == CLCL_CONV_DIRECT ? ", direct kernel where it fits"
             : opt.algo == CLCL_CONV_AUTO ? ", path chosen by measurement"
                                          : "");

    float *hx = test_floats(nx, &rng, -1, 1), *hw = test_floats(nw, &rng, -1, 1);
    float *hdy = test_floats(ny, &rng, -1, 1);
    double *dx_ = test_doubles(hx, nx), *dw_ = test_doubles(hw, nw), *ddy = test_doubles(hdy, ny);
    clcl_tensor x, w, y, dy, dx, dw;
    test_tensor(ctx, &x, 4, xs, hx);
    test_tensor(ctx, &w, 4, ws, hw);
    test_tensor(ctx, &dy, 4, ys, hdy);
    test_tensor(ctx, &y, 4, ys, NULL);
    test_tensor(ctx, &dx, 4, xs, NULL);
    test_tensor(ctx, &dw, 4, ws, NULL);
    cr_assert_eq(clcl_pool_create(ctx, &pool), CLCL_OK);

    /* The three directions on the device. */
    cr_assert_eq(clcl_conv2d_forward_with(ctx, pool, &x, &w, g.stride, g.pad, &y, &opt), CLCL_OK,
                 "%s: %s", what, clcl_last_error());
    cr_assert_eq(clcl_conv2d_backward_data_with(ctx, pool, &dy, &w, g.stride, g.pad, &dx, &opt),
                 CLCL_OK, "%s: %s", what, clcl_last_error());
    cr_assert_eq(clcl_conv2d_backward_weights_with(ctx, pool, &x, &dy, g.stride, g.pad, &dw, &opt),
                 CLCL_OK, "%s: %s", what, clcl_last_error());
    float *gy = test_read(ctx, &y), *gdx = test_read(ctx, &dx), *gdw = test_read(ctx, &dw);

    /* Against the C references. */
    double *ry = malloc(ny * sizeof *ry), *rdx = malloc(nx * sizeof *rdx);
    double *rdw = malloc(nw * sizeof *rdw);
    clcl_ref_conv2d_forward(&g, hx, hw, ry);
    clcl_ref_conv2d_backward_data(&g, hdy, hw, rdx);
    clcl_ref_conv2d_backward_weights(&g, hx, hdy, rdw);
    char part[240];
    snprintf(part, sizeof part, "%s: forward", what);
    expect_close(gy, ry, ny, TOL_ABS, TOL_REL, part);
    snprintf(part, sizeof part, "%s: backward data", what);
    expect_close(gdx, rdx, nx, TOL_ABS, TOL_REL, part);
    snprintf(part, sizeof part, "%s: backward weights", what);
    expect_close(gdw, rdw, nw, TOL_ABS, TOL_REL, part);

    /* Against finite differences, dy being the projection. */
    conv_fd f = {&g, dx_, dw_};
    snprintf(part, sizeof part, "%s: dx by finite differences", what);
    check_fd(fd_of_x, &f, dx_, nx, &g, ddy, gdx, &rng, part);
    snprintf(part, sizeof part, "%s: dw by finite differences", what);
    check_fd(fd_of_w, &f, dw_, nw, &g, ddy, gdw, &rng, part);

    /* A second forward with the same shapes takes its buffers from the pool again. */
    size_t allocations = clcl_pool_allocations(pool);
    cr_assert_eq(clcl_conv2d_forward_with(ctx, pool, &x, &w, g.stride, g.pad, &y, &opt), CLCL_OK,
                 "%s", clcl_last_error());
    cr_expect_eq(clcl_pool_allocations(pool), allocations, "%s: the pool allocated again", what);

    free(hx), free(hw), free(hdy), free(dx_), free(dw_), free(ddy);
    free(gy), free(gdx), free(gdw), free(ry), free(rdx), free(rdw);
    clcl_tensor_free(&x), clcl_tensor_free(&w), clcl_tensor_free(&y);
    clcl_tensor_free(&dy), clcl_tensor_free(&dx), clcl_tensor_free(&dw);
    clcl_pool_free(pool);
}

/* The column path with at most max_images images per GEMM, on clcl_gemm's backend or
 * (own_gemm) on cl/gemm.cl's kernels. */
static void conv_case_with(clcl_context *ctx, ref_conv g, int max_images, int own_gemm,
                           uint64_t seed) {
    conv_case_opt(ctx, g, (clcl_conv_options){max_images, own_gemm, CLCL_CONV_COLUMNS}, seed);
}

static void conv_case(clcl_context *ctx, ref_conv g, int max_images, uint64_t seed) {
    conv_case_with(ctx, g, max_images, 0, seed);
}

/* n c h w k r s stride pad */
#define GEOM(n_, c_, h_, w_, k_, r_, s_, st_, pd_)                                                 \
    ((ref_conv){                                                                                   \
        .n = n_, .c = c_, .h = h_, .w = w_, .k = k_, .r = r_, .s = s_, .stride = st_, .pad = pd_})

Test(conv, kernel_3x3_stride_1_and_2) {
    clcl_context *ctx = test_context();
    conv_case(ctx, GEOM(3, 5, 7, 7, 4, 3, 3, 1, 1), 0, 1);
    conv_case(ctx, GEOM(3, 3, 9, 7, 6, 3, 3, 2, 1), 0, 2);
    conv_case(ctx, GEOM(3, 5, 7, 7, 3, 3, 3, 1, 0), 0, 3);
    clcl_context_free(ctx);
}

Test(conv, kernel_7x7_stride_2_pad_3) {
    clcl_context *ctx = test_context();
    conv_case(ctx, GEOM(2, 3, 11, 11, 5, 7, 7, 2, 3), 0, 4);
    conv_case(ctx, GEOM(3, 1, 7, 7, 3, 7, 7, 1, 3), 0, 5);
    clcl_context_free(ctx);
}

Test(conv, kernel_1x1_pointwise_and_strided) {
    clcl_context *ctx = test_context();
    conv_case(ctx, GEOM(3, 7, 7, 7, 5, 1, 1, 1, 0), 0, 6);
    conv_case(ctx, GEOM(3, 5, 7, 7, 6, 1, 1, 2, 0), 0, 7);
    conv_case(ctx, GEOM(3, 5, 5, 5, 4, 1, 1, 1, 1), 0, 8); /* 1x1 with padding: im2col */
    clcl_context_free(ctx);
}

/* One image per GEMM (no permutes; in-place for 1x1) and two per GEMM (uneven chunks). */
Test(conv, chunks_of_one_and_two_images) {
    clcl_context *ctx = test_context();
    conv_case(ctx, GEOM(3, 5, 7, 7, 4, 3, 3, 1, 1), 1, 9);
    conv_case(ctx, GEOM(3, 5, 7, 7, 4, 3, 3, 2, 1), 2, 10);
    conv_case(ctx, GEOM(3, 7, 7, 7, 5, 1, 1, 1, 0), 1, 11);
    conv_case(ctx, GEOM(5, 7, 7, 7, 5, 1, 1, 1, 0), 2, 12);
    conv_case(ctx, GEOM(1, 3, 8, 8, 4, 3, 3, 2, 1), 0, 13);
    clcl_context_free(ctx);
}

/* The same paths with cl/gemm.cl's kernels doing the products. */
Test(conv, own_gemm_kernel) {
    clcl_context *ctx = test_context();
    conv_case_with(ctx, GEOM(3, 5, 7, 7, 4, 3, 3, 1, 1), 0, 1, 17);
    conv_case_with(ctx, GEOM(2, 3, 11, 11, 5, 7, 7, 2, 3), 0, 1, 18);
    conv_case_with(ctx, GEOM(3, 7, 7, 7, 5, 1, 1, 1, 0), 1, 1, 19);
    conv_case_with(ctx, GEOM(5, 7, 7, 7, 5, 1, 1, 1, 0), 2, 1, 20);
    clcl_context_free(ctx);
}

/* The direct kernels: forward at every stride, padding and window; backward data where it
 * is a convolution itself (stride 1, square window, pad < R); backward weights for up to
 * 9 taps (so the 7x7 windows keep the columns there), the columns elsewhere.
 * Output channels not a multiple of 8, rows of 1 to 28 outputs (blocks of 1 to 8). */
static void conv_case_direct(clcl_context *ctx, ref_conv g, uint64_t seed) {
    conv_case_opt(ctx, g, (clcl_conv_options){.algo = CLCL_CONV_DIRECT}, seed);
}

Test(conv, direct_kernel) {
    clcl_context *ctx = test_context();
    conv_case_direct(ctx, GEOM(3, 5, 7, 7, 4, 3, 3, 1, 1), 31);
    conv_case_direct(ctx, GEOM(2, 8, 28, 28, 8, 3, 3, 1, 1), 32);
    conv_case_direct(ctx, GEOM(2, 3, 14, 13, 17, 3, 3, 1, 1), 33);
    conv_case_direct(ctx, GEOM(3, 3, 9, 7, 6, 3, 3, 2, 1), 34);
    conv_case_direct(ctx, GEOM(3, 5, 7, 7, 3, 3, 3, 1, 0), 35);
    conv_case_direct(ctx, GEOM(2, 3, 11, 11, 5, 7, 7, 2, 3), 36);
    conv_case_direct(ctx, GEOM(3, 1, 7, 7, 9, 7, 7, 1, 3), 37);
    conv_case_direct(ctx, GEOM(3, 7, 7, 7, 5, 1, 1, 1, 0), 38);
    conv_case_direct(ctx, GEOM(3, 5, 5, 5, 4, 1, 1, 1, 1), 39);
    conv_case_direct(ctx, GEOM(2, 4, 4, 4, 16, 3, 3, 1, 1), 40);
    conv_case_direct(ctx, GEOM(2, 4, 1, 1, 8, 3, 3, 1, 1), 41);
    clcl_context_free(ctx);
}

/* The conv records of the tuning file that hold `text`. */
static int count_records(const char *path, const char *text) {
    char line[512];
    int n = 0;
    FILE *f = fopen(path, "r");
    cr_assert(f, "cannot read %s", path);
    while (fgets(line, sizeof line, f))
        n += strncmp(line, "conv ", 5) == 0 && strstr(line, text) != NULL;
    fclose(f);
    return n;
}

static clcl_tuning_summary summary(clcl_context *ctx) {
    clcl_tuning_summary s;
    cr_assert_eq(clcl_tuning_summarize(ctx, &s), CLCL_OK, "%s", clcl_last_error());
    return s;
}

/* The default path: measured the first time a pass is met (forward and backward weights;
 * backward data only where the direct kernel fits it), right either way, written to the
 * tuning file; after a reload taken from the file, nothing measured again. */
Test(conv, auto_path_measured_once_and_kept) {
    char path[600];
    snprintf(path, sizeof path, "%s/tuning.txt", test_temp_dir("conv-auto"));
    setenv("CLCL_TUNING_FILE", path, 1);
    unsetenv("CLCL_GEMM");
    clcl_context *ctx = test_context();
    cr_assert_eq(clcl_tuning_reload(ctx), CLCL_OK, "%s", clcl_last_error());
    const clcl_conv_options autopath = {.algo = CLCL_CONV_AUTO};

    conv_case_opt(ctx, GEOM(2, 8, 12, 12, 8, 3, 3, 1, 1), autopath, 43);
    conv_case_opt(ctx, GEOM(2, 8, 12, 12, 16, 3, 3, 2, 1), autopath, 44);
    clcl_tuning_summary s = summary(ctx);
    cr_expect_eq(s.conv_measured, 5, "forward and weights twice, one stride-1 data pass");
    cr_expect_eq(s.conv_from_file, 0);
    cr_expect_eq(count_records(path, "forward 2 8 12 12 8 3 3 1 1 "), 1);
    cr_expect_eq(count_records(path, "data 2 8 12 12 8 3 3 1 1 "), 1);
    cr_expect_eq(count_records(path, "forward 2 8 12 12 16 3 3 2 1 "), 1);
    cr_expect_eq(count_records(path, "data 2 8 12 12 16 3 3 2 1 "), 0);
    cr_expect_eq(count_records(path, "weights 2 8 12 12 8 3 3 1 1 "), 1);
    cr_expect_eq(count_records(path, "weights 2 8 12 12 16 3 3 2 1 "), 1);

    cr_assert_eq(clcl_tuning_reload(ctx), CLCL_OK, "%s", clcl_last_error());
    conv_case_opt(ctx, GEOM(2, 8, 12, 12, 8, 3, 3, 1, 1), autopath, 45);
    s = summary(ctx);
    cr_expect_eq(s.conv_measured, 0, "measured again after a reload");
    cr_expect_eq(s.conv_from_file, 5);
    clcl_context_free(ctx);
}

/* GPU-shaped limits: 256 work-items and 32 KiB of local memory; then an odd cap. */
Test(conv, gpu_shaped_limits) {
    setenv("CLCL_MAX_WORK_GROUP", "256", 1);
    setenv("CLCL_MAX_LOCAL_MEM", "32768", 1);
    clcl_context *ctx = test_context();
    cr_assert_leq(clcl_context_device(ctx)->max_work_group, 256);
    conv_case(ctx, GEOM(3, 5, 7, 7, 4, 3, 3, 2, 1), 0, 14);
    conv_case(ctx, GEOM(2, 3, 11, 11, 5, 7, 7, 2, 3), 2, 15);
    conv_case_with(ctx, GEOM(3, 5, 7, 7, 4, 3, 3, 2, 1), 0, 1, 21);
    conv_case_direct(ctx, GEOM(2, 3, 14, 13, 17, 3, 3, 1, 1), 42);
    clcl_context_free(ctx);
    setenv("CLCL_MAX_WORK_GROUP", "96", 1);
    ctx = test_context();
    conv_case(ctx, GEOM(3, 5, 7, 7, 4, 3, 3, 1, 1), 0, 16);
    clcl_context_free(ctx);
}

/* Expects `status` and a message holding the text a (and b, unless NULL). */
static void expect_refused(clcl_status got, clcl_status status, const char *a, const char *b) {
    cr_expect_eq(got, status, "expected %d, got %d: %s", status, got, clcl_last_error());
    cr_expect(strstr(clcl_last_error(), a), "'%s' not in: %s", a, clcl_last_error());
    if (b)
        cr_expect(strstr(clcl_last_error(), b), "'%s' not in: %s", b, clcl_last_error());
}

Test(conv, bad_shapes_are_refused_with_the_shapes) {
    clcl_context *ctx = test_context();
    clcl_pool *pool;
    clcl_tensor x, w, w_c, y, y_bad, big_w, x3;
    cr_assert_eq(clcl_pool_create(ctx, &pool), CLCL_OK);
    test_tensor(ctx, &x, 4, (int[]){3, 5, 7, 7}, NULL);
    test_tensor(ctx, &w, 4, (int[]){4, 5, 3, 3}, NULL);
    test_tensor(ctx, &w_c, 4, (int[]){4, 6, 3, 3}, NULL);
    test_tensor(ctx, &y, 4, (int[]){3, 4, 7, 7}, NULL);
    test_tensor(ctx, &y_bad, 4, (int[]){3, 4, 6, 7}, NULL);
    test_tensor(ctx, &big_w, 4, (int[]){4, 5, 11, 11}, NULL);
    test_tensor(ctx, &x3, 3, (int[]){3, 5, 49}, NULL);

    expect_refused(clcl_conv2d_forward(ctx, pool, &x, &w_c, 1, 1, &y), CLCL_ERR_SHAPE,
                   "x (3, 5, 7, 7)", "w (4, 6, 3, 3)");
    expect_refused(clcl_conv2d_forward(ctx, pool, &x, &w, 1, 1, &y_bad), CLCL_ERR_SHAPE,
                   "y (3, 4, 6, 7)", "expected (3, 4, 7, 7)");
    expect_refused(clcl_conv2d_forward(ctx, pool, &x, &big_w, 1, 1, &y), CLCL_ERR_SHAPE,
                   "larger than the padded input", NULL);
    expect_refused(clcl_conv2d_forward(ctx, pool, &x3, &w, 1, 1, &y), CLCL_ERR_SHAPE,
                   "x (3, 5, 49)", "4 dimensions");
    expect_refused(clcl_conv2d_forward(ctx, pool, &x, &w, 0, 1, &y), CLCL_ERR_ARGUMENT, "stride 0",
                   NULL);
    expect_refused(clcl_conv2d_forward(ctx, NULL, &x, &w, 1, 1, &y), CLCL_ERR_ARGUMENT, "scratch",
                   NULL);
    expect_refused(clcl_conv2d_backward_data(ctx, pool, &y_bad, &w, 1, 1, &x), CLCL_ERR_SHAPE,
                   "dy (3, 4, 6, 7)", NULL);
    expect_refused(clcl_conv2d_backward_weights(ctx, pool, &x, &y, 2, 1, &w), CLCL_ERR_SHAPE,
                   "dy (3, 4, 7, 7)", "expected (3, 4, 4, 4)");
    expect_refused(clcl_conv2d_backward_weights(ctx, pool, &x, &y, 1, 1, &w_c), CLCL_ERR_SHAPE,
                   "dw (4, 6, 3, 3)", NULL);
    cr_expect_eq(clcl_pool_allocations(pool), 0, "a refused call allocated scratch");

    clcl_tensor_free(&x), clcl_tensor_free(&w), clcl_tensor_free(&w_c), clcl_tensor_free(&y);
    clcl_tensor_free(&y_bad), clcl_tensor_free(&big_w), clcl_tensor_free(&x3);
    clcl_pool_free(pool);
    clcl_context_free(ctx);
}

Test(conv, output_size) {
    cr_expect_eq(clcl_conv2d_out_size(32, 3, 1, 1), 32);
    cr_expect_eq(clcl_conv2d_out_size(32, 3, 2, 1), 16);
    cr_expect_eq(clcl_conv2d_out_size(224, 7, 2, 3), 112);
    cr_expect_eq(clcl_conv2d_out_size(7, 1, 2, 0), 4);
    cr_expect_eq(clcl_conv2d_out_size(2, 5, 1, 1), 0);
    cr_expect_eq(clcl_conv2d_out_size(8, 3, 0, 1), 0);
}
