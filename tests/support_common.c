/* Shared helpers of the test suite. */
#define _XOPEN_SOURCE 700 /* nftw */

#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/hooks.h>

#include "clcl/reference.h"
#include "support.h"

clcl_context *test_context(void) {
    clcl_context *ctx = NULL;
    if (clcl_context_create(NULL, &ctx) != CLCL_OK)
        cr_assert_fail("no OpenCL context: %s", clcl_last_error());
    return ctx;
}

void expect_close(const float *got, const double *ref, size_t n, double atol, double rtol,
                  const char *what) {
    size_t bad = 0, first = 0;
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - ref[i]);
        double allowed = atol + rtol * fabs(ref[i]);
        if (!(err <= allowed)) { /* also catches NaN */
            if (bad++ == 0)
                first = i;
            if (err > worst || isnan(err))
                worst = err;
        }
    }
    cr_assert(bad == 0,
              "%s: %zu of %zu elements off (atol %g, rtol %g); first at %zu: got %.9g, "
              "expected %.9g; worst error %g",
              what, bad, n, atol, rtol, first, (double)got[first], ref[first], worst);
}

uint64_t test_rand_u64(uint64_t *state) {
    return clcl_ref_rand_u64(state);
}

float test_rand_uniform(uint64_t *state, float lo, float hi) {
    return clcl_ref_rand_uniform(state, lo, hi);
}

/* ---- temporary directories ----------------------------------------------------------- */

/* Criterion runs each test in a process of its own, started by the runner. The runner
 * makes one root directory per executable and hands it to the tests in this variable; a
 * test's directories go below root/<suite>.<test>, which the runner removes once the test
 * has passed and keeps (naming it) when the test failed or crashed. */
#define TEST_ROOT_ENV "CLCL_TEST_TMP_ROOT"

static char test_root[512];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        fprintf(stderr, "cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

/* Removes path and everything below it; a missing path is fine. */
static void remove_tree(const char *path) {
    nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The directory of one test below the root. */
static void test_dir_of(const char *root, const struct criterion_test *t, char *buf, size_t size) {
    snprintf(buf, size, "%s/%s.%s", root, t->category, t->name);
}

ReportHook(PRE_ALL)(struct criterion_test_set *set) {
    (void)set;
    const char *tmp = getenv("TMPDIR");
    snprintf(test_root, sizeof test_root, "%s/clcl-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(test_root)) {
        fprintf(stderr, "cannot create a temporary directory %s: %s\n", test_root, strerror(errno));
        test_root[0] = '\0';
        return;
    }
    setenv(TEST_ROOT_ENV, test_root, 1);
}

/* After a test: its directory goes if it passed; if it failed, it stays and is named. */
static void test_dir_settle(const struct criterion_test_stats *stats, int failed) {
    char dir[1024];
    struct stat st;

    if (!test_root[0])
        return;
    test_dir_of(test_root, stats->test, dir, sizeof dir);
    if (stat(dir, &st) != 0)
        return;
    if (failed)
        fprintf(stderr, "%s::%s failed; its files are kept in %s\n", stats->test->category,
                stats->test->name, dir);
    else
        remove_tree(dir);
}

ReportHook(POST_TEST)(struct criterion_test_stats *stats) {
    test_dir_settle(stats,
                    stats->test_status == CR_STATUS_FAILED || stats->crashed || stats->timed_out);
}

/* A crashed test gets no POST_TEST. */
ReportHook(TEST_CRASH)(struct criterion_test_stats *stats) {
    test_dir_settle(stats, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats) {
    (void)stats;
    if (test_root[0])
        rmdir(test_root); /* only when empty: a failed test's files stay */
}

const char *test_temp_dir(const char *name) {
    static char path[512];
    const char *root = getenv(TEST_ROOT_ENV);
    char dir[512];

    cr_assert(root && *root, "no temporary root (%s unset: the runner could not make it)",
              TEST_ROOT_ENV);
    test_dir_of(root, criterion_current_test, dir, sizeof dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        cr_assert_fail("cannot create %s: %s", dir, strerror(errno));
    int len = snprintf(path, sizeof path, "%s/%s-XXXXXX", dir, name);
    cr_assert(len > 0 && (size_t)len < sizeof path, "temporary path too long: %s/%s", dir, name);
    if (!mkdtemp(path))
        cr_assert_fail("cannot create a temporary directory %s: %s", path, strerror(errno));
    return path;
}

char *test_read_all(FILE *f) {
    size_t size = 4096, n = 0, got;
    char *text = malloc(size);
    cr_assert_not_null(text);
    while ((got = fread(text + n, 1, size - 1 - n, f)) > 0) {
        n += got;
        if (n + 1 == size) {
            text = realloc(text, size *= 2);
            cr_assert_not_null(text);
        }
    }
    text[n] = '\0';
    return text;
}
