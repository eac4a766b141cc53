/* The contrastive loss in plain C and double precision: the oracle of tests/test_loss.c and
 * bench/bench_loss.c. Same definitions as include/clcl/loss.h, written without tiles. */
#ifndef CLCL_TEST_SUPPORT_LOSS_H
#define CLCL_TEST_SUPPORT_LOSS_H

#include <stdint.h>

/* A batch h (n2, d) normalised once: z (n2, d), norm (n2) = max(||h_i||, 1e-12) and, for
 * n2 <= REF_STORE_MAX, the similarities s (n2, n2); larger batches recompute them. */
#define REF_STORE_MAX 2048

typedef struct {
    int n2, d;
    double *z;
    double *norm;
    double *s;
} ref_batch;

typedef struct {
    int mode; /* 0 attract, 1 eliminate (as clcl_fn_mode) */
    double weight;
    int cap; /* 0: no cap */
    double tau, theta;
} ref_config;

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
} ref_result;

void ref_batch_init(ref_batch *b, const float *h, int n2, int d);
void ref_batch_free(ref_batch *b);
double ref_sim(const ref_batch *b, int i, int j);

/* Loss and counts; with dh (n2, d), also dL/dh for the rows i with i % row_step == 0 (the
 * others are left as they are). labels may be NULL. */
void ref_loss(const ref_batch *b, const int *labels, const ref_config *c, ref_result *out,
              double *dh, int row_step);

/* SimCLR's NT-Xent of h computed on its own (cross-entropy of each row's logits against its
 * partner), sharing no code with ref_loss. */
double ref_ntxent(const float *h, int n2, int d, double tau);

/* Two views of n2 / 2 images of `classes` classes: h (n2, d) with rows i and i + n2/2 views
 * of one image, labels (n2) their classes, row norms spread over [0.5, 2]. */
void ref_make_views(float *h, int *labels, int n2, int d, int classes, uint64_t *rng);

/* Redraws rows of h until no similarity lies within `margin` of any of the thresholds and,
 * with a cap, no row's cap-th and (cap+1)-th candidates lie within margin of each other, so
 * that float and double agree on every mask. Returns the number of rounds, -1 if it gave up. */
int ref_make_unambiguous(float *h, int n2, int d, const double *thetas, int n_thetas, int cap,
                         double margin, uint64_t *rng);

#endif
