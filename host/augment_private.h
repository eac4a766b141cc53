/* Private parts of the augmentation module shared by augment.c, blur.c and blur_fft.c. */
#ifndef CLCL_AUGMENT_PRIVATE_H
#define CLCL_AUGMENT_PRIVATE_H

#include <clFFT.h>

#include "clcl/augment.h"

struct clcl_blur {
    clcl_context *ctx;
    clcl_blur_method method; /* DIRECT or FFT, never AUTO */
    int max_images, channels, height, width, kernel, radius;
    cl_mem tmp;     /* direct: (max_images, C, H, W) float, the row pass's result */
    cl_mem weights; /* (max_images, radius + 1) float, for clcl_blur_apply() */
    float *host_weights;

    /* FFT path: planes of (ph, pw) reals and their (ph, pw / 2 + 1) complex spectra. */
    int ph, pw;
    cl_mem padded, spectrum, fft_tmp;
    clfftPlanHandle forward, backward;
    int fft_ready; /* bits: 1 clFFT set up, 2 forward plan made, 4 backward plan made */
    int baked_planes;
};

/* Blurs images [0, n) of x (n, C, H, W) with device weights (n, radius + 1) starting at
 * float `offset` of `weights`; a row whose first weight is 0 leaves its image alone. */
clcl_status clcl_blur_run(clcl_blur *blur, cl_mem x, int n, cl_mem weights, int offset);

/* Float weights (radius + 1) for sigma (all 0 when sigma is 0). */
void clcl_blur_weights_float(float sigma, int kernel, float *w);

/* Launches an element-wise kernel over `items` work-items (work-groups of at most 256). */
clcl_status clcl_blur_launch(clcl_context *ctx, cl_kernel kernel, size_t items);

/* The clFFT path (blur_fft.c). */
clcl_status clcl_blur_fft_init(clcl_blur *blur);
void clcl_blur_fft_release(clcl_blur *blur);
clcl_status clcl_blur_fft_run(clcl_blur *blur, cl_mem x, int n, cl_mem weights, int offset);

/* The smallest length >= n whose only prime factors are 2, 3, 5 and 7, and even. */
int clcl_fft_length(int n);

#endif
