/* Evaluation kernels: the weighted kNN monitor and the linear probe. One work-item per row
 * everywhere: rows are independent and these run once per evaluation, not per step. */

/* x (rows, cols): each row divided by its L2 norm (rows of zeros stay zero). */
__kernel void l2_normalize_rows(__global float *x, const int rows, const int cols) {
    int r = get_global_id(0);
    if (r >= rows)
        return;
    __global float *row = x + (size_t)r * cols;
    float ss = 0.0f;
    for (int c = 0; c < cols; c++)
        ss += row[c] * row[c];
    float inv = ss > 0.0f ? rsqrt(ss) : 0.0f;
    for (int c = 0; c < cols; c++)
        row[c] *= inv;
}

/* Sift the smallest of heap[0..k) to the root (a min-heap of similarities). */
static void heap_sift_down(__global float *val, __global int *idx, int k, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && val[l] < val[m])
            m = l;
        if (r < k && val[r] < val[m])
            m = r;
        if (m == i)
            return;
        float tv = val[i];
        val[i] = val[m];
        val[m] = tv;
        int ti = idx[i];
        idx[i] = idx[m];
        idx[m] = ti;
        i = m;
    }
}

/* For each query q of sim (queries, bank), query q0 + q of the whole set: the k most
 * similar bank rows vote for their class with weight exp(s / temperature), computed as
 * exp((s - 1) / temperature), the same ranking without overflow. correct1/correct5[q0 + q]
 * say whether the query's label is the top class / among the top five. heap_val,
 * heap_idx: (queries, k) scratch; scores: (queries, classes) scratch. */
__kernel void knn_vote(__global const float *sim, const int q0, const int queries, const int bank,
                       __global const int *bank_labels, __global const int *query_labels,
                       const int k, const float inv_temperature, const int classes,
                       __global float *heap_val, __global int *heap_idx, __global float *scores,
                       __global int *correct1, __global int *correct5) {
    int q = get_global_id(0);
    if (q >= queries)
        return;
    __global const float *row = sim + (size_t)q * bank;
    __global float *hv = heap_val + (size_t)q * k;
    __global int *hi = heap_idx + (size_t)q * k;
    __global float *score = scores + (size_t)q * classes;

    /* a min-heap of the k largest similarities */
    for (int j = 0; j < k; j++) {
        hv[j] = -INFINITY;
        hi[j] = -1;
    }
    for (int j = 0; j < bank; j++) {
        if (row[j] > hv[0]) {
            hv[0] = row[j];
            hi[0] = j;
            heap_sift_down(hv, hi, k, 0);
        }
    }

    /* weighted votes */
    for (int c = 0; c < classes; c++)
        score[c] = 0.0f;
    for (int j = 0; j < k; j++)
        if (hi[j] >= 0)
            score[bank_labels[hi[j]]] += exp((hv[j] - 1.0f) * inv_temperature);

    /* rank of the true class: how many other classes score as high or higher (a tie
     * counts against it, so a class that got no vote is never among the top five) */
    int label = query_labels[q0 + q], rank = 0;
    for (int c = 0; c < classes; c++)
        rank += c != label && score[c] >= score[label];
    correct1[q0 + q] = rank == 0;
    correct5[q0 + q] = rank < 5;
}

/* Per column of x (rows, cols): mean and 1 / std (population std, floored at 1e-6). */
__kernel void column_stats(__global const float *x, const int rows, const int cols,
                           __global float *mean, __global float *inv_std) {
    int c = get_global_id(0);
    if (c >= cols)
        return;
    float m = 0.0f;
    for (int r = 0; r < rows; r++)
        m += x[(size_t)r * cols + c];
    m /= rows;
    float v = 0.0f;
    for (int r = 0; r < rows; r++) {
        float d = x[(size_t)r * cols + c] - m;
        v += d * d;
    }
    mean[c] = m;
    inv_std[c] = 1.0f / fmax(sqrt(v / rows), 1e-6f);
}

/* out (n, cols) = (x[index[offset + i]] - mean) * inv_std: a standardized mini-batch. */
__kernel void gather_standardize(__global const float *x, __global const int *index,
                                 const int offset, const int n, const int cols,
                                 __global const float *mean, __global const float *inv_std,
                                 __global float *out) {
    int i = get_global_id(0);
    if (i >= n * cols)
        return;
    int r = i / cols, c = i % cols;
    int src = index[offset + r];
    out[i] = (x[(size_t)src * cols + c] - mean[c]) * inv_std[c];
}

/* logits (n, classes) += bias; then grad = (softmax - onehot(label)) / n, and
 * loss[r] = -log softmax[label]. */
__kernel void softmax_xent(__global float *logits, __global const float *bias,
                           __global const int *labels, const int offset, const int n,
                           const int classes, __global float *grad, __global float *loss) {
    int r = get_global_id(0);
    if (r >= n)
        return;
    __global float *z = logits + (size_t)r * classes;
    __global float *g = grad + (size_t)r * classes;
    float zmax = -INFINITY;
    for (int c = 0; c < classes; c++) {
        z[c] += bias[c];
        zmax = fmax(zmax, z[c]);
    }
    float sum = 0.0f;
    for (int c = 0; c < classes; c++)
        sum += exp(z[c] - zmax);
    int label = labels[offset + r];
    for (int c = 0; c < classes; c++)
        g[c] = (exp(z[c] - zmax) / sum - (c == label)) / n;
    loss[r] = log(sum) + zmax - z[label];
}

/* out (cols) = sum over rows of g (rows, cols), in row order (deterministic). */
__kernel void column_sum(__global const float *g, const int rows, const int cols,
                         __global float *out) {
    int c = get_global_id(0);
    if (c >= cols)
        return;
    float s = 0.0f;
    for (int r = 0; r < rows; r++)
        s += g[(size_t)r * cols + c];
    out[c] = s;
}

/* SGD with momentum and weight decay: v = m v + g + wd w; w -= lr v. */
__kernel void sgd_momentum(__global float *w, __global const float *g, __global float *v,
                           const int n, const float lr, const float momentum, const float wd) {
    int i = get_global_id(0);
    if (i >= n)
        return;
    float vi = momentum * v[i] + g[i] + wd * w[i];
    v[i] = vi;
    w[i] -= lr * vi;
}

/* For logits (n, classes) + bias: whether label is the top class / in the top five. */
__kernel void logits_rank(__global const float *logits, __global const float *bias,
                          __global const int *labels, const int offset, const int n,
                          const int classes, __global int *correct1, __global int *correct5) {
    int r = get_global_id(0);
    if (r >= n)
        return;
    __global const float *z = logits + (size_t)r * classes;
    int label = labels[offset + r], rank = 0;
    float zl = z[label] + bias[label];
    for (int c = 0; c < classes; c++)
        rank += c != label && z[c] + bias[c] >= zl;
    correct1[offset + r] = rank == 0;
    correct5[offset + r] = rank < 5;
}
