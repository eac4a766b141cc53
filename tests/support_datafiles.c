/* Writers of small dataset files in the real formats, for the reader tests. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <stb_image_write.h>
#include <zlib.h>

#include "support.h"
#include "support_datafiles.h"

const char *test_join(const char *dir, const char *name) {
    static char buf[8][1024];
    static int next;
    char *out = buf[next++ % 8];
    snprintf(out, sizeof buf[0], "%s/%s", dir, name);
    return out;
}

void test_mkdir(const char *path) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        cr_assert_fail("cannot create %s: %s", path, strerror(errno));
}

void test_fill_bytes(uint8_t *out, size_t n, uint64_t seed) {
    uint64_t state = seed;
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(test_rand_u64(&state) >> 56);
}

/* Writes through zlib (gzip) or stdio (plain). */
static void write_all(const char *path, int gz, const void *a, size_t na, const void *b,
                      size_t nb) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        if (!f)
            cr_assert_fail("cannot write %s", path);
        int ok = gzwrite(f, a, (unsigned)na) == (int)na &&
                 (nb == 0 || gzwrite(f, b, (unsigned)nb) == (int)nb);
        if (gzclose(f) != Z_OK || !ok)
            cr_assert_fail("cannot write %s", path);
        return;
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        cr_assert_fail("cannot write %s: %s", path, strerror(errno));
    int ok = fwrite(a, 1, na, f) == na && (nb == 0 || fwrite(b, 1, nb, f) == nb);
    if (fclose(f) != 0 || !ok)
        cr_assert_fail("cannot write %s", path);
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void test_write_idx_images(const char *path, int gz, uint32_t magic, int n, int rows, int cols,
                           const uint8_t *pixels) {
    uint8_t head[16];
    put_be32(head, magic);
    put_be32(head + 4, (uint32_t)n);
    put_be32(head + 8, (uint32_t)rows);
    put_be32(head + 12, (uint32_t)cols);
    write_all(path, gz, head, sizeof head, pixels, (size_t)n * rows * cols);
}

void test_write_idx_labels(const char *path, int gz, uint32_t magic, int n, const uint8_t *labels) {
    uint8_t head[8];
    put_be32(head, magic);
    put_be32(head + 4, (uint32_t)n);
    write_all(path, gz, head, sizeof head, labels, (size_t)n);
}

void test_write_cifar(const char *path, int n, const uint8_t *pixels, const uint8_t *fine,
                      const uint8_t *coarse) {
    size_t head = coarse ? 2 : 1, record = head + 3072;
    uint8_t *buf = malloc((size_t)n * record + 1);
    cr_assert(buf != NULL);
    for (int i = 0; i < n; i++) {
        uint8_t *r = buf + (size_t)i * record;
        if (coarse)
            *r++ = coarse[i];
        *r++ = fine[i];
        memcpy(r, pixels + (size_t)i * 3072, 3072);
    }
    write_all(path, 0, buf, (size_t)n * record, NULL, 0);
    free(buf);
}

void test_write_stl10_images(const char *path, int n, const uint8_t *pixels) {
    const int side = 96;
    size_t bytes = (size_t)3 * side * side;
    uint8_t *buf = malloc((size_t)n * bytes + 1);
    cr_assert(buf != NULL);
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < side; y++)
                for (int x = 0; x < side; x++) {
                    size_t plane = (size_t)i * bytes + (size_t)c * side * side;
                    buf[plane + (size_t)x * side + y] = pixels[plane + (size_t)y * side + x];
                }
    write_all(path, 0, buf, (size_t)n * bytes, NULL, 0);
    free(buf);
}

void test_write_bytes(const char *path, const void *data, size_t n) {
    write_all(path, 0, data, n, NULL, 0);
}

void test_write_image(const char *path, int w, int h, int comp, const uint8_t *pixels) {
    const char *dot = strrchr(path, '.');
    int ok;
    if (dot && strcasecmp(dot, ".png") == 0)
        ok = stbi_write_png(path, w, h, comp, pixels, w * comp);
    else
        ok = stbi_write_jpg(path, w, h, comp, pixels, 100);
    if (!ok)
        cr_assert_fail("stb_image_write could not write %s", path);
}

void test_truncate(const char *path, long size) {
    if (truncate(path, (off_t)size) != 0)
        cr_assert_fail("cannot truncate %s: %s", path, strerror(errno));
}

void test_poke(const char *path, long offset, uint8_t value) {
    FILE *f = fopen(path, "r+b");
    if (!f || fseek(f, offset, SEEK_SET) != 0 || fputc(value, f) == EOF)
        cr_assert_fail("cannot change byte %ld of %s", offset, path);
    fclose(f);
}
