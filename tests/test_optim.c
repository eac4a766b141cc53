/* Optimizers against the double-precision C reference of torch.optim.SGD and SimCLR's LARS
 * (host/reference_eval.c); state save/restore; the learning-rate schedule. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clcl/optim.h"
#include "clcl/reference.h"
#include "support.h"

/* Sizes that are not multiples of any group: one larger than the 64 x 256 elements the
 * norm reduction covers in one pass, one tiny, one all-zero (trust ratio 1). */
#define NPARAMS 5
static const int sizes[NPARAMS] = {70001, 5, 441, 1037, 300};
static const int excluded[NPARAMS] = {0, 1, 0, 1, 0};

typedef struct {
    clcl_context *ctx;
    clcl_param p[NPARAMS];
    double *w[NPARAMS], *buf[NPARAMS]; /* the reference */
    float *host;
} fixture;

static void fixture_init(fixture *f, clcl_context *ctx, uint64_t seed) {
    memset(f, 0, sizeof *f);
    f->ctx = ctx;
    f->host = malloc(sizes[0] * sizeof *f->host);
    for (int i = 0; i < NPARAMS; i++) {
        clcl_param *p = &f->p[i];
        snprintf(p->name, sizeof p->name, "p%d.weight", i);
        p->excluded = excluded[i];
        cr_assert_eq(clcl_tensor_create(ctx, &p->value, 1, &sizes[i]), CLCL_OK);
        cr_assert_eq(clcl_tensor_create(ctx, &p->grad, 1, &sizes[i]), CLCL_OK);
        f->w[i] = malloc(sizes[i] * sizeof(double));
        f->buf[i] = calloc(sizes[i], sizeof(double));
        for (int j = 0; j < sizes[i]; j++) {
            f->host[j] = i == 4 ? 0.0f : test_rand_uniform(&seed, -1, 1);
            f->w[i][j] = f->host[j];
        }
        cr_assert_eq(clcl_tensor_write(ctx, &p->value, f->host), CLCL_OK);
    }
}

static void fixture_free(fixture *f) {
    for (int i = 0; i < NPARAMS; i++) {
        clcl_tensor_free(&f->p[i].value);
        clcl_tensor_free(&f->p[i].grad);
        free(f->w[i]);
        free(f->buf[i]);
    }
    free(f->host);
}

/* Fresh gradients on the device; returns them in g (the caller frees). */
static float **set_grads(fixture *f, uint64_t *seed, float scale) {
    float **g = malloc(NPARAMS * sizeof *g);
    for (int i = 0; i < NPARAMS; i++) {
        g[i] = malloc(sizes[i] * sizeof **g);
        for (int j = 0; j < sizes[i]; j++)
            g[i][j] = test_rand_uniform(seed, -scale, scale);
        cr_assert_eq(clcl_tensor_write(f->ctx, &f->p[i].grad, g[i]), CLCL_OK);
    }
    return g;
}

/* The reference step, in double precision. */
static void reference_step(fixture *f, const clcl_optim_config *c, float **g, double lr) {
    for (int i = 0; i < NPARAMS; i++)
        clcl_ref_optim_step(c, excluded[i], (size_t)sizes[i], g[i], f->w[i], f->buf[i], lr);
}

static void expect_params_match(fixture *f, double rtol, const char *what) {
    for (int i = 0; i < NPARAMS; i++) {
        char label[128];
        snprintf(label, sizeof label, "%s, %s", what, f->p[i].name);
        cr_assert_eq(clcl_tensor_read(f->ctx, &f->p[i].value, f->host), CLCL_OK);
        expect_close(f->host, f->w[i], (size_t)sizes[i], 1e-6, rtol, label);
    }
}

static void run_against_reference(const clcl_optim_config *cfg, const char *what) {
    clcl_context *ctx = test_context();
    fixture f;
    clcl_optim *opt;
    uint64_t seed = 11;
    fixture_init(&f, ctx, 5);
    cr_assert_eq(clcl_optim_create(ctx, cfg, f.p, NPARAMS, &opt), CLCL_OK, "%s", clcl_last_error());
    const double lrs[] = {0.5, 0.1, 1.3, 0.05};
    for (int step = 0; step < 4; step++) {
        float **g = set_grads(&f, &seed, step == 2 ? 3.0f : 0.2f);
        cr_assert_eq(clcl_optim_step(opt, (float)lrs[step]), CLCL_OK, "%s", clcl_last_error());
        reference_step(&f, cfg, g, (float)lrs[step]);
        for (int i = 0; i < NPARAMS; i++)
            free(g[i]);
        free(g);
    }
    cr_expect_eq(clcl_optim_steps(opt), 4);
    expect_params_match(&f, 2e-5, what);
    clcl_optim_free(opt);
    fixture_free(&f);
    clcl_context_free(ctx);
}

Test(optim, plain_sgd_matches_reference) {
    run_against_reference(&(clcl_optim_config){.kind = CLCL_OPTIM_SGD}, "sgd");
}

Test(optim, sgd_momentum_weight_decay_matches_reference) {
    run_against_reference(
        &(clcl_optim_config){.kind = CLCL_OPTIM_SGD, .momentum = 0.9f, .weight_decay = 5e-4f},
        "sgd momentum");
}

Test(optim, sgd_nesterov_decay_all_matches_reference) {
    run_against_reference(&(clcl_optim_config){.kind = CLCL_OPTIM_SGD,
                                               .momentum = 0.9f,
                                               .nesterov = 1,
                                               .weight_decay = 1e-2f,
                                               .decay_all = 1},
                          "sgd nesterov");
}

Test(optim, lars_matches_reference) {
    run_against_reference(
        &(clcl_optim_config){.kind = CLCL_OPTIM_LARS, .momentum = 0.9f, .weight_decay = 1e-2f},
        "lars");
}

Test(optim, lars_nesterov_custom_trust_matches_reference) {
    run_against_reference(&(clcl_optim_config){.kind = CLCL_OPTIM_LARS,
                                               .momentum = 0.8f,
                                               .nesterov = 1,
                                               .weight_decay = 1e-6f,
                                               .trust_coefficient = 0.02f},
                          "lars nesterov");
}

Test(optim, lars_without_momentum_matches_reference) {
    run_against_reference(&(clcl_optim_config){.kind = CLCL_OPTIM_LARS, .weight_decay = 1e-3f},
                          "lars no momentum");
}

Test(optim, lars_with_gpu_sized_work_groups_matches_reference) {
    setenv("CLCL_MAX_WORK_GROUP", "32", 1); /* this test's process only */
    run_against_reference(
        &(clcl_optim_config){.kind = CLCL_OPTIM_LARS, .momentum = 0.9f, .weight_decay = 1e-4f},
        "lars, 32 work-items");
}

/* The same inputs give the same bits, and a saved state resumes bit-exactly. */
Test(optim, steps_are_deterministic_and_resume_exactly) {
    clcl_context *ctx = test_context();
    clcl_optim_config cfg = {.kind = CLCL_OPTIM_LARS, .momentum = 0.9f, .weight_decay = 1e-3f};
    fixture a, b;
    clcl_optim *oa, *ob;
    fixture_init(&a, ctx, 5);
    fixture_init(&b, ctx, 5);
    cr_assert_eq(clcl_optim_create(ctx, &cfg, a.p, NPARAMS, &oa), CLCL_OK);
    cr_assert_eq(clcl_optim_create(ctx, &cfg, b.p, NPARAMS, &ob), CLCL_OK);
    uint64_t sa = 3, sb = 3;
    for (int step = 0; step < 2; step++) {
        float **ga = set_grads(&a, &sa, 0.5f), **gb = set_grads(&b, &sb, 0.5f);
        cr_assert_eq(clcl_optim_step(oa, 0.7f), CLCL_OK);
        cr_assert_eq(clcl_optim_step(ob, 0.7f), CLCL_OK);
        for (int i = 0; i < NPARAMS; i++) {
            free(ga[i]);
            free(gb[i]);
        }
        free(ga);
        free(gb);
    }

    /* b's optimizer state goes through a file into a fresh optimizer. */
    const char *dir = test_temp_dir("optim");
    char path[600];
    snprintf(path, sizeof path, "%s/optim.safetensors", dir);
    clcl_safetensors_writer *w;
    clcl_safetensors *st;
    cr_assert_eq(clcl_safetensors_writer_create(&w), CLCL_OK);
    cr_assert_eq(clcl_optim_save(ob, w), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_safetensors_write(w, path), CLCL_OK);
    clcl_safetensors_writer_free(w);
    clcl_optim_free(ob);
    cr_assert_eq(clcl_optim_create(ctx, &cfg, b.p, NPARAMS, &ob), CLCL_OK);
    cr_assert_eq(clcl_safetensors_read(path, &st), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_optim_load(ob, st), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(clcl_optim_steps(ob), 2);

    /* A different kind refuses the file. */
    clcl_optim *osgd;
    clcl_optim_config sgd = {.kind = CLCL_OPTIM_SGD, .momentum = 0.9f};
    cr_assert_eq(clcl_optim_create(ctx, &sgd, b.p, NPARAMS, &osgd), CLCL_OK);
    cr_expect_eq(clcl_optim_load(osgd, st), CLCL_ERR_FORMAT);
    cr_expect(strstr(clcl_last_error(), "'lars', this run uses 'sgd'"), "%s", clcl_last_error());
    clcl_optim_free(osgd);
    clcl_safetensors_free(st);

    float **ga = set_grads(&a, &sa, 0.5f), **gb = set_grads(&b, &sb, 0.5f);
    cr_assert_eq(clcl_optim_step(oa, 0.3f), CLCL_OK);
    cr_assert_eq(clcl_optim_step(ob, 0.3f), CLCL_OK);
    float *ha = malloc(sizes[0] * sizeof *ha), *hb = malloc(sizes[0] * sizeof *hb);
    for (int i = 0; i < NPARAMS; i++) {
        cr_assert_eq(clcl_tensor_read(ctx, &a.p[i].value, ha), CLCL_OK);
        cr_assert_eq(clcl_tensor_read(ctx, &b.p[i].value, hb), CLCL_OK);
        cr_expect_eq(memcmp(ha, hb, sizes[i] * sizeof *ha), 0, "parameter %d differs", i);
        free(ga[i]);
        free(gb[i]);
    }
    free(ga);
    free(gb);
    free(ha);
    free(hb);
    clcl_optim_free(oa);
    clcl_optim_free(ob);
    fixture_free(&a);
    fixture_free(&b);
    clcl_context_free(ctx);
}

Test(optim, loading_a_state_with_a_wrong_shape_names_it) {
    clcl_context *ctx = test_context();
    fixture f;
    clcl_optim *opt;
    clcl_optim_config cfg = {.kind = CLCL_OPTIM_SGD, .momentum = 0.9f};
    fixture_init(&f, ctx, 1);
    cr_assert_eq(clcl_optim_create(ctx, &cfg, f.p, NPARAMS, &opt), CLCL_OK);
    clcl_safetensors_writer *w;
    cr_assert_eq(clcl_safetensors_writer_create(&w), CLCL_OK);
    cr_assert_eq(clcl_optim_save(opt, w), CLCL_OK);
    const char *dir = test_temp_dir("optim-bad");
    char path[600];
    snprintf(path, sizeof path, "%s/o.safetensors", dir);
    cr_assert_eq(clcl_safetensors_write(w, path), CLCL_OK);
    clcl_safetensors_writer_free(w);

    /* The same names with parameter 2 one element longer. */
    clcl_tensor_free(&f.p[2].value);
    clcl_tensor_free(&f.p[2].grad);
    int longer = sizes[2] + 1;
    cr_assert_eq(clcl_tensor_create(ctx, &f.p[2].value, 1, &longer), CLCL_OK);
    cr_assert_eq(clcl_tensor_create(ctx, &f.p[2].grad, 1, &longer), CLCL_OK);
    clcl_optim *other;
    cr_assert_eq(clcl_optim_create(ctx, &cfg, f.p, NPARAMS, &other), CLCL_OK);
    clcl_safetensors *st;
    cr_assert_eq(clcl_safetensors_read(path, &st), CLCL_OK);
    cr_expect_eq(clcl_optim_load(other, st), CLCL_ERR_FORMAT);
    cr_expect(strstr(clcl_last_error(), "'optim.momentum.p2.weight' is F32 (441); expected F32 "
                                        "(442)"),
              "%s", clcl_last_error());
    clcl_safetensors_free(st);
    clcl_optim_free(other);
    clcl_optim_free(opt);
    fixture_free(&f);
    clcl_context_free(ctx);
}

Test(optim, bad_configurations_are_refused) {
    clcl_context *ctx = test_context();
    fixture f;
    clcl_optim *opt;
    fixture_init(&f, ctx, 1);
    cr_expect_eq(clcl_optim_create(ctx, &(clcl_optim_config){.momentum = 1.5f}, f.p, NPARAMS, &opt),
                 CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "momentum 1.5"), "%s", clcl_last_error());
    cr_expect_eq(clcl_optim_create(ctx, &(clcl_optim_config){.nesterov = 1}, f.p, NPARAMS, &opt),
                 CLCL_ERR_ARGUMENT);
    cr_expect_eq(
        clcl_optim_create(ctx, &(clcl_optim_config){.weight_decay = -1}, f.p, NPARAMS, &opt),
        CLCL_ERR_ARGUMENT);
    cr_expect_eq(clcl_optim_create(ctx, &(clcl_optim_config){.kind = 7}, f.p, NPARAMS, &opt),
                 CLCL_ERR_ARGUMENT);
    cr_expect_eq(clcl_optim_create(ctx, &(clcl_optim_config){0}, f.p, 0, &opt), CLCL_ERR_ARGUMENT);
    clcl_param mismatched = f.p[0];
    mismatched.grad = f.p[1].grad;
    cr_expect_eq(clcl_optim_create(ctx, &(clcl_optim_config){0}, &mismatched, 1, &opt),
                 CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "'p0.weight' has 70001 values but 5 gradients"), "%s",
              clcl_last_error());
    cr_assert_eq(clcl_optim_create(ctx, &(clcl_optim_config){0}, f.p, NPARAMS, &opt), CLCL_OK);
    cr_expect_eq(clcl_optim_step(opt, NAN), CLCL_ERR_ARGUMENT);
    cr_expect_eq(clcl_optim_step(opt, -1.0f), CLCL_ERR_ARGUMENT);
    cr_expect_null(clcl_optim_buffer(opt, 0));
    clcl_optim_free(opt);
    fixture_free(&f);
    clcl_context_free(ctx);
}

Test(optim, schedule_warms_up_linearly_then_decays_as_a_cosine) {
    clcl_lr_schedule s = {.base_lr = 0.3,
                          .scaling = CLCL_LR_SCALE_LINEAR,
                          .batch_size = 512,
                          .warmup_steps = 10,
                          .total_steps = 110};
    const double pi = 3.14159265358979323846;
    cr_expect_float_eq(clcl_lr_peak(&s), 0.6, 1e-12);
    cr_expect_float_eq(clcl_lr_at(&s, 0), 0.06, 1e-12);
    cr_expect_float_eq(clcl_lr_at(&s, 4), 0.3, 1e-12);
    cr_expect_float_eq(clcl_lr_at(&s, 9), 0.6, 1e-12);
    cr_expect_float_eq(clcl_lr_at(&s, 10), 0.6, 1e-12);
    cr_expect_float_eq(clcl_lr_at(&s, 35), 0.6 * 0.5 * (1 + cos(pi * 0.25)), 1e-12);
    cr_expect_float_eq(clcl_lr_at(&s, 60), 0.3, 1e-12);
    cr_expect_float_eq(clcl_lr_at(&s, 109), 0.6 * 0.5 * (1 + cos(pi * 0.99)), 1e-12);
    cr_expect_float_eq(clcl_lr_at(&s, 110), 0.0, 1e-15);
    cr_expect_float_eq(clcl_lr_at(&s, 500), 0.0, 1e-15);
    for (int64_t t = 11; t < 110; t++)
        cr_expect(clcl_lr_at(&s, t) < clcl_lr_at(&s, t - 1), "not decreasing at %ld", (long)t);

    clcl_lr_schedule sq = {.base_lr = 0.075, .scaling = CLCL_LR_SCALE_SQRT, .batch_size = 256};
    cr_expect_float_eq(clcl_lr_at(&sq, 1000), 1.2, 1e-12); /* constant: no total given */
    clcl_lr_schedule plain = {.base_lr = 0.1, .batch_size = 4096, .total_steps = 4};
    cr_expect_float_eq(clcl_lr_at(&plain, 0), 0.1, 1e-12);
    cr_expect_float_eq(clcl_lr_at(&plain, 2), 0.05, 1e-12);
}
