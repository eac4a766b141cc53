/* safetensors files: the weights format of the PyTorch world, read and written on the host.
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON, then the tensor
 * bytes. The JSON maps each tensor's name to {"dtype", "shape", "data_offsets": [begin,
 * end]} (offsets relative to the start of the tensor bytes) and may hold "__metadata__", a
 * map of strings to strings. clcl writes F32 and I64 (torch keeps num_batches_tracked as
 * int64); the reader accepts every dtype name of the format and hands the raw bytes over.
 *
 * The reader is strict: a header length past the end of the file, malformed JSON, an
 * unknown key or dtype, a shape whose size disagrees with its offsets, offsets out of
 * range, overlapping or leaving holes, or a duplicate name is CLCL_ERR_FORMAT with the
 * file and the tensor named. Writing is atomic: a temporary file beside the target,
 * flushed and fsync'ed, then renamed over it, so a reader sees the old file or the new
 * one, never half of one. */
#ifndef CLCL_SAFETENSORS_H
#define CLCL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "clcl/tensor.h"

#define CLCL_SAFETENSORS_MAX_DIMS 8

typedef enum {
    CLCL_DTYPE_F32,
    CLCL_DTYPE_I64,
    CLCL_DTYPE_OTHER /* any other dtype of the format (F16, BF16, U8, ...): bytes only */
} clcl_dtype;

/* One tensor of a file that was read. `data` points into the reader's copy of the file
 * and is suitably aligned for its dtype; it lives as long as the reader. */
typedef struct {
    const char *name;
    clcl_dtype dtype;
    const char *dtype_name; /* as written: "F32", "I64", "BF16", ... */
    int ndim;               /* 0 for a scalar */
    int64_t shape[CLCL_SAFETENSORS_MAX_DIMS];
    size_t count; /* elements (1 for a scalar) */
    size_t bytes;
    const void *data;
} clcl_safetensors_entry;

/* ---- reading ---------------------------------------------------------------------------- */

typedef struct clcl_safetensors clcl_safetensors;

/* Reads and checks the whole file. */
clcl_status clcl_safetensors_read(const char *path, clcl_safetensors **out);
/* Same, from bytes in memory (copied); `what` names the source in errors. */
clcl_status clcl_safetensors_parse(const void *bytes, size_t size, const char *what,
                                   clcl_safetensors **out);
void clcl_safetensors_free(clcl_safetensors *st);

/* The path (or `what`) the reader was made from. */
const char *clcl_safetensors_source(const clcl_safetensors *st);
/* Tensors in the order of their offsets. */
int clcl_safetensors_count(const clcl_safetensors *st);
const clcl_safetensors_entry *clcl_safetensors_at(const clcl_safetensors *st, int i);
/* The tensor called `name`, or NULL. */
const clcl_safetensors_entry *clcl_safetensors_find(const clcl_safetensors *st, const char *name);
/* A "__metadata__" value, or NULL. */
const char *clcl_safetensors_metadata(const clcl_safetensors *st, const char *key);

/* Checks that `name` exists with dtype F32 and the given shape (ndim 0: a scalar) and
 * returns it; otherwise CLCL_ERR_FORMAT naming the file, the tensor and both shapes. */
clcl_status clcl_safetensors_expect_f32(const clcl_safetensors *st, const char *name, int ndim,
                                        const int *shape, const clcl_safetensors_entry **out);
/* Copies an F32 entry to a device tensor of the same element count. */
clcl_status clcl_safetensors_to_device(clcl_context *ctx, const clcl_safetensors *st,
                                       const clcl_safetensors_entry *e, clcl_tensor *t);

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct clcl_safetensors_writer clcl_safetensors_writer;

clcl_status clcl_safetensors_writer_create(clcl_safetensors_writer **out);
void clcl_safetensors_writer_free(clcl_safetensors_writer *w);

/* Adds a tensor; `data` (count * element size bytes, little-endian) is copied. A name that
 * is empty, starts with "__" or was added before is CLCL_ERR_ARGUMENT. */
clcl_status clcl_safetensors_add(clcl_safetensors_writer *w, const char *name, clcl_dtype dtype,
                                 int ndim, const int64_t *shape, const void *data);
/* Adds a device tensor as F32 with its shape. */
clcl_status clcl_safetensors_add_tensor(clcl_safetensors_writer *w, clcl_context *ctx,
                                        const char *name, const clcl_tensor *t);
/* Adds an I64 scalar (shape []). */
clcl_status clcl_safetensors_add_i64(clcl_safetensors_writer *w, const char *name, int64_t value);
/* Adds or replaces a "__metadata__" entry. */
clcl_status clcl_safetensors_add_metadata(clcl_safetensors_writer *w, const char *key,
                                          const char *value);

/* Writes every tensor, in the order added, to `path` atomically. */
clcl_status clcl_safetensors_write(const clcl_safetensors_writer *w, const char *path);

#endif
