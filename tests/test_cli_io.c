/* The trainer's plumbing: flags, atomic files, the metrics log and its curves. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "clcl/fileio.h"
#include "flags.h"
#include "metrics.h"
#include "support.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    s[fread(s, 1, (size_t)n, f)] = '\0';
    fclose(f);
    return s;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

typedef struct {
    int batch;
    double lr;
    const char *opt, *out;
    int verbose;
    clcl_flag flags[5];
} flag_fixture;

static void fixture(flag_fixture *f) {
    f->batch = 256;
    f->lr = 0.3;
    f->opt = "sgd";
    f->out = "runs/x";
    f->verbose = 0;
    clcl_flag flags[] = {
        {"batch-size", CLCL_FLAG_INT, &f->batch, "images per step", NULL, 0},
        {"lr", CLCL_FLAG_DOUBLE, &f->lr, "learning rate", NULL, 0},
        {"optimizer", CLCL_FLAG_CHOICE, &f->opt, "optimizer", "sgd|lars", 0},
        {"out", CLCL_FLAG_STRING, &f->out, "output directory", NULL, 0},
        {"verbose", CLCL_FLAG_SWITCH, &f->verbose, "say more", NULL, 0},
    };
    memcpy(f->flags, flags, sizeof flags);
}

Test(flags, parses_every_form) {
    flag_fixture f;
    fixture(&f);
    char *argv[] = {"--batch-size", "64", "--lr=0.05", "--optimizer", "lars", "--verbose"};
    cr_assert_eq(clcl_flags_parse("train", f.flags, 5, 6, argv), 0);
    cr_expect_eq(f.batch, 64);
    cr_expect_float_eq(f.lr, 0.05, 1e-15);
    cr_expect_str_eq(f.opt, "lars");
    cr_expect_eq(f.verbose, 1);
    cr_expect_str_eq(f.out, "runs/x", "untouched flags keep their defaults");
    cr_expect(f.flags[0].given && f.flags[1].given && !f.flags[3].given);
}

Test(flags, bad_input_names_the_flag_and_what_was_expected, .init = cr_redirect_stderr) {
    flag_fixture f;
    fixture(&f);
    char *a1[] = {"--batch-size", "sixty"};
    cr_expect_eq(clcl_flags_parse("train", f.flags, 5, 2, a1), 2);
    char *a2[] = {"--optimizer", "adam"};
    cr_expect_eq(clcl_flags_parse("train", f.flags, 5, 2, a2), 2);
    char *a3[] = {"--no-such-flag", "1"};
    cr_expect_eq(clcl_flags_parse("train", f.flags, 5, 2, a3), 2);
    char *a4[] = {"--lr"};
    cr_expect_eq(clcl_flags_parse("train", f.flags, 5, 1, a4), 2);
    char *a5[] = {"--lr", "nan"};
    cr_expect_eq(clcl_flags_parse("train", f.flags, 5, 2, a5), 2);
    char *a6[] = {"--batch-size", "99999999999"};
    cr_expect_eq(clcl_flags_parse("train", f.flags, 5, 2, a6), 2);
    char *a7[] = {"--lr=1e999"};
    cr_expect_eq(clcl_flags_parse("train", f.flags, 5, 1, a7), 2);
    cr_expect_eq(f.batch, 256, "a refused value leaves the default");
    fflush(stderr);
    cr_expect_stderr_eq_str("clcl train: --batch-size 'sixty': expected an integer\n"
                            "clcl train: --optimizer 'adam': expected sgd|lars\n"
                            "clcl train: unknown flag '--no-such-flag' (see `clcl train --help`)\n"
                            "clcl train: --lr needs a number\n"
                            "clcl train: --lr 'nan': expected a number\n"
                            "clcl train: --batch-size '99999999999': out of range for an integer\n"
                            "clcl train: --lr '1e999': out of range for a number\n");
}

Test(flags, help_lists_every_flag_with_its_default, .init = cr_redirect_stdout) {
    flag_fixture f;
    fixture(&f);
    char *argv[] = {"--help"};
    cr_assert_eq(clcl_flags_parse("train", f.flags, 5, 1, argv), 1);
    clcl_flags_usage(stdout, "train", "Trains.", f.flags, 5);
    fflush(stdout);
    char *text = test_read_all(cr_get_redirected_stdout());
    cr_expect(strstr(text, "--batch-size V") && strstr(text, "(default 256)"), "%s", text);
    cr_expect(strstr(text, "--optimizer sgd|lars") && strstr(text, "(default sgd)"), "%s", text);
    cr_expect(strstr(text, "(default 0.3)") && strstr(text, "(default runs/x)"), "%s", text);
    free(text);
}

Test(fileio, commit_replaces_and_abort_keeps_the_old_file) {
    char path[600];
    snprintf(path, sizeof path, "%s/state.bin", test_temp_dir("atomic"));
    cr_assert_eq(clcl_write_file_atomic(path, "first", 5), CLCL_OK, "%s", clcl_last_error());

    clcl_atomic_file af;
    cr_assert_eq(clcl_atomic_open(&af, path), CLCL_OK);
    fputs("half-written", af.file);
    fflush(af.file);
    char *during = slurp(path);
    cr_expect_str_eq(during, "first", "the old contents stay until the commit");
    clcl_atomic_abort(&af);
    char *after_abort = slurp(path);
    cr_expect_str_eq(after_abort, "first");
    char tmp[640];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_expect_null(fopen(tmp, "r"), "the temporary file is gone");

    cr_assert_eq(clcl_write_file_atomic(path, "second", 6), CLCL_OK);
    char *after = slurp(path);
    cr_expect_str_eq(after, "second");
    free(during), free(after_abort), free(after);
}

Test(fileio, make_dirs_creates_parents_and_refuses_a_file) {
    char dir[600], file[600], below[700];
    const char *root = test_temp_dir("dirs");
    snprintf(dir, sizeof dir, "%s/a/b/c", root);
    cr_assert_eq(clcl_make_dirs(dir), CLCL_OK, "%s", clcl_last_error());
    struct stat sb;
    cr_expect(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode));
    cr_expect_eq(clcl_make_dirs(dir), CLCL_OK, "an existing directory is fine");

    snprintf(file, sizeof file, "%s/plain", root);
    cr_assert_eq(clcl_write_file_atomic(file, "x", 1), CLCL_OK);
    snprintf(below, sizeof below, "%s/out", file);
    cr_expect_eq(clcl_make_dirs(below), CLCL_ERR_IO);
    cr_expect(strstr(clcl_last_error(), file), "%s", clcl_last_error());
}

static clcl_step_record step_record(long step) {
    return (clcl_step_record){.epoch = (int)(step - 1) / 10 + 1,
                              .step = step,
                              .loss = 5.0 / step,
                              .tau = 0.2 + 0.01 * step,
                              .theta = step < 5 ? 2.0 : 0.9,
                              .pseudo = 0.5 * step,
                              .precision = step < 5 ? NAN : 0.6,
                              .recall = 0.1,
                              .lr = 0.3,
                              .images_per_s = 100};
}

Test(metrics, log_resumes_without_the_interrupted_tail) {
    const char *dir = test_temp_dir("metrics");
    clcl_metrics *m;
    cr_assert_eq(clcl_metrics_open(dir, 0, 0, &m), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_metrics_epoch(m, &(clcl_epoch_record){0, 0, NAN, 0.67, 0.9, 0}), CLCL_OK);
    for (long s = 1; s <= 25; s++) {
        clcl_step_record r = step_record(s);
        cr_assert_eq(clcl_metrics_step(m, &r), CLCL_OK);
        if (s % 10 == 0)
            cr_assert_eq(
                clcl_metrics_epoch(m, &(clcl_epoch_record){(int)s / 10, s, 1.0, 0.7, 0.95, 12.5}),
                CLCL_OK);
    }
    clcl_metrics_close(m);

    /* the run stopped after step 25; the last checkpoint was at step 20 */
    cr_assert_eq(clcl_metrics_open(dir, 1, 20, &m), CLCL_OK, "%s", clcl_last_error());
    clcl_step_record r = step_record(21);
    cr_assert_eq(clcl_metrics_step(m, &r), CLCL_OK);
    cr_assert_eq(clcl_metrics_plot(m), CLCL_OK, "%s", clcl_last_error());
    clcl_metrics_close(m);

    char path[700];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    char *log = slurp(path);
    cr_expect_eq(count(log, "\"type\":\"step\""), 21, "%s", log);
    cr_expect_eq(count(log, "\"type\":\"epoch\""), 3);
    cr_expect_eq(count(log, "\"step\":21,"), 1, "step 21 logged once, not twice");
    cr_expect(strstr(log, "\"fn_precision\":null"), "NaN is written as null");
    cr_expect(strstr(log, "{\"type\":\"step\",\"epoch\":1,\"step\":3,\"loss\":1.66667,"), "%s",
              log);

    snprintf(path, sizeof path, "%s/curves.svg", dir);
    char *svg = slurp(path);
    cr_assert_not_null(svg);
    cr_expect_eq(strncmp(svg, "<svg ", 5), 0);
    cr_expect(strstr(svg, "</svg>\n"));
    cr_expect_geq(count(svg, "<polyline"), 6, "loss, tau, theta, precision, pseudo, kNN");
    cr_expect(strstr(svg, "kNN accuracy") && strstr(svg, "theta (when on)"));
    free(log), free(svg);
}
