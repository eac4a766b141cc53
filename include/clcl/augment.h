/* SimCLR's two-view augmentation and the evaluation transform, on the device.
 *
 * A batch of uint8 (N, C, H, W) images (C is 1 or 3) becomes float (2N, C, OH, OW): rows
 * [0, N) are every image's first view, rows [N, 2N) its second, the layout the loss
 * expects. The steps follow torchvision's SimCLR recipe: random resized crop, horizontal
 * flip, colour jitter (its four parts in a random order per image), grayscale, Gaussian
 * blur, then normalisation by a per-dataset mean and std. On single-channel images the
 * jitter is its brightness and contrast and there is no grayscale step, as torchvision's
 * transforms do to a one-channel tensor. See docs/augment.md.
 *
 * The random parameters are drawn on the host, per image and view, from (seed, epoch,
 * image id) alone, so a seed fixes a batch whatever the device, the batch composition or
 * the thread that drew it. clcl_augment_draw() needs no device and may run on a loader
 * thread; clcl_augment_apply() uploads the records once, runs one fused kernel
 * (crop .. normalisation), then the blur. The evaluation transform (resize the short side,
 * centre-crop, normalise) runs through the same kernel with fixed records. */
#ifndef CLCL_AUGMENT_H
#define CLCL_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "clcl/dataset.h"
#include "clcl/runtime.h"
#include "clcl/tensor.h"

/* How the blur is computed. AUTO picks by clcl_blur_choose(). */
typedef enum { CLCL_BLUR_AUTO, CLCL_BLUR_DIRECT, CLCL_BLUR_FFT } clcl_blur_method;

/* The recipe. Probabilities are in [0, 1]; a jitter strength of 0 turns that part off.
 * Start from CLCL_AUGMENT_DEFAULTS (the recipe for ImageNet-size images) or from
 * clcl_augment_config_default() (adjusted to the image size), then change fields. */
typedef struct {
    int out_height, out_width; /* output size; 0 takes the input's */
    float crop_p;              /* probability of a random crop; otherwise the whole image */
    float crop_scale_min, crop_scale_max;   /* crop area / image area */
    float crop_ratio_min, crop_ratio_max;   /* crop width / height, drawn log-uniformly */
    float flip_p;                           /* horizontal flip */
    float jitter_p;                         /* colour jitter, as one block */
    float brightness, contrast, saturation; /* factors drawn in [max(0, 1 - s), 1 + s] */
    float hue;                              /* shift drawn in [-hue, hue], hue <= 0.5 */
    float gray_p;                           /* grayscale */
    float blur_p;                           /* Gaussian blur */
    float blur_sigma_min, blur_sigma_max;   /* sigma drawn uniformly, in output pixels */
    int blur_kernel;                        /* odd kernel size; 0: 10% of the output's short side */
    clcl_blur_method blur_method;           /* AUTO: by the measured crossover */
    float mean[3], std[3];                  /* per channel, on the [0, 1] scale: (x - mean) / std */
} clcl_augment_config;

#define CLCL_AUGMENT_DEFAULTS                                                                      \
    ((clcl_augment_config){.out_height = 0,                                                        \
                           .out_width = 0,                                                         \
                           .crop_p = 1.0f,                                                         \
                           .crop_scale_min = 0.08f,                                                \
                           .crop_scale_max = 1.0f,                                                 \
                           .crop_ratio_min = 3.0f / 4.0f,                                          \
                           .crop_ratio_max = 4.0f / 3.0f,                                          \
                           .flip_p = 0.5f,                                                         \
                           .jitter_p = 0.8f,                                                       \
                           .brightness = 0.4f,                                                     \
                           .contrast = 0.4f,                                                       \
                           .saturation = 0.4f,                                                     \
                           .hue = 0.1f,                                                            \
                           .gray_p = 0.2f,                                                         \
                           .blur_p = 0.5f,                                                         \
                           .blur_sigma_min = 0.1f,                                                 \
                           .blur_sigma_max = 2.0f,                                                 \
                           .blur_kernel = 0,                                                       \
                           .blur_method = CLCL_BLUR_AUTO,                                          \
                           .mean = {0.0f, 0.0f, 0.0f},                                             \
                           .std = {1.0f, 1.0f, 1.0f}})

/* CLCL_AUGMENT_DEFAULTS adjusted to images of this size: crop scale from 0.2 when the
 * short side is at most 64 pixels, no blur when it is at most 32. */
clcl_augment_config clcl_augment_config_default(int height, int width);

/* The usual per-channel mean and std of a dataset, on the [0, 1] scale, for `channels`
 * channels (a single-channel dataset fills element 0; folder datasets get ImageNet's).
 * CLCL_ERR_ARGUMENT when the dataset has another number of channels. */
clcl_status clcl_augment_normalization(clcl_dataset_kind kind, int channels, float mean[3],
                                       float std[3]);

/* Per-channel mean and (population) std of n uint8 (C, H, W) images, on the [0, 1] scale. */
void clcl_augment_statistics(const uint8_t *images, int n, int channels, int height, int width,
                             double mean[3], double std[3]);

/* The parameters of one output image, as the kernel reads them (uploaded as they are).
 * Sample coordinates: src = clamp((o + offset + 0.5) * scale - 0.5, 0, limit) + origin. */
typedef struct {
    float top, left;          /* the crop's origin in source pixels (integers) */
    float scale_y, scale_x;   /* source pixels per output pixel */
    float limit_y, limit_x;   /* crop height - 1, width - 1 */
    float offset_y, offset_x; /* output offset in the resized frame (centre crop) */
    float flip;               /* 1: mirror horizontally */
    float jitter;             /* 1: apply the colour jitter below */
    float brightness, contrast, saturation, hue;
    float order;  /* jitter order: step k is (order >> 2k) & 3: 0 brightness, 1 contrast,
                     2 saturation, 3 hue */
    float gray;   /* 1: grayscale */
    float sigma;  /* blur sigma; 0: no blur */
    float source; /* index of the source image in the batch */
    float unused[6];
} clcl_augment_record;

/* Draws 2n records, records[v * n + i] for view v of image i, from the stream of
 * (seed, epoch, ids[i], v); ids NULL means ids[i] = i. Pass the dataset indices as ids so
 * an image's views do not depend on where it falls in a batch. No device needed. */
clcl_status clcl_augment_draw(const clcl_augment_config *config, int channels, int height,
                              int width, uint64_t seed, uint64_t epoch, const int *ids, int n,
                              clcl_augment_record *records);

/* The blur's odd kernel size for this config and output size. */
int clcl_augment_blur_kernel(const clcl_augment_config *config, int out_height, int out_width);

typedef struct clcl_augment clcl_augment;

/* An augmenter for batches of up to max_batch (channels, height, width) images. It owns its
 * device buffers (the uint8 staging batch, the records, the blur's workspace). */
clcl_status clcl_augment_create(clcl_context *ctx, const clcl_augment_config *config, int channels,
                                int height, int width, int max_batch, clcl_augment **out);
void clcl_augment_free(clcl_augment *aug);
/* The output size (OH, OW) and the blur's kernel size and method actually used. */
void clcl_augment_output_size(const clcl_augment *aug, int *out_height, int *out_width);
int clcl_augment_blur_size(const clcl_augment *aug);
clcl_blur_method clcl_augment_blur_method(const clcl_augment *aug);

/* out (2n, C, OH, OW) = the views the records describe, of images (n, C, H, W) uint8 on
 * the device. Written (=), not accumulated. Enqueued; the records are copied before return.
 */
clcl_status clcl_augment_apply(clcl_augment *aug, cl_mem images, int n,
                               const clcl_augment_record *records, clcl_tensor *out);

/* The staged path, for a trainer whose uploads should overlap compute. Two slots alternate:
 * clcl_augment_stage() copies a batch's host images (n, C, H, W) uint8 and its 2n records
 * into the slot's pinned host memory and enqueues their upload on the context's transfer
 * queue without waiting, so the caller's memory is free on return; clcl_augment_run() makes
 * the compute queue wait for that upload and enqueues the kernels, writing out (2n, C, OH,
 * OW) as clcl_augment_apply() does. Stage batch k + 1 into the other slot while batch k
 * trains. A slot may be staged again once it has been run; the upload then also waits for
 * the kernels that read it last. */
clcl_status clcl_augment_stage(clcl_augment *aug, int slot, const uint8_t *images, int n,
                               const clcl_augment_record *records);
clcl_status clcl_augment_run(clcl_augment *aug, int slot, clcl_tensor *out);

/* Uploads host images (n, C, H, W) uint8 into the augmenter's staging buffer, draws the
 * records from (seed, epoch, ids) and applies them: the whole step for a trainer. */
clcl_status clcl_augment_batch(clcl_augment *aug, const uint8_t *images, int n, uint64_t seed,
                               uint64_t epoch, const int *ids, clcl_tensor *out);

/* ---- the evaluation transform --------------------------------------------------------- */

typedef struct {
    int resize;                /* short side resized to this; 0 keeps the input's */
    int out_height, out_width; /* centre crop; 0 takes the resized size */
    float mean[3], std[3];
} clcl_eval_transform_config;

typedef struct clcl_eval_transform clcl_eval_transform;

clcl_status clcl_eval_transform_create(clcl_context *ctx, const clcl_eval_transform_config *config,
                                       int channels, int height, int width, int max_batch,
                                       clcl_eval_transform **out);
void clcl_eval_transform_free(clcl_eval_transform *ev);
void clcl_eval_transform_output_size(const clcl_eval_transform *ev, int *out_height,
                                     int *out_width);
/* The fixed record of the evaluation transform (source 0). */
clcl_augment_record clcl_eval_transform_record(const clcl_eval_transform *ev);
/* out (n, C, OH, OW) = the transform of images (n, C, H, W) uint8 on the device. */
clcl_status clcl_eval_transform_apply(clcl_eval_transform *ev, cl_mem images, int n,
                                      clcl_tensor *out);
/* The same from host images, through a staging buffer. */
clcl_status clcl_eval_transform_batch(clcl_eval_transform *ev, const uint8_t *images, int n,
                                      clcl_tensor *out);

/* ---- the blur on its own (tests, benchmarks) ------------------------------------------ */

/* The method AUTO resolves to for this kernel size and image size, from the crossover
 * measured by bench/bench_blur (docs/augment.md). */
clcl_blur_method clcl_blur_choose(int kernel, int height, int width);

typedef struct clcl_blur clcl_blur;

/* A blur of up to max_images (channels, height, width) float images with an odd kernel
 * size `kernel` (radius kernel / 2 at most min(height, width) - 1). */
clcl_status clcl_blur_create(clcl_context *ctx, int max_images, int channels, int height, int width,
                             int kernel, clcl_blur_method method, clcl_blur **out);
void clcl_blur_free(clcl_blur *blur);
clcl_blur_method clcl_blur_get_method(const clcl_blur *blur);

/* Blurs image i of x (n, C, H, W) in place with sigma[i] (host values; 0 leaves it). */
clcl_status clcl_blur_apply(clcl_blur *blur, clcl_tensor *x, const float *sigma, int n);

/* Normalised weights of the blur: w[0] centre, w[k] at +-k, k <= kernel / 2 (double). */
void clcl_blur_weights(double sigma, int kernel, double *w);

#endif
