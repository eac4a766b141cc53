/* Test-only references, finite differences, helpers. */
#include <math.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "support.h"
#include "support_layers.h"

/* ---- convolution sizes --------------------------------------------------------------- */

void ref_conv_geom(ref_conv *g) {
    cr_assert(clcl_ref_conv_shape_init(g), "conv window %dx%d does not fit %dx%d padded by %d",
              g->r, g->s, g->h, g->w, g->pad);
}

size_t ref_conv_x_count(const ref_conv *g) {
    return (size_t)g->n * g->c * g->h * g->w;
}

size_t ref_conv_w_count(const ref_conv *g) {
    return (size_t)g->k * g->c * g->r * g->s;
}

size_t ref_conv_y_count(const ref_conv *g) {
    return (size_t)g->n * g->k * g->p * g->q;
}

/* ---- linear -------------------------------------------------------------------------- */

void ref_linear_forward(int n, int in, int out, const double *x, const double *w, const double *b,
                        double *y) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < out; j++) {
            double sum = b ? b[j] : 0.0;
            for (int l = 0; l < in; l++)
                sum += x[(size_t)i * in + l] * w[(size_t)j * in + l];
            y[(size_t)i * out + j] = sum;
        }
}

/* ---- finite differences -------------------------------------------------------------- */

static double fd_loss(fd_function f, void *user, const double *in, size_t n_out, const double *proj,
                      double *out) {
    double sum = 0.0;
    f(in, out, user);
    for (size_t i = 0; i < n_out; i++)
        sum += proj[i] * out[i];
    return sum;
}

void fd_gradient(fd_function f, void *user, double *in, size_t n_out, const double *proj, double h,
                 const size_t *idx, size_t n_idx, double *grad) {
    double *out = malloc(n_out * sizeof *out);
    cr_assert_not_null(out);
    for (size_t j = 0; j < n_idx; j++) {
        double saved = in[idx[j]];
        in[idx[j]] = saved + h;
        double up = fd_loss(f, user, in, n_out, proj, out);
        in[idx[j]] = saved - h;
        double down = fd_loss(f, user, in, n_out, proj, out);
        in[idx[j]] = saved;
        grad[j] = (up - down) / (2.0 * h);
    }
    free(out);
}

size_t fd_pick(size_t n, size_t max, uint64_t *rng, size_t *idx) {
    if (n <= max) {
        for (size_t i = 0; i < n; i++)
            idx[i] = i;
        return n;
    }
    for (size_t i = 0; i < max; i++)
        idx[i] = (size_t)(test_rand_u64(rng) % n);
    return max;
}

void fd_gather(const float *got, const size_t *idx, size_t n_idx, float *out) {
    for (size_t j = 0; j < n_idx; j++)
        out[j] = got[idx[j]];
}

/* ---- helpers ------------------------------------------------------------------------- */

float *test_floats(size_t n, uint64_t *rng, float lo, float hi) {
    float *f = malloc(n * sizeof *f);
    cr_assert_not_null(f);
    for (size_t i = 0; i < n; i++)
        f[i] = test_rand_uniform(rng, lo, hi);
    return f;
}

double *test_doubles(const float *f, size_t n) {
    double *d = malloc(n * sizeof *d);
    cr_assert_not_null(d);
    for (size_t i = 0; i < n; i++)
        d[i] = f[i];
    return d;
}

void test_tensor(clcl_context *ctx, clcl_tensor *t, int ndim, const int *shape, const float *host) {
    cr_assert_eq(clcl_tensor_create(ctx, t, ndim, shape), CLCL_OK, "%s", clcl_last_error());
    if (host)
        cr_assert_eq(clcl_tensor_write(ctx, t, host), CLCL_OK, "%s", clcl_last_error());
    else
        cr_assert_eq(clcl_tensor_fill(ctx, t, NAN), CLCL_OK, "%s", clcl_last_error());
}

float *test_read(clcl_context *ctx, const clcl_tensor *t) {
    float *f = malloc(t->count * sizeof *f);
    cr_assert_not_null(f);
    cr_assert_eq(clcl_tensor_read(ctx, t, f), CLCL_OK, "%s", clcl_last_error());
    return f;
}
