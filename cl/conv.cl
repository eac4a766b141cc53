/* Convolution helpers: im2col, col2im and the (n, k) <-> (k, n) permutes that let a chunk of
 * images share one GEMM.
 *
 * A chunk is `nb` consecutive images starting at element `x_off` of the (N, C, H, W) input.
 * Its column matrix is (C*R*S, nb*P*Q), row-major: row (c, r, s), column (n, p, q). Every
 * kernel writes each output element exactly once, with a fixed summation order. */

#ifndef COL2IM_STRIDE
#define COL2IM_STRIDE 1 /* col2im's stride, fixed at build time: divisions by it are cheap */
#endif

/* col[(c, r, s), (n, p, q)] = x[n, c, p*stride - pad + r, q*stride - pad + s], 0 outside;
 * col's rows are ld floats long. One work-item per output row segment (all q of one p).
 * Global size: (P, nb, C*R*S), so that the divisions are the same for a whole group. */
__kernel void im2col(__global const float *x, const int x_off, __global float *col, const int ld,
                     const int nb, const int C, const int H, const int W, const int R, const int S,
                     const int P, const int Q, const int stride, const int pad) {
    const int p = get_global_id(0), n = get_global_id(1), row = get_global_id(2);
    if (p >= P || n >= nb || row >= C * R * S)
        return;

    const int c = row / (R * S), r = (row / S) % R, s = row % S;
    const int h = p * stride - pad + r;
    __global float *out = col + (size_t)row * ld + (n * P + p) * Q;
    if (h < 0 || h >= H) {
        for (int q = 0; q < Q; q++)
            out[q] = 0.0f;
        return;
    }
    __global const float *in = x + x_off + ((n * C + c) * H + h) * W;
    for (int q = 0; q < Q; q++) {
        const int w = q * stride - pad + s;
        out[q] = w >= 0 && w < W ? in[w] : 0.0f;
    }
}

/* The adjoint of im2col: dx[n, c, h, w] = sum of the column entries that read it, summed
 * in (r, s) order; the stride is COL2IM_STRIDE, col's rows are ld floats long. One
 * work-item per row of dx. Global size: (H, nb*C). */
__kernel void col2im(__global const float *col, const int ld, __global float *dx, const int dx_off,
                     const int nb, const int C, const int H, const int W, const int R, const int S,
                     const int P, const int Q, const int pad) {
    const int h = get_global_id(0), nc = get_global_id(1);
    if (h >= H || nc >= nb * C)
        return;

    const int n = nc / C, c = nc - n * C;
    __global const float *base = col + (size_t)c * R * S * ld + (size_t)n * P * Q;
    __global float *out = dx + dx_off + ((size_t)nc * H + h) * W;
    for (int w = 0; w < W; w++) {
        float sum = 0.0f;
        for (int r = 0; r < R; r++) {
            const int ph = h + pad - r; /* = p * stride */
            if (ph < 0 || ph % COL2IM_STRIDE != 0 || ph / COL2IM_STRIDE >= P)
                continue;
            __global const float *line = base + (size_t)r * S * ld + (ph / COL2IM_STRIDE) * Q;
            for (int s = 0; s < S; s++) {
                const int qw = w + pad - s;
                if (qw >= 0 && qw % COL2IM_STRIDE == 0 && qw / COL2IM_STRIDE < Q)
                    sum += line[(size_t)s * ld + qw / COL2IM_STRIDE];
            }
        }
        out[w] = sum;
    }
}

/* dst (nb, K, L) at element dst_off = src (K, nb*L, rows ld floats long): a chunk's GEMM
 * result back to image order. Global size: (L, K, nb). */
__kernel void nkl_from_knl(__global const float *src, const int ld, __global float *dst,
                           const int dst_off, const int nb, const int K, const int L) {
    const int l = get_global_id(0), k = get_global_id(1), n = get_global_id(2);
    if (l >= L || k >= K || n >= nb)
        return;
    dst[dst_off + (n * K + k) * L + l] = src[(size_t)k * ld + n * L + l];
}

/* dst (K, nb*L, rows ld floats long) = src (nb, K, L) at src_off: image order to the
 * layout a chunk's GEMM reads. Global size: (L, K, nb). */
__kernel void knl_from_nkl(__global const float *src, const int src_off, __global float *dst,
                           const int ld, const int nb, const int K, const int L) {
    const int l = get_global_id(0), k = get_global_id(1), n = get_global_id(2);
    if (l >= L || k >= K || n >= nb)
        return;
    dst[(size_t)k * ld + n * L + l] = src[src_off + (n * K + k) * L + l];
}
