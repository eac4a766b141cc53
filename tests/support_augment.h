/* Double-precision C references of the augmentation kernels (cl/augment.cl, cl/blur.cl). */
#ifndef CLCL_TEST_SUPPORT_AUGMENT_H
#define CLCL_TEST_SUPPORT_AUGMENT_H

#include <stdint.h>

#include "clcl/augment.h"

/* The bilinear sample of one uint8 plane (row length w) at output pixel (oy, ox) of the
 * record's crop, before any flip, on the 0..255 scale. */
double ref_sample(const uint8_t *plane, int w, const clcl_augment_record *r, int oy, int ox);

/* torchvision's colour steps on one RGB pixel, 0..255 scale, in place. */
void ref_brightness(double c[3], double factor);
void ref_blend(double c[3], double other, double ratio); /* contrast: other = grey mean */
void ref_saturation(double c[3], double factor);
void ref_hue(double c[3], double shift);
double ref_grey(const double c[3]);

/* One output image (C, OH, OW) of the fused kernel: crop, flip, jitter, grayscale and
 * normalisation by mean / std (on the [0, 1] scale), from the uint8 (C, H, W) image. */
void ref_augment_view(const uint8_t *image, int channels, int height, int width,
                      const clcl_augment_record *r, int oh, int ow, const float mean[3],
                      const float std[3], double *out);

/* Blurs (C, H, W) in place with the normalised Gaussian of this sigma and odd kernel
 * size, borders reflected; sigma 0 leaves it. */
void ref_blur(double *x, int channels, int height, int width, double sigma, int kernel);

#endif
