/* Device tensors and the buffer pool. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "clcl/tensor.h"

/* Work-items per group for the element-wise kernels, at most (the kernel's and the
 * device's limits may be lower). */
#define ELEMENTWISE_GROUP 64

size_t clcl_shape_count(int ndim, const int *shape) {
    size_t count = 1;
    if (ndim < 1 || ndim > CLCL_MAX_DIMS)
        return 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0)
            return 0;
        count *= (size_t)shape[i];
    }
    return count;
}

const char *clcl_shape_string(int ndim, const int *shape, char *buf, size_t size) {
    size_t used = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, i ? ", %d" : "%d", shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, ")");
    return buf;
}

clcl_status clcl_buffer_create(clcl_context *ctx, size_t bytes, const char *what, cl_mem *out) {
    const clcl_device_info *dev = clcl_context_device(ctx);
    cl_int err;

    if (bytes == 0)
        return clcl_fail(CLCL_ERR_ARGUMENT, "%s: a buffer of 0 bytes", what);
    if (bytes > dev->max_alloc)
        return clcl_fail(CLCL_ERR_TOO_LARGE,
                         "%s needs %zu bytes (%.1f MiB), more than the %llu bytes '%s' allows "
                         "in one buffer (CL_DEVICE_MAX_MEM_ALLOC_SIZE); use a smaller batch",
                         what, bytes, bytes / 1048576.0, (unsigned long long)dev->max_alloc,
                         dev->name);
    *out = clCreateBuffer(clcl_context_cl(ctx), CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS)
        return clcl_fail(err, "%s:%d: clCreateBuffer(%s, %zu bytes): %s", __FILE__, __LINE__, what,
                         bytes, clcl_status_name(err));
    return CLCL_OK;
}

clcl_status clcl_tensor_create(clcl_context *ctx, clcl_tensor *t, int ndim, const int *shape) {
    char text[96];

    memset(t, 0, sizeof *t);
    size_t count = clcl_shape_count(ndim, shape);
    if (count == 0)
        return clcl_fail(CLCL_ERR_SHAPE, "tensor shape %s: expected 1 to %d positive dimensions",
                         clcl_shape_string(ndim > 0 && ndim <= CLCL_MAX_DIMS ? ndim : 0, shape,
                                           text, sizeof text),
                         CLCL_MAX_DIMS);
    snprintf(text, sizeof text, "tensor ");
    clcl_shape_string(ndim, shape, text + 7, sizeof text - 7);
    CLCL_TRY(clcl_buffer_create(ctx, count * sizeof(float), text, &t->buf));
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->count = count;
    return CLCL_OK;
}

void clcl_tensor_free(clcl_tensor *t) {
    if (t->buf)
        clReleaseMemObject(t->buf);
    memset(t, 0, sizeof *t);
}

size_t clcl_tensor_bytes(const clcl_tensor *t) {
    return t->count * sizeof(float);
}

clcl_status clcl_tensor_write(clcl_context *ctx, clcl_tensor *t, const float *host) {
    CLCL_TRY_CL(clEnqueueWriteBuffer(clcl_context_queue(ctx), t->buf, CL_TRUE, 0,
                                     clcl_tensor_bytes(t), host, 0, NULL, NULL));
    return CLCL_OK;
}

clcl_status clcl_tensor_read(clcl_context *ctx, const clcl_tensor *t, float *host) {
    CLCL_TRY_CL(clEnqueueReadBuffer(clcl_context_queue(ctx), t->buf, CL_TRUE, 0,
                                    clcl_tensor_bytes(t), host, 0, NULL, NULL));
    return CLCL_OK;
}

static clcl_status launch_flat(clcl_context *ctx, cl_kernel k, size_t n) {
    size_t local;
    CLCL_TRY(clcl_kernel_max_work_group(ctx, k, &local));
    if (local > ELEMENTWISE_GROUP)
        local = ELEMENTWISE_GROUP;
    return clcl_launch(ctx, k, 1, &n, &local);
}

clcl_status clcl_tensor_fill(clcl_context *ctx, clcl_tensor *t, float value) {
    cl_kernel k;
    CLCL_TRY(clcl_context_kernel(ctx, "elementwise", "fill", NULL, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(t->buf), CLCL_ARG_INT((int)t->count),
                              CLCL_ARG_FLOAT(value)));
    return launch_flat(ctx, k, t->count);
}

clcl_status clcl_tensor_axpy(clcl_context *ctx, float alpha, const clcl_tensor *x, clcl_tensor *y) {
    char a[96], b[96];
    cl_kernel k;
    if (x->count != y->count)
        return clcl_fail(CLCL_ERR_SHAPE, "axpy: x %s and y %s hold different numbers of elements",
                         clcl_shape_string(x->ndim, x->shape, a, sizeof a),
                         clcl_shape_string(y->ndim, y->shape, b, sizeof b));
    CLCL_TRY(clcl_context_kernel(ctx, "elementwise", "axpy", NULL, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(y->buf), CLCL_ARG_MEM(x->buf),
                              CLCL_ARG_INT((int)y->count), CLCL_ARG_FLOAT(alpha)));
    return launch_flat(ctx, k, y->count);
}

clcl_status clcl_tensor_scale(clcl_context *ctx, float alpha, clcl_tensor *y) {
    cl_kernel k;
    CLCL_TRY(clcl_context_kernel(ctx, "elementwise", "scale", NULL, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(y->buf), CLCL_ARG_INT((int)y->count),
                              CLCL_ARG_FLOAT(alpha)));
    return launch_flat(ctx, k, y->count);
}

/* ---- pool -------------------------------------------------------------------------- */

typedef struct {
    cl_mem buf;
    size_t bytes;
    int in_use;
} pool_entry;

struct clcl_pool {
    clcl_context *ctx;
    pool_entry *entries;
    size_t n, cap;
    size_t bytes;
};

clcl_status clcl_pool_create(clcl_context *ctx, clcl_pool **pool) {
    *pool = calloc(1, sizeof **pool);
    if (!*pool)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory creating a pool");
    (*pool)->ctx = ctx;
    return CLCL_OK;
}

void clcl_pool_free(clcl_pool *pool) {
    if (!pool)
        return;
    for (size_t i = 0; i < pool->n; i++)
        clReleaseMemObject(pool->entries[i].buf);
    free(pool->entries);
    free(pool);
}

clcl_status clcl_pool_tensor(clcl_pool *pool, clcl_tensor *t, int ndim, const int *shape) {
    char text[96];
    size_t count = clcl_shape_count(ndim, shape);

    memset(t, 0, sizeof *t);
    if (count == 0)
        return clcl_fail(CLCL_ERR_SHAPE,
                         "pool tensor: shape with %d dimensions is empty or "
                         "has a non-positive dimension",
                         ndim);
    size_t bytes = count * sizeof(float);
    pool_entry *e = NULL;
    for (size_t i = 0; i < pool->n && !e; i++)
        if (!pool->entries[i].in_use && pool->entries[i].bytes == bytes)
            e = &pool->entries[i];
    if (!e) {
        if (pool->n == pool->cap) {
            size_t cap = pool->cap ? 2 * pool->cap : 64;
            pool_entry *grown = realloc(pool->entries, cap * sizeof *grown);
            if (!grown)
                return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory growing a pool");
            pool->entries = grown;
            pool->cap = cap;
        }
        snprintf(text, sizeof text, "pool tensor ");
        clcl_shape_string(ndim, shape, text + 12, sizeof text - 12);
        cl_mem buf;
        CLCL_TRY(clcl_buffer_create(pool->ctx, bytes, text, &buf));
        e = &pool->entries[pool->n++];
        *e = (pool_entry){buf, bytes, 0};
        pool->bytes += bytes;
    }
    e->in_use = 1;
    t->buf = e->buf;
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->count = count;
    return CLCL_OK;
}

void clcl_pool_release(clcl_pool *pool, clcl_tensor *t) {
    for (size_t i = 0; i < pool->n; i++)
        if (pool->entries[i].buf == t->buf)
            pool->entries[i].in_use = 0;
    memset(t, 0, sizeof *t);
}

void clcl_pool_reset(clcl_pool *pool) {
    for (size_t i = 0; i < pool->n; i++)
        pool->entries[i].in_use = 0;
}

size_t clcl_pool_allocations(const clcl_pool *pool) {
    return pool->n;
}

size_t clcl_pool_bytes(const clcl_pool *pool) {
    return pool->bytes;
}
