/* `clcl augment`: a PNG grid of dataset images and their two augmented views, so that a
 * person can look at the recipe. One row per image: the original, view 1, view 2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stb_image_write.h>

#include "cli.h"
#include "clcl/augment.h"
#include "clcl/dataset.h"
#include "clcl/fileio.h"
#include "clcl/rng.h"
#include "flags.h"

#define GAP 4 /* pixels between cells, at display scale */

typedef struct {
    const char *dataset, *data, *split, *out, *device;
    int count, size, image_size;
    unsigned long long seed, epoch;
} augment_options;

#define MAX_COUNT 1000 /* the most rows of a grid (a dataset smaller than --count gives all) */
#define MAX_SIZE  4096 /* the largest --size: a view of 4096 x 4096 x 3 floats is 192 MiB */

/* The first bad option's message, as `clcl_cli_usage` prints it (and 2), or 0. */
static int bad_options(const augment_options *o) {
    if (!o->dataset)
        return clcl_cli_usage("augment", "--dataset NAME is required (fashion-mnist, mnist, "
                                         "cifar10, cifar100, stl10 or folder)");
    if (!o->out || !*o->out)
        return clcl_cli_usage("augment", "--out FILE.png is required");
    if (clcl_cli_names_directory(o->out))
        return clcl_cli_usage("augment", "--out %s is a directory; expected the PNG file to write",
                              o->out);
    if (o->count < 1 || o->count > MAX_COUNT)
        return clcl_cli_usage("augment", "--count %d; expected 1 to %d rows", o->count, MAX_COUNT);
    if (o->image_size < 0)
        return clcl_cli_usage("augment", "--image-size %d; expected 0 (as stored) or more",
                              o->image_size);
    if (o->size < 0 || o->size > MAX_SIZE)
        return clcl_cli_usage("augment", "--size %d; expected 0 (the images' own) to %d", o->size,
                              MAX_SIZE);
    return 0;
}

/* `count` distinct indices of [0, total), drawn from the seed (the first ones when the
 * dataset is that small). */
static void pick(uint64_t seed, int total, int count, int *ids) {
    int *all = malloc((size_t)total * sizeof *all);
    clcl_rng rng;
    for (int i = 0; i < total; i++)
        all[i] = i;
    clcl_rng_seed(&rng, seed);
    for (int i = 0; i < count; i++) { /* a partial Fisher-Yates shuffle */
        int j = i + (int)clcl_rng_below(&rng, (uint64_t)(total - i));
        int t = all[i];
        all[i] = all[j];
        all[j] = t;
        ids[i] = all[i];
    }
    free(all);
}

/* Draws the planar (C, h, w) image `src` (uint8) into the interleaved grid at (x0, y0),
 * each pixel as a zoom x zoom block. */
static void blit(uint8_t *grid, int grid_w, int channels, const uint8_t *src, int h, int w, int x0,
                 int y0, int zoom) {
    for (int y = 0; y < h * zoom; y++)
        for (int x = 0; x < w * zoom; x++)
            for (int c = 0; c < channels; c++)
                grid[((size_t)(y0 + y) * grid_w + x0 + x) * channels + c] =
                    src[((size_t)c * h + y / zoom) * w + x / zoom];
}

/* A normalised view (C, h, w) back to uint8: (x * std + mean) * 255, rounded, clamped. */
static void to_bytes(const float *view, int channels, int h, int w, const float *mean,
                     const float *std, uint8_t *out) {
    for (int c = 0; c < channels; c++)
        for (int i = 0; i < h * w; i++) {
            double v = (view[(size_t)c * h * w + i] * std[c] + mean[c]) * 255.0;
            out[(size_t)c * h * w + i] = (uint8_t)fmin(255.0, fmax(0.0, rint(v)));
        }
}

/* stb_image_write's sink: the encoded bytes go to the temporary file of an atomic write, whose
 * commit reports any failed write. */
static void png_chunk(void *file, void *data, int size) {
    fwrite(data, 1, (size_t)size, file);
}

/* Lays out the grid and writes the PNG. views (2n, C, oh, ow), view 2 from row n. */
static int write_grid(const augment_options *o, const uint8_t *images, const float *views, int n,
                      int channels, int h, int w, int oh, int ow, const clcl_augment_config *c) {
    int cell_h = h > oh ? h : oh, cell_w = w > ow ? w : ow;
    int zoom = 1;
    while (cell_h * (zoom + 1) <= 128 && cell_w * (zoom + 1) <= 128)
        zoom++;
    int grid_w = 3 * cell_w * zoom + 4 * GAP, grid_h = n * (cell_h * zoom + GAP) + GAP;
    uint8_t *grid = malloc((size_t)grid_w * grid_h * channels);
    uint8_t *bytes = malloc((size_t)channels * oh * ow);
    if (!grid || !bytes) {
        free(grid);
        free(bytes);
        fprintf(stderr, "clcl augment: out of host memory for the %dx%d grid\n", grid_w, grid_h);
        return 1;
    }
    memset(grid, 255, (size_t)grid_w * grid_h * channels);
    for (int i = 0; i < n; i++) {
        int y0 = GAP + i * (cell_h * zoom + GAP);
        blit(grid, grid_w, channels, images + (size_t)i * channels * h * w, h, w, GAP, y0, zoom);
        for (int v = 0; v < 2; v++) {
            to_bytes(views + (size_t)(v * n + i) * channels * oh * ow, channels, oh, ow, c->mean,
                     c->std, bytes);
            blit(grid, grid_w, channels, bytes, oh, ow, GAP + (v + 1) * (cell_w * zoom + GAP), y0,
                 zoom);
        }
    }
    clcl_atomic_file af;
    clcl_status st = clcl_atomic_open(&af, o->out);
    if (st == CLCL_OK && !stbi_write_png_to_func(png_chunk, af.file, grid_w, grid_h, channels, grid,
                                                 grid_w * channels)) {
        clcl_atomic_abort(&af);
        st = clcl_fail(CLCL_ERR_NO_MEMORY, "cannot encode the %dx%d PNG for %s", grid_w, grid_h,
                       o->out);
    } else if (st == CLCL_OK) {
        st = clcl_atomic_commit(&af); /* names the file and the cause of a failed write */
    }
    free(bytes);
    free(grid);
    if (st != CLCL_OK) {
        fprintf(stderr, "clcl augment: %s\n", clcl_last_error());
        return 1;
    }
    printf("wrote %s: %d images of %s (%dx%dx%d), originals | view 1 | view 2 at %dx%d, "
           "zoom %d\n",
           o->out, n, o->dataset, h, w, channels, oh, ow, zoom);
    return 0;
}

static clcl_status parse_split(const char *s, clcl_dataset_split *split) {
    if (strcmp(s, "train") == 0)
        *split = CLCL_SPLIT_TRAIN;
    else if (strcmp(s, "test") == 0)
        *split = CLCL_SPLIT_TEST;
    else if (strcmp(s, "unlabeled") == 0)
        *split = CLCL_SPLIT_UNLABELED;
    else
        return clcl_fail(CLCL_ERR_ARGUMENT, "--split '%s': expected train, test or unlabeled", s);
    return CLCL_OK;
}

/* Opens the dataset and reads the chosen images: *images (n, C, H, W), *ids (n). */
static int load(const augment_options *o, clcl_dataset **ds, uint8_t **images, int **ids) {
    clcl_dataset_config dc = {.path = o->data, .image_size = o->image_size};
    if (clcl_dataset_kind_parse(o->dataset, &dc.kind) != CLCL_OK ||
        parse_split(o->split, &dc.split) != CLCL_OK)
        return clcl_cli_report("augment");
    if (clcl_dataset_open(&dc, ds) != CLCL_OK)
        return clcl_cli_report("augment");
    int total = clcl_dataset_count(*ds), n = o->count < total ? o->count : total;
    size_t per =
        (size_t)clcl_dataset_channels(*ds) * clcl_dataset_height(*ds) * clcl_dataset_width(*ds);
    *ids = malloc((size_t)n * sizeof **ids);
    *images = malloc((size_t)n * per);
    pick(o->seed, total, n, *ids);
    if (clcl_dataset_read(*ds, *ids, n, *images, NULL) != CLCL_OK)
        return clcl_cli_report("augment");
    return 0;
}

/* Augments the images on the device: views (2n, C, oh, ow) on the host. */
static int augment(const augment_options *o, clcl_augment_config *c, const uint8_t *images,
                   const int *ids, int n, int channels, int h, int w, float **views, int *oh,
                   int *ow) {
    clcl_context *ctx = NULL;
    clcl_augment *aug = NULL;
    clcl_tensor out = {0};
    int rc = 0;
    if (clcl_context_create(o->device, &ctx) != CLCL_OK ||
        clcl_augment_create(ctx, c, channels, h, w, n, &aug) != CLCL_OK) {
        rc = clcl_cli_report("augment");
        goto done;
    }
    clcl_augment_output_size(aug, oh, ow);
    *views = malloc((size_t)2 * n * channels * *oh * *ow * sizeof **views);
    if (clcl_tensor_create(ctx, &out, 4, (int[]){2 * n, channels, *oh, *ow}) != CLCL_OK ||
        clcl_augment_batch(aug, images, n, o->seed, o->epoch, ids, &out) != CLCL_OK ||
        clcl_tensor_read(ctx, &out, *views) != CLCL_OK)
        rc = clcl_cli_report("augment");
done:
    clcl_tensor_free(&out);
    clcl_augment_free(aug);
    clcl_context_free(ctx);
    return rc;
}

int clcl_cmd_augment(int argc, char **argv) {
    augment_options o = {.dataset = NULL, .split = "train", .count = 8};
    clcl_flag flags[] = {
        {"dataset", CLCL_FLAG_STRING, &o.dataset,
         "fashion-mnist, mnist, cifar10, cifar100, stl10 or folder (required)", NULL, 0},
        {"data", CLCL_FLAG_STRING, &o.data, "the dataset's directory (default: the kind's own)",
         NULL, 0},
        {"split", CLCL_FLAG_CHOICE, &o.split, "which part of the dataset", "train|test|unlabeled",
         0},
        {"image-size", CLCL_FLAG_INT, &o.image_size,
         "folder datasets: short side resized to this, centre-cropped square (0: as stored)", NULL,
         0},
        {"count", CLCL_FLAG_INT, &o.count, "images in the grid (one row each)", NULL, 0},
        {"seed", CLCL_FLAG_UINT64, &o.seed, "picks the images and draws their views", NULL, 0},
        {"epoch", CLCL_FLAG_UINT64, &o.epoch, "the epoch whose views are drawn", NULL, 0},
        {"size", CLCL_FLAG_INT, &o.size, "output side of the views (0: the images' own)", NULL, 0},
        {"out", CLCL_FLAG_STRING, &o.out, "the PNG to write (required)", NULL, 0},
        {"device", CLCL_FLAG_STRING, &o.device, "OpenCL device: index, cpu, gpu or a name", NULL,
         0},
    };
    int n_flags = (int)(sizeof flags / sizeof *flags);
    const char *summary = "Writes a PNG grid of dataset images, each beside its two SimCLR views "
                          "(the recipe of docs/augment.md).";
    int parsed = clcl_flags_parse("augment", flags, n_flags, argc, argv);
    if (parsed == 1)
        clcl_flags_usage(stdout, "augment", summary, flags, n_flags);
    if (parsed)
        return parsed == 1 ? 0 : 2;
    int bad = bad_options(&o);
    if (bad)
        return bad;

    clcl_dataset *ds = NULL;
    uint8_t *images = NULL;
    int *ids = NULL;
    float *views = NULL;
    int rc = load(&o, &ds, &images, &ids);
    if (rc == 0) {
        int n = o.count < clcl_dataset_count(ds) ? o.count : clcl_dataset_count(ds);
        int ch = clcl_dataset_channels(ds), h = clcl_dataset_height(ds), w = clcl_dataset_width(ds),
            oh, ow;
        clcl_dataset_kind kind;
        clcl_dataset_kind_parse(o.dataset, &kind);
        clcl_augment_config c = clcl_augment_config_default(h, w);
        c.out_height = c.out_width = o.size;
        if (clcl_augment_normalization(kind, ch, c.mean, c.std) != CLCL_OK)
            rc = clcl_cli_report("augment");
        if (rc == 0)
            rc = augment(&o, &c, images, ids, n, ch, h, w, &views, &oh, &ow);
        if (rc == 0)
            rc = write_grid(&o, images, views, n, ch, h, w, oh, ow, &c);
    }
    free(views);
    free(images);
    free(ids);
    clcl_dataset_free(ds);
    return rc;
}
