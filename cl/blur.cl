/* Gaussian blur of float (M, C, H, W) images, each image with its own weights: a
 * separable direct pair of passes, and the three small kernels around clFFT's transforms.
 *
 * Weights are (M, R + 1) floats from `offset` on: w[0] for the centre tap, w[k] for the taps at
 * +-k, already normalised. A row whose w[0] is 0 marks an image that is not blurred: every kernel
 * leaves it alone. Borders reflect (index -1 reads 1), as torchvision pads. */

#pragma OPENCL FP_CONTRACT OFF

static int reflect(int i, int n) {
    i = i < 0 ? -i : i;
    return i >= n ? 2 * (n - 1) - i : i;
}

/* tmp = x blurred along rows. Work-item (col, row, image * C + channel). */
__kernel void blur_rows(__global const float *x, __global float *tmp, const int count,
                        const int channels, const int h, const int w, __global const float *weights,
                        const int offset, const int radius) {
    int col = get_global_id(0), row = get_global_id(1), p = get_global_id(2);
    if (col >= w || row >= h || p >= count * channels)
        return;
    __global const float *wt = weights + offset + (p / channels) * (radius + 1);
    if (wt[0] == 0.0f)
        return;
    size_t base = ((size_t)p * h + row) * w;
    __global const float *src = x + base;
    float acc = wt[0] * src[col];
    for (int k = 1; k <= radius; k++)
        acc += wt[k] * (src[reflect(col - k, w)] + src[reflect(col + k, w)]);
    tmp[base + col] = acc;
}

/* x = tmp blurred along columns. Work-item (col, row, image * C + channel). */
__kernel void blur_cols(__global const float *tmp, __global float *x, const int count,
                        const int channels, const int h, const int w, __global const float *weights,
                        const int offset, const int radius) {
    int col = get_global_id(0), row = get_global_id(1), p = get_global_id(2);
    if (col >= w || row >= h || p >= count * channels)
        return;
    __global const float *wt = weights + offset + (p / channels) * (radius + 1);
    if (wt[0] == 0.0f)
        return;
    __global const float *src = tmp + (size_t)p * h * w + col;
    float acc = wt[0] * src[row * w];
    for (int k = 1; k <= radius; k++)
        acc += wt[k] * (src[reflect(row - k, h) * w] + src[reflect(row + k, h) * w]);
    x[((size_t)p * h + row) * w + col] = acc;
}

/* padded (M * C, ph, pw) = x reflected by `radius` on every side, zero beyond. */
__kernel void blur_fft_pad(__global const float *x, __global float *padded, const int planes,
                           const int h, const int w, const int ph, const int pw, const int radius) {
    int i = get_global_id(0);
    if (i >= planes * ph * pw)
        return;
    int px = i % pw, py = (i / pw) % ph, p = i / (pw * ph);
    int y = py - radius, x0 = px - radius;
    float v = 0.0f;
    if (y < h + radius && x0 < w + radius)
        v = x[((size_t)p * h + reflect(y, h)) * w + reflect(x0, w)];
    padded[i] = v;
}

/* The transfer function of the symmetric kernel along an axis of length n at frequency f:
 * w0 + 2 sum_k wk cos(2 pi f k / n), the angle reduced exactly in integers. */
static float transfer(__global const float *wt, int radius, int f, int n) {
    float acc = wt[0];
    for (int k = 1; k <= radius; k++)
        acc += 2.0f * wt[k] * cospi(2.0f * (float)((f * k) % n) / (float)n);
    return acc;
}

/* spectrum (M * C, ph, pw / 2 + 1) complex, multiplied by each image's transfer function. */
__kernel void blur_fft_multiply(__global float2 *spectrum, const int channels, const int planes,
                                const int ph, const int pw, __global const float *weights,
                                const int offset, const int radius) {
    int i = get_global_id(0);
    int cw = pw / 2 + 1;
    if (i >= planes * ph * cw)
        return;
    int u = i % cw, v = (i / cw) % ph, p = i / (cw * ph);
    __global const float *wt = weights + offset + (p / channels) * (radius + 1);
    if (wt[0] == 0.0f)
        return;
    spectrum[i] *= transfer(wt, radius, u, pw) * transfer(wt, radius, v, ph);
}

/* x = the centre of padded, for the images that are blurred. */
__kernel void blur_fft_unpad(__global const float *padded, __global float *x, const int count,
                             const int channels, const int h, const int w, const int ph,
                             const int pw, __global const float *weights, const int offset,
                             const int radius) {
    int i = get_global_id(0);
    int plane = h * w;
    if (i >= count * channels * plane)
        return;
    if (weights[offset + (i / (channels * plane)) * (radius + 1)] == 0.0f)
        return;
    int col = i % w, row = (i / w) % h, p = i / plane;
    x[i] = padded[((size_t)p * ph + row + radius) * pw + col + radius];
}
