/* Augmentation: each kernel against the C references of host/reference_augment.c for fixed
 * parameters, the bilinear convention against PyTorch, the FFT blur against the direct one,
 * the draws (ranges, rates, torchvision's fallback), determinism, the evaluation transform
 * and bad input.
 *
 * Tolerances (absolute; the worst error seen on PoCL in brackets), on the [0, 1] scale
 * (mean 0, std 1) unless said otherwise:
 *   crop, flip, grayscale at pixel centres: bit-exact against the kernel's float formula
 *     in C, and within rtol 1e-6 of the double reference [7e-8 relative];
 *   bilinear: 1e-5 [1.6e-6]; against PyTorch on the 0..255 scale: 5.1e-3 [9.8e-5];
 *   colour jitter, normalised by std 0.25 on channel 0: 3e-5 [4.1e-6], one channel alike;
 *   blur of values in [-2, 2]: direct 2e-6 [1.8e-7], FFT 1e-5 [9.5e-7], FFT vs direct 1e-5;
 *   the whole recipe, normalised (STL-10 / Fashion-MNIST statistics): 1e-4 [7.9e-6]. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include <stb_image.h>

#include "cli.h"
#include "clcl/augment.h"
#include "clcl/reference.h"
#include "clcl/rng.h"
#include "support.h"
#include "support_datafiles.h"

/* Under AddressSanitizer: libclFFT frees its plan actions with a size that does not match
 * their allocation and keeps program code past clfftTeardown (both inside clFFT, not
 * clcl); ignore those two reports so that the FFT tests run in sanitizer builds. Unused in
 * other builds. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
    return "new_delete_type_mismatch=0";
}

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libclFFT.so\n";
}

/* ---- helpers ------------------------------------------------------------------------- */

static uint8_t *random_images(int n, int channels, int height, int width, uint64_t seed) {
    size_t bytes = (size_t)n * channels * height * width;
    uint8_t *p = malloc(bytes);
    for (size_t i = 0; i < bytes; i++)
        p[i] = (uint8_t)(test_rand_u64(&seed) >> 56);
    return p;
}

/* A context, an augmenter and its input batch on the device. */
typedef struct {
    clcl_context *ctx;
    clcl_augment *aug;
    cl_mem images;
    clcl_tensor out;
    int n, channels, height, width, oh, ow;
    clcl_augment_config config;
} rig;

static void rig_open(rig *g, clcl_context *ctx, const clcl_augment_config *config, int n,
                     int channels, int height, int width, const uint8_t *images) {
    memset(g, 0, sizeof *g);
    *g = (rig){.ctx = ctx, .n = n, .channels = channels, .height = height, .width = width};
    g->config = *config;
    cr_assert_eq(clcl_augment_create(ctx, config, channels, height, width, n, &g->aug), CLCL_OK,
                 "%s", clcl_last_error());
    clcl_augment_output_size(g->aug, &g->oh, &g->ow);
    size_t bytes = (size_t)n * channels * height * width;
    cr_assert_eq(clcl_buffer_create(ctx, bytes, "test images", &g->images), CLCL_OK);
    cr_assert_eq(clEnqueueWriteBuffer(clcl_context_queue(ctx), g->images, CL_TRUE, 0, bytes, images,
                                      0, NULL, NULL),
                 CL_SUCCESS);
    int shape[4] = {2 * n, channels, g->oh, g->ow};
    cr_assert_eq(clcl_tensor_create(ctx, &g->out, 4, shape), CLCL_OK);
}

/* Runs the records (2n) and returns the output on the host (malloc'ed). */
static float *rig_run(rig *g, const clcl_augment_record *records) {
    cr_assert_eq(clcl_augment_apply(g->aug, g->images, g->n, records, &g->out), CLCL_OK, "%s",
                 clcl_last_error());
    float *host = malloc(g->out.count * sizeof *host);
    cr_assert_eq(clcl_tensor_read(g->ctx, &g->out, host), CLCL_OK);
    return host;
}

static void rig_close(rig *g) {
    clcl_tensor_free(&g->out);
    clReleaseMemObject(g->images);
    clcl_augment_free(g->aug);
}

/* The reference of every record, blur included. */
static double *rig_reference(const rig *g, const uint8_t *images,
                             const clcl_augment_record *records) {
    size_t per = (size_t)g->channels * g->oh * g->ow;
    size_t in_per = (size_t)g->channels * g->height * g->width;
    double *ref = malloc(2 * g->n * per * sizeof *ref);
    for (int m = 0; m < 2 * g->n; m++) {
        const uint8_t *src = images + (size_t)records[m].source * in_per;
        clcl_ref_augment_view(src, g->channels, g->height, g->width, &records[m], g->oh, g->ow,
                              g->config.mean, g->config.std, ref + m * per);
        clcl_ref_blur(ref + m * per, g->channels, g->oh, g->ow, records[m].sigma,
                      clcl_augment_blur_size(g->aug));
    }
    return ref;
}

static clcl_augment_record plain_record(int top, int left, int h, int w, int oh, int ow,
                                        int source) {
    return (clcl_augment_record){.top = (float)top,
                                 .left = (float)left,
                                 .scale_y = (float)h / (float)oh,
                                 .scale_x = (float)w / (float)ow,
                                 .limit_y = (float)(h - 1),
                                 .limit_x = (float)(w - 1),
                                 .brightness = 1.0f,
                                 .contrast = 1.0f,
                                 .saturation = 1.0f,
                                 .source = (float)source};
}

static clcl_augment_config no_randomness(int oh, int ow) {
    clcl_augment_config c = CLCL_AUGMENT_DEFAULTS;
    c.out_height = oh;
    c.out_width = ow;
    c.blur_p = 0.0f;
    return c;
}

/* ---- crop, flip, grayscale: exact ----------------------------------------------------- */

static void check_exact_crops(int channels, int gray) {
    const int n = 3, H = 20, W = 24, oh = 12, ow = 10;
    uint8_t *images = random_images(n, channels, H, W, 11);
    clcl_augment_config config = no_randomness(oh, ow);
    rig g;
    rig_open(&g, test_context(), &config, n, channels, H, W, images);

    /* Crops of the output's size at several offsets, each flipped or not. */
    clcl_augment_record rec[6];
    for (int m = 0; m < 2 * n; m++) {
        rec[m] = plain_record(m % 5 * 2, m * 3 % 14, oh, ow, oh, ow, m % n);
        rec[m].flip = (float)(m % 2);
        rec[m].gray = (float)gray;
    }
    float *got = rig_run(&g, rec);

    /* Expected: the source bytes, in float as the kernel computes them. */
    const float scale = (float)(1.0 / 255.0);
    size_t mismatches = 0;
    for (int m = 0; m < 2 * n; m++)
        for (int c = 0; c < channels; c++)
            for (int y = 0; y < oh; y++)
                for (int x = 0; x < ow; x++) {
                    int sx = (int)rec[m].left + (m % 2 ? ow - 1 - x : x);
                    int sy = (int)rec[m].top + y;
                    const uint8_t *img = images + (size_t)(m % n) * channels * H * W;
                    float v = (float)img[(c * H + sy) * W + sx];
                    if (gray) {
                        float r = img[sy * W + sx], gg = img[(H + sy) * W + sx],
                              b = img[(2 * H + sy) * W + sx];
                        v = 0.2989f * r + 0.587f * gg + 0.114f * b;
                    }
                    float want = v * scale + -0.0f;
                    float have = got[((size_t)(m * channels + c) * oh + y) * ow + x];
                    mismatches += memcmp(&want, &have, sizeof want) != 0;
                }
    cr_expect_eq(mismatches, 0, "%zu of %zu values differ from the exact crop", mismatches,
                 g.out.count);

    /* And the double reference agrees to float rounding. */
    double *ref = rig_reference(&g, images, rec);
    expect_close(got, ref, g.out.count, 0.0, 1e-6, "exact crop vs double reference");
    free(ref);
    free(got);
    free(images);
    clcl_context *ctx = g.ctx;
    rig_close(&g);
    clcl_context_free(ctx);
}

Test(augment, crop_and_flip_are_exact_rgb) {
    check_exact_crops(3, 0);
}

Test(augment, crop_and_flip_are_exact_single_channel) {
    check_exact_crops(1, 0);
}

Test(augment, grayscale_is_exact) {
    check_exact_crops(3, 1);
}

/* ---- bilinear: the reference against PyTorch, the kernel against both ---------------- */

typedef struct {
    int c, h, w, cases;
    uint8_t *image;
    int (*box)[6];
    double **out;
} golden;

static golden read_golden(void) {
    char path[1024];
    const char *dir = getenv("CLCL_TEST_DATA");
    cr_assert(dir, "CLCL_TEST_DATA is not set");
    snprintf(path, sizeof path, "%s/augment_bilinear.bin", dir);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s (run tests/gen_augment_golden.py)", path);
    char magic[8];
    int32_t head[4];
    cr_assert_eq(fread(magic, 1, 8, f), 8);
    cr_assert_eq(memcmp(magic, "CLAUGB01", 8), 0, "%s: wrong magic", path);
    cr_assert_eq(fread(head, sizeof(int32_t), 4, f), 4);
    golden g = {.c = head[0], .h = head[1], .w = head[2], .cases = head[3]};
    size_t bytes = (size_t)g.c * g.h * g.w;
    g.image = malloc(bytes);
    g.box = malloc(g.cases * sizeof *g.box);
    g.out = malloc(g.cases * sizeof *g.out);
    cr_assert_eq(fread(g.image, 1, bytes, f), bytes);
    for (int k = 0; k < g.cases; k++) {
        int32_t b[6];
        cr_assert_eq(fread(b, sizeof(int32_t), 6, f), 6);
        size_t count = (size_t)g.c * b[4] * b[5];
        for (int j = 0; j < 6; j++)
            g.box[k][j] = b[j];
        g.out[k] = malloc(count * sizeof(double));
        cr_assert_eq(fread(g.out[k], sizeof(double), count, f), count, "%s: truncated", path);
    }
    fclose(f);
    return g;
}

Test(augment, bilinear_matches_pytorch_and_reference) {
    golden gd = read_golden();
    clcl_context *ctx = test_context();
    for (int k = 0; k < gd.cases; k++) {
        int *b = gd.box[k], oh = b[4], ow = b[5];
        size_t count = (size_t)gd.c * oh * ow;

        /* The C reference reproduces PyTorch (both in double; the reference takes the
         * record's float scale, PyTorch the exact ratio, hence 2e-3 on the 0..255 scale). */
        clcl_augment_record r = plain_record(b[0], b[1], b[2], b[3], oh, ow, 0);
        double *ref = malloc(2 * count * sizeof *ref);
        for (int c = 0; c < gd.c; c++)
            for (int q = 0; q < oh * ow; q++)
                ref[c * oh * ow + q] =
                    clcl_ref_sample(gd.image + c * gd.h * gd.w, gd.w, &r, q / ow, q % ow);
        for (size_t i = 0; i < count; i++)
            cr_assert(fabs(ref[i] - gd.out[k][i]) <= 2e-3,
                      "case %d element %zu: reference %.9g, PyTorch %.9g", k, i, ref[i],
                      gd.out[k][i]);

        /* The kernel against PyTorch, on the 0..255 scale (std 1/255). */
        clcl_augment_config config = no_randomness(oh, ow);
        for (int c = 0; c < 3; c++)
            config.std[c] = 1.0f / 255.0f;
        rig g;
        rig_open(&g, ctx, &config, 1, gd.c, gd.h, gd.w, gd.image);
        clcl_augment_record rec[2] = {r, r};
        float *got = rig_run(&g, rec);
        for (size_t i = 0; i < count; i++)
            ref[count + i] = ref[i] = gd.out[k][i];
        expect_close(got, ref, 2 * count, 255 * 2e-5, 1e-6, "bilinear vs PyTorch");
        free(got);
        free(ref);
        rig_close(&g);
        free(gd.out[k]);
    }
    free(gd.out);
    free(gd.box);
    free(gd.image);
    clcl_context_free(ctx);
}

Test(augment, bilinear_random_crops_match_reference) {
    const int n = 4, H = 37, W = 45, oh = 30, ow = 26;
    uint8_t *images = random_images(n, 3, H, W, 21);
    clcl_augment_config config = no_randomness(oh, ow);
    rig g;
    rig_open(&g, test_context(), &config, n, 3, H, W, images);
    clcl_augment_record rec[8];
    uint64_t s = 3;
    for (int m = 0; m < 2 * n; m++) {
        int h = 1 + (int)(test_rand_u64(&s) % H), w = 1 + (int)(test_rand_u64(&s) % W);
        int top = (int)(test_rand_u64(&s) % (H - h + 1)),
            left = (int)(test_rand_u64(&s) % (W - w + 1));
        rec[m] = plain_record(top, left, h, w, oh, ow, m % n);
        rec[m].flip = (float)(m / 2 % 2);
    }
    float *got = rig_run(&g, rec);
    double *ref = rig_reference(&g, images, rec);
    expect_close(got, ref, g.out.count, 1e-5, 0.0, "bilinear crops");
    free(ref);
    free(got);
    free(images);
    clcl_context *ctx = g.ctx;
    rig_close(&g);
    clcl_context_free(ctx);
}

/* ---- colour jitter ------------------------------------------------------------------- */

Test(augment, reference_colour_steps_follow_torchvision) {
    double red[3] = {200, 0, 0};
    clcl_ref_hue(red, 1.0 / 3.0); /* red shifted by a third of the circle is green */
    cr_expect(fabs(red[0]) < 1e-9 && fabs(red[1] - 200) < 1e-9 && fabs(red[2]) < 1e-9,
              "hue: (%g, %g, %g)", red[0], red[1], red[2]);
    double c[3] = {10, 100, 250};
    clcl_ref_hue(c, 0.0);
    cr_expect(fabs(c[0] - 10) < 1e-9 && fabs(c[1] - 100) < 1e-9 && fabs(c[2] - 250) < 1e-9);
    clcl_ref_saturation(c, 0.0); /* saturation 0 is the grey value */
    cr_expect(fabs(c[0] - (0.2989 * 10 + 0.587 * 100 + 0.114 * 250)) < 1e-9);
    cr_expect(fabs(c[0] - c[2]) < 1e-12);
    double b[3] = {100, 200, 30};
    clcl_ref_brightness(b, 1.5); /* multiplies, clamps at 255 */
    cr_expect(b[0] == 150 && b[1] == 255 && b[2] == 45);
    double k[3] = {100, 200, 30};
    clcl_ref_blend(k, 80.0, 0.5); /* contrast blends with the mean */
    cr_expect(k[0] == 90 && k[1] == 140 && k[2] == 55);
}

/* One channel: brightness multiplies, contrast blends with the image's own mean just before
 * it (torchvision's adjust_contrast on a one-channel tensor), saturation and hue do nothing.
 * Worked by hand for a 1 x 2 image (100, 200), brightness 1.5 and contrast 0.5. */
Test(augment, reference_single_channel_jitter_worked_by_hand) {
    const uint8_t image[2] = {100, 200};
    const float mean[3] = {0, 0, 0}, sd[3] = {1, 1, 1};
    clcl_augment_record r = plain_record(0, 0, 1, 2, 1, 2, 0);
    r.jitter = 1.0f;
    r.brightness = 1.5f;
    r.contrast = 0.5f;
    r.saturation = 0.0f; /* would make a colour image grey */
    r.hue = 0.3f;
    /* brightness, contrast, saturation, hue: (150, 255) around their mean 202.5 */
    r.order = (float)(0 | 1 << 2 | 2 << 4 | 3 << 6);
    double out[2];
    clcl_ref_augment_view(image, 1, 1, 2, &r, 1, 2, mean, sd, out);
    cr_expect(fabs(out[0] * 255 - 176.25) < 1e-9 && fabs(out[1] * 255 - 228.75) < 1e-9,
              "brightness first: %.6f %.6f", out[0] * 255, out[1] * 255);
    /* hue, contrast, saturation, brightness: (125, 175) around 150, then x 1.5 clamped */
    r.order = (float)(3 | 1 << 2 | 2 << 4 | 0 << 6);
    clcl_ref_augment_view(image, 1, 1, 2, &r, 1, 2, mean, sd, out);
    cr_expect(fabs(out[0] * 255 - 187.5) < 1e-9 && fabs(out[1] * 255 - 255) < 1e-9,
              "contrast first: %.6f %.6f", out[0] * 255, out[1] * 255);
}

static void check_jitter_channels(int channels, int steps_mask, int gray) {
    const int n = 6, H = 19, W = 23, oh = 17, ow = 21;
    uint8_t *images = random_images(n, channels, H, W, 31);
    clcl_augment_config config = no_randomness(oh, ow);
    config.mean[0] = 0.4f, config.std[0] = 0.25f; /* a real normalisation on one channel */
    rig g;
    rig_open(&g, test_context(), &config, n, channels, H, W, images);

    /* Random factors, a different order per record, only the steps in steps_mask. */
    clcl_augment_record rec[12];
    uint64_t s = 77;
    for (int m = 0; m < 2 * n; m++) {
        rec[m] = plain_record(1, 2, 15, 18, oh, ow, m % n);
        rec[m].jitter = 1.0f;
        rec[m].brightness = steps_mask & 1 ? test_rand_uniform(&s, 0.6f, 1.4f) : 1.0f;
        rec[m].contrast = steps_mask & 2 ? test_rand_uniform(&s, 0.6f, 1.4f) : 1.0f;
        rec[m].saturation = steps_mask & 4 ? test_rand_uniform(&s, 0.6f, 1.4f) : 1.0f;
        rec[m].hue = steps_mask & 8 ? test_rand_uniform(&s, -0.1f, 0.1f) : 0.0f;
        int perm[4] = {0, 1, 2, 3};
        for (int i = 3; i > 0; i--) {
            int j = (int)(test_rand_u64(&s) % (i + 1)), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        rec[m].order = (float)(perm[0] | perm[1] << 2 | perm[2] << 4 | perm[3] << 6);
        rec[m].gray = (float)(gray && m % 2);
    }
    float *got = rig_run(&g, rec);
    double *ref = rig_reference(&g, images, rec);
    expect_close(got, ref, g.out.count, 3e-5, 0.0, "colour jitter");
    free(ref);
    free(got);
    free(images);
    clcl_context *ctx = g.ctx;
    rig_close(&g);
    clcl_context_free(ctx);
}

static void check_jitter(int steps_mask, int gray) {
    check_jitter_channels(3, steps_mask, gray);
}

Test(augment, brightness_matches_reference) {
    check_jitter(1, 0);
}

Test(augment, contrast_matches_reference) {
    check_jitter(2, 0);
}

Test(augment, saturation_matches_reference) {
    check_jitter(4, 0);
}

Test(augment, hue_matches_reference) {
    check_jitter(8, 0);
}

Test(augment, jitter_in_random_orders_with_grayscale_matches_reference) {
    check_jitter(15, 1);
}

/* Saturation, hue and grayscale are drawn too, and must leave one channel as it is. */
Test(augment, single_channel_jitter_in_random_orders_matches_reference) {
    check_jitter_channels(1, 15, 1);
}

/* ---- blur ---------------------------------------------------------------------------- */

static float *blur_on_device(clcl_context *ctx, const float *x, int n, int channels, int h, int w,
                             int kernel, clcl_blur_method method, const float *sigma) {
    clcl_blur *blur;
    clcl_tensor t;
    int shape[4] = {n, channels, h, w};
    cr_assert_eq(clcl_blur_create(ctx, n, channels, h, w, kernel, method, &blur), CLCL_OK, "%s",
                 clcl_last_error());
    cr_assert_eq(clcl_blur_get_method(blur), method);
    cr_assert_eq(clcl_tensor_create(ctx, &t, 4, shape), CLCL_OK);
    cr_assert_eq(clcl_tensor_write(ctx, &t, x), CLCL_OK);
    cr_assert_eq(clcl_blur_apply(blur, &t, sigma, n), CLCL_OK, "%s", clcl_last_error());
    float *out = malloc(t.count * sizeof *out);
    cr_assert_eq(clcl_tensor_read(ctx, &t, out), CLCL_OK);
    clcl_tensor_free(&t);
    clcl_blur_free(blur);
    return out;
}

static void check_blur(int channels, int h, int w, int kernel) {
    const int n = 4;
    clcl_context *ctx = test_context();
    size_t per = (size_t)channels * h * w;
    float *x = malloc(n * per * sizeof *x);
    double *ref = malloc(n * per * sizeof *ref);
    uint64_t s = (uint64_t)kernel * 1000 + h;
    for (size_t i = 0; i < n * per; i++)
        ref[i] = x[i] = test_rand_uniform(&s, -2.0f, 2.0f);
    const float sigma[4] = {0.1f, 2.0f, 0.0f, 0.9f}; /* image 2 is left alone */
    for (int i = 0; i < n; i++)
        clcl_ref_blur(ref + i * per, channels, h, w, sigma[i], kernel);

    float *direct = blur_on_device(ctx, x, n, channels, h, w, kernel, CLCL_BLUR_DIRECT, sigma);
    float *fft = blur_on_device(ctx, x, n, channels, h, w, kernel, CLCL_BLUR_FFT, sigma);
    expect_close(direct, ref, n * per, 2e-6, 0.0, "direct blur vs reference");
    expect_close(fft, ref, n * per, 1e-5, 0.0, "FFT blur vs reference");
    cr_expect_eq(memcmp(direct + 2 * per, x + 2 * per, per * sizeof *x), 0,
                 "an image with sigma 0 must be left as it is");
    double *as_double = malloc(n * per * sizeof *as_double);
    for (size_t i = 0; i < n * per; i++)
        as_double[i] = direct[i];
    expect_close(fft, as_double, n * per, 1e-5, 0.0, "FFT blur vs direct blur");
    free(as_double);
    free(direct);
    free(fft);
    free(x);
    free(ref);
    clcl_context_free(ctx);
}

/* Every FFT case pads to 48x48 planes, so that PoCL compiles clFFT's kernels only once
 * when its cache is cold (tens of seconds per size). */
Test(augment, blur_small_kernel_direct_and_fft_agree) {
    check_blur(3, 44, 46, 3);
}

Test(augment, blur_odd_sizes_direct_and_fft_agree) {
    check_blur(1, 37, 39, 9);
}

Test(augment, blur_large_kernel_direct_and_fft_agree) {
    check_blur(3, 24, 25, 23);
}

Test(augment, blur_weights_are_normalised_gaussians) {
    double w[6];
    clcl_blur_weights(1.5, 11, w);
    double sum = w[0];
    for (int k = 1; k <= 5; k++) {
        sum += 2 * w[k];
        cr_expect(fabs(w[k] / w[0] - exp(-0.5 * k * k / 2.25)) < 1e-12);
    }
    cr_expect(fabs(sum - 1.0) < 1e-12);
}

/* ---- the whole recipe ---------------------------------------------------------------- */

/* Draws with the default recipe and checks every view against the reference. */
static void check_recipe(int channels, int h, int w, int oh, clcl_blur_method method) {
    const int n = 5;
    uint8_t *images = random_images(n, channels, h, w, 41);
    clcl_augment_config config = clcl_augment_config_default(h, w);
    config.out_height = config.out_width = oh;
    config.blur_p = 0.7f;
    config.blur_method = method;
    clcl_augment_normalization(channels == 1 ? CLCL_DATASET_FASHION_MNIST : CLCL_DATASET_STL10,
                               channels, config.mean, config.std);
    rig g;
    rig_open(&g, test_context(), &config, n, channels, h, w, images);
    clcl_augment_record rec[10];
    int ids[5] = {10, 11, 12, 13, 14};
    cr_assert_eq(clcl_augment_draw(&config, channels, h, w, 9, 2, ids, n, rec), CLCL_OK);
    float *got = rig_run(&g, rec);
    double *ref = rig_reference(&g, images, rec);
    expect_close(got, ref, g.out.count, 1e-4, 0.0, "the whole recipe");
    free(ref);
    free(got);
    free(images);
    clcl_context *ctx = g.ctx;
    rig_close(&g);
    clcl_context_free(ctx);
}

Test(augment, recipe_rgb_with_direct_blur_matches_reference) {
    check_recipe(3, 50, 56, 44, CLCL_BLUR_DIRECT);
}

Test(augment, recipe_rgb_with_fft_blur_matches_reference) {
    check_recipe(3, 50, 56, 44, CLCL_BLUR_FFT);
}

Test(augment, recipe_single_channel_matches_reference) {
    check_recipe(1, 28, 28, 28, CLCL_BLUR_AUTO);
}

Test(augment, recipe_under_gpu_limits_matches_reference) {
    setenv("CLCL_MAX_WORK_GROUP", "256", 1);
    setenv("CLCL_MAX_LOCAL_MEM", "32768", 1);
    clcl_context *ctx = test_context();
    cr_assert_eq(clcl_context_device(ctx)->max_work_group, 256);
    cr_assert_eq(clcl_context_device(ctx)->local_mem, 32768);
    clcl_context_free(ctx);
    check_recipe(3, 50, 56, 44, CLCL_BLUR_DIRECT);
    check_recipe(3, 50, 56, 44, CLCL_BLUR_FFT);
}

/* Smaller than any real device: work-groups of 16 (the reduction's local memory is capped at
 * 64 bytes) and blur tiles of 16 x 2. */
Test(augment, recipe_under_tiny_limits_matches_reference) {
    setenv("CLCL_MAX_WORK_GROUP", "32", 1);
    setenv("CLCL_MAX_LOCAL_MEM", "64", 1);
    check_recipe(3, 50, 56, 44, CLCL_BLUR_DIRECT);
}

/* ---- the staged path ------------------------------------------------------------------ */

/* Out of slot `slot` into a fresh (2n, ...) tensor, against the reference of (images,
 * records). */
static void expect_staged(rig *g, int slot, const uint8_t *images, int n,
                          const clcl_augment_record *records, const char *what) {
    clcl_tensor out;
    cr_assert_eq(clcl_tensor_create(g->ctx, &out, 4, (int[]){2 * n, g->channels, g->oh, g->ow}),
                 CLCL_OK);
    cr_assert_eq(clcl_augment_run(g->aug, slot, &out), CLCL_OK, "%s", clcl_last_error());
    float *got = malloc(out.count * sizeof *got);
    cr_assert_eq(clcl_tensor_read(g->ctx, &out, got), CLCL_OK);
    int saved = g->n;
    g->n = n;
    double *ref = rig_reference(g, images, records);
    g->n = saved;
    expect_close(got, ref, out.count, 1e-4, 0.0, what);
    free(ref);
    free(got);
    clcl_tensor_free(&out);
}

/* Two batches in flight in the two slots, a slot staged again after its run, a short last
 * batch, and the caller's memory reused at once after each stage: every view as the
 * reference has it. */
Test(augment, staged_uploads_in_two_slots_match_reference) {
    const int n = 6, C = 3, H = 40, W = 36;
    clcl_augment_config config = clcl_augment_config_default(H, W);
    config.out_height = config.out_width = 32;
    config.blur_p = 0.7f;
    uint8_t *images[3];
    clcl_augment_record rec[3][12];
    int sizes[3] = {n, n, 4};
    for (int b = 0; b < 3; b++) {
        images[b] = random_images(n, C, H, W, 70 + b);
        cr_assert_eq(clcl_augment_draw(&config, C, H, W, 5, b, NULL, sizes[b], rec[b]), CLCL_OK);
    }
    rig g;
    rig_open(&g, test_context(), &config, n, C, H, W, images[0]);
    size_t bytes = (size_t)n * C * H * W;
    uint8_t *caller = malloc(bytes);
    clcl_augment_record caller_rec[12];

    clcl_tensor unused;
    cr_assert_eq(clcl_tensor_create(g.ctx, &unused, 4, (int[]){2 * n, C, g.oh, g.ow}), CLCL_OK);
    cr_expect_eq(clcl_augment_run(g.aug, 1, &unused), CLCL_ERR_ARGUMENT, "ran an empty slot");
    cr_expect_eq(clcl_augment_stage(g.aug, 2, images[0], n, rec[0]), CLCL_ERR_ARGUMENT);
    clcl_tensor_free(&unused);

    for (int b = 0; b < 2; b++) {
        memcpy(caller, images[b], bytes);
        memcpy(caller_rec, rec[b], sizeof caller_rec);
        cr_assert_eq(clcl_augment_stage(g.aug, b, caller, n, caller_rec), CLCL_OK, "%s",
                     clcl_last_error());
        memset(caller, 0xA5, bytes);
        memset(caller_rec, 0, sizeof caller_rec);
    }
    expect_staged(&g, 0, images[0], n, rec[0], "slot 0, first batch");
    memcpy(caller, images[2], (size_t)sizes[2] * C * H * W);
    cr_assert_eq(clcl_augment_stage(g.aug, 0, caller, sizes[2], rec[2]), CLCL_OK, "%s",
                 clcl_last_error());
    memset(caller, 0, bytes);
    expect_staged(&g, 1, images[1], n, rec[1], "slot 1, second batch");
    expect_staged(&g, 0, images[2], sizes[2], rec[2], "slot 0 again, a short batch");

    free(caller);
    for (int b = 0; b < 3; b++)
        free(images[b]);
    clcl_context *ctx = g.ctx;
    rig_close(&g);
    clcl_context_free(ctx);
}

/* ---- the draws ----------------------------------------------------------------------- */

Test(augment, draws_respect_ranges_and_rates) {
    const int n = 4000, H = 96, W = 96;
    clcl_augment_config c = clcl_augment_config_default(H, W);
    clcl_augment_record *r = malloc(2 * n * sizeof *r);
    cr_assert_eq(clcl_augment_draw(&c, 3, H, W, 1, 0, NULL, n, r), CLCL_OK);
    int flips = 0, jitters = 0, grays = 0, blurs = 0;
    for (int m = 0; m < 2 * n; m++) {
        double h = r[m].limit_y + 1, w = r[m].limit_x + 1;
        double scale = h * w / (H * W), ratio = w / h;
        /* Rounding the sides to pixels moves area and ratio a little past the ranges. */
        cr_assert(scale >= 0.08 * 0.9 && scale <= 1.0, "record %d: scale %g", m, scale);
        cr_assert(ratio >= 0.75 * 0.9 && ratio <= 4.0 / 3 * 1.1, "record %d: ratio %g", m, ratio);
        cr_assert(r[m].top + h <= H && r[m].left + w <= W);
        cr_assert_eq(r[m].source, m % n);
        flips += r[m].flip != 0;
        grays += r[m].gray != 0;
        blurs += r[m].sigma > 0;
        if (r[m].jitter != 0) {
            jitters++;
            cr_assert(r[m].brightness >= 0.6f && r[m].brightness <= 1.4f);
            cr_assert(r[m].saturation >= 0.6f && r[m].saturation <= 1.4f);
            cr_assert(r[m].contrast >= 0.6f && r[m].contrast <= 1.4f);
            cr_assert(fabsf(r[m].hue) <= 0.1f);
            int order = (int)r[m].order, seen = 0;
            for (int k = 0; k < 4; k++)
                seen |= 1 << ((order >> 2 * k) & 3);
            cr_assert_eq(seen, 15, "record %d: order %d is not a permutation", m, order);
        }
        if (r[m].sigma > 0)
            cr_assert(r[m].sigma >= 0.1f && r[m].sigma <= 2.0f);
    }
    /* Rates within 4 standard deviations of p over 8000 draws. */
    double total = 2.0 * n;
    cr_expect(fabs(flips / total - 0.5) < 4 * sqrt(0.25 / total), "flip rate %g", flips / total);
    cr_expect(fabs(jitters / total - 0.8) < 4 * sqrt(0.16 / total), "jitter %g", jitters / total);
    cr_expect(fabs(grays / total - 0.2) < 4 * sqrt(0.16 / total), "gray rate %g", grays / total);
    cr_expect(fabs(blurs / total - 0.5) < 4 * sqrt(0.25 / total), "blur rate %g", blurs / total);
    free(r);
}

Test(augment, small_images_default_to_scale_0_2_and_no_blur) {
    clcl_augment_config c = clcl_augment_config_default(32, 32);
    cr_expect_float_eq(c.crop_scale_min, 0.2f, 1e-7);
    cr_expect_eq(c.blur_p, 0.0f);
    c = clcl_augment_config_default(64, 64);
    cr_expect_float_eq(c.crop_scale_min, 0.2f, 1e-7);
    cr_expect_float_eq(c.blur_p, 0.5f, 1e-7);
    c = clcl_augment_config_default(96, 96);
    cr_expect_float_eq(c.crop_scale_min, 0.08f, 1e-7);
    cr_expect_eq(clcl_augment_blur_kernel(&c, 96, 96), 9);
    cr_expect_eq(clcl_augment_blur_kernel(&c, 224, 224), 23);
    cr_expect_eq(clcl_augment_blur_kernel(&c, 28, 28), 3);
}

Test(augment, single_channel_draws_are_brightness_and_contrast) {
    clcl_augment_config c = clcl_augment_config_default(28, 28);
    c.jitter_p = c.gray_p = 1.0f;
    clcl_augment_record r[200];
    cr_assert_eq(clcl_augment_draw(&c, 1, 28, 28, 3, 0, NULL, 100, r), CLCL_OK);
    int brighter = 0, more_contrast = 0;
    for (int m = 0; m < 200; m++) {
        cr_assert(r[m].jitter == 1 && r[m].gray == 0, "record %d: jitter %g, gray %g", m,
                  r[m].jitter, r[m].gray);
        cr_assert(r[m].brightness >= 0.6f && r[m].brightness <= 1.4f);
        cr_assert(r[m].contrast >= 0.6f && r[m].contrast <= 1.4f);
        cr_assert(r[m].saturation == 1.0f && r[m].hue == 0.0f, "record %d: saturation %g, hue %g",
                  m, r[m].saturation, r[m].hue);
        brighter += r[m].brightness > 1.0f;
        more_contrast += r[m].contrast > 1.0f;
    }
    cr_expect(brighter > 60 && brighter < 140 && more_contrast > 60 && more_contrast < 140,
              "factors above 1: brightness %d, contrast %d of 200", brighter, more_contrast);
}

/* Without jitter a single-channel view draws only its crop, flip and blur, in that order:
 * the stream of the views of runs from before single-channel images had a jitter. */
Test(augment, single_channel_draws_without_jitter_keep_their_stream) {
    clcl_augment_config c = clcl_augment_config_default(40, 40);
    c.crop_p = 0.0f;
    c.jitter_p = 0.0f;
    c.blur_p = 0.5f;
    clcl_augment_record r[2 * 50];
    cr_assert_eq(clcl_augment_draw(&c, 1, 40, 40, 8, 2, NULL, 50, r), CLCL_OK);
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < 50; i++) {
            clcl_rng rng;
            clcl_rng_seed_stream(&rng, 8, 2ull << 33 | (uint64_t)i << 1 | (uint64_t)v);
            (void)clcl_rng_uniform(&rng); /* the crop's coin */
            float flip = clcl_rng_uniform(&rng) < 0.5 ? 1.0f : 0.0f;
            float sigma = clcl_rng_uniform(&rng) < 0.5
                              ? (float)clcl_rng_range(&rng, c.blur_sigma_min, c.blur_sigma_max)
                              : 0.0f;
            const clcl_augment_record *m = &r[v * 50 + i];
            cr_assert(m->flip == flip && m->sigma == sigma && m->jitter == 0,
                      "view %d of image %d: flip %g sigma %g, expected %g %g", v, i, m->flip,
                      m->sigma, flip, sigma);
        }
}

Test(augment, impossible_crops_fall_back_to_torchvision_centre_crop) {
    clcl_augment_config c = CLCL_AUGMENT_DEFAULTS;
    c.crop_scale_min = c.crop_scale_max = 1.0f;
    c.crop_ratio_min = 2.0f;
    c.crop_ratio_max = 3.0f;
    clcl_augment_record r[2];
    cr_assert_eq(clcl_augment_draw(&c, 3, 32, 32, 1, 0, NULL, 1, r), CLCL_OK);
    /* Every try is wider than the image: width 32, height round(32 / 2) = 16, centred. */
    for (int v = 0; v < 2; v++) {
        cr_expect_eq(r[v].limit_x + 1, 32.0f);
        cr_expect_eq(r[v].limit_y + 1, 16.0f);
        cr_expect_eq(r[v].top, 8.0f);
        cr_expect_eq(r[v].left, 0.0f);
    }
}

/* ---- determinism --------------------------------------------------------------------- */

Test(augment, same_seed_same_bytes_and_views_follow_ids) {
    const int n = 8, H = 48, W = 48;
    uint8_t *images = random_images(n, 3, H, W, 51);
    clcl_augment_config c = clcl_augment_config_default(H, W);
    clcl_context *ctx = test_context();
    int ids[8] = {100, 101, 102, 103, 104, 105, 106, 107};
    float *runs[3];
    for (int run = 0; run < 3; run++) {
        rig g;
        rig_open(&g, ctx, &c, n, 3, H, W, images);
        cr_assert_eq(clcl_augment_batch(g.aug, images, n, run < 2 ? 42 : 43, 3, ids, &g.out),
                     CLCL_OK, "%s", clcl_last_error());
        runs[run] = malloc(g.out.count * sizeof(float));
        cr_assert_eq(clcl_tensor_read(ctx, &g.out, runs[run]), CLCL_OK);
        rig_close(&g);
    }
    size_t bytes = (size_t)2 * n * 3 * H * W * sizeof(float);
    cr_expect_eq(memcmp(runs[0], runs[1], bytes), 0, "one seed gave two different batches");
    cr_expect_neq(memcmp(runs[0], runs[2], bytes), 0, "two seeds gave the same batch");

    /* An image's views depend on its id, not on its place in the batch or the batch size. */
    clcl_augment_record a[16], b[2];
    cr_assert_eq(clcl_augment_draw(&c, 3, H, W, 42, 3, ids, n, a), CLCL_OK);
    cr_assert_eq(clcl_augment_draw(&c, 3, H, W, 42, 3, &ids[5], 1, b), CLCL_OK);
    b[0].source = b[1].source = 5;
    cr_expect_eq(memcmp(&a[5], &b[0], sizeof b[0]), 0);
    cr_expect_eq(memcmp(&a[n + 5], &b[1], sizeof b[1]), 0);
    cr_expect_neq(memcmp(&a[5], &a[n + 5], sizeof a[5]), 0, "the two views are the same");
    for (int run = 0; run < 3; run++)
        free(runs[run]);
    free(images);
    clcl_context_free(ctx);
}

/* ---- the evaluation transform -------------------------------------------------------- */

static float *eval_on_device(clcl_context *ctx, const clcl_eval_transform_config *config, int n,
                             int C, int H, int W, const uint8_t *images, int *oh, int *ow) {
    clcl_eval_transform *ev;
    clcl_tensor out;
    cr_assert_eq(clcl_eval_transform_create(ctx, config, C, H, W, n, &ev), CLCL_OK, "%s",
                 clcl_last_error());
    clcl_eval_transform_output_size(ev, oh, ow);
    cr_assert_eq(clcl_tensor_create(ctx, &out, 4, (int[]){n, C, *oh, *ow}), CLCL_OK);
    cr_assert_eq(clcl_eval_transform_batch(ev, images, n, &out), CLCL_OK, "%s", clcl_last_error());
    float *host = malloc(out.count * sizeof *host);
    cr_assert_eq(clcl_tensor_read(ctx, &out, host), CLCL_OK);
    clcl_tensor_free(&out);
    clcl_eval_transform_free(ev);
    return host;
}

Test(augment, eval_identity_is_exact_normalisation) {
    const int n = 3, H = 32, W = 32;
    uint8_t *images = random_images(n, 3, H, W, 61);
    clcl_eval_transform_config config = {.mean = {0.5f, 0.25f, 0.0f}, .std = {0.5f, 0.25f, 1.0f}};
    clcl_context *ctx = test_context();
    int oh, ow;
    float *got = eval_on_device(ctx, &config, n, 3, H, W, images, &oh, &ow);
    cr_assert(oh == H && ow == W);
    double *ref = malloc((size_t)n * 3 * H * W * sizeof *ref);
    for (size_t i = 0; i < (size_t)n * 3 * H * W; i++) {
        int c = (int)(i / (H * W) % 3);
        ref[i] = (images[i] / 255.0 - config.mean[c]) / config.std[c];
    }
    expect_close(got, ref, (size_t)n * 3 * H * W, 1e-6, 1e-6, "eval identity");
    free(ref);
    free(got);
    free(images);
    clcl_context_free(ctx);
}

Test(augment, eval_resize_and_centre_crop_match_reference) {
    const int n = 2, H = 50, W = 70;
    uint8_t *images = random_images(n, 3, H, W, 71);
    clcl_eval_transform_config config = {
        .resize = 40, .out_height = 36, .out_width = 36, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    clcl_context *ctx = test_context();
    int oh, ow;
    float *got = eval_on_device(ctx, &config, n, 3, H, W, images, &oh, &ow);
    cr_assert(oh == 36 && ow == 36);

    /* Resize 50x70 to 40x56 (short side 40), centre crop 36x36 at (2, 10). */
    clcl_augment_record r = plain_record(0, 0, H, W, 40, 56, 0);
    r.offset_y = 2;
    r.offset_x = 10;
    double *ref = malloc((size_t)n * 3 * oh * ow * sizeof *ref);
    for (int i = 0; i < n; i++)
        clcl_ref_augment_view(images + (size_t)i * 3 * H * W, 3, H, W, &r, oh, ow, config.mean,
                              config.std, ref + (size_t)i * 3 * oh * ow);
    expect_close(got, ref, (size_t)n * 3 * oh * ow, 1e-5, 0.0, "eval resize + centre crop");
    free(ref);
    free(got);
    free(images);
    clcl_context_free(ctx);
}

/* ---- statistics and bad input -------------------------------------------------------- */

Test(augment, statistics_and_standard_normalisations) {
    uint8_t img[2 * 3 * 2] = {0, 255, 0, 255, 10, 10, 10, 10, 7, 7, 7, 7};
    double mean[3], std[3];
    clcl_augment_statistics(img, 1, 3, 2, 2, mean, std);
    cr_expect(fabs(mean[0] - 0.5) < 1e-12 && fabs(std[0] - 0.5) < 1e-12);
    cr_expect(fabs(mean[1] - 10 / 255.0) < 1e-12 && fabs(std[1]) < 1e-12);
    float m[3], s[3];
    cr_expect_eq(clcl_augment_normalization(CLCL_DATASET_FASHION_MNIST, 1, m, s), CLCL_OK);
    cr_expect_float_eq(m[0], 0.2860f, 1e-6);
    cr_expect_eq(clcl_augment_normalization(CLCL_DATASET_CIFAR10, 1, m, s), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "cifar10"), "%s", clcl_last_error());
}

Test(augment, bad_input_is_refused_with_a_clear_message) {
    clcl_context *ctx = test_context();
    clcl_augment *aug;
    clcl_augment_config c = CLCL_AUGMENT_DEFAULTS;
    c.flip_p = 1.5f;
    cr_expect_eq(clcl_augment_create(ctx, &c, 3, 32, 32, 4, &aug), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "flip_p"), "%s", clcl_last_error());
    c = CLCL_AUGMENT_DEFAULTS;
    cr_expect_eq(clcl_augment_create(ctx, &c, 2, 32, 32, 4, &aug), CLCL_ERR_ARGUMENT);
    c.blur_kernel = 4;
    cr_expect_eq(clcl_augment_create(ctx, &c, 3, 32, 32, 4, &aug), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "blur_kernel"), "%s", clcl_last_error());

    /* A wrong output shape and a too large batch. */
    c = clcl_augment_config_default(32, 32);
    cr_assert_eq(clcl_augment_create(ctx, &c, 3, 32, 32, 4, &aug), CLCL_OK);
    clcl_tensor out;
    cr_assert_eq(clcl_tensor_create(ctx, &out, 4, (int[]){4, 3, 32, 32}), CLCL_OK);
    uint8_t *images = random_images(4, 3, 32, 32, 1);
    cr_expect_eq(clcl_augment_batch(aug, images, 4, 1, 0, NULL, &out), CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "(8, 3, 32, 32)"), "%s", clcl_last_error());
    cr_expect_eq(clcl_augment_batch(aug, images, 5, 1, 0, NULL, &out), CLCL_ERR_SHAPE);
    clcl_tensor_free(&out);
    clcl_augment_free(aug);

    clcl_eval_transform *ev;
    clcl_eval_transform_config ec = {.resize = 32, .out_height = 40, .std = {1, 1, 1}};
    cr_expect_eq(clcl_eval_transform_create(ctx, &ec, 3, 32, 32, 4, &ev), CLCL_ERR_ARGUMENT);
    clcl_blur *blur;
    cr_expect_eq(clcl_blur_create(ctx, 1, 1, 8, 8, 17, CLCL_BLUR_DIRECT, &blur), CLCL_ERR_ARGUMENT);
    free(images);
    clcl_context_free(ctx);
}

/* ---- the command --------------------------------------------------------------------- */

/* Each bad option is refused before any work, with exit status 2 and a message that names
 * it, its value and what was expected. */
Test(augment, command_names_the_bad_option, .init = cr_redirect_stderr) {
    const char *dir = test_temp_dir("augment-usage");
    char slash[700];
    snprintf(slash, sizeof slash, "%s/", dir);
    struct {
        const char *flag, *value, *expect;
    } cases[] = {
        {"--count", "0", "--count 0; expected 1 to 1000 rows"},
        {"--count", "100000", "--count 100000; expected 1 to 1000 rows"},
        {"--image-size", "-5", "--image-size -5; expected 0 (as stored) or more"},
        {"--size", "100000", "--size 100000; expected 0 (the images' own) to 4096"},
        {"--size", "-1", "--size -1; expected 0"},
        {"--out", slash, "is a directory; expected the PNG file to write"},
        {"--out", dir, "is a directory; expected the PNG file to write"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *argv[] = {"--dataset",
                        "cifar10",
                        "--out",
                        (char *)test_join(dir, "g.png"),
                        (char *)cases[i].flag,
                        (char *)cases[i].value};
        cr_expect_eq(clcl_cmd_augment(6, argv), 2, "%s %s", cases[i].flag, cases[i].value);
    }
    char *no_dataset[] = {"--out", (char *)test_join(dir, "g.png")};
    cr_expect_eq(clcl_cmd_augment(2, no_dataset), 2);
    fflush(stderr);
    char *text = test_read_all(cr_get_redirected_stderr());
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        cr_expect(strstr(text, cases[i].expect), "no \"%s\" in:\n%s", cases[i].expect, text);
    cr_expect(strstr(text, "--dataset NAME is required"), "%s", text);
    free(text);
    rmdir(dir);
}

Test(augment, command_writes_a_grid_of_originals_and_views) {
    const char *dir = test_temp_dir("augment-cmd");
    const int n = 5;
    uint8_t pixels[5 * 3 * 32 * 32], labels[5] = {0, 1, 2, 3, 4};
    test_fill_bytes(pixels, sizeof pixels, 3);
    test_write_cifar(test_join(dir, "test_batch.bin"), n, pixels, labels, NULL);
    const char *png = test_join(dir, "grid.png");
    char *argv[] = {"--dataset", "cifar10", "--data", (char *)dir, "--split", "test",
                    "--count",   "3",       "--seed", "2",         "--out",   (char *)png};
    cr_assert_eq(clcl_cmd_augment(12, argv), 0, "%s", clcl_last_error());

    /* Three rows of three 128-pixel cells (zoom 4) with 4-pixel gaps. */
    int w, h, comp;
    uint8_t *grid = stbi_load(png, &w, &h, &comp, 3);
    cr_assert(grid, "cannot read %s", png);
    cr_expect(w == 3 * 128 + 4 * 4 && h == 3 * (128 + 4) + 4, "grid is %dx%d", w, h);

    /* Each row starts with one of the dataset's images, enlarged. */
    for (int row = 0; row < 3; row++) {
        int found = 0;
        for (int i = 0; i < n && !found; i++) {
            int same = 1;
            for (int y = 0; y < 32 && same; y++)
                for (int x = 0; x < 32 && same; x++)
                    for (int c = 0; c < 3; c++) {
                        uint8_t g = grid[((4 + row * 132 + 4 * y) * w + 4 + 4 * x) * 3 + c];
                        same &= g == pixels[((i * 3 + c) * 32 + y) * 32 + x];
                    }
            found = same;
        }
        cr_expect(found, "row %d does not start with a dataset image", row);
    }
    stbi_image_free(grid);

    /* Usage errors: 2; a dataset that is not there: 1. */
    char *no_out[] = {"--dataset", "cifar10", "--data", (char *)dir};
    cr_expect_eq(clcl_cmd_augment(4, no_out), 2);
    char *missing[] = {"--dataset", "cifar10",  "--data", (char *)test_join(dir, "nothing"),
                       "--out",     (char *)png};
    cr_expect_eq(clcl_cmd_augment(6, missing), 1);

    /* An output that cannot be written: 1, with the path and the cause, and no file left. */
    const char *nowhere = test_join(dir, "no-such-dir/grid.png");
    char *unwritable[] = {"--dataset", "cifar10", "--data", (char *)dir,
                          "--split",   "test",    "--out",  (char *)nowhere};
    cr_expect_eq(clcl_cmd_augment(8, unwritable), 1);
    cr_expect(strstr(clcl_last_error(), "no-such-dir/grid.png") &&
                  strstr(clcl_last_error(), strerror(ENOENT)),
              "the error names the file and the cause: %s", clcl_last_error());
    remove(png);
    remove(test_join(dir, "test_batch.bin"));
    rmdir(dir);
}
