/* Convolution helpers: im2col, col2im and the (n, k) <-> (k, n) permutes that let a chunk of
 * images share one GEMM.
 *
 * A chunk is `nb` consecutive images starting at element `x_off` of the (N, C, H, W) input.
 * Its column matrix is (C*R*S, nb*P*Q), row-major: row (c, r, s), column (n, p, q). Every
 * kernel writes each output element exactly once, with a fixed summation order. */

/* col[(c, r, s), (n, p, q)] = x[n, c, p*stride - pad + r, q*stride - pad + s], 0 outside.
 * Global size: (nb*P*Q, C*R*S). */
__kernel void im2col(__global const float *x, const int x_off, __global float *col, const int nb,
                     const int C, const int H, const int W, const int R, const int S, const int P,
                     const int Q, const int stride, const int pad) {
    const int j = get_global_id(0);   /* column: (n, p, q) */
    const int row = get_global_id(1); /* row: (c, r, s) */
    const int pq = P * Q;
    if (j >= nb * pq || row >= C * R * S)
        return;

    const int n = j / pq, p = (j - n * pq) / Q, q = j - n * pq - p * Q;
    const int c = row / (R * S), r = (row / S) % R, s = row % S;
    const int h = p * stride - pad + r, w = q * stride - pad + s;
    float v = 0.0f;
    if (h >= 0 && h < H && w >= 0 && w < W)
        v = x[x_off + ((n * C + c) * H + h) * W + w];
    col[(size_t)row * (nb * pq) + j] = v;
}

/* The adjoint of im2col: dx[n, c, h, w] = sum of the column entries that read it, summed
 * in (r, s) order. Global size: (W, H, nb*C). */
__kernel void col2im(__global const float *col, __global float *dx, const int dx_off, const int nb,
                     const int C, const int H, const int W, const int R, const int S, const int P,
                     const int Q, const int stride, const int pad) {
    const int w = get_global_id(0), h = get_global_id(1), nc = get_global_id(2);
    if (w >= W || h >= H || nc >= nb * C)
        return;

    const int n = nc / C, c = nc - n * C;
    const int pq = P * Q, cols = nb * pq;
    float sum = 0.0f;
    for (int r = 0; r < R; r++) {
        const int ph = h + pad - r; /* = p * stride */
        if (ph < 0 || ph % stride != 0 || ph / stride >= P)
            continue;
        const int p = ph / stride;
        for (int s = 0; s < S; s++) {
            const int qw = w + pad - s;
            if (qw < 0 || qw % stride != 0 || qw / stride >= Q)
                continue;
            const int q = qw / stride;
            sum += col[(size_t)((c * R + r) * S + s) * cols + n * pq + p * Q + q];
        }
    }
    dx[dx_off + (nc * H + h) * W + w] = sum;
}

/* dst (nb, K, L) at element dst_off = src (K, nb, L) at src_off: a chunk's GEMM result back
 * to image order. Global size: (L, K, nb). */
__kernel void nkl_from_knl(__global const float *src, const int src_off, __global float *dst,
                           const int dst_off, const int nb, const int K, const int L) {
    const int l = get_global_id(0), k = get_global_id(1), n = get_global_id(2);
    if (l >= L || k >= K || n >= nb)
        return;
    dst[dst_off + (n * K + k) * L + l] = src[src_off + (k * nb + n) * L + l];
}

/* dst (K, nb, L) = src (nb, K, L): image order to the layout a chunk's GEMM reads.
 * Global size: (L, K, nb). */
__kernel void knl_from_nkl(__global const float *src, const int src_off, __global float *dst,
                           const int dst_off, const int nb, const int K, const int L) {
    const int l = get_global_id(0), k = get_global_id(1), n = get_global_id(2);
    if (l >= L || k >= K || n >= nb)
        return;
    dst[dst_off + (k * nb + n) * L + l] = src[src_off + (n * K + k) * L + l];
}
