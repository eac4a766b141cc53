/* `clcl tune`: measures, ahead of training, the GEMM backends and a few sets of our
 * kernel's tunables at every product a model uses, and writes the winners to the tuning
 * file (clcl/tuning.h) that clcl_gemm applies.
 *
 * The shapes are found by running the model: one forward and backward pass of 2B views
 * (the training step's products, head included) and one kNN pass over a bank of the given
 * size, with clcl_gemm recording every argument set. Each shape is then timed with each
 * candidate of ours and CLBlast (in full only when its first run comes within twice our
 * best), every candidate checked at sampled outputs against a double-precision host sum
 * first; the fastest is stored at once, so an interrupted run resumes where it stopped
 * (shapes tuned before are skipped unless --redo). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "cli.h"
#include "clcl/eval.h"
#include "clcl/log.h"
#include "clcl/loss.h"
#include "clcl/model.h"
#include "flags.h"
#include "tuning_internal.h"

#define SUMMARY                                                                                    \
    "Times CLBlast and several tunings of clcl's own GEMM kernel at every matrix product\n"        \
    "the model uses (forward, both backward products, the head, kNN) and at the loss, and\n"       \
    "stores the fastest per device in the tuning file that training then applies. Shapes\n"        \
    "tuned before are skipped, so an interrupted run resumes."

typedef struct {
    const char *device, *arch, *input;
    double width;
    int batch, knn_bank, knn_queries, head_out, redo;
} tune_args;

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A tensor of `shape` filled with seeded values in [-1, 1). */
static clcl_status seeded_tensor(clcl_context *ctx, clcl_tensor *t, int ndim, const int *shape,
                                 uint64_t seed) {
    CLCL_TRY(clcl_tensor_create(ctx, t, ndim, shape));
    float *host = malloc(t->count * sizeof *host);
    if (!host)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "tune: out of host memory");
    for (size_t i = 0; i < t->count; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        host[i] = (float)(seed >> 40) * (2.0f / 16777216.0f) - 1.0f;
    }
    clcl_status st = clcl_tensor_write(ctx, t, host);
    free(host);
    return st;
}

/* One training step's products: forward and backward of 2B views through model and head. */
static clcl_status record_step(clcl_context *ctx, clcl_model *model, int n2, int c, int h, int w) {
    clcl_tensor x = {0}, dproj = {0}, proj;
    clcl_status st = seeded_tensor(ctx, &x, 4, (int[]){n2, c, h, w}, 11);
    if (st == CLCL_OK)
        st = clcl_model_forward(model, &x, CLCL_MODE_TRAIN, NULL, &proj);
    if (st == CLCL_OK)
        st = seeded_tensor(ctx, &dproj, 2, proj.shape, 12);
    if (st == CLCL_OK)
        st = clcl_model_backward(model, &dproj, NULL);
    if (st == CLCL_OK)
        st = clcl_finish(ctx);
    clcl_tensor_free(&x);
    clcl_tensor_free(&dproj);
    return st;
}

/* The kNN monitor's products: a bank of nb features against nq queries. */
static clcl_status record_knn(clcl_context *ctx, int nb, int nq, int f) {
    clcl_tensor bank = {0}, queries = {0};
    int *bl = calloc((size_t)nb, sizeof *bl), *ql = calloc((size_t)nq, sizeof *ql);
    clcl_knn_config kc = CLCL_KNN_DEFAULTS;
    clcl_accuracy acc;
    clcl_status st = bl && ql ? CLCL_OK : clcl_fail(CLCL_ERR_NO_MEMORY, "tune: out of memory");

    for (int i = 0; st == CLCL_OK && i < nb; i++)
        bl[i] = i % 10;
    if (st == CLCL_OK)
        st = seeded_tensor(ctx, &bank, 2, (int[]){nb, f}, 13);
    if (st == CLCL_OK)
        st = seeded_tensor(ctx, &queries, 2, (int[]){nq, f}, 14);
    if (st == CLCL_OK)
        st = clcl_knn_evaluate(ctx, &bank, bl, &queries, ql, 10, &kc, &acc);
    clcl_tensor_free(&bank);
    clcl_tensor_free(&queries);
    free(bl), free(ql);
    return st;
}

static void describe_params(const clcl_gemm_params *p, int trans_b, char *buf, size_t size) {
    if (trans_b)
        snprintf(buf, size, "dot %dx%d vw %d wg %dx%d", p->dot_tm, p->dot_tn, p->vw, p->lx, p->ly);
    else
        snprintf(buf, size, "bcast %dx%dx%d wg %dx%d", p->tm, p->vw, p->nv, p->lx, p->ly);
}

/* Times CLBlast and every candidate at g's shape, stores the fastest; prints one line. */
static clcl_status tune_shape(clcl_context *ctx, const clcl_gemm_args *g, int index, int count) {
    tuning_trial *trial;
    tuning_gemm_entry e = {.key = tuning_gemm_key_of(g), .tuned = 1, .ms_own = -1};
    const clcl_gemm_params *cands = g->trans_b ? tuning_candidates_dot : tuning_candidates_bcast;
    char text[96];

    CLCL_TRY(tuning_trial_create(ctx, g, &trial));
    clcl_status st = CLCL_OK;
    for (int i = 0; st == CLCL_OK && i < TUNING_CANDIDATES; i++) {
        double ms;
        st = tuning_trial_measure(ctx, trial, 1, &cands[i], 0, &ms);
        if (st == CLCL_OK && ms >= 0 && (e.ms_own < 0 || ms < e.ms_own))
            e.ms_own = ms, e.params = cands[i];
    }

    /* CLBlast last, timed in full only when its checked run comes within twice ours */
    if (st == CLCL_OK)
        st = tuning_trial_measure(ctx, trial, 0, NULL, 2 * e.ms_own, &e.ms_clblast);
    tuning_trial_free(trial);
    CLCL_TRY(st);
    if (e.ms_own < 0 && e.ms_clblast < 0)
        return clcl_fail(CLCL_ERR_ARGUMENT, "tune: no backend ran %c%c m %d n %d k %d correctly",
                         g->trans_a ? 'T' : 'N', g->trans_b ? 'T' : 'N', g->m, g->n, g->k);
    if (e.ms_own < 0)
        e.params = clcl_gemm_params_default();
    e.backend = e.ms_own >= 0 && (e.ms_clblast < 0 || e.ms_own < e.ms_clblast) ? TUNING_OWN
                                                                               : TUNING_CLBLAST;

    tuning_gemm_entry kept;
    tuning_gemm_store(ctx, &e, e.ms_own < 0, &kept);
    double best = e.backend == TUNING_OWN ? e.ms_own : e.ms_clblast;
    describe_params(&e.params, g->trans_b, text, sizeof text);
    printf("[%3d/%d] %c%c m %6d n %6d k %6d: CLBlast %9.3f ms, own %9.3f ms (%s) -> %s, "
           "%.1f GFLOP/s\n",
           index, count, g->trans_a ? 'T' : 'N', g->trans_b ? 'T' : 'N', g->m, g->n, g->k,
           e.ms_clblast, e.ms_own, text, e.backend == TUNING_OWN ? "own" : "CLBlast",
           2.0 * g->m * g->n * g->k / (best * 1e6));
    fflush(stdout);
    return CLCL_OK;
}

static int parse_input(const char *text, int *h, int *w, int *c) {
    char end;
    return sscanf(text, "%dx%dx%d%c", h, w, c, &end) == 3 && *h >= 8 && *w >= 8 && *c >= 1 &&
           *c <= 4;
}

/* Records the shapes, then tunes each one not tuned before, then the loss. */
static int tune(const tune_args *a, clcl_context *ctx, int h, int w, int c) {
    clcl_model_config mc = {.in_channels = c, .width = (float)a->width, .head_out = a->head_out};
    clcl_model *model = NULL;
    tuning_gemm_recorder rec = {0};
    clcl_status st;
    char text[1400];
    double t0 = wall_s();

    if (clcl_arch_parse(a->arch, &mc.arch) != CLCL_OK)
        return clcl_cli_report("tune");
    mc.stem = h <= 64 ? CLCL_STEM_CIFAR : CLCL_STEM_IMAGENET;
    if (clcl_model_create(ctx, &mc, &model) != CLCL_OK)
        return clcl_cli_report("tune");
    int feat = clcl_model_feature_dim(model), d = clcl_model_projection_dim(model);

    /* Which products a step and a kNN pass run, found by running them once. */
    tuning_gemm_record(&rec);
    st = record_step(ctx, model, 2 * a->batch, c, h, w);
    if (st == CLCL_OK && a->knn_bank > 0)
        st = record_knn(ctx, a->knn_bank, a->knn_queries, feat);
    tuning_gemm_record(NULL);
    clcl_model_free(model);
    if (st != CLCL_OK || rec.failed) {
        free(rec.args);
        return clcl_cli_report("tune: recording the model's products");
    }
    printf("clcl tune: %s width %g, batch %d (2N %d), %dx%dx%d, kNN bank %d: %d GEMM shapes "
           "(found in %.1f s)\n",
           a->arch, a->width, a->batch, 2 * a->batch, h, w, c, a->knn_bank, rec.count,
           wall_s() - t0);

    /* Each shape not tuned before, stored as soon as it is done. */
    for (int i = 0; i < rec.count && st == CLCL_OK; i++) {
        tuning_gemm_entry e;
        tuning_gemm_key key = tuning_gemm_key_of(&rec.args[i]);
        if (!a->redo && tuning_gemm_find(ctx, &key, &e) && e.tuned) {
            printf("[%3d/%d] m %d n %d k %d: tuned before (%s)\n", i + 1, rec.count, key.m, key.n,
                   key.k, e.backend == TUNING_OWN ? "own" : "CLBlast");
            continue;
        }
        st = tune_shape(ctx, &rec.args[i], i + 1, rec.count);
    }
    free(rec.args);

    /* The loss: fused or unfused at (2B, d), measured unless the file has it. */
    clcl_loss *loss = NULL;
    clcl_loss_config lc = {.impl = CLCL_LOSS_AUTO};
    if (st == CLCL_OK)
        st = clcl_loss_create(ctx, 2 * a->batch, d, &lc, &loss);
    if (st == CLCL_OK)
        printf("loss 2N %d d %d: %s\n", 2 * a->batch, d, clcl_loss_describe(loss, text, 160));
    clcl_loss_free(loss);
    if (st != CLCL_OK)
        return clcl_cli_report("tune");

    clcl_tuning_summary s;
    if (clcl_tuning_summarize(ctx, &s) != CLCL_OK)
        return clcl_cli_report("tune");
    printf("done in %.0f s. %s\n", wall_s() - t0, clcl_tuning_describe(&s, text, sizeof text));
    return 0;
}

int clcl_cmd_tune(int argc, char **argv) {
    tune_args a = {.device = "",
                   .arch = "resnet18",
                   .input = "32x32x3",
                   .width = 1.0,
                   .batch = 128,
                   .knn_bank = -1,
                   .knn_queries = 10000,
                   .head_out = 128};
#define TUNE_FLAG(n, t, v, h) {.name = n, .type = t, .value = v, .help = h}
    clcl_flag flags[] = {
        TUNE_FLAG("device", CLCL_FLAG_STRING, &a.device, "OpenCL device (index, cpu, gpu, a name)"),
        {.name = "arch",
         .type = CLCL_FLAG_CHOICE,
         .value = &a.arch,
         .help = "model",
         .choices = "resnet18|resnet50"},
        TUNE_FLAG("width", CLCL_FLAG_DOUBLE, &a.width, "channel multiplier of the model"),
        TUNE_FLAG("batch-size", CLCL_FLAG_INT, &a.batch, "images per step (2x as many views)"),
        TUNE_FLAG("input", CLCL_FLAG_STRING, &a.input, "view size HxWxC: 32x32x3, 28x28x1"),
        TUNE_FLAG("head-out", CLCL_FLAG_INT, &a.head_out, "projection size"),
        TUNE_FLAG("knn-bank", CLCL_FLAG_INT, &a.knn_bank,
                  "kNN bank size; -1: 50000 (3 channels) or 60000 (1); 0: no kNN"),
        TUNE_FLAG("knn-queries", CLCL_FLAG_INT, &a.knn_queries, "kNN queries (test images)"),
        TUNE_FLAG("redo", CLCL_FLAG_SWITCH, &a.redo, "tune again the shapes tuned before"),
    };
#undef TUNE_FLAG
    int n = (int)(sizeof flags / sizeof flags[0]), h, w, c;
    clcl_context *ctx = NULL;

    int parsed = clcl_flags_parse("tune", flags, n, argc, argv);
    if (parsed == 1)
        clcl_flags_usage(stdout, "tune", SUMMARY, flags, n);
    if (parsed)
        return parsed == 1 ? 0 : 2;
    if (!parse_input(a.input, &h, &w, &c)) {
        fprintf(stderr, "clcl tune: --input %s: expected HxWxC, e.g. 32x32x3 or 28x28x1\n",
                a.input);
        return 2;
    }
    if (a.batch < 2 || a.width <= 0 || a.knn_queries < 1 || a.head_out < 1) {
        fprintf(stderr, "clcl tune: --batch-size >= 2, --width > 0, --knn-queries >= 1 and "
                        "--head-out >= 1 expected\n");
        return 2;
    }
    if (a.knn_bank < 0)
        a.knn_bank = c == 1 ? 60000 : 50000;
    if (strcmp(getenv("CLCL_GEMM") ? getenv("CLCL_GEMM") : "auto", "auto") != 0) {
        fprintf(stderr, "clcl tune: CLCL_GEMM=%s forces a backend; unset it to tune\n",
                getenv("CLCL_GEMM"));
        return 2;
    }
    if (clcl_context_create(*a.device ? a.device : NULL, &ctx) != CLCL_OK)
        return clcl_cli_report("tune");
    char path[1024];
    if (clcl_tuning_path(ctx, path, sizeof path) == CLCL_OK)
        printf("clcl tune: device %s, tuning file %s\n", clcl_context_device(ctx)->name,
               path[0] ? path : "(none: no cache directory, results are not kept)");
    int rc = tune(&a, ctx, h, w, c);
    clcl_context_free(ctx);
    return rc;
}
