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

/* ---- direct convolution ----------------------------------------------------------------
 * y[n, k, p, q] = sum over (c, r, s) of w[k, c, r, s] x[n, c, p*stride - pad + r,
 * q*stride - pad + s], 0 outside x, without a column matrix. The weights are first laid out
 * as wt (C*R*S, Kp) by conv_direct_weights, Kp = K rounded up to 8 (zeros beyond K), so a
 * work-item reads the 8 output channels it owns as one float8 and keeps DIRECT_QB outputs
 * of one row in registers. The sum over (c, r, s) runs in that order with fma. Stride 1
 * backward data is the same kernel on dy with the weights flipped and transposed. */

#ifndef DIRECT_QB
#define DIRECT_QB 7 /* consecutive outputs q of one row per work-item (1 to 8) */
#endif
#ifndef DIRECT_S
#define DIRECT_S 3 /* the window's width S, fixed at build time so the loops unroll */
#endif
#ifndef DIRECT_STRIDE
#define DIRECT_STRIDE 1 /* the stride, fixed at build time */
#endif
/* the input columns one work-item's outputs read in a row */
#define DIRECT_SPAN ((DIRECT_QB - 1) * DIRECT_STRIDE + DIRECT_S)

/* wt[(c*R + r)*S + s, k] = w[k, c, r, s] (flip 0), or for backward data, with the roles of
 * K and C exchanged and the window turned round, wt[(k*R + r)*S + s, c] =
 * w[k, c, R-1-r, S-1-s] (flip 1). cols is the padded column count (Kp, or Cp when flipped);
 * entries beyond K (or C) are 0. Global size: (cols, rows). */
__kernel void conv_direct_weights(__global const float *w, __global float *wt, const int K,
                                  const int C, const int R, const int S, const int cols,
                                  const int flip) {
    const int col = get_global_id(0), row = get_global_id(1);
    const int rows = (flip ? K : C) * R * S;
    if (col >= cols || row >= rows)
        return;
    const int a = row / (R * S), r = (row / S) % R, s = row % S;
    float v = 0.0f;
    if (!flip && col < K)
        v = w[((col * C + a) * R + r) * S + s];
    else if (flip && col < C)
        v = w[((a * C + col) * R + (R - 1 - r)) * S + (S - 1 - s)];
    wt[row * cols + col] = v;
}

/* One work-item: image n, output row p, outputs q0 .. q0+DIRECT_QB-1 of it and output
 * channels 8*kb .. 8*kb+7; each input row's DIRECT_SPAN values are loaded once. x and y are
 * (N, C, H, W) and (N, K, P, Q) from element x_off and y_off; S and the stride are the
 * build's DIRECT_S and DIRECT_STRIDE (the arguments must agree). Global size:
 * (ceil(Q / DIRECT_QB), P, N * Kp/8). */
__kernel void conv_direct(__global const float *x, const int x_off, __global const float *wt,
                          __global float *y, const int y_off, const int N, const int C, const int H,
                          const int W, const int K, const int R, const int S, const int P,
                          const int Q, const int stride, const int pad) {
    const int qb = get_global_id(0), p = get_global_id(1), nk = get_global_id(2);
    const int kp = (K + 7) / 8 * 8, blocks = kp / 8;
    const int n = nk / blocks, kb = nk - n * blocks, q0 = qb * DIRECT_QB;
    if (p >= P || n >= N || q0 >= Q)
        return;

    float8 acc[DIRECT_QB];
    for (int i = 0; i < DIRECT_QB; i++)
        acc[i] = (float8)(0.0f);
    __global const float *xn = x + x_off + (size_t)n * C * H * W;
    for (int c = 0; c < C; c++) {
        for (int r = 0; r < R; r++) {
            const int h = p * stride - pad + r;
            if (h < 0 || h >= H)
                continue;
            __global const float *line = xn + (c * H + h) * W;
            __global const float *wrow = wt + ((c * R + r) * DIRECT_S) * kp + kb * 8;
            float span[DIRECT_SPAN];
            for (int j = 0; j < DIRECT_SPAN; j++) {
                const int col = q0 * DIRECT_STRIDE - pad + j;
                const int inside = col >= 0 && col < W;
                const float v = line[inside ? col : 0];
                span[j] = inside ? v : 0.0f;
            }
            for (int s = 0; s < DIRECT_S; s++) {
                const float8 wv = vload8(0, wrow + s * kp);
                for (int i = 0; i < DIRECT_QB; i++)
                    acc[i] = fma((float8)(span[i * DIRECT_STRIDE + s]), wv, acc[i]);
            }
        }
    }

    const int pq = P * Q;
    __global float *out = y + y_off + ((size_t)n * K + kb * 8) * pq + p * Q;
    const int kn = K - kb * 8 < 8 ? K - kb * 8 : 8;
    for (int i = 0; i < DIRECT_QB && q0 + i < Q; i++) {
        const float v[8] = {acc[i].s0, acc[i].s1, acc[i].s2, acc[i].s3,
                            acc[i].s4, acc[i].s5, acc[i].s6, acc[i].s7};
        for (int j = 0; j < kn; j++)
            out[j * pq + q0 + i] = v[j];
    }
}

/* ---- direct backward weights -----------------------------------------------------------
 * dw[k, c, r, s] = sum over (n, p, q) of dy[n, k, p, q] x[n, c, p*stride - pad + r,
 * q*stride - pad + s], without a column matrix, in two steps: conv_direct_dw_part sums
 * over the images of one group for 8 output channels, one input channel and every (r, s)
 * (DIRECT_R * DIRECT_S float8s in registers), reading dy as (N, P, Q, Kp) so that the 8
 * channels of one output are one float8; conv_direct_dw_sum adds the groups in order. */

#ifndef DIRECT_R
#define DIRECT_R 3 /* the window's height R, fixed at build time (R * S at most 9) */
#endif

/* dyt[((n*P + p)*Q + q)*Kp + k] = dy[n, k, p, q], 0 for k >= K. Global size: (Kp, P*Q, N). */
__kernel void conv_dy_channels_last(__global const float *dy, __global float *dyt, const int N,
                                    const int K, const int PQ, const int kp) {
    const int k = get_global_id(0), pq = get_global_id(1), n = get_global_id(2);
    if (k >= kp || pq >= PQ || n >= N)
        return;
    dyt[((size_t)n * PQ + pq) * kp + k] = k < K ? dy[((size_t)n * K + k) * PQ + pq] : 0.0f;
}

/* part[g, k, c, r, s] for images g*per .. min(N, (g+1)*per) - 1, channels 8*kb .. 8*kb+7
 * (k < Kp). The sum runs over (n, p, q) in order with fma. Global size: (Kp/8, C, groups). */
__kernel void conv_direct_dw_part(__global const float *x, __global const float *dyt,
                                  __global float *part, const int N, const int C, const int H,
                                  const int W, const int kp, const int P, const int Q,
                                  const int stride, const int pad, const int per) {
    const int kb = get_global_id(0), c = get_global_id(1), g = get_global_id(2);
    const int n0 = g * per, n1 = min(N, n0 + per);
    if (kb * 8 >= kp || c >= C || n0 >= N)
        return;

    float8 acc[DIRECT_R * DIRECT_S];
    for (int t = 0; t < DIRECT_R * DIRECT_S; t++)
        acc[t] = (float8)(0.0f);
    for (int n = n0; n < n1; n++) {
        __global const float *plane = x + ((size_t)n * C + c) * H * W;
        for (int p = 0; p < P; p++) {
            __global const float *d = dyt + ((size_t)n * P + p) * Q * kp + kb * 8;
            for (int q = 0; q < Q; q++) {
                const float8 dv = vload8(0, d + q * kp);
                for (int r = 0; r < DIRECT_R; r++) {
                    const int h = p * stride - pad + r;
                    const int row_in = h >= 0 && h < H;
                    __global const float *line = plane + (row_in ? h : 0) * W;
                    for (int s = 0; s < DIRECT_S; s++) {
                        const int col = q * stride - pad + s;
                        const int inside = row_in && col >= 0 && col < W;
                        const float v = line[inside ? col : 0];
                        acc[r * DIRECT_S + s] =
                            fma((float8)(inside ? v : 0.0f), dv, acc[r * DIRECT_S + s]);
                    }
                }
            }
        }
    }

    const int taps = DIRECT_R * DIRECT_S;
    __global float *out = part + (((size_t)g * kp + kb * 8) * C + c) * taps;
    for (int t = 0; t < taps; t++) {
        const float v[8] = {acc[t].s0, acc[t].s1, acc[t].s2, acc[t].s3,
                            acc[t].s4, acc[t].s5, acc[t].s6, acc[t].s7};
        for (int j = 0; j < 8; j++)
            out[(size_t)j * C * taps + t] = v[j];
    }
}

/* dw[k, (c, r, s)] = sum over g = 0, 1, ... of part[g, k, (c, r, s)]. Global size:
 * (C*R*S, K). */
__kernel void conv_direct_dw_sum(__global const float *part, __global float *dw, const int K,
                                 const int crs, const int kp, const int groups) {
    const int i = get_global_id(0), k = get_global_id(1);
    if (i >= crs || k >= K)
        return;
    float sum = 0.0f;
    for (int g = 0; g < groups; g++)
        sum += part[((size_t)g * kp + k) * crs + i];
    dw[k * crs + i] = sum;
}
