/* `clcl check`'s full training step: four seeded 16x16 RGB images, their two views, a
 * ResNet-18 of width 0.125 (CIFAR stem, 32-d projections), the method's loss at a
 * threshold that finds pseudo-positives, the backward pass and one LARS update.
 *
 * On each device, with no reference for the network itself:
 *   - the views against the C reference of the augmentation;
 *   - the loss, its pseudo-positive count and dL/dh against the C reference of the loss on
 *     the device's own projections;
 *   - a second forward and backward gives the same bits;
 *   - the directional derivative of the loss along a random direction, by central
 *     differences of two more forwards, against the backward's gradient;
 *   - the LARS update of a few parameters against the C reference of the optimizer.
 * Between devices, every device's views, projections, loss, dL/dh, six parameter gradients
 * and updated parameters against the first device that completed the step (the baseline),
 * which also chose the threshold: the middle of the widest gap among the largest
 * similarities of its projections, so that no similarity lies near it on any device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "check_private.h"
#include "clcl/augment.h"
#include "clcl/loss.h"
#include "clcl/model.h"
#include "clcl/optim.h"
#include "clcl/reference.h"

#define STEP_IMAGES 4
#define STEP_SIZE   16
#define STEP_DIM    32
#define STEP_TAU    0.2f
#define STEP_LR     0.3f

/* The parameters whose gradients and updates are compared between devices. */
static const char *const WATCHED[] = {"conv1.weight",          "layer3.0.conv1.weight",
                                      "layer4.1.conv2.weight", "layer4.1.bn2.weight",
                                      "head.0.weight",         "head.3.bias"};
#define N_WATCHED ((int)(sizeof WATCHED / sizeof *WATCHED))

static const clcl_optim_config STEP_OPTIM = {
    .kind = CLCL_OPTIM_LARS, .momentum = 0.9f, .weight_decay = 1e-6f};

/* What a device's step produced, on the host (the env's arena). */
typedef struct {
    float *views, *proj, *dh;
    size_t n_views, n_proj;
    float loss;
    double pseudo;
    float *grads[N_WATCHED], *before[N_WATCHED], *after[N_WATCHED];
    size_t sizes[N_WATCHED];
} step_result;

/* The objects of one step; step_close frees them. */
typedef struct {
    clcl_model *model;
    clcl_loss *loss;
    clcl_optim *optim;
    clcl_augment *aug;
    clcl_param *params;
    int n_params, watched[N_WATCHED];
    clcl_tensor views, dh;
    clcl_augment_config aug_config;
    clcl_augment_record records[2 * STEP_IMAGES];
    uint8_t *images;
    float theta;
    double *views_ref;              /* the views by the C reference */
    double numeric[2], analytic[2]; /* directional derivatives, by step_direction */
    double eps[2];                  /* the steps they took */
    double seconds[5];              /* augment, first pass, second pass, differences, update */
} step_run;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void step_close(step_run *s) {
    clcl_optim_free(s->optim);
    clcl_loss_free(s->loss);
    clcl_model_free(s->model);
    clcl_augment_free(s->aug);
}

/* A row of the step that could not run: the phase and the library's message. */
static void step_error(check_env *e, const char *phase, clcl_status st) {
    clcl_check_row row;
    const char *msg = clcl_last_error();
    memset(&row, 0, sizeof row);
    snprintf(row.name, sizeof row.name, "step: %s", phase);
    row.result = CLCL_CHECK_ERROR;
    snprintf(row.note, sizeof row.note, "%s: %.*s", clcl_status_name(st), (int)strcspn(msg, "\n"),
             msg);
    check_add_row(e, &row);
}

/* ---- setting up ---------------------------------------------------------------------- */

static clcl_status open_augment(check_env *e, step_run *s) {
    size_t bytes = (size_t)STEP_IMAGES * 3 * STEP_SIZE * STEP_SIZE;
    s->aug_config = clcl_augment_config_default(STEP_SIZE, STEP_SIZE);
    CLCL_TRY(
        clcl_augment_normalization(CLCL_DATASET_CIFAR10, 3, s->aug_config.mean, s->aug_config.std));
    CLCL_TRY(check_bytes(e, bytes, &s->images));
    for (size_t i = 0; i < bytes; i++)
        s->images[i] = (uint8_t)(clcl_ref_rand_u64(&e->rng) >> 56);
    CLCL_TRY(clcl_augment_draw(&s->aug_config, 3, STEP_SIZE, STEP_SIZE, 11, 0, NULL, STEP_IMAGES,
                               s->records));
    return clcl_augment_create(e->ctx, &s->aug_config, 3, STEP_SIZE, STEP_SIZE, STEP_IMAGES,
                               &s->aug);
}

static clcl_status open_model(check_env *e, step_run *s) {
    clcl_model_config mc = {.arch = CLCL_ARCH_RESNET18,
                            .stem = CLCL_STEM_CIFAR,
                            .in_channels = 3,
                            .width = 0.125f,
                            .head_out = STEP_DIM,
                            .seed = 3};
    clcl_loss_config lc = {.mode = CLCL_FN_ATTRACT, .weight = 1.0f};
    const int n2 = 2 * STEP_IMAGES, shape[2] = {n2, STEP_DIM};

    CLCL_TRY(clcl_model_create(e->ctx, &mc, &s->model));
    s->params = clcl_model_params(s->model, &s->n_params);
    for (int w = 0; w < N_WATCHED; w++) {
        s->watched[w] = -1;
        for (int i = 0; i < s->n_params; i++)
            if (strcmp(s->params[i].name, WATCHED[w]) == 0)
                s->watched[w] = i;
        if (s->watched[w] < 0)
            return clcl_fail(CLCL_ERR_ARGUMENT, "check: the model has no parameter %s", WATCHED[w]);
    }
    CLCL_TRY(clcl_optim_create(e->ctx, &STEP_OPTIM, s->params, s->n_params, &s->optim));
    CLCL_TRY(clcl_loss_create(e->ctx, n2, STEP_DIM, &lc, &s->loss));
    CLCL_TRY(check_tensor(e, &s->dh, 2, shape));
    return check_tensor(e, &s->views, 4, (int[]){n2, 3, STEP_SIZE, STEP_SIZE});
}

/* ---- the threshold ------------------------------------------------------------------- */

static int descending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The middle of the widest gap between consecutive similarities among the largest 30% of
 * the non-partner pairs of h (n2, d), below the largest (so some pairs lie above it). */
static clcl_status choose_theta(check_env *e, const float *h, int n2, int d, float *theta) {
    clcl_ref_batch b;
    double *s;
    int n = 0;
    CLCL_TRY(check_doubles(e, (size_t)n2 * n2, &s));
    CLCL_TRY(clcl_ref_batch_init(&b, h, n2, d));
    for (int i = 0; i < n2; i++)
        for (int j = i + 1; j < n2; j++)
            if (j != (i + n2 / 2) % n2)
                s[n++] = clcl_ref_sim(&b, i, j);
    clcl_ref_batch_free(&b);
    qsort(s, (size_t)n, sizeof *s, descending);

    int last = (int)(0.3 * n) > 1 ? (int)(0.3 * n) : 1;
    int best = 0;
    for (int k = 1; k < last; k++)
        if (s[k] - s[k + 1] > s[best] - s[best + 1])
            best = k;
    *theta = (float)(0.5 * (s[best] + s[best + 1]));
    return CLCL_OK;
}

/* The distance from theta of the similarity of h's pairs nearest to it. */
static clcl_status theta_margin(const float *h, int n2, int d, float theta, double *margin) {
    clcl_ref_batch b;
    CLCL_TRY(clcl_ref_batch_init(&b, h, n2, d));
    *margin = INFINITY;
    for (int i = 0; i < n2; i++)
        for (int j = i + 1; j < n2; j++)
            if (j != (i + n2 / 2) % n2)
                *margin = fmin(*margin, fabs(clcl_ref_sim(&b, i, j) - theta));
    clcl_ref_batch_free(&b);
    return CLCL_OK;
}

/* ---- running it ---------------------------------------------------------------------- */

/* The loss at the run's threshold of the projection a training forward gives; with dh,
 * also dL/dh and the backward pass. */
static clcl_status forward_loss(step_run *s, clcl_tensor *proj, float *loss, clcl_tensor *dh,
                                clcl_loss_stats *stats) {
    CLCL_TRY(clcl_model_forward(s->model, &s->views, CLCL_MODE_TRAIN, NULL, proj));
    if (!dh)
        return clcl_loss_forward(s->loss, proj, NULL, STEP_TAU, s->theta, loss, stats);
    CLCL_TRY(clcl_loss_forward_backward(s->loss, proj, NULL, STEP_TAU, s->theta, loss, dh, stats));
    return clcl_model_backward(s->model, dh, NULL);
}

/* Gradients (or values) of the watched parameters into host arrays. */
static clcl_status read_watched(check_env *e, step_run *s, float **out, int values) {
    for (int w = 0; w < N_WATCHED; w++) {
        const clcl_param *p = &s->params[s->watched[w]];
        CLCL_TRY(check_download(e, values ? &p->value : &p->grad, &out[w]));
    }
    return CLCL_OK;
}

/* One pass: forward, loss, backward; the results into r. The baseline's first pass picks
 * the threshold before its loss. */
static clcl_status step_pass(check_env *e, step_run *s, step_result *r, int pick_theta) {
    clcl_tensor proj;
    clcl_loss_stats stats;
    if (pick_theta) {
        float ignored;
        s->theta = 2.0f; /* no detection while the projections are made */
        CLCL_TRY(forward_loss(s, &proj, &ignored, NULL, &stats));
        CLCL_TRY(check_download(e, &proj, &r->proj));
        CLCL_TRY(choose_theta(e, r->proj, 2 * STEP_IMAGES, STEP_DIM, &s->theta));
    }
    CLCL_TRY(forward_loss(s, &proj, &r->loss, &s->dh, &stats));
    r->pseudo = stats.pseudo_per_anchor * 2 * STEP_IMAGES;
    r->n_proj = proj.count;
    CLCL_TRY(check_download(e, &proj, &r->proj));
    CLCL_TRY(check_download(e, &s->dh, &r->dh));
    for (int w = 0; w < N_WATCHED; w++)
        r->sizes[w] = s->params[s->watched[w]].value.count;
    return read_watched(e, s, r->grads, 0);
}

/* The two directions of the central differences: a random v (uniform in [-1, 1) per
 * element, eps 1e-5), which weighs every parameter alike, and the gradient itself
 * (v = g / ||g||, eps such that the loss moves by about 3e-3), which catches a gradient of
 * the wrong size. Either quotient agrees with g . v to about 1% and no better, whatever eps:
 * float rounding of the forward dominates at small steps, ReLU kinks at large ones. */
typedef enum { DIRECTION_RANDOM, DIRECTION_GRADIENT } step_direction;

#define RANDOM_EPS  1e-5
#define GRADIENT_DL 3e-3

/* The moved parameters w +- eps v and eps; *analytic = sum of g . v over every parameter,
 * with v taken from the moved values as they were rounded to float. */
static clcl_status moved_parameters(check_env *e, step_run *s, step_direction dir, float **saved,
                                    float **plus, float **minus, double *eps, double *analytic) {
    uint64_t rng = check_seed("step direction");
    float **g;
    double norm = 0;
    CLCL_TRY(check_pointers(e, (size_t)s->n_params, &g));
    for (int i = 0; i < s->n_params; i++) {
        CLCL_TRY(check_download(e, &s->params[i].value, &saved[i]));
        CLCL_TRY(check_download(e, &s->params[i].grad, &g[i]));
        for (size_t j = 0; j < s->params[i].value.count; j++)
            norm += (double)g[i][j] * g[i][j];
    }
    norm = sqrt(norm) > 0 ? sqrt(norm) : 1.0;
    *eps = dir == DIRECTION_RANDOM ? RANDOM_EPS : GRADIENT_DL / norm;
    *analytic = 0;
    for (int i = 0; i < s->n_params; i++) {
        size_t count = s->params[i].value.count;
        CLCL_TRY(check_floats(e, count, &plus[i]));
        CLCL_TRY(check_floats(e, count, &minus[i]));
        for (size_t j = 0; j < count; j++) {
            double v =
                dir == DIRECTION_RANDOM ? clcl_ref_rand_uniform(&rng, -1, 1) : g[i][j] / norm;
            plus[i][j] = (float)(saved[i][j] + *eps * v);
            minus[i][j] = (float)(saved[i][j] - *eps * v);
            *analytic += (double)g[i][j] * ((double)plus[i][j] - minus[i][j]) / (2.0 * *eps);
        }
    }
    return CLCL_OK;
}

/* (L(w + eps v) - L(w - eps v)) / 2 eps from two more forwards, and the backward's g . v;
 * the parameters are put back afterwards. */
static clcl_status directional(check_env *e, step_run *s, step_direction dir, double *numeric,
                               double *analytic) {
    float **saved, **plus, **minus, lplus, lminus;
    const size_t n = (size_t)s->n_params;
    double eps;
    clcl_tensor proj;
    clcl_loss_stats stats;

    CLCL_TRY(check_pointers(e, n, &saved));
    CLCL_TRY(check_pointers(e, n, &plus));
    CLCL_TRY(check_pointers(e, n, &minus));
    CLCL_TRY(moved_parameters(e, s, dir, saved, plus, minus, &eps, analytic));
    for (size_t i = 0; i < n; i++)
        CLCL_TRY(clcl_tensor_write(e->ctx, &s->params[i].value, plus[i]));
    CLCL_TRY(forward_loss(s, &proj, &lplus, NULL, &stats));
    for (size_t i = 0; i < n; i++)
        CLCL_TRY(clcl_tensor_write(e->ctx, &s->params[i].value, minus[i]));
    CLCL_TRY(forward_loss(s, &proj, &lminus, NULL, &stats));
    for (size_t i = 0; i < n; i++)
        CLCL_TRY(clcl_tensor_write(e->ctx, &s->params[i].value, saved[i]));
    *numeric = ((double)lplus - lminus) / (2.0 * eps);
    s->eps[dir] = eps;
    return CLCL_OK;
}

/* The views of the images, on the device and in the reference. */
static clcl_status run_augment(check_env *e, step_run *s, step_result *r, double **ref) {
    size_t bytes = (size_t)STEP_IMAGES * 3 * STEP_SIZE * STEP_SIZE, per = bytes / STEP_IMAGES;
    int words = (int)((bytes + 3) / 4);
    float *packed;
    clcl_tensor staging;
    CLCL_TRY(check_floats(e, (size_t)words, &packed));
    memcpy(packed, s->images, bytes);
    CLCL_TRY(check_upload(e, &staging, 1, &words, packed));
    CLCL_TRY(clcl_augment_apply(s->aug, staging.buf, STEP_IMAGES, s->records, &s->views));
    CLCL_TRY(check_download(e, &s->views, &r->views));
    r->n_views = s->views.count;
    CLCL_TRY(check_doubles(e, r->n_views, ref));
    for (int m = 0; m < 2 * STEP_IMAGES; m++)
        clcl_ref_augment_view(s->images + (size_t)s->records[m].source * per, 3, STEP_SIZE,
                              STEP_SIZE, &s->records[m], STEP_SIZE, STEP_SIZE, s->aug_config.mean,
                              s->aug_config.std, *ref + m * per);
    return CLCL_OK;
}

/* The LARS update of every parameter; the watched ones before and after. */
static clcl_status run_update(check_env *e, step_run *s, step_result *r) {
    CLCL_TRY(read_watched(e, s, r->before, 1));
    CLCL_TRY(clcl_optim_step(s->optim, STEP_LR));
    return read_watched(e, s, r->after, 1);
}

/* ---- rows ---------------------------------------------------------------------------- */

static clcl_check_row new_row(const char *name, double atol, double rtol, double seconds) {
    clcl_check_row row;
    memset(&row, 0, sizeof row);
    snprintf(row.name, sizeof row.name, "%.63s", name);
    row.atol = atol;
    row.rtol = rtol;
    row.seconds = seconds;
    return row;
}

static void add(check_env *e, clcl_check_row *row) {
    if (row->count == 0 && row->result == CLCL_CHECK_PASS) {
        row->result = CLCL_CHECK_ERROR;
        snprintf(row->note, sizeof row->note, "nothing was compared");
    }
    if (check_wanted(e, row->name))
        check_add_row(e, row);
}

static double max_abs_float(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)x[i]));
    return m;
}

/* The loss and dL/dh against the C reference on the device's own projections. */
static clcl_status rows_loss(check_env *e, const step_run *s, const step_result *r, double margin,
                             double seconds) {
    const int n2 = 2 * STEP_IMAGES;
    clcl_ref_batch b;
    clcl_ref_loss_result ref;
    double *dh;
    CLCL_TRY(check_doubles(e, r->n_proj, &dh));
    CLCL_TRY(clcl_ref_batch_init(&b, r->proj, n2, STEP_DIM));
    clcl_ref_loss_config rc = {CLCL_FN_ATTRACT, 1.0, 0, STEP_TAU, s->theta};
    clcl_status st = clcl_ref_loss(&b, NULL, &rc, &ref, dh, 1);
    clcl_ref_batch_free(&b);
    CLCL_TRY(st);

    clcl_check_row row = new_row("step: loss vs C, own projections", 2e-5, 2e-5, seconds);
    float got[2] = {r->loss, (float)r->pseudo};
    double want[2] = {ref.loss, (double)ref.pseudo_total};
    check_compare(&row, got, want, 2);
    check_note(&row, "loss %.6f, %lld pseudo-positives at theta %.4f (margin %.2g)", ref.loss,
               ref.pseudo_total, (double)s->theta, margin);
    if (ref.pseudo_total == 0) {
        row.result = CLCL_CHECK_FAIL;
        check_note(&row, "the threshold found no pseudo-positive");
    }
    add(e, &row);

    row =
        new_row("step: dL/dh vs C, own projections", 2e-4 * check_max_abs(dh, r->n_proj), 2e-3, 0);
    check_compare(&row, r->dh, dh, r->n_proj);
    add(e, &row);
    return CLCL_OK;
}

/* The second pass against the first: every value bit for bit. */
static void row_repeat(check_env *e, const step_result *a, const step_result *b, double seconds) {
    clcl_check_row row = new_row("step: second pass, same bits", 0, 0, seconds);
    check_compare_floats(&row, &b->loss, &a->loss, 1);
    check_compare_floats(&row, b->proj, a->proj, a->n_proj);
    check_compare_floats(&row, b->dh, a->dh, a->n_proj);
    for (int w = 0; w < N_WATCHED; w++)
        check_compare_floats(&row, b->grads[w], a->grads[w], b->sizes[w]);
    check_note(&row, "projections, loss, dL/dh and the watched gradients");
    add(e, &row);
}

/* The LARS update of the watched parameters against the C reference. */
static clcl_status row_update(check_env *e, const step_run *s, const step_result *r,
                              double seconds) {
    clcl_check_row row = new_row("step: LARS update vs C", 1e-6, 2e-5, seconds);
    for (int w = 0; w < N_WATCHED; w++) {
        double *ref, *buf;
        CLCL_TRY(check_doubles(e, r->sizes[w], &ref));
        CLCL_TRY(check_doubles(e, r->sizes[w], &buf));
        for (size_t j = 0; j < r->sizes[w]; j++)
            ref[j] = r->before[w][j];
        int excluded = s->params[s->watched[w]].excluded;
        clcl_ref_optim_step(&STEP_OPTIM, excluded, r->sizes[w], r->grads[w], ref, buf, STEP_LR);
        check_compare(&row, r->after[w], ref, r->sizes[w]);
    }
    add(e, &row);
    return CLCL_OK;
}

/* The backward's directional derivatives against the central differences. */
static void rows_directional(check_env *e, const step_run *s) {
    static const char *const names[2] = {"step: grad vs differences, random dir",
                                         "step: grad vs differences, along grad"};
    static const double rtol[2] = {3e-2, 3e-2};
    for (int dir = 0; dir < 2; dir++) {
        clcl_check_row row = new_row(names[dir], 0, rtol[dir], dir ? 0 : s->seconds[3]);
        float got = (float)s->analytic[dir];
        check_compare(&row, &got, &s->numeric[dir], 1);
        check_note(&row, "g . v %.6g, (L(w + eps v) - L(w - eps v)) / 2 eps %.6g at eps %g",
                   s->analytic[dir], s->numeric[dir], s->eps[dir]);
        add(e, &row);
    }
}

/* ---- between devices ----------------------------------------------------------------- */

/* One array compared between devices; atol is atol_share times the baseline's largest |x|
 * when atol_share > 0. */
typedef struct {
    char name[64];
    const float *x;
    size_t n;
    double atol, atol_share, rtol;
} step_array;

/* The step's arrays in a fixed order: views, projections, loss, dL/dh, the watched gradients
 * and the watched parameters after the update (concatenated into `after`). */
static int step_arrays(const step_result *r, float *after, step_array *out) {
    int n = 0;
    size_t used = 0;
    out[n++] = (step_array){"views", r->views, r->n_views, 1e-5, 0, 1e-5};
    out[n++] = (step_array){"projections", r->proj, r->n_proj, 3e-5, 0, 3e-4};
    out[n++] = (step_array){"loss", &r->loss, 1, 1e-5, 0, 1e-5};
    out[n++] = (step_array){"dL/dh", r->dh, r->n_proj, 0, 1e-4, 1e-3};
    for (int w = 0; w < N_WATCHED; w++) {
        out[n] = (step_array){"", r->grads[w], r->sizes[w], 0, 1e-4, 1e-3};
        snprintf(out[n++].name, sizeof out[0].name, "grad %s", WATCHED[w]);
        memcpy(after + used, r->after[w], r->sizes[w] * sizeof *after);
        used += r->sizes[w];
    }
    out[n++] = (step_array){"parameters after the update", after, used, 1e-6, 0, 2e-5};
    return n;
}

static size_t watched_total(const step_result *r) {
    size_t n = 0;
    for (int w = 0; w < N_WATCHED; w++)
        n += r->sizes[w];
    return n;
}

void check_baseline_free(check_baseline *b) {
    for (int i = 0; i < b->n_arrays; i++)
        free(b->arrays[i]);
    b->n_arrays = 0;
}

/* Keeps this device's arrays as the baseline of the devices after it. */
static clcl_status store_baseline(check_env *e, const step_run *s, const step_result *r) {
    check_baseline *b = e->base;
    step_array arrays[N_WATCHED + 5];
    float *after;
    CLCL_TRY(check_floats(e, watched_total(r), &after));
    int n = step_arrays(r, after, arrays);
    for (int i = 0; i < n; i++) {
        b->arrays[i] = malloc(arrays[i].n * sizeof *b->arrays[i]);
        if (!b->arrays[i]) {
            check_baseline_free(b);
            return clcl_fail(CLCL_ERR_NO_MEMORY, "check: out of host memory");
        }
        memcpy(b->arrays[i], arrays[i].x, arrays[i].n * sizeof *b->arrays[i]);
        b->counts[i] = arrays[i].n;
        snprintf(b->names[i], sizeof b->names[i], "%.63s", arrays[i].name);
        b->n_arrays = i + 1;
    }
    b->device = e->dev->index;
    snprintf(b->name, sizeof b->name, "%s", e->dev->name);
    b->theta = s->theta;
    return CLCL_OK;
}

static clcl_status rows_versus(check_env *e, const step_result *r) {
    const check_baseline *b = e->base;
    step_array arrays[N_WATCHED + 5];
    float *after;
    CLCL_TRY(check_floats(e, watched_total(r), &after));
    int n = step_arrays(r, after, arrays);
    for (int i = 0; i < n && i < b->n_arrays; i++) {
        char name[80];
        snprintf(name, sizeof name, "step vs %d: %.40s", b->device, arrays[i].name);
        clcl_check_row row = new_row(name, arrays[i].atol, arrays[i].rtol, 0);
        if (arrays[i].atol_share > 0)
            row.atol = arrays[i].atol_share * max_abs_float(b->arrays[i], b->counts[i]);
        if (arrays[i].n != b->counts[i]) {
            row.result = CLCL_CHECK_ERROR;
            check_note(&row, "%zu values here, %zu on device %d", arrays[i].n, b->counts[i],
                       b->device);
        } else {
            check_compare_floats(&row, arrays[i].x, b->arrays[i], arrays[i].n);
        }
        add(e, &row);
    }
    return CLCL_OK;
}

/* ---- the step ------------------------------------------------------------------------ */

static int step_wanted(const check_env *e) {
    return !e->only || !*e->only || strstr("step", e->only) || strstr(e->only, "step");
}

/* The step's passes; *phase names the one that failed. */
static clcl_status run_step(check_env *e, step_run *s, step_result *r1, step_result *r2,
                            const char **phase) {
    const int baseline = e->base->device < 0;
    double *t = s->seconds, last = now_seconds();

    *phase = "set-up";
    CLCL_TRY(open_augment(e, s));
    CLCL_TRY(open_model(e, s));
    *phase = "augment";
    CLCL_TRY(run_augment(e, s, r1, &s->views_ref));
    t[0] = now_seconds() - last;
    last += t[0];
    *phase = "forward, loss, backward";
    s->theta = baseline ? 2.0f : e->base->theta;
    CLCL_TRY(step_pass(e, s, r1, baseline));
    t[1] = now_seconds() - last;
    last += t[1];
    *phase = "second pass";
    CLCL_TRY(step_pass(e, s, r2, 0));
    r2->views = r1->views;
    r2->n_views = r1->n_views;
    t[2] = now_seconds() - last;
    last += t[2];
    *phase = "central differences";
    CLCL_TRY(directional(e, s, DIRECTION_RANDOM, &s->numeric[0], &s->analytic[0]));
    CLCL_TRY(directional(e, s, DIRECTION_GRADIENT, &s->numeric[1], &s->analytic[1]));
    t[3] = now_seconds() - last;
    last += t[3];
    *phase = "update";
    CLCL_TRY(run_update(e, s, r2));
    t[4] = now_seconds() - last;
    return CLCL_OK;
}

/* Every row of the step, then the baseline kept or compared with. */
static clcl_status step_rows(check_env *e, step_run *s, step_result *r1, step_result *r2) {
    double margin;
    clcl_check_row row = new_row("step: views vs C reference", 5e-5, 1e-5, s->seconds[0]);
    check_compare(&row, r1->views, s->views_ref, r1->n_views);
    add(e, &row);
    CLCL_TRY(theta_margin(r2->proj, 2 * STEP_IMAGES, STEP_DIM, s->theta, &margin));
    CLCL_TRY(rows_loss(e, s, r2, margin, s->seconds[1]));
    row_repeat(e, r1, r2, s->seconds[2]);
    rows_directional(e, s);
    CLCL_TRY(row_update(e, s, r2, s->seconds[4]));
    if (e->base->device < 0)
        return store_baseline(e, s, r2);
    return rows_versus(e, r2);
}

void check_step_rows(check_env *e) {
    step_run s;
    step_result r1, r2;
    const char *phase = "set-up";

    if (!step_wanted(e))
        return;
    memset(&s, 0, sizeof s);
    memset(&r1, 0, sizeof r1);
    memset(&r2, 0, sizeof r2);
    e->rng = check_seed("step");
    clcl_clear_error();
    clcl_status st = run_step(e, &s, &r1, &r2, &phase);
    if (st == CLCL_OK) {
        phase = "comparison";
        st = step_rows(e, &s, &r1, &r2);
    }
    if (st != CLCL_OK)
        step_error(e, phase, st);
    step_close(&s);
    check_release(e);
}
