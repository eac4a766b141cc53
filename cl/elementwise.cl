/* Element-wise kernels on flat float buffers. One work-item per element. */

__kernel void fill(__global float *y, const int n, const float value) {
    int i = get_global_id(0);
    if (i < n)
        y[i] = value;
}

/* y = y + alpha * x */
__kernel void axpy(__global float *y, __global const float *x, const int n, const float alpha) {
    int i = get_global_id(0);
    if (i < n)
        y[i] += alpha * x[i];
}

/* y = alpha * y */
__kernel void scale(__global float *y, const int n, const float alpha) {
    int i = get_global_id(0);
    if (i < n)
        y[i] *= alpha;
}
