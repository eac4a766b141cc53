/* The seeded generator: its first values against an independent Python version
 * (tests/gen_model_golden.py writes them to tests/data/model_init.safetensors), and its
 * distributions, roughly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clcl/rng.h"
#include "clcl/safetensors.h"
#include "support.h"

static clcl_safetensors *reference(void) {
    char path[1024];
    const char *dir = getenv("CLCL_TEST_DATA");
    cr_assert(dir, "CLCL_TEST_DATA is not set (ctest sets it to tests/data)");
    snprintf(path, sizeof path, "%s/model_init.safetensors", dir);
    clcl_safetensors *st;
    cr_assert_eq(clcl_safetensors_read(path, &st), CLCL_OK, "%s", clcl_last_error());
    const char *format = clcl_safetensors_metadata(st, "format");
    cr_assert(format && !strcmp(format, "clcl-golden"), "%s is not a clcl golden file", path);
    cr_assert_str_eq(clcl_safetensors_metadata(st, "version"), "1");
    return st;
}

static const int64_t *i64s(const clcl_safetensors *st, const char *name, size_t count) {
    const clcl_safetensors_entry *e = clcl_safetensors_find(st, name);
    cr_assert_not_null(e, "no '%s' in the reference", name);
    cr_assert_eq(e->dtype, CLCL_DTYPE_I64);
    cr_assert_eq(e->count, count, "'%s' holds %zu values", name, e->count);
    return e->data;
}

static uint64_t bits_of(double v) {
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

Test(rng, first_values_match_an_independent_implementation) {
    clcl_safetensors *st = reference();
    clcl_rng r;
    const int64_t *want = i64s(st, "rng.seed42.u64", 8);
    clcl_rng_seed(&r, 42);
    for (int i = 0; i < 8; i++)
        cr_expect_eq(clcl_rng_u64(&r), (uint64_t)want[i], "seed 42, value %d", i);

    want = i64s(st, "rng.seed42.stream7.u64", 4);
    clcl_rng_seed_stream(&r, 42, 7);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(clcl_rng_u64(&r), (uint64_t)want[i], "seed 42 stream 7, value %d", i);

    /* Uniforms bit for bit; normals through log and cos, to 1e-15. */
    want = i64s(st, "rng.seed1.uniform_bits", 4);
    const int64_t *normals = i64s(st, "rng.seed1.then_normal_bits", 4);
    clcl_rng_seed(&r, 1);
    for (int i = 0; i < 4; i++)
        cr_expect_eq(bits_of(clcl_rng_uniform(&r)), (uint64_t)want[i], "uniform %d", i);
    for (int i = 0; i < 4; i++) {
        double ref;
        memcpy(&ref, &normals[i], sizeof ref);
        double got = clcl_rng_normal(&r);
        cr_expect(fabs(got - ref) <= 1e-15 * (1 + fabs(ref)), "normal %d: %.17g vs %.17g", i, got,
                  ref);
    }

    want = i64s(st, "rng.seed3.below10", 16);
    clcl_rng_seed(&r, 3);
    for (int i = 0; i < 16; i++)
        cr_expect_eq(clcl_rng_below(&r, 10), (uint64_t)want[i], "below(10) %d", i);

    want = i64s(st, "rng.seed5.shuffle10", 10);
    int idx[10];
    for (int i = 0; i < 10; i++)
        idx[i] = i;
    clcl_rng_seed(&r, 5);
    clcl_rng_shuffle(&r, idx, 10);
    for (int i = 0; i < 10; i++)
        cr_expect_eq(idx[i], want[i], "shuffle position %d", i);
    clcl_safetensors_free(st);
}

Test(rng, state_alone_fixes_the_stream) {
    clcl_rng a, b;
    clcl_rng_seed(&a, 99);
    for (int i = 0; i < 5; i++)
        clcl_rng_normal(&a);
    b = a; /* a copy of the state, as a checkpoint keeps it */
    for (int i = 0; i < 100; i++)
        cr_assert_eq(bits_of(clcl_rng_normal(&a)), bits_of(clcl_rng_normal(&b)));

    clcl_rng c, d;
    clcl_rng_seed_stream(&c, 99, 0);
    clcl_rng_seed_stream(&d, 99, 1);
    int same = 0;
    for (int i = 0; i < 64; i++)
        same += clcl_rng_u64(&c) == clcl_rng_u64(&d);
    cr_expect_eq(same, 0, "streams 0 and 1 of one seed agree");
}

Test(rng, distributions_are_roughly_right) {
    clcl_rng r;
    const int n = 400000;
    double su = 0, su2 = 0, sn = 0, sn2 = 0, lo = 1, hi = 0;
    int within1 = 0, counts[7] = {0};
    clcl_rng_seed(&r, 2024);
    for (int i = 0; i < n; i++) {
        double u = clcl_rng_uniform(&r), z = clcl_rng_normal(&r);
        su += u;
        su2 += u * u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        sn += z;
        sn2 += z * z;
        within1 += fabs(z) < 1.0;
        counts[clcl_rng_below(&r, 7)]++;
    }
    /* Bounds are about five standard errors. */
    cr_expect(fabs(su / n - 0.5) < 5 * sqrt(1.0 / 12 / n), "uniform mean %g", su / n);
    cr_expect(fabs(su2 / n - su * su / n / n - 1.0 / 12) < 0.002, "uniform variance");
    cr_expect(lo >= 0.0 && hi < 1.0 && lo < 1e-4 && hi > 1 - 1e-4, "uniform range [%g, %g]", lo,
              hi);
    cr_expect(fabs(sn / n) < 5 / sqrt(n), "normal mean %g", sn / n);
    cr_expect(fabs(sn2 / n - 1.0) < 5 * sqrt(2.0 / n), "normal variance %g", sn2 / n);
    cr_expect(fabs((double)within1 / n - 0.682689) < 0.004, "P(|z| < 1) = %g", (double)within1 / n);
    double chi2 = 0;
    for (int k = 0; k < 7; k++)
        chi2 += (counts[k] - n / 7.0) * (counts[k] - n / 7.0) / (n / 7.0);
    cr_expect(chi2 < 22.5, "below(7): chi-square %g with 6 degrees of freedom", chi2);

    double u = clcl_rng_range(&r, -3.0, -2.5);
    cr_expect(u >= -3.0 && u < -2.5);
}

Test(rng, shuffle_is_a_permutation) {
    clcl_rng r;
    int idx[1000], seen[1000] = {0}, moved = 0;
    for (int i = 0; i < 1000; i++)
        idx[i] = i;
    clcl_rng_seed(&r, 8);
    clcl_rng_shuffle(&r, idx, 1000);
    for (int i = 0; i < 1000; i++) {
        cr_assert(idx[i] >= 0 && idx[i] < 1000);
        seen[idx[i]]++;
        moved += idx[i] != i;
    }
    for (int i = 0; i < 1000; i++)
        cr_expect_eq(seen[i], 1);
    cr_expect_gt(moved, 950);
}
