/* The binary readers (IDX plain and gzip, CIFAR-10/100, STL-10), the subset and the
 * interface, on small files written in the real formats; every corrupt case's error; and
 * the real Fashion-MNIST when Debian's package is installed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <criterion/criterion.h>

#include "clcl/dataset.h"
#include "support.h"
#include "support_datafiles.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static clcl_dataset *open_ok(const clcl_dataset_config *cfg) {
    clcl_dataset *ds = NULL;
    clcl_status st = clcl_dataset_open(cfg, &ds);
    cr_assert(st == CLCL_OK, "clcl_dataset_open: %s: %s", clcl_status_name(st), clcl_last_error());
    return ds;
}

/* Opening fails with `status` and a message holding both strings (b may be NULL). */
static void open_fails(const clcl_dataset_config *cfg, clcl_status status, const char *a,
                       const char *b) {
    clcl_dataset *ds = NULL;
    clcl_status st = clcl_dataset_open(cfg, &ds);
    const char *msg = clcl_last_error();
    cr_assert(st == status, "expected %s, got %s (%s)", clcl_status_name(status),
              clcl_status_name(st), msg);
    cr_assert(ds == NULL, "a failed open must not return a dataset");
    cr_assert(strstr(msg, a) != NULL, "message '%s' lacks '%s'", msg, a);
    cr_assert(!b || strstr(msg, b) != NULL, "message '%s' lacks '%s'", msg, b);
}

/* Reads every image in order and compares with the expected (n, C, H, W) bytes/labels. */
static void expect_contents(clcl_dataset *ds, const uint8_t *pixels, const int *labels) {
    int n = clcl_dataset_count(ds);
    size_t bytes = clcl_dataset_image_bytes(ds);
    int *index = malloc((size_t)n * sizeof *index);
    int *got_labels = malloc((size_t)n * sizeof *got_labels);
    uint8_t *got = malloc((size_t)n * bytes);
    cr_assert(index && got_labels && got);

    /* Backwards, so the gather by index is exercised. */
    for (int j = 0; j < n; j++)
        index[j] = n - 1 - j;
    clcl_status st = clcl_dataset_read(ds, index, n, got, got_labels);
    cr_assert(st == CLCL_OK, "read: %s", clcl_last_error());
    for (int j = 0; j < n; j++) {
        int i = index[j];
        cr_assert(memcmp(got + (size_t)j * bytes, pixels + (size_t)i * bytes, bytes) == 0,
                  "image %d differs", i);
        cr_assert(got_labels[j] == labels[i], "label of image %d: %d, expected %d", i,
                  got_labels[j], labels[i]);
        cr_assert(clcl_dataset_labels(ds)[i] == labels[i]);
    }
    free(index);
    free(got_labels);
    free(got);
}

/* ---- IDX ---------------------------------------------------------------------------- */

typedef struct {
    uint8_t train_px[7 * 5 * 4], test_px[3 * 5 * 4];
    uint8_t train_lb[7], test_lb[3];
} idx_data;

/* Train (7 images) and test (3 images) of 5 rows x 4 columns. */
static void write_idx_set(const char *dir, int gz, idx_data *d) {
    test_fill_bytes(d->train_px, sizeof d->train_px, 1);
    test_fill_bytes(d->test_px, sizeof d->test_px, 2);
    for (int i = 0; i < 7; i++)
        d->train_lb[i] = (uint8_t)((i * 3) % 10);
    for (int i = 0; i < 3; i++)
        d->test_lb[i] = (uint8_t)(9 - i);
    const char *ext = gz ? ".gz" : "";
    char name[64];
    snprintf(name, sizeof name, "train-images-idx3-ubyte%s", ext);
    test_write_idx_images(test_join(dir, name), gz, 0x803, 7, 5, 4, d->train_px);
    snprintf(name, sizeof name, "train-labels-idx1-ubyte%s", ext);
    test_write_idx_labels(test_join(dir, name), gz, 0x801, 7, d->train_lb);
    snprintf(name, sizeof name, "t10k-images-idx3-ubyte%s", ext);
    test_write_idx_images(test_join(dir, name), gz, 0x803, 3, 5, 4, d->test_px);
    snprintf(name, sizeof name, "t10k-labels-idx1-ubyte%s", ext);
    test_write_idx_labels(test_join(dir, name), gz, 0x801, 3, d->test_lb);
}

static void to_int(const uint8_t *in, int *out, int n) {
    for (int i = 0; i < n; i++)
        out[i] = in[i];
}

Test(idx, plain_and_gzip_read_back) {
    for (int gz = 0; gz <= 1; gz++) {
        const char *dir = test_temp_dir("idx");
        idx_data d;
        write_idx_set(dir, gz, &d);
        int labels[7];

        clcl_dataset_config cfg = {.kind = CLCL_DATASET_MNIST, .path = dir};
        clcl_dataset *ds = open_ok(&cfg);
        cr_assert_eq(clcl_dataset_count(ds), 7);
        cr_assert_eq(clcl_dataset_total(ds), 7);
        cr_assert_eq(clcl_dataset_classes(ds), 10);
        cr_assert_eq(clcl_dataset_channels(ds), 1);
        cr_assert_eq(clcl_dataset_height(ds), 5, "rows are the height");
        cr_assert_eq(clcl_dataset_width(ds), 4, "columns are the width");
        cr_assert_str_eq(clcl_dataset_class_name(ds, 3), "3");
        cr_assert(clcl_dataset_in_memory(ds));
        to_int(d.train_lb, labels, 7);
        expect_contents(ds, d.train_px, labels);
        clcl_dataset_free(ds);

        cfg.kind = CLCL_DATASET_FASHION_MNIST;
        cfg.split = CLCL_SPLIT_TEST;
        ds = open_ok(&cfg);
        cr_assert_eq(clcl_dataset_count(ds), 3);
        cr_assert_str_eq(clcl_dataset_class_name(ds, 0), "T-shirt/top");
        cr_assert_str_eq(clcl_dataset_class_name(ds, 9), "Ankle boot");
        to_int(d.test_lb, labels, 3);
        expect_contents(ds, d.test_px, labels);
        clcl_dataset_free(ds);
    }
}

Test(idx, corrupt_files_name_the_file) {
    const char *dir = test_temp_dir("idx-bad");
    idx_data d;
    clcl_dataset_config cfg = {.kind = CLCL_DATASET_MNIST, .path = dir};
    const char *images = test_join(dir, "train-images-idx3-ubyte");
    const char *labels = test_join(dir, "train-labels-idx1-ubyte");

    /* Missing files. */
    open_fails(&cfg, CLCL_ERR_IO, "train-images-idx3-ubyte.gz", "found neither");

    /* Wrong magic, images then labels. */
    write_idx_set(dir, 0, &d);
    test_write_idx_images(images, 0, 0x802, 7, 5, 4, d.train_px);
    open_fails(&cfg, CLCL_ERR_FORMAT, images, "magic 0x00000802, expected 0x00000803");
    test_write_idx_images(images, 0, 0x803, 7, 5, 4, d.train_px);
    test_write_idx_labels(labels, 0, 0x803, 7, d.train_lb);
    open_fails(&cfg, CLCL_ERR_FORMAT, labels, "expected 0x00000801");

    /* Image/label count mismatch. */
    test_write_idx_labels(labels, 0, 0x801, 6, d.train_lb);
    open_fails(&cfg, CLCL_ERR_FORMAT, labels, "holds 6 labels, but the images file 7");

    /* Label out of range. */
    d.train_lb[4] = 10;
    test_write_idx_labels(labels, 0, 0x801, 7, d.train_lb);
    open_fails(&cfg, CLCL_ERR_FORMAT, labels, "label 10 of image 4 is out of range [0, 10)");
    d.train_lb[4] = 1;
    test_write_idx_labels(labels, 0, 0x801, 7, d.train_lb);

    /* Truncated images, more data than the header says. */
    test_truncate(images, 16 + 7 * 20 - 1);
    open_fails(&cfg, CLCL_ERR_FORMAT, images, "expected 140 bytes of pixels, read 139");
    test_write_idx_images(images, 0, 0x803, 7, 5, 4, d.train_px);
    test_poke(images, 7, 6); /* the header now announces 6 images */
    open_fails(&cfg, CLCL_ERR_FORMAT, images, "more data after the 120 bytes");

    /* A wrong split; a kind without a default folder. */
    test_write_idx_images(images, 0, 0x803, 7, 5, 4, d.train_px);
    cfg.split = CLCL_SPLIT_UNLABELED;
    open_fails(&cfg, CLCL_ERR_ARGUMENT, "mnist", "no unlabeled split");
    clcl_dataset_config nopath = {.kind = CLCL_DATASET_MNIST};
    open_fails(&nopath, CLCL_ERR_ARGUMENT, "mnist: no path given", NULL);
}

Test(idx, corrupt_gzip) {
    const char *dir = test_temp_dir("idx-gz");
    idx_data d;
    write_idx_set(dir, 1, &d);
    clcl_dataset_config cfg = {.kind = CLCL_DATASET_MNIST, .path = dir, .split = CLCL_SPLIT_TEST};
    const char *images = test_join(dir, "t10k-images-idx3-ubyte.gz");

    /* A gzip file cut in the middle of its stream. */
    FILE *f = fopen(images, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    test_truncate(images, size / 2);
    open_fails(&cfg, CLCL_ERR_FORMAT, images, "truncated or corrupt");

    /* A gzip file whose deflate data is damaged. */
    write_idx_set(dir, 1, &d);
    for (long k = 12; k < size - 10; k++)
        test_poke(images, k, 0xff);
    open_fails(&cfg, CLCL_ERR_FORMAT, images, NULL);
}

/* ---- CIFAR -------------------------------------------------------------------------- */

Test(cifar, cifar10_batches_in_release_folder) {
    const char *dir = test_temp_dir("cifar10");
    char inner[512];
    snprintf(inner, sizeof inner, "%s/cifar-10-batches-bin", dir);
    test_mkdir(inner);

    /* Five training batches of uneven sizes, and a test batch. */
    const int sizes[5] = {3, 2, 4, 1, 2};
    uint8_t px[12 * 3072], lb[12];
    int labels[12];
    test_fill_bytes(px, sizeof px, 7);
    for (int i = 0; i < 12; i++) {
        lb[i] = (uint8_t)((i * 7) % 10);
        labels[i] = lb[i];
    }
    for (int k = 0, first = 0; k < 5; first += sizes[k], k++) {
        char name[64];
        snprintf(name, sizeof name, "data_batch_%d.bin", k + 1);
        test_write_cifar(test_join(inner, name), sizes[k], px + first * 3072, lb + first, NULL);
    }
    test_write_cifar(test_join(inner, "test_batch.bin"), 2, px, lb + 5, NULL);

    /* Given either folder. */
    for (int pass = 0; pass < 2; pass++) {
        clcl_dataset_config cfg = {.kind = CLCL_DATASET_CIFAR10, .path = pass ? inner : dir};
        clcl_dataset *ds = open_ok(&cfg);
        cr_assert_eq(clcl_dataset_count(ds), 12);
        cr_assert_eq(clcl_dataset_classes(ds), 10);
        cr_assert_eq(clcl_dataset_channels(ds), 3);
        cr_assert_eq(clcl_dataset_height(ds), 32);
        cr_assert_eq(clcl_dataset_width(ds), 32);
        cr_assert_str_eq(clcl_dataset_class_name(ds, 0), "airplane");
        cr_assert_str_eq(clcl_dataset_class_name(ds, 9), "truck");
        expect_contents(ds, px, labels);
        clcl_dataset_free(ds);
    }
    clcl_dataset_config test = {
        .kind = CLCL_DATASET_CIFAR10, .path = dir, .split = CLCL_SPLIT_TEST};
    clcl_dataset *ds = open_ok(&test);
    expect_contents(ds, px, labels + 5);
    clcl_dataset_free(ds);
}

Test(cifar, cifar100_fine_and_coarse) {
    const char *dir = test_temp_dir("cifar100");
    uint8_t px[5 * 3072], fine[5] = {0, 99, 42, 7, 63}, coarse[5] = {4, 19, 0, 13, 5};
    test_fill_bytes(px, sizeof px, 9);
    test_write_cifar(test_join(dir, "train.bin"), 5, px, fine, coarse);
    test_write_cifar(test_join(dir, "test.bin"), 2, px + 3072, fine + 1, coarse + 1);
    int lf[5], lc[5];
    to_int(fine, lf, 5);
    to_int(coarse, lc, 5);

    clcl_dataset_config cfg = {.kind = CLCL_DATASET_CIFAR100, .path = dir};
    clcl_dataset *ds = open_ok(&cfg);
    cr_assert_eq(clcl_dataset_classes(ds), 100);
    cr_assert_str_eq(clcl_dataset_class_name(ds, 0), "apple");
    cr_assert_str_eq(clcl_dataset_class_name(ds, 99), "worm");
    expect_contents(ds, px, lf);
    clcl_dataset_free(ds);

    cfg.coarse_labels = 1;
    ds = open_ok(&cfg);
    cr_assert_eq(clcl_dataset_classes(ds), 20);
    cr_assert_str_eq(clcl_dataset_class_name(ds, 19), "vehicles_2");
    expect_contents(ds, px, lc);
    clcl_dataset_free(ds);

    cfg.split = CLCL_SPLIT_TEST;
    ds = open_ok(&cfg);
    expect_contents(ds, px + 3072, lc + 1);
    clcl_dataset_free(ds);
}

Test(cifar, corrupt_files_name_the_file) {
    const char *dir = test_temp_dir("cifar-bad");
    uint8_t px[4 * 3072], lb[4] = {1, 2, 3, 4};
    test_fill_bytes(px, sizeof px, 3);
    clcl_dataset_config cfg = {.kind = CLCL_DATASET_CIFAR10, .path = dir};
    for (int k = 1; k <= 5; k++) {
        char name[64];
        snprintf(name, sizeof name, "data_batch_%d.bin", k);
        test_write_cifar(test_join(dir, name), 4, px, lb, NULL);
    }
    clcl_dataset *ds = open_ok(&cfg);
    cr_assert_eq(clcl_dataset_count(ds), 20);
    clcl_dataset_free(ds);

    /* Truncated: not a whole number of records. */
    const char *b3 = test_join(dir, "data_batch_3.bin");
    test_truncate(b3, 4 * 3073 - 100);
    open_fails(&cfg, CLCL_ERR_FORMAT, b3, "3073-byte records");

    /* A missing batch. */
    remove(b3);
    open_fails(&cfg, CLCL_ERR_IO, b3, "cannot open");

    /* Label out of range. */
    lb[2] = 10;
    test_write_cifar(b3, 4, px, lb, NULL);
    open_fails(&cfg, CLCL_ERR_FORMAT, b3, "label 10 of record 2 is out of range [0, 10)");

    /* No batches at all. */
    cfg.path = test_temp_dir("cifar-empty");
    open_fails(&cfg, CLCL_ERR_IO, "found no data_batch_1.bin", cfg.path);

    /* CIFAR-100: fine and coarse ranges are checked against their own class counts. */
    const char *dir100 = test_temp_dir("cifar100-bad");
    const char *train = test_join(dir100, "train.bin");
    uint8_t fine[4] = {1, 100, 3, 4}, coarse[4] = {0, 1, 2, 3};
    test_write_cifar(train, 4, px, fine, coarse);
    clcl_dataset_config c100 = {.kind = CLCL_DATASET_CIFAR100, .path = dir100};
    open_fails(&c100, CLCL_ERR_FORMAT, train, "label 100 of record 1 is out of range [0, 100)");
    fine[1] = 5;
    coarse[3] = 20;
    test_write_cifar(train, 4, px, fine, coarse);
    ds = open_ok(&c100);
    clcl_dataset_free(ds);
    c100.coarse_labels = 1;
    open_fails(&c100, CLCL_ERR_FORMAT, train, "label 20 of record 3 is out of range [0, 20)");
    test_truncate(train, 4 * 3074 + 1);
    open_fails(&c100, CLCL_ERR_FORMAT, train, "3074-byte records");
}

/* ---- STL-10 ------------------------------------------------------------------------- */

#define STL_BYTES (3 * 96 * 96)

Test(stl10, transposes_and_shifts_labels) {
    const char *dir = test_temp_dir("stl10");
    char inner[512];
    snprintf(inner, sizeof inner, "%s/stl10_binary", dir);
    test_mkdir(inner);
    uint8_t *px = malloc(4 * STL_BYTES);
    cr_assert(px);
    test_fill_bytes(px, 4 * STL_BYTES, 11);
    uint8_t y[4] = {1, 10, 5, 2};
    int labels[4] = {0, 9, 4, 1}, none[4] = {-1, -1, -1, -1};
    test_write_stl10_images(test_join(inner, "train_X.bin"), 4, px);
    test_write_bytes(test_join(inner, "train_y.bin"), y, 4);
    test_write_stl10_images(test_join(inner, "unlabeled_X.bin"), 3, px + STL_BYTES);

    clcl_dataset_config cfg = {.kind = CLCL_DATASET_STL10, .path = dir};
    clcl_dataset *ds = open_ok(&cfg);
    cr_assert_eq(clcl_dataset_count(ds), 4);
    cr_assert_eq(clcl_dataset_classes(ds), 10);
    cr_assert_eq(clcl_dataset_height(ds), 96);
    cr_assert_str_eq(clcl_dataset_class_name(ds, 7), "monkey");
    expect_contents(ds, px, labels);
    clcl_dataset_free(ds);

    /* Unlabeled, held in memory and streamed. */
    cfg.split = CLCL_SPLIT_UNLABELED;
    for (int stream = 0; stream <= 1; stream++) {
        cfg.memory_budget = stream ? 2 * STL_BYTES : 0;
        ds = open_ok(&cfg);
        cr_assert_eq(clcl_dataset_count(ds), 3);
        cr_assert_eq(clcl_dataset_classes(ds), 0);
        cr_assert_eq(clcl_dataset_in_memory(ds), !stream);
        expect_contents(ds, px + STL_BYTES, none);
        clcl_dataset_free(ds);
    }
    free(px);
}

Test(stl10, corrupt_files_name_the_file) {
    const char *dir = test_temp_dir("stl10-bad");
    uint8_t *px = calloc(3, STL_BYTES);
    cr_assert(px);
    uint8_t y[3] = {1, 2, 3};
    const char *x_path = test_join(dir, "test_X.bin");
    const char *y_path = test_join(dir, "test_y.bin");
    test_write_stl10_images(x_path, 3, px);
    test_write_bytes(y_path, y, 2);
    clcl_dataset_config cfg = {.kind = CLCL_DATASET_STL10, .path = dir, .split = CLCL_SPLIT_TEST};
    open_fails(&cfg, CLCL_ERR_FORMAT, y_path, "holds 2 labels, but the images file 3");

    y[2] = 11;
    test_write_bytes(y_path, y, 3);
    open_fails(&cfg, CLCL_ERR_FORMAT, y_path, "label 11 of image 2 is out of range [1, 10]");
    y[2] = 0;
    test_write_bytes(y_path, y, 3);
    open_fails(&cfg, CLCL_ERR_FORMAT, y_path, "label 0 of image 2");

    y[2] = 3;
    test_write_bytes(y_path, y, 3);
    test_truncate(x_path, 3 * STL_BYTES - 1);
    open_fails(&cfg, CLCL_ERR_FORMAT, x_path, "27648-byte records");
    remove(y_path);
    test_write_stl10_images(x_path, 3, px);
    open_fails(&cfg, CLCL_ERR_IO, y_path, NULL);
    cfg.split = CLCL_SPLIT_TRAIN;
    open_fails(&cfg, CLCL_ERR_IO, "found no train_X.bin", NULL);
    free(px);
}

/* ---- subsets ------------------------------------------------------------------------ */

/* 60 CIFAR-10 images in five batches; class c has counts[c] images, spread through the
 * files in a shuffled order. */
static const char *write_subset_set(uint8_t *px, int *labels) {
    const int counts[10] = {3, 4, 5, 6, 7, 8, 9, 6, 5, 7};
    const char *dir = test_temp_dir("subset");
    uint8_t lb[60];
    test_fill_bytes(px, 60 * 3072, 5);
    for (int c = 0, i = 0; c < 10; c++)
        for (int k = 0; k < counts[c]; k++)
            lb[i++] = (uint8_t)c;
    uint64_t state = 77;
    for (int i = 59; i > 0; i--) {
        int j = (int)(test_rand_u64(&state) % (uint64_t)(i + 1));
        uint8_t t = lb[i];
        lb[i] = lb[j];
        lb[j] = t;
    }
    for (int i = 0; i < 60; i++)
        labels[i] = lb[i];
    for (int k = 1; k <= 5; k++) {
        char name[64];
        snprintf(name, sizeof name, "data_batch_%d.bin", k);
        test_write_cifar(test_join(dir, name), 12, px + (k - 1) * 12 * 3072, lb + (k - 1) * 12,
                         NULL);
    }
    return dir;
}

/* The source index of every kept image, found by its pixels. */
static void kept_indices(clcl_dataset *ds, const uint8_t *px, int total, int *out) {
    int n = clcl_dataset_count(ds);
    uint8_t img[3072];
    for (int j = 0; j < n; j++) {
        cr_assert(clcl_dataset_read(ds, &j, 1, img, NULL) == CLCL_OK);
        out[j] = -1;
        for (int i = 0; i < total && out[j] < 0; i++)
            if (memcmp(img, px + (size_t)i * 3072, 3072) == 0)
                out[j] = i;
        cr_assert(out[j] >= 0, "kept image %d is none of the source images", j);
    }
}

Test(subset, first_random_and_balanced) {
    uint8_t *px = malloc(60 * 3072);
    int labels[60], counts[10] = {0};
    cr_assert(px);
    const char *dir = write_subset_set(px, labels);
    for (int i = 0; i < 60; i++)
        counts[labels[i]]++;
    int kept[60], kept2[60];

    /* The first N. */
    clcl_dataset_config cfg = {.kind = CLCL_DATASET_CIFAR10, .path = dir, .subset = 7};
    clcl_dataset *ds = open_ok(&cfg);
    cr_assert_eq(clcl_dataset_count(ds), 7);
    cr_assert_eq(clcl_dataset_total(ds), 60);
    kept_indices(ds, px, 60, kept);
    for (int j = 0; j < 7; j++) {
        cr_assert_eq(kept[j], j);
        cr_assert_eq(clcl_dataset_labels(ds)[j], labels[j]);
    }
    clcl_dataset_free(ds);

    /* A seeded random N: ascending, distinct, labels that follow, the same for a seed. */
    cfg.subset_random = 1;
    cfg.seed = 1234;
    cfg.subset = 20;
    ds = open_ok(&cfg);
    kept_indices(ds, px, 60, kept);
    for (int j = 0; j < 20; j++) {
        cr_assert(j == 0 || kept[j] > kept[j - 1], "kept indices ascend and are distinct");
        cr_assert_eq(clcl_dataset_labels(ds)[j], labels[kept[j]]);
    }
    clcl_dataset_free(ds);
    ds = open_ok(&cfg);
    kept_indices(ds, px, 60, kept2);
    cr_assert(memcmp(kept, kept2, 20 * sizeof *kept) == 0, "same seed, same subset");
    clcl_dataset_free(ds);
    cfg.seed = 1235;
    ds = open_ok(&cfg);
    kept_indices(ds, px, 60, kept2);
    cr_assert(memcmp(kept, kept2, 20 * sizeof *kept) != 0, "another seed, another subset");
    int first20 = 1;
    for (int j = 0; j < 20; j++)
        first20 &= kept2[j] == j;
    cr_assert(!first20, "a random subset is not the first N");
    clcl_dataset_free(ds);

    /* Balanced, first of each class: 12 over 10 classes gives classes 0 and 1 two. */
    cfg.subset_random = 0;
    cfg.subset_balanced = 1;
    cfg.subset = 12;
    ds = open_ok(&cfg);
    kept_indices(ds, px, 60, kept);
    int per[10] = {0};
    for (int j = 0; j < 12; j++) {
        int c = labels[kept[j]];
        per[c]++;
        int rank = 0; /* how many of class c come before it in the file */
        for (int i = 0; i < kept[j]; i++)
            rank += labels[i] == c;
        cr_assert(rank < per[c], "balanced first-N keeps the first images of each class");
    }
    for (int c = 0; c < 10; c++)
        cr_assert_eq(per[c], c < 2 ? 2 : 1, "class %d", c);
    clcl_dataset_free(ds);

    /* Balanced random: 30 = 3 of every class, reproducible. */
    cfg.subset_random = 1;
    cfg.subset = 30;
    ds = open_ok(&cfg);
    kept_indices(ds, px, 60, kept);
    memset(per, 0, sizeof per);
    for (int j = 0; j < 30; j++)
        per[labels[kept[j]]]++;
    for (int c = 0; c < 10; c++)
        cr_assert_eq(per[c], 3, "class %d", c);
    clcl_dataset_free(ds);
    ds = open_ok(&cfg);
    kept_indices(ds, px, 60, kept2);
    cr_assert(memcmp(kept, kept2, 30 * sizeof *kept) == 0);
    clcl_dataset_free(ds);

    /* Too many for the smallest class, too many for the dataset. */
    cfg.subset = 40;
    open_fails(&cfg, CLCL_ERR_ARGUMENT, "needs 4 images of class 0 (airplane), which has only 3",
               NULL);
    cfg.subset = 61;
    open_fails(&cfg, CLCL_ERR_ARGUMENT, "subset of 61", "has only 60");
    free(px);
}

Test(subset, balanced_needs_labels) {
    const char *dir = test_temp_dir("subset-stl");
    uint8_t *px = calloc(2, STL_BYTES);
    cr_assert(px);
    test_write_stl10_images(test_join(dir, "unlabeled_X.bin"), 2, px);
    free(px);
    clcl_dataset_config cfg = {.kind = CLCL_DATASET_STL10,
                               .path = dir,
                               .split = CLCL_SPLIT_UNLABELED,
                               .subset = 2,
                               .subset_balanced = 1};
    open_fails(&cfg, CLCL_ERR_ARGUMENT, "balanced subset needs labels", NULL);
}

/* ---- the interface ------------------------------------------------------------------ */

Test(dataset, names_and_bad_arguments) {
    const char *kinds[] = {"mnist", "fashion-mnist", "cifar10", "cifar100", "stl10", "folder"};
    for (int k = 0; k < 6; k++) {
        clcl_dataset_kind kind;
        cr_assert(clcl_dataset_kind_parse(kinds[k], &kind) == CLCL_OK);
        cr_assert_str_eq(clcl_dataset_kind_name(kind), kinds[k]);
    }
    clcl_dataset_kind kind;
    cr_assert(clcl_dataset_kind_parse("imagenet", &kind) == CLCL_ERR_ARGUMENT);
    cr_assert(strstr(clcl_last_error(), "'imagenet'"));
    clcl_dataset_split split;
    cr_assert(clcl_dataset_split_parse("unlabeled", &split) == CLCL_OK);
    cr_assert_eq(split, CLCL_SPLIT_UNLABELED);
    cr_assert_str_eq(clcl_dataset_split_name(CLCL_SPLIT_TEST), "test");
    cr_assert(clcl_dataset_split_parse("valid", &split) == CLCL_ERR_ARGUMENT);
    cr_assert_str_eq(clcl_dataset_default_path(CLCL_DATASET_FASHION_MNIST), FASHION_DIR);
    cr_assert_null(clcl_dataset_default_path(CLCL_DATASET_CIFAR10));

    clcl_dataset_config cfg = {.kind = CLCL_DATASET_FOLDER, .path = "x", .channels = 2};
    open_fails(&cfg, CLCL_ERR_ARGUMENT, "channels 2", NULL);
    cfg.channels = 0;
    cfg.subset = -1;
    open_fails(&cfg, CLCL_ERR_ARGUMENT, "subset (-1)", NULL);

    /* Reading outside the dataset. */
    const char *dir = test_temp_dir("read-bad");
    idx_data d;
    write_idx_set(dir, 0, &d);
    clcl_dataset_config ok = {.kind = CLCL_DATASET_MNIST, .path = dir};
    clcl_dataset *ds = open_ok(&ok);
    int index[2] = {0, 7};
    uint8_t img[40];
    cr_assert(clcl_dataset_read(ds, index, 2, img, NULL) == CLCL_ERR_ARGUMENT);
    cr_assert(strstr(clcl_last_error(), "index[1] = 7 is outside the dataset's [0, 7)"), "%s",
              clcl_last_error());
    clcl_dataset_free(ds);
}

/* ---- the real Fashion-MNIST --------------------------------------------------------- */

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

Test(real, fashion_mnist) {
    FILE *probe = fopen(FASHION_DIR "/train-images-idx3-ubyte.gz", "rb");
    if (!probe)
        cr_skip_test("Fashion-MNIST is not installed in " FASHION_DIR
                     " (apt-get install dataset-fashion-mnist)");
    fclose(probe);

    /* Figures from the files themselves, read with Python's gzip module. */
    const int first_train[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    const int first_test[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    const long pixel_sum[2] = {76247, 33456};
    for (int test = 0; test <= 1; test++) {
        clcl_dataset_config cfg = {.kind = CLCL_DATASET_FASHION_MNIST,
                                   .split = test ? CLCL_SPLIT_TEST : CLCL_SPLIT_TRAIN};
        double t0 = seconds();
        clcl_dataset *ds = open_ok(&cfg);
        cr_log_info("Fashion-MNIST %s: loaded in %.3f s", test ? "test" : "train", seconds() - t0);
        int n = test ? 10000 : 60000;
        cr_assert_eq(clcl_dataset_count(ds), n);
        cr_assert_eq(clcl_dataset_classes(ds), 10);
        cr_assert_eq(clcl_dataset_channels(ds), 1);
        cr_assert_eq(clcl_dataset_height(ds), 28);
        cr_assert_eq(clcl_dataset_width(ds), 28);
        cr_assert_str_eq(clcl_dataset_class_name(ds, 9), "Ankle boot");
        const int *labels = clcl_dataset_labels(ds);
        int per[10] = {0};
        for (int i = 0; i < n; i++)
            per[labels[i]]++;
        for (int c = 0; c < 10; c++)
            cr_assert_eq(per[c], n / 10, "class %d", c);
        for (int i = 0; i < 10; i++)
            cr_assert_eq(labels[i], test ? first_test[i] : first_train[i]);
        uint8_t img[784];
        int zero = 0;
        cr_assert(clcl_dataset_read(ds, &zero, 1, img, NULL) == CLCL_OK);
        long sum = 0;
        for (int k = 0; k < 784; k++)
            sum += img[k];
        cr_assert_eq(sum, pixel_sum[test]);
        clcl_dataset_free(ds);
    }
}
