/* Optimizers and the learning-rate schedule, on the device.
 *
 * SGD follows torch.optim.SGD (dampening 0): d = g + wd w; b = m b + d; d = d + m b
 * (Nesterov) or d = b; w = w - lr d. Its momentum buffer b holds no learning rate.
 *
 * LARS follows SimCLR's LARSOptimizer (classic momentum): d = g + wd w; for adapted
 * parameters the trust ratio is eta ||w|| / ||d|| (1 when either norm is 0) and
 * s = lr * trust, else s = lr; v = m v + s d; w = w - (m v + s d) (Nesterov) or w - v. Its
 * momentum buffer v holds the learning rate, as in SimCLR. Biases and batchnorm
 * parameters (clcl_param.excluded) get neither weight decay nor adaptation.
 *
 * Norms are reduced in a fixed order on the device (no atomics, no host round trip), so a
 * step gives the same bits every run on the same device. */
#ifndef CLCL_OPTIM_H
#define CLCL_OPTIM_H

#include <stdint.h>

#include "clcl/safetensors.h"
#include "clcl/tensor.h"

/* What a parameter is; names are torchvision's ("layer1.0.conv1.weight"). */
typedef enum {
    CLCL_PARAM_CONV_WEIGHT,
    CLCL_PARAM_BN_WEIGHT, /* gamma */
    CLCL_PARAM_BN_BIAS,   /* beta */
    CLCL_PARAM_LINEAR_WEIGHT,
    CLCL_PARAM_LINEAR_BIAS
} clcl_param_kind;

/* A trainable tensor and its gradient (same shape). */
typedef struct {
    char name[64];
    clcl_param_kind kind;
    int excluded;  /* 1: no weight decay and no LARS adaptation (biases, batchnorm) */
    int in_head;   /* 1: part of the projection head, not of the backbone */
    size_t fan_in; /* inputs per output: C R S for a conv, in for a linear */
    size_t fan_out;
    clcl_tensor value, grad;
} clcl_param;

typedef enum { CLCL_OPTIM_SGD, CLCL_OPTIM_LARS } clcl_optim_kind;

typedef struct {
    clcl_optim_kind kind;
    float momentum; /* 0: none (then no buffers are kept) */
    int nesterov;
    float weight_decay;
    /* 1: decay every parameter, excluded ones too, as torch.optim.SGD does; 0 (default):
     * biases and batchnorm parameters get no decay. LARS adaptation ignores this. */
    int decay_all;
    float trust_coefficient; /* LARS eta; 0 means 0.001 (SimCLR's) */
} clcl_optim_config;

typedef struct clcl_optim clcl_optim;

/* `params` (count of them) must outlive the optimizer; their momentum buffers start at 0. */
clcl_status clcl_optim_create(clcl_context *ctx, const clcl_optim_config *cfg, clcl_param *params,
                              int count, clcl_optim **out);
void clcl_optim_free(clcl_optim *opt);

/* One update of every parameter from its gradient with learning rate `lr`. */
clcl_status clcl_optim_step(clcl_optim *opt, float lr);

/* Steps taken so far (saved and restored with the state). */
int64_t clcl_optim_steps(const clcl_optim *opt);

/* The momentum buffer of parameter i (same shape), or NULL when momentum is 0. */
const clcl_tensor *clcl_optim_buffer(const clcl_optim *opt, int i);

/* The state as tensors "optim.momentum.<param name>" plus the I64 scalar "optim.steps",
 * and metadata "optim.kind" = "sgd" | "lars". */
clcl_status clcl_optim_save(const clcl_optim *opt, clcl_safetensors_writer *w);
/* Restores a state saved by clcl_optim_save for the same parameters: a missing buffer, a
 * shape that differs or another optimizer kind is CLCL_ERR_FORMAT naming it; nothing is
 * changed unless everything fits. */
clcl_status clcl_optim_load(clcl_optim *opt, const clcl_safetensors *st);

/* ---- learning-rate schedule ------------------------------------------------------------ */

typedef enum {
    CLCL_LR_SCALE_NONE,   /* lr = base */
    CLCL_LR_SCALE_LINEAR, /* lr = base * batch / 256 (SimCLR, Goyal et al.) */
    CLCL_LR_SCALE_SQRT    /* lr = base * sqrt(batch) (SimCLR's choice for LARS at small batch) */
} clcl_lr_scaling;

typedef struct {
    double base_lr;
    clcl_lr_scaling scaling;
    int batch_size;       /* for the scaling */
    int64_t warmup_steps; /* linear warm-up over these steps */
    int64_t total_steps;  /* cosine decay to 0 at this step; 0: constant after warm-up */
} clcl_lr_schedule;

/* The peak learning rate after scaling. */
double clcl_lr_peak(const clcl_lr_schedule *s);
/* The learning rate of step `step` (0-based): peak (step + 1) / warmup_steps during the
 * warm-up, then peak * (1 + cos(pi * (step - warmup) / (total - warmup))) / 2, and 0 from
 * total_steps on. */
double clcl_lr_at(const clcl_lr_schedule *s, int64_t step);

#endif
