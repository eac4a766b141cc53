/* Files of fixed-size image records, read at random with pread (CIFAR, STL-10). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "source.h"

clcl_records *clcl_records_create(const char *what, int column_major, int channels, int height,
                                  int width) {
    clcl_records *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->what = what;
    r->column_major = column_major;
    r->channels = channels;
    r->height = height;
    r->width = width;
    return r;
}

void clcl_records_free(void *records) {
    clcl_records *r = records;
    if (!r)
        return;
    for (int k = 0; k < r->nfiles; k++) {
        if (r->files[k].fd >= 0)
            close(r->files[k].fd);
        free(r->files[k].path);
    }
    free(r);
}

int clcl_records_count(const clcl_records *r) {
    return r->nfiles ? r->files[r->nfiles - 1].first + r->files[r->nfiles - 1].count : 0;
}

clcl_status clcl_records_add(clcl_records *r, const char *path, int64_t header, int record,
                             int pixel_offset) {
    if (r->nfiles == (int)(sizeof r->files / sizeof *r->files))
        return clcl_fail(CLCL_ERR_ARGUMENT, "%s: too many files", r->what);

    /* The size must be the header and a positive whole number of records. */
    int64_t size;
    CLCL_TRY(clcl_file_size(path, r->what, &size));
    int64_t body = size - header;
    if (body <= 0 || body % record != 0)
        return clcl_fail(CLCL_ERR_FORMAT,
                         "%s: %s: %lld bytes%s is not a whole, positive number of %d-byte "
                         "records (truncated, or not this format?)",
                         r->what, path, (long long)body, header ? " after the header" : "", record);
    if (body / record + clcl_records_count(r) > (1 << 30))
        return clcl_fail(CLCL_ERR_FORMAT, "%s: %s: more than 2^30 images", r->what, path);

    clcl_record_file *f = &r->files[r->nfiles];
    f->fd = open(path, O_RDONLY);
    if (f->fd < 0)
        return clcl_fail(CLCL_ERR_IO, "%s: cannot open %s: %s", r->what, path, strerror(errno));
    f->path = strdup(path);
    f->first = clcl_records_count(r);
    f->count = (int)(body / record);
    f->header = header;
    f->record = record;
    f->pixel_offset = pixel_offset;
    r->nfiles++;
    if (!f->path)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory", r->what);
    return CLCL_OK;
}

/* STL-10 stores each channel column by column: (C, W, H) to (C, H, W). */
static void transpose_channels(const uint8_t *in, uint8_t *out, int channels, int height,
                               int width) {
    size_t plane = (size_t)height * (size_t)width;
    for (int c = 0; c < channels; c++)
        for (int x = 0; x < width; x++)
            for (int y = 0; y < height; y++)
                out[c * plane + (size_t)y * width + x] = in[c * plane + (size_t)x * height + y];
}

clcl_status clcl_records_read(const clcl_source *src, int i, uint8_t *dst) {
    const clcl_records *r = src->state;
    int k = 0;
    while (k < r->nfiles - 1 && i >= r->files[k + 1].first)
        k++;
    const clcl_record_file *f = &r->files[k];
    size_t bytes = (size_t)r->channels * (size_t)r->height * (size_t)r->width;
    int64_t offset = f->header + (int64_t)(i - f->first) * f->record + f->pixel_offset;
    if (!r->column_major)
        return clcl_pread_all(f->fd, dst, bytes, offset, r->what, f->path);

    uint8_t *raw = malloc(bytes);
    if (!raw)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory", r->what);
    clcl_status st = clcl_pread_all(f->fd, raw, bytes, offset, r->what, f->path);
    if (st == CLCL_OK)
        transpose_channels(raw, dst, r->channels, r->height, r->width);
    free(raw);
    return st;
}
