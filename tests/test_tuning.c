/* The GEMM dispatch (include/clcl/tuning.h): a shape seen for the first time is measured
 * and its decision stored in the tuning file, a reload takes it from the file without
 * measuring, stored decisions (backend and tunables) are applied, a corrupt file or
 * another device's is ignored with a warning, CLCL_GEMM forces a backend, and the product
 * is right either way (beta != 0 included: the measurement must not touch the caller's C);
 * CLCL_LOSS_AUTO the same way; `clcl tune` stores every product of a tiny model and resumes.
 *
 * Every test points CLCL_TUNING_FILE into its own temporary directory. Tolerance as in
 * test_gemm: |got - ref| <= 1e-4 + 1e-4 |ref| for inputs in [-1, 1). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "cli.h"
#include "clcl/gemm.h"
#include "clcl/log.h"
#include "clcl/loss.h"
#include "clcl/tuning.h"
#include "support.h"
#include "support_layers.h"

/* Points CLCL_TUNING_FILE at <temp>/tuning.txt and reloads; returns the path. */
static const char *fresh_file(clcl_context *ctx, const char *name) {
    static char path[1024];
    snprintf(path, sizeof path, "%s/tuning.txt", test_temp_dir(name));
    remove(path);
    setenv("CLCL_TUNING_FILE", path, 1);
    unsetenv("CLCL_GEMM");
    cr_assert_eq(clcl_tuning_reload(ctx), CLCL_OK, "%s", clcl_last_error());
    return path;
}

static clcl_tuning_summary summary(clcl_context *ctx) {
    clcl_tuning_summary s;
    cr_assert_eq(clcl_tuning_summarize(ctx, &s), CLCL_OK, "%s", clcl_last_error());
    return s;
}

/* alpha op(A) op(B) + beta C through clcl_gemm, checked against clcl_ref_gemm. */
static clcl_status product(clcl_context *ctx, int ta, int tb, int m, int n, int k, float beta,
                           uint64_t seed) {
    uint64_t rng = seed;
    size_t na = (size_t)m * k, nb = (size_t)k * n, nc = (size_t)m * n;
    float *ha = test_floats(na, &rng, -1, 1), *hb = test_floats(nb, &rng, -1, 1);
    float *hc = test_floats(nc, &rng, -1, 1);
    clcl_tensor a, b, c;
    test_tensor(ctx, &a, 1, (int[]){(int)na}, ha);
    test_tensor(ctx, &b, 1, (int[]){(int)nb}, hb);
    test_tensor(ctx, &c, 1, (int[]){(int)nc}, hc);
    size_t lda = ta ? m : k, ldb = tb ? k : n;
    clcl_gemm_args g = {ta, tb, m, n, k, 0.75f, beta, a.buf, 0, lda, b.buf, 0, ldb, c.buf, 0, n};

    clcl_status st = clcl_gemm(ctx, &g);
    if (st == CLCL_OK) {
        float *got = test_read(ctx, &c);
        double *ref = test_doubles(hc, nc);
        clcl_ref_gemm(ta, tb, m, n, k, 0.75, ha, lda, hb, ldb, beta, hc, n, ref);
        expect_close(got, ref, nc, 1e-4, 1e-4, "clcl_gemm");
        free(got), free(ref);
    }
    free(ha), free(hb), free(hc);
    clcl_tensor_free(&a), clcl_tensor_free(&b), clcl_tensor_free(&c);
    return st;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s", path);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

/* The file's own header for this device (its first three lines), into buf. */
static void header_of(const char *path, char *buf, size_t size) {
    const char *text = slurp(path);
    const char *end = text;
    for (int lines = 0; lines < 4 && (end = strchr(end, '\n')); lines++)
        end++;
    cr_assert_not_null(end, "%s has fewer than four lines", path);
    snprintf(buf, size, "%.*s", (int)(end - text), text);
}

static int warnings;
static char last_warning[1024];
static void count_warnings(clcl_log_level level, const char *module, const char *message,
                           void *user) {
    if (level == CLCL_LOG_LEVEL_WARN) {
        warnings++;
        snprintf(last_warning, sizeof last_warning, "%s", message);
    }
}

Test(tuning, measures_once_stores_and_reloads) {
    clcl_context *ctx = test_context();
    const char *path = fresh_file(ctx, "tuning_store");

    /* First encounter: measured once, written to the file, C updated exactly once. */
    cr_assert_eq(product(ctx, 0, 0, 96, 200, 70, 0.5f, 1), CLCL_OK, "%s", clcl_last_error());
    clcl_tuning_summary s = summary(ctx);
    cr_expect_eq(s.gemm_measured, 1);
    cr_expect_eq(s.gemm_from_file, 0);
    cr_expect_str_eq(s.path, path);
    char *text = slurp(path);
    cr_assert_not_null(strstr(text, "clcl-tuning 1\n"), "%s", text);
    const char *rec = strstr(text, "gemm 0 0 96 200 70 70 200 200 1 ");
    cr_assert_not_null(rec, "no record of the shape in:\n%s", text);
    int own = strncmp(rec + strlen("gemm 0 0 96 200 70 70 200 200 1 "), "own", 3) == 0;
    cr_expect_eq(s.gemm_own, own);

    /* Seen again: no new measurement. A new shape (B transposed): one more. */
    cr_assert_eq(product(ctx, 0, 0, 96, 200, 70, 0.0f, 2), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(product(ctx, 0, 1, 33, 17, 129, 1.0f, 3), CLCL_OK, "%s", clcl_last_error());
    s = summary(ctx);
    cr_expect_eq(s.gemm_measured, 2);

    /* Another process (a reload): both from the file, nothing measured, same choices. */
    cr_assert_eq(clcl_tuning_reload(ctx), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(product(ctx, 0, 0, 96, 200, 70, 0.5f, 4), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(product(ctx, 0, 1, 33, 17, 129, 0.0f, 5), CLCL_OK, "%s", clcl_last_error());
    clcl_tuning_summary r = summary(ctx);
    cr_expect_eq(r.gemm_from_file, 2);
    cr_expect_eq(r.gemm_measured, 0);
    cr_expect_eq(r.gemm_own, s.gemm_own);
    cr_expect_eq(r.file_ignored, 0);
    clcl_context_free(ctx);
}

Test(tuning, stored_decisions_are_applied) {
    clcl_context *ctx = test_context();
    const char *path = fresh_file(ctx, "tuning_apply");
    char head[512], text[2048];

    /* Any measured shape gives us the file's header for this device. */
    cr_assert_eq(product(ctx, 0, 0, 8, 8, 8, 0.0f, 6), CLCL_OK, "%s", clcl_last_error());
    header_of(path, head, sizeof head);

    /* Our kernel with unusual tunables at one shape, CLBlast at another. Running the first
     * must build one new program (the tunables are in its options), the second none. */
    snprintf(text, sizeof text,
             "%sgemm 0 0 45 61 23 23 61 61 1 own 3 4 3 2 2 1 4 -1 -1 tuned\n"
             "gemm 1 0 45 61 23 45 61 61 1 clblast 6 8 2 3 3 1 16 -1 -1 auto\n",
             head);
    write_text(path, text);
    cr_assert_eq(clcl_tuning_reload(ctx), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(summary(ctx).gemm_from_file, 2);
    int builds = clcl_context_builds(ctx);
    cr_assert_eq(product(ctx, 0, 0, 45, 61, 23, 1.0f, 7), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(clcl_context_builds(ctx), builds + 1, "the stored own decision was not applied");
    cr_assert_eq(product(ctx, 1, 0, 45, 61, 23, 0.0f, 8), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(clcl_context_builds(ctx), builds + 1, "the stored CLBlast decision built ours");
    cr_expect_eq(summary(ctx).gemm_measured, 0);
    clcl_context_free(ctx);
}

Test(tuning, corrupt_or_foreign_file_is_ignored_with_a_warning) {
    clcl_context *ctx = test_context();
    const char *path = fresh_file(ctx, "tuning_corrupt");
    const char *bad[] = {
        "clcl-tuning 1\ngemm 0 0 96 two 70\n",
        "not a tuning file\n",
        "clcl-tuning 1\ndevice some-other-device\n",
        "clcl-tuning 1\ngemm 0 0 8 8 8 8 8 8 1 own 3 5 3 2 2 1 4 -1 -1 auto\n", /* vw 5 */
        "",
    };

    clcl_log_set_sink(count_warnings, NULL);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(path, bad[i]);
        warnings = 0;
        cr_assert_eq(clcl_tuning_reload(ctx), CLCL_OK, "%s", clcl_last_error());
        cr_expect_eq(warnings, 1, "file %zu: expected one warning", i);
        cr_expect_not_null(strstr(last_warning, path), "warning without the path: %s",
                           last_warning);
        clcl_tuning_summary s = summary(ctx);
        cr_expect_eq(s.file_ignored, 1, "file %zu not reported as ignored", i);
        cr_expect_eq(s.gemm_from_file, 0);
    }

    /* The product still runs (and is measured), and the file is replaced by a valid one. */
    cr_assert_eq(product(ctx, 0, 0, 8, 8, 8, 1.0f, 9), CLCL_OK, "%s", clcl_last_error());
    clcl_log_set_sink(NULL, NULL);
    cr_assert_eq(clcl_tuning_reload(ctx), CLCL_OK, "%s", clcl_last_error());
    clcl_tuning_summary s = summary(ctx);
    cr_expect_eq(s.file_ignored, 0);
    cr_expect_eq(s.gemm_from_file, 1);
    clcl_context_free(ctx);
}

Test(tuning, clcl_gemm_env_forces_a_backend) {
    clcl_context *ctx = test_context();
    const char *path = fresh_file(ctx, "tuning_force");

    /* Forced: right results, no measurement, no file. */
    setenv("CLCL_GEMM", "own", 1);
    int builds = clcl_context_builds(ctx);
    cr_assert_eq(product(ctx, 1, 1, 37, 29, 53, 0.5f, 10), CLCL_OK, "%s", clcl_last_error());
    cr_expect_gt(clcl_context_builds(ctx), builds, "CLCL_GEMM=own did not run our kernel");
    setenv("CLCL_GEMM", "clblast", 1);
    builds = clcl_context_builds(ctx);
    cr_assert_eq(product(ctx, 0, 1, 37, 29, 53, 0.0f, 11), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(clcl_context_builds(ctx), builds, "CLCL_GEMM=clblast built our kernel");
    clcl_tuning_summary s = summary(ctx);
    cr_expect_str_eq(s.gemm_mode, "clblast");
    cr_expect_eq(s.gemm_measured, 0);
    cr_expect_null(fopen(path, "r"), "a forced backend wrote the tuning file");

    /* Anything else is refused, naming the variable. */
    setenv("CLCL_GEMM", "fastest", 1);
    cr_expect_eq(product(ctx, 0, 0, 4, 4, 4, 0.0f, 12), CLCL_ERR_ARGUMENT);
    cr_expect_not_null(strstr(clcl_last_error(), "CLCL_GEMM=fastest"), "%s", clcl_last_error());
    unsetenv("CLCL_GEMM");
    clcl_context_free(ctx);
}

Test(tuning, no_cache_directory_keeps_decisions_in_memory) {
    clcl_context *ctx = test_context();
    char path[1024];

    unsetenv("CLCL_TUNING_FILE");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", test_temp_dir("tuning_home"), 1);
    cr_assert_eq(clcl_tuning_path(ctx, path, sizeof path), CLCL_OK, "%s", clcl_last_error());
    cr_expect_not_null(strstr(path, "/.cache/clcl/tuning-"), "%s", path);
    cr_expect_null(strchr(strstr(path, "tuning-"), ' '), "unsanitised name in %s", path);

    unsetenv("HOME");
    cr_assert_eq(clcl_tuning_reload(ctx), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(product(ctx, 0, 0, 9, 10, 11, 0.0f, 13), CLCL_OK, "%s", clcl_last_error());
    clcl_tuning_summary s = summary(ctx);
    cr_expect_str_eq(s.path, "");
    cr_expect_eq(s.gemm_measured, 1);
    clcl_context_free(ctx);
}

Test(tuning, a_record_another_process_wrote_first_wins) {
    clcl_context *ctx = test_context();
    const char *path = fresh_file(ctx, "tuning_race");
    char text[4096];
    const char *theirs =
        "gemm 0 0 40 50 60 60 50 50 1 clblast 6 8 2 3 3 1 16 -1.0000 -1.0000 auto\n";

    /* We hold the file without the shape; another process then adds its decision. */
    cr_assert_eq(product(ctx, 0, 0, 8, 8, 8, 0.0f, 14), CLCL_OK, "%s", clcl_last_error());
    snprintf(text, sizeof text, "%s%s", slurp(path), theirs);
    write_text(path, text);

    /* Our measurement of that shape yields to theirs, in memory and in the file. */
    cr_assert_eq(product(ctx, 0, 0, 40, 50, 60, 1.0f, 15), CLCL_OK, "%s", clcl_last_error());
    cr_expect_not_null(strstr(slurp(path), theirs), "their record was replaced:\n%s", slurp(path));
    clcl_tuning_summary s = summary(ctx);
    cr_expect_eq(s.gemm_measured + s.gemm_from_file, 2);
    int own_8 = strstr(slurp(path), "gemm 0 0 8 8 8 8 8 8 1 own") != NULL;
    cr_expect_eq(s.gemm_own, own_8, "the adopted decision is not CLBlast");
    clcl_context_free(ctx);
}

/* CLCL_LOSS_AUTO: measured once per (2N, d), kept, and a stored decision is applied. */
static void loss_impl_of(clcl_context *ctx, int n2, int d, char *buf, size_t size) {
    clcl_loss *loss;
    clcl_loss_config cfg = {.impl = CLCL_LOSS_AUTO};
    cr_assert_eq(clcl_loss_create(ctx, n2, d, &cfg, &loss), CLCL_OK, "%s", clcl_last_error());
    clcl_loss_describe(loss, buf, size);
    clcl_loss_free(loss);
}

Test(tuning, loss_auto_is_measured_once_and_kept) {
    clcl_context *ctx = test_context();
    const char *path = fresh_file(ctx, "tuning_loss");
    char first[256], again[256], text[4096];

    loss_impl_of(ctx, 64, 24, first, sizeof first);
    clcl_tuning_summary s = summary(ctx);
    cr_expect_eq(s.loss_measured, 1);
    const char *rec = strstr(slurp(path), "loss 64 24 ");
    cr_assert_not_null(rec, "no loss record in\n%s", slurp(path));
    /* the record's word and the description name the same implementation */
    static const char *words[3][2] = {
        {"fused-rows ", "fused rows"}, {"fused ", "fused, tiles"}, {"unfused ", "unfused"}};
    int named = 0;
    for (int w = 0; w < 3; w++) {
        if (strncmp(rec + strlen("loss 64 24 "), words[w][0], strlen(words[w][0])) == 0) {
            named = 1;
            cr_expect_eq(strncmp(first, words[w][1], strlen(words[w][1])), 0,
                         "%s against the record %.60s", first, rec);
        }
    }
    cr_expect(named, "unknown implementation in the record %.60s", rec);

    /* Reloaded: taken from the file, the same choice. */
    cr_assert_eq(clcl_tuning_reload(ctx), CLCL_OK, "%s", clcl_last_error());
    loss_impl_of(ctx, 64, 24, again, sizeof again);
    s = summary(ctx);
    cr_expect_eq(s.loss_from_file, 1);
    cr_expect_eq(s.loss_measured, 0);
    cr_expect_str_eq(again, first);

    /* A stored decision is applied as it is. */
    snprintf(text, sizeof text,
             "%sloss 32 8 unfused -1 -1 -1\nloss 34 8 fused -1 -1 -1\n"
             "loss 36 8 fused-rows -1 -1 -1\nloss 38 8 unfused -1 -1\n",
             slurp(path));
    write_text(path, text);
    cr_assert_eq(clcl_tuning_reload(ctx), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(summary(ctx).file_ignored, 0, "the file was refused");
    loss_impl_of(ctx, 32, 8, again, sizeof again);
    cr_expect_eq(strncmp(again, "unfused", 7), 0, "%s", again);
    loss_impl_of(ctx, 34, 8, again, sizeof again);
    cr_expect_eq(strncmp(again, "fused, tiles", 12), 0, "%s", again);
    loss_impl_of(ctx, 36, 8, again, sizeof again);
    cr_expect_eq(strncmp(again, "fused rows", 10), 0, "%s", again);
    cr_expect_eq(summary(ctx).loss_measured, 0);

    /* A record of the older form (no row-block time) is measured again and rewritten. */
    loss_impl_of(ctx, 38, 8, again, sizeof again);
    cr_expect_eq(summary(ctx).loss_measured, 1);
    cr_expect_null(strstr(slurp(path), "loss 38 8 unfused -1 -1\n"), "%s", slurp(path));
    cr_expect_not_null(strstr(slurp(path), "loss 38 8 "), "%s", slurp(path));
    clcl_context_free(ctx);
}

/* `clcl tune` on a tiny model: every product found is tuned and stored, and a second run
 * resumes (nothing left to tune, the file unchanged). */
static int count_of(const char *text, const char *what) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)); p++)
        n++;
    return n;
}

Test(tuning, tune_command_stores_every_shape_and_resumes) {
    clcl_context *ctx = test_context();
    const char *path = fresh_file(ctx, "tuning_cmd");
    char *argv[] = {"--width",    "0.125", "--batch-size",  "2", "--input", "16x16x1",
                    "--knn-bank", "64",    "--knn-queries", "8", NULL};
    int argc = (int)(sizeof argv / sizeof argv[0]) - 1;
    static char first[1 << 16];

    cr_assert_eq(clcl_cmd_tune(argc, argv), 0, "%s", clcl_last_error());
    snprintf(first, sizeof first, "%s", slurp(path));
    int tuned = count_of(first, " tuned\n"), records = count_of(first, "\ngemm ");
    /* 20 convolutions' three products (fewer distinct shapes), the head's, kNN's */
    cr_expect_geq(tuned, 20, "only %d tuned records:\n%s", tuned, first);
    cr_expect_eq(tuned, records, "untuned records left:\n%s", first);
    cr_expect_eq(count_of(first, "\nloss 4 128 "), 1, "no loss record:\n%s", first);

    cr_assert_eq(clcl_cmd_tune(argc, argv), 0, "%s", clcl_last_error());
    cr_expect_str_eq(slurp(path), first, "the second run changed the file");
    clcl_context_free(ctx);
}

/* Many records (the index grows several times); each is found without measuring. */
Test(tuning, many_records_are_all_found) {
    clcl_context *ctx = test_context();
    const char *path = fresh_file(ctx, "tuning_many");
    char head[512];
    static char text[1 << 16];

    cr_assert_eq(product(ctx, 0, 0, 8, 8, 8, 0.0f, 16), CLCL_OK, "%s", clcl_last_error());
    header_of(path, head, sizeof head);
    size_t used = (size_t)snprintf(text, sizeof text, "%s", head);
    for (int m = 1; m <= 600; m++)
        used += (size_t)snprintf(text + used, sizeof text - used,
                                 "gemm 0 0 %d 8 8 8 8 8 1 clblast 6 8 2 3 3 1 16 -1 -1 auto\n", m);
    cr_assert_lt(used, sizeof text);
    write_text(path, text);
    cr_assert_eq(clcl_tuning_reload(ctx), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(summary(ctx).gemm_from_file, 600);
    for (int m = 1; m <= 600; m += 53)
        cr_assert_eq(product(ctx, 0, 0, m, 8, 8, 1.0f, 17 + m), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(summary(ctx).gemm_measured, 0, "a stored shape was measured again");
    cr_expect_eq(summary(ctx).gemm_own, 0);
    clcl_context_free(ctx);
}
