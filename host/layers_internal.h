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

/* How conv2d runs; layers.h's functions use the defaults (all 0). */
typedef struct {
    int max_images; /* images per GEMM at most; 0: as many as the column budget allows */
    int own_gemm;   /* 1: cl/gemm.cl's kernels (default tunables) instead of clcl_gemm's */
    int algo;       /* one of clcl_conv_algo */
} clcl_conv_options;

/* How conv2d's passes run. CLCL_CONV_AUTO takes the faster of the two on the device
 * (measured once per pass and shape and kept in the tuning file); the direct kernels serve
 * any forward convolution, a stride-1 backward data pass with a square window and pad < R,
 * and backward weights for windows of at most 9 taps; elsewhere the column path runs
 * whatever is asked. */
typedef enum {
    CLCL_CONV_AUTO = 0,
    CLCL_CONV_COLUMNS = 1, /* im2col (or the permute) and a GEMM per chunk of images */
    CLCL_CONV_DIRECT = 2,  /* cl/conv.cl's conv_direct: no column matrix */
} clcl_conv_algo;

/* The conv2d functions of layers.h with options (NULL: the defaults); tests and benchmarks
 * use them to reach the chunked paths at small sizes and to compare GEMM backends. */
clcl_status clcl_conv2d_forward_with(clcl_context *ctx, clcl_pool *scratch, const clcl_tensor *x,
                                     const clcl_tensor *w, int stride, int pad, clcl_tensor *y,
                                     const clcl_conv_options *opt);
clcl_status clcl_conv2d_backward_data_with(clcl_context *ctx, clcl_pool *scratch,
                                           const clcl_tensor *dy, const clcl_tensor *w, int stride,
                                           int pad, clcl_tensor *dx, const clcl_conv_options *opt);
clcl_status clcl_conv2d_backward_weights_with(clcl_context *ctx, clcl_pool *scratch,
                                              const clcl_tensor *x, const clcl_tensor *dy,
                                              int stride, int pad, clcl_tensor *dw,
                                              const clcl_conv_options *opt);

/* Batchnorm's training forward and backward with BN_RUN `run` (cl/batchnorm.cl; 0: the
 * device's default, which layers.h's functions use); tests reach the other layout. */
clcl_status clcl_batchnorm_forward_train_run(clcl_context *ctx, const clcl_tensor *x,
                                             const clcl_tensor *gamma, const clcl_tensor *beta,
                                             clcl_tensor *running_mean, clcl_tensor *running_var,
                                             float momentum, float eps, clcl_tensor *y,
                                             clcl_tensor *save_mean, clcl_tensor *save_invstd,
                                             int run);
clcl_status clcl_batchnorm_backward_run(clcl_context *ctx, const clcl_tensor *x,
                                        const clcl_tensor *dy, const clcl_tensor *gamma,
                                        const clcl_tensor *save_mean,
                                        const clcl_tensor *save_invstd, clcl_tensor *dx,
                                        clcl_tensor *dgamma, clcl_tensor *dbeta, int run);

#endif
