/* `clcl check`: the device loop, what each device lacks, and the rows' bookkeeping (inputs,
 * poisoned outputs, comparisons). The checks themselves are in host/check_layers.c,
 * check_method.c and check_step.c; printing and JSON in check_report.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "check_private.h"
#include "clcl/reference.h"
#include "clcl/tuning.h"

/* The kernels CLCL_CHECK_BREAK may break (each has an #if CLCL_BREAK in its .cl file). */
static const char *const BREAKABLE[] = {"relu"};

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- host memory of a row ---------------------------------------------------------------- */

static clcl_status arena_take(check_env *e, size_t bytes, void **out) {
    if (e->n_arena == e->cap_arena) {
        int cap = e->cap_arena ? 2 * e->cap_arena : 32;
        void **grown = realloc(e->arena, (size_t)cap * sizeof *grown);
        if (!grown)
            return clcl_fail(CLCL_ERR_NO_MEMORY, "check: out of host memory");
        e->arena = grown;
        e->cap_arena = cap;
    }
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "check: out of host memory (%zu bytes)", bytes);
    e->arena[e->n_arena++] = p;
    *out = p;
    return CLCL_OK;
}

static void arena_release(check_env *e) {
    for (int i = 0; i < e->n_arena; i++)
        free(e->arena[i]);
    e->n_arena = 0;
}

void check_release(check_env *e) {
    arena_release(e);
    clcl_pool_reset(e->pool);
}

clcl_status check_floats(check_env *e, size_t n, float **out) {
    return arena_take(e, n * sizeof **out, (void **)out);
}

clcl_status check_doubles(check_env *e, size_t n, double **out) {
    return arena_take(e, n * sizeof **out, (void **)out);
}

clcl_status check_ints(check_env *e, size_t n, int **out) {
    return arena_take(e, n * sizeof **out, (void **)out);
}

clcl_status check_bytes(check_env *e, size_t n, uint8_t **out) {
    return arena_take(e, n, (void **)out);
}

clcl_status check_pointers(check_env *e, size_t n, float ***out) {
    return arena_take(e, n * sizeof **out, (void **)out);
}

clcl_status check_random(check_env *e, size_t n, float lo, float hi, float **out) {
    CLCL_TRY(check_floats(e, n, out));
    for (size_t i = 0; i < n; i++)
        (*out)[i] = clcl_ref_rand_uniform(&e->rng, lo, hi);
    return CLCL_OK;
}

/* ---- device tensors ---------------------------------------------------------------------- */

clcl_status check_tensor(check_env *e, clcl_tensor *t, int ndim, const int *shape) {
    float *nan;
    CLCL_TRY(clcl_pool_tensor(e->pool, t, ndim, shape));
    CLCL_TRY(check_floats(e, t->count, &nan));
    for (size_t i = 0; i < t->count; i++)
        nan[i] = NAN;
    return clcl_tensor_write(e->ctx, t, nan);
}

clcl_status check_upload(check_env *e, clcl_tensor *t, int ndim, const int *shape,
                         const float *host) {
    CLCL_TRY(clcl_pool_tensor(e->pool, t, ndim, shape));
    return clcl_tensor_write(e->ctx, t, host);
}

clcl_status check_download(check_env *e, const clcl_tensor *t, float **out) {
    CLCL_TRY(check_floats(e, t->count, out));
    return clcl_tensor_read(e->ctx, t, *out);
}

/* ---- comparisons ------------------------------------------------------------------------- */

/* The share of its tolerance that an error uses (> 1: outside). */
static double tolerance_share(const clcl_check_row *row, double err, double ref) {
    double allowed = row->atol + row->rtol * fabs(ref);
    if (allowed > 0)
        return err / allowed;
    return err > 0 ? INFINITY : 0.0;
}

static double relative_error(const clcl_check_row *row, double err, double ref) {
    double floor = row->rtol > 0 ? row->atol / row->rtol : 0.0;
    double scale = fmax(fabs(ref), floor);
    if (scale > 0)
        return err / scale;
    return err > 0 ? INFINITY : 0.0;
}

static void compare_one(clcl_check_row *row, size_t index, double got, double ref) {
    double err = isfinite(got) ? fabs(got - ref) : INFINITY;
    double share = tolerance_share(row, err, ref);
    if (index == 0 || share > row->worst_share) {
        row->worst = index;
        row->worst_got = got;
        row->worst_ref = ref;
        row->worst_share = share;
    }
    if (err > row->max_abs || isnan(err))
        row->max_abs = err;
    double rel = relative_error(row, err, ref);
    if (rel > row->max_rel || isnan(rel))
        row->max_rel = rel;
    if (!(share <= 1.0) && row->result == CLCL_CHECK_PASS)
        row->result = CLCL_CHECK_FAIL;
}

void check_compare(clcl_check_row *row, const float *got, const double *ref, size_t n) {
    size_t base = row->count;
    for (size_t i = 0; i < n; i++)
        compare_one(row, base + i, got[i], ref[i]);
    row->count = base + n;
}

void check_compare_floats(clcl_check_row *row, const float *got, const float *ref, size_t n) {
    size_t base = row->count;
    for (size_t i = 0; i < n; i++)
        compare_one(row, base + i, got[i], ref[i]);
    row->count = base + n;
}

clcl_status check_compare_tensor(check_env *e, clcl_check_row *row, const clcl_tensor *t,
                                 const double *ref) {
    float *got;
    CLCL_TRY(check_download(e, t, &got));
    check_compare(row, got, ref, t->count);
    return CLCL_OK;
}

void check_note(clcl_check_row *row, const char *fmt, ...) {
    size_t used = strlen(row->note);
    va_list ap;
    if (used > 0 && used + 2 < sizeof row->note) {
        memcpy(row->note + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= sizeof row->note)
        return;
    va_start(ap, fmt);
    vsnprintf(row->note + used, sizeof row->note - used, fmt, ap);
    va_end(ap);
}

double check_max_abs(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

int check_broken(const check_env *e, const char *kernel) {
    return e->broken && strcmp(e->broken, kernel) == 0;
}

/* ---- rows -------------------------------------------------------------------------------- */

int check_wanted(const check_env *e, const char *name) {
    return !e->only || !*e->only || strstr(name, e->only) != NULL;
}

void check_add_row(check_env *e, const clcl_check_row *row) {
    clcl_check_device *dev = e->dev;
    clcl_check_row *grown = realloc(dev->rows, (size_t)(dev->n_rows + 1) * sizeof *grown);
    if (!grown) {
        dev->failed++; /* the row is lost, but not its verdict */
        return;
    }
    dev->rows = grown;
    dev->rows[dev->n_rows++] = *row;
    if (row->result != CLCL_CHECK_PASS)
        dev->failed++;
    if (e->out) {
        check_print_row(e->out, row);
        fflush(e->out);
    }
}

uint64_t check_seed(const char *name) {
    uint64_t h = 1469598103934665603ULL;
    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 1099511628211ULL;
    return h;
}

/* The first line of the library's last message, after the status's name. */
static void error_note(clcl_check_row *row, clcl_status st) {
    const char *msg = clcl_last_error();
    size_t len = strcspn(msg, "\n");
    snprintf(row->note, sizeof row->note, "%s: %.*s", clcl_status_name(st), (int)len, msg);
}

void check_row(check_env *e, const char *name, double atol, double rtol, check_fn fn,
               const void *arg) {
    clcl_check_row row;

    if (!check_wanted(e, name))
        return;
    memset(&row, 0, sizeof row);
    snprintf(row.name, sizeof row.name, "%s", name);
    row.atol = atol;
    row.rtol = rtol;
    e->rng = check_seed(name);
    clcl_clear_error();

    double start = now_seconds();
    clcl_status st = fn(e, &row, arg);
    if (st == CLCL_OK)
        st = clcl_finish(e->ctx);
    row.seconds = now_seconds() - start;
    if (st != CLCL_OK) {
        row.result = CLCL_CHECK_ERROR;
        error_note(&row, st);
    } else if (row.count == 0) {
        row.result = CLCL_CHECK_ERROR;
        snprintf(row.note, sizeof row.note, "nothing was compared");
    }
    check_release(e);
    check_add_row(e, &row);
}

/* ---- what a device lacks ----------------------------------------------------------------- */

static void adapt(clcl_check_device *dev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void adapt(clcl_check_device *dev, const char *fmt, ...) {
    va_list ap;
    int max = (int)(sizeof dev->adaptations / sizeof dev->adaptations[0]);
    if (dev->n_adaptations >= max)
        return;
    va_start(ap, fmt);
    vsnprintf(dev->adaptations[dev->n_adaptations++], sizeof dev->adaptations[0], fmt, ap);
    va_end(ap);
}

/* A limit as the device reports it and, when an environment cap lowered it, as clcl uses it. */
/* "48 KiB", or "640 bytes" below 1 KiB. */
static const char *memory_size(cl_ulong bytes, char *buf, size_t size) {
    if (bytes < 1024)
        snprintf(buf, size, "%llu bytes", (unsigned long long)bytes);
    else
        snprintf(buf, size, "%llu KiB", (unsigned long long)bytes / 1024);
    return buf;
}

static void describe_limits(clcl_check_device *dev, const clcl_device_info *raw,
                            const clcl_device_info *used) {
    char lm[32], rm[32];
    memory_size(used->local_mem, lm, sizeof lm);
    memory_size(raw->local_mem, rm, sizeof rm);
    if (used->local_mem < raw->local_mem)
        adapt(dev,
              "local memory   %s (device %s, capped by CLCL_MAX_LOCAL_MEM): tiles and "
              "work-groups sized from the cap",
              lm, rm);
    else
        adapt(dev, "local memory   %s%s: tiles and work-groups sized from it", lm,
              used->local_mem < 32768 ? " (below 32 KiB): smaller tiles" : "");
    if (used->max_work_group < raw->max_work_group)
        adapt(dev,
              "work-group     %zu work-items (device %zu, capped by CLCL_MAX_WORK_GROUP): "
              "launch shapes derived from the cap",
              used->max_work_group, raw->max_work_group);
    else
        adapt(dev, "work-group     %zu work-items%s: launch shapes derived from it",
              used->max_work_group, used->max_work_group < 256 ? " (below 256)" : "");
    if (used->local_mem < raw->local_mem || used->max_work_group < raw->max_work_group)
        adapt(dev, "caps           CLBlast's and clFFT's own kernels read the device's real "
                   "limits, not the caps");
}

/* The lines of dev->adaptations: fp64, limits, images, queue, allocation, alignment. */
static void describe_device(clcl_check_device *dev, const clcl_device_info *raw,
                            const clcl_device_info *used) {
    cl_bool images = CL_FALSE;
    cl_command_queue_properties queue = 0;
    clGetDeviceInfo(raw->device_id, CL_DEVICE_IMAGE_SUPPORT, sizeof images, &images, NULL);
    clGetDeviceInfo(raw->device_id, CL_DEVICE_QUEUE_PROPERTIES, sizeof queue, &queue, NULL);

    if (raw->has_fp64)
        adapt(dev, "fp64           yes, unused: the kernels are fp32 and the references run on "
                   "the host");
    else
        adapt(dev, "fp64           lacks it: no kernel needs it; the references run on the "
                   "host in double precision");
    describe_limits(dev, raw, used);
    adapt(dev, "images         %s: clcl uses buffers only",
          images ? "yes, unused" : "lacks them, none needed");
    adapt(dev, "out-of-order   %s: clcl uses one in-order queue",
          queue & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE ? "yes, unused" : "lacks it, none needed");
    adapt(dev, "max allocation %.0f MiB: a larger tensor or workspace is refused, naming it",
          raw->max_alloc / 1048576.0);
    adapt(dev, "base alignment %u bytes: clcl makes no sub-buffers; offsets are kernel arguments",
          raw->base_addr_align_bits / 8);
}

/* ---- one device -------------------------------------------------------------------------- */

static void run_families(check_env *e) {
    check_layers_rows(e);
    check_method_rows(e);
    check_step_rows(e);
}

static void context_failed(check_env *e, clcl_status st) {
    clcl_check_row row;
    memset(&row, 0, sizeof row);
    snprintf(row.name, sizeof row.name, "context");
    row.result = CLCL_CHECK_ERROR;
    error_note(&row, st);
    check_add_row(e, &row);
}

static void run_device(check_env *e, const clcl_device_info *raw) {
    clcl_check_device *dev = e->dev;
    clcl_tuning_summary tuning;
    char choice[16];
    double start = now_seconds();

    dev->index = raw->index;
    snprintf(dev->name, sizeof dev->name, "%s", raw->name);
    snprintf(dev->platform, sizeof dev->platform, "%s", raw->platform);
    dev->type = clcl_device_type_name(raw->type);

    /* What the device lacks, printed before anything runs on it. */
    snprintf(choice, sizeof choice, "%d", raw->index);
    clcl_status st = clcl_context_create(choice, &e->ctx);
    describe_device(dev, raw, st == CLCL_OK ? clcl_context_device(e->ctx) : raw);
    if (e->out)
        check_print_header(e->out, dev);
    if (st == CLCL_OK)
        st = clcl_pool_create(e->ctx, &e->pool);
    if (st != CLCL_OK)
        context_failed(e, st);
    else
        run_families(e);
    if (e->ctx && clcl_tuning_summarize(e->ctx, &tuning) == CLCL_OK)
        clcl_tuning_describe(&tuning, dev->tuning, sizeof dev->tuning);

    clcl_pool_free(e->pool);
    clcl_context_free(e->ctx);
    e->pool = NULL;
    e->ctx = NULL;
    dev->seconds = now_seconds() - start;
    if (e->out)
        check_print_device_verdict(e->out, dev);
}

/* ---- the run ----------------------------------------------------------------------------- */

static clcl_status read_break(const char **out) {
    const char *env = getenv("CLCL_CHECK_BREAK");
    *out = NULL;
    if (!env || !*env)
        return CLCL_OK;
    for (size_t i = 0; i < sizeof BREAKABLE / sizeof *BREAKABLE; i++)
        if (strcmp(env, BREAKABLE[i]) == 0) {
            *out = BREAKABLE[i];
            return CLCL_OK;
        }
    return clcl_fail(CLCL_ERR_ARGUMENT, "CLCL_CHECK_BREAK='%s': expected 'relu' (or unset)", env);
}

/* The devices to run: every one, or those the choices name (each once, in the order given). */
static clcl_status select_devices(const clcl_check_config *cfg, const clcl_device_info *all,
                                  int count, int *chosen, int *n) {
    *n = 0;
    if (cfg->n_devices <= 0) {
        for (int i = 0; i < count; i++)
            chosen[(*n)++] = i;
        return CLCL_OK;
    }
    for (int c = 0; c < cfg->n_devices; c++) {
        int index, seen = 0;
        if (!cfg->devices[c] || !*cfg->devices[c])
            return clcl_fail(CLCL_ERR_ARGUMENT, "--device: an empty choice");
        CLCL_TRY(clcl_device_choose(all, count, cfg->devices[c], &index));
        for (int i = 0; i < *n; i++)
            seen |= chosen[i] == index;
        if (!seen)
            chosen[(*n)++] = index;
    }
    return CLCL_OK;
}

static clcl_status report_create(int n, const char *broken, clcl_check_report **out) {
    clcl_check_report *r = calloc(1, sizeof *r);
    if (r)
        r->devices = calloc((size_t)n, sizeof *r->devices);
    if (!r || !r->devices) {
        free(r);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "check: out of host memory");
    }
    r->n_devices = n;
    r->baseline = -1;
    r->broken = broken;
    *out = r;
    return CLCL_OK;
}

clcl_status clcl_check_run(const clcl_check_config *config, clcl_check_report **out) {
    const clcl_check_config quiet = {0}, *cfg = config ? config : &quiet;
    clcl_device_info *all;
    int count, n, *chosen;
    const char *broken;
    clcl_check_report *r = NULL;
    check_baseline base = {.device = -1};

    *out = NULL;
    if (cfg->n_devices > 0 && !cfg->devices)
        return clcl_fail(CLCL_ERR_ARGUMENT, "check: %d device choices but no list", cfg->n_devices);
    CLCL_TRY(read_break(&broken));
    CLCL_TRY(clcl_devices_list(&all, &count));
    chosen = malloc((size_t)count * sizeof *chosen);
    clcl_status st = chosen ? select_devices(cfg, all, count, chosen, &n)
                            : clcl_fail(CLCL_ERR_NO_MEMORY, "check: out of host memory");
    if (st == CLCL_OK)
        st = report_create(n, broken, &r);
    if (st != CLCL_OK) {
        free(chosen);
        free(all);
        return st;
    }

    for (int i = 0; i < n; i++) {
        check_env e = {.dev = &r->devices[i],
                       .report = r,
                       .base = &base,
                       .out = cfg->out,
                       .only = cfg->only,
                       .broken = broken};
        run_device(&e, &all[chosen[i]]);
        free(e.arena);
        r->failed_devices += r->devices[i].failed > 0 || r->devices[i].n_rows == 0;
    }
    r->baseline = base.device;
    r->step_theta = base.theta;
    check_baseline_free(&base);
    free(chosen);
    free(all);
    if (cfg->out)
        clcl_check_print_verdict(cfg->out, r);
    *out = r;
    return CLCL_OK;
}

void clcl_check_report_free(clcl_check_report *report) {
    if (!report)
        return;
    for (int i = 0; i < report->n_devices; i++)
        free(report->devices[i].rows);
    free(report->devices);
    free(report);
}

int clcl_check_passed(const clcl_check_report *report) {
    int rows = 0;
    for (int i = 0; i < report->n_devices; i++)
        rows += report->devices[i].n_rows;
    return report->n_devices > 0 && report->failed_devices == 0 && rows > 0;
}
