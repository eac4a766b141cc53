/* What a reader hands to the dataset layer (private to datasets/).
 *
 * A reader opens its files, checks them, and fills a clcl_source: how many images there
 * are, their labels and class names, and either every image's pixels in memory or a
 * thread-safe function that reads one image. dataset.c then takes the subset, decides
 * whether the kept images are held in memory or read on demand, and serves batches. */
#ifndef CLCL_DATASETS_SOURCE_H
#define CLCL_DATASETS_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "clcl/dataset.h"

typedef struct clcl_source clcl_source;

struct clcl_source {
    int count;    /* images in the files */
    int classes;  /* 0 when the split has no labels */
    int channels; /* C, H, W of every image; a reader with a select() may set them there */
    int height;
    int width;
    int *labels;      /* (count) class indices, -1 when unlabeled; malloc'd */
    char **names;     /* (classes) class names; malloc'd, each malloc'd */
    uint8_t *pixels;  /* (count, C, H, W) when the reader holds every image, else NULL; malloc'd,
                         and dataset.c may take it over (setting this to NULL) */
    int read_threads; /* threads worth using for read() on one batch */

    /* Writes image i as (C, H, W) uint8 into dst. Called from several threads at once;
     * on failure records the message (naming the file) with clcl_fail. NULL when pixels
     * is set. */
    clcl_status (*read)(const clcl_source *src, int i, uint8_t *dst);
    /* Called once, before any read(), with the ascending indices of the images the subset
     * keeps; sets channels, height and width where the reader could not before. May be
     * NULL. */
    clcl_status (*select)(clcl_source *src, const int *keep, int n, int threads);
    /* Frees state (not labels, names or pixels, which clcl_source_free frees). */
    void (*free_state)(void *state);
    void *state;
};

/* Frees everything a source holds and zeroes it. */
void clcl_source_free(clcl_source *src);

/* Copies n static class names into src->names and sets src->classes. */
clcl_status clcl_source_set_names(clcl_source *src, const char *const *names, int n);

/* The readers. `dir` is the folder to read (the configuration's path or the kind's
 * default); each fills *src or returns an error naming the file at fault. */
clcl_status clcl_reader_idx_open(const clcl_dataset_config *cfg, const char *dir, clcl_source *src);
clcl_status clcl_reader_cifar_open(const clcl_dataset_config *cfg, const char *dir,
                                   clcl_source *src);
clcl_status clcl_reader_stl10_open(const clcl_dataset_config *cfg, const char *dir,
                                   clcl_source *src);
clcl_status clcl_reader_folder_open(const clcl_dataset_config *cfg, const char *dir,
                                    clcl_source *src);

/* Files of fixed-size records, each holding one image at a fixed offset (CIFAR, STL-10),
 * read with pread so several threads can read at once (datasets/records.c). */
typedef struct {
    char *path;
    int fd;
    int first;        /* the dataset index of its first record */
    int count;        /* records in the file */
    int64_t header;   /* bytes before the first record */
    int record;       /* bytes per record */
    int pixel_offset; /* where the (C, H, W) pixels start within a record */
} clcl_record_file;

typedef struct {
    const char *what; /* the prefix of messages: "cifar10", "stl10" */
    int column_major; /* 1: each channel is stored column by column (STL-10) */
    int channels, height, width;
    int nfiles;
    clcl_record_file files[8];
} clcl_records;

/* A records state for a source; free it with clcl_records_free. */
clcl_records *clcl_records_create(const char *what, int column_major, int channels, int height,
                                  int width);
void clcl_records_free(void *records);
/* Opens a file of whole records after `header` bytes and appends it; a size that is not
 * header + a positive whole number of records is an error naming the file. */
clcl_status clcl_records_add(clcl_records *r, const char *path, int64_t header, int record,
                             int pixel_offset);
/* The total of records so far. */
int clcl_records_count(const clcl_records *r);
/* The source's read(): one image as (C, H, W), transposed from column-major if need be. */
clcl_status clcl_records_read(const clcl_source *src, int i, uint8_t *dst);

/* Helpers the readers share (datasets/files.c). */

/* 1 when path exists and is a directory / a regular file. */
int clcl_path_is_dir(const char *path);
int clcl_path_is_file(const char *path);
/* snprintf into a malloc'd string; NULL when out of memory. */
char *clcl_path_join(const char *dir, const char *name);
/* dir itself when it holds `probe`, else dir/sub when that folder holds it, else NULL;
 * the result is malloc'd. Lets a reader accept both the folder of a release and the
 * folder the release unpacks into (cifar-10-batches-bin, stl10_binary, ...). */
char *clcl_path_resolve(const char *dir, const char *sub, const char *probe);
/* Reads exactly n bytes at offset from fd; a short read is a "truncated" CLCL_ERR_FORMAT
 * and a failed one CLCL_ERR_IO, both naming `path` with the `what` prefix. */
clcl_status clcl_pread_all(int fd, void *buf, size_t n, int64_t offset, const char *what,
                           const char *path);
/* The size of a file, or CLCL_ERR_IO naming it. */
clcl_status clcl_file_size(const char *path, const char *what, int64_t *size);

/* Runs fn(user, i) for every i in [0, n) on up to `threads` threads (0: one per core;
 * the calling thread works too). When calls fail, no new ones start, and the status and
 * message of the failed call with the lowest index are returned and recorded on the
 * calling thread. */
typedef clcl_status (*clcl_parallel_fn)(void *user, int i);
clcl_status clcl_parallel_for(int n, int threads, clcl_parallel_fn fn, void *user);
/* The number of online cores (at least 1). */
int clcl_cpu_count(void);

#endif
