/* Private helpers shared by the layer implementations (conv.c, batchnorm.c, layers.c). */
#ifndef CLCL_LAYERS_INTERNAL_H
#define CLCL_LAYERS_INTERNAL_H

#include "clcl/tensor.h"

/* Launches `kernel` over `dims` dimensions of `global` work-items with a work-group shape
 * derived from the kernel's and the device's limits: powers of two, dimension 0 first,
 * each no larger than its global size needs, the product within the limit. */
clcl_status clcl_layers_launch(clcl_context *ctx, cl_kernel kernel, cl_uint dims,
                               const size_t *global);

/* The largest power of two that is <= limit (limit >= 1). */
size_t clcl_layers_pow2_floor(size_t limit);

/* "x (3, 5, 7, 7)" style text for error messages: name then shape, into buf. */
const char *clcl_layers_describe(const char *name, const clcl_tensor *t, char *buf, size_t size);

/* CLCL_ERR_SHAPE unless t is a tensor with ndim dimensions (a NULL or unset tensor is an
 * error too); `fn` and `name` go into the message. */
clcl_status clcl_layers_expect_ndim(const char *fn, const char *name, const clcl_tensor *t,
                                    int ndim);

/* CLCL_ERR_SHAPE unless t has exactly the shape `shape` of ndim dimensions. */
clcl_status clcl_layers_expect_shape(const char *fn, const char *name, const clcl_tensor *t,
                                     int ndim, const int *shape);

/* The conv2d functions of layers.h with at most `max_images` images per GEMM (0: as many
 * as the column budget allows, which is what layers.h's functions do); tests use them to
 * reach the chunked paths at small sizes. */
clcl_status clcl_conv2d_forward_chunks(clcl_context *ctx, clcl_pool *scratch, const clcl_tensor *x,
                                       const clcl_tensor *w, int stride, int pad, clcl_tensor *y,
                                       int max_images);
clcl_status clcl_conv2d_backward_data_chunks(clcl_context *ctx, clcl_pool *scratch,
                                             const clcl_tensor *dy, const clcl_tensor *w,
                                             int stride, int pad, clcl_tensor *dx, int max_images);
clcl_status clcl_conv2d_backward_weights_chunks(clcl_context *ctx, clcl_pool *scratch,
                                                const clcl_tensor *x, const clcl_tensor *dy,
                                                int stride, int pad, clcl_tensor *dw,
                                                int max_images);

#endif
