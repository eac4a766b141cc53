/* Datasets: one interface over every reader.
 *
 * Images are uint8, planar (C, H, W) per image, so a batch is (N, C, H, W) uint8, the
 * layout the augmentation kernels read. Labels are class indices in [0, classes). */
#ifndef CLCL_DATASET_H
#define CLCL_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "clcl/status.h"

typedef enum {
    CLCL_DATASET_MNIST,         /* IDX files; Fashion-MNIST is the same format */
    CLCL_DATASET_FASHION_MNIST, /* default path /usr/share/datasets/fashion-mnist */
    CLCL_DATASET_CIFAR10,       /* data_batch_1.bin ... test_batch.bin */
    CLCL_DATASET_CIFAR100,      /* train.bin / test.bin, fine or coarse labels */
    CLCL_DATASET_STL10,         /* *_X.bin / *_y.bin */
    CLCL_DATASET_FOLDER         /* root/<class>/<image>.{jpg,jpeg,png} */
} clcl_dataset_kind;

typedef enum {
    CLCL_SPLIT_TRAIN,
    CLCL_SPLIT_TEST,
    CLCL_SPLIT_UNLABELED /* STL-10's unlabeled_X.bin */
} clcl_dataset_split;

typedef struct {
    clcl_dataset_kind kind;
    const char *path; /* directory; NULL means the kind's default where it has one */
    clcl_dataset_split split;
    int coarse_labels;    /* CIFAR-100: 1 for the 20 coarse classes */
    int image_size;       /* folder: resize the short side to this and centre-crop to a square
                             of this side; 0 keeps the files' size (which must then agree) */
    int subset;           /* > 0: keep only this many images */
    int subset_random;    /* 1: a seeded random subset instead of the first `subset` */
    int subset_balanced;  /* 1: the same number from every class */
    uint64_t seed;        /* for the random subset */
    int threads;          /* decoding threads for folders; 0: one per core */
    int channels;         /* folder: 1 (grey) or 3 (RGB); 0: 1 when every image is grey, else 3 */
    size_t memory_budget; /* bytes of decoded uint8 images kept in memory; 0: 2 GiB. A dataset
                             above it (folder, STL-10) is streamed: decoded at each read */
} clcl_dataset_config;

typedef struct clcl_dataset clcl_dataset;

clcl_status clcl_dataset_open(const clcl_dataset_config *config, clcl_dataset **out);
void clcl_dataset_free(clcl_dataset *ds);

int clcl_dataset_count(const clcl_dataset *ds);
int clcl_dataset_classes(const clcl_dataset *ds);
int clcl_dataset_channels(const clcl_dataset *ds);
int clcl_dataset_height(const clcl_dataset *ds);
int clcl_dataset_width(const clcl_dataset *ds);
/* The name of class c ("T-shirt/top", "airplane", the folder's name...). */
const char *clcl_dataset_class_name(const clcl_dataset *ds, int c);

/* Copies images index[0..n) into images (n, C, H, W) uint8 and their labels into labels
 * (either may be NULL). Labels are -1 for unlabeled data. A streamed dataset decodes the
 * images here, on the configuration's threads; an image that fails gives its error naming
 * the file. Safe to call from several threads at once. */
clcl_status clcl_dataset_read(clcl_dataset *ds, const int *index, int n, uint8_t *images,
                              int *labels);

/* The number of images in the files before the subset was taken. */
int clcl_dataset_total(const clcl_dataset *ds);
/* C * H * W: the bytes of one image. */
size_t clcl_dataset_image_bytes(const clcl_dataset *ds);
/* 1 when the images are held in memory, 0 when each read decodes them from the files. */
int clcl_dataset_in_memory(const clcl_dataset *ds);
/* The labels of all clcl_dataset_count() images (-1 for unlabeled data). */
const int *clcl_dataset_labels(const clcl_dataset *ds);

/* Parses "fashion-mnist", "mnist", "cifar10", "cifar100", "stl10", "folder". */
clcl_status clcl_dataset_kind_parse(const char *name, clcl_dataset_kind *kind);
const char *clcl_dataset_kind_name(clcl_dataset_kind kind);
/* The folder a kind reads when the configuration's path is NULL, or NULL when it has none. */
const char *clcl_dataset_default_path(clcl_dataset_kind kind);
/* Parses "train", "test", "unlabeled". */
clcl_status clcl_dataset_split_parse(const char *name, clcl_dataset_split *split);
const char *clcl_dataset_split_name(clcl_dataset_split split);

#endif
