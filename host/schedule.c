/* Temperature and threshold schedules: parsing, values, formatting. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clcl/schedule.h"

#define ACCEPTED                                                                                   \
    "accepted forms: off | constant:V | linear:A:B | cosine:A:B | exp:A:B | "                      \
    "step:V0:V1@T1[:V2@T2 ...] (0 < T1 < T2 < ... < 1), each optionally followed by "              \
    ":warmup=F (0 <= F < 1)"

#define MAX_FIELDS (CLCL_SCHEDULE_MAX_STEPS + 2)
#define PI         3.14159265358979323846

static clcl_status bad(const char *flag, const char *spec, const char *why) {
    return clcl_fail(CLCL_ERR_ARGUMENT, "%s '%s': %s; " ACCEPTED, flag, spec, why);
}

/* A whole field as a finite number. */
static int number(const char *text, double *out) {
    char *end;
    if (!*text)
        return 0;
    *out = strtod(text, &end);
    return *end == '\0' && isfinite(*out);
}

/* Splits spec at ':' into fields (pointers into buf). Returns the count, -1 for too many. */
static int split(const char *spec, char *buf, size_t size, char **fields) {
    int n = 0;
    snprintf(buf, size, "%s", spec);
    for (char *p = buf;; p++) {
        if (n == MAX_FIELDS)
            return -1;
        fields[n++] = p;
        p = strchr(p, ':');
        if (!p)
            return n;
        *p = '\0';
    }
}

/* The step form's fields: V0 then V@T pairs with rising T in (0, 1). */
static clcl_status parse_steps(char **f, int n, const char *flag, const char *spec,
                               clcl_schedule *s) {
    if (n < 1 || n > CLCL_SCHEDULE_MAX_STEPS)
        return bad(flag, spec, "a step schedule needs 1 to 16 values");
    if (!number(f[0], &s->values[0]))
        return bad(flag, spec, "the first step value is not a number");
    s->bounds[0] = 0.0;
    for (int e = 1; e < n; e++) {
        char *at = strchr(f[e], '@');
        if (!at)
            return bad(flag, spec, "each later step is VALUE@T, the value from progress T on");
        *at = '\0';
        if (!number(f[e], &s->values[e]) || !number(at + 1, &s->bounds[e]))
            return bad(flag, spec, "a step's value or boundary is not a number");
        if (!(s->bounds[e] > s->bounds[e - 1] && s->bounds[e] < 1.0))
            return bad(flag, spec, "step boundaries must rise strictly inside (0, 1)");
    }
    s->n_values = n;
    s->start = s->values[0];
    s->end = s->values[n - 1];
    return CLCL_OK;
}

/* The fields after the kind name, the warm-up already taken off. */
static clcl_status parse_kind(const char *kind, char **f, int n, const char *flag, const char *spec,
                              clcl_schedule *s) {
    static const struct {
        const char *name;
        clcl_schedule_kind kind;
        int values;
    } kinds[] = {
        {"off", CLCL_SCHEDULE_OFF, 0},         {"constant", CLCL_SCHEDULE_CONSTANT, 1},
        {"linear", CLCL_SCHEDULE_LINEAR, 2},   {"cosine", CLCL_SCHEDULE_COSINE, 2},
        {"exp", CLCL_SCHEDULE_EXPONENTIAL, 2}, {"exponential", CLCL_SCHEDULE_EXPONENTIAL, 2},
        {"step", CLCL_SCHEDULE_STEP, -1}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        if (strcmp(kind, kinds[k].name) != 0)
            continue;
        s->kind = kinds[k].kind;
        if (s->kind == CLCL_SCHEDULE_STEP)
            return parse_steps(f, n, flag, spec, s);
        if (n != kinds[k].values)
            return bad(flag, spec,
                       kinds[k].values == 0   ? "'off' takes no values"
                       : kinds[k].values == 1 ? "'constant' takes one value"
                                              : "this form takes a start and an end value");
        if ((n >= 1 && !number(f[0], &s->start)) || (n == 2 && !number(f[1], &s->end)))
            return bad(flag, spec, "a value is not a finite number");
        if (n == 1)
            s->end = s->start;
        if (s->kind == CLCL_SCHEDULE_EXPONENTIAL && !(s->start > 0 && s->end > 0))
            return bad(flag, spec, "an exponential schedule needs positive values");
        if (s->kind == CLCL_SCHEDULE_OFF)
            s->start = s->end = INFINITY;
        return CLCL_OK;
    }
    return bad(flag, spec, "unknown schedule kind");
}

clcl_status clcl_schedule_parse(const char *spec, const char *flag, clcl_schedule *out) {
    char buf[512], *f[MAX_FIELDS];
    flag = flag ? flag : "schedule";

    memset(out, 0, sizeof *out);
    if (!spec || !*spec)
        return bad(flag, spec ? spec : "", "the spec is empty");
    if (strlen(spec) >= sizeof buf)
        return bad(flag, spec, "the spec is too long");
    int n = split(spec, buf, sizeof buf, f);
    if (n < 0)
        return bad(flag, spec, "too many fields");

    /* a trailing warmup=F */
    if (n > 1 && strncmp(f[n - 1], "warmup=", 7) == 0) {
        if (!number(f[n - 1] + 7, &out->warmup) || !(out->warmup >= 0 && out->warmup < 1))
            return bad(flag, spec, "warmup=F needs 0 <= F < 1");
        n--;
    }
    clcl_schedule s = *out;
    clcl_status st = parse_kind(f[0], f + 1, n - 1, flag, spec, &s);
    if (st == CLCL_OK)
        *out = s;
    return st;
}

double clcl_schedule_at(const clcl_schedule *s, double t) {
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    if (s->kind == CLCL_SCHEDULE_OFF || t < s->warmup)
        return INFINITY;
    double u = s->warmup > 0 ? (t - s->warmup) / (1.0 - s->warmup) : t;
    switch (s->kind) {
        case CLCL_SCHEDULE_CONSTANT:
            return s->start;
        case CLCL_SCHEDULE_LINEAR:
            return s->start + (s->end - s->start) * u;
        case CLCL_SCHEDULE_COSINE:
            return s->start + (s->end - s->start) * 0.5 * (1.0 - cos(PI * u));
        case CLCL_SCHEDULE_EXPONENTIAL:
            return s->start * pow(s->end / s->start, u);
        case CLCL_SCHEDULE_STEP: {
            int e = 0;
            while (e + 1 < s->n_values && u >= s->bounds[e + 1])
                e++;
            return s->values[e];
        }
        default:
            return INFINITY;
    }
}

/* The least and greatest value a schedule that is not off takes. */
static void schedule_range(const clcl_schedule *s, double *lo, double *hi) {
    *lo = fmin(s->start, s->end);
    *hi = fmax(s->start, s->end);
    for (int e = 0; e < s->n_values; e++) {
        *lo = fmin(*lo, s->values[e]);
        *hi = fmax(*hi, s->values[e]);
    }
}

clcl_status clcl_schedule_check_temperature(const clcl_schedule *s, const char *flag) {
    char text[512];
    clcl_schedule_format(s, text, sizeof text);
    if (s->kind == CLCL_SCHEDULE_OFF || s->warmup > 0)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "%s '%s': a temperature cannot be off or have a warm-up; give a "
                         "schedule of values in [1e-4, 100]",
                         flag, text);
    double lo, hi;
    schedule_range(s, &lo, &hi);
    if (!(lo >= 1e-4 && hi <= 100))
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "%s '%s': temperatures must lie in [1e-4, 100], this one reaches %g", flag,
                         text, lo < 1e-4 ? lo : hi);
    return CLCL_OK;
}

clcl_status clcl_schedule_check_threshold(const clcl_schedule *s, const char *flag) {
    if (s->kind == CLCL_SCHEDULE_OFF)
        return CLCL_OK;
    double lo, hi;
    schedule_range(s, &lo, &hi);
    if (lo >= -1)
        return CLCL_OK;
    char text[512];
    clcl_schedule_format(s, text, sizeof text);
    return clcl_fail(CLCL_ERR_ARGUMENT,
                     "%s '%s': a cosine similarity is at least -1, so a threshold of %g would "
                     "count every pair as positive; give values of at least -1 (above 1: off)",
                     flag, text, lo);
}

/* Appends to buf as snprintf would, keeping *used the length the full text would have. */
static void append(char *buf, size_t size, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t size, size_t *used, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*used < size ? buf + *used : NULL, *used < size ? size - *used : 0, fmt, ap);
    va_end(ap);
    *used += n > 0 ? (size_t)n : 0;
}

const char *clcl_schedule_format(const clcl_schedule *s, char *buf, size_t size) {
    static const char *names[] = {"off", "constant", "linear", "cosine", "exp", "step"};
    size_t used = 0;
    if (size)
        buf[0] = '\0';
    append(buf, size, &used, "%s", names[s->kind]);
    if (s->kind == CLCL_SCHEDULE_CONSTANT)
        append(buf, size, &used, ":%.15g", s->start);
    else if (s->kind == CLCL_SCHEDULE_STEP)
        for (int e = 0; e < s->n_values; e++)
            if (e)
                append(buf, size, &used, ":%.15g@%.15g", s->values[e], s->bounds[e]);
            else
                append(buf, size, &used, ":%.15g", s->values[e]);
    else if (s->kind != CLCL_SCHEDULE_OFF)
        append(buf, size, &used, ":%.15g:%.15g", s->start, s->end);
    if (s->warmup > 0)
        append(buf, size, &used, ":warmup=%.15g", s->warmup);
    return buf;
}
