/* Shared helpers of the test suite. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <criterion/criterion.h>

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
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

float test_rand_uniform(uint64_t *state, float lo, float hi) {
    double u = (double)(test_rand_u64(state) >> 11) / 9007199254740992.0;
    return lo + (float)u * (hi - lo);
}

const char *test_temp_dir(const char *name) {
    static char path[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/clcl-test-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    if (!mkdtemp(path))
        cr_assert_fail("cannot create a temporary directory %s", path);
    return path;
}
