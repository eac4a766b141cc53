/* Plain C references of the layers in double precision, finite differences, helpers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "support.h"
#include "support_layers.h"

/* ---- GEMM ---------------------------------------------------------------------------- */

void ref_gemm(int trans_a, int trans_b, int m, int n, int k, double alpha, const double *a,
              size_t lda, const double *b, size_t ldb, double beta, double *c, size_t ldc) {
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double sum = 0.0;
            for (int l = 0; l < k; l++) {
                double av = trans_a ? a[(size_t)l * lda + i] : a[(size_t)i * lda + l];
                double bv = trans_b ? b[(size_t)j * ldb + l] : b[(size_t)l * ldb + j];
                sum += av * bv;
            }
            double *cv = &c[(size_t)i * ldc + j];
            *cv = alpha * sum + (beta != 0.0 ? beta * *cv : 0.0);
        }
    }
}

/* ---- convolution --------------------------------------------------------------------- */

void ref_conv_geom(ref_conv *g) {
    g->p = (g->h + 2 * g->pad - g->r) / g->stride + 1;
    g->q = (g->w + 2 * g->pad - g->s) / g->stride + 1;
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

/* What conv_visit accumulates at each multiply of the convolution. */
enum { CONV_Y, CONV_DX, CONV_DW };

/* Runs over every (x, w, y) triple the convolution multiplies and adds: y += x w,
 * dx += dy w or dw += dy x into `out` (zeroed first). */
static void conv_visit(const ref_conv *g, int what, const double *x, const double *w,
                       const double *y, double *out, size_t out_count) {
    memset(out, 0, out_count * sizeof *out);
    for (int n = 0; n < g->n; n++)
        for (int k = 0; k < g->k; k++)
            for (int p = 0; p < g->p; p++)
                for (int q = 0; q < g->q; q++)
                    for (int c = 0; c < g->c; c++)
                        for (int r = 0; r < g->r; r++)
                            for (int s = 0; s < g->s; s++) {
                                int hh = p * g->stride - g->pad + r,
                                    ww = q * g->stride - g->pad + s;
                                if (hh < 0 || hh >= g->h || ww < 0 || ww >= g->w)
                                    continue;
                                size_t xi = (((size_t)n * g->c + c) * g->h + hh) * g->w + ww;
                                size_t wi = (((size_t)k * g->c + c) * g->r + r) * g->s + s;
                                size_t yi = (((size_t)n * g->k + k) * g->p + p) * g->q + q;
                                if (what == CONV_Y)
                                    out[yi] += x[xi] * w[wi];
                                else if (what == CONV_DX)
                                    out[xi] += y[yi] * w[wi];
                                else
                                    out[wi] += y[yi] * x[xi];
                            }
}

void ref_conv2d_forward(const ref_conv *g, const double *x, const double *w, double *y) {
    conv_visit(g, CONV_Y, x, w, NULL, y, ref_conv_y_count(g));
}

void ref_conv2d_backward_data(const ref_conv *g, const double *dy, const double *w, double *dx) {
    conv_visit(g, CONV_DX, NULL, w, dy, dx, ref_conv_x_count(g));
}

void ref_conv2d_backward_weights(const ref_conv *g, const double *x, const double *dy, double *dw) {
    conv_visit(g, CONV_DW, x, NULL, dy, dw, ref_conv_w_count(g));
}

/* ---- batchnorm ----------------------------------------------------------------------- */

#define BN_AT(x, n_, c_, i_) (x)[((size_t)(n_)*c + (c_)) * l + (i_)]

void ref_batchnorm_train(int n, int c, int l, double eps, const double *x, const double *gamma,
                         const double *beta, double *y, double *mean, double *var) {
    double m = (double)n * l;
    for (int ch = 0; ch < c; ch++) {
        double sum = 0.0, sq = 0.0;
        for (int b = 0; b < n; b++)
            for (int i = 0; i < l; i++)
                sum += BN_AT(x, b, ch, i);
        double mu = sum / m;
        for (int b = 0; b < n; b++)
            for (int i = 0; i < l; i++)
                sq += (BN_AT(x, b, ch, i) - mu) * (BN_AT(x, b, ch, i) - mu);
        double v = sq / m, inv = 1.0 / sqrt(v + eps);
        for (int b = 0; b < n; b++)
            for (int i = 0; i < l; i++)
                BN_AT(y, b, ch, i) = (BN_AT(x, b, ch, i) - mu) * inv * gamma[ch] + beta[ch];
        if (mean)
            mean[ch] = mu;
        if (var)
            var[ch] = v;
    }
}

void ref_batchnorm_eval(int n, int c, int l, double eps, const double *x, const double *gamma,
                        const double *beta, const double *mean, const double *var, double *y) {
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < l; i++)
                BN_AT(y, b, ch, i) =
                    (BN_AT(x, b, ch, i) - mean[ch]) / sqrt(var[ch] + eps) * gamma[ch] + beta[ch];
}

void ref_batchnorm_backward(int n, int c, int l, double eps, const double *x, const double *dy,
                            const double *gamma, double *dx, double *dgamma, double *dbeta) {
    double m = (double)n * l;
    double *mean = malloc((size_t)c * sizeof *mean), *var = malloc((size_t)c * sizeof *var);
    double *y = malloc((size_t)n * c * l * sizeof *y);
    double *zero = calloc((size_t)c, sizeof *zero), *one = calloc((size_t)c, sizeof *one);
    for (int ch = 0; ch < c; ch++)
        one[ch] = 1.0;
    ref_batchnorm_train(n, c, l, eps, x, one, zero, y, mean, var); /* y = xhat */
    for (int ch = 0; ch < c; ch++) {
        double sdy = 0.0, sdyx = 0.0;
        for (int b = 0; b < n; b++)
            for (int i = 0; i < l; i++) {
                sdy += BN_AT(dy, b, ch, i);
                sdyx += BN_AT(dy, b, ch, i) * BN_AT(y, b, ch, i);
            }
        dbeta[ch] = sdy;
        dgamma[ch] = sdyx;
        double inv = 1.0 / sqrt(var[ch] + eps);
        for (int b = 0; b < n; b++)
            for (int i = 0; i < l; i++)
                BN_AT(dx, b, ch, i) =
                    gamma[ch] * inv *
                    (BN_AT(dy, b, ch, i) - sdy / m - BN_AT(y, b, ch, i) * sdyx / m);
    }
    free(mean);
    free(var);
    free(y);
    free(zero);
    free(one);
}

/* ---- pooling and linear -------------------------------------------------------------- */

/* Index in the plane of the first maximum of window (p, q), or -1. */
static long ref_window_argmax(int h, int w, int k, int stride, int pad, const double *plane, int p,
                              int q) {
    long best = -1;
    for (int r = 0; r < k; r++)
        for (int s = 0; s < k; s++) {
            int hh = p * stride - pad + r, ww = q * stride - pad + s;
            if (hh < 0 || hh >= h || ww < 0 || ww >= w)
                continue;
            long i = (long)hh * w + ww;
            if (best < 0 || plane[i] > plane[best])
                best = i;
        }
    return best;
}

void ref_maxpool_forward(int nc, int h, int w, int k, int stride, int pad, const double *x,
                         double *y) {
    int P = (h + 2 * pad - k) / stride + 1, Q = (w + 2 * pad - k) / stride + 1;
    for (int i = 0; i < nc; i++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                const double *plane = x + (size_t)i * h * w;
                long a = ref_window_argmax(h, w, k, stride, pad, plane, p, q);
                y[((size_t)i * P + p) * Q + q] = a >= 0 ? plane[a] : 0.0;
            }
}

void ref_maxpool_backward(int nc, int h, int w, int k, int stride, int pad, const double *x,
                          const double *dy, double *dx) {
    int P = (h + 2 * pad - k) / stride + 1, Q = (w + 2 * pad - k) / stride + 1;
    memset(dx, 0, (size_t)nc * h * w * sizeof *dx);
    for (int i = 0; i < nc; i++)
        for (int p = 0; p < P; p++)
            for (int q = 0; q < Q; q++) {
                long a = ref_window_argmax(h, w, k, stride, pad, x + (size_t)i * h * w, p, q);
                if (a >= 0)
                    dx[(size_t)i * h * w + a] += dy[((size_t)i * P + p) * Q + q];
            }
}

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
