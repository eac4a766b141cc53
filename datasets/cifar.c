/* CIFAR-10 and CIFAR-100, binary releases.
 *
 * CIFAR-10: data_batch_1.bin ... data_batch_5.bin (train) and test_batch.bin, records of
 * 1 label byte and 3x32x32 pixel bytes (R plane, G plane, B plane, each row-major).
 * CIFAR-100: train.bin and test.bin, records of a coarse label byte (20 classes), a fine
 * label byte (100 classes) and the same pixels. The folder may be the one holding the files
 * or the one the release unpacks into (cifar-10-batches-bin, cifar-100-binary). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "source.h"

#define CIFAR_PIXELS 3072

static const char *const cifar10_names[] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                            "dog",      "frog",       "horse", "ship", "truck"};

static const char *const cifar100_coarse[] = {"aquatic_mammals",
                                              "fish",
                                              "flowers",
                                              "food_containers",
                                              "fruit_and_vegetables",
                                              "household_electrical_devices",
                                              "household_furniture",
                                              "insects",
                                              "large_carnivores",
                                              "large_man-made_outdoor_things",
                                              "large_natural_outdoor_scenes",
                                              "large_omnivores_and_herbivores",
                                              "medium_mammals",
                                              "non-insect_invertebrates",
                                              "people",
                                              "reptiles",
                                              "small_mammals",
                                              "trees",
                                              "vehicles_1",
                                              "vehicles_2"};

static const char *const cifar100_fine[] = {
    "apple",       "aquarium_fish", "baby",      "bear",       "beaver",       "bed",
    "bee",         "beetle",        "bicycle",   "bottle",     "bowl",         "boy",
    "bridge",      "bus",           "butterfly", "camel",      "can",          "castle",
    "caterpillar", "cattle",        "chair",     "chimpanzee", "clock",        "cloud",
    "cockroach",   "couch",         "crab",      "crocodile",  "cup",          "dinosaur",
    "dolphin",     "elephant",      "flatfish",  "forest",     "fox",          "girl",
    "hamster",     "house",         "kangaroo",  "keyboard",   "lamp",         "lawn_mower",
    "leopard",     "lion",          "lizard",    "lobster",    "man",          "maple_tree",
    "motorcycle",  "mountain",      "mouse",     "mushroom",   "oak_tree",     "orange",
    "orchid",      "otter",         "palm_tree", "pear",       "pickup_truck", "pine_tree",
    "plain",       "plate",         "poppy",     "porcupine",  "possum",       "rabbit",
    "raccoon",     "ray",           "road",      "rocket",     "rose",         "sea",
    "seal",        "shark",         "shrew",     "skunk",      "skyscraper",   "snail",
    "snake",       "spider",        "squirrel",  "streetcar",  "sunflower",    "sweet_pepper",
    "table",       "tank",          "telephone", "television", "tiger",        "tractor",
    "train",       "trout",         "tulip",     "turtle",     "wardrobe",     "whale",
    "willow_tree", "wolf",          "woman",     "worm"};

_Static_assert(sizeof cifar10_names / sizeof *cifar10_names == 10, "CIFAR-10 has 10 classes");
_Static_assert(sizeof cifar100_coarse / sizeof *cifar100_coarse == 20, "20 coarse classes");
_Static_assert(sizeof cifar100_fine / sizeof *cifar100_fine == 100, "100 fine classes");

/* Reads the label byte at `label_offset` of every record of file k, in chunks. */
static clcl_status cifar_labels(const clcl_records *r, int k, int label_offset, int classes,
                                int *labels) {
    const clcl_record_file *f = &r->files[k];
    enum { CHUNK = 256 };
    uint8_t *buf = malloc((size_t)CHUNK * (size_t)f->record);
    if (!buf)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory", r->what);
    clcl_status st = CLCL_OK;
    for (int start = 0; st == CLCL_OK && start < f->count; start += CHUNK) {
        int n = f->count - start < CHUNK ? f->count - start : CHUNK;
        st = clcl_pread_all(f->fd, buf, (size_t)n * (size_t)f->record,
                            f->header + (int64_t)start * f->record, r->what, f->path);
        for (int j = 0; st == CLCL_OK && j < n; j++) {
            int label = buf[(size_t)j * (size_t)f->record + (size_t)label_offset];
            if (label >= classes)
                st = clcl_fail(CLCL_ERR_FORMAT,
                               "%s: %s: label %d of record %d is out of range [0, %d)", r->what,
                               f->path, label, start + j, classes);
            labels[f->first + start + j] = label;
        }
    }
    free(buf);
    return st;
}

clcl_status clcl_reader_cifar_open(const clcl_dataset_config *cfg, const char *dir,
                                   clcl_source *src) {
    int is100 = cfg->kind == CLCL_DATASET_CIFAR100;
    const char *what = is100 ? "cifar100" : "cifar10";
    if (cfg->split == CLCL_SPLIT_UNLABELED)
        return clcl_fail(CLCL_ERR_ARGUMENT, "%s: has no unlabeled split (train or test)", what);

    /* The files of the split. */
    const char *files10_train[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                   "data_batch_4.bin", "data_batch_5.bin"};
    const char *files10_test[] = {"test_batch.bin"};
    const char *files100_train[] = {"train.bin"};
    const char *files100_test[] = {"test.bin"};
    int train = cfg->split == CLCL_SPLIT_TRAIN;
    const char **files =
        is100 ? (train ? files100_train : files100_test) : (train ? files10_train : files10_test);
    int nfiles = !is100 && train ? 5 : 1;
    char *root =
        clcl_path_resolve(dir, is100 ? "cifar-100-binary" : "cifar-10-batches-bin", files[0]);
    if (!root)
        return clcl_fail(CLCL_ERR_IO, "%s: found no %s in %s (nor in its %s folder)", what,
                         files[0], dir, is100 ? "cifar-100-binary" : "cifar-10-batches-bin");

    /* Open and size-check every file, then read and check the labels. */
    clcl_status st = CLCL_OK;
    clcl_records *r = clcl_records_create(what, 0, 3, 32, 32);
    src->state = r;
    src->free_state = clcl_records_free;
    if (!r) {
        free(root);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory", what);
    }
    int record = (is100 ? 2 : 1) + CIFAR_PIXELS;
    for (int k = 0; st == CLCL_OK && k < nfiles; k++) {
        char *path = clcl_path_join(root, files[k]);
        st = path ? clcl_records_add(r, path, 0, record, record - CIFAR_PIXELS)
                  : clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory", what);
        free(path);
    }
    free(root);
    CLCL_TRY(st);
    src->count = clcl_records_count(r);
    src->channels = 3;
    src->height = 32;
    src->width = 32;
    src->read = clcl_records_read;
    src->read_threads = 1;
    src->labels = malloc((size_t)src->count * sizeof *src->labels);
    if (!src->labels)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "%s: out of memory for labels", what);
    int coarse = is100 && cfg->coarse_labels;
    int classes = is100 ? (coarse ? 20 : 100) : 10;
    for (int k = 0; k < nfiles; k++)
        CLCL_TRY(cifar_labels(r, k, is100 && !coarse ? 1 : 0, classes, src->labels));
    return clcl_source_set_names(
        src, is100 ? (coarse ? cifar100_coarse : cifar100_fine) : cifar10_names, classes);
}
