/* `clcl check`'s rows for the method's kernels: the contrastive loss (fused and unfused,
 * with pseudo-positives), the augmentation and the blur, the kNN monitor and the linear
 * probe, and the optimizers' step, each against its double-precision C reference.
 * Tolerances are those of the test suite (tests/test_loss.c, test_augment.c,
 * test_eval.c, test_optim.c), where the worst errors seen on PoCL are given. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "check_private.h"
#include "clcl/augment.h"
#include "clcl/eval.h"
#include "clcl/loss.h"
#include "clcl/optim.h"
#include "clcl/reference.h"

/* ---- the contrastive loss ---------------------------------------------------------------- */

#define LOSS_ROWS    38 /* 2N: no multiple of any tile */
#define LOSS_DIM     32
#define LOSS_CLASSES 4 /* few classes: many same-class others above the threshold */
#define LOSS_TAU     0.2f
#define LOSS_THETA   0.4f

typedef struct {
    clcl_loss_impl impl;
    clcl_fn_mode mode;
    int cap;
    int gradient; /* 0: the loss and the pseudo-positive count, 1: dL/dh */
    char name[64];
} loss_case;

/* The inputs are seeded by the case's name alone, so a case's two rows see the same batch. */
static const loss_case LOSSES[] = {
    {CLCL_LOSS_FUSED, CLCL_FN_ATTRACT, 0, 0, "loss fused attract"},
    {CLCL_LOSS_FUSED, CLCL_FN_ATTRACT, 0, 1, "loss fused attract"},
    {CLCL_LOSS_FUSED, CLCL_FN_ELIMINATE, 3, 0, "loss fused eliminate cap 3"},
    {CLCL_LOSS_FUSED, CLCL_FN_ELIMINATE, 3, 1, "loss fused eliminate cap 3"},
    {CLCL_LOSS_UNFUSED, CLCL_FN_ATTRACT, 0, 0, "loss unfused attract"},
    {CLCL_LOSS_UNFUSED, CLCL_FN_ATTRACT, 0, 1, "loss unfused attract"},
    {CLCL_LOSS_UNFUSED, CLCL_FN_ELIMINATE, 3, 0, "loss unfused eliminate cap 3"},
    {CLCL_LOSS_UNFUSED, CLCL_FN_ELIMINATE, 3, 1, "loss unfused eliminate cap 3"},
    {CLCL_LOSS_FUSED_ROWS, CLCL_FN_ATTRACT, 0, 0, "loss fused rows attract"},
    {CLCL_LOSS_FUSED_ROWS, CLCL_FN_ATTRACT, 0, 1, "loss fused rows attract"},
    {CLCL_LOSS_FUSED_ROWS, CLCL_FN_ELIMINATE, 3, 0, "loss fused rows eliminate cap 3"},
    {CLCL_LOSS_FUSED_ROWS, CLCL_FN_ELIMINATE, 3, 1, "loss fused rows eliminate cap 3"},
};

/* The device's loss, pseudo-positive count and gradient for h (LOSS_ROWS, LOSS_DIM). */
static clcl_status loss_on_device(check_env *e, clcl_check_row *row, const loss_case *lc,
                                  const float *h, const int *labels, float *value, double *pseudo,
                                  clcl_tensor *dh) {
    const int shape[2] = {LOSS_ROWS, LOSS_DIM};
    clcl_loss_config cfg = {.mode = lc->mode, .weight = 1.0f, .cap = lc->cap, .impl = lc->impl};
    clcl_loss_labels lab = {.host = labels};
    clcl_loss_stats stats;
    clcl_loss *loss;
    clcl_tensor th;
    char text[160];

    CLCL_TRY(check_upload(e, &th, 2, shape, h));
    CLCL_TRY(check_tensor(e, dh, 2, shape));
    CLCL_TRY(clcl_loss_create(e->ctx, LOSS_ROWS, LOSS_DIM, &cfg, &loss));
    clcl_status st =
        clcl_loss_forward_backward(loss, &th, &lab, LOSS_TAU, LOSS_THETA, value, dh, &stats);
    if (!lc->gradient)
        check_note(row, "%s", clcl_loss_describe(loss, text, sizeof text));
    clcl_loss_free(loss);
    *pseudo = stats.pseudo_per_anchor * LOSS_ROWS;
    return st;
}

static clcl_status check_loss(check_env *e, clcl_check_row *row, const void *arg) {
    const loss_case *lc = arg;
    const double theta = LOSS_THETA;
    float *h, value, got[2];
    int *labels;
    double *dh, pseudo;
    clcl_tensor tdh;
    clcl_ref_batch b;
    clcl_ref_loss_result r;

    /* Views of a few classes, redrawn until no similarity is near theta or the cap. */
    e->rng = check_seed(lc->name);
    CLCL_TRY(check_floats(e, (size_t)LOSS_ROWS * LOSS_DIM, &h));
    CLCL_TRY(check_ints(e, LOSS_ROWS, &labels));
    CLCL_TRY(clcl_ref_make_views(h, labels, LOSS_ROWS, LOSS_DIM, LOSS_CLASSES, &e->rng));
    if (clcl_ref_make_unambiguous(h, LOSS_ROWS, LOSS_DIM, &theta, 1, lc->cap, 1e-4, &e->rng) < 0)
        return clcl_fail(CLCL_ERR_ARGUMENT, "check: no unambiguous loss inputs were drawn");
    CLCL_TRY(loss_on_device(e, row, lc, h, labels, &value, &pseudo, &tdh));

    /* The reference's loss, count and gradient. */
    CLCL_TRY(check_doubles(e, (size_t)LOSS_ROWS * LOSS_DIM, &dh));
    CLCL_TRY(clcl_ref_batch_init(&b, h, LOSS_ROWS, LOSS_DIM));
    clcl_ref_loss_config rc = {(int)lc->mode, 1.0, lc->cap, LOSS_TAU, LOSS_THETA};
    clcl_status st = clcl_ref_loss(&b, labels, &rc, &r, dh, 1);
    clcl_ref_batch_free(&b);
    CLCL_TRY(st);
    check_note(row, "%lld pseudo-positives at theta %.2f%s", r.pseudo_total, (double)LOSS_THETA,
               lc->gradient ? "" : " (compared too)");
    if (lc->gradient) {
        row->atol = 2e-4 * check_max_abs(dh, (size_t)LOSS_ROWS * LOSS_DIM);
        return check_compare_tensor(e, row, &tdh, dh);
    }
    double ref[2] = {r.loss, (double)r.pseudo_total};
    got[0] = value;
    got[1] = (float)pseudo;
    check_compare(row, got, ref, 2);
    return CLCL_OK;
}

static void loss_rows(check_env *e) {
    for (size_t i = 0; i < sizeof LOSSES / sizeof *LOSSES; i++) {
        const loss_case *lc = &LOSSES[i];
        char name[80];
        snprintf(name, sizeof name, "%s: %s", lc->name, lc->gradient ? "dL/dh" : "value");
        if (lc->gradient)
            check_row(e, name, 0, 2e-3, check_loss, lc);
        else
            check_row(e, name, 2e-5, 2e-5, check_loss, lc);
    }
}

/* ---- the augmentation -------------------------------------------------------------------- */

typedef struct {
    int channels, height, width, out_height, out_width;
    int blur; /* 1: blur every view (direct method, 5 taps) */
} augment_case;

static const augment_case AUG_RGB = {3, 13, 11, 12, 10, 0};
static const augment_case AUG_GREY = {1, 15, 14, 0, 0, 0};
static const augment_case AUG_BLUR = {3, 20, 18, 0, 0, 1};

static clcl_augment_config augment_config(const augment_case *ac) {
    clcl_augment_config c = CLCL_AUGMENT_DEFAULTS;
    c.out_height = ac->out_height;
    c.out_width = ac->out_width;
    c.blur_p = ac->blur ? 1.0f : 0.0f;
    c.blur_kernel = ac->blur ? 5 : 0;
    c.blur_method = CLCL_BLUR_DIRECT;
    for (int k = 0; k < 3; k++) {
        c.mean[k] = 0.45f + 0.02f * k;
        c.std[k] = 0.25f - 0.01f * k;
    }
    return c;
}

/* The views of three seeded images against clcl_ref_augment_view (+ clcl_ref_blur). */
static clcl_status check_augment(check_env *e, clcl_check_row *row, const void *arg) {
    const augment_case *ac = arg;
    const int n = 3;
    clcl_augment_config cfg = augment_config(ac);
    clcl_augment_record records[6];
    size_t in_per = (size_t)ac->channels * ac->height * ac->width;
    uint8_t *images;
    float *words;
    double *ref;
    clcl_tensor staging, out;
    clcl_augment *aug;
    int oh, ow;

    CLCL_TRY(check_bytes(e, n * in_per, &images));
    for (size_t i = 0; i < n * in_per; i++)
        images[i] = (uint8_t)(clcl_ref_rand_u64(&e->rng) >> 56);
    CLCL_TRY(check_floats(e, (n * in_per + 3) / 4, &words));
    memcpy(words, images, n * in_per);
    CLCL_TRY(check_upload(e, &staging, 1, (int[]){(int)((n * in_per + 3) / 4)}, words));
    CLCL_TRY(clcl_augment_draw(&cfg, ac->channels, ac->height, ac->width, 5, 0, NULL, n, records));
    CLCL_TRY(clcl_augment_create(e->ctx, &cfg, ac->channels, ac->height, ac->width, n, &aug));
    clcl_augment_output_size(aug, &oh, &ow);
    int kernel = clcl_augment_blur_size(aug);
    clcl_status st = check_tensor(e, &out, 4, (int[]){2 * n, ac->channels, oh, ow});
    if (st == CLCL_OK)
        st = clcl_augment_apply(aug, staging.buf, n, records, &out);
    clcl_augment_free(aug);
    CLCL_TRY(st);

    size_t per = (size_t)ac->channels * oh * ow;
    CLCL_TRY(check_doubles(e, 2 * n * per, &ref));
    for (int m = 0; m < 2 * n; m++) {
        const uint8_t *src = images + (size_t)records[m].source * in_per;
        clcl_ref_augment_view(src, ac->channels, ac->height, ac->width, &records[m], oh, ow,
                              cfg.mean, cfg.std, ref + m * per);
        CLCL_TRY(clcl_ref_blur(ref + m * per, ac->channels, oh, ow, records[m].sigma, kernel));
    }
    return check_compare_tensor(e, row, &out, ref);
}

/* The blur on its own: four (3, 44, 46) images, 3 taps, the sizes test_augment uses (so that
 * PoCL compiles clFFT's kernels once for both). */
static clcl_status check_blur(check_env *e, clcl_check_row *row, const void *arg) {
    const clcl_blur_method method = *(const clcl_blur_method *)arg;
    const int n = 4, c = 3, h = 44, w = 46, kernel = 3;
    const int shape[4] = {n, c, h, w};
    const float sigma[4] = {0.1f, 2.0f, 0.0f, 0.9f};
    size_t per = (size_t)c * h * w;
    float *x;
    double *ref;
    clcl_tensor t;
    clcl_blur *blur;

    CLCL_TRY(check_random(e, n * per, -2, 2, &x));
    CLCL_TRY(check_upload(e, &t, 4, shape, x));
    CLCL_TRY(clcl_blur_create(e->ctx, n, c, h, w, kernel, method, &blur));
    clcl_status st = clcl_blur_apply(blur, &t, sigma, n);
    clcl_blur_free(blur);
    CLCL_TRY(st);
    CLCL_TRY(check_doubles(e, n * per, &ref));
    for (size_t i = 0; i < n * per; i++)
        ref[i] = x[i];
    for (int i = 0; i < n; i++)
        CLCL_TRY(clcl_ref_blur(ref + i * per, c, h, w, sigma[i], kernel));
    return check_compare_tensor(e, row, &t, ref);
}

static const clcl_blur_method BLUR_DIRECT = CLCL_BLUR_DIRECT, BLUR_FFT = CLCL_BLUR_FFT;

/* ---- evaluation -------------------------------------------------------------------------- */

/* n rows of f features around one random centre per class, plus noise; labels too. */
static clcl_status clustered(check_env *e, int n, int f, int classes, float noise, float **x,
                             int **labels) {
    float *centres;
    CLCL_TRY(check_random(e, (size_t)classes * f, -1, 1, &centres));
    CLCL_TRY(check_floats(e, (size_t)n * f, x));
    CLCL_TRY(check_ints(e, (size_t)n, labels));
    for (int i = 0; i < n; i++) {
        (*labels)[i] = (int)(clcl_ref_rand_u64(&e->rng) % (uint64_t)classes);
        for (int j = 0; j < f; j++)
            (*x)[(size_t)i * f + j] =
                centres[(*labels)[i] * f + j] + noise * clcl_ref_rand_uniform(&e->rng, -1, 1);
    }
    return CLCL_OK;
}

/* Top-1 and top-5 of the weighted kNN; one query of 60 may flip on float rounding. */
static clcl_status check_knn(check_env *e, clcl_check_row *row, const void *arg) {
    const int nb = 150, nq = 60, f = 9, classes = 6, k = 10;
    float *bank, *q, got[2];
    int *bl, *ql;
    double ref[2];
    clcl_tensor tb, tq;
    clcl_accuracy acc;
    clcl_knn_config cfg = {.k = k, .temperature = 0.1};

    CLCL_TRY(clustered(e, nb, f, classes, 1.2f, &bank, &bl));
    CLCL_TRY(clustered(e, nq, f, classes, 1.2f, &q, &ql));
    CLCL_TRY(check_upload(e, &tb, 2, (int[]){nb, f}, bank));
    CLCL_TRY(check_upload(e, &tq, 2, (int[]){nq, f}, q));
    CLCL_TRY(clcl_knn_evaluate(e->ctx, &tb, bl, &tq, ql, classes, &cfg, &acc));
    CLCL_TRY(clcl_ref_knn(bank, bl, nb, q, ql, nq, f, classes, k, 0.1, &ref[0], &ref[1]));
    got[0] = (float)acc.top1;
    got[1] = (float)acc.top5;
    check_note(row, "top-1 %.3f, top-5 %.3f", acc.top1, acc.top5);
    check_compare(row, got, ref, 2);
    return CLCL_OK;
}

/* The probe's last-epoch training loss (arg NULL) or its test top-1. */
static clcl_status check_probe(check_env *e, clcl_check_row *row, const void *arg) {
    const int nt = 200, ne = 80, f = 7, classes = 4;
    float *xt, *xe, got;
    int *yt, *ye;
    double ref_top1, ref_loss, loss;
    clcl_tensor tt, te;
    clcl_accuracy acc;
    clcl_probe_config cfg = {
        .epochs = 4, .batch = 32, .lr = 0.2, .momentum = 0.9, .weight_decay = 1e-3, .seed = 9};

    CLCL_TRY(clustered(e, nt, f, classes, 1.5f, &xt, &yt));
    CLCL_TRY(clustered(e, ne, f, classes, 1.5f, &xe, &ye));
    CLCL_TRY(check_upload(e, &tt, 2, (int[]){nt, f}, xt));
    CLCL_TRY(check_upload(e, &te, 2, (int[]){ne, f}, xe));
    CLCL_TRY(clcl_linear_probe(e->ctx, &tt, yt, &te, ye, classes, &cfg, &acc, &loss));
    CLCL_TRY(clcl_ref_probe(xt, yt, nt, xe, ye, ne, f, classes, &cfg, &ref_top1, &ref_loss));
    check_note(row, "loss %.4f, top-1 %.3f", loss, acc.top1);
    if (arg) {
        got = (float)acc.top1;
        check_compare(row, &got, &ref_top1, 1);
    } else {
        got = (float)loss;
        check_compare(row, &got, &ref_loss, 1);
    }
    return CLCL_OK;
}

/* ---- the optimizers ---------------------------------------------------------------------- */

#define OPTIM_PARAMS 3
static const int OPTIM_SIZES[OPTIM_PARAMS] = {4099, 7, 300};
static const int OPTIM_EXCLUDED[OPTIM_PARAMS] = {0, 1, 0};

static const clcl_optim_config SGD_CASE = {
    .kind = CLCL_OPTIM_SGD, .momentum = 0.9f, .nesterov = 1, .weight_decay = 1e-2f};
static const clcl_optim_config LARS_CASE = {
    .kind = CLCL_OPTIM_LARS, .momentum = 0.9f, .weight_decay = 1e-2f};

/* Three steps of the optimizer on three parameters, against clcl_ref_optim_step. */
static clcl_status optim_steps(check_env *e, const clcl_optim_config *cfg, clcl_param *p,
                               double **w, double **buf) {
    const double lrs[3] = {0.5, 0.1, 1.3};
    clcl_optim *opt;
    CLCL_TRY(clcl_optim_create(e->ctx, cfg, p, OPTIM_PARAMS, &opt));
    clcl_status st = CLCL_OK;
    for (int step = 0; step < 3 && st == CLCL_OK; step++) {
        for (int i = 0; i < OPTIM_PARAMS && st == CLCL_OK; i++) {
            float *g;
            st = check_random(e, (size_t)OPTIM_SIZES[i], -0.2f, 0.2f, &g);
            if (st == CLCL_OK)
                st = clcl_tensor_write(e->ctx, &p[i].grad, g);
            if (st == CLCL_OK)
                clcl_ref_optim_step(cfg, OPTIM_EXCLUDED[i], (size_t)OPTIM_SIZES[i], g, w[i], buf[i],
                                    (float)lrs[step]);
        }
        if (st == CLCL_OK)
            st = clcl_optim_step(opt, (float)lrs[step]);
    }
    clcl_optim_free(opt);
    return st;
}

static clcl_status check_optim(check_env *e, clcl_check_row *row, const void *arg) {
    const clcl_optim_config *cfg = arg;
    clcl_param p[OPTIM_PARAMS];
    double *w[OPTIM_PARAMS], *buf[OPTIM_PARAMS];

    memset(p, 0, sizeof p);
    for (int i = 0; i < OPTIM_PARAMS; i++) {
        float *v;
        snprintf(p[i].name, sizeof p[i].name, "p%d.weight", i);
        p[i].excluded = OPTIM_EXCLUDED[i];
        CLCL_TRY(check_random(e, (size_t)OPTIM_SIZES[i], -1, 1, &v));
        CLCL_TRY(check_upload(e, &p[i].value, 1, &OPTIM_SIZES[i], v));
        CLCL_TRY(check_tensor(e, &p[i].grad, 1, &OPTIM_SIZES[i]));
        CLCL_TRY(check_doubles(e, (size_t)OPTIM_SIZES[i], &w[i]));
        CLCL_TRY(check_doubles(e, (size_t)OPTIM_SIZES[i], &buf[i]));
        for (int j = 0; j < OPTIM_SIZES[i]; j++)
            w[i][j] = v[j];
    }
    CLCL_TRY(optim_steps(e, cfg, p, w, buf));
    for (int i = 0; i < OPTIM_PARAMS; i++)
        CLCL_TRY(check_compare_tensor(e, row, &p[i].value, w[i]));
    return CLCL_OK;
}

/* ---- the rows ---------------------------------------------------------------------------- */

void check_method_rows(check_env *e) {
    loss_rows(e);
    check_row(e, "augment views, RGB", 5e-5, 1e-5, check_augment, &AUG_RGB);
    check_row(e, "augment views, grey", 5e-5, 1e-5, check_augment, &AUG_GREY);
    check_row(e, "augment views with blur", 5e-5, 1e-5, check_augment, &AUG_BLUR);
    check_row(e, "blur direct", 2e-6, 0, check_blur, &BLUR_DIRECT);
    check_row(e, "blur fft", 1e-5, 0, check_blur, &BLUR_FFT);
    check_row(e, "knn top-1, top-5", 1.01 / 60, 0, check_knn, NULL);
    check_row(e, "linear probe: loss", 1e-4, 1e-4, check_probe, NULL);
    check_row(e, "linear probe: top-1", 1.01 / 80, 0, check_probe, "top-1");
    check_row(e, "optim sgd, momentum, nesterov", 1e-6, 2e-5, check_optim, &SGD_CASE);
    check_row(e, "optim lars, momentum", 1e-6, 2e-5, check_optim, &LARS_CASE);
}
