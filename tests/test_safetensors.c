/* safetensors: round trips, the atomic write, and every malformed header refused with a
 * message that names what is wrong. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "clcl/safetensors.h"
#include "support.h"

/* A file in memory: the 8-byte length, `json`, then `data_bytes` bytes 0, 1, 2, ... */
static unsigned char *make_file(const char *json, size_t data_bytes, size_t *size) {
    size_t n = strlen(json);
    *size = 8 + n + data_bytes;
    unsigned char *b = malloc(*size);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, json, n);
    for (size_t i = 0; i < data_bytes; i++)
        b[8 + n + i] = (unsigned char)i;
    return b;
}

/* Parses `json` + data and expects CLCL_ERR_FORMAT with `needle` in the message. */
static void expect_refused(const char *json, size_t data_bytes, const char *needle) {
    size_t size;
    unsigned char *b = make_file(json, data_bytes, &size);
    clcl_safetensors *st = NULL;
    clcl_status s = clcl_safetensors_parse(b, size, "mem.safetensors", &st);
    cr_expect_eq(s, CLCL_ERR_FORMAT, "header %s: status %d (%s)", json, s, clcl_last_error());
    cr_expect_null(st);
    cr_expect(strstr(clcl_last_error(), needle), "header %s: message '%s' lacks '%s'", json,
              clcl_last_error(), needle);
    cr_expect(strstr(clcl_last_error(), "mem.safetensors"), "message '%s' lacks the source",
              clcl_last_error());
    free(b);
}

Test(safetensors, round_trip_keeps_names_shapes_bits_and_metadata) {
    const char *dir = test_temp_dir("st");
    char path[600];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    float w[6] = {1.5f, -2.25f, 3e-38f, 1e38f, -0.0f, 7.0f};
    int64_t big = -((int64_t)1 << 40) - 3, shape23[] = {2, 3}, shape0[] = {4, 0};
    clcl_safetensors_writer *wr;
    cr_assert_eq(clcl_safetensors_writer_create(&wr), CLCL_OK);
    cr_assert_eq(clcl_safetensors_add(wr, "layer1.0.conv1.weight", CLCL_DTYPE_F32, 2, shape23, w),
                 CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_safetensors_add_i64(wr, "bn1.num_batches_tracked", big), CLCL_OK);
    cr_assert_eq(clcl_safetensors_add(wr, "empty", CLCL_DTYPE_F32, 2, shape0, NULL), CLCL_OK);
    cr_assert_eq(clcl_safetensors_add_metadata(wr, "note", "a \"quoted\"\\ line\nwith \x01"),
                 CLCL_OK);
    cr_assert_eq(clcl_safetensors_add_metadata(wr, "arch", "resnet50"), CLCL_OK);
    cr_assert_eq(clcl_safetensors_add_metadata(wr, "arch", "resnet18"), CLCL_OK);
    cr_assert_eq(clcl_safetensors_write(wr, path), CLCL_OK, "%s", clcl_last_error());
    clcl_safetensors_writer_free(wr);

    clcl_safetensors *st;
    cr_assert_eq(clcl_safetensors_read(path, &st), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(clcl_safetensors_count(st), 3);
    const clcl_safetensors_entry *e = clcl_safetensors_find(st, "layer1.0.conv1.weight");
    cr_assert_not_null(e);
    cr_expect_eq(e->dtype, CLCL_DTYPE_F32);
    cr_expect_eq(e->ndim, 2);
    cr_expect(e->shape[0] == 2 && e->shape[1] == 3);
    cr_expect_eq(e->count, 6u);
    cr_expect_eq(memcmp(e->data, w, sizeof w), 0);
    cr_expect_eq((uintptr_t)e->data % 8, 0u);
    e = clcl_safetensors_find(st, "bn1.num_batches_tracked");
    cr_assert_not_null(e);
    cr_expect_eq(e->dtype, CLCL_DTYPE_I64);
    cr_expect_eq(e->ndim, 0);
    cr_expect_eq(e->count, 1u);
    cr_expect_eq(*(const int64_t *)e->data, big);
    e = clcl_safetensors_find(st, "empty");
    cr_assert_not_null(e);
    cr_expect_eq(e->count, 0u);
    cr_expect_str_eq(clcl_safetensors_metadata(st, "note"), "a \"quoted\"\\ line\nwith \x01");
    cr_expect_str_eq(clcl_safetensors_metadata(st, "arch"), "resnet18");
    cr_expect_null(clcl_safetensors_metadata(st, "missing"));
    cr_expect_null(clcl_safetensors_find(st, "missing"));

    /* The data starts 8-byte aligned, as the reference writer pads it. */
    FILE *f = fopen(path, "rb");
    unsigned char len[8];
    cr_assert_eq(fread(len, 1, 8, f), 8u);
    fclose(f);
    cr_expect_eq(len[0] % 8, 0);
    clcl_safetensors_free(st);
}

Test(safetensors, write_replaces_atomically_and_leaves_no_temporary) {
    const char *dir = test_temp_dir("st-atomic");
    char path[600];
    snprintf(path, sizeof path, "%s/ckpt.safetensors", dir);
    for (int round = 0; round < 2; round++) {
        clcl_safetensors_writer *wr;
        int64_t one[] = {1};
        float v = (float)round + 0.5f;
        cr_assert_eq(clcl_safetensors_writer_create(&wr), CLCL_OK);
        cr_assert_eq(clcl_safetensors_add(wr, "v", CLCL_DTYPE_F32, 1, one, &v), CLCL_OK);
        cr_assert_eq(clcl_safetensors_write(wr, path), CLCL_OK, "%s", clcl_last_error());
        clcl_safetensors_writer_free(wr);
    }
    clcl_safetensors *st;
    cr_assert_eq(clcl_safetensors_read(path, &st), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(*(const float *)clcl_safetensors_find(st, "v")->data, 1.5f);
    clcl_safetensors_free(st);

    int files = 0;
    DIR *d = opendir(dir);
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.')
            files++;
    closedir(d);
    cr_expect_eq(files, 1, "the temporary file was left behind");

    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_expect(sb.st_mode & S_IRUSR);
}

Test(safetensors, unwritable_or_missing_paths_are_io_errors_naming_the_path) {
    clcl_safetensors_writer *wr;
    clcl_safetensors *st;
    cr_assert_eq(clcl_safetensors_writer_create(&wr), CLCL_OK);
    cr_expect_eq(clcl_safetensors_write(wr, "/nonexistent-dir/x.safetensors"), CLCL_ERR_IO);
    cr_expect(strstr(clcl_last_error(), "/nonexistent-dir/x.safetensors"), "%s", clcl_last_error());
    cr_expect_eq(clcl_safetensors_read("/nonexistent-dir/x.safetensors", &st), CLCL_ERR_IO);
    cr_expect_null(st);
    cr_expect(strstr(clcl_last_error(), "cannot open"), "%s", clcl_last_error());
    clcl_safetensors_writer_free(wr);
}

Test(safetensors, writer_refuses_bad_names) {
    clcl_safetensors_writer *wr;
    float v = 1;
    int64_t one[] = {1};
    cr_assert_eq(clcl_safetensors_writer_create(&wr), CLCL_OK);
    cr_expect_eq(clcl_safetensors_add(wr, "", CLCL_DTYPE_F32, 1, one, &v), CLCL_ERR_ARGUMENT);
    cr_expect_eq(clcl_safetensors_add(wr, "__metadata__", CLCL_DTYPE_F32, 1, one, &v),
                 CLCL_ERR_ARGUMENT);
    cr_expect_eq(clcl_safetensors_add(wr, "a", CLCL_DTYPE_F32, 1, one, &v), CLCL_OK);
    cr_expect_eq(clcl_safetensors_add(wr, "a", CLCL_DTYPE_F32, 1, one, &v), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "'a' added twice"), "%s", clcl_last_error());
    cr_expect_eq(clcl_safetensors_add(wr, "b", CLCL_DTYPE_OTHER, 1, one, &v), CLCL_ERR_ARGUMENT);
    clcl_safetensors_writer_free(wr);
}

Test(safetensors, reads_a_hand_written_file_with_spacing_escapes_and_odd_alignment) {
    /* 3 F32 (12 bytes) then an I64 at offset 12: the I64 is not 8-aligned in the file. */
    const char *json =
        "{ \"__metadata__\" : { \"format\" : \"pt\", \"k\\u00e9\\ud83d\\ude00\": \"\\t\" },\n"
        "  \"b\\\"x\": {\"shape\": [], \"data_offsets\": [12, 20], \"dtype\": \"I64\"},\n"
        "  \"a\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 12]},\n"
        "  \"h\": {\"dtype\": \"BF16\", \"shape\": [1, 1], \"data_offsets\": [20, 22]} }   ";
    size_t size;
    unsigned char *b = make_file(json, 22, &size);
    clcl_safetensors *st;
    cr_assert_eq(clcl_safetensors_parse(b, size, "mem", &st), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(clcl_safetensors_count(st), 3);
    cr_expect_str_eq(clcl_safetensors_at(st, 0)->name, "a"); /* in offset order */
    cr_expect_str_eq(clcl_safetensors_at(st, 1)->name, "b\"x");
    const clcl_safetensors_entry *e = clcl_safetensors_find(st, "b\"x");
    cr_assert_not_null(e);
    cr_expect_eq((uintptr_t)e->data % 8, 0u);
    int64_t expected = 0;
    for (int i = 7; i >= 0; i--)
        expected = expected * 256 + 12 + i;
    cr_expect_eq(*(const int64_t *)e->data, expected);
    e = clcl_safetensors_find(st, "h");
    cr_expect_eq(e->dtype, CLCL_DTYPE_OTHER);
    cr_expect_str_eq(e->dtype_name, "BF16");
    cr_expect_eq(e->bytes, 2u);
    cr_expect_str_eq(clcl_safetensors_metadata(st, "format"), "pt");
    cr_expect_str_eq(clcl_safetensors_metadata(st, "k\xc3\xa9\xf0\x9f\x98\x80"), "\t");
    clcl_safetensors_free(st);
    free(b);
}

Test(safetensors, empty_header_is_a_valid_empty_file) {
    size_t size;
    unsigned char *b = make_file("{}", 0, &size);
    clcl_safetensors *st;
    cr_assert_eq(clcl_safetensors_parse(b, size, "mem", &st), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(clcl_safetensors_count(st), 0);
    clcl_safetensors_free(st);
    free(b);
}

Test(safetensors, bad_header_lengths_are_refused) {
    clcl_safetensors *st;
    unsigned char tiny[5] = {1, 0, 0, 0, 0};
    cr_expect_eq(clcl_safetensors_parse(tiny, 5, "mem.safetensors", &st), CLCL_ERR_FORMAT);
    cr_expect(strstr(clcl_last_error(), "too short"), "%s", clcl_last_error());

    size_t size;
    unsigned char *b = make_file("{}", 0, &size);
    b[0] = 200; /* longer than the file */
    cr_expect_eq(clcl_safetensors_parse(b, size, "mem.safetensors", &st), CLCL_ERR_FORMAT);
    cr_expect(strstr(clcl_last_error(), "bad safetensors header length 200"), "%s",
              clcl_last_error());
    b[0] = 0;
    b[7] = 0x80; /* absurd */
    cr_expect_eq(clcl_safetensors_parse(b, size, "mem.safetensors", &st), CLCL_ERR_FORMAT);
    cr_expect(strstr(clcl_last_error(), "header length"), "%s", clcl_last_error());
    free(b);
}

Test(safetensors, malformed_headers_name_the_fault) {
    expect_refused("[1]", 0, "must start with '{'");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}} x", 4,
                   "only spaces after");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}", 4,
                   "expected");
    expect_refused("{\"a\": {\"dtype\": \"F33\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 4,
                   "tensor 'a': unknown dtype \"F33\"");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4], "
                   "\"extra\": 1}}",
                   4, "tensor 'a': unexpected key \"extra\"");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4,
                   "tensor 'a': missing shape");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", 4,
                   "tensor 'a': shape must hold non-negative integers");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [1.0], \"data_offsets\": [0, 4]}}", 4,
                   "tensor 'a': shape must hold non-negative integers");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", 4,
                   "tensor 'a': shape holds 8 bytes of F32 but data_offsets [0, 4] span 4");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 0]}}", 4,
                   "tensor 'a': data_offsets must be [begin, end]");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}", 8,
                   "tensor 'a': data_offsets has more than 2 values");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4,
                   "tensor 'a': data_offsets [0, 8] run past the 4 bytes");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                   "\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}",
                   12, "tensor 'b': data_offsets [8, 12] leave a hole");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
                   "\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                   8, "overlap");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", 8,
                   "the tensors cover 4 bytes but the file holds 8");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                   "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
                   8, "tensor 'a' appears twice");
    expect_refused("{\"__metadata__\": {\"k\": 3}}", 0,
                   "__metadata__ value of 'k' must be a string");
    expect_refused("{\"a\\x\": {}}", 0, "valid escape");
    expect_refused("{\"a\": {\"dtype\": \"F32\", \"dtype\": \"F32\", \"shape\": [1], "
                   "\"data_offsets\": [0, 4]}}",
                   4, "key \"dtype\" given twice");
}

Test(safetensors, device_tensors_round_trip_and_shapes_are_checked) {
    clcl_context *ctx = test_context();
    const char *dir = test_temp_dir("st-dev");
    char path[600];
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    int shape[] = {3, 5, 7, 2};
    clcl_tensor t, u;
    cr_assert_eq(clcl_tensor_create(ctx, &t, 4, shape), CLCL_OK);
    cr_assert_eq(clcl_tensor_create(ctx, &u, 4, shape), CLCL_OK);
    float *h = malloc(t.count * sizeof *h), *back = malloc(t.count * sizeof *back);
    uint64_t rng = 3;
    for (size_t i = 0; i < t.count; i++)
        h[i] = test_rand_uniform(&rng, -1, 1);
    cr_assert_eq(clcl_tensor_write(ctx, &t, h), CLCL_OK);

    clcl_safetensors_writer *wr;
    cr_assert_eq(clcl_safetensors_writer_create(&wr), CLCL_OK);
    cr_assert_eq(clcl_safetensors_add_tensor(wr, ctx, "x", &t), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_safetensors_write(wr, path), CLCL_OK, "%s", clcl_last_error());
    clcl_safetensors_writer_free(wr);

    clcl_safetensors *st;
    const clcl_safetensors_entry *e;
    cr_assert_eq(clcl_safetensors_read(path, &st), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_safetensors_expect_f32(st, "x", 4, shape, &e), CLCL_OK, "%s",
                 clcl_last_error());
    cr_assert_eq(clcl_safetensors_to_device(ctx, st, e, &u), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_tensor_read(ctx, &u, back), CLCL_OK);
    cr_expect_eq(memcmp(h, back, t.count * sizeof *h), 0);

    int wrong[] = {3, 5, 14};
    cr_expect_eq(clcl_safetensors_expect_f32(st, "x", 3, wrong, &e), CLCL_ERR_FORMAT);
    cr_expect(strstr(clcl_last_error(), "tensor 'x' is F32 (3, 5, 7, 2); expected F32 (3, 5, 14)"),
              "%s", clcl_last_error());
    cr_expect_eq(clcl_safetensors_expect_f32(st, "y", 1, wrong, &e), CLCL_ERR_FORMAT);
    cr_expect(strstr(clcl_last_error(), "no tensor 'y'"), "%s", clcl_last_error());
    clcl_safetensors_free(st);
    free(h);
    free(back);
    clcl_tensor_free(&t);
    clcl_tensor_free(&u);
    clcl_context_free(ctx);
}
