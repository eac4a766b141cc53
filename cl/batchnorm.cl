/* Batch normalization over x (N, C, L): L = H*W for images, 1 for (N, C) features.
 *
 * Training kernels run one work-group per channel. Each work-item sums a fixed share of
 * the channel's N*L values, runs of BN_RUN consecutive ones; the shares meet in a tree in
 * local memory. The order of every sum is fixed by the work-group size and BN_RUN alone,
 * so a run repeats bit for bit. The work-group size must be a power of two; `sums` holds
 * one float per work-item (two for the backward). */

#ifndef BN_RUN
#define BN_RUN                                                                                     \
    1 /* consecutive values per work-item and turn: 1 interleaves (GPUs), 64 suits CPUs */
#endif

/* The sum of v over the work-group, given to every work-item. */
static float group_sum(float v, __local float *sums) {
    const int lid = get_local_id(0), size = get_local_size(0);
    sums[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int span = size / 2; span > 0; span /= 2) {
        if (lid < span)
            sums[lid] += sums[lid + span];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float total = sums[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}

/* The same for two values at once; sums holds 2 * size floats. */
static float2 group_sum2(float2 v, __local float *sums) {
    const int lid = get_local_id(0), size = get_local_size(0);
    sums[lid] = v.x;
    sums[size + lid] = v.y;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int span = size / 2; span > 0; span /= 2) {
        if (lid < span) {
            sums[lid] += sums[lid + span];
            sums[size + lid] += sums[size + lid + span];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const float2 total = (float2)(sums[0], sums[size]);
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}

/* Compensated (Kahan) summation: s += v with the lost low part carried in e, all of type T;
 * the variance's sum uses it (a channel of nearly equal values is otherwise decided by its
 * rounding, see docs/layers.md). */
#define KAHAN_ADD(T, s, e, v)                                                                      \
    do {                                                                                           \
        const T y_ = (v) - (e), t_ = (s) + y_;                                                     \
        (e) = (t_ - (s)) - y_;                                                                     \
        (s) = t_;                                                                                  \
    } while (0)

/* A work-item's share of channel c: the units u = lid, lid + size, ... of the channel's
 * N * segs units, unit u being segment u % segs (BN_RUN consecutive values, fewer at the
 * plane's end) of image u / segs's plane of L values. FOR_UNITS runs (first, count) over
 * the share's units, first being an index in x (N, C, L). */
#define FOR_UNITS(first, count)                                                                    \
    for (int u_ = lid, segs_ = (L + BN_RUN - 1) / BN_RUN, first, count; u_ < N * segs_;            \
         u_ += size)                                                                               \
        if (first = ((u_ / segs_) * C + c) * L + (u_ % segs_) * BN_RUN,                            \
            count = min(BN_RUN, L - (u_ % segs_) * BN_RUN), 1)

/* Batch statistics (mean, then the biased variance around it: two passes), y, the saved
 * mean and 1/sqrt(var + eps), and the running statistics with the unbiased variance.
 * Global size: C work-groups. */
__kernel void bn_forward_train(__global const float *x, __global const float *gamma,
                               __global const float *beta, __global float *running_mean,
                               __global float *running_var, __global float *y,
                               __global float *save_mean, __global float *save_invstd, const int N,
                               const int C, const int L, const float momentum, const float eps,
                               __local float *sums) {
    const int c = get_group_id(0), lid = get_local_id(0), size = get_local_size(0);
    const int M = N * L;

    /* the mean of x - x0, x0 the channel's first value, plus x0: a constant channel gets
     * its value back exactly (so x - mean is exactly 0 below), others lose less to
     * cancellation */
    const float x0 = x[c * L];
    float part = 0.0f;
    FOR_UNITS(first, count) {
        for (int i = first; i < first + count; i++)
            part += x[i] - x0;
    }
    const float mean = x0 + group_sum(part, sums) / (float)M;

    part = 0.0f;
    float err = 0.0f;
    FOR_UNITS(first, count) {
        for (int i = first; i < first + count; i++) {
            const float d = x[i] - mean;
            KAHAN_ADD(float, part, err, d *d);
        }
    }
    const float var = group_sum(part, sums) / (float)M;
    const float invstd = 1.0f / sqrt(var + eps);

    const float scale = gamma[c] * invstd, shift = beta[c] - mean * scale;
    FOR_UNITS(first, count) {
        for (int i = first; i < first + count; i++)
            y[i] = x[i] * scale + shift;
    }
    if (lid == 0) {
        save_mean[c] = mean;
        save_invstd[c] = invstd;
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
        running_var[c] =
            (1.0f - momentum) * running_var[c] + momentum * var * ((float)M / (float)(M - 1));
    }
}

/* y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta, one work-item per
 * element of x (N*C*L). */
__kernel void bn_forward_eval(__global const float *x, __global const float *gamma,
                              __global const float *beta, __global const float *running_mean,
                              __global const float *running_var, __global float *y, const int total,
                              const int C, const int L, const float eps) {
    const int i = get_global_id(0);
    if (i >= total)
        return;
    const int c = (i / L) % C;
    const float scale = gamma[c] / sqrt(running_var[c] + eps);
    y[i] = (x[i] - running_mean[c]) * scale + beta[c];
}

/* dbeta = sum dy, dgamma = sum dy * xhat, and
 * dx = gamma * invstd * (dy - dbeta / M - xhat * dgamma / M), xhat = (x - mean) * invstd.
 * Global size: C work-groups; sums holds 2 floats per work-item. */
__kernel void bn_backward(__global const float *x, __global const float *dy,
                          __global const float *gamma, __global const float *save_mean,
                          __global const float *save_invstd, __global float *dx,
                          __global float *dgamma, __global float *dbeta, const int N, const int C,
                          const int L, __local float *sums) {
    const int c = get_group_id(0), lid = get_local_id(0), size = get_local_size(0);
    const int M = N * L;
    const float mean = save_mean[c], invstd = save_invstd[c];

    float2 part = (float2)(0.0f, 0.0f);
    FOR_UNITS(first, count) {
        for (int i = first; i < first + count; i++)
            part += (float2)(dy[i], dy[i] * (x[i] - mean));
    }
    const float2 total = group_sum2(part, sums);
    const float db = total.x, dg = total.y * invstd;

    const float k = gamma[c] * invstd, mean_dy = db / (float)M, mean_dyx = dg / (float)M;
    FOR_UNITS(first, count) {
        for (int i = first; i < first + count; i++) {
            const float xhat = (x[i] - mean) * invstd;
            dx[i] = k * (dy[i] - mean_dy - xhat * mean_dyx);
        }
    }
    if (lid == 0) {
        dgamma[c] = dg;
        dbeta[c] = db;
    }
}
