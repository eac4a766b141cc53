/* `clcl check` in-process: every row passes on the devices found (two under the CTest entry
 * test_check_two_devices, which sets POCL_DEVICES="pthread basic", and then the training
 * step is compared between them); a deliberately broken kernel fails with a readable row
 * and exit status 1; a device too small for a kernel gives error rows, not a crash; the
 * JSON report; the command line. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "cli.h"
#include "clcl/check.h"
#include "support.h"

/* Under AddressSanitizer: the blur rows run clFFT, which frees its plan actions with a size
 * that does not match their allocation and keeps program code past clfftTeardown (inside
 * clFFT, as tests/test_augment.c says); ignore those two reports. Unused in other builds. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) {
    return "new_delete_type_mismatch=0";
}

const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void) {
    return "leak:libclFFT.so\n";
}

/* Runs the check with `only` (NULL: everything) into a report, its table into `table` (a
 * malloc'ed string, may be NULL). */
static clcl_check_report *run_check(const char *only, char **table) {
    char *buf = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&buf, &size);
    cr_assert_not_null(out);
    clcl_check_config cfg = {.only = only, .out = out};
    clcl_check_report *r = NULL;
    clcl_status st = clcl_check_run(&cfg, &r);
    fclose(out);
    cr_assert_eq(st, CLCL_OK, "%s", clcl_last_error());
    if (table)
        *table = buf;
    else
        free(buf);
    return r;
}

static const clcl_check_row *find_row(const clcl_check_device *d, const char *name) {
    for (int i = 0; i < d->n_rows; i++)
        if (strcmp(d->rows[i].name, name) == 0)
            return &d->rows[i];
    return NULL;
}

/* Rows every device must have: one per family at least. */
static const char *const EXPECTED[] = {
    "tensor fill, axpy, scale",
    "gemm clblast NN 37x29x43",
    "gemm own TT 33x17x1",
    "conv2d 3x3 s2 p1 backward weights",
    "conv2d 7x7 s2 p3 forward",
    "batchnorm2d train",
    "batchnorm1d backward",
    "relu forward",
    "add",
    "maxpool backward",
    "avgpool forward",
    "linear backward",
    "loss fused attract: dL/dh",
    "loss unfused eliminate cap 3: value",
    "augment views with blur",
    "blur fft",
    "knn top-1, top-5",
    "linear probe: loss",
    "optim lars, momentum",
    "step: loss vs C, own projections",
    "step: second pass, same bits",
    "step: grad vs differences, random dir",
    "step: LARS update vs C",
};

/* The number of devices POCL_DEVICES asks for (0 when unset). */
static int pocl_devices(void) {
    const char *env = getenv("POCL_DEVICES");
    int n = 0;
    for (const char *p = env; p && *p;) {
        p += strspn(p, " ");
        if (*p)
            n++;
        p += strcspn(p, " ");
    }
    return n;
}

static void expect_all_pass(const clcl_check_device *d) {
    for (int i = 0; i < d->n_rows; i++) {
        const clcl_check_row *row = &d->rows[i];
        cr_expect_eq(row->result, CLCL_CHECK_PASS, "device %d, %s: %s (max abs %g, note %s)",
                     d->index, row->name, row->result == CLCL_CHECK_FAIL ? "FAIL" : "ERROR",
                     row->max_abs, row->note);
        cr_expect(row->count > 0, "%s compared nothing", row->name);
        cr_expect(row->worst_share <= 1.0, "%s: worst share %g", row->name, row->worst_share);
    }
}

Test(check, every_row_passes_on_every_device_and_the_step_agrees_between_them) {
    char *table;
    clcl_check_report *r = run_check(NULL, &table);
    cr_assert_geq(r->n_devices, 1);
    cr_expect(clcl_check_passed(r), "the check failed:\n%s", table);
    if (pocl_devices() >= 2)
        cr_assert_geq(r->n_devices, 2, "POCL_DEVICES asks for two devices");

    for (int k = 0; k < r->n_devices; k++) {
        const clcl_check_device *d = &r->devices[k];
        expect_all_pass(d);
        cr_expect_geq(d->n_adaptations, 6, "what the device lacks is reported");
        for (size_t i = 0; i < sizeof EXPECTED / sizeof *EXPECTED; i++)
            cr_expect_not_null(find_row(d, EXPECTED[i]), "device %d has no row '%s'", d->index,
                               EXPECTED[i]);
        cr_expect(strstr(table, d->name), "the table names device %d", d->index);
    }

    /* The first device is the others' baseline: each of them has the comparison rows. */
    cr_expect_eq(r->baseline, r->devices[0].index);
    cr_expect(r->step_theta > 0 && r->step_theta < 1, "theta %g", r->step_theta);
    for (int k = 1; k < r->n_devices; k++) {
        char name[64];
        snprintf(name, sizeof name, "step vs %d: projections", r->baseline);
        cr_expect_not_null(find_row(&r->devices[k], name), "device %d lacks '%s'", k, name);
        snprintf(name, sizeof name, "step vs %d: grad layer4.1.conv2.weight", r->baseline);
        cr_expect_not_null(find_row(&r->devices[k], name), "device %d lacks '%s'", k, name);
    }
    cr_expect(strstr(table, "clcl check: PASS"), "%s", table);
    free(table);
    clcl_check_report_free(r);
}

Test(check, a_broken_kernel_fails_with_a_readable_row_and_exit_status_1) {
    setenv("CLCL_CHECK_BREAK", "relu", 1); /* this test's process only */
    char *table;
    clcl_check_report *r = run_check("relu", &table);
    cr_assert_geq(r->n_devices, 1);
    cr_expect_not(clcl_check_passed(r));
    cr_expect_str_eq(r->broken, "relu");
    const clcl_check_row *fwd = find_row(&r->devices[0], "relu forward");
    const clcl_check_row *bwd = find_row(&r->devices[0], "relu backward");
    cr_assert_not_null(fwd);
    cr_assert_not_null(bwd);
    cr_expect_eq(fwd->result, CLCL_CHECK_FAIL);
    cr_expect_float_eq(fwd->worst_got, 1.25 * fwd->worst_ref, 1e-6 * fabs(fwd->worst_ref),
                       "the broken kernel scales by 1.25: %g vs %g", fwd->worst_got,
                       fwd->worst_ref);
    cr_expect(strstr(fwd->note, "CLCL_CHECK_BREAK=relu"), "%s", fwd->note);
    cr_expect_eq(bwd->result, CLCL_CHECK_PASS, "only the broken kernel fails");
    cr_expect(strstr(table, "relu forward") && strstr(table, "FAIL") &&
                  strstr(table, "worst: value"),
              "%s", table);
    cr_expect(strstr(table, "clcl check: FAIL"), "%s", table);
    free(table);
    clcl_check_report_free(r);

    char *argv[] = {"--only", "relu forward", "--device", "0"};
    cr_expect_eq(clcl_cmd_check(4, argv), 1, "a failed check exits with 1");
}

Test(check, an_unknown_broken_kernel_is_refused) {
    setenv("CLCL_CHECK_BREAK", "conv", 1);
    clcl_check_report *r = NULL;
    clcl_check_config cfg = {0};
    cr_expect_eq(clcl_check_run(&cfg, &r), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "CLCL_CHECK_BREAK='conv'"), "%s", clcl_last_error());
    cr_expect_null(r);
}

/* 16 bytes of local memory fit no tile of the loss: its rows and the step's are errors with
 * the reason, the other rows still run, and the verdict is a failure. */
Test(check, a_device_too_small_for_a_kernel_gives_error_rows_not_a_crash) {
    setenv("CLCL_MAX_LOCAL_MEM", "16", 1);
    char *table;
    clcl_check_report *r = run_check("loss fused attract", &table);
    const clcl_check_device *d = &r->devices[0];
    cr_assert_eq(d->n_rows, 2, "%s", table);
    for (int i = 0; i < d->n_rows; i++) {
        cr_expect_eq(d->rows[i].result, CLCL_CHECK_ERROR);
        cr_expect(strstr(d->rows[i].note, "no work-group size fits"), "%s", d->rows[i].note);
    }
    cr_expect(strstr(table, "16 bytes (device"), "the cap is reported:\n%s", table);
    cr_expect_not(clcl_check_passed(r));
    clcl_check_report_free(r);
    free(table);

    r = run_check("step", NULL);
    cr_expect_eq(r->devices[0].n_rows, 1);
    cr_expect_str_eq(r->devices[0].rows[0].name, "step: set-up");
    cr_expect_eq(r->devices[0].rows[0].result, CLCL_CHECK_ERROR);
    clcl_check_report_free(r);
}

/* Smaller than any GPU: the loss shrinks its tiles, every other launch its groups. */
Test(check, passes_under_small_gpu_limits) {
    setenv("CLCL_MAX_LOCAL_MEM", "16384", 1);
    setenv("CLCL_MAX_WORK_GROUP", "64", 1);
    char *table;
    clcl_check_report *r = run_check(NULL, &table);
    cr_expect(clcl_check_passed(r), "%s", table);
    for (int k = 0; k < r->n_devices; k++)
        expect_all_pass(&r->devices[k]);
    cr_expect(strstr(table, "16 KiB (device"), "%s", table);
    cr_expect(strstr(table, "work-group 64"), "the loss's tiles follow the cap:\n%s", table);
    free(table);
    clcl_check_report_free(r);
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = calloc((size_t)n + 1, 1);
    cr_assert_eq(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return text;
}

Test(check, the_json_report_holds_every_device_and_row) {
    char path[600], tmp[620];
    snprintf(path, sizeof path, "%s/check.json", test_temp_dir("check"));
    clcl_check_report *r = run_check("gemm", NULL);
    cr_assert_eq(clcl_check_write_json(r, path), CLCL_OK, "%s", clcl_last_error());
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    struct stat sb;
    cr_expect_neq(stat(tmp, &sb), 0, "no temporary file is left behind");

    char *json = read_text(path);
    cr_expect(strstr(json, "\"clcl_check\": 1"), "%s", json);
    cr_expect(strstr(json, "\"passed\": true"), "%s", json);
    cr_expect(strstr(json, "\"check\": \"gemm own NT 64x1x130\", \"result\": \"pass\""), "%s",
              json);
    cr_expect(strstr(json, "\"adaptations\": [\"fp64 "), "%s", json);
    for (int k = 0; k < r->n_devices; k++)
        cr_expect(strstr(json, r->devices[k].name), "%s", r->devices[k].name);
    int depth = 0, rows = 0;
    for (const char *p = json; *p; p++) {
        depth += (*p == '{' || *p == '[') - (*p == '}' || *p == ']');
        rows += strncmp(p, "\"check\": ", 9) == 0;
    }
    cr_expect_eq(depth, 0, "brackets balance");
    cr_expect_eq(rows, 8 * r->n_devices, "eight GEMM rows per device");
    free(json);
    clcl_check_report_free(r);
}

Test(check, the_command_line) {
    char *help[] = {"--help"};
    cr_expect_eq(clcl_cmd_check(1, help), 0);
    char *bad[] = {"--bogus"};
    cr_expect_eq(clcl_cmd_check(1, bad), 2, "an unknown flag is a usage error");
    char *missing[] = {"--json"};
    cr_expect_eq(clcl_cmd_check(1, missing), 2, "a flag without its value");
    char *nodev[] = {"--device", "no-such-device-anywhere"};
    cr_expect_eq(clcl_cmd_check(2, nodev), 2, "a device that does not exist is a usage error");
    cr_expect(strstr(clcl_last_error(), "no-such-device-anywhere"), "%s", clcl_last_error());
    char *dir_json[] = {"--only", "avgpool", "--json", (char *)test_temp_dir("check-json-dir")};
    cr_expect_eq(clcl_cmd_check(4, dir_json), 2, "a directory as --json is refused before the run");

    char path[600];
    snprintf(path, sizeof path, "%s/report.json", test_temp_dir("check-cli"));
    char *ok[] = {"--device", "0", "--only", "avgpool", "--json", path};
    cr_expect_eq(clcl_cmd_check(6, ok), 0);
    char *json = read_text(path);
    cr_expect(strstr(json, "\"check\": \"avgpool backward\""), "%s", json);
    free(json);
}
