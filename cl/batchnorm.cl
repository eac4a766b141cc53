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

/* A work-item's walk over its share of channel c's values j = n*L + l (0 <= j < N*L):
 * runs of BN_RUN consecutive values, the work-group's runs interleaved. (n, l) is tracked
 * without a division per value. */
typedef struct {
    int j, end; /* position and the end of the current run */
    int n, l;
} walk;

static walk walk_start(const int lid, const int M, const int L) {
    const int j = lid * BN_RUN;
    walk w = {j, min(j + BN_RUN, M), j / L, j % L};
    return w;
}

static void walk_next(walk *w, const int size, const int M, const int L) {
    if (++w->j < w->end) {
        if (++w->l == L) {
            w->l = 0;
            w->n++;
        }
        return;
    }
    w->j += (size - 1) * BN_RUN; /* the start of this work-item's next run */
    w->end = min(w->j + BN_RUN, M);
    w->n = w->j / L;
    w->l = w->j % L;
}

/* Index in x (N, C, L) of the walk's element of channel c. */
static int walk_index(const walk *w, const int c, const int C, const int L) {
    return (w->n * C + c) * L + w->l;
}

#define FOR_WALK(w) for (walk w = walk_start(lid, M, L); w.j < M; walk_next(&w, size, M, L))

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

    float part = 0.0f;
    FOR_WALK(w)
    part += x[walk_index(&w, c, C, L)];
    const float mean = group_sum(part, sums) / (float)M;

    part = 0.0f;
    FOR_WALK(w) {
        const float d = x[walk_index(&w, c, C, L)] - mean;
        part += d * d;
    }
    const float var = group_sum(part, sums) / (float)M;
    const float invstd = 1.0f / sqrt(var + eps);

    const float scale = gamma[c] * invstd, shift = beta[c] - mean * scale;
    FOR_WALK(w) {
        const int i = walk_index(&w, c, C, L);
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
    FOR_WALK(w) {
        const int i = walk_index(&w, c, C, L);
        part += (float2)(dy[i], dy[i] * (x[i] - mean));
    }
    const float2 total = group_sum2(part, sums);
    const float db = total.x, dg = total.y * invstd;

    const float k = gamma[c] * invstd, mean_dy = db / (float)M, mean_dyx = dg / (float)M;
    FOR_WALK(w) {
        const int i = walk_index(&w, c, C, L);
        const float xhat = (x[i] - mean) * invstd;
        dx[i] = k * (dy[i] - mean_dy - xhat * mean_dyx);
    }
    if (lid == 0) {
        dgamma[c] = dg;
        dbeta[c] = db;
    }
}
