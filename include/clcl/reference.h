/* Plain C references of clcl's kernels, in double precision, written from the definitions
 * rather than from the kernels: the oracle of the test suite, the benchmarks and
 * `clcl check`. They run on the host, so no device needs fp64. Inputs are the float32
 * values the device sees; outputs are double. Layouts are those of the device functions:
 * (N, C, H, W) images, row-major (rows, cols) matrices. The few functions ending in _f64
 * take double inputs instead, for finite differences, whose steps float32 cannot hold.
 *
 * Functions that allocate return CLCL_ERR_NO_MEMORY when the host is out of memory; the
 * others cannot fail. */
#ifndef CLCL_REFERENCE_H
#define CLCL_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

#include "clcl/augment.h"
#include "clcl/eval.h"
#include "clcl/optim.h"
#include "clcl/status.h"

/* ---- seeded inputs -------------------------------------------------------------------- */

/* splitmix64: the next value of the stream `state`, and a float uniform in [lo, hi) from
 * its top 53 bits. The same stream as the test suite's test_rand_*(). */
uint64_t clcl_ref_rand_u64(uint64_t *state);
float clcl_ref_rand_uniform(uint64_t *state, float lo, float hi);

/* ---- GEMM and layers ------------------------------------------------------------------ */

/* c (m, n), dense = alpha op(a) op(b) + beta c0, as clcl_gemm defines it: op(a) is (m, k),
 * a stored (m, k) or, transposed, (k, m) with row length lda; likewise b. c0 (m rows of
 * ldc) may be NULL when beta is 0. */
void clcl_ref_gemm(int trans_a, int trans_b, int m, int n, int k, double alpha, const float *a,
                   size_t lda, const float *b, size_t ldb, double beta, const float *c0, size_t ldc,
                   double *c);

/* A convolution's sizes: x (n, c, h, w), weights (k, c, r, s), y (n, k, p, q). */
typedef struct {
    int n, c, h, w;
    int k, r, s;
    int stride, pad;
    int p, q; /* filled by clcl_ref_conv_shape_init */
} clcl_ref_conv_shape;

/* Fills p and q; returns 0 when the window does not fit the padded input. */
int clcl_ref_conv_shape_init(clcl_ref_conv_shape *g);
void clcl_ref_conv2d_forward(const clcl_ref_conv_shape *g, const float *x, const float *wt,
                             double *y);
void clcl_ref_conv2d_forward_f64(const clcl_ref_conv_shape *g, const double *x, const double *wt,
                                 double *y);
void clcl_ref_conv2d_backward_data(const clcl_ref_conv_shape *g, const float *dy, const float *wt,
                                   double *dx);
void clcl_ref_conv2d_backward_weights(const clcl_ref_conv_shape *g, const float *x, const float *dy,
                                      double *dw);

/* Batch normalization over x (n, c, l) (l = H W, or 1 for (N, C)). Training: batch
 * statistics (biased variance), running_mean / running_var (c) updated in place with
 * `momentum` and the unbiased variance, save_mean and save_invstd (c) kept; each of these
 * four may be NULL. */
void clcl_ref_batchnorm_train(int n, int c, int l, double eps, double momentum, const float *x,
                              const float *gamma, const float *beta, double *running_mean,
                              double *running_var, double *y, double *save_mean,
                              double *save_invstd);
void clcl_ref_batchnorm_train_f64(int n, int c, int l, double eps, double momentum, const double *x,
                                  const double *gamma, const double *beta, double *running_mean,
                                  double *running_var, double *y, double *save_mean,
                                  double *save_invstd);
void clcl_ref_batchnorm_eval(int n, int c, int l, double eps, const float *x, const float *gamma,
                             const float *beta, const float *running_mean, const float *running_var,
                             double *y);
/* dx (n, c, l), dgamma and dbeta (c) of a training-mode forward over the same x. */
void clcl_ref_batchnorm_backward(int n, int c, int l, double eps, const float *x, const float *dy,
                                 const float *gamma, double *dx, double *dgamma, double *dbeta);

/* ResNet's max pool (3x3, stride 2, padding 1) over nc planes (h, w); the backward sends
 * each output's gradient to its window's first maximum in row-major order. */
void clcl_ref_maxpool_forward(int nc, int h, int w, const float *x, double *y);
void clcl_ref_maxpool_forward_f64(int nc, int h, int w, const double *x, double *y);
void clcl_ref_maxpool_backward(int nc, int h, int w, const float *x, const float *dy, double *dx);

/* Global average pool: x (nc, l) -> y (nc); the backward spreads dy (nc) over (nc, l). */
void clcl_ref_avgpool_forward(int nc, int l, const float *x, double *y);
void clcl_ref_avgpool_backward(int nc, int l, const float *dy, double *dx);

/* ---- the contrastive loss (include/clcl/loss.h) --------------------------------------- */

/* n2 at most this many keeps the similarity matrix; larger batches recompute it. */
#define CLCL_REF_STORE_MAX 2048

/* A batch h (n2, d) normalised once: z (n2, d), norm (n2) = max(||h_i||, 1e-12) and, for
 * n2 <= CLCL_REF_STORE_MAX, the similarities s (n2, n2). */
typedef struct {
    int n2, d;
    double *z;
    double *norm;
    double *s;
} clcl_ref_batch;

typedef struct {
    int mode; /* 0 attract, 1 eliminate (as clcl_fn_mode) */
    double weight;
    int cap; /* 0: no cap */
    double tau, theta;
} clcl_ref_loss_config;

typedef struct {
    double loss;
    long long pseudo_total; /* kept pseudo-positives */
    long long above_total;  /* others above theta before the cap */
    long long capped;       /* anchors where the cap removed some */
    long long pseudo_same;  /* kept ones sharing the anchor's label */
    long long same_total;   /* same-label others */
    long long top1;         /* anchors whose partner is the most similar other row */
    double partner_sum;     /* sum of s_{i p(i)} */
    double pseudo_sum;      /* sum of the kept similarities */
} clcl_ref_loss_result;

clcl_status clcl_ref_batch_init(clcl_ref_batch *b, const float *h, int n2, int d);
void clcl_ref_batch_free(clcl_ref_batch *b);
double clcl_ref_sim(const clcl_ref_batch *b, int i, int j);

/* Loss and counts; with dh (n2, d), also dL/dh for the rows i with i % row_step == 0 (the
 * others are left as they are). labels may be NULL. */
clcl_status clcl_ref_loss(const clcl_ref_batch *b, const int *labels, const clcl_ref_loss_config *c,
                          clcl_ref_loss_result *out, double *dh, int row_step);

/* SimCLR's NT-Xent of h computed on its own (cross-entropy of each row's logits against its
 * partner), sharing no code with clcl_ref_loss. NaN when out of host memory. */
double clcl_ref_ntxent(const float *h, int n2, int d, double tau);

/* Two views of n2 / 2 images of `classes` classes from the stream `rng`: h (n2, d) with rows
 * i and i + n2/2 views of one image, labels (n2, may be NULL) their classes, row norms
 * spread over [0.5, 2]. */
clcl_status clcl_ref_make_views(float *h, int *labels, int n2, int d, int classes, uint64_t *rng);

/* Redraws rows of h until no similarity lies within `margin` of any of the thresholds and,
 * with a cap, no row's cap-th and (cap+1)-th candidates lie within margin of each other, so
 * that float and double agree on every mask. Returns the number of rounds, -1 if it gave up
 * (or ran out of host memory). */
int clcl_ref_make_unambiguous(float *h, int n2, int d, const double *thetas, int n_thetas, int cap,
                              double margin, uint64_t *rng);

/* ---- the augmentation (cl/augment.cl, cl/blur.cl) ------------------------------------- */

/* The bilinear sample of one uint8 plane (row length w) at output pixel (oy, ox) of the
 * record's crop, before any flip, on the 0..255 scale. */
double clcl_ref_sample(const uint8_t *plane, int w, const clcl_augment_record *r, int oy, int ox);

/* torchvision's colour steps on one RGB pixel, 0..255 scale, in place. */
void clcl_ref_brightness(double c[3], double factor);
void clcl_ref_blend(double c[3], double other, double ratio); /* contrast: other = grey mean */
void clcl_ref_saturation(double c[3], double factor);
void clcl_ref_hue(double c[3], double shift);
double clcl_ref_grey(const double c[3]);

/* One output image (C, OH, OW) of the fused kernel: crop, flip, jitter, grayscale and
 * normalisation by mean / std (on the [0, 1] scale), from the uint8 (C, H, W) image. */
void clcl_ref_augment_view(const uint8_t *image, int channels, int height, int width,
                           const clcl_augment_record *r, int oh, int ow, const float mean[3],
                           const float std[3], double *out);

/* Blurs (C, H, W) in place with the normalised Gaussian of this sigma and odd kernel
 * size, borders reflected; sigma 0 leaves it. */
clcl_status clcl_ref_blur(double *x, int channels, int height, int width, double sigma, int kernel);

/* ---- evaluation and the optimizers ----------------------------------------------------- */

/* Weighted kNN (include/clcl/eval.h) of queries q (nq, f) against bank (nb, f) with labels
 * in [0, classes): cosine similarities, the k nearest vote with weight exp(s / t). */
clcl_status clcl_ref_knn(const float *bank, const int *bank_labels, int nb, const float *q,
                         const int *query_labels, int nq, int f, int classes, int k, double t,
                         double *top1, double *top5);

/* The linear probe's algorithm: standardize by the training features' statistics, shuffled
 * mini-batch SGD with momentum on softmax cross-entropy, cosine learning rate; the test
 * top-1 and the last epoch's mean training loss. */
clcl_status clcl_ref_probe(const float *xt, const int *yt, int nt, const float *xe, const int *ye,
                           int ne, int f, int classes, const clcl_probe_config *c, double *top1,
                           double *loss);

/* One update (include/clcl/optim.h) of a parameter w (n) with momentum buffer buf (n),
 * both in place, from the gradient g at learning rate lr. `excluded` as clcl_param's. */
void clcl_ref_optim_step(const clcl_optim_config *c, int excluded, size_t n, const float *g,
                         double *w, double *buf, double lr);

#endif
