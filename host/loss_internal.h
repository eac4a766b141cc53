/* Private to host/loss.c and host/loss_unfused.c: the loss object and the layout its kernels
 * share (cl/contrastive.cl and cl/contrastive_unfused.cl define the same numbers). */
#ifndef CLCL_LOSS_INTERNAL_H
#define CLCL_LOSS_INTERNAL_H

#include "clcl/loss.h"

#define LOSS_RF_FIELDS 7 /* float fields per row in rowf */
#define LOSS_RI_FIELDS 6 /* int fields per row in rowi */

/* result words (floats stored as their bits) */
enum {
    LOSS_R_LOSS = 0,
    LOSS_R_PARTNER,
    LOSS_R_POSSUM,
    LOSS_R_COUNT,
    LOSS_R_ABOVE,
    LOSS_R_TP,
    LOSS_R_SAME,
    LOSS_R_TOP1,
    LOSS_R_CAPPED,
    LOSS_R_BAD,
    LOSS_R_WORDS
};

/* The fused kernels' shape: (ti, tj) similarity tile, td features staged at a time, mi x mj
 * similarities per work-item, wg = (ti / mi) (tj / mj) work-items. */
typedef struct {
    int wg, ti, tj, td, mi, mj;
} loss_tiles;

/* The row-block kernels' shape (CLCL_LOSS_FUSED_ROWS): rb anchor rows per work-item, column
 * blocks of nv vectors of vw floats, kv feature vectors per step of the backward product,
 * work-groups of wg items; ld = 2N rounded up to a block of nv vw columns (the columns of
 * zt) and dp = d rounded up to kv vw (the row length of zp). */
typedef struct {
    int rb, vw, nv, kv, wg;
    int ld, dp;
} loss_rows;

/* Runtime arguments every kernel takes. */
typedef struct {
    float inv_tau;
    float theta; /* +inf when nothing is detected */
    float weight;
    int mode;
    float scale; /* 1 / (2N tau) */
    cl_mem labels;
    int has_labels;
} loss_params;

struct clcl_loss {
    clcl_context *ctx;
    int n2, dim;
    clcl_loss_config cfg;
    loss_tiles tiles;
    loss_rows rows_shape;
    char options[256]; /* -D options of cl/contrastive.cl */
    cl_kernel normalize, forward, backward, normalize_backward, reduce;
    cl_kernel rows_layout, rows_forward, rows_backward; /* fused rows only */
    cl_kernel rows, grad;                               /* unfused only */
    size_t rows_local, grad_local;
    cl_mem z;      /* (2N, d) normalised rows */
    cl_mem rnorm;  /* (2N) 1 / max(||h_i||, eps) */
    cl_mem rowf;   /* (LOSS_RF_FIELDS, 2N) */
    cl_mem rowi;   /* (LOSS_RI_FIELDS, 2N) */
    cl_mem labels; /* (2N) copy of host labels; zeros until then */
    cl_mem result; /* (LOSS_R_WORDS) */
    cl_mem sim;    /* (2N, 2N), unfused only */
    cl_mem zt;     /* z transposed, packed by column block: (ld / block, d, block), zero
                    * columns past 2N; fused rows only */
    cl_mem zp;     /* (2N, dp) z, zero features past d; fused rows only */
    cl_int result_init[LOSS_R_WORDS];
};

/* Builds the unfused kernels and allocates the similarity matrix. */
clcl_status clcl_loss_unfused_prepare(clcl_loss *loss);
/* rowf and rowi from loss->z, through the stored similarity matrix. */
clcl_status clcl_loss_unfused_forward(clcl_loss *loss, const loss_params *p);
/* dz (2N, d) = (G + G^T) z into dz; needs the forward's rowf, rowi and matrix. */
clcl_status clcl_loss_unfused_backward(clcl_loss *loss, const loss_params *p, cl_mem dz);

#endif
