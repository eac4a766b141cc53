/* The batch loader: one producer thread, two slots, batches handed over in order. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "clcl/loader.h"
#include "clcl/rng.h"

enum { SLOT_FREE, SLOT_READY, SLOT_HELD };

typedef struct {
    int state;
    int epoch, step, n;
    int *index;      /* (batch_size) */
    int *labels;     /* (batch_size) */
    uint8_t *images; /* (batch_size, C, H, W) */
    void *extra;     /* (extra_bytes) or NULL */
    clcl_status status;
    char message[1024];
} loader_slot;

struct clcl_loader {
    clcl_loader_config cfg;
    int count;           /* images in the dataset */
    int steps;           /* batches per epoch */
    int *order;          /* (count) the current epoch's order; the loader thread's alone */
    int order_epoch;     /* the epoch order belongs to; -1: none yet */
    int owns_images;     /* 1: slot images were allocated here */
    loader_slot slot[2]; /* batch k lives in slot k % 2 */
    long long consumed;  /* batches handed to the caller */
    int held;            /* the slot the caller holds, -1: none */

    pthread_mutex_t lock;
    pthread_cond_t ready; /* a slot became READY */
    pthread_cond_t freed; /* a slot became FREE, or stop was set */
    int stop;
    pthread_t thread;
    int started;
};

void clcl_loader_epoch_order(uint64_t seed, int epoch, int count, int *order) {
    for (int i = 0; i < count; i++)
        order[i] = i;
    clcl_rng rng;
    clcl_rng_seed_stream(&rng, seed, CLCL_LOADER_SHUFFLE_STREAM + (uint64_t)epoch);
    clcl_rng_shuffle(&rng, order, count);
}

int clcl_loader_steps_per_epoch(const clcl_loader *l) {
    return l->steps;
}

/* Gathers batch (epoch, step) into slot s and runs the hook; failures stay in the slot. */
static void loader_fill(clcl_loader *l, loader_slot *s, int epoch, int step) {
    const clcl_loader_config *cfg = &l->cfg;
    if (l->order_epoch != epoch) {
        if (cfg->sequential)
            for (int i = 0; i < l->count; i++)
                l->order[i] = i;
        else
            clcl_loader_epoch_order(cfg->seed, epoch, l->count, l->order);
        l->order_epoch = epoch;
    }
    int first = step * cfg->batch_size;
    s->epoch = epoch;
    s->step = step;
    s->n = l->count - first < cfg->batch_size ? l->count - first : cfg->batch_size;
    memcpy(s->index, l->order + first, (size_t)s->n * sizeof *s->index);

    s->status = clcl_dataset_read(cfg->dataset, s->index, s->n, s->images, s->labels);
    if (s->status != CLCL_OK) {
        strncpy(s->message, clcl_last_error(), sizeof s->message - 1);
        return;
    }
    if (s->extra)
        memset(s->extra, 0, cfg->extra_bytes);
    if (cfg->prepare)
        cfg->prepare(cfg->user, epoch, step, s->index, s->n, s->extra);
}

static void *loader_main(void *arg) {
    clcl_loader *l = arg;
    long long first = (long long)l->cfg.start_epoch * l->steps + l->cfg.start_step;
    for (long long k = 0;; k++) {
        loader_slot *s = &l->slot[k % 2];

        /* Wait for the slot batch k goes to. */
        pthread_mutex_lock(&l->lock);
        while (s->state != SLOT_FREE && !l->stop)
            pthread_cond_wait(&l->freed, &l->lock);
        int stop = l->stop;
        pthread_mutex_unlock(&l->lock);
        if (stop)
            break;

        /* Fill it outside the lock: the end, or the batch. */
        int epoch = (int)((first + k) / l->steps), step = (int)((first + k) % l->steps);
        int end = l->cfg.epochs > 0 && epoch >= l->cfg.epochs;
        s->status = CLCL_OK;
        if (end) {
            s->epoch = epoch;
            s->step = 0;
            s->n = 0;
        } else {
            loader_fill(l, s, epoch, step);
        }

        pthread_mutex_lock(&l->lock);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&l->ready);
        pthread_mutex_unlock(&l->lock);
        if (end || s->status != CLCL_OK)
            break;
    }
    return NULL;
}

static clcl_status loader_check(const clcl_loader_config *cfg, int *steps) {
    if (!cfg->dataset || cfg->batch_size <= 0)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "loader: needs a dataset and a batch size > 0 (got "
                         "%d)",
                         cfg->batch_size);
    int count = clcl_dataset_count(cfg->dataset);
    *steps =
        cfg->keep_last ? (count + cfg->batch_size - 1) / cfg->batch_size : count / cfg->batch_size;
    if (*steps == 0)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "loader: batch size %d is larger than the dataset's %d images, so an "
                         "epoch has no whole batch (keep the last partial batch, or use a "
                         "smaller batch)",
                         cfg->batch_size, count);
    if (cfg->epochs < 0 || cfg->start_epoch < 0 || cfg->start_step < 0 || cfg->start_step >= *steps)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "loader: epochs %d, start epoch %d and start step %d: expected >= 0, "
                         "and a start step below the %d steps of an epoch",
                         cfg->epochs, cfg->start_epoch, cfg->start_step, *steps);
    if ((cfg->images[0] == NULL) != (cfg->images[1] == NULL))
        return clcl_fail(CLCL_ERR_ARGUMENT, "loader: give both image buffers or neither");
    return CLCL_OK;
}

/* The slots' buffers. */
static clcl_status loader_alloc(clcl_loader *l) {
    const clcl_loader_config *cfg = &l->cfg;
    size_t image_bytes = (size_t)cfg->batch_size * clcl_dataset_image_bytes(cfg->dataset);
    l->order = malloc((size_t)l->count * sizeof *l->order);
    l->owns_images = cfg->images[0] == NULL;
    int ok = l->order != NULL;
    for (int k = 0; k < 2; k++) {
        loader_slot *s = &l->slot[k];
        s->index = malloc((size_t)cfg->batch_size * sizeof *s->index);
        s->labels = malloc((size_t)cfg->batch_size * sizeof *s->labels);
        s->images = l->owns_images ? malloc(image_bytes ? image_bytes : 1) : cfg->images[k];
        s->extra = cfg->extra_bytes ? malloc(cfg->extra_bytes) : NULL;
        ok &= s->index && s->labels && s->images && (s->extra || !cfg->extra_bytes);
    }
    if (!ok)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "loader: out of memory for two batches of %d",
                         cfg->batch_size);
    return CLCL_OK;
}

clcl_status clcl_loader_create(const clcl_loader_config *cfg, clcl_loader **out) {
    *out = NULL;
    int steps = 0;
    CLCL_TRY(loader_check(cfg, &steps));
    clcl_loader *l = calloc(1, sizeof *l);
    if (!l)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "loader: out of memory");
    l->cfg = *cfg;
    l->count = clcl_dataset_count(cfg->dataset);
    l->steps = steps;
    l->order_epoch = -1;
    l->held = -1;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->ready, NULL);
    pthread_cond_init(&l->freed, NULL);

    clcl_status st = loader_alloc(l);
    if (st == CLCL_OK && pthread_create(&l->thread, NULL, loader_main, l) != 0)
        st = clcl_fail(CLCL_ERR_NO_MEMORY, "loader: cannot start the loader thread");
    l->started = st == CLCL_OK;
    if (st != CLCL_OK) {
        clcl_loader_free(l);
        return st;
    }
    *out = l;
    return CLCL_OK;
}

clcl_status clcl_loader_next(clcl_loader *l, clcl_batch *batch) {
    memset(batch, 0, sizeof *batch);
    pthread_mutex_lock(&l->lock);

    /* Give back the batch the caller held, then wait for the next one. */
    if (l->held >= 0) {
        l->slot[l->held].state = SLOT_FREE;
        l->held = -1;
        pthread_cond_broadcast(&l->freed);
    }
    loader_slot *s = &l->slot[l->consumed % 2];
    while (s->state != SLOT_READY)
        pthread_cond_wait(&l->ready, &l->lock);

    /* A failure or the end stays READY, so every later call sees it too. */
    clcl_status st = s->status;
    if (st != CLCL_OK) {
        pthread_mutex_unlock(&l->lock);
        return clcl_fail(st, "loader: epoch %d, step %d: %s", s->epoch, s->step, s->message);
    }
    batch->epoch = s->epoch;
    batch->step = s->step;
    if (s->n > 0) {
        s->state = SLOT_HELD;
        l->held = (int)(l->consumed % 2);
        l->consumed++;
        batch->n = s->n;
        batch->index = s->index;
        batch->images = s->images;
        batch->labels = s->labels;
        batch->extra = s->extra;
    }
    pthread_mutex_unlock(&l->lock);
    return CLCL_OK;
}

void clcl_loader_free(clcl_loader *l) {
    if (!l)
        return;
    if (l->started) {
        pthread_mutex_lock(&l->lock);
        l->stop = 1;
        pthread_cond_broadcast(&l->freed);
        pthread_mutex_unlock(&l->lock);
        pthread_join(l->thread, NULL);
    }
    for (int k = 0; k < 2; k++) {
        free(l->slot[k].index);
        free(l->slot[k].labels);
        if (l->owns_images)
            free(l->slot[k].images);
        free(l->slot[k].extra);
    }
    free(l->order);
    pthread_cond_destroy(&l->ready);
    pthread_cond_destroy(&l->freed);
    pthread_mutex_destroy(&l->lock);
    free(l);
}
