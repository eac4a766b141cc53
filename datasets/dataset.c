/* The dataset interface over the readers: dispatch, the subset, holding the images in memory
 * or streaming them, and reading batches. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "clcl/dataset.h"
#include "clcl/log.h"
#include "clcl/rng.h"
#include "source.h"

/* The stream of the seed that draws a random subset ('SUBSET'), so the subset does not
 * repeat the draws other users of the same seed make. */
#define SUBSET_STREAM 0x535542534554ULL

#define DEFAULT_MEMORY_BUDGET ((size_t)2 << 30)

struct clcl_dataset {
    clcl_dataset_kind kind;
    clcl_source src;
    int total;       /* images in the files */
    int count;       /* images kept by the subset */
    size_t bytes;    /* C * H * W */
    int *map;        /* (count) the source index of each kept image */
    int *labels;     /* (count) */
    uint8_t *images; /* (count, C, H, W) when held in memory, else NULL */
};

static const char *const kind_names[] = {"mnist",    "fashion-mnist", "cifar10",
                                         "cifar100", "stl10",         "folder"};
static const char *const split_names[] = {"train", "test", "unlabeled"};

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int compare_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static clcl_status check_config(const clcl_dataset_config *cfg) {
    if ((int)cfg->kind < 0 || (int)cfg->kind > (int)CLCL_DATASET_FOLDER)
        return clcl_fail(CLCL_ERR_ARGUMENT, "dataset: unknown kind %d", (int)cfg->kind);
    if ((int)cfg->split < 0 || (int)cfg->split > (int)CLCL_SPLIT_UNLABELED)
        return clcl_fail(CLCL_ERR_ARGUMENT, "dataset: unknown split %d", (int)cfg->split);
    if (cfg->subset < 0 || cfg->image_size < 0 || cfg->threads < 0)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "dataset: subset (%d), image size (%d) and threads (%d) must be >= 0",
                         cfg->subset, cfg->image_size, cfg->threads);
    if (cfg->channels != 0 && cfg->channels != 1 && cfg->channels != 3)
        return clcl_fail(CLCL_ERR_ARGUMENT, "dataset: channels %d: expected 0 (auto), 1 or 3",
                         cfg->channels);
    return CLCL_OK;
}

/* The first n, or a seeded random n, of the whole dataset. */
static clcl_status subset_plain(const clcl_dataset_config *cfg, int count, int *keep) {
    int n = cfg->subset;
    if (!cfg->subset_random) {
        for (int i = 0; i < n; i++)
            keep[i] = i;
        return CLCL_OK;
    }
    int *all = malloc((size_t)count * sizeof *all);
    if (!all)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "dataset: out of memory for the subset");
    for (int i = 0; i < count; i++)
        all[i] = i;
    clcl_rng rng;
    clcl_rng_seed_stream(&rng, cfg->seed, SUBSET_STREAM);
    clcl_rng_shuffle(&rng, all, count);
    memcpy(keep, all, (size_t)n * sizeof *keep);
    free(all);
    qsort(keep, (size_t)n, sizeof *keep, compare_int);
    return CLCL_OK;
}

/* n / classes images of every class (the first classes get one more when it does not
 * divide), the first of each class or a seeded random choice. */
static clcl_status subset_balanced(const clcl_dataset_config *cfg, const clcl_source *src,
                                   int *keep) {
    int classes = src->classes, n = cfg->subset;
    if (classes == 0)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "dataset: a balanced subset needs labels, and this split has none");

    /* The images of each class in dataset order: counting sort by label. */
    int *start = calloc((size_t)classes + 1, sizeof *start);
    int *order = malloc((size_t)src->count * sizeof *order);
    if (!start || !order) {
        free(start);
        free(order);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "dataset: out of memory for the subset");
    }
    for (int i = 0; i < src->count; i++)
        start[src->labels[i] + 1]++;
    for (int c = 0; c < classes; c++)
        start[c + 1] += start[c];
    int *fill = calloc((size_t)classes, sizeof *fill);
    for (int i = 0; fill && i < src->count; i++)
        order[start[src->labels[i]] + fill[src->labels[i]]++] = i;

    /* Take each class's quota. */
    clcl_rng rng;
    clcl_rng_seed_stream(&rng, cfg->seed, SUBSET_STREAM);
    clcl_status st = fill ? CLCL_OK : clcl_fail(CLCL_ERR_NO_MEMORY, "dataset: out of memory");
    int kept = 0;
    for (int c = 0; st == CLCL_OK && c < classes; c++) {
        int quota = n / classes + (c < n % classes);
        int have = start[c + 1] - start[c];
        if (have < quota) {
            st = clcl_fail(CLCL_ERR_ARGUMENT,
                           "dataset: a balanced subset of %d needs %d images of class %d (%s), "
                           "which has only %d",
                           n, quota, c, src->names[c], have);
            break;
        }
        if (cfg->subset_random)
            clcl_rng_shuffle(&rng, order + start[c], have);
        memcpy(keep + kept, order + start[c], (size_t)quota * sizeof *keep);
        kept += quota;
    }
    free(start);
    free(order);
    free(fill);
    if (st == CLCL_OK)
        qsort(keep, (size_t)n, sizeof *keep, compare_int);
    return st;
}

/* The ascending source indices the subset keeps: all of them when no subset is asked. */
static clcl_status subset_select(const clcl_dataset_config *cfg, const clcl_source *src, int **keep,
                                 int *n) {
    *n = cfg->subset > 0 ? cfg->subset : src->count;
    if (*n > src->count)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "dataset: a subset of %d images was asked, but the %s split has only "
                         "%d images",
                         *n, split_names[cfg->split], src->count);
    *keep = malloc((size_t)(*n > 0 ? *n : 1) * sizeof **keep);
    if (!*keep)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "dataset: out of memory for %d indices", *n);
    if (cfg->subset == 0) {
        for (int i = 0; i < *n; i++)
            (*keep)[i] = i;
        return CLCL_OK;
    }
    if (cfg->subset_balanced)
        return subset_balanced(cfg, src, *keep);
    return subset_plain(cfg, src->count, *keep);
}

typedef struct {
    clcl_dataset *ds;
    const int *index; /* NULL: image i of the dataset */
    uint8_t *images;
} read_job;

static clcl_status read_one(void *user, int j) {
    read_job *job = user;
    clcl_dataset *ds = job->ds;
    int i = job->index ? job->index[j] : j;
    return ds->src.read(&ds->src, ds->map[i], job->images + (size_t)j * ds->bytes);
}

/* Holds the kept images in memory: the reader's array (compacted to the subset), or every
 * image read once. Closes the reader's files afterwards. */
static clcl_status hold_in_memory(clcl_dataset *ds) {
    clcl_source *src = &ds->src;
    if (src->pixels && ds->count == ds->total) {
        ds->images = src->pixels;
        src->pixels = NULL;
    } else {
        ds->images = malloc(ds->count > 0 ? (size_t)ds->count * ds->bytes : 1);
        if (!ds->images)
            return clcl_fail(CLCL_ERR_NO_MEMORY,
                             "dataset: out of memory for %d images of %zu "
                             "bytes",
                             ds->count, ds->bytes);
        if (src->pixels) {
            for (int i = 0; i < ds->count; i++)
                memcpy(ds->images + (size_t)i * ds->bytes,
                       src->pixels + (size_t)ds->map[i] * ds->bytes, ds->bytes);
        } else {
            read_job job = {.ds = ds, .images = ds->images};
            CLCL_TRY(clcl_parallel_for(ds->count, src->read_threads, read_one, &job));
        }
    }
    free(src->pixels);
    src->pixels = NULL;
    if (src->free_state && src->state)
        src->free_state(src->state);
    src->state = NULL;
    src->read = NULL;
    return CLCL_OK;
}

/* Everything after the reader: subset, labels, memory or streaming. */
static clcl_status dataset_build(const clcl_dataset_config *cfg, clcl_dataset *ds) {
    clcl_source *src = &ds->src;
    ds->total = src->count;
    CLCL_TRY(subset_select(cfg, src, &ds->map, &ds->count));
    if (src->select)
        CLCL_TRY(src->select(src, ds->map, ds->count, cfg->threads));
    ds->bytes = (size_t)src->channels * (size_t)src->height * (size_t)src->width;

    ds->labels = malloc((size_t)(ds->count > 0 ? ds->count : 1) * sizeof *ds->labels);
    if (!ds->labels)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "dataset: out of memory for labels");
    for (int i = 0; i < ds->count; i++)
        ds->labels[i] = src->labels[ds->map[i]];
    free(src->labels);
    src->labels = NULL;

    size_t budget = cfg->memory_budget ? cfg->memory_budget : DEFAULT_MEMORY_BUDGET;
    if (src->pixels || (size_t)ds->count * ds->bytes <= budget)
        CLCL_TRY(hold_in_memory(ds));
    return CLCL_OK;
}

clcl_status clcl_dataset_open(const clcl_dataset_config *cfg, clcl_dataset **out) {
    *out = NULL;
    CLCL_TRY(check_config(cfg));
    const char *dir = cfg->path ? cfg->path : clcl_dataset_default_path(cfg->kind);
    if (!dir)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "%s: no path given and the kind has no default location: name the "
                         "folder that holds its files",
                         kind_names[cfg->kind]);

    clcl_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "dataset: out of memory");
    ds->kind = cfg->kind;
    double t0 = now_seconds();

    /* The reader, then everything that does not depend on the format. */
    clcl_status st;
    switch (cfg->kind) {
        case CLCL_DATASET_MNIST:
        case CLCL_DATASET_FASHION_MNIST:
            st = clcl_reader_idx_open(cfg, dir, &ds->src);
            break;
        case CLCL_DATASET_CIFAR10:
        case CLCL_DATASET_CIFAR100:
            st = clcl_reader_cifar_open(cfg, dir, &ds->src);
            break;
        case CLCL_DATASET_STL10:
            st = clcl_reader_stl10_open(cfg, dir, &ds->src);
            break;
        default:
            st = clcl_reader_folder_open(cfg, dir, &ds->src);
            break;
    }
    if (st == CLCL_OK)
        st = dataset_build(cfg, ds);
    if (st != CLCL_OK) {
        clcl_dataset_free(ds);
        return st;
    }

    CLCL_LOG_INFO("dataset",
                  "%s %s from %s: %d of %d images, %d classes, %dx%dx%d, %s "
                  "(%.1f MiB), %.2f s",
                  kind_names[cfg->kind], split_names[cfg->split], dir, ds->count, ds->total,
                  ds->src.classes, ds->src.channels, ds->src.height, ds->src.width,
                  ds->images ? "in memory" : "streamed",
                  (double)ds->count * (double)ds->bytes / 1048576.0, now_seconds() - t0);
    *out = ds;
    return CLCL_OK;
}

void clcl_dataset_free(clcl_dataset *ds) {
    if (!ds)
        return;
    clcl_source_free(&ds->src);
    free(ds->map);
    free(ds->labels);
    free(ds->images);
    free(ds);
}

int clcl_dataset_count(const clcl_dataset *ds) {
    return ds->count;
}

int clcl_dataset_total(const clcl_dataset *ds) {
    return ds->total;
}

int clcl_dataset_classes(const clcl_dataset *ds) {
    return ds->src.classes;
}

int clcl_dataset_channels(const clcl_dataset *ds) {
    return ds->src.channels;
}

int clcl_dataset_height(const clcl_dataset *ds) {
    return ds->src.height;
}

int clcl_dataset_width(const clcl_dataset *ds) {
    return ds->src.width;
}

size_t clcl_dataset_image_bytes(const clcl_dataset *ds) {
    return ds->bytes;
}

int clcl_dataset_in_memory(const clcl_dataset *ds) {
    return ds->images != NULL;
}

const int *clcl_dataset_labels(const clcl_dataset *ds) {
    return ds->labels;
}

const char *clcl_dataset_class_name(const clcl_dataset *ds, int c) {
    if (c < 0 || c >= ds->src.classes)
        return "";
    return ds->src.names[c];
}

clcl_status clcl_dataset_read(clcl_dataset *ds, const int *index, int n, uint8_t *images,
                              int *labels) {
    if (n < 0 || (n > 0 && !index))
        return clcl_fail(CLCL_ERR_ARGUMENT, "dataset_read: %d images from %s index", n,
                         index ? "an" : "a NULL");
    for (int j = 0; j < n; j++)
        if (index[j] < 0 || index[j] >= ds->count)
            return clcl_fail(CLCL_ERR_ARGUMENT,
                             "dataset_read: index[%d] = %d is outside the dataset's [0, %d)", j,
                             index[j], ds->count);

    /* Labels, then pixels: copied from memory or read from the files. */
    for (int j = 0; labels && j < n; j++)
        labels[j] = ds->labels[index[j]];
    if (!images)
        return CLCL_OK;
    if (ds->images) {
        for (int j = 0; j < n; j++)
            memcpy(images + (size_t)j * ds->bytes, ds->images + (size_t)index[j] * ds->bytes,
                   ds->bytes);
        return CLCL_OK;
    }
    read_job job = {.ds = ds, .index = index, .images = images};
    return clcl_parallel_for(n, ds->src.read_threads, read_one, &job);
}

clcl_status clcl_dataset_kind_parse(const char *name, clcl_dataset_kind *kind) {
    for (int k = 0; k <= (int)CLCL_DATASET_FOLDER; k++)
        if (name && strcmp(name, kind_names[k]) == 0) {
            *kind = (clcl_dataset_kind)k;
            return CLCL_OK;
        }
    return clcl_fail(CLCL_ERR_ARGUMENT,
                     "unknown dataset '%s': expected fashion-mnist, mnist, cifar10, cifar100, "
                     "stl10 or folder",
                     name ? name : "(null)");
}

const char *clcl_dataset_kind_name(clcl_dataset_kind kind) {
    if ((int)kind < 0 || (int)kind > (int)CLCL_DATASET_FOLDER)
        return "unknown";
    return kind_names[kind];
}

const char *clcl_dataset_default_path(clcl_dataset_kind kind) {
    return kind == CLCL_DATASET_FASHION_MNIST ? "/usr/share/datasets/fashion-mnist" : NULL;
}

clcl_status clcl_dataset_split_parse(const char *name, clcl_dataset_split *split) {
    for (int s = 0; s <= (int)CLCL_SPLIT_UNLABELED; s++)
        if (name && strcmp(name, split_names[s]) == 0) {
            *split = (clcl_dataset_split)s;
            return CLCL_OK;
        }
    return clcl_fail(CLCL_ERR_ARGUMENT, "unknown split '%s': expected train, test or unlabeled",
                     name ? name : "(null)");
}

const char *clcl_dataset_split_name(clcl_dataset_split split) {
    if ((int)split < 0 || (int)split > (int)CLCL_SPLIT_UNLABELED)
        return "unknown";
    return split_names[split];
}
