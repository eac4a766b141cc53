/* The batch loader: epoch orders fixed by the seed, every index once per epoch, identical
 * batches whatever the timing of consumer and loader thread, the prepare hook called in
 * order, resuming, caller buffers, errors handed to the consumer, and clean shutdown. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "clcl/dataset.h"
#include "clcl/loader.h"
#include "support.h"
#include "support_datafiles.h"

#define COUNT 37
#define ROWS  2
#define COLS  3
#define BYTES (ROWS * COLS)

/* MNIST files of 37 images of 2x3 whose bytes tell the image apart; labels i % 10. */
static clcl_dataset *small_dataset(void) {
    const char *dir = test_temp_dir("loader");
    uint8_t px[COUNT * BYTES], lb[COUNT];
    for (int i = 0; i < COUNT; i++) {
        lb[i] = (uint8_t)(i % 10);
        for (int k = 0; k < BYTES; k++)
            px[i * BYTES + k] = (uint8_t)(i * 7 + k);
    }
    test_write_idx_images(test_join(dir, "train-images-idx3-ubyte"), 0, 0x803, COUNT, ROWS, COLS,
                          px);
    test_write_idx_labels(test_join(dir, "train-labels-idx1-ubyte"), 0, 0x801, COUNT, lb);
    clcl_dataset_config cfg = {.kind = CLCL_DATASET_MNIST, .path = dir};
    clcl_dataset *ds = NULL;
    cr_assert(clcl_dataset_open(&cfg, &ds) == CLCL_OK, "%s", clcl_last_error());
    return ds;
}

static clcl_loader *make_loader(const clcl_loader_config *cfg) {
    clcl_loader *l = NULL;
    clcl_status st = clcl_loader_create(cfg, &l);
    cr_assert(st == CLCL_OK, "clcl_loader_create: %s", clcl_last_error());
    return l;
}

static void sleep_us(long us) {
    struct timespec t = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    nanosleep(&t, NULL);
}

/* What the hook writes into each batch's extra block. */
typedef struct {
    long long call; /* how many times the hook ran before */
    int epoch, step, first_index, n;
} hook_record;

typedef struct {
    long long calls;
    long sleep_max_us; /* > 0: sleep a pseudo-random while in the hook */
    uint64_t state;
} hook_state;

static void hook(void *user, int epoch, int step, const int *index, int n, void *extra) {
    hook_state *h = user;
    hook_record *r = extra;
    r->call = h->calls++;
    r->epoch = epoch;
    r->step = step;
    r->first_index = index[0];
    r->n = n;
    if (h->sleep_max_us > 0)
        sleep_us((long)(test_rand_u64(&h->state) % (uint64_t)h->sleep_max_us));
}

/* Everything a run delivered: per batch its indices, bytes, labels and hook record. */
typedef struct {
    int batches;
    int epoch[64], step[64], n[64];
    int index[64][16];
    int labels[64][16];
    uint8_t images[64][16 * BYTES];
    hook_record extra[64];
} run_log;

/* Runs a loader to its end, optionally sleeping before each next(). */
static void run_loader(const clcl_loader_config *cfg, long consumer_sleep_us, run_log *log) {
    clcl_loader *l = make_loader(cfg);
    memset(log, 0, sizeof *log);
    uint64_t state = 99;
    for (;;) {
        if (consumer_sleep_us > 0)
            sleep_us((long)(test_rand_u64(&state) % (uint64_t)consumer_sleep_us));
        clcl_batch b;
        clcl_status st = clcl_loader_next(l, &b);
        cr_assert(st == CLCL_OK, "next: %s", clcl_last_error());
        if (b.n == 0)
            break;
        int k = log->batches++;
        cr_assert(k < 64 && b.n <= 16);
        log->epoch[k] = b.epoch;
        log->step[k] = b.step;
        log->n[k] = b.n;
        memcpy(log->index[k], b.index, (size_t)b.n * sizeof *b.index);
        memcpy(log->labels[k], b.labels, (size_t)b.n * sizeof *b.labels);
        memcpy(log->images[k], b.images, (size_t)b.n * BYTES);
        if (b.extra)
            log->extra[k] = *(const hook_record *)b.extra;
    }

    /* The end stays the end. */
    clcl_batch b;
    cr_assert(clcl_loader_next(l, &b) == CLCL_OK && b.n == 0);
    clcl_loader_free(l);
}

static int same_runs(const run_log *a, const run_log *b) {
    return a->batches == b->batches && memcmp(a, b, sizeof *a) == 0;
}

Test(loader, epoch_orders_cover_every_index_once) {
    clcl_dataset *ds = small_dataset();
    clcl_loader_config cfg = {.dataset = ds, .batch_size = 8, .seed = 42, .epochs = 3};
    run_log log;
    run_loader(&cfg, 0, &log);

    /* Drop-last: 4 batches of 8 per epoch, the first 32 of the epoch's order. */
    cr_assert_eq(log.batches, 12);
    int order[3][COUNT];
    for (int e = 0; e < 3; e++) {
        clcl_loader_epoch_order(42, e, COUNT, order[e]);
        int seen[COUNT] = {0};
        for (int s = 0; s < 4; s++) {
            int k = e * 4 + s;
            cr_assert_eq(log.epoch[k], e);
            cr_assert_eq(log.step[k], s);
            cr_assert_eq(log.n[k], 8);
            for (int j = 0; j < 8; j++) {
                int i = log.index[k][j];
                cr_assert_eq(i, order[e][s * 8 + j]);
                cr_assert(seen[i]++ == 0, "index %d twice in epoch %d", i, e);
                cr_assert_eq(log.labels[k][j], i % 10);
                for (int b = 0; b < BYTES; b++)
                    cr_assert_eq(log.images[k][j * BYTES + b], (uint8_t)(i * 7 + b));
            }
        }
    }

    /* Each order is a permutation, and epochs differ. */
    for (int e = 0; e < 3; e++) {
        int seen[COUNT] = {0};
        for (int i = 0; i < COUNT; i++)
            seen[order[e][i]]++;
        for (int i = 0; i < COUNT; i++)
            cr_assert_eq(seen[i], 1);
    }
    cr_assert(memcmp(order[0], order[1], sizeof order[0]) != 0);

    /* Keeping the last batch: every index exactly once, the last batch 37 - 32 = 5. */
    cfg.keep_last = 1;
    run_loader(&cfg, 0, &log);
    cr_assert_eq(log.batches, 15);
    for (int e = 0; e < 3; e++) {
        int seen[COUNT] = {0};
        for (int s = 0; s < 5; s++)
            for (int j = 0; j < log.n[e * 5 + s]; j++)
                seen[log.index[e * 5 + s][j]]++;
        for (int i = 0; i < COUNT; i++)
            cr_assert_eq(seen[i], 1, "epoch %d, index %d", e, i);
        cr_assert_eq(log.n[e * 5 + 4], 5);
    }

    /* Sequential: dataset order in every epoch. */
    cfg.sequential = 1;
    run_loader(&cfg, 0, &log);
    for (int k = 0; k < log.batches; k++)
        for (int j = 0; j < log.n[k]; j++)
            cr_assert_eq(log.index[k][j], log.step[k] * 8 + j);
    clcl_dataset_free(ds);
}

Test(loader, same_batches_whatever_the_timing) {
    clcl_dataset *ds = small_dataset();
    hook_state h = {0};
    clcl_loader_config cfg = {.dataset = ds,
                              .batch_size = 6,
                              .seed = 7,
                              .epochs = 4,
                              .prepare = hook,
                              .user = &h,
                              .extra_bytes = sizeof(hook_record)};
    static run_log fast, slow_consumer, slow_loader, other_seed;
    run_loader(&cfg, 0, &fast);
    cr_assert_eq(fast.batches, 24);
    for (int k = 0; k < fast.batches; k++) {
        cr_assert_eq(fast.extra[k].call, k, "the hook runs once per batch, in order");
        cr_assert_eq(fast.extra[k].epoch, fast.epoch[k]);
        cr_assert_eq(fast.extra[k].step, fast.step[k]);
        cr_assert_eq(fast.extra[k].first_index, fast.index[k][0]);
        cr_assert_eq(fast.extra[k].n, 6);
    }

    /* A consumer slower than the loader, then a loader slower than the consumer. */
    h = (hook_state){0};
    run_loader(&cfg, 3000, &slow_consumer);
    cr_assert(same_runs(&fast, &slow_consumer), "a slow consumer got other batches");
    h = (hook_state){.sleep_max_us = 3000, .state = 5};
    run_loader(&cfg, 0, &slow_loader);
    cr_assert(same_runs(&fast, &slow_loader), "a slow loader gave other batches");

    /* Another seed, another order. */
    h = (hook_state){0};
    cfg.seed = 8;
    run_loader(&cfg, 0, &other_seed);
    cr_assert(memcmp(fast.index, other_seed.index, sizeof fast.index) != 0);
    clcl_dataset_free(ds);
}

Test(loader, resume_and_caller_buffers) {
    clcl_dataset *ds = small_dataset();
    clcl_loader_config cfg = {.dataset = ds, .batch_size = 5, .seed = 3, .epochs = 3};
    static run_log whole, resumed;
    run_loader(&cfg, 0, &whole);
    cr_assert_eq(whole.batches, 21);

    /* Starting at epoch 1, step 2 continues the same sequence. */
    cfg.start_epoch = 1;
    cfg.start_step = 2;
    run_loader(&cfg, 0, &resumed);
    cr_assert_eq(resumed.batches, 21 - 9);
    for (int k = 0; k < resumed.batches; k++) {
        cr_assert_eq(resumed.epoch[k], whole.epoch[k + 9]);
        cr_assert_eq(resumed.step[k], whole.step[k + 9]);
        cr_assert(memcmp(resumed.index[k], whole.index[k + 9], sizeof whole.index[k]) == 0);
        cr_assert(memcmp(resumed.images[k], whole.images[k + 9], sizeof whole.images[k]) == 0);
    }

    /* Caller-owned buffers alternate. */
    static uint8_t buf[2][5 * BYTES];
    cfg = (clcl_loader_config){
        .dataset = ds, .batch_size = 5, .seed = 3, .epochs = 1, .images = {buf[0], buf[1]}};
    clcl_loader *l = make_loader(&cfg);
    for (int k = 0; k < 7; k++) {
        clcl_batch b;
        cr_assert(clcl_loader_next(l, &b) == CLCL_OK && b.n == 5);
        cr_assert(b.images == buf[k % 2]);
        cr_assert(memcmp(b.images, whole.images[k], 5 * BYTES) == 0);
    }
    clcl_loader_free(l);
    clcl_dataset_free(ds);
}

Test(loader, bad_arguments) {
    clcl_dataset *ds = small_dataset();
    clcl_loader *l = NULL;
    clcl_loader_config cfg = {.dataset = ds, .batch_size = 38};
    cr_assert_eq(clcl_loader_create(&cfg, &l), CLCL_ERR_ARGUMENT);
    cr_assert(strstr(clcl_last_error(), "batch size 38 is larger than the dataset's 37"));
    cr_assert_null(l);
    cfg.keep_last = 1;
    l = make_loader(&cfg);
    cr_assert_eq(clcl_loader_steps_per_epoch(l), 1);
    clcl_loader_free(l);
    cfg = (clcl_loader_config){.dataset = ds, .batch_size = 10, .start_step = 3};
    cr_assert_eq(clcl_loader_create(&cfg, &l), CLCL_ERR_ARGUMENT);
    cr_assert(strstr(clcl_last_error(), "start step 3"), "%s", clcl_last_error());
    uint8_t one[10 * BYTES];
    cfg = (clcl_loader_config){.dataset = ds, .batch_size = 10, .images = {one, NULL}};
    cr_assert_eq(clcl_loader_create(&cfg, &l), CLCL_ERR_ARGUMENT);
    cfg.batch_size = 0;
    cr_assert_eq(clcl_loader_create(&cfg, &l), CLCL_ERR_ARGUMENT);
    clcl_dataset_free(ds);
}

Test(loader, shutdown_at_any_point) {
    clcl_dataset *ds = small_dataset();

    /* At once; after one batch (the thread waits for a free slot); unending epochs. */
    clcl_loader_config cfg = {.dataset = ds, .batch_size = 4, .seed = 1};
    for (int taken = 0; taken < 3; taken++) {
        clcl_loader *l = make_loader(&cfg);
        for (int k = 0; k < taken * 10; k++) {
            clcl_batch b;
            cr_assert(clcl_loader_next(l, &b) == CLCL_OK && b.n == 4);
        }
        clcl_loader_free(l);
    }

    /* While the hook is slow. */
    hook_state h = {.sleep_max_us = 20000, .state = 1};
    cfg.prepare = hook;
    cfg.user = &h;
    cfg.extra_bytes = sizeof(hook_record);
    clcl_loader *l = make_loader(&cfg);
    clcl_batch b;
    cr_assert(clcl_loader_next(l, &b) == CLCL_OK);
    clcl_loader_free(l);
    clcl_dataset_free(ds);
}

Test(loader, errors_reach_the_consumer) {
    /* A streamed folder whose fourth image (in dataset order) will not decode. */
    const char *root = test_temp_dir("loader-bad");
    char cls[1024];
    snprintf(cls, sizeof cls, "%s/only", root);
    test_mkdir(cls);
    uint8_t px[4 * 4 * 3];
    test_fill_bytes(px, sizeof px, 4);
    for (int i = 0; i < 6; i++) {
        char name[32];
        snprintf(name, sizeof name, "%d.png", i);
        test_write_image(test_join(cls, name), 4, 4, 3, px);
    }
    const char *broken = test_join(cls, "3.png");
    test_truncate(broken, 40);
    clcl_dataset_config dc = {
        .kind = CLCL_DATASET_FOLDER, .path = root, .channels = 3, .memory_budget = 1};
    clcl_dataset *ds = NULL;
    cr_assert(clcl_dataset_open(&dc, &ds) == CLCL_OK, "%s", clcl_last_error());
    cr_assert(!clcl_dataset_in_memory(ds));

    /* Sequential batches of 2: (0, 1) is fine, (2, 3) fails, and keeps failing. */
    clcl_loader_config cfg = {.dataset = ds, .batch_size = 2, .sequential = 1};
    clcl_loader *l = make_loader(&cfg);
    clcl_batch b;
    cr_assert(clcl_loader_next(l, &b) == CLCL_OK && b.n == 2, "%s", clcl_last_error());
    for (int again = 0; again < 2; again++) {
        clcl_status st = clcl_loader_next(l, &b);
        cr_assert_eq(st, CLCL_ERR_FORMAT, "%s", clcl_status_name(st));
        cr_assert(strstr(clcl_last_error(), broken), "%s", clcl_last_error());
        cr_assert(strstr(clcl_last_error(), "epoch 0, step 1"), "%s", clcl_last_error());
        cr_assert_eq(b.n, 0);
    }
    clcl_loader_free(l);
    clcl_dataset_free(ds);
}
