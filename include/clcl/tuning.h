/* Decisions taken by measurement, per device, and kept in a tuning file.
 *
 * clcl_gemm picks its backend (CLBlast or our kernel of cl/gemm.cl, with which tunables)
 * per shape, and the loss picks fused or unfused per (2N, d), the first time each shape
 * is seen: both candidates run once on scratch buffers of that shape, our kernel's result
 * is checked against CLBlast's, and the faster wins. `clcl tune` measures more candidates
 * ahead of time. Decisions are shared by every context on the same device (same platform,
 * name and driver version) and written to
 *
 *     $CLCL_TUNING_FILE, or
 *     ${XDG_CACHE_HOME:-$HOME/.cache}/clcl/tuning-<device>-<driver>.txt
 *
 * atomically after each new decision, so later processes start from them: a shape once
 * decided always takes the same path, within a process and across processes sharing the
 * file (`clcl train --resume` stays bit-exact). A file that cannot be parsed, or that
 * belongs to another device, is reported and ignored (and replaced at the next write).
 *
 * CLCL_GEMM=auto|own|clblast (default auto) forces a GEMM backend: no measurement, no file.
 * The decision table is process-wide and locked; the file format is in docs/benchmarks.md. */
#ifndef CLCL_TUNING_H
#define CLCL_TUNING_H

#include <stddef.h>

#include "clcl/runtime.h"

typedef struct {
    char path[1024];       /* the tuning file ("" when there is none: no cache directory) */
    const char *gemm_mode; /* "auto", "own" or "clblast" (CLCL_GEMM) */
    int file_ignored;      /* 1: the file existed but was corrupt or another device's */
    int gemm_from_file;    /* GEMM decisions read from the file */
    int gemm_measured;     /* GEMM decisions measured by this process */
    int gemm_own;          /* of all GEMM decisions, how many run our kernel */
    int gemm_disqualified; /* shapes where our kernel failed or disagreed with CLBlast */
    int loss_from_file;    /* loss decisions read from the file */
    int loss_measured;     /* loss decisions measured by this process */
    int loss_fused;        /* of all loss decisions, how many run the fused kernels */
    int conv_from_file;    /* convolution pass decisions (direct kernel or columns) read */
    int conv_measured;     /* ... measured by this process */
    int conv_direct;       /* of all convolution decisions, how many run the direct kernel */
} clcl_tuning_summary;

/* What the decision table of ctx's device holds (loading the file if not yet done). */
clcl_status clcl_tuning_summarize(clcl_context *ctx, clcl_tuning_summary *out);

/* "file F: 12 GEMM shapes from the file, 3 measured (9 on our kernel), ..." into buf. */
const char *clcl_tuning_describe(const clcl_tuning_summary *s, char *buf, size_t size);

/* The tuning file's path for ctx's device as the environment says now (buf "" and
 * CLCL_OK when there is no cache directory). */
clcl_status clcl_tuning_path(clcl_context *ctx, char *buf, size_t size);

/* Forgets the in-memory decisions of ctx's device and reads its tuning file again (the
 * path re-resolved from the environment). For tests and the tuner. */
clcl_status clcl_tuning_reload(clcl_context *ctx);

#endif
