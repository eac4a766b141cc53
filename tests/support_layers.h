/* Test-only references (double precision), a finite-difference gradient helper, and small
 * device helpers for the layer tests. */
#ifndef CLCL_TEST_SUPPORT_LAYERS_H
#define CLCL_TEST_SUPPORT_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "clcl/reference.h"
#include "clcl/tensor.h"

/* ---- references ----------------------------------------------------------------------- */

/* The GEMM, convolution, batch normalization and pooling references are the library's
 * (clcl/reference.h, the oracle of `clcl check` too); what is here only the tests use. */

/* A convolution's sizes, as the library's references take them. */
typedef clcl_ref_conv_shape ref_conv;

/* Fills p and q from the rest; aborts the test when the window does not fit. */
void ref_conv_geom(ref_conv *g);
size_t ref_conv_x_count(const ref_conv *g);
size_t ref_conv_w_count(const ref_conv *g);
size_t ref_conv_y_count(const ref_conv *g);

/* y (N, out) = x (N, in) w^T (in, out) + b (out, may be NULL). */
void ref_linear_forward(int n, int in, int out, const double *x, const double *w, const double *b,
                        double *y);

/* ---- finite differences -------------------------------------------------------------- */

/* out = f(in); n_out values. */
typedef void (*fd_function)(const double *in, double *out, void *user);

/* Central differences of L(in) = sum_i proj[i] * f(in)[i] at the n_idx inputs idx[],
 * step h; in is restored. grad[j] is dL/d in[idx[j]]. */
void fd_gradient(fd_function f, void *user, double *in, size_t n_out, const double *proj, double h,
                 const size_t *idx, size_t n_idx, double *grad);

/* Up to `max` indices below n in idx (all of them, in order, when n <= max; otherwise a
 * seeded random choice); returns how many. */
size_t fd_pick(size_t n, size_t max, uint64_t *rng, size_t *idx);

/* Gathers got[idx[j]] into out[j]. */
void fd_gather(const float *got, const size_t *idx, size_t n_idx, float *out);

/* ---- host and device helpers --------------------------------------------------------- */

/* n uniform floats in [lo, hi) (malloc'ed). */
float *test_floats(size_t n, uint64_t *rng, float lo, float hi);
/* The doubles of n floats (malloc'ed). */
double *test_doubles(const float *f, size_t n);
/* A tensor of `shape` holding `host` (NULL: filled with NaN, so that a layer that skips
 * an element is caught); aborts the test on failure. */
void test_tensor(clcl_context *ctx, clcl_tensor *t, int ndim, const int *shape, const float *host);
/* t's contents (malloc'ed). */
float *test_read(clcl_context *ctx, const clcl_tensor *t);

#endif
