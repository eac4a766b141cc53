/* Shared helpers of the test suite. */
#ifndef CLCL_TEST_SUPPORT_H
#define CLCL_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "clcl/runtime.h"

/* A context on the device CLCL_DEVICE names (the first one when unset); aborts the test
 * with the library's message when there is none. */
clcl_context *test_context(void);

/* Asserts |got[i] - ref[i]| <= atol + rtol * |ref[i]| for every i, naming the first
 * element that is off. */
void expect_close(const float *got, const double *ref, size_t n, double atol, double rtol,
                  const char *what);

/* Deterministic pseudo-random numbers for test inputs: the library's splitmix64 stream
 * (clcl_ref_rand_u64, clcl_ref_rand_uniform), which `clcl check` draws from too. */
uint64_t test_rand_u64(uint64_t *state);
float test_rand_uniform(uint64_t *state, float lo, float hi);

/* A fresh directory for files a test writes, below $TMPDIR (or /tmp)/clcl-test-XXXXXX/
 * <suite>.<test>/; returns its path in a static buffer. The runner removes it when the
 * test passes and keeps it, printing its path, when the test fails or crashes. */
const char *test_temp_dir(const char *name);

/* What is left to read of a stream (such as Criterion's redirected stdout or stderr, after
 * the writer's fflush), as a NUL-terminated string to free. */
char *test_read_all(FILE *f);

#endif
