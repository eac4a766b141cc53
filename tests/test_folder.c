/* The image-folder reader: PNG exact, JPEG against stb_image's own decode, grey and RGB
 * mixed, short-side resize and centre crop, streaming, every corrupt case's error, and the
 * real CIFAR-10 JPEG folders when CLCL_CIFAR10_JPEG names them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>

#include <criterion/criterion.h>
#include <stb_image.h>

#include "clcl/dataset.h"
#include "support.h"
#include "support_datafiles.h"

static clcl_dataset *open_ok(const clcl_dataset_config *cfg) {
    clcl_dataset *ds = NULL;
    clcl_status st = clcl_dataset_open(cfg, &ds);
    cr_assert(st == CLCL_OK, "clcl_dataset_open: %s: %s", clcl_status_name(st), clcl_last_error());
    return ds;
}

static void open_fails(const clcl_dataset_config *cfg, clcl_status status, const char *a,
                       const char *b) {
    clcl_dataset *ds = NULL;
    clcl_status st = clcl_dataset_open(cfg, &ds);
    const char *msg = clcl_last_error();
    cr_assert(st == status, "expected %s, got %s (%s)", clcl_status_name(status),
              clcl_status_name(st), msg);
    cr_assert(ds == NULL);
    cr_assert(strstr(msg, a) != NULL, "message '%s' lacks '%s'", msg, a);
    cr_assert(!b || strstr(msg, b) != NULL, "message '%s' lacks '%s'", msg, b);
}

/* An interleaved (h, w, comp) image from a seed. */
static uint8_t *make_image(int w, int h, int comp, uint64_t seed) {
    uint8_t *px = malloc((size_t)w * h * comp);
    cr_assert(px);
    test_fill_bytes(px, (size_t)w * h * comp, seed);
    return px;
}

/* Interleaved (h, w, comp) to planar (comp, h, w). */
static void planar(const uint8_t *in, int w, int h, int comp, uint8_t *out) {
    for (int c = 0; c < comp; c++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                out[(c * h + y) * w + x] = in[(y * w + x) * comp + c];
}

static void read_one(clcl_dataset *ds, int i, uint8_t *out, int *label) {
    clcl_status st = clcl_dataset_read(ds, &i, 1, out, label);
    cr_assert(st == CLCL_OK, "read %d: %s", i, clcl_last_error());
}

/* root/train/{dog,ant,cat}: PNG 8x6 RGB, one grey PNG in cat, and noise to pass over. */
typedef struct {
    const char *root;
    uint8_t *rgb[5];
    uint8_t *grey;
} png_tree;

static void write_png_tree(png_tree *t) {
    t->root = test_temp_dir("folder");
    char train[512], cls[1100];
    snprintf(train, sizeof train, "%s/train", t->root);
    test_mkdir(train);
    const char *classes[3] = {"dog", "ant", "cat"};
    for (int c = 0; c < 3; c++) {
        snprintf(cls, sizeof cls, "%s/%s", train, classes[c]);
        test_mkdir(cls);
    }
    for (int k = 0; k < 5; k++)
        t->rgb[k] = make_image(8, 6, 3, 100 + k);
    t->grey = make_image(8, 6, 1, 200);
    snprintf(cls, sizeof cls, "%s/ant", train);
    test_write_image(test_join(cls, "b.png"), 8, 6, 3, t->rgb[1]);
    test_write_image(test_join(cls, "a.PNG"), 8, 6, 3, t->rgb[0]);
    test_write_bytes(test_join(cls, ".DS_Store"), "x", 1);
    snprintf(cls, sizeof cls, "%s/cat", train);
    test_write_image(test_join(cls, "1.png"), 8, 6, 3, t->rgb[2]);
    test_write_image(test_join(cls, "2.png"), 8, 6, 1, t->grey);
    snprintf(cls, sizeof cls, "%s/dog", train);
    test_write_image(test_join(cls, "z.png"), 8, 6, 3, t->rgb[3]);
    test_write_image(test_join(cls, "y.png"), 8, 6, 3, t->rgb[4]);
    test_write_bytes(test_join(train, "README"), "classes are folders", 19);
}

static void free_png_tree(png_tree *t) {
    for (int k = 0; k < 5; k++)
        free(t->rgb[k]);
    free(t->grey);
}

Test(folder, png_classes_order_and_pixels) {
    png_tree t;
    write_png_tree(&t);

    /* Sorted classes, sorted files; the grey image gets its channel copied three times. */
    const uint8_t *expect[6] = {t.rgb[0], t.rgb[1], t.rgb[2], NULL, t.rgb[4], t.rgb[3]};
    const int labels[6] = {0, 0, 1, 1, 2, 2};
    for (int stream = 0; stream <= 1; stream++) {
        clcl_dataset_config cfg = {.kind = CLCL_DATASET_FOLDER,
                                   .path = t.root,
                                   .threads = 3,
                                   .memory_budget = stream ? 1 : 0};
        clcl_dataset *ds = open_ok(&cfg);
        cr_assert_eq(clcl_dataset_in_memory(ds), !stream);
        cr_assert_eq(clcl_dataset_count(ds), 6);
        cr_assert_eq(clcl_dataset_classes(ds), 3);
        cr_assert_str_eq(clcl_dataset_class_name(ds, 0), "ant");
        cr_assert_str_eq(clcl_dataset_class_name(ds, 1), "cat");
        cr_assert_str_eq(clcl_dataset_class_name(ds, 2), "dog");
        cr_assert_eq(clcl_dataset_channels(ds), 3, "one grey image among RGB: RGB");
        cr_assert_eq(clcl_dataset_height(ds), 6);
        cr_assert_eq(clcl_dataset_width(ds), 8);
        uint8_t got[3 * 48], want[3 * 48];
        for (int i = 0; i < 6; i++) {
            int label;
            read_one(ds, i, got, &label);
            cr_assert_eq(label, labels[i], "image %d", i);
            if (expect[i]) {
                planar(expect[i], 8, 6, 3, want);
            } else {
                for (int c = 0; c < 3; c++)
                    memcpy(want + c * 48, t.grey, 48);
            }
            cr_assert(memcmp(got, want, sizeof got) == 0, "image %d (stream %d)", i, stream);
        }

        /* A batch in one call equals the single reads. */
        int index[4] = {5, 0, 3, 3};
        uint8_t batch[4 * 144];
        int lb[4];
        cr_assert(clcl_dataset_read(ds, index, 4, batch, lb) == CLCL_OK, "%s", clcl_last_error());
        for (int j = 0; j < 4; j++) {
            read_one(ds, index[j], got, NULL);
            cr_assert(memcmp(batch + j * 144, got, 144) == 0);
            cr_assert_eq(lb[j], labels[index[j]]);
        }
        clcl_dataset_free(ds);
    }

    /* Asked for grey: stb_image's luma of the RGB files, the grey one as it is. */
    clcl_dataset_config grey = {.kind = CLCL_DATASET_FOLDER, .path = t.root, .channels = 1};
    clcl_dataset *ds = open_ok(&grey);
    cr_assert_eq(clcl_dataset_channels(ds), 1);
    uint8_t got[48];
    read_one(ds, 3, got, NULL);
    cr_assert(memcmp(got, t.grey, 48) == 0);
    read_one(ds, 0, got, NULL);
    for (int k = 0; k < 48; k++) {
        const uint8_t *p = t.rgb[0] + 3 * k;
        int luma = (p[0] * 77 + p[1] * 150 + p[2] * 29) >> 8;
        cr_assert(abs(got[k] - luma) <= 1, "pixel %d: %d, luma %d", k, got[k], luma);
    }
    clcl_dataset_free(ds);

    /* No test/ or val/ beside train/. */
    grey.split = CLCL_SPLIT_TEST;
    open_fails(&grey, CLCL_ERR_IO, "has split folders but no test/ or val/", NULL);
    free_png_tree(&t);
}

Test(folder, all_grey_is_one_channel_and_val_is_test) {
    const char *root = test_temp_dir("folder-grey");
    char val[512], cls[1100];
    snprintf(val, sizeof val, "%s/val", root);
    test_mkdir(val);
    uint8_t *img[4];
    for (int c = 0; c < 2; c++) {
        snprintf(cls, sizeof cls, "%s/%d", val, c);
        test_mkdir(cls);
        for (int k = 0; k < 2; k++) {
            char name[32];
            snprintf(name, sizeof name, "%d.png", k);
            img[2 * c + k] = make_image(5, 7, 1, 10 + 2 * c + k);
            test_write_image(test_join(cls, name), 5, 7, 1, img[2 * c + k]);
        }
    }
    clcl_dataset_config cfg = {.kind = CLCL_DATASET_FOLDER, .path = root, .split = CLCL_SPLIT_TEST};
    clcl_dataset *ds = open_ok(&cfg);
    cr_assert_eq(clcl_dataset_channels(ds), 1);
    cr_assert_eq(clcl_dataset_height(ds), 7);
    cr_assert_eq(clcl_dataset_width(ds), 5);
    for (int i = 0; i < 4; i++) {
        uint8_t got[35];
        int label;
        read_one(ds, i, got, &label);
        cr_assert_eq(label, i / 2);
        cr_assert(memcmp(got, img[i], 35) == 0);
        free(img[i]);
    }
    clcl_dataset_free(ds);
}

Test(folder, jpeg_matches_stb_decode) {
    const char *root = test_temp_dir("folder-jpeg");
    char cls[512];
    snprintf(cls, sizeof cls, "%s/only", root);
    test_mkdir(cls);

    /* A smooth image, so quality-100 JPEG stays close to the original. */
    int w = 24, h = 16;
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            px[(y * w + x) * 3 + 0] = (uint8_t)(x * 10);
            px[(y * w + x) * 3 + 1] = (uint8_t)(y * 15);
            px[(y * w + x) * 3 + 2] = (uint8_t)(128 + x - y);
        }
    const char *file = test_join(cls, "img.jpeg");
    test_write_image(file, w, h, 3, px);
    clcl_dataset_config cfg = {.kind = CLCL_DATASET_FOLDER, .path = root};
    clcl_dataset *ds = open_ok(&cfg);
    cr_assert_eq(clcl_dataset_channels(ds), 3);
    uint8_t got[24 * 16 * 3], want[24 * 16 * 3], orig[24 * 16 * 3];
    read_one(ds, 0, got, NULL);
    clcl_dataset_free(ds);

    /* Exactly stb_image's decode, laid out planar; near the original pixels. */
    int dw, dh, comp;
    uint8_t *ref = stbi_load(file, &dw, &dh, &comp, 3);
    cr_assert(ref && dw == w && dh == h);
    planar(ref, w, h, 3, want);
    planar(px, w, h, 3, orig);
    stbi_image_free(ref);
    cr_assert(memcmp(got, want, sizeof got) == 0);
    int worst = 0;
    for (size_t k = 0; k < sizeof got; k++)
        worst = abs(got[k] - orig[k]) > worst ? abs(got[k] - orig[k]) : worst;
    cr_assert(worst <= 8, "quality-100 JPEG of a smooth image off by %d", worst);
    free(px);
}

/* A class folder with one image of w x h whose channel 0 is a horizontal ramp, channel 1
 * a vertical ramp and channel 2 the constant 77; the dataset at image_size `side`. */
static clcl_dataset *open_ramp(int w, int h, int side, uint8_t *out) {
    const char *root = test_temp_dir("folder-resize");
    char cls[512];
    snprintf(cls, sizeof cls, "%s/c", root);
    test_mkdir(cls);
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            px[(y * w + x) * 3 + 0] = (uint8_t)(x * 255 / (w - 1));
            px[(y * w + x) * 3 + 1] = (uint8_t)(y * 255 / (h - 1));
            px[(y * w + x) * 3 + 2] = 77;
        }
    test_write_image(test_join(cls, "ramp.png"), w, h, 3, px);
    free(px);
    clcl_dataset_config cfg = {.kind = CLCL_DATASET_FOLDER, .path = root, .image_size = side};
    clcl_dataset *ds = open_ok(&cfg);
    cr_assert_eq(clcl_dataset_height(ds), side);
    cr_assert_eq(clcl_dataset_width(ds), side);
    read_one(ds, 0, out, NULL);
    return ds;
}

Test(folder, short_side_resize_and_centre_crop) {
    /* 64x32 to 32: no scaling, the centre 32 columns (16..47) exactly. */
    uint8_t got[3 * 40 * 40];
    clcl_dataset_free(open_ramp(64, 32, 32, got));
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++) {
            cr_assert_eq(got[y * 32 + x], (x + 16) * 255 / 63);
            cr_assert_eq(got[1024 + y * 32 + x], y * 255 / 31);
        }

    /* 40x80 to 20: halved to 20x40, rows 10..29 kept. A ramp stays a ramp (inside the
     * filter's reach of the border), a constant stays constant. */
    clcl_dataset_free(open_ramp(40, 80, 20, got));
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 20; x++) {
            double sx = 2.0 * x + 0.5, sy = 2.0 * (y + 10) + 0.5; /* source centre */
            if (x >= 2 && x < 18)
                cr_assert(fabs(got[y * 20 + x] - sx * 255.0 / 39.0) <= 3.0, "x ramp at %d,%d", x,
                          y);
            cr_assert(fabs(got[400 + y * 20 + x] - sy * 255.0 / 79.0) <= 3.0, "y ramp at %d,%d", x,
                      y);
            cr_assert(abs(got[800 + y * 20 + x] - 77) <= 1, "constant at %d,%d", x, y);
        }

    /* 16x16 to 40: scaled up, still a ramp from about 0 to about 255. */
    clcl_dataset_free(open_ramp(16, 16, 40, got));
    for (int x = 1; x < 40; x++)
        cr_assert(got[20 * 40 + x] + 1 >= got[20 * 40 + x - 1], "increasing along x");
    cr_assert(got[20 * 40] <= 10 && got[20 * 40 + 39] >= 245);
    cr_assert(abs(got[3200 + 17 * 40 + 5] - 77) <= 1);
}

Test(folder, corrupt_inputs_name_the_file) {
    const char *root = test_temp_dir("folder-bad");
    clcl_dataset_config cfg = {.kind = CLCL_DATASET_FOLDER, .path = root};

    /* No classes; a class without images; a missing root. */
    open_fails(&cfg, CLCL_ERR_FORMAT, root, "holds no class folders");
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/a", root);
    snprintf(b, sizeof b, "%s/b", root);
    test_mkdir(a);
    test_mkdir(b);
    open_fails(&cfg, CLCL_ERR_FORMAT, a, "holds no images");
    clcl_dataset_config missing = {.kind = CLCL_DATASET_FOLDER, .path = test_join(root, "none")};
    open_fails(&missing, CLCL_ERR_IO, "none is not a folder", NULL);

    /* Mixed sizes where one is required; fine once resized. */
    uint8_t *px = make_image(9, 9, 3, 1);
    test_write_image(test_join(a, "0.png"), 8, 8, 3, px);
    test_write_image(test_join(b, "0.png"), 9, 8, 3, px);
    open_fails(&cfg, CLCL_ERR_FORMAT, "mixed image sizes", test_join(b, "0.png"));
    cfg.image_size = 8;
    clcl_dataset_free(open_ok(&cfg));
    cfg.image_size = 0;
    test_write_image(test_join(b, "0.png"), 8, 8, 3, px);
    clcl_dataset_free(open_ok(&cfg));

    /* Not an image; a folder inside a class. */
    const char *txt = test_join(a, "notes.txt");
    test_write_bytes(txt, "hello", 5);
    open_fails(&cfg, CLCL_ERR_FORMAT, txt, "not an image");
    remove(txt);
    const char *sub = test_join(b, "deeper");
    test_mkdir(sub);
    open_fails(&cfg, CLCL_ERR_FORMAT, sub, "is a folder");
    rmdir(sub);

    /* A file that is not an image at all: its header already fails. */
    const char *junk = test_join(b, "1.jpg");
    test_write_bytes(junk, "this is not a jpeg", 18);
    open_fails(&cfg, CLCL_ERR_FORMAT, junk, "stb_image");

    /* A PNG cut short: the header reads, decoding fails, at open when held in memory... */
    test_write_image(junk, 8, 8, 3, px);
    FILE *f = fopen(junk, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    test_truncate(junk, size / 2);
    open_fails(&cfg, CLCL_ERR_FORMAT, "cannot decode", junk);

    /* ...and at the read that needs it when streamed. */
    cfg.memory_budget = 1;
    clcl_dataset *ds = open_ok(&cfg);
    uint8_t img[3 * 3 * 64];
    int index[3] = {0, 1, 2};
    clcl_status st = clcl_dataset_read(ds, index, 3, img, NULL);
    cr_assert_eq(st, CLCL_ERR_FORMAT);
    cr_assert(strstr(clcl_last_error(), junk), "%s", clcl_last_error());
    cr_assert(clcl_dataset_read(ds, index, 2, img, NULL) == CLCL_OK, "%s", clcl_last_error());
    clcl_dataset_free(ds);
    free(px);
}

/* ---- the real CIFAR-10 JPEG folders ------------------------------------------------- */

static const char *cifar_jpeg_root(void) {
    const char *root = getenv("CLCL_CIFAR10_JPEG");
    struct stat st;
    if (!root || !*root)
        return NULL;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode))
        return NULL;
    return root;
}

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

Test(real, cifar10_jpeg_folders) {
    const char *root = cifar_jpeg_root();
    if (!root)
        cr_skip_test("CLCL_CIFAR10_JPEG does not name the unpacked cifar10-jpeg folder "
                     "(holding train/ and test/)");
    const char *order[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                             "dog",      "frog",       "horse", "ship", "truck"};

    /* A balanced random 1,000 of the 50,000 training images. */
    clcl_dataset_config cfg = {.kind = CLCL_DATASET_FOLDER,
                               .path = root,
                               .subset = 1000,
                               .subset_random = 1,
                               .subset_balanced = 1,
                               .seed = 5};
    double t0 = seconds();
    clcl_dataset *ds = open_ok(&cfg);
    cr_log_info("CIFAR-10 JPEG: 1000 of 50000 train images in %.2f s", seconds() - t0);
    cr_assert_eq(clcl_dataset_total(ds), 50000);
    cr_assert_eq(clcl_dataset_count(ds), 1000);
    cr_assert_eq(clcl_dataset_classes(ds), 10);
    cr_assert_eq(clcl_dataset_channels(ds), 3);
    cr_assert_eq(clcl_dataset_height(ds), 32);
    cr_assert_eq(clcl_dataset_width(ds), 32);
    for (int c = 0; c < 10; c++)
        cr_assert_str_eq(clcl_dataset_class_name(ds, c), order[c]);
    int per[10] = {0};
    for (int i = 0; i < 1000; i++)
        per[clcl_dataset_labels(ds)[i]]++;
    for (int c = 0; c < 10; c++)
        cr_assert_eq(per[c], 100);
    clcl_dataset_free(ds);

    /* The first three test images are test/airplane/0000.jpg...: stb_image's pixels. */
    cfg = (clcl_dataset_config){
        .kind = CLCL_DATASET_FOLDER, .path = root, .split = CLCL_SPLIT_TEST, .subset = 3};
    ds = open_ok(&cfg);
    cr_assert_eq(clcl_dataset_total(ds), 10000);
    for (int i = 0; i < 3; i++) {
        char name[64];
        snprintf(name, sizeof name, "test/airplane/%04d.jpg", i);
        int w, h, comp, label;
        uint8_t *ref = stbi_load(test_join(root, name), &w, &h, &comp, 3);
        cr_assert(ref && w == 32 && h == 32, "cannot load %s", name);
        uint8_t got[3072], want[3072];
        planar(ref, 32, 32, 3, want);
        stbi_image_free(ref);
        read_one(ds, i, got, &label);
        cr_assert_eq(label, 0);
        cr_assert(memcmp(got, want, 3072) == 0, "%s", name);
    }
    clcl_dataset_free(ds);
}
