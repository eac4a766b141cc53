/* The fused SimCLR augmentation: crop + bilinear resize + flip + colour jitter + grayscale +
 * normalisation, from uint8 (N, C, H, W) to float (M, C, OH, OW), M records of parameters.
 *
 * One work-group per output image; its work-items stride over the output pixels. Colour
 * work is done on the 0..255 scale (torchvision's formulas are scale-free apart from the
 * clamp bound, which is 255 here) and normalised at the end. The contrast step needs the
 * grey mean of the image as it is just before that step, so a work-group first runs the
 * pipeline up to there, reduces the mean in local memory, then runs it all.
 *
 * Record layout (AUG_REC floats per output image, see clcl_augment_record):
 *   0 top, 1 left, 2 scale_y, 3 scale_x, 4 limit_y, 5 limit_x, 6 offset_y, 7 offset_x,
 *   8 flip, 9 jitter, 10 brightness, 11 contrast, 12 saturation, 13 hue, 14 order,
 *   15 gray, 16 sigma (used by the blur), 17 source image index. */

/* Rounding the same way as the C reference: no fused multiply-adds. */
#pragma OPENCL FP_CONTRACT OFF

/* Floats per parameter record; must match sizeof(clcl_augment_record) / 4. */
#ifndef AUG_REC
#define AUG_REC 24
#endif

enum { STEP_BRIGHTNESS = 0, STEP_CONTRAST = 1, STEP_SATURATION = 2, STEP_HUE = 3 };

/* The record in private memory: read once per work-item, not at every pixel. */
typedef struct {
    float top, left, scale_y, scale_x, limit_y, limit_x, offset_y, offset_x;
    float brightness, contrast, saturation, hue;
    int order, jitter, gray, flip, source;
} params;

static params load_params(__global const float *r) {
    params p;
    p.top = r[0];
    p.left = r[1];
    p.scale_y = r[2];
    p.scale_x = r[3];
    p.limit_y = r[4];
    p.limit_x = r[5];
    p.offset_y = r[6];
    p.offset_x = r[7];
    p.flip = r[8] != 0.0f;
    p.jitter = r[9] != 0.0f;
    p.brightness = r[10];
    p.contrast = r[11];
    p.saturation = r[12];
    p.hue = r[13];
    p.order = (int)r[14];
    p.gray = r[15] != 0.0f;
    p.source = (int)r[17];
    return p;
}

/* Bilinear sample of one plane at output pixel (oy, ox), PyTorch's align_corners=False
 * convention inside the crop: coordinates are clamped to [0, limit], then shifted by the
 * crop's origin. */
static float sample(__global const uchar *plane, int w, const params *r, int oy, int ox) {
    float sy = ((float)oy + r->offset_y + 0.5f) * r->scale_y - 0.5f;
    float sx = ((float)ox + r->offset_x + 0.5f) * r->scale_x - 0.5f;
    sy = clamp(sy, 0.0f, r->limit_y);
    sx = clamp(sx, 0.0f, r->limit_x);
    int y0 = (int)sy, x0 = (int)sx;
    int dy = y0 < (int)r->limit_y ? 1 : 0, dx = x0 < (int)r->limit_x ? 1 : 0;
    float ly = sy - (float)y0, lx = sx - (float)x0;
    __global const uchar *p = plane + ((int)r->top + y0) * w + (int)r->left + x0;
    float top = (1.0f - lx) * (float)p[0] + lx * (float)p[dx];
    float bottom = (1.0f - lx) * (float)p[dy * w] + lx * (float)p[dy * w + dx];
    return (1.0f - ly) * top + ly * bottom;
}

static float grey(float3 c) {
    return 0.2989f * c.x + 0.587f * c.y + 0.114f * c.z;
}

static float3 blend(float3 a, float3 b, float ratio) {
    return clamp(ratio * a + (1.0f - ratio) * b, 0.0f, 255.0f);
}

/* torchvision's hue shift: RGB -> HSV, h += shift (mod 1), HSV -> RGB. */
static float3 shift_hue(float3 c, float shift) {
    float maxc = fmax(c.x, fmax(c.y, c.z)), minc = fmin(c.x, fmin(c.y, c.z));
    float cr = maxc - minc;
    int flat = maxc == minc;
    float s = cr / (flat ? 1.0f : maxc);
    float inv = 1.0f / (flat ? 1.0f : cr);
    float rc = (maxc - c.x) * inv, gc = (maxc - c.y) * inv, bc = (maxc - c.z) * inv;
    float h;
    if (maxc == c.x)
        h = bc - gc;
    else if (maxc == c.y)
        h = 2.0f + rc - bc;
    else
        h = 4.0f + gc - rc;
    h = h / 6.0f + 1.0f; /* in [5/6, 2): h - floor(h) is fmod(h, 1), exactly */
    h = h - floor(h);
    h = h + shift;
    h = h - floor(h);

    float v = maxc;
    float i = floor(h * 6.0f);
    float f = h * 6.0f - i;
    int sector = ((int)i) % 6;
    float p = clamp(v * (1.0f - s), 0.0f, 255.0f);
    float q = clamp(v * (1.0f - s * f), 0.0f, 255.0f);
    float t = clamp(v * (1.0f - s * (1.0f - f)), 0.0f, 255.0f);
    switch (sector) {
        case 0:
            return (float3)(v, t, p);
        case 1:
            return (float3)(q, v, p);
        case 2:
            return (float3)(p, v, t);
        case 3:
            return (float3)(p, q, v);
        case 4:
            return (float3)(t, p, v);
        default:
            return (float3)(v, p, q);
    }
}

/* Runs the first `steps` jitter steps of the record's order on c; `mean` is the grey mean
 * the contrast step blends with. */
static float3 jitter(float3 c, const params *r, int steps, float mean) {
    for (int k = 0; k < steps; k++) {
        int step = (r->order >> (2 * k)) & 3;
        if (step == STEP_BRIGHTNESS)
            c = clamp(r->brightness * c, 0.0f, 255.0f);
        else if (step == STEP_CONTRAST)
            c = blend(c, (float3)(mean), r->contrast);
        else if (step == STEP_SATURATION)
            c = blend(c, (float3)(grey(c)), r->saturation);
        else
            c = shift_hue(c, r->hue);
    }
    return c;
}

/* The same steps on a one-channel value: brightness and contrast only, since ColorJitter's
 * saturation and hue leave a one-channel image as it is. */
static float jitter_grey(float v, const params *r, int steps, float mean) {
    for (int k = 0; k < steps; k++) {
        int step = (r->order >> (2 * k)) & 3;
        if (step == STEP_BRIGHTNESS)
            v = clamp(r->brightness * v, 0.0f, 255.0f);
        else if (step == STEP_CONTRAST)
            v = clamp(r->contrast * v + (1.0f - r->contrast) * mean, 0.0f, 255.0f);
    }
    return v;
}

static float3 sample_rgb(__global const uchar *img, int plane, int w, const params *r, int oy,
                         int ox) {
    return (float3)(sample(img, w, r, oy, ox), sample(img + plane, w, r, oy, ox),
                    sample(img + 2 * plane, w, r, oy, ox));
}

/* Where the contrast step stands in the record's order (4 when there is none to do). */
static int contrast_position(const params *r) {
    if (!r->jitter || r->contrast == 1.0f)
        return 4;
    for (int k = 0; k < 4; k++)
        if (((r->order >> (2 * k)) & 3) == STEP_CONTRAST)
            return k;
    return 4;
}

/* in (N, C, H, W) uint8; rec (M, AUG_REC); out (M, C, OH, OW) float, out = v * scale + bias
 * per channel. C is 1 or 3; a single-channel image has no grayscale step and only the
 * brightness and contrast steps of the jitter. Local memory: one float per work-item; the
 * local size must be a power of two. */
__kernel void augment(__global const uchar *in, const int n, const int channels, const int h,
                      const int w, __global const float *rec, const int count, const int oh,
                      const int ow, const float scale0, const float scale1, const float scale2,
                      const float bias0, const float bias1, const float bias2, __global float *out,
                      __local float *partial) {
    int m = get_group_id(0);
    int lid = get_local_id(0), lsize = get_local_size(0);
    if (m >= count)
        return;
    params p = load_params(rec + (size_t)m * AUG_REC);
    const params *r = &p;
    int plane = h * w, pixels = oh * ow;
    __global const uchar *img = in + (size_t)p.source * channels * plane;
    __global float *dst = out + (size_t)m * channels * pixels;
    int flip = p.flip, grey_only = channels == 1;

    /* The image's mean just before the contrast step, when there is one: of the grey values,
     * or of the values themselves for one channel (torchvision's adjust_contrast). */
    int before = contrast_position(r);
    float mean = 0.0f;
    if (before < 4) {
        float sum = 0.0f;
        for (int q = lid; q < pixels; q += lsize) {
            int oy = q / ow, ox = (q % ow);
            ox = flip ? ow - 1 - ox : ox;
            sum += grey_only ? jitter_grey(sample(img, w, r, oy, ox), r, before, 0.0f)
                             : grey(jitter(sample_rgb(img, plane, w, r, oy, ox), r, before, 0.0f));
        }
        partial[lid] = sum;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int s = lsize / 2; s > 0; s /= 2) {
            if (lid < s)
                partial[lid] += partial[lid + s];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        mean = partial[0] / (float)pixels;
    }

    /* The whole pipeline. */
    int steps = p.jitter ? 4 : 0;
    for (int q = lid; q < pixels; q += lsize) {
        int oy = q / ow, ox = q % ow;
        ox = flip ? ow - 1 - ox : ox;
        if (grey_only) {
            dst[q] = jitter_grey(sample(img, w, r, oy, ox), r, steps, mean) * scale0 + bias0;
            continue;
        }
        float3 c = jitter(sample_rgb(img, plane, w, r, oy, ox), r, steps, mean);
        if (p.gray)
            c = (float3)(grey(c));
        dst[q] = c.x * scale0 + bias0;
        dst[pixels + q] = c.y * scale1 + bias1;
        dst[2 * pixels + q] = c.z * scale2 + bias2;
    }
}
