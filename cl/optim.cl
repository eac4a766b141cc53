/* Optimizer updates (one work-item per element) and the norms LARS needs.
 *
 * The norm reduction runs a fixed number of groups chosen by the host for each tensor
 * size; each work-item sums a strided slice, then each group reduces in local memory as a
 * tree. The order of every addition is thus fixed: the same input gives the same bits. */

#ifndef OPTIM_GROUP
#define OPTIM_GROUP 64 /* work-items per group of the norm reduction; a power of two */
#endif

/* torch.optim.SGD: d = g + wd w; b = m b + d; d = nesterov ? d + m b : b; w -= lr d. */
__kernel void sgd_step(__global float *w, __global const float *g, __global float *b, const int n,
                       const float lr, const float momentum, const float wd, const int nesterov,
                       const int has_buffer) {
    int i = get_global_id(0);
    if (i >= n)
        return;
    float wi = w[i];
    float d = g[i] + wd * wi;
    if (has_buffer) {
        float bi = momentum * b[i] + d;
        b[i] = bi;
        d = nesterov ? d + momentum * bi : bi;
    }
    w[i] = wi - lr * d;
}

/* partials[2 k] = sum of w^2 and partials[2 k + 1] = sum of (g + wd w)^2 over group k's
 * slice. */
__kernel void sumsq_partial(__global const float *w, __global const float *g, const int n,
                            const float wd, __global float *partials) {
    __local float lw[OPTIM_GROUP], ld[OPTIM_GROUP];
    int lid = get_local_id(0);
    int group = get_group_id(0);
    int stride = get_num_groups(0) * OPTIM_GROUP;
    float sw = 0.0f, sd = 0.0f;
    for (int i = group * OPTIM_GROUP + lid; i < n; i += stride) {
        float wi = w[i];
        float d = g[i] + wd * wi;
        sw += wi * wi;
        sd += d * d;
    }
    lw[lid] = sw;
    ld[lid] = sd;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = OPTIM_GROUP / 2; s > 0; s >>= 1) {
        if (lid < s) {
            lw[lid] += lw[lid + s];
            ld[lid] += ld[lid + s];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        partials[2 * group] = lw[0];
        partials[2 * group + 1] = ld[0];
    }
}

/* trust[index] = eta ||w|| / ||d||, or 1 when either norm is 0 (one work-item). */
__kernel void lars_trust(__global const float *partials, const int groups, const float eta,
                         __global float *trust, const int index) {
    if (get_global_id(0) != 0)
        return;
    float sw = 0.0f, sd = 0.0f;
    for (int k = 0; k < groups; k++) {
        sw += partials[2 * k];
        sd += partials[2 * k + 1];
    }
    float wn = sqrt(sw), dn = sqrt(sd);
    trust[index] = wn > 0.0f && dn > 0.0f ? eta * wn / dn : 1.0f;
}

/* SimCLR's LARS: s = lr trust[index] (lr when index < 0); d = g + wd w; v = m v + s d;
 * w -= nesterov ? m v + s d : v. */
__kernel void lars_step(__global float *w, __global const float *g, __global float *v, const int n,
                        const float lr, __global const float *trust, const int index,
                        const float momentum, const float wd, const int nesterov,
                        const int has_buffer) {
    int i = get_global_id(0);
    if (i >= n)
        return;
    float s = index >= 0 ? lr * trust[index] : lr;
    float wi = w[i];
    float d = s * (g[i] + wd * wi);
    float update = d;
    if (has_buffer) {
        float vi = momentum * v[i] + d;
        v[i] = vi;
        update = nesterov ? momentum * vi + d : vi;
    }
    w[i] = wi - update;
}
