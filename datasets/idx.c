/* MNIST and Fashion-MNIST: IDX files, plain or gzip.
 *
 * An IDX file is a big-endian header, the magic 0x0000TTDD (TT the element type, 0x08 for
 * unsigned bytes; DD the number of dimensions), DD 32-bit sizes, then the elements in
 * row-major order. The images are (N, rows, cols) unsigned bytes, magic 0x00000803; the
 * labels (N) unsigned bytes, magic 0x00000801. zlib reads both kinds of file, so a plain
 * and a gzip file take the same path. The whole split is held in memory (47 MB for the
 * 60,000 training images): gzip cannot be read at random. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "check.h"
#include "source.h"

#define IDX_CLASSES 10

static const char *const mnist_names[IDX_CLASSES] = {"0", "1", "2", "3", "4",
                                                     "5", "6", "7", "8", "9"};
static const char *const fashion_names[IDX_CLASSES] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

typedef struct {
    gzFile file;
    const char *path;
    const char *what; /* "mnist" or "fashion-mnist", the prefix of messages */
} idx_file;

/* The plain file when it exists, else the .gz one; malloc'd. */
static clcl_status idx_find(const char *what, const char *dir, const char *name, char **out) {
    char gz[256];
    snprintf(gz, sizeof gz, "%s.gz", name);
    char *plain = clcl_path_join(dir, name);
    char *zipped = clcl_path_join(dir, gz);
    if (!plain || !zipped) {
        free(plain);
        free(zipped);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory", what);
    }
    if (clcl_path_is_file(plain) || clcl_path_is_file(zipped)) {
        *out = clcl_path_is_file(plain) ? plain : zipped;
        free(clcl_path_is_file(plain) ? zipped : plain);
        return CLCL_OK;
    }
    clcl_status st = clcl_fail(CLCL_ERR_IO, "%s: found neither %s nor %s", what, plain, zipped);
    free(plain);
    free(zipped);
    return st;
}

/* Reads exactly n bytes; fewer is a truncated file, naming what zlib says if anything. */
static clcl_status idx_read(idx_file *f, void *buf, size_t n, const char *part) {
    size_t done = 0;
    while (done < n) {
        size_t chunk = n - done > (1u << 30) ? (1u << 30) : n - done;
        int got = gzread(f->file, (char *)buf + done, (unsigned)chunk);
        if (got <= 0) {
            int code = Z_OK;
            const char *why = got < 0 ? gzerror(f->file, &code) : "";
            return clcl_fail(CLCL_ERR_FORMAT,
                             "%s: %s: truncated or corrupt: expected %zu bytes of %s, read "
                             "%zu%s%s",
                             f->what, f->path, n, part, done, *why ? ": " : "", why);
        }
        done += (size_t)got;
    }
    return CLCL_OK;
}

/* Checks the magic and reads the dims sizes of the header. */
static clcl_status idx_header(idx_file *f, uint32_t magic, int dims, int *size, const char *kind) {
    uint8_t head[16];
    CLCL_TRY(idx_read(f, head, 4 + 4 * (size_t)dims, "header"));
    uint32_t got = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | head[2] << 8 | head[3];
    if (got != magic)
        return clcl_fail(CLCL_ERR_FORMAT,
                         "%s: %s: magic 0x%08x, expected 0x%08x (IDX %s: unsigned bytes, %d "
                         "dimension%s)",
                         f->what, f->path, got, magic, kind, dims, dims > 1 ? "s" : "");
    for (int d = 0; d < dims; d++) {
        const uint8_t *p = head + 4 + 4 * d;
        uint32_t v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | p[2] << 8 | p[3];
        uint32_t limit = d == 0 ? (1u << 30) : (1u << 16);
        if (v == 0 || v > limit)
            return clcl_fail(CLCL_ERR_FORMAT, "%s: %s: dimension %d is %u, expected 1..%u", f->what,
                             f->path, d, v, limit);
        size[d] = (int)v;
    }
    return CLCL_OK;
}

/* After the data: the file must end. */
static clcl_status idx_expect_end(idx_file *f, size_t expected) {
    uint8_t extra;
    int got = gzread(f->file, &extra, 1);
    if (got != 0)
        return clcl_fail(CLCL_ERR_FORMAT, "%s: %s: %s after the %zu bytes the header announces",
                         f->what, f->path, got > 0 ? "more data" : "a corrupt stream", expected);
    return CLCL_OK;
}

static clcl_status idx_open_file(idx_file *f) {
    f->file = gzopen(f->path, "rb");
    if (!f->file)
        return clcl_fail(CLCL_ERR_IO, "%s: cannot open %s", f->what, f->path);
    return CLCL_OK;
}

static clcl_status idx_images(idx_file *f, clcl_source *src) {
    int size[3];
    CLCL_TRY(idx_open_file(f));
    CLCL_TRY(idx_header(f, 0x00000803u, 3, size, "images"));
    size_t bytes = (size_t)size[0] * (size_t)size[1] * (size_t)size[2];
    src->count = size[0];
    src->channels = 1;
    src->height = size[1];
    src->width = size[2];
    src->pixels = malloc(bytes);
    if (!src->pixels)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory for %zu bytes of %s", f->what,
                         bytes, f->path);
    CLCL_TRY(idx_read(f, src->pixels, bytes, "pixels"));
    return idx_expect_end(f, bytes);
}

static clcl_status idx_labels(idx_file *f, clcl_source *src) {
    int n;
    CLCL_TRY(idx_open_file(f));
    CLCL_TRY(idx_header(f, 0x00000801u, 1, &n, "labels"));
    if (n != src->count)
        return clcl_fail(CLCL_ERR_FORMAT, "%s: %s holds %d labels, but the images file %d", f->what,
                         f->path, n, src->count);
    uint8_t *raw = malloc((size_t)n);
    src->labels = malloc((size_t)n * sizeof *src->labels);
    if (!raw || !src->labels) {
        free(raw);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory for labels", f->what);
    }
    clcl_status st = idx_read(f, raw, (size_t)n, "labels");
    if (st == CLCL_OK)
        st = idx_expect_end(f, (size_t)n);
    for (int i = 0; st == CLCL_OK && i < n; i++) {
        if (raw[i] >= IDX_CLASSES)
            st = clcl_fail(CLCL_ERR_FORMAT, "%s: %s: label %d of image %d is out of range [0, %d)",
                           f->what, f->path, raw[i], i, IDX_CLASSES);
        src->labels[i] = raw[i];
    }
    free(raw);
    return st;
}

clcl_status clcl_reader_idx_open(const clcl_dataset_config *cfg, const char *dir,
                                 clcl_source *src) {
    const char *what = cfg->kind == CLCL_DATASET_MNIST ? "mnist" : "fashion-mnist";
    if (cfg->split == CLCL_SPLIT_UNLABELED)
        return clcl_fail(CLCL_ERR_ARGUMENT, "%s: has no unlabeled split (train or test)", what);
    const char *prefix = cfg->split == CLCL_SPLIT_TRAIN ? "train" : "t10k";
    char images_name[64], labels_name[64];
    snprintf(images_name, sizeof images_name, "%s-images-idx3-ubyte", prefix);
    snprintf(labels_name, sizeof labels_name, "%s-labels-idx1-ubyte", prefix);

    /* Images, then labels, each file closed whatever happens. */
    char *images_path = NULL, *labels_path = NULL;
    idx_file images = {.what = what}, labels = {.what = what};
    clcl_status st;
    CLCL_TRY_GOTO(st, idx_find(what, dir, images_name, &images_path), done);
    CLCL_TRY_GOTO(st, idx_find(what, dir, labels_name, &labels_path), done);
    images.path = images_path;
    labels.path = labels_path;
    CLCL_TRY_GOTO(st, idx_images(&images, src), done);
    CLCL_TRY_GOTO(st, idx_labels(&labels, src), done);
    st = clcl_source_set_names(src, cfg->kind == CLCL_DATASET_MNIST ? mnist_names : fashion_names,
                               IDX_CLASSES);
    src->read_threads = 1;

done:
    if (images.file)
        gzclose(images.file);
    if (labels.file)
        gzclose(labels.file);
    free(images_path);
    free(labels_path);
    return st;
}
