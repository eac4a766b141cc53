/* What the parts of `clcl check` share (host/check_*.c): one device's run, its rows and the
 * helpers that make inputs, poison outputs and compare results. */
#ifndef CLCL_CHECK_PRIVATE_H
#define CLCL_CHECK_PRIVATE_H

#include <stdint.h>

#include "clcl/check.h"
#include "clcl/tensor.h"

/* The training step's results on the first device that completed it. */
typedef struct {
    int device; /* index of that device; -1 until one completed */
    char name[128];
    float theta;
    int n_arrays;
    char names[12][64];
    float *arrays[12];
    size_t counts[12];
} check_baseline;

/* One device's run. Host memory a row takes comes from `arena` and device tensors from
 * `pool`; both are given back after every row, so a failing row leaks nothing. */
typedef struct {
    clcl_context *ctx;
    clcl_pool *pool;
    clcl_check_device *dev;
    clcl_check_report *report;
    check_baseline *base;
    FILE *out;
    const char *only;
    const char *broken; /* CLCL_CHECK_BREAK, or NULL */
    void **arena;
    int n_arena, cap_arena;
    uint64_t rng; /* the current row's input stream, seeded from its name */
} check_env;

/* A check: fills row (count, errors, note) by calling check_compare; a status other than
 * CLCL_OK makes the row an error with the library's message. */
typedef clcl_status (*check_fn)(check_env *e, clcl_check_row *row, const void *arg);

/* Runs fn as the row `name` with tolerances atol, rtol (fn may change them), unless the
 * filter excludes it; times it, prints it and appends it to the device. */
void check_row(check_env *e, const char *name, double atol, double rtol, check_fn fn,
               const void *arg);
/* Gives back the row's host memory and device tensors (check_row does it after each row). */
void check_release(check_env *e);
/* The seed of a row's inputs: FNV-1a of its name, so that they depend on nothing else. */
uint64_t check_seed(const char *name);
/* 1 when the filter lets a row called `name` run. */
int check_wanted(const check_env *e, const char *name);
/* Appends a finished row (the step's rows are made together). */
void check_add_row(check_env *e, const clcl_check_row *row);

/* Host arrays from the row's arena: n floats / doubles / ints / bytes. */
clcl_status check_floats(check_env *e, size_t n, float **out);
clcl_status check_doubles(check_env *e, size_t n, double **out);
clcl_status check_ints(check_env *e, size_t n, int **out);
clcl_status check_bytes(check_env *e, size_t n, uint8_t **out);
/* n pointers to float arrays (for a list of downloads). */
clcl_status check_pointers(check_env *e, size_t n, float ***out);
/* n floats uniform in [lo, hi) from the row's stream. */
clcl_status check_random(check_env *e, size_t n, float lo, float hi, float **out);

/* A tensor from the pool, filled with NaN (so that an element never written fails). */
clcl_status check_tensor(check_env *e, clcl_tensor *t, int ndim, const int *shape);
/* A tensor from the pool holding host's values. */
clcl_status check_upload(check_env *e, clcl_tensor *t, int ndim, const int *shape,
                         const float *host);
/* The tensor's values on the host (arena memory). */
clcl_status check_download(check_env *e, const clcl_tensor *t, float **out);

/* Compares got with ref (n values) under the row's tolerances, adding to its count and
 * errors; a NaN or an infinity fails. */
void check_compare(clcl_check_row *row, const float *got, const double *ref, size_t n);
/* The same with a float reference (another device's result). */
void check_compare_floats(clcl_check_row *row, const float *got, const float *ref, size_t n);
/* Downloads t and compares it with ref (t->count values). */
clcl_status check_compare_tensor(check_env *e, clcl_check_row *row, const clcl_tensor *t,
                                 const double *ref);

/* Appends to the row's note ("; " between parts). */
void check_note(clcl_check_row *row, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The largest |x| of n doubles. */
double check_max_abs(const double *x, size_t n);

/* 1 when CLCL_CHECK_BREAK names this kernel. */
int check_broken(const check_env *e, const char *kernel);

/* The families, each adding its rows (host/check_layers.c, check_method.c, check_step.c). */
void check_layers_rows(check_env *e);
void check_method_rows(check_env *e);
void check_step_rows(check_env *e);
void check_baseline_free(check_baseline *b);

/* Printing (host/check_report.c). */
void check_print_header(FILE *out, const clcl_check_device *dev);
void check_print_row(FILE *out, const clcl_check_row *row);
void check_print_device_verdict(FILE *out, const clcl_check_device *dev);

#endif
