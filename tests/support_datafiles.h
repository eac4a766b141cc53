/* Writers of small dataset files in the exact formats of the real releases (IDX plain and
 * gzip, CIFAR-10/100 binary, STL-10 binary, JPEG/PNG folders), and helpers to corrupt them.
 * Every writer fails the running test when it cannot write. */
#ifndef CLCL_TEST_SUPPORT_DATAFILES_H
#define CLCL_TEST_SUPPORT_DATAFILES_H

#include <stddef.h>
#include <stdint.h>

/* dir/name in one of 8 rotating static buffers. */
const char *test_join(const char *dir, const char *name);
void test_mkdir(const char *path);

/* n bytes from a seeded generator. */
void test_fill_bytes(uint8_t *out, size_t n, uint64_t seed);

/* IDX: images (n, rows, cols) with magic (0x00000803 for a valid file), labels (n) with
 * magic (0x00000801); gzip when gz is 1. */
void test_write_idx_images(const char *path, int gz, uint32_t magic, int n, int rows, int cols,
                           const uint8_t *pixels);
void test_write_idx_labels(const char *path, int gz, uint32_t magic, int n, const uint8_t *labels);

/* CIFAR records: pixels (n, 3, 32, 32); CIFAR-10 when coarse is NULL (label = fine), else
 * CIFAR-100 (coarse byte, fine byte). */
void test_write_cifar(const char *path, int n, const uint8_t *pixels, const uint8_t *fine,
                      const uint8_t *coarse);

/* STL-10 images from (n, 3, 96, 96) row-major pixels, written column-major per channel as
 * the release stores them. */
void test_write_stl10_images(const char *path, int n, const uint8_t *pixels);

/* Raw bytes (STL-10 label files, or anything). */
void test_write_bytes(const char *path, const void *data, size_t n);

/* An image file from (h, w, comp) interleaved pixels: PNG or JPEG (quality 100) by the
 * name's extension. */
void test_write_image(const char *path, int w, int h, int comp, const uint8_t *pixels);

/* Cuts a file to size bytes / overwrites one byte. */
void test_truncate(const char *path, long size);
void test_poke(const char *path, long offset, uint8_t value);

#endif
