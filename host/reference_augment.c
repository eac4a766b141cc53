/* Double-precision references of the augmentation (include/clcl/reference.h), written from
 * torchvision's definitions (functional_tensor: _blend, adjust_*, _rgb2hsv, _hsv2rgb;
 * F.interpolate bilinear with align_corners=False) rather than from the kernels. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clcl/reference.h"

static double clampd(double x, double lo, double hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

/* One axis of PyTorch's source index: the two taps and the weight of the second. */
static void axis(double o, double offset, double scale, double limit, int *i0, int *i1,
                 double *lambda) {
    double s = (o + offset + 0.5) * scale - 0.5;
    if (s < 0.0)
        s = 0.0;
    if (s > limit)
        s = limit;
    *i0 = (int)floor(s);
    *i1 = *i0 < (int)limit ? *i0 + 1 : *i0;
    *lambda = s - *i0;
}

double clcl_ref_sample(const uint8_t *plane, int w, const clcl_augment_record *r, int oy, int ox) {
    int y0, y1, x0, x1;
    double ly, lx;
    axis(oy, r->offset_y, r->scale_y, r->limit_y, &y0, &y1, &ly);
    axis(ox, r->offset_x, r->scale_x, r->limit_x, &x0, &x1, &lx);
    int top = (int)r->top, left = (int)r->left;
    double p00 = plane[(top + y0) * w + left + x0], p01 = plane[(top + y0) * w + left + x1];
    double p10 = plane[(top + y1) * w + left + x0], p11 = plane[(top + y1) * w + left + x1];
    return (1.0 - ly) * ((1.0 - lx) * p00 + lx * p01) + ly * ((1.0 - lx) * p10 + lx * p11);
}

double clcl_ref_grey(const double c[3]) {
    return 0.2989 * c[0] + 0.587 * c[1] + 0.114 * c[2];
}

void clcl_ref_blend(double c[3], double other, double ratio) {
    for (int k = 0; k < 3; k++)
        c[k] = clampd(ratio * c[k] + (1.0 - ratio) * other, 0.0, 255.0);
}

void clcl_ref_brightness(double c[3], double factor) {
    clcl_ref_blend(c, 0.0, factor);
}

void clcl_ref_saturation(double c[3], double factor) {
    clcl_ref_blend(c, clcl_ref_grey(c), factor);
}

void clcl_ref_hue(double c[3], double shift) {
    /* _rgb2hsv */
    double r = c[0], g = c[1], b = c[2];
    double maxc = fmax(r, fmax(g, b)), minc = fmin(r, fmin(g, b));
    int eqc = maxc == minc;
    double cr = maxc - minc;
    double s = cr / (eqc ? 1.0 : maxc);
    double div = eqc ? 1.0 : cr;
    double rc = (maxc - r) / div, gc = (maxc - g) / div, bc = (maxc - b) / div;
    double hr = (maxc == r) * (bc - gc);
    double hg = (maxc == g && maxc != r) * (2.0 + rc - bc);
    double hb = (maxc != g && maxc != r) * (4.0 + gc - rc);
    double h = fmod((hr + hg + hb) / 6.0 + 1.0, 1.0);

    /* adjust_hue: (h + shift) mod 1, Python's floor modulo */
    h = h + shift;
    h -= floor(h);

    /* _hsv2rgb, the 0..1 clamps taken to 0..255 */
    double v = maxc;
    double i = floor(h * 6.0), f = h * 6.0 - i;
    int sector = ((int)i) % 6;
    double p = clampd(v * (1.0 - s), 0.0, 255.0);
    double q = clampd(v * (1.0 - s * f), 0.0, 255.0);
    double t = clampd(v * (1.0 - s * (1.0 - f)), 0.0, 255.0);
    const double table[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
    memcpy(c, table[sector], sizeof table[sector]);
}

/* The jitter steps [0, steps) of the record's order; grey_only keeps brightness and
 * contrast, the steps that change a one-channel image. */
static void jitter(double c[3], const clcl_augment_record *r, int steps, double mean,
                   int grey_only) {
    int order = (int)r->order;
    for (int k = 0; k < steps; k++) {
        switch ((order >> (2 * k)) & 3) {
            case 0:
                clcl_ref_brightness(c, r->brightness);
                break;
            case 1:
                clcl_ref_blend(c, mean, r->contrast);
                break;
            case 2:
                if (!grey_only)
                    clcl_ref_saturation(c, r->saturation);
                break;
            default:
                if (!grey_only)
                    clcl_ref_hue(c, r->hue);
        }
    }
}

/* The pixel's values, the one channel repeated in all three for a single-channel image. */
static void pixel(const uint8_t *image, int channels, int plane, int w,
                  const clcl_augment_record *r, int oy, int ox, int ow, double c[3]) {
    int sx = r->flip != 0.0f ? ow - 1 - ox : ox;
    for (int k = 0; k < 3; k++)
        c[k] = clcl_ref_sample(image + (channels == 3 ? k * plane : 0), w, r, oy, sx);
}

void clcl_ref_augment_view(const uint8_t *image, int channels, int height, int width,
                           const clcl_augment_record *r, int oh, int ow, const float mean[3],
                           const float std[3], double *out) {
    int plane = height * width, pixels = oh * ow, grey_only = channels == 1;

    /* The image's mean just before the contrast step: of the grey values, or of the one
     * channel's values. */
    int order = (int)r->order, before = 4;
    for (int k = 0; k < 4 && r->jitter != 0.0f; k++)
        if (((order >> (2 * k)) & 3) == 1)
            before = k;
    double mean_before = 0.0;
    for (int q = 0; q < pixels && before < 4; q++) {
        double c[3];
        pixel(image, channels, plane, width, r, q / ow, q % ow, ow, c);
        jitter(c, r, before, 0.0, grey_only);
        mean_before += (grey_only ? c[0] : clcl_ref_grey(c)) / pixels;
    }

    for (int q = 0; q < pixels; q++) {
        double c[3];
        pixel(image, channels, plane, width, r, q / ow, q % ow, ow, c);
        jitter(c, r, r->jitter != 0.0f ? 4 : 0, mean_before, grey_only);
        if (!grey_only && r->gray != 0.0f)
            c[0] = c[1] = c[2] = clcl_ref_grey(c);
        for (int k = 0; k < channels; k++)
            out[k * pixels + q] = (c[k] / 255.0 - mean[k]) / std[k];
    }
}

static int reflect(int i, int n) {
    i = i < 0 ? -i : i;
    return i >= n ? 2 * (n - 1) - i : i;
}

clcl_status clcl_ref_blur(double *x, int channels, int height, int width, double sigma,
                          int kernel) {
    if (sigma <= 0.0)
        return CLCL_OK;
    int radius = kernel / 2, plane = height * width;
    double *w = malloc((size_t)(radius + 1) * sizeof *w);
    double *tmp = malloc((size_t)plane * sizeof *tmp);
    if (!w || !tmp) {
        free(w);
        free(tmp);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "reference blur: out of host memory");
    }

    /* The normalised Gaussian over [-radius, radius], computed here on its own. */
    double sum = 0.0;
    for (int k = -radius; k <= radius; k++)
        sum += exp(-0.5 * (k / sigma) * (k / sigma));
    for (int k = 0; k <= radius; k++)
        w[k] = exp(-0.5 * (k / sigma) * (k / sigma)) / sum;

    for (int c = 0; c < channels; c++) {
        double *p = x + (size_t)c * plane;
        for (int y = 0; y < height; y++)
            for (int xx = 0; xx < width; xx++) {
                double acc = 0.0;
                for (int k = -radius; k <= radius; k++)
                    acc += w[abs(k)] * p[y * width + reflect(xx + k, width)];
                tmp[y * width + xx] = acc;
            }
        for (int y = 0; y < height; y++)
            for (int xx = 0; xx < width; xx++) {
                double acc = 0.0;
                for (int k = -radius; k <= radius; k++)
                    acc += w[abs(k)] * tmp[reflect(y + k, height) * width + xx];
                p[y * width + xx] = acc;
            }
    }
    free(w);
    free(tmp);
    return CLCL_OK;
}
