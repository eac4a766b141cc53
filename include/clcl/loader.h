/* The batch loader: a background thread that prepares the next batch while the caller
 * works on the current one.
 *
 * For every batch, in order, the loader thread takes the next indices of the epoch's
 * order, gathers those images (n, C, H, W) uint8 and their labels into a host buffer, and
 * calls the optional prepare hook, where the trainer draws the batch's augmentation
 * parameters. Two buffers alternate: the loader fills one while the caller holds the other.
 *
 * Determinism: a batch depends only on (seed, epoch, step) and, through the hook, on what
 * the hook does with them; the hook runs on the loader thread once per batch, in batch
 * order, never concurrently with itself. So the same seed gives the same batches whatever
 * the timing of the two threads. Epoch e's order is a Fisher-Yates shuffle of 0..count-1
 * drawn from clcl_rng_seed_stream(seed, CLCL_LOADER_SHUFFLE_STREAM + e) (see
 * clcl_loader_epoch_order).
 *
 *     clcl_loader_config lc = {.dataset = ds, .batch_size = 256, .seed = 1, .epochs = 100,
 *                              .prepare = draw_views, .user = &aug, .extra_bytes = bytes};
 *     clcl_loader *loader;
 *     CLCL_TRY(clcl_loader_create(&lc, &loader));
 *     for (clcl_batch b; clcl_loader_next(loader, &b) == CLCL_OK && b.n > 0;)
 *         train_step(b.images, b.labels, b.extra, b.n);
 *     clcl_loader_free(loader);
 */
#ifndef CLCL_LOADER_H
#define CLCL_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "clcl/dataset.h"
#include "clcl/status.h"

/* Added to the epoch to make the rng stream of that epoch's shuffle ('SHUF' << 32). */
#define CLCL_LOADER_SHUFFLE_STREAM 0x5348554600000000ULL

/* Called on the loader thread for each batch after its images are gathered: index (n) are
 * the batch's dataset indices, extra the batch's zeroed block of extra_bytes (NULL when 0)
 * that the caller later finds in clcl_batch.extra. It must not touch state the caller's
 * thread uses without its own locking. */
typedef void (*clcl_loader_prepare_fn)(void *user, int epoch, int step, const int *index, int n,
                                       void *extra);

typedef struct {
    clcl_dataset *dataset;
    int batch_size;
    uint64_t seed;   /* fixes every epoch's order */
    int sequential;  /* 1: dataset order in every epoch, no shuffle (evaluation) */
    int keep_last;   /* 1: deliver an epoch's last partial batch too; 0: drop it */
    int epochs;      /* epochs to deliver before the end; 0: no end */
    int start_epoch; /* resume: the first batch is step start_step of epoch start_epoch */
    int start_step;
    clcl_loader_prepare_fn prepare; /* optional */
    void *user;                     /* passed to prepare */
    size_t extra_bytes;             /* per-batch block handed to prepare */
    uint8_t *images[2]; /* optional: two caller-owned buffers of batch_size * C * H * W bytes
                           (mapped pinned memory, say) to gather into; NULL: allocated */
} clcl_loader_config;

typedef struct {
    int epoch;
    int step;              /* within the epoch */
    int n;                 /* images in the batch; 0 once the epochs are done */
    const int *index;      /* (n) dataset indices */
    const uint8_t *images; /* (n, C, H, W) uint8 */
    const int *labels;     /* (n), -1 for unlabeled data */
    void *extra;           /* the block prepare filled; NULL when extra_bytes is 0 */
} clcl_batch;

typedef struct clcl_loader clcl_loader;

/* Starts the loader thread; it begins on the first two batches at once. */
clcl_status clcl_loader_create(const clcl_loader_config *config, clcl_loader **out);

/* Waits for the next batch and hands it over; the previous batch's buffers go back to the
 * loader, so a batch stays valid until the next call (or clcl_loader_free). At the end
 * (config.epochs done) returns CLCL_OK with batch->n == 0, and does again if called again.
 * A failure on the loader thread (an image that will not decode) is returned here, with its
 * message, by this and every later call. */
clcl_status clcl_loader_next(clcl_loader *loader, clcl_batch *batch);

/* Stops the thread (after the batch it is working on, if any) and frees everything. */
void clcl_loader_free(clcl_loader *loader);

/* Batches per epoch: count / batch_size, rounded up with keep_last, down without. */
int clcl_loader_steps_per_epoch(const clcl_loader *loader);

/* Epoch `epoch`'s order of count images as the loader draws it (0..count-1 shuffled). */
void clcl_loader_epoch_order(uint64_t seed, int epoch, int count, int *order);

#endif
