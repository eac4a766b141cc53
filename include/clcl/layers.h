/* Network layers on the device: forward and backward.
 *
 * Shapes are checked before anything is enqueued; a mismatch is CLCL_ERR_SHAPE with the
 * shapes in the message. Images are (N, C, H, W), matrices (rows, cols), both row-major.
 *
 * Gradient rule, the same for every layer: backward functions WRITE (=) every gradient
 * they produce, inputs' and parameters' alike; they never accumulate. Where a tensor
 * feeds two consumers (the residual shortcut), the caller adds the two gradients.
 *
 * `scratch` is a pool the layer takes temporary buffers from (im2col columns, partial
 * sums) and gives back before it returns; pass the same pool every step so that steps
 * allocate nothing. Reductions are deterministic: no float atomics, the same input gives
 * the same bits on every run. */
#ifndef CLCL_LAYERS_H
#define CLCL_LAYERS_H

#include "clcl/tensor.h"

/* Output side of a convolution or pooling window: (in + 2 pad - k) / stride + 1. */
int clcl_conv2d_out_size(int in, int k, int stride, int pad);

/* y (N, K, P, Q) = conv(x (N, C, H, W), w (K, C, R, S)); groups 1, no bias. */
clcl_status clcl_conv2d_forward(clcl_context *ctx, clcl_pool *scratch, const clcl_tensor *x,
                                const clcl_tensor *w, int stride, int pad, clcl_tensor *y);
/* dx (N, C, H, W) from dy (N, K, P, Q) and w. */
clcl_status clcl_conv2d_backward_data(clcl_context *ctx, clcl_pool *scratch, const clcl_tensor *dy,
                                      const clcl_tensor *w, int stride, int pad, clcl_tensor *dx);
/* dw (K, C, R, S) from x and dy. */
clcl_status clcl_conv2d_backward_weights(clcl_context *ctx, clcl_pool *scratch,
                                         const clcl_tensor *x, const clcl_tensor *dy, int stride,
                                         int pad, clcl_tensor *dw);

/* Batch normalization over (N, C, H, W) (2d) or (N, C) (1d); gamma, beta, running mean
 * and variance are (C). Training mode normalizes with the batch statistics (biased
 * variance), updates running_mean/var with `momentum` (unbiased variance, as PyTorch
 * does) and keeps mean and 1/sqrt(var + eps) in save_mean/save_invstd (C) for backward. */
clcl_status clcl_batchnorm_forward_train(clcl_context *ctx, clcl_pool *scratch,
                                         const clcl_tensor *x, const clcl_tensor *gamma,
                                         const clcl_tensor *beta, clcl_tensor *running_mean,
                                         clcl_tensor *running_var, float momentum, float eps,
                                         clcl_tensor *y, clcl_tensor *save_mean,
                                         clcl_tensor *save_invstd);
/* Eval mode: normalizes with the running statistics. */
clcl_status clcl_batchnorm_forward_eval(clcl_context *ctx, const clcl_tensor *x,
                                        const clcl_tensor *gamma, const clcl_tensor *beta,
                                        const clcl_tensor *running_mean,
                                        const clcl_tensor *running_var, float eps, clcl_tensor *y);
/* dx, dgamma, dbeta of a training-mode forward. */
clcl_status clcl_batchnorm_backward(clcl_context *ctx, clcl_pool *scratch, const clcl_tensor *x,
                                    const clcl_tensor *dy, const clcl_tensor *gamma,
                                    const clcl_tensor *save_mean, const clcl_tensor *save_invstd,
                                    clcl_tensor *dx, clcl_tensor *dgamma, clcl_tensor *dbeta);

/* y = max(x, 0); y may be x. */
clcl_status clcl_relu_forward(clcl_context *ctx, const clcl_tensor *x, clcl_tensor *y);
/* dx = dy where y > 0, else 0, from the forward's output y; dx may be dy. */
clcl_status clcl_relu_backward(clcl_context *ctx, const clcl_tensor *y, const clcl_tensor *dy,
                               clcl_tensor *dx);

/* y = a + b (element-wise, same element count); y may be a or b. */
clcl_status clcl_add_forward(clcl_context *ctx, const clcl_tensor *a, const clcl_tensor *b,
                             clcl_tensor *y);

/* Max pool, 3x3 window, stride 2, padding 1 (ResNet's): (N, C, H, W) -> (N, C, P, Q). The
 * backward recomputes each window's first maximum from x. */
clcl_status clcl_maxpool_forward(clcl_context *ctx, const clcl_tensor *x, clcl_tensor *y);
clcl_status clcl_maxpool_backward(clcl_context *ctx, const clcl_tensor *x, const clcl_tensor *dy,
                                  clcl_tensor *dx);

/* Global average pool: (N, C, H, W) -> (N, C). */
clcl_status clcl_avgpool_forward(clcl_context *ctx, const clcl_tensor *x, clcl_tensor *y);
clcl_status clcl_avgpool_backward(clcl_context *ctx, const clcl_tensor *dy, clcl_tensor *dx);

/* y (N, out) = x (N, in) w (out, in)^T + b (out); b may be NULL. */
clcl_status clcl_linear_forward(clcl_context *ctx, const clcl_tensor *x, const clcl_tensor *w,
                                const clcl_tensor *b, clcl_tensor *y);
/* dx (may be NULL: not needed), dw, db (NULL when there is no bias). */
clcl_status clcl_linear_backward(clcl_context *ctx, clcl_pool *scratch, const clcl_tensor *x,
                                 const clcl_tensor *w, const clcl_tensor *dy, clcl_tensor *dx,
                                 clcl_tensor *dw, clcl_tensor *db);

#endif
