/* STL-10, binary release.
 *
 * train_X.bin / test_X.bin / unlabeled_X.bin hold 3x96x96 images back to back, each channel
 * stored column by column (the release was written from MATLAB), so images are transposed
 * to (C, H, W) row-major as they are read. train_y.bin / test_y.bin hold one label byte per
 * image, counting from 1. The unlabeled split (100,000 images, 2.6 GiB) is streamed when it
 * exceeds the memory budget. The folder may be the one holding the files or the one the
 * release unpacks into (stl10_binary). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "source.h"

#define STL_SIDE   96
#define STL_PIXELS (3 * STL_SIDE * STL_SIDE)

static const char *const stl10_names[] = {"airplane", "bird",  "car",    "cat",  "deer",
                                          "dog",      "horse", "monkey", "ship", "truck"};
_Static_assert(sizeof stl10_names / sizeof *stl10_names == 10, "STL-10 has 10 classes");

/* Reads y (one byte per image, 1..10) into 0-based labels. */
static clcl_status stl10_labels(const char *path, clcl_source *src) {
    int64_t size;
    CLCL_TRY(clcl_file_size(path, "stl10", &size));
    if (size != src->count)
        return clcl_fail(CLCL_ERR_FORMAT,
                         "stl10: %s holds %lld labels, but the images file %d images", path,
                         (long long)size, src->count);
    FILE *f = fopen(path, "rb");
    if (!f)
        return clcl_fail(CLCL_ERR_IO, "stl10: cannot open %s", path);
    uint8_t *raw = malloc((size_t)src->count);
    src->labels = malloc((size_t)src->count * sizeof *src->labels);
    clcl_status st = CLCL_OK;
    if (!raw || !src->labels)
        st = clcl_fail(CLCL_ERR_NO_MEMORY, "stl10: out of memory for labels");
    else if (fread(raw, 1, (size_t)src->count, f) != (size_t)src->count)
        st = clcl_fail(CLCL_ERR_IO, "stl10: cannot read %s", path);
    for (int i = 0; st == CLCL_OK && i < src->count; i++) {
        if (raw[i] < 1 || raw[i] > 10)
            st = clcl_fail(CLCL_ERR_FORMAT,
                           "stl10: %s: label %d of image %d is out of range [1, 10] (STL-10 "
                           "counts classes from 1)",
                           path, raw[i], i);
        src->labels[i] = raw[i] - 1;
    }
    free(raw);
    fclose(f);
    return st;
}

clcl_status clcl_reader_stl10_open(const clcl_dataset_config *cfg, const char *dir,
                                   clcl_source *src) {
    const char *split = cfg->split == CLCL_SPLIT_TRAIN  ? "train"
                        : cfg->split == CLCL_SPLIT_TEST ? "test"
                                                        : "unlabeled";
    char x_name[64], y_name[64];
    snprintf(x_name, sizeof x_name, "%s_X.bin", split);
    snprintf(y_name, sizeof y_name, "%s_y.bin", split);
    char *root = clcl_path_resolve(dir, "stl10_binary", x_name);
    if (!root)
        return clcl_fail(CLCL_ERR_IO, "stl10: found no %s in %s (nor in its stl10_binary folder)",
                         x_name, dir);

    /* The images file: whole 27,648-byte images, transposed on reading. */
    clcl_records *r = clcl_records_create("stl10", 1, 3, STL_SIDE, STL_SIDE);
    src->state = r;
    src->free_state = clcl_records_free;
    char *x_path = clcl_path_join(root, x_name);
    char *y_path = clcl_path_join(root, y_name);
    free(root);
    clcl_status st = CLCL_OK;
    if (!r || !x_path || !y_path)
        st = clcl_fail(CLCL_ERR_NO_MEMORY, "stl10: out of memory");
    if (st == CLCL_OK)
        st = clcl_records_add(r, x_path, 0, STL_PIXELS, 0);
    if (st == CLCL_OK) {
        src->count = clcl_records_count(r);
        src->channels = 3;
        src->height = STL_SIDE;
        src->width = STL_SIDE;
        src->read = clcl_records_read;
        src->read_threads = 1;
    }

    /* The labels, or none for the unlabeled split. */
    if (st == CLCL_OK && cfg->split == CLCL_SPLIT_UNLABELED) {
        src->labels = malloc((size_t)src->count * sizeof *src->labels);
        if (!src->labels)
            st = clcl_fail(CLCL_ERR_NO_MEMORY, "stl10: out of memory for labels");
        for (int i = 0; st == CLCL_OK && i < src->count; i++)
            src->labels[i] = -1;
    } else if (st == CLCL_OK) {
        st = stl10_labels(y_path, src);
        if (st == CLCL_OK)
            st = clcl_source_set_names(src, stl10_names, 10);
    }
    free(x_path);
    free(y_path);
    return st;
}
