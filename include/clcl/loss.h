/* The method's contrastive loss with false-negative handling (docs/method.md).
 *
 * h (2N, d) holds the projections of 2N views: rows [0, N) are view 1 of images 0..N-1,
 * rows [N, 2N) view 2, so the partner of row i is p(i) = (i + N) mod 2N. With z_i = h_i /
 * ||h_i|| and s_ij = z_i . z_j, the pseudo-positives of anchor i are the j outside
 * {i, p(i)} with s_ij > theta (on the detached similarities), at most `cap` of them, the most
 * similar first. The loss is SupCon's L_out over the positives P(i) = {p(i)} + pseudo:
 *
 *     l_i = -(1 / W_i) sum_{p in P(i)} w_p log( exp(s_ip / tau) / sum_{a in D(i)} exp(s_ia / tau) )
 *
 * with w_{p(i)} = 1, w = weight for a pseudo-positive, W_i = sum of the w_p, and D(i) every
 * row but i (attract mode) or every row but i and the pseudo-positives, which then are no
 * positives either (eliminate mode). The loss is the mean of l_i. theta > 1 detects nothing
 * and gives SimCLR's NT-Xent exactly, in every mode.
 *
 * A clcl_loss is made once per (context, 2N, d) and owns every scratch buffer, so a call
 * allocates nothing. The similarity matrix is never stored by the fused kernels (tiled,
 * CLCL_LOSS_FUSED, or in row blocks, CLCL_LOSS_FUSED_ROWS); CLCL_LOSS_UNFUSED stores it and
 * uses CLBlast; CLCL_LOSS_AUTO takes whichever of the three is fastest here (all run on
 * seeded rows at clcl_loss_create and must agree with the tiled kernels; the decision is
 * kept per device and (2N, d) in the tuning file). */
#ifndef CLCL_LOSS_H
#define CLCL_LOSS_H

#include "clcl/runtime.h"
#include "clcl/tensor.h"

/* The largest supported cap per anchor. */
#define CLCL_LOSS_MAX_CAP 64

typedef enum {
    CLCL_FN_ATTRACT = 0,  /* pseudo-positives join the positives (weight w) */
    CLCL_FN_ELIMINATE = 1 /* pseudo-positives leave the denominator and are not attracted */
} clcl_fn_mode;

typedef enum {
    CLCL_LOSS_FUSED = 0,     /* cl/contrastive.cl, GPU-shaped: work-groups of tiles staged in
                              * local memory, recomputed; nothing (2N x 2N) stored */
    CLCL_LOSS_UNFUSED = 1,   /* CLBlast similarity matrix + separate kernels (comparison path) */
    CLCL_LOSS_AUTO = 2,      /* the fastest of the three on this device at this (2N, d),
                              * measured once and kept in the tuning file (clcl/tuning.h) */
    CLCL_LOSS_FUSED_ROWS = 3 /* cl/contrastive.cl, CPU-shaped: each work-item a block of rows
                              * in registers, no local memory or barriers; nothing stored */
} clcl_loss_impl;

typedef struct {
    clcl_fn_mode mode;
    float weight; /* attract: weight of a pseudo-positive relative to the partner, in [0, 1] */
    int cap;      /* at most this many pseudo-positives per anchor, 0..CLCL_LOSS_MAX_CAP; 0: all */
    clcl_loss_impl impl;
} clcl_loss_config;

/* Class labels (2N, int) for the statistics: in host memory or in a device buffer of at
 * least 2N cl_int; set exactly one. They never change the loss. */
typedef struct {
    const int *host;
    cl_mem device;
} clcl_loss_labels;

/* Per-call statistics. "Others" of anchor i are the rows outside {i, p(i)}. */
typedef struct {
    double pseudo_per_anchor;  /* mean number of pseudo-positives kept per anchor */
    double above_per_anchor;   /* mean number of others above theta, before the cap */
    double capped_share;       /* share of anchors where the cap removed candidates */
    double pseudo_similarity;  /* mean similarity of the kept pseudo-positives (0: none) */
    double partner_similarity; /* mean s_{i p(i)} */
    double partner_top1;       /* share of anchors whose partner is the most similar row */
    int has_labels;            /* the three below are 0 without labels */
    double precision;          /* kept pseudo-positives with the anchor's label, / kept (0: none) */
    double recall;             /* same-label others that were kept, / same-label others (0: none) */
    long long pseudo_total;    /* kept pseudo-positives over all anchors */
    long long pseudo_same;     /* of them, with the anchor's label */
    long long same_total;      /* same-label others over all anchors */
} clcl_loss_stats;

typedef struct clcl_loss clcl_loss;

/* A loss for batches of n2 = 2N rows (n2 even, >= 2) of dim features. Builds its kernels
 * (once per context and option set) and allocates its buffers. A bad config is
 * CLCL_ERR_ARGUMENT naming the field and the accepted range. */
clcl_status clcl_loss_create(clcl_context *ctx, int n2, int dim, const clcl_loss_config *config,
                             clcl_loss **out);
void clcl_loss_free(clcl_loss *loss);

/* Loss and its gradient for h (n2, dim) at temperature tau (1e-4 <= tau <= 100) and
 * threshold theta (theta > 1: no detection). Writes dh (n2, dim) (=, not +=); h and dh may
 * not be the same buffer. labels, loss_value and stats may be NULL. Blocks until the results
 * are on the host. A row of h holding a NaN or an infinity is CLCL_ERR_NON_FINITE naming the
 * row; dh is then zero. */
clcl_status clcl_loss_forward_backward(clcl_loss *loss, const clcl_tensor *h,
                                       const clcl_loss_labels *labels, float tau, float theta,
                                       float *loss_value, clcl_tensor *dh, clcl_loss_stats *stats);

/* The same without the gradient. */
clcl_status clcl_loss_forward(clcl_loss *loss, const clcl_tensor *h, const clcl_loss_labels *labels,
                              float tau, float theta, float *loss_value, clcl_loss_stats *stats);

/* "fused, tiles 32x32x16, 2x2 per item, work-group 256, ..." (or "fused rows, ..." or
 * "unfused (CLBlast), ...") into buf; returns buf. */
const char *clcl_loss_describe(const clcl_loss *loss, char *buf, size_t size);

/* "attract" / "eliminate"; parsing is case-sensitive, an unknown name is CLCL_ERR_ARGUMENT. */
const char *clcl_fn_mode_name(clcl_fn_mode mode);
clcl_status clcl_fn_mode_parse(const char *text, clcl_fn_mode *mode);

#endif
