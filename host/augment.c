/* SimCLR augmentation: the recipe, the host-side draws, the fused kernel's launch and the
 * evaluation transform. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "augment_private.h"
#include "check.h"
#include "clcl/rng.h"

#define REC_FLOATS ((int)(sizeof(clcl_augment_record) / sizeof(float)))
_Static_assert(sizeof(clcl_augment_record) == 24 * sizeof(float),
               "clcl_augment_record must match AUG_REC in cl/augment.cl");

/* ---- the recipe ---------------------------------------------------------------------- */

clcl_augment_config clcl_augment_config_default(int height, int width) {
    clcl_augment_config c = CLCL_AUGMENT_DEFAULTS;
    int side = height < width ? height : width;
    if (side <= 64)
        c.crop_scale_min = 0.2f;
    if (side <= 32)
        c.blur_p = 0.0f;
    return c;
}

typedef struct {
    clcl_dataset_kind kind;
    const char *name; /* as clcl_dataset_kind_parse() spells it */
    int channels;
    float mean[3], std[3];
} norm_entry;

/* The values the literature uses (docs/augment.md says where each comes from). */
static const norm_entry norms[] = {
    {CLCL_DATASET_MNIST, "mnist", 1, {0.1307f}, {0.3081f}},
    {CLCL_DATASET_FASHION_MNIST, "fashion-mnist", 1, {0.2860f}, {0.3530f}},
    {CLCL_DATASET_CIFAR10, "cifar10", 3, {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}},
    {CLCL_DATASET_CIFAR100,
     "cifar100",
     3,
     {0.5071f, 0.4865f, 0.4409f},
     {0.2673f, 0.2564f, 0.2762f}},
    {CLCL_DATASET_STL10, "stl10", 3, {0.4467f, 0.4398f, 0.4066f}, {0.2603f, 0.2566f, 0.2713f}},
    {CLCL_DATASET_FOLDER, "folder", 3, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}},
};

clcl_status clcl_augment_normalization(clcl_dataset_kind kind, int channels, float mean[3],
                                       float std[3]) {
    for (size_t i = 0; i < sizeof norms / sizeof *norms; i++) {
        if (norms[i].kind != kind)
            continue;
        if (norms[i].channels != channels)
            return clcl_fail(CLCL_ERR_ARGUMENT,
                             "augment: the %s normalisation is for %d channel(s), not %d; use "
                             "clcl_augment_statistics() on the data instead",
                             norms[i].name, norms[i].channels, channels);
        for (int c = 0; c < 3; c++) {
            mean[c] = c < channels ? norms[i].mean[c] : 0.0f;
            std[c] = c < channels ? norms[i].std[c] : 1.0f;
        }
        return CLCL_OK;
    }
    return clcl_fail(CLCL_ERR_ARGUMENT, "augment: no normalisation for dataset kind %d", (int)kind);
}

void clcl_augment_statistics(const uint8_t *images, int n, int channels, int height, int width,
                             double mean[3], double std[3]) {
    size_t plane = (size_t)height * width;
    for (int c = 0; c < 3; c++) {
        double sum = 0.0, sq = 0.0;
        if (c >= channels) {
            mean[c] = 0.0;
            std[c] = 1.0;
            continue;
        }
        for (int i = 0; i < n; i++) {
            const uint8_t *p = images + ((size_t)i * channels + c) * plane;
            uint64_t s = 0, s2 = 0; /* exact per image */
            for (size_t k = 0; k < plane; k++) {
                s += p[k];
                s2 += (uint64_t)p[k] * p[k];
            }
            sum += (double)s;
            sq += (double)s2;
        }
        double count = (double)n * plane;
        double m = sum / count;
        mean[c] = m / 255.0;
        std[c] = sqrt(fmax(sq / count - m * m, 0.0)) / 255.0;
    }
}

int clcl_augment_blur_kernel(const clcl_augment_config *config, int out_height, int out_width) {
    int side = out_height < out_width ? out_height : out_width;
    int k = config->blur_kernel > 0 ? config->blur_kernel : (int)(0.1 * side);
    if (config->blur_kernel <= 0 && k % 2 == 0)
        k++;
    if (config->blur_kernel <= 0 && k < 3)
        k = 3;
    return k;
}

static clcl_status check_probability(const char *name, float p) {
    if (!(p >= 0.0f && p <= 1.0f))
        return clcl_fail(CLCL_ERR_ARGUMENT, "augment: %s = %g; expected a probability in [0, 1]",
                         name, (double)p);
    return CLCL_OK;
}

static clcl_status check_range(const char *name, float lo, float hi, float min, float max) {
    if (!(lo >= min && lo <= hi && hi <= max))
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "augment: %s range [%g, %g]; expected %g <= min <= max <= %g", name,
                         (double)lo, (double)hi, (double)min, (double)max);
    return CLCL_OK;
}

static clcl_status check_config(const clcl_augment_config *c, int channels) {
    CLCL_TRY(check_probability("crop_p", c->crop_p));
    CLCL_TRY(check_probability("flip_p", c->flip_p));
    CLCL_TRY(check_probability("jitter_p", c->jitter_p));
    CLCL_TRY(check_probability("gray_p", c->gray_p));
    CLCL_TRY(check_probability("blur_p", c->blur_p));
    CLCL_TRY(check_range("crop_scale", c->crop_scale_min, c->crop_scale_max, 1e-6f, 1.0f));
    CLCL_TRY(check_range("crop_ratio", c->crop_ratio_min, c->crop_ratio_max, 1e-3f, 1e3f));
    CLCL_TRY(check_range("brightness", 0.0f, c->brightness, 0.0f, 1e3f));
    CLCL_TRY(check_range("contrast", 0.0f, c->contrast, 0.0f, 1e3f));
    CLCL_TRY(check_range("saturation", 0.0f, c->saturation, 0.0f, 1e3f));
    CLCL_TRY(check_range("hue", 0.0f, c->hue, 0.0f, 0.5f));
    CLCL_TRY(check_range("blur_sigma", c->blur_sigma_min, c->blur_sigma_max, 1e-3f, 1e3f));
    if (c->blur_kernel < 0 || (c->blur_kernel > 0 && c->blur_kernel % 2 == 0))
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "augment: blur_kernel = %d; expected an odd size, or 0 for 10%% of the "
                         "output side",
                         c->blur_kernel);
    if (channels != 1 && channels != 3)
        return clcl_fail(CLCL_ERR_ARGUMENT, "augment: %d channels; expected 1 or 3", channels);
    for (int ch = 0; ch < channels; ch++)
        if (!(c->std[ch] > 0.0f) || !isfinite(c->mean[ch]))
            return clcl_fail(CLCL_ERR_ARGUMENT,
                             "augment: normalisation of channel %d is mean %g, std %g; expected "
                             "a finite mean and std > 0",
                             ch, (double)c->mean[ch], (double)c->std[ch]);
    return CLCL_OK;
}

/* ---- the draws ----------------------------------------------------------------------- */

/* A record that samples the crop box (top, left, h, w) onto (oh, ow), nothing else. */
static clcl_augment_record crop_record(int top, int left, int h, int w, int oh, int ow) {
    return (clcl_augment_record){.top = (float)top,
                                 .left = (float)left,
                                 .scale_y = (float)h / (float)oh,
                                 .scale_x = (float)w / (float)ow,
                                 .limit_y = (float)(h - 1),
                                 .limit_x = (float)(w - 1),
                                 .brightness = 1.0f,
                                 .contrast = 1.0f,
                                 .saturation = 1.0f};
}

/* torchvision's RandomResizedCrop.get_params: ten tries at a box of random area and
 * log-uniform aspect ratio, then a centre crop of the clamped ratio. Python's round() is
 * round-half-even, as rint() is in the default rounding mode. */
static void draw_crop(const clcl_augment_config *c, clcl_rng *rng, int height, int width,
                      int box[4]) {
    double area = (double)height * width;
    double log_lo = log(c->crop_ratio_min), log_hi = log(c->crop_ratio_max);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * clcl_rng_range(rng, c->crop_scale_min, c->crop_scale_max);
        double ratio = exp(clcl_rng_range(rng, log_lo, log_hi));
        int w = (int)rint(sqrt(target * ratio)), h = (int)rint(sqrt(target / ratio));
        if (w > 0 && w <= width && h > 0 && h <= height) {
            box[0] = (int)clcl_rng_below(rng, (uint64_t)(height - h + 1));
            box[1] = (int)clcl_rng_below(rng, (uint64_t)(width - w + 1));
            box[2] = h;
            box[3] = w;
            return;
        }
    }
    double in_ratio = (double)width / height;
    int w = width, h = height;
    if (in_ratio < c->crop_ratio_min)
        h = (int)rint(w / (double)c->crop_ratio_min);
    else if (in_ratio > c->crop_ratio_max)
        w = (int)rint(h * (double)c->crop_ratio_max);
    box[0] = (height - h) / 2;
    box[1] = (width - w) / 2;
    box[2] = h;
    box[3] = w;
}

/* A factor in [max(0, 1 - s), 1 + s]; 1 when the strength is 0. */
static float draw_factor(clcl_rng *rng, float strength) {
    if (strength <= 0.0f)
        return 1.0f;
    double lo = 1.0 - strength < 0.0 ? 0.0 : 1.0 - strength;
    return (float)clcl_rng_range(rng, lo, 1.0 + strength);
}

static void draw_jitter(const clcl_augment_config *c, clcl_rng *rng, clcl_augment_record *r) {
    int perm[4] = {0, 1, 2, 3};
    r->jitter = 1.0f;
    r->brightness = draw_factor(rng, c->brightness);
    r->contrast = draw_factor(rng, c->contrast);
    r->saturation = draw_factor(rng, c->saturation);
    r->hue = c->hue > 0.0f ? (float)clcl_rng_range(rng, -c->hue, c->hue) : 0.0f;
    clcl_rng_shuffle(rng, perm, 4);
    r->order = (float)(perm[0] | perm[1] << 2 | perm[2] << 4 | perm[3] << 6);
}

/* One view of one image, from its own stream. */
static clcl_augment_record draw_view(const clcl_augment_config *c, int channels, int height,
                                     int width, int oh, int ow, clcl_rng *rng) {
    int box[4] = {0, 0, height, width};
    if (clcl_rng_uniform(rng) < c->crop_p)
        draw_crop(c, rng, height, width, box);
    clcl_augment_record r = crop_record(box[0], box[1], box[2], box[3], oh, ow);
    r.flip = clcl_rng_uniform(rng) < c->flip_p ? 1.0f : 0.0f;
    if (channels == 3) {
        if (clcl_rng_uniform(rng) < c->jitter_p)
            draw_jitter(c, rng, &r);
        r.gray = clcl_rng_uniform(rng) < c->gray_p ? 1.0f : 0.0f;
    } else if (c->jitter_p > 0.0f && clcl_rng_uniform(rng) < c->jitter_p) {
        /* Brightness and contrast only. Without jitter nothing is drawn, so such a view's
         * stream is what it was before single-channel images had a jitter. */
        draw_jitter(c, rng, &r);
        r.saturation = 1.0f;
        r.hue = 0.0f;
    }
    if (clcl_rng_uniform(rng) < c->blur_p)
        r.sigma = (float)clcl_rng_range(rng, c->blur_sigma_min, c->blur_sigma_max);
    return r;
}

static void output_size(const clcl_augment_config *c, int height, int width, int *oh, int *ow) {
    *oh = c->out_height > 0 ? c->out_height : height;
    *ow = c->out_width > 0 ? c->out_width : width;
}

clcl_status clcl_augment_draw(const clcl_augment_config *config, int channels, int height,
                              int width, uint64_t seed, uint64_t epoch, const int *ids, int n,
                              clcl_augment_record *records) {
    int oh, ow;
    CLCL_TRY(check_config(config, channels));
    if (height < 1 || width < 1 || n < 1)
        return clcl_fail(CLCL_ERR_SHAPE, "augment: %d images of %dx%d; expected positive sizes", n,
                         height, width);
    output_size(config, height, width, &oh, &ow);

    /* Stream (epoch, id, view): distinct for epochs below 2^30 and ids below 2^32. */
    for (int v = 0; v < 2; v++) {
        for (int i = 0; i < n; i++) {
            uint64_t id = ids ? (uint64_t)(uint32_t)ids[i] : (uint64_t)i;
            clcl_rng rng;
            clcl_rng_seed_stream(&rng, seed, epoch << 33 | id << 1 | (uint64_t)v);
            records[(size_t)v * n + i] = draw_view(config, channels, height, width, oh, ow, &rng);
            records[(size_t)v * n + i].source = (float)i;
        }
    }
    return CLCL_OK;
}

/* ---- running the kernel -------------------------------------------------------------- */

/* What the augmenter and the evaluation transform share: the fused kernel's launch. */
typedef struct {
    clcl_context *ctx;
    int channels, height, width, oh, ow, max_batch;
    float scale[3], bias[3]; /* out = v * scale + bias, v on the 0..255 scale */
    cl_mem staging;          /* (max_batch, C, H, W) uint8 */
    size_t local;            /* work-group size of the fused kernel, a power of two */
} transform;

static clcl_status transform_init(transform *t, clcl_context *ctx, const float *mean,
                                  const float *std, int channels, int height, int width,
                                  int max_batch) {
    cl_kernel k;
    size_t max_local;
    t->ctx = ctx;
    t->channels = channels;
    t->height = height;
    t->width = width;
    t->max_batch = max_batch;
    for (int c = 0; c < 3; c++) {
        t->scale[c] = c < channels ? (float)(1.0 / (255.0 * std[c])) : 0.0f;
        t->bias[c] = c < channels ? (float)(-(double)mean[c] / std[c]) : 0.0f;
    }

    /* The largest power-of-two work-group the kernel and the device allow, up to 256, whose
     * reduction (one float per work-item) fits in local memory. */
    CLCL_TRY(clcl_context_kernel(ctx, "augment", "augment", NULL, &k));
    CLCL_TRY(clcl_kernel_max_work_group(ctx, k, &max_local));
    cl_ulong local_mem = clcl_context_device(ctx)->local_mem;
    for (t->local = 1; t->local * 2 <= max_local && t->local * 2 <= 256 &&
                       t->local * 2 * sizeof(float) <= local_mem;)
        t->local *= 2;
    return clcl_buffer_create(ctx, (size_t)max_batch * channels * height * width,
                              "augmentation input batch", &t->staging);
}

static void transform_release(transform *t) {
    if (t->staging)
        clReleaseMemObject(t->staging);
    t->staging = NULL;
}

static clcl_status check_output(const transform *t, const clcl_tensor *out, int count,
                                const char *who) {
    char got[64];
    if (out->ndim != 4 || out->shape[0] != count || out->shape[1] != t->channels ||
        out->shape[2] != t->oh || out->shape[3] != t->ow)
        return clcl_fail(CLCL_ERR_SHAPE, "%s: out is %s; expected (%d, %d, %d, %d)", who,
                         clcl_shape_string(out->ndim, out->shape, got, sizeof got), count,
                         t->channels, t->oh, t->ow);
    return CLCL_OK;
}

/* out (count, C, OH, OW) from images (n, C, H, W) with `count` device records. */
static clcl_status transform_run(transform *t, cl_mem images, int n, cl_mem records, int count,
                                 clcl_tensor *out) {
    cl_kernel k;
    size_t global = (size_t)count * t->local, bytes = 0;
    size_t need = (size_t)n * t->channels * t->height * t->width;

    CLCL_TRY_CL(clGetMemObjectInfo(images, CL_MEM_SIZE, sizeof bytes, &bytes, NULL));
    if (bytes < need)
        return clcl_fail(CLCL_ERR_SHAPE,
                         "augment: the image buffer holds %zu bytes; %d images of (%d, %d, %d) "
                         "uint8 need %zu",
                         bytes, n, t->channels, t->height, t->width, need);
    CLCL_TRY(clcl_context_kernel(t->ctx, "augment", "augment", NULL, &k));
    CLCL_TRY(clcl_kernel_args(
        k, CLCL_ARG_MEM(images), CLCL_ARG_INT(n), CLCL_ARG_INT(t->channels),
        CLCL_ARG_INT(t->height), CLCL_ARG_INT(t->width), CLCL_ARG_MEM(records), CLCL_ARG_INT(count),
        CLCL_ARG_INT(t->oh), CLCL_ARG_INT(t->ow), CLCL_ARG_FLOAT(t->scale[0]),
        CLCL_ARG_FLOAT(t->scale[1]), CLCL_ARG_FLOAT(t->scale[2]), CLCL_ARG_FLOAT(t->bias[0]),
        CLCL_ARG_FLOAT(t->bias[1]), CLCL_ARG_FLOAT(t->bias[2]), CLCL_ARG_MEM(out->buf),
        CLCL_ARG_LOCAL(t->local * sizeof(float))));
    return clcl_launch(t->ctx, k, 1, &global, &t->local);
}

static clcl_status upload_images(transform *t, const uint8_t *images, int n) {
    if (n < 1 || n > t->max_batch)
        return clcl_fail(CLCL_ERR_SHAPE, "augment: a batch of %d images; this one takes 1 to %d", n,
                         t->max_batch);
    CLCL_TRY_CL(clEnqueueWriteBuffer(clcl_context_queue(t->ctx), t->staging, CL_TRUE, 0,
                                     (size_t)n * t->channels * t->height * t->width, images, 0,
                                     NULL, NULL));
    return CLCL_OK;
}

/* ---- the augmenter ------------------------------------------------------------------- */

/* One of the two slots of the staged path: a batch's images and parameters in pinned host
 * memory, their device copies, and the events that order the two queues. */
typedef struct {
    cl_mem images, params; /* device copies */
    cl_mem pinned;         /* host-visible: the images' bytes, then the parameters */
    uint8_t *host;         /* pinned, mapped for the augmenter's lifetime */
    cl_event uploaded;     /* the transfer queue's writes are done */
    cl_event consumed;     /* the compute queue's kernels no longer read the device copies */
    int n, blurred;
} stage_slot;

struct clcl_augment {
    clcl_augment_config config;
    transform t;
    int blur_kernel;
    clcl_blur *blur;            /* NULL when blur_p is 0 */
    cl_mem params;              /* (2 max_batch) records, then (2 max_batch, radius + 1) weights */
    float *host;                /* the same on the host */
    size_t param_floats;        /* the size of both */
    clcl_augment_record *drawn; /* clcl_augment_batch()'s records */
    stage_slot slot[2];         /* made on the first clcl_augment_stage() */
};

static void slot_release(clcl_augment *a, stage_slot *sl) {
    if (sl->uploaded) {
        clWaitForEvents(1, &sl->uploaded);
        clReleaseEvent(sl->uploaded);
    }
    if (sl->consumed)
        clReleaseEvent(sl->consumed);
    if (sl->host) {
        clEnqueueUnmapMemObject(clcl_context_queue(a->t.ctx), sl->pinned, sl->host, 0, NULL, NULL);
        clFinish(clcl_context_queue(a->t.ctx));
    }
    if (sl->pinned)
        clReleaseMemObject(sl->pinned);
    if (sl->images)
        clReleaseMemObject(sl->images);
    if (sl->params)
        clReleaseMemObject(sl->params);
    memset(sl, 0, sizeof *sl);
}

static size_t image_bytes(const transform *t, int n) {
    return (size_t)n * t->channels * t->height * t->width;
}

/* A slot's buffers, and its pinned host memory mapped once for good. */
static clcl_status slot_init(clcl_augment *a, stage_slot *sl) {
    cl_int err;
    size_t img = image_bytes(&a->t, a->t.max_batch), par = a->param_floats * sizeof(float);
    CLCL_TRY(clcl_buffer_create(a->t.ctx, img, "staged input batch", &sl->images));
    CLCL_TRY(clcl_buffer_create(a->t.ctx, par, "staged augmentation parameters", &sl->params));
    sl->pinned =
        clCreateBuffer(clcl_context_cl(a->t.ctx), CL_MEM_ALLOC_HOST_PTR, img + par, NULL, &err);
    if (err != CL_SUCCESS)
        return clcl_fail(err, "%s:%d: clCreateBuffer (pinned staging, %zu bytes): %s", __FILE__,
                         __LINE__, img + par, clcl_status_name(err));
    sl->host = clEnqueueMapBuffer(clcl_context_queue(a->t.ctx), sl->pinned, CL_TRUE, CL_MAP_WRITE,
                                  0, img + par, 0, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        sl->host = NULL;
        return clcl_fail(err, "%s:%d: clEnqueueMapBuffer (pinned staging): %s", __FILE__, __LINE__,
                         clcl_status_name(err));
    }
    return CLCL_OK;
}

clcl_status clcl_augment_create(clcl_context *ctx, const clcl_augment_config *config, int channels,
                                int height, int width, int max_batch, clcl_augment **out) {
    *out = NULL;
    CLCL_TRY(check_config(config, channels));
    if (height < 1 || width < 1 || max_batch < 1)
        return clcl_fail(CLCL_ERR_SHAPE,
                         "augment: images of %dx%d in batches of %d; expected positive sizes",
                         height, width, max_batch);
    clcl_augment *a = calloc(1, sizeof *a);
    if (!a)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "augment: out of host memory");
    clcl_status st;
    a->config = *config;
    output_size(config, height, width, &a->t.oh, &a->t.ow);
    a->blur_kernel = clcl_augment_blur_kernel(config, a->t.oh, a->t.ow);
    int radius = a->blur_kernel / 2;

    /* The shared transform, the blur when the recipe has one, the parameter buffers. */
    CLCL_TRY_GOTO(
        st,
        transform_init(&a->t, ctx, config->mean, config->std, channels, height, width, max_batch),
        fail);
    if (config->blur_p > 0.0f)
        CLCL_TRY_GOTO(st,
                      clcl_blur_create(ctx, 2 * max_batch, channels, a->t.oh, a->t.ow,
                                       a->blur_kernel, config->blur_method, &a->blur),
                      fail);
    size_t floats = (size_t)2 * max_batch * (REC_FLOATS + radius + 1);
    a->param_floats = floats;
    a->host = calloc(floats, sizeof *a->host);
    a->drawn = calloc((size_t)2 * max_batch, sizeof *a->drawn);
    if (!a->host || !a->drawn) {
        st = clcl_fail(CLCL_ERR_NO_MEMORY, "augment: out of host memory");
        goto fail;
    }
    CLCL_TRY_GOTO(
        st, clcl_buffer_create(ctx, floats * sizeof(float), "augmentation parameters", &a->params),
        fail);
    *out = a;
    return CLCL_OK;

fail:
    clcl_augment_free(a);
    return st;
}

void clcl_augment_free(clcl_augment *a) {
    if (!a)
        return;
    for (int i = 0; i < 2; i++)
        slot_release(a, &a->slot[i]);
    transform_release(&a->t);
    clcl_blur_free(a->blur);
    if (a->params)
        clReleaseMemObject(a->params);
    free(a->host);
    free(a->drawn);
    free(a);
}

void clcl_augment_output_size(const clcl_augment *a, int *out_height, int *out_width) {
    *out_height = a->t.oh;
    *out_width = a->t.ow;
}

int clcl_augment_blur_size(const clcl_augment *a) {
    return a->blur_kernel;
}

clcl_blur_method clcl_augment_blur_method(const clcl_augment *a) {
    return a->blur ? clcl_blur_get_method(a->blur) : CLCL_BLUR_DIRECT;
}

/* Records, then blur weights, packed into host (checked); returns the floats written. */
static clcl_status pack_params(const clcl_augment *a, const clcl_augment_record *records, int n,
                               float *host, size_t *floats, int *blurred) {
    int count = 2 * n, radius = a->blur_kernel / 2;
    float *weights = host + (size_t)count * REC_FLOATS;
    if (n < 1 || n > a->t.max_batch)
        return clcl_fail(CLCL_ERR_SHAPE, "augment: a batch of %d images; this one takes 1 to %d", n,
                         a->t.max_batch);
    *blurred = 0;
    for (int m = 0; m < count; m++) {
        int src = (int)records[m].source;
        if (src < 0 || src >= n || records[m].source != (float)src)
            return clcl_fail(CLCL_ERR_ARGUMENT,
                             "augment: record %d names source image %g; expected 0 to %d", m,
                             (double)records[m].source, n - 1);
        memcpy(host + (size_t)m * REC_FLOATS, &records[m], sizeof records[m]);
        if (a->blur)
            clcl_blur_weights_float(records[m].sigma, a->blur_kernel,
                                    weights + (size_t)m * (radius + 1));
        *blurred |= records[m].sigma > 0.0f;
    }
    if (*blurred && !a->blur)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "augment: records ask for a blur but this augmenter's blur_p is 0");
    *floats = (size_t)count * (REC_FLOATS + (a->blur ? radius + 1 : 0));
    return CLCL_OK;
}

/* The fused kernel, then the blur of the images that have one. */
static clcl_status run_kernels(clcl_augment *a, cl_mem images, int n, cl_mem params, int blurred,
                               clcl_tensor *out) {
    int count = 2 * n;
    CLCL_TRY(transform_run(&a->t, images, n, params, count, out));
    if (blurred)
        CLCL_TRY(clcl_blur_run(a->blur, out->buf, count, params, count * REC_FLOATS));
    return CLCL_OK;
}

clcl_status clcl_augment_apply(clcl_augment *a, cl_mem images, int n,
                               const clcl_augment_record *records, clcl_tensor *out) {
    size_t floats;
    int blurred;
    CLCL_TRY(pack_params(a, records, n, a->host, &floats, &blurred));
    CLCL_TRY(check_output(&a->t, out, 2 * n, "augment"));
    CLCL_TRY_CL(clEnqueueWriteBuffer(clcl_context_queue(a->t.ctx), a->params, CL_TRUE, 0,
                                     floats * sizeof(float), a->host, 0, NULL, NULL));
    return run_kernels(a, images, n, a->params, blurred, out);
}

clcl_status clcl_augment_stage(clcl_augment *a, int slot, const uint8_t *images, int n,
                               const clcl_augment_record *records) {
    if (slot < 0 || slot > 1)
        return clcl_fail(CLCL_ERR_ARGUMENT, "augment: slot %d; expected 0 or 1", slot);
    stage_slot *sl = &a->slot[slot];
    if (!sl->host)
        CLCL_TRY(slot_init(a, sl));

    /* The slot's last upload must be done before its host memory is written again. */
    if (sl->uploaded) {
        CLCL_TRY_CL(clWaitForEvents(1, &sl->uploaded));
        clReleaseEvent(sl->uploaded);
        sl->uploaded = NULL;
    }
    size_t img = image_bytes(&a->t, a->t.max_batch), floats;
    float *params = (float *)(sl->host + img);
    CLCL_TRY(pack_params(a, records, n, params, &floats, &sl->blurred));
    memcpy(sl->host, images, image_bytes(&a->t, n));
    sl->n = n;

    /* Both writes wait for the kernels that last read this slot's device copies. */
    cl_command_queue q = clcl_context_transfer_queue(a->t.ctx);
    cl_uint waits = sl->consumed ? 1 : 0;
    CLCL_TRY_CL(clEnqueueWriteBuffer(q, sl->images, CL_FALSE, 0, image_bytes(&a->t, n), sl->host,
                                     waits, waits ? &sl->consumed : NULL, NULL));
    CLCL_TRY_CL(clEnqueueWriteBuffer(q, sl->params, CL_FALSE, 0, floats * sizeof(float), params, 0,
                                     NULL, &sl->uploaded));
    CLCL_TRY_CL(clFlush(q));
    if (sl->consumed) {
        clReleaseEvent(sl->consumed);
        sl->consumed = NULL;
    }
    return CLCL_OK;
}

clcl_status clcl_augment_run(clcl_augment *a, int slot, clcl_tensor *out) {
    if (slot < 0 || slot > 1 || !a->slot[slot].uploaded)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "augment: slot %d has no staged batch; call clcl_augment_stage first",
                         slot);
    stage_slot *sl = &a->slot[slot];
    cl_command_queue q = clcl_context_queue(a->t.ctx);
    CLCL_TRY(check_output(&a->t, out, 2 * sl->n, "augment"));
    CLCL_TRY_CL(clEnqueueBarrierWithWaitList(q, 1, &sl->uploaded, NULL));
    CLCL_TRY(run_kernels(a, sl->images, sl->n, sl->params, sl->blurred, out));
    if (sl->consumed)
        clReleaseEvent(sl->consumed);
    sl->consumed = NULL;
    CLCL_TRY_CL(clEnqueueMarkerWithWaitList(q, 0, NULL, &sl->consumed));
    return CLCL_OK;
}

clcl_status clcl_augment_batch(clcl_augment *a, const uint8_t *images, int n, uint64_t seed,
                               uint64_t epoch, const int *ids, clcl_tensor *out) {
    CLCL_TRY(upload_images(&a->t, images, n));
    CLCL_TRY(clcl_augment_draw(&a->config, a->t.channels, a->t.height, a->t.width, seed, epoch, ids,
                               n, a->drawn));
    return clcl_augment_apply(a, a->t.staging, n, a->drawn, out);
}

/* ---- the evaluation transform -------------------------------------------------------- */

struct clcl_eval_transform {
    transform t;
    clcl_augment_record record;
    cl_mem records; /* (max_batch) copies of record, source i */
};

/* torchvision's Resize(short side) then CenterCrop, as one record. */
static clcl_status eval_record(const clcl_eval_transform_config *c, int height, int width,
                               clcl_augment_record *r, int *oh, int *ow) {
    int rh = height, rw = width;
    if (c->resize > 0) {
        if (height <= width) {
            rh = c->resize;
            rw = (int)((double)c->resize * width / height);
        } else {
            rw = c->resize;
            rh = (int)((double)c->resize * height / width);
        }
    }
    *oh = c->out_height > 0 ? c->out_height : rh;
    *ow = c->out_width > 0 ? c->out_width : rw;
    if (*oh > rh || *ow > rw)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "eval transform: a %dx%d centre crop of %dx%d images resized to %dx%d; "
                         "the crop must fit (raise resize)",
                         *oh, *ow, height, width, rh, rw);
    *r = crop_record(0, 0, height, width, rh, rw);
    r->offset_y = (float)(int)rint((rh - *oh) / 2.0);
    r->offset_x = (float)(int)rint((rw - *ow) / 2.0);
    return CLCL_OK;
}

clcl_status clcl_eval_transform_create(clcl_context *ctx, const clcl_eval_transform_config *config,
                                       int channels, int height, int width, int max_batch,
                                       clcl_eval_transform **out) {
    *out = NULL;
    clcl_augment_config check = CLCL_AUGMENT_DEFAULTS;
    memcpy(check.mean, config->mean, sizeof check.mean);
    memcpy(check.std, config->std, sizeof check.std);
    CLCL_TRY(check_config(&check, channels));
    if (height < 1 || width < 1 || max_batch < 1 || config->resize < 0)
        return clcl_fail(CLCL_ERR_SHAPE,
                         "eval transform: images of %dx%d in batches of %d, resize %d; expected "
                         "positive sizes",
                         height, width, max_batch, config->resize);
    clcl_eval_transform *e = calloc(1, sizeof *e);
    clcl_augment_record *recs = calloc((size_t)max_batch, sizeof *recs);
    clcl_status st;
    if (!e || !recs) {
        free(e);
        free(recs);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "eval transform: out of host memory");
    }

    /* One record per batch position, uploaded once. */
    CLCL_TRY_GOTO(st, eval_record(config, height, width, &e->record, &e->t.oh, &e->t.ow), fail);
    CLCL_TRY_GOTO(
        st,
        transform_init(&e->t, ctx, config->mean, config->std, channels, height, width, max_batch),
        fail);
    for (int i = 0; i < max_batch; i++) {
        recs[i] = e->record;
        recs[i].source = (float)i;
    }
    CLCL_TRY_GOTO(
        st, clcl_buffer_create(ctx, (size_t)max_batch * sizeof *recs, "eval records", &e->records),
        fail);
    CLCL_TRY_CL_GOTO(st,
                     clEnqueueWriteBuffer(clcl_context_queue(ctx), e->records, CL_TRUE, 0,
                                          (size_t)max_batch * sizeof *recs, recs, 0, NULL, NULL),
                     fail);
    free(recs);
    *out = e;
    return CLCL_OK;

fail:
    free(recs);
    clcl_eval_transform_free(e);
    return st;
}

void clcl_eval_transform_free(clcl_eval_transform *e) {
    if (!e)
        return;
    transform_release(&e->t);
    if (e->records)
        clReleaseMemObject(e->records);
    free(e);
}

void clcl_eval_transform_output_size(const clcl_eval_transform *e, int *out_height,
                                     int *out_width) {
    *out_height = e->t.oh;
    *out_width = e->t.ow;
}

clcl_augment_record clcl_eval_transform_record(const clcl_eval_transform *e) {
    return e->record;
}

clcl_status clcl_eval_transform_apply(clcl_eval_transform *e, cl_mem images, int n,
                                      clcl_tensor *out) {
    if (n < 1 || n > e->t.max_batch)
        return clcl_fail(CLCL_ERR_SHAPE,
                         "eval transform: a batch of %d images; this one takes 1 to %d", n,
                         e->t.max_batch);
    CLCL_TRY(check_output(&e->t, out, n, "eval transform"));
    return transform_run(&e->t, images, n, e->records, n, out);
}

clcl_status clcl_eval_transform_batch(clcl_eval_transform *e, const uint8_t *images, int n,
                                      clcl_tensor *out) {
    CLCL_TRY(upload_images(&e->t, images, n));
    return clcl_eval_transform_apply(e, e->t.staging, n, out);
}
