/* Image folders: root/<class>/<image>.{jpg,jpeg,png}, the layout of ImageNet.
 *
 * Classes are the sub-folders of the root in byte order of their names (class 0 first),
 * images within a class in byte order of their file names. A root that holds train/ and
 * test/ (or val/) folders is a split root: the split picks one. Decoding is stb_image's,
 * resizing stb_image_resize's: the short side is scaled to image_size and the centre
 * square kept. Hidden entries (names starting with '.') are passed over; any other entry
 * in a class folder that is not a .jpg, .jpeg or .png file is an error. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stb_image.h>
#include <stb_image_resize.h>

#include "check.h"
#include "clcl/log.h"
#include "source.h"

typedef struct {
    char **files; /* (count) full paths, malloc'd */
    int count;
    int image_size; /* 0: the files' own size */
    int channels;   /* 1 or 3, once select() ran */
    int height, width;
} folder_state;

typedef struct {
    char **items;
    int n, cap;
} name_list;

static int name_push(name_list *l, const char *name) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **items = realloc(l->items, (size_t)cap * sizeof *items);
        if (!items)
            return 0;
        l->items = items;
        l->cap = cap;
    }
    return (l->items[l->n] = strdup(name)) ? (l->n++, 1) : 0;
}

static void name_list_free(name_list *l) {
    for (int i = 0; i < l->n; i++)
        free(l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
                   strcasecmp(dot, ".png") == 0);
}

static void folder_state_free(void *state) {
    folder_state *fs = state;
    if (!fs)
        return;
    for (int i = 0; i < fs->count; i++)
        free(fs->files[i]);
    free(fs->files);
    free(fs);
}

/* The folder whose sub-folders are the classes: dir, or dir/<split> for a split root. */
static clcl_status folder_class_root(const char *dir, clcl_dataset_split split, char **out) {
    const char *train[] = {"train"}, *test[] = {"test", "val"};
    int split_root = 0;
    const char *const all[] = {"train", "test", "val"};
    for (int k = 0; k < 3; k++) {
        char *p = clcl_path_join(dir, all[k]);
        split_root |= p && clcl_path_is_dir(p);
        free(p);
    }
    if (split == CLCL_SPLIT_UNLABELED)
        return clcl_fail(CLCL_ERR_ARGUMENT, "folder: has no unlabeled split (train or test)");
    if (!split_root) {
        if (!clcl_path_is_dir(dir))
            return clcl_fail(CLCL_ERR_IO, "folder: %s is not a folder", dir);
        *out = strdup(dir);
        return *out ? CLCL_OK : clcl_fail(CLCL_ERR_NO_MEMORY, "folder: out of memory");
    }
    const char **names = split == CLCL_SPLIT_TRAIN ? train : test;
    int nnames = split == CLCL_SPLIT_TRAIN ? 1 : 2;
    for (int k = 0; k < nnames; k++) {
        char *p = clcl_path_join(dir, names[k]);
        if (p && clcl_path_is_dir(p)) {
            *out = p;
            return CLCL_OK;
        }
        free(p);
    }
    return clcl_fail(CLCL_ERR_IO, "folder: %s has split folders but no %s", dir,
                     split == CLCL_SPLIT_TRAIN ? "train/" : "test/ or val/");
}

/* The sorted sub-folder names of root; files beside them are counted and passed over. */
static clcl_status folder_list_classes(const char *root, name_list *classes) {
    DIR *d = opendir(root);
    if (!d)
        return clcl_fail(CLCL_ERR_IO, "folder: cannot open %s: %s", root, strerror(errno));
    clcl_status st = CLCL_OK;
    int others = 0;
    for (struct dirent *e; st == CLCL_OK && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char *p = clcl_path_join(root, e->d_name);
        if (p && clcl_path_is_dir(p)) {
            if (!name_push(classes, e->d_name))
                st = clcl_fail(CLCL_ERR_NO_MEMORY, "folder: out of memory");
        } else {
            others++;
        }
        free(p);
    }
    closedir(d);
    CLCL_TRY(st);
    if (classes->n == 0)
        return clcl_fail(CLCL_ERR_FORMAT,
                         "folder: %s holds no class folders (expected %s/<class>/<image>.jpg "
                         "or .png)",
                         root, root);
    if (others > 0)
        CLCL_LOG_WARN("folder", "%s: passed over %d file%s beside the class folders", root, others,
                      others > 1 ? "s" : "");
    qsort(classes->items, (size_t)classes->n, sizeof *classes->items, compare_names);
    return CLCL_OK;
}

/* The sorted image names of one class folder; anything else in it is an error. */
static clcl_status folder_list_images(const char *dir, name_list *images) {
    DIR *d = opendir(dir);
    if (!d)
        return clcl_fail(CLCL_ERR_IO, "folder: cannot open %s: %s", dir, strerror(errno));
    clcl_status st = CLCL_OK;
    for (struct dirent *e; st == CLCL_OK && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        if (is_image_name(e->d_name)) {
            if (!name_push(images, e->d_name))
                st = clcl_fail(CLCL_ERR_NO_MEMORY, "folder: out of memory");
            continue;
        }
        char *p = clcl_path_join(dir, e->d_name);
        st = clcl_fail(CLCL_ERR_FORMAT,
                       "folder: %s is %s; a class folder may hold only .jpg, "
                       ".jpeg and .png images",
                       p ? p : e->d_name, p && clcl_path_is_dir(p) ? "a folder" : "not an image");
        free(p);
    }
    closedir(d);
    CLCL_TRY(st);
    if (images->n == 0)
        return clcl_fail(CLCL_ERR_FORMAT, "folder: class folder %s holds no images", dir);
    qsort(images->items, (size_t)images->n, sizeof *images->items, compare_names);
    return CLCL_OK;
}

/* Appends the images of class c to the state and the labels. */
static clcl_status folder_add_class(folder_state *fs, clcl_source *src, const char *dir, int c) {
    name_list images = {0};
    clcl_status st = folder_list_images(dir, &images);
    int total = fs->count + images.n;
    char **files = st == CLCL_OK ? realloc(fs->files, (size_t)total * sizeof *files) : NULL;
    int *labels = files ? realloc(src->labels, (size_t)total * sizeof *labels) : NULL;
    if (files)
        fs->files = files;
    if (labels)
        src->labels = labels;
    if (st == CLCL_OK && (!files || !labels))
        st = clcl_fail(CLCL_ERR_NO_MEMORY, "folder: out of memory for %d file names", total);
    for (int i = 0; st == CLCL_OK && i < images.n; i++) {
        if (!(fs->files[fs->count] = clcl_path_join(dir, images.items[i])))
            st = clcl_fail(CLCL_ERR_NO_MEMORY, "folder: out of memory");
        else
            src->labels[fs->count++] = c;
    }
    name_list_free(&images);
    return st;
}

typedef struct {
    const folder_state *fs;
    const int *keep;
    int *w, *h, *comp; /* (n) each kept image's header */
} probe_job;

/* Reads the header of one kept image. */
static clcl_status folder_probe_one(void *user, int j) {
    probe_job *job = user;
    const char *path = job->fs->files[job->keep[j]];
    FILE *f = fopen(path, "rb");
    if (!f)
        return clcl_fail(CLCL_ERR_IO, "folder: cannot open %s: %s", path, strerror(errno));
    int ok = stbi_info_from_file(f, &job->w[j], &job->h[j], &job->comp[j]);
    fclose(f);
    if (!ok)
        return clcl_fail(CLCL_ERR_FORMAT, "folder: %s is not an image stb_image can read: %s", path,
                         stbi_failure_reason());
    return CLCL_OK;
}

/* Fixes the channels (from the headers when not given) and the size (one shared by every
 * image when image_size is 0). */
static clcl_status folder_check_headers(folder_state *fs, const int *keep, int n,
                                        const probe_job *job) {
    int grey = 0;
    for (int j = 0; j < n; j++)
        grey += job->comp[j] <= 2;
    if (fs->channels == 0)
        fs->channels = grey == n ? 1 : 3;
    if (fs->channels == 3 && grey > 0)
        CLCL_LOG_INFO("folder", "%d grey image%s turned to RGB by copying the grey channel", grey,
                      grey > 1 ? "s" : "");
    if (fs->image_size > 0)
        return CLCL_OK;
    fs->width = job->w[0];
    fs->height = job->h[0];
    for (int j = 1; j < n; j++)
        if (job->w[j] != fs->width || job->h[j] != fs->height)
            return clcl_fail(CLCL_ERR_FORMAT,
                             "folder: mixed image sizes: %s is %dx%d but %s is %dx%d; give an "
                             "image size to resize them to one",
                             fs->files[keep[0]], fs->width, fs->height, fs->files[keep[j]],
                             job->w[j], job->h[j]);
    return CLCL_OK;
}

static clcl_status folder_select(clcl_source *src, const int *keep, int n, int threads) {
    folder_state *fs = src->state;
    if (fs->image_size > 0)
        fs->width = fs->height = fs->image_size;

    /* Headers are read only when the channels or the size depend on them. */
    if (n > 0 && (fs->channels == 0 || fs->image_size == 0)) {
        probe_job job = {.fs = fs, .keep = keep};
        job.w = malloc((size_t)n * sizeof *job.w);
        job.h = malloc((size_t)n * sizeof *job.h);
        job.comp = malloc((size_t)n * sizeof *job.comp);
        clcl_status st = job.w && job.h && job.comp
                             ? clcl_parallel_for(n, threads, folder_probe_one, &job)
                             : clcl_fail(CLCL_ERR_NO_MEMORY, "folder: out of memory");
        if (st == CLCL_OK)
            st = folder_check_headers(fs, keep, n, &job);
        free(job.w);
        free(job.h);
        free(job.comp);
        CLCL_TRY(st);
    }
    if (fs->channels == 0)
        fs->channels = 3;
    src->channels = fs->channels;
    src->height = fs->height;
    src->width = fs->width;
    return CLCL_OK;
}

/* The whole file in a malloc'd buffer. */
static clcl_status folder_slurp(const char *path, uint8_t **data, int *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return clcl_fail(CLCL_ERR_IO, "folder: cannot open %s: %s", path, strerror(errno));
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    clcl_status st = CLCL_OK;
    if (size < 0 || size > (1L << 30) || fseek(f, 0, SEEK_SET) != 0)
        st = clcl_fail(CLCL_ERR_IO, "folder: cannot size %s (or over 1 GiB)", path);
    else if (!(*data = malloc(size > 0 ? (size_t)size : 1)))
        st = clcl_fail(CLCL_ERR_NO_MEMORY, "folder: out of memory reading %s", path);
    else if (fread(*data, 1, (size_t)size, f) != (size_t)size)
        st = clcl_fail(CLCL_ERR_IO, "folder: cannot read %s", path);
    fclose(f);
    *len = (int)size;
    return st;
}

/* (rh, rw, C) interleaved, cropped at (y0, x0) to (C, H, W) planar. */
static void folder_to_planar(const uint8_t *in, int rw, int x0, int y0, int c, int h, int w,
                             uint8_t *out) {
    for (int k = 0; k < c; k++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                out[((size_t)k * h + y) * w + x] = in[((size_t)(y + y0) * rw + x + x0) * c + k];
}

/* Scales the short side of an interleaved (h, w, c) image to `side`, keeps the centre
 * square, and writes it planar. */
static clcl_status folder_fit(const char *path, const uint8_t *pix, int w, int h, int c, int side,
                              uint8_t *dst) {
    int rw = w <= h ? side : (int)(((long long)w * side + h / 2) / h);
    int rh = w <= h ? (int)(((long long)h * side + w / 2) / w) : side;
    if (rw < side)
        rw = side;
    if (rh < side)
        rh = side;
    if (rw == w && rh == h) {
        folder_to_planar(pix, w, (w - side) / 2, (h - side) / 2, c, side, side, dst);
        return CLCL_OK;
    }
    uint8_t *scaled = malloc((size_t)rw * (size_t)rh * (size_t)c);
    if (!scaled)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "folder: out of memory resizing %s", path);
    int ok = stbir_resize_uint8(pix, w, h, 0, scaled, rw, rh, 0, c);
    if (ok)
        folder_to_planar(scaled, rw, (rw - side) / 2, (rh - side) / 2, c, side, side, dst);
    free(scaled);
    if (!ok)
        return clcl_fail(CLCL_ERR_NO_MEMORY,
                         "folder: stb_image_resize failed on %s (%dx%d to "
                         "%dx%d)",
                         path, w, h, rw, rh);
    return CLCL_OK;
}

/* Decodes one image (converting to the dataset's channels) and fits it to the size. */
static clcl_status folder_read(const clcl_source *src, int i, uint8_t *dst) {
    const folder_state *fs = src->state;
    const char *path = fs->files[i];
    uint8_t *data = NULL;
    int len = 0, w, h, comp;
    clcl_status st = folder_slurp(path, &data, &len);
    if (st != CLCL_OK) {
        free(data);
        return st;
    }
    uint8_t *pix = stbi_load_from_memory(data, len, &w, &h, &comp, fs->channels);
    free(data);
    if (!pix)
        return clcl_fail(CLCL_ERR_FORMAT, "folder: cannot decode %s: %s", path,
                         stbi_failure_reason());

    if (fs->image_size > 0)
        st = folder_fit(path, pix, w, h, fs->channels, fs->image_size, dst);
    else if (w != fs->width || h != fs->height)
        st = clcl_fail(CLCL_ERR_FORMAT,
                       "folder: mixed image sizes: %s is %dx%d, but the dataset's images are "
                       "%dx%d; give an image size to resize them to one",
                       path, w, h, fs->width, fs->height);
    else
        folder_to_planar(pix, w, 0, 0, fs->channels, h, w, dst);
    stbi_image_free(pix);
    return st;
}

clcl_status clcl_reader_folder_open(const clcl_dataset_config *cfg, const char *dir,
                                    clcl_source *src) {
    char *root = NULL;
    CLCL_TRY(folder_class_root(dir, cfg->split, &root));
    folder_state *fs = calloc(1, sizeof *fs);
    src->state = fs;
    src->free_state = folder_state_free;
    name_list classes = {0};
    clcl_status st = fs ? folder_list_classes(root, &classes)
                        : clcl_fail(CLCL_ERR_NO_MEMORY, "folder: out of memory");

    /* Every class folder's images, in class order. */
    for (int c = 0; st == CLCL_OK && c < classes.n; c++) {
        char *p = clcl_path_join(root, classes.items[c]);
        st = p ? folder_add_class(fs, src, p, c)
               : clcl_fail(CLCL_ERR_NO_MEMORY, "folder: out of memory");
        free(p);
    }
    if (st == CLCL_OK)
        st = clcl_source_set_names(src, (const char *const *)classes.items, classes.n);
    if (st == CLCL_OK) {
        fs->image_size = cfg->image_size;
        fs->channels = cfg->channels;
        src->count = fs->count;
        src->read = folder_read;
        src->select = folder_select;
        src->read_threads = cfg->threads > 0 ? cfg->threads : clcl_cpu_count();
    }
    name_list_free(&classes);
    free(root);
    return st;
}
