/* Element-wise and pooling layers, forward and backward. One work-item per output element;
 * every output is written (=) exactly once, sums run in a fixed order. */

#ifndef CLCL_BREAK
#define CLCL_BREAK 0 /* 1: relu_forward is wrong on purpose (`clcl check`'s self-test only) */
#endif

/* y = max(x, 0) */
__kernel void relu_forward(__global const float *x, __global float *y, const int n) {
    const int i = get_global_id(0);
    if (i < n)
        y[i] = CLCL_BREAK ? 1.25f * fmax(x[i], 0.0f) : fmax(x[i], 0.0f);
}

/* dx = dy where the forward's output y > 0, else 0 */
__kernel void relu_backward(__global const float *y, __global const float *dy, __global float *dx,
                            const int n) {
    const int i = get_global_id(0);
    if (i < n)
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

/* y = a + b */
__kernel void add_forward(__global const float *a, __global const float *b, __global float *y,
                          const int n) {
    const int i = get_global_id(0);
    if (i < n)
        y[i] = a[i] + b[i];
}

/* The first maximum, in row-major window order, of the window of output (p, q) over the
 * plane `x` (H, W); returns its index h * W + w, or -1 when the window holds no pixel. */
static int window_argmax(__global const float *x, const int H, const int W, const int p,
                         const int q, const int k, const int stride, const int pad) {
    int best_i = -1;
    float best = 0.0f;
    for (int r = 0; r < k; r++) {
        const int h = p * stride - pad + r;
        if (h < 0 || h >= H)
            continue;
        for (int s = 0; s < k; s++) {
            const int w = q * stride - pad + s;
            if (w < 0 || w >= W)
                continue;
            const float v = x[h * W + w];
            if (best_i < 0 || v > best) {
                best = v;
                best_i = h * W + w;
            }
        }
    }
    return best_i;
}

/* y (NC, P, Q) = max over each k x k window of x (NC, H, W). Global size: (Q, P, NC). */
__kernel void maxpool_forward(__global const float *x, __global float *y, const int NC, const int H,
                              const int W, const int P, const int Q, const int k, const int stride,
                              const int pad) {
    const int q = get_global_id(0), p = get_global_id(1), nc = get_global_id(2);
    if (q >= Q || p >= P || nc >= NC)
        return;
    __global const float *plane = x + (size_t)nc * H * W;
    const int i = window_argmax(plane, H, W, p, q, k, stride, pad);
    y[((size_t)nc * P + p) * Q + q] = i >= 0 ? plane[i] : 0.0f;
}

/* dx (NC, H, W): the sum of dy over the windows whose first maximum is this pixel, windows
 * taken in (p, q) order. Global size: (W, H, NC). */
__kernel void maxpool_backward(__global const float *x, __global const float *dy,
                               __global float *dx, const int NC, const int H, const int W,
                               const int P, const int Q, const int k, const int stride,
                               const int pad) {
    const int w = get_global_id(0), h = get_global_id(1), nc = get_global_id(2);
    if (w >= W || h >= H || nc >= NC)
        return;
    __global const float *plane = x + (size_t)nc * H * W;
    __global const float *grad = dy + (size_t)nc * P * Q;

    /* Windows p with p*stride - pad <= h <= p*stride - pad + k - 1, likewise for q. */
    const int p_lo = max(0, (h + pad - k + stride) / stride), p_hi = min(P - 1, (h + pad) / stride);
    const int q_lo = max(0, (w + pad - k + stride) / stride), q_hi = min(Q - 1, (w + pad) / stride);
    float sum = 0.0f;
    for (int p = p_lo; p <= p_hi; p++)
        for (int q = q_lo; q <= q_hi; q++)
            if (window_argmax(plane, H, W, p, q, k, stride, pad) == h * W + w)
                sum += grad[p * Q + q];
    dx[((size_t)nc * H + h) * W + w] = sum;
}

/* y (NC) = mean of each plane of x (NC, L). */
__kernel void avgpool_forward(__global const float *x, __global float *y, const int NC,
                              const int L) {
    const int i = get_global_id(0);
    if (i >= NC)
        return;
    __global const float *plane = x + (size_t)i * L;
    float sum = 0.0f;
    for (int j = 0; j < L; j++)
        sum += plane[j];
    y[i] = sum / (float)L;
}

/* dx (NC, L) = dy (NC) / L, spread over each plane. Global size: (L, NC). */
__kernel void avgpool_backward(__global const float *dy, __global float *dx, const int NC,
                               const int L) {
    const int j = get_global_id(0), i = get_global_id(1);
    if (j < L && i < NC)
        dx[(size_t)i * L + j] = dy[i] / (float)L;
}

/* y (rows, cols) = b (cols) in every row. Global size: (cols, rows). */
__kernel void bias_rows(__global float *y, __global const float *b, const int rows,
                        const int cols) {
    const int j = get_global_id(0), i = get_global_id(1);
    if (j < cols && i < rows)
        y[(size_t)i * cols + j] = b[j];
}

/* sums (cols) = column sums of a (rows, cols), rows in order. */
__kernel void column_sums(__global const float *a, __global float *sums, const int rows,
                          const int cols) {
    const int j = get_global_id(0);
    if (j >= cols)
        return;
    float sum = 0.0f;
    for (int i = 0; i < rows; i++)
        sum += a[(size_t)i * cols + j];
    sums[j] = sum;
}
