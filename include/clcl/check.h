/* `clcl check`: a fixed, seeded piece of work on every OpenCL device, compared with the
 * double-precision C references of include/clcl/reference.h and, for one full training
 * step, between devices (docs/devices.md).
 *
 * Every kernel family runs on small, awkward shapes (sizes that are no multiple of any
 * work-group, offsets, leading dimensions wider than the rows), its outputs filled with NaN
 * beforehand so that a value never written shows. A check that cannot run on a device (a
 * launch it refuses, a limit it lacks) becomes a row saying why; nothing stops the run.
 * (This header is the public one; host/check.h holds the library's private CLCL_TRY.) */
#ifndef CLCL_CHECK_API_H
#define CLCL_CHECK_API_H

#include <stddef.h>
#include <stdio.h>

#include "clcl/status.h"

typedef enum {
    CLCL_CHECK_PASS = 0,
    CLCL_CHECK_FAIL = 1, /* a value outside its tolerance, or not finite */
    CLCL_CHECK_ERROR = 2 /* the check could not run here; the note says why */
} clcl_check_result;

/* One row of a device's table. A value passes when |got - ref| <= atol + rtol |ref|. */
typedef struct {
    char name[64];
    clcl_check_result result;
    size_t count;      /* values compared */
    double max_abs;    /* max |got - ref| */
    double max_rel;    /* max |got - ref| / max(|ref|, atol / rtol) */
    double atol, rtol; /* the stated tolerances */
    size_t worst;      /* the value using most of its tolerance */
    double worst_got, worst_ref;
    double worst_share; /* its |got - ref| / (atol + rtol |ref|): above 1 fails */
    double seconds;     /* wall time, program builds included */
    char note[400];     /* why it failed or could not run; what it found or chose */
} clcl_check_row;

typedef struct {
    int index; /* in clcl_devices_list()'s order */
    char name[128];
    char platform[128];
    const char *type; /* "CPU", "GPU", ... */
    /* What the device lacks or limits and what clcl does about it, one line each. */
    char adaptations[10][200];
    int n_adaptations;
    clcl_check_row *rows;
    int n_rows;
    char tuning[400]; /* what the GEMM and the loss chose by measurement (clcl/tuning.h) */
    int failed;       /* rows that failed or could not run */
    double seconds;
} clcl_check_device;

typedef struct {
    clcl_check_device *devices;
    int n_devices;
    int failed_devices;
    int baseline;       /* the device the others' training steps are compared with; -1: none */
    double step_theta;  /* the step's false-negative threshold, chosen on the baseline */
    const char *broken; /* the kernel CLCL_CHECK_BREAK broke, or NULL */
} clcl_check_report;

typedef struct {
    const char *const *devices; /* choices as --device takes them; n_devices 0: every device */
    int n_devices;
    const char *only; /* run only the rows whose name contains this; NULL: all */
    FILE *out;        /* each device's table as it is made, then the verdict; NULL: quiet */
} clcl_check_config;

/* Runs the check (cfg NULL: every device, quietly). Returns an error only when the devices cannot
 * be listed, a choice names none of them or the host is out of memory; what goes wrong on a device
 * is in its rows. The environment variable CLCL_CHECK_BREAK=relu (for testing the check itself)
 * builds relu_forward with -DCLCL_BREAK=1, which makes it compute a wrong value. */
clcl_status clcl_check_run(const clcl_check_config *cfg, clcl_check_report **out);
void clcl_check_report_free(clcl_check_report *report);

/* 1 when every row of every device passed (and there was at least one row). */
int clcl_check_passed(const clcl_check_report *report);

/* Prints one device's table, or the one-line verdict of the whole report. */
void clcl_check_print_device(FILE *out, const clcl_check_device *dev);
void clcl_check_print_verdict(FILE *out, const clcl_check_report *report);

/* The report as JSON (devices, adaptations, rows), written atomically to `path`. */
clcl_status clcl_check_write_json(const clcl_check_report *report, const char *path);

#endif
