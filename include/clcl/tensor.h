/* Device tensors and the buffer pool.
 *
 * A clcl_tensor is a float32 device buffer with a shape of up to four dimensions, NCHW
 * for images, (rows, cols) for matrices. Its size is checked against the device's
 * CL_DEVICE_MAX_MEM_ALLOC_SIZE before anything is allocated. Tensors are plain structs
 * the caller owns; clcl_tensor_free() releases the buffer and zeroes the struct. */
#ifndef CLCL_TENSOR_H
#define CLCL_TENSOR_H

#include <stddef.h>

#include "clcl/runtime.h"

#define CLCL_MAX_DIMS 4

typedef struct {
    cl_mem buf;
    int ndim;
    int shape[CLCL_MAX_DIMS];
    size_t count; /* number of elements */
} clcl_tensor;

/* A device buffer of `bytes` bytes; `what` names it in the error when it is too large. */
clcl_status clcl_buffer_create(clcl_context *ctx, size_t bytes, const char *what, cl_mem *out);

/* Element count of a shape; 0 when a dimension is not positive or ndim is out of range. */
size_t clcl_shape_count(int ndim, const int *shape);

clcl_status clcl_tensor_create(clcl_context *ctx, clcl_tensor *t, int ndim, const int *shape);
void clcl_tensor_free(clcl_tensor *t);
size_t clcl_tensor_bytes(const clcl_tensor *t);

/* Blocking copies of the whole tensor from and to host memory of t->count floats. */
clcl_status clcl_tensor_write(clcl_context *ctx, clcl_tensor *t, const float *host);
clcl_status clcl_tensor_read(clcl_context *ctx, const clcl_tensor *t, float *host);

/* t = value, on the device. */
clcl_status clcl_tensor_fill(clcl_context *ctx, clcl_tensor *t, float value);
/* y = y + alpha * x, on the device; shapes must hold the same number of elements. */
clcl_status clcl_tensor_axpy(clcl_context *ctx, float alpha, const clcl_tensor *x, clcl_tensor *y);
/* y = alpha * y. */
clcl_status clcl_tensor_scale(clcl_context *ctx, float alpha, clcl_tensor *y);

/* "(2, 3, 7, 7)" into buf; returns buf. */
const char *clcl_shape_string(int ndim, const int *shape, char *buf, size_t size);

/* ---- the pool: training steps that allocate nothing ----------------------------------
 * A pool keeps every buffer it has handed out. clcl_pool_tensor() reuses a free buffer of
 * the same byte size when one exists and allocates only otherwise; clcl_pool_reset() marks
 * every buffer free again (call it at the end of a step). A step that asks for the same
 * shapes in the same order as the one before allocates nothing. */
typedef struct clcl_pool clcl_pool;

clcl_status clcl_pool_create(clcl_context *ctx, clcl_pool **pool);
void clcl_pool_free(clcl_pool *pool);
clcl_status clcl_pool_tensor(clcl_pool *pool, clcl_tensor *t, int ndim, const int *shape);
/* Gives one tensor's buffer back before the step ends; t is zeroed. */
void clcl_pool_release(clcl_pool *pool, clcl_tensor *t);
void clcl_pool_reset(clcl_pool *pool);
/* Device allocations the pool has made so far, and the bytes they hold. */
size_t clcl_pool_allocations(const clcl_pool *pool);
size_t clcl_pool_bytes(const clcl_pool *pool);

#endif
