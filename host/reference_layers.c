/* Double-precision references of the GEMM and the layers (include/clcl/reference.h), written
 * from the definitions: direct loops, no im2col, no tiles. */
#include <math.h>
#include <string.h>

#include "clcl/reference.h"

/* ResNet's max pool: window, stride, padding. */
#define POOL_K      3
#define POOL_STRIDE 2
#define POOL_PAD    1

/* An input array of either precision: the float32 values the device sees, or doubles for
 * callers that perturb inputs by steps float32 cannot hold (finite differences). */
typedef struct {
    const float *f;
    const double *d;
} ref_in;

static ref_in in_float(const float *p) {
    return (ref_in){p, NULL};
}

static ref_in in_double(const double *p) {
    return (ref_in){NULL, p};
}

static double at(ref_in v, size_t i) {
    return v.f ? v.f[i] : v.d[i];
}

/* ---- GEMM ----------------------------------------------------------------------------- */

void clcl_ref_gemm(int trans_a, int trans_b, int m, int n, int k, double alpha, const float *a,
                   size_t lda, const float *b, size_t ldb, double beta, const float *c0, size_t ldc,
                   double *c) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double sum = 0;
            for (int p = 0; p < k; p++) {
                double av = trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                double bv = trans_b ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                sum += av * bv;
            }
            double old = beta != 0.0 ? beta * c0[(size_t)i * ldc + j] : 0.0;
            c[(size_t)i * n + j] = alpha * sum + old;
        }
}

/* ---- convolution ---------------------------------------------------------------------- */

int clcl_ref_conv_shape_init(clcl_ref_conv_shape *g) {
    int hp = g->h + 2 * g->pad - g->r, wp = g->w + 2 * g->pad - g->s;
    if (hp < 0 || wp < 0 || g->stride < 1)
        return 0;
    g->p = hp / g->stride + 1;
    g->q = wp / g->stride + 1;
    return 1;
}

typedef enum { CONV_FORWARD, CONV_DATA, CONV_WEIGHTS } conv_direction;

/* Walks every (input pixel, weight, output pixel) triple that lies inside the input and
 * accumulates into out: y += x w (forward, a = x, b = w), dx += dy w (data, a = dy, b = w)
 * or dw += x dy (weights, a = x, b = dy). out must start at 0. */
static void conv_walk(const clcl_ref_conv_shape *g, conv_direction dir, ref_in a, ref_in b,
                      double *out) {
    for (int i = 0; i < g->n; i++)
        for (int f = 0; f < g->k; f++)
            for (int ch = 0; ch < g->c; ch++)
                for (int op = 0; op < g->p; op++)
                    for (int oq = 0; oq < g->q; oq++)
                        for (int kr = 0; kr < g->r; kr++)
                            for (int ks = 0; ks < g->s; ks++) {
                                int ih = op * g->stride - g->pad + kr;
                                int iw = oq * g->stride - g->pad + ks;
                                if (ih < 0 || ih >= g->h || iw < 0 || iw >= g->w)
                                    continue;
                                size_t xi = (((size_t)i * g->c + ch) * g->h + ih) * g->w + iw;
                                size_t wi = (((size_t)f * g->c + ch) * g->r + kr) * g->s + ks;
                                size_t yi = (((size_t)i * g->k + f) * g->p + op) * g->q + oq;
                                if (dir == CONV_FORWARD)
                                    out[yi] += at(a, xi) * at(b, wi);
                                else if (dir == CONV_DATA)
                                    out[xi] += at(a, yi) * at(b, wi);
                                else
                                    out[wi] += at(a, xi) * at(b, yi);
                            }
}

void clcl_ref_conv2d_forward(const clcl_ref_conv_shape *g, const float *x, const float *wt,
                             double *y) {
    memset(y, 0, (size_t)g->n * g->k * g->p * g->q * sizeof *y);
    conv_walk(g, CONV_FORWARD, in_float(x), in_float(wt), y);
}

void clcl_ref_conv2d_forward_f64(const clcl_ref_conv_shape *g, const double *x, const double *wt,
                                 double *y) {
    memset(y, 0, (size_t)g->n * g->k * g->p * g->q * sizeof *y);
    conv_walk(g, CONV_FORWARD, in_double(x), in_double(wt), y);
}

void clcl_ref_conv2d_backward_data(const clcl_ref_conv_shape *g, const float *dy, const float *wt,
                                   double *dx) {
    memset(dx, 0, (size_t)g->n * g->c * g->h * g->w * sizeof *dx);
    conv_walk(g, CONV_DATA, in_float(dy), in_float(wt), dx);
}

void clcl_ref_conv2d_backward_weights(const clcl_ref_conv_shape *g, const float *x, const float *dy,
                                      double *dw) {
    memset(dw, 0, (size_t)g->k * g->c * g->r * g->s * sizeof *dw);
    conv_walk(g, CONV_WEIGHTS, in_float(x), in_float(dy), dw);
}

/* ---- batch normalization -------------------------------------------------------------- */

/* Mean and biased variance of channel ch of x (n, c, l). */
static void channel_stats(int n, int c, int l, int ch, ref_in x, double *mean, double *var) {
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < l; j++)
            sum += at(x, ((size_t)i * c + ch) * l + j);
    *mean = sum / ((double)n * l);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < l; j++) {
            double d = at(x, ((size_t)i * c + ch) * l + j) - *mean;
            sq += d * d;
        }
    *var = sq / ((double)n * l);
}

static void batchnorm_train(int n, int c, int l, double eps, double momentum, ref_in x,
                            ref_in gamma, ref_in beta, double *running_mean, double *running_var,
                            double *y, double *save_mean, double *save_invstd) {
    const double m = (double)n * l;
    for (int ch = 0; ch < c; ch++) {
        double mean, var;
        channel_stats(n, c, l, ch, x, &mean, &var);
        double invstd = 1.0 / sqrt(var + eps);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < l; j++) {
                size_t e = ((size_t)i * c + ch) * l + j;
                y[e] = (at(x, e) - mean) * invstd * at(gamma, ch) + at(beta, ch);
            }
        if (running_mean)
            running_mean[ch] = (1 - momentum) * running_mean[ch] + momentum * mean;
        if (running_var)
            running_var[ch] = (1 - momentum) * running_var[ch] + momentum * var * m / (m - 1);
        if (save_mean)
            save_mean[ch] = mean;
        if (save_invstd)
            save_invstd[ch] = invstd;
    }
}

void clcl_ref_batchnorm_train(int n, int c, int l, double eps, double momentum, const float *x,
                              const float *gamma, const float *beta, double *running_mean,
                              double *running_var, double *y, double *save_mean,
                              double *save_invstd) {
    batchnorm_train(n, c, l, eps, momentum, in_float(x), in_float(gamma), in_float(beta),
                    running_mean, running_var, y, save_mean, save_invstd);
}

void clcl_ref_batchnorm_train_f64(int n, int c, int l, double eps, double momentum, const double *x,
                                  const double *gamma, const double *beta, double *running_mean,
                                  double *running_var, double *y, double *save_mean,
                                  double *save_invstd) {
    batchnorm_train(n, c, l, eps, momentum, in_double(x), in_double(gamma), in_double(beta),
                    running_mean, running_var, y, save_mean, save_invstd);
}

void clcl_ref_batchnorm_eval(int n, int c, int l, double eps, const float *x, const float *gamma,
                             const float *beta, const float *running_mean, const float *running_var,
                             double *y) {
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int j = 0; j < l; j++) {
                size_t e = ((size_t)i * c + ch) * l + j;
                y[e] = (x[e] - running_mean[ch]) / sqrt((double)running_var[ch] + eps) * gamma[ch] +
                       beta[ch];
            }
}

void clcl_ref_batchnorm_backward(int n, int c, int l, double eps, const float *x, const float *dy,
                                 const float *gamma, double *dx, double *dgamma, double *dbeta) {
    const double m = (double)n * l;
    for (int ch = 0; ch < c; ch++) {
        double mean, var, sum_dy = 0, sum_dy_xhat = 0;
        channel_stats(n, c, l, ch, in_float(x), &mean, &var);
        double invstd = 1.0 / sqrt(var + eps);

        /* dbeta = sum dy, dgamma = sum dy xhat; then the three-term dx. */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < l; j++) {
                size_t e = ((size_t)i * c + ch) * l + j;
                sum_dy += dy[e];
                sum_dy_xhat += dy[e] * (x[e] - mean) * invstd;
            }
        dbeta[ch] = sum_dy;
        dgamma[ch] = sum_dy_xhat;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < l; j++) {
                size_t e = ((size_t)i * c + ch) * l + j;
                double xhat = (x[e] - mean) * invstd;
                dx[e] = gamma[ch] * invstd * (dy[e] - sum_dy / m - xhat * sum_dy_xhat / m);
            }
    }
}

/* ---- pooling ------------------------------------------------------------------------- */

static int pool_out(int in) {
    return (in + 2 * POOL_PAD - POOL_K) / POOL_STRIDE + 1;
}

/* Index within the plane (h, w) of the first maximum of window (op, oq); -1 when empty. */
static int pool_argmax(ref_in x, size_t plane, int h, int w, int op, int oq) {
    int best = -1;
    for (int r = 0; r < POOL_K; r++)
        for (int s = 0; s < POOL_K; s++) {
            int ih = op * POOL_STRIDE - POOL_PAD + r, iw = oq * POOL_STRIDE - POOL_PAD + s;
            if (ih < 0 || ih >= h || iw < 0 || iw >= w)
                continue;
            if (best < 0 || at(x, plane + ih * w + iw) > at(x, plane + best))
                best = ih * w + iw;
        }
    return best;
}

static void maxpool_forward(int nc, int h, int w, ref_in x, double *y) {
    int p = pool_out(h), q = pool_out(w);
    for (int i = 0; i < nc; i++)
        for (int op = 0; op < p; op++)
            for (int oq = 0; oq < q; oq++) {
                size_t plane = (size_t)i * h * w;
                int best = pool_argmax(x, plane, h, w, op, oq);
                y[((size_t)i * p + op) * q + oq] = best >= 0 ? at(x, plane + best) : 0.0;
            }
}

void clcl_ref_maxpool_forward(int nc, int h, int w, const float *x, double *y) {
    maxpool_forward(nc, h, w, in_float(x), y);
}

void clcl_ref_maxpool_forward_f64(int nc, int h, int w, const double *x, double *y) {
    maxpool_forward(nc, h, w, in_double(x), y);
}

void clcl_ref_maxpool_backward(int nc, int h, int w, const float *x, const float *dy, double *dx) {
    int p = pool_out(h), q = pool_out(w);
    memset(dx, 0, (size_t)nc * h * w * sizeof *dx);
    for (int i = 0; i < nc; i++)
        for (int op = 0; op < p; op++)
            for (int oq = 0; oq < q; oq++) {
                int best = pool_argmax(in_float(x), (size_t)i * h * w, h, w, op, oq);
                if (best >= 0)
                    dx[(size_t)i * h * w + best] += dy[((size_t)i * p + op) * q + oq];
            }
}

void clcl_ref_avgpool_forward(int nc, int l, const float *x, double *y) {
    for (int i = 0; i < nc; i++) {
        double sum = 0;
        for (int j = 0; j < l; j++)
            sum += x[(size_t)i * l + j];
        y[i] = sum / l;
    }
}

void clcl_ref_avgpool_backward(int nc, int l, const float *dy, double *dx) {
    for (int i = 0; i < nc; i++)
        for (int j = 0; j < l; j++)
            dx[(size_t)i * l + j] = (double)dy[i] / l;
}
