/* Times whole SimCLR training steps of a ResNet on the device, phase by phase, as
 * `clcl train` runs them: augment (upload B uint8 images, draw and apply 2B views),
 * forward (backbone and head), loss (forward and backward, CLCL_LOSS_AUTO, theta 2: plain
 * NT-Xent), backward, optimizer (SGD, momentum 0.9). Reports median and min ms per phase
 * over the repeats after the warm-up steps (the first step measures and tunes whatever the
 * tuning file lacks), images/s at the median step, and what the tuning file supplied.
 * Every phase ends with clFinish, so the phases do not overlap (the trainer's do not
 * either: the loss reads its result back).
 *
 *   bench_step [--input 32x32x3] [--batch 128] [--width 1] [--arch resnet18|resnet50]
 *              [--reps 3] [--warmup 1] [--csv FILE] [--device D] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clcl/augment.h"
#include "clcl/loss.h"
#include "clcl/model.h"
#include "clcl/optim.h"
#include "clcl/tuning.h"

#define MAX_REPS 51
enum { PH_AUGMENT, PH_FORWARD, PH_LOSS, PH_BACKWARD, PH_OPTIM, PH_STEP, N_PHASES };
static const char *const PHASE_NAMES[N_PHASES] = {"augment",  "forward",   "loss",
                                                  "backward", "optimizer", "step"};

typedef struct {
    int h, w, c, batch, reps, warmup;
    double width;
    const char *arch, *csv, *device;
} options;

typedef struct {
    clcl_context *ctx;
    clcl_model *model;
    clcl_optim *optim;
    clcl_augment *aug;
    clcl_loss *loss;
    clcl_tensor views, dh;
    uint8_t *images;
} bench;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what) {
    fprintf(stderr, "bench_step: %s: %s\n", what, clcl_last_error());
    exit(1);
}

#define TRY(call, what)                                                                            \
    do {                                                                                           \
        if ((call) != CLCL_OK)                                                                     \
            die(what);                                                                             \
    } while (0)

static void usage(void) {
    fprintf(stderr, "usage: bench_step [--input HxWxC] [--batch B] [--width W] "
                    "[--arch resnet18|resnet50] [--reps N] [--warmup N] [--csv FILE] "
                    "[--device D]\n");
    exit(2);
}

static options parse(int argc, char **argv) {
    options o = {.h = 32, .w = 32, .c = 3, .batch = 128, .reps = 3, .warmup = 1, .width = 1};
    o.arch = "resnet18", o.csv = NULL, o.device = NULL;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (!strcmp(f, "--input")) {
            if (sscanf(v, "%dx%dx%d", &o.h, &o.w, &o.c) != 3)
                usage();
        } else if (!strcmp(f, "--batch"))
            o.batch = atoi(v);
        else if (!strcmp(f, "--width"))
            o.width = atof(v);
        else if (!strcmp(f, "--arch"))
            o.arch = v;
        else if (!strcmp(f, "--reps"))
            o.reps = atoi(v);
        else if (!strcmp(f, "--warmup"))
            o.warmup = atoi(v);
        else if (!strcmp(f, "--csv"))
            o.csv = v;
        else if (!strcmp(f, "--device"))
            o.device = v;
        else
            usage();
    }
    if (o.batch < 2 || o.reps < 1 || o.reps > MAX_REPS || o.warmup < 0 || o.width <= 0 || o.c < 1 ||
        o.c > 3 || o.h < 8 || o.w < 8)
        usage();
    return o;
}

static void setup(const options *o, bench *b) {
    clcl_model_config mc = {.in_channels = o->c, .width = (float)o->width, .seed = 1};
    clcl_optim_config oc = {.kind = CLCL_OPTIM_SGD, .momentum = 0.9f, .weight_decay = 1e-6f};
    clcl_loss_config lc = {.impl = CLCL_LOSS_AUTO};
    int n_params, oh, ow;

    memset(b, 0, sizeof *b);
    TRY(clcl_context_create(o->device, &b->ctx), "context");
    TRY(clcl_arch_parse(o->arch, &mc.arch), "--arch");
    mc.stem = o->h <= 64 ? CLCL_STEM_CIFAR : CLCL_STEM_IMAGENET;
    TRY(clcl_model_create(b->ctx, &mc, &b->model), "model");
    clcl_param *params = clcl_model_params(b->model, &n_params);
    TRY(clcl_optim_create(b->ctx, &oc, params, n_params, &b->optim), "optimizer");
    clcl_augment_config ac = clcl_augment_config_default(o->h, o->w);
    TRY(clcl_augment_create(b->ctx, &ac, o->c, o->h, o->w, o->batch, &b->aug), "augment");
    clcl_augment_output_size(b->aug, &oh, &ow);
    TRY(clcl_tensor_create(b->ctx, &b->views, 4, (int[]){2 * o->batch, o->c, oh, ow}), "views");
    int d = clcl_model_projection_dim(b->model);
    TRY(clcl_loss_create(b->ctx, 2 * o->batch, d, &lc, &b->loss), "loss");
    TRY(clcl_tensor_create(b->ctx, &b->dh, 2, (int[]){2 * o->batch, d}), "dh");

    /* seeded images stand in for a dataset */
    size_t bytes = (size_t)o->batch * o->c * o->h * o->w;
    b->images = malloc(bytes);
    if (!b->images)
        die("out of host memory");
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < bytes; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        b->images[i] = (uint8_t)(x >> 56);
    }
}

/* One step; ms[] gets each phase's time. */
static void step(const options *o, bench *b, int index, double ms[N_PHASES]) {
    clcl_tensor proj;
    float loss;
    double t[N_PHASES + 1];

    t[0] = now_ms();
    TRY(clcl_augment_batch(b->aug, b->images, o->batch, 7, (uint64_t)index, NULL, &b->views),
        "augment");
    TRY(clcl_finish(b->ctx), "augment");
    t[1] = now_ms();
    TRY(clcl_model_forward(b->model, &b->views, CLCL_MODE_TRAIN, NULL, &proj), "forward");
    TRY(clcl_finish(b->ctx), "forward");
    t[2] = now_ms();
    TRY(clcl_loss_forward_backward(b->loss, &proj, NULL, 0.2f, 2.0f, &loss, &b->dh, NULL), "loss");
    t[3] = now_ms();
    TRY(clcl_model_backward(b->model, &b->dh, NULL), "backward");
    TRY(clcl_finish(b->ctx), "backward");
    t[4] = now_ms();
    TRY(clcl_optim_step(b->optim, 0.1f), "optimizer");
    TRY(clcl_finish(b->ctx), "optimizer");
    t[5] = now_ms();
    for (int p = 0; p < PH_STEP; p++)
        ms[p] = t[p + 1] - t[p];
    ms[PH_STEP] = t[5] - t[0];
    if (loss != loss)
        die("the loss is NaN");
}

int main(int argc, char **argv) {
    options o = parse(argc, argv);
    bench b;
    static double ms[N_PHASES][MAX_REPS];
    double one[N_PHASES], t0 = now_ms();
    char text[1400];

    setup(&o, &b);
    for (int i = 0; i < o.warmup; i++) {
        step(&o, &b, i, one);
        printf("warm-up step %d: %.0f ms\n", i, one[PH_STEP]);
    }
    printf("set-up and warm-up: %.1f s\n", (now_ms() - t0) / 1e3);
    for (int r = 0; r < o.reps; r++) {
        step(&o, &b, o.warmup + r, one);
        for (int p = 0; p < N_PHASES; p++)
            ms[p][r] = one[p];
    }

    clcl_tuning_summary s;
    TRY(clcl_tuning_summarize(b.ctx, &s), "tuning summary");
    printf("device %s; %s %s width %g, batch %d (2N %d) of %dx%dx%d; %d steps after %d "
           "warm-up\n%s\n",
           clcl_context_device(b.ctx)->name, o.arch, o.h <= 64 ? "CIFAR stem" : "ImageNet stem",
           o.width, o.batch, 2 * o.batch, o.h, o.w, o.c, o.reps, o.warmup,
           clcl_tuning_describe(&s, text, sizeof text));
    FILE *csv = o.csv ? fopen(o.csv, "w") : NULL;
    if (o.csv && !csv)
        die("cannot write the CSV file");
    if (csv)
        fprintf(csv, "phase,median_ms,min_ms,share\n");
    qsort(ms[PH_STEP], (size_t)o.reps, sizeof(double), cmp_double);
    double step_med = ms[PH_STEP][o.reps / 2];
    printf("%-10s %12s %12s %7s\n", "phase", "median ms", "min ms", "share");
    for (int p = 0; p < N_PHASES; p++) {
        qsort(ms[p], (size_t)o.reps, sizeof(double), cmp_double);
        double med = ms[p][o.reps / 2], share = 100 * med / step_med;
        printf("%-10s %12.1f %12.1f %6.1f%%\n", PHASE_NAMES[p], med, ms[p][0], share);
        if (csv)
            fprintf(csv, "%s,%.3f,%.3f,%.2f\n", PHASE_NAMES[p], med, ms[p][0], share);
    }
    printf("images/s at the median step: %.1f (at the fastest: %.1f)\n", o.batch / step_med * 1e3,
           o.batch / ms[PH_STEP][0] * 1e3);
    if (csv)
        fclose(csv);

    free(b.images);
    clcl_tensor_free(&b.views);
    clcl_tensor_free(&b.dh);
    clcl_loss_free(b.loss);
    clcl_augment_free(b.aug);
    clcl_optim_free(b.optim);
    clcl_model_free(b.model);
    clcl_context_free(b.ctx);
    return 0;
}
