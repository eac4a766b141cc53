/* ResNet-18 and ResNet-50 backbones with a projection head, on the device.
 *
 * Layout and names are torchvision's (ResNet v1.5: a bottleneck's stride sits in its 3x3
 * conv): conv1, bn1, [maxpool], layer1..layer4, global average pool; downsample.0 (1x1
 * conv) and downsample.1 (batchnorm) where a block changes size. There is no fc: the
 * backbone's output is the pooled features (N, F). The projection head follows, as
 * head.0 linear (F -> hidden, with bias), head.1 batchnorm1d, head.2 ReLU, head.3 linear
 * (hidden -> out, with a bias unless head_no_last_bias).
 *
 * Stems: CIFAR (conv1 3x3 stride 1 pad 1, no max pool) or ImageNet (7x7 stride 2 pad 3,
 * then max pool 3x3 stride 2 pad 1). Channel counts are round(base * width), rounding
 * half up, at least 1, for base 64, 128, 256, 512 (a bottleneck's output is 4 times its
 * rounded width).
 *
 * Weights start as torchvision's: Kaiming normal (fan out, ReLU gain) for convs, gamma 1
 * and beta 0, linear weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as torch's
 * default; all drawn on the host from clcl_rng seeded with `seed`, parameter by parameter
 * in list order, so a seed fixes the weights whatever the device.
 *
 * Gradients follow the layers' rule: backward WRITES (=) every parameter gradient; the
 * residual shortcut's two input gradients are summed inside. Activations come from a pool
 * the model owns, reset at every forward: outputs returned by a forward stay valid until
 * the next forward, and a training step allocates nothing after the first. */
#ifndef CLCL_MODEL_H
#define CLCL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "clcl/optim.h"
#include "clcl/safetensors.h"
#include "clcl/tensor.h"

typedef enum { CLCL_ARCH_RESNET18, CLCL_ARCH_RESNET50 } clcl_arch;
typedef enum { CLCL_STEM_CIFAR, CLCL_STEM_IMAGENET } clcl_stem;
typedef enum { CLCL_MODE_TRAIN, CLCL_MODE_EVAL } clcl_mode;

typedef struct {
    clcl_arch arch;
    clcl_stem stem;
    int in_channels;       /* 0 means 3 */
    float width;           /* channel multiplier; 0 means 1 */
    int head_hidden;       /* 0 means the feature size F */
    int head_out;          /* 0 means 128 */
    int head_no_last_bias; /* 1: head.3 has no bias */
    uint64_t seed;         /* of the initial weights */
} clcl_model_config;

/* Running statistics and batch counters, by torchvision's names. */
typedef struct {
    char name[64];
    clcl_tensor *tensor; /* running_mean or running_var (C); NULL for num_batches_tracked */
    int64_t *count;      /* num_batches_tracked; NULL for the others */
    int in_head;
} clcl_model_buffer;

typedef struct clcl_model clcl_model;

/* "resnet18", "resnet50"; "cifar", "imagenet". Parsing an unknown name is
 * CLCL_ERR_ARGUMENT listing the known ones. */
const char *clcl_arch_name(clcl_arch arch);
const char *clcl_stem_name(clcl_stem stem);
clcl_status clcl_arch_parse(const char *name, clcl_arch *out);
clcl_status clcl_stem_parse(const char *name, clcl_stem *out);

/* round(base * width) as the model rounds it. */
int clcl_model_channels(int base, float width);

/* Parameter counts (weights, gamma and beta; no running statistics) without building
 * anything on a device. */
clcl_status clcl_model_count(const clcl_model_config *cfg, size_t *backbone, size_t *head);

clcl_status clcl_model_create(clcl_context *ctx, const clcl_model_config *cfg, clcl_model **out);
void clcl_model_free(clcl_model *m);

/* The configuration with every default filled in. */
const clcl_model_config *clcl_model_config_get(const clcl_model *m);
int clcl_model_feature_dim(const clcl_model *m);
int clcl_model_projection_dim(const clcl_model *m);

/* Every parameter in torchvision's order (backbone, then head.*); the array is the
 * model's and lives as long as it. */
clcl_param *clcl_model_params(clcl_model *m, int *count);
const clcl_model_buffer *clcl_model_buffers(const clcl_model *m, int *count);

/* x (N, in_channels, H, W) -> features (N, F) and projection (N, out). Either output may
 * be NULL; the tensors handed back are views of the model's pool (do not free them).
 * Training mode uses batch statistics and updates the running ones (momentum 0.1, eps
 * 1e-5) and keeps what backward needs; x must stay unchanged until backward. */
clcl_status clcl_model_forward(clcl_model *m, const clcl_tensor *x, clcl_mode mode,
                               clcl_tensor *features, clcl_tensor *projection);
/* The backbone alone (kNN features, linear probe): x -> features (N, F). */
clcl_status clcl_model_forward_backbone(clcl_model *m, const clcl_tensor *x, clcl_mode mode,
                                        clcl_tensor *features);

/* After a training-mode forward: writes every parameter gradient from dproj (N, out)
 * and/or dfeat (N, F), a gradient that enters at the features (NULL: none). Without
 * dproj the head's gradients are written as 0; dproj needs a full forward. */
clcl_status clcl_model_backward(clcl_model *m, const clcl_tensor *dproj, const clcl_tensor *dfeat);

/* Device buffers the model's pools have allocated (constant from the second step on), and
 * the bytes they hold (activations, gradients in flight, the layers' scratch). */
size_t clcl_model_allocations(const clcl_model *m);
size_t clcl_model_activation_bytes(const clcl_model *m);

/* ---- safetensors ---------------------------------------------------------------------
 * Files hold every parameter and buffer by torchvision's name (num_batches_tracked as an
 * I64 scalar) and "__metadata__" with "format": "pt" and the configuration as clcl.arch,
 * clcl.stem, clcl.in_channels, clcl.width, clcl.head_hidden, clcl.head_out,
 * clcl.head_last_bias. A backbone-only file loads into torchvision's resnet18/50 with
 * strict=False, missing only fc.weight and fc.bias. */
enum {
    CLCL_MODEL_BACKBONE_ONLY = 1,    /* save: no head.*; load: ignore head.*, keep the head */
    CLCL_MODEL_IGNORE_UNEXPECTED = 2 /* load: skip names the model lacks (torchvision's fc.*) */
};

clcl_status clcl_model_write(clcl_model *m, clcl_safetensors_writer *w, int flags);
clcl_status clcl_model_save(clcl_model *m, const char *path, int flags);
/* Loads all or nothing: a missing or unexpected name, a dtype or a shape that differs is
 * CLCL_ERR_FORMAT naming the file and the tensors, and the model is left unchanged. */
clcl_status clcl_model_read(clcl_model *m, const clcl_safetensors *st, int flags);
clcl_status clcl_model_load(clcl_model *m, const char *path, int flags);
/* The configuration a clcl file records (the seed is 0). */
clcl_status clcl_model_config_read(const clcl_safetensors *st, clcl_model_config *cfg);

#endif
