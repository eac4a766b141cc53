/* Schedules of the temperature tau(t) and the false-negative threshold theta(t) over
 * training progress t in [0, 1] (step / total steps), parsed from one compact spec each:
 *
 *     off                      no detection: +inf at every t (thresholds only)
 *     constant:V               V
 *     linear:A:B               A + (B - A) u
 *     cosine:A:B               A + (B - A) (1 - cos(pi u)) / 2
 *     exp:A:B                  A (B / A)^u, A and B > 0 ("exponential" too)
 *     step:V0:V1@T1:V2@T2...   V0, then V1 from u = T1, V2 from u = T2, ... (0 < T1 < T2 < 1)
 *
 * each optionally followed by ":warmup=F" (0 <= F < 1): for t < F the value is +inf (false-
 * negative detection off) and the schedule then runs over the rest, u = (t - F) / (1 - F);
 * without a warm-up u = t. t outside [0, 1] is clamped. A threshold above 1 detects nothing,
 * so +inf is "off" for the loss. */
#ifndef CLCL_SCHEDULE_H
#define CLCL_SCHEDULE_H

#include <stddef.h>

#include "clcl/status.h"

#define CLCL_SCHEDULE_MAX_STEPS 16 /* values of a step schedule, at most */

typedef enum {
    CLCL_SCHEDULE_OFF = 0,
    CLCL_SCHEDULE_CONSTANT,
    CLCL_SCHEDULE_LINEAR,
    CLCL_SCHEDULE_COSINE,
    CLCL_SCHEDULE_EXPONENTIAL,
    CLCL_SCHEDULE_STEP
} clcl_schedule_kind;

typedef struct {
    clcl_schedule_kind kind;
    double start, end; /* the values at u = 0 and u = 1 (step: first and last value) */
    double warmup;     /* fraction of training with the value +inf; 0: none */
    int n_values;      /* step: values[0 .. n_values - 1], bounds[1 .. n_values - 1] */
    double values[CLCL_SCHEDULE_MAX_STEPS];
    double bounds[CLCL_SCHEDULE_MAX_STEPS];
} clcl_schedule;

/* Parses `spec`; `flag` ("--tau", "--threshold") names it in the error. A malformed spec is
 * CLCL_ERR_ARGUMENT with a message quoting it, saying what is wrong and listing the
 * accepted forms. Values must be finite. */
clcl_status clcl_schedule_parse(const char *spec, const char *flag, clcl_schedule *out);

/* The value at progress t. */
double clcl_schedule_at(const clcl_schedule *s, double t);

/* For a temperature: refuses `off`, a warm-up and values outside [1e-4, 100], naming `flag`. */
clcl_status clcl_schedule_check_temperature(const clcl_schedule *s, const char *flag);
/* For a threshold: refuses values below -1, which every cosine similarity exceeds, naming
 * `flag`; `off` and values above 1 (no detection) are fine. */
clcl_status clcl_schedule_check_threshold(const clcl_schedule *s, const char *flag);

/* The canonical spec of s ("cosine:0.6:0.9:warmup=0.1") into buf; parsing it gives s back.
 * Returns buf. */
const char *clcl_schedule_format(const clcl_schedule *s, char *buf, size_t size);

#endif
