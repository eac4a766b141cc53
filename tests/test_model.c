/* The ResNets against PyTorch: names and parameter counts as torchvision's, the seeded
 * initialization against an independent Python version, forward outputs and every
 * parameter gradient against float64 PyTorch (tests/gen_model_golden.py), a short SGD loss
 * trajectory, steps that allocate nothing, and safetensors loads that refuse what does not
 * fit.
 *
 * Tolerances, per element |got - ref| <= atol + rtol |ref|, where atol is a fraction of the
 * tensor's largest reference magnitude (elements near zero carry no relative precision):
 * outputs and running statistics rtol 1e-4, atol 1e-4 max|ref|; gradients rtol 1e-3, atol
 * 1e-3 max|ref|; the loss trajectory rtol 1e-3. head.0.bias feeds a batchnorm, so its
 * exact gradient is 0: it must stay below 1e-4 max|grad head.1.bias|. PyTorch's own
 * float32 run strays from the float64 reference by at most 4e-5 (outputs) and 2e-4
 * (gradients) on these cases (the golden files' metadata records it). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clcl/model.h"
#include "clcl/optim.h"
#include "clcl/safetensors.h"
#include "support.h"

/* ---- helpers ------------------------------------------------------------------------ */

static float *read_all(clcl_context *ctx, const clcl_tensor *t) {
    float *h = malloc(t->count * sizeof *h);
    cr_assert_eq(clcl_tensor_read(ctx, t, h), CLCL_OK);
    return h;
}

static clcl_safetensors *golden(const char *file) {
    char path[1024];
    const char *dir = getenv("CLCL_TEST_DATA");
    cr_assert(dir, "CLCL_TEST_DATA is not set (ctest sets it to tests/data)");
    snprintf(path, sizeof path, "%s/%s", dir, file);
    clcl_safetensors *st;
    cr_assert_eq(clcl_safetensors_read(path, &st), CLCL_OK, "%s", clcl_last_error());
    const char *format = clcl_safetensors_metadata(st, "format");
    cr_assert(format && !strcmp(format, "clcl-golden"), "%s is not a clcl golden file", path);
    cr_assert_str_eq(clcl_safetensors_metadata(st, "version"), "1", "%s: stale golden", path);
    return st;
}

static int meta_int(const clcl_safetensors *st, const char *key) {
    const char *v = clcl_safetensors_metadata(st, key);
    cr_assert_not_null(v, "golden metadata lacks '%s'", key);
    return atoi(v);
}

/* The model a golden file describes, with the golden weights loaded. */
static clcl_model *golden_model(clcl_context *ctx, const clcl_safetensors *st) {
    clcl_model_config cfg = {.in_channels = meta_int(st, "in_channels"),
                             .width = strtof(clcl_safetensors_metadata(st, "width"), NULL),
                             .head_hidden = meta_int(st, "head_hidden"),
                             .head_out = meta_int(st, "head_out"),
                             .head_no_last_bias = !meta_int(st, "head_last_bias"),
                             .seed = 99};
    cr_assert_eq(clcl_arch_parse(clcl_safetensors_metadata(st, "arch"), &cfg.arch), CLCL_OK);
    cr_assert_eq(clcl_stem_parse(clcl_safetensors_metadata(st, "stem"), &cfg.stem), CLCL_OK);
    clcl_model *m;
    cr_assert_eq(clcl_model_create(ctx, &cfg, &m), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_model_read(m, st, CLCL_MODEL_IGNORE_UNEXPECTED), CLCL_OK, "%s",
                 clcl_last_error());

    /* Every model tensor was in the file (the read checks it); the file holds no other
     * weights, so the two name sets are equal. */
    static const char *extra[] = {"input", "dproj",  "dfeat", "out.",
                                  "grad.", "after.", "eval.", "traj."};
    int weights = 0, np, nb;
    for (int i = 0; i < clcl_safetensors_count(st); i++) {
        const char *name = clcl_safetensors_at(st, i)->name;
        int is_extra = 0;
        for (size_t k = 0; k < sizeof extra / sizeof *extra; k++)
            is_extra |= !strncmp(name, extra[k], strlen(extra[k]));
        weights += !is_extra;
    }
    clcl_model_params(m, &np);
    clcl_model_buffers(m, &nb);
    cr_expect_eq(weights, np + nb, "the golden file holds %d weights, the model %d", weights,
                 np + nb);
    return m;
}

static clcl_tensor golden_tensor(clcl_context *ctx, const clcl_safetensors *st, const char *name) {
    const clcl_safetensors_entry *e = clcl_safetensors_find(st, name);
    cr_assert_not_null(e, "golden file lacks '%s'", name);
    int shape[4];
    for (int i = 0; i < e->ndim; i++)
        shape[i] = (int)e->shape[i];
    clcl_tensor t;
    cr_assert_eq(clcl_tensor_create(ctx, &t, e->ndim, shape), CLCL_OK);
    cr_assert_eq(clcl_safetensors_to_device(ctx, st, e, &t), CLCL_OK, "%s", clcl_last_error());
    return t;
}

/* Compares a device tensor with golden `name`; atol = atol_frac * max |ref|. */
static void expect_golden(clcl_context *ctx, const clcl_tensor *t, const clcl_safetensors *st,
                          const char *name, double rtol, double atol_frac) {
    const clcl_safetensors_entry *e = clcl_safetensors_find(st, name);
    cr_assert_not_null(e, "golden file lacks '%s'", name);
    cr_assert_eq(e->count, t->count, "'%s': %zu golden values, %zu here", name, e->count, t->count);
    float *got = malloc(t->count * sizeof *got);
    double *ref = malloc(t->count * sizeof *ref), big = 0;
    cr_assert_eq(clcl_tensor_read(ctx, t, got), CLCL_OK);
    for (size_t i = 0; i < t->count; i++) {
        ref[i] = ((const float *)e->data)[i];
        big = fabs(ref[i]) > big ? fabs(ref[i]) : big;
    }
    expect_close(got, ref, t->count, atol_frac * big + 1e-30, rtol, name);
    free(got);
    free(ref);
}

static double max_abs(const clcl_safetensors *st, const char *name) {
    const clcl_safetensors_entry *e = clcl_safetensors_find(st, name);
    double big = 0;
    cr_assert_not_null(e, "golden file lacks '%s'", name);
    for (size_t i = 0; i < e->count; i++)
        big = fmax(big, fabs(((const float *)e->data)[i]));
    return big;
}

static void expect_gradients(clcl_context *ctx, clcl_model *m, const clcl_safetensors *st) {
    int n;
    clcl_param *p = clcl_model_params(m, &n);
    for (int i = 0; i < n; i++) {
        char name[96];
        snprintf(name, sizeof name, "grad.%s", p[i].name);
        if (strcmp(p[i].name, "head.0.bias")) {
            expect_golden(ctx, &p[i].grad, st, name, 1e-3, 1e-3);
            continue;
        }
        /* Zero in exact arithmetic: only rounding noise, small next to beta's gradient. */
        float *g = read_all(ctx, &p[i].grad);
        double worst = 0, bound = 1e-4 * max_abs(st, "grad.head.1.bias");
        for (size_t k = 0; k < p[i].grad.count; k++)
            worst = fmax(worst, fabs(g[k]));
        cr_expect(worst <= bound && max_abs(st, name) <= bound, "head.0.bias gradient %g > %g",
                  worst, bound);
        free(g);
    }
}

static void expect_buffers(clcl_context *ctx, clcl_model *m, const clcl_safetensors *st) {
    int n;
    const clcl_model_buffer *b = clcl_model_buffers(m, &n);
    for (int i = 0; i < n; i++) {
        char name[96];
        snprintf(name, sizeof name, "after.%s", b[i].name);
        if (b[i].tensor) {
            expect_golden(ctx, b[i].tensor, st, name, 1e-4, 1e-4);
        } else {
            const clcl_safetensors_entry *e = clcl_safetensors_find(st, name);
            cr_assert_not_null(e);
            cr_expect_eq(*b[i].count, *(const int64_t *)e->data, "%s", name);
        }
    }
}

/* A training forward and backward from the golden gradients, then an eval forward. */
static void run_golden(const char *file) {
    clcl_context *ctx = test_context();
    clcl_safetensors *st = golden(file);
    clcl_model *m = golden_model(ctx, st);
    clcl_tensor x = golden_tensor(ctx, st, "input"), dproj = {0}, dfeat = {0}, f, p;
    int has_dproj = clcl_safetensors_find(st, "dproj") != NULL;
    int has_dfeat = clcl_safetensors_find(st, "dfeat") != NULL;
    if (has_dproj)
        dproj = golden_tensor(ctx, st, "dproj");
    if (has_dfeat)
        dfeat = golden_tensor(ctx, st, "dfeat");

    cr_assert_eq(clcl_model_forward(m, &x, CLCL_MODE_TRAIN, &f, &p), CLCL_OK, "%s",
                 clcl_last_error());
    expect_golden(ctx, &f, st, "out.features", 1e-4, 1e-4);
    expect_golden(ctx, &p, st, "out.projection", 1e-4, 1e-4);
    cr_assert_eq(clcl_model_backward(m, has_dproj ? &dproj : NULL, has_dfeat ? &dfeat : NULL),
                 CLCL_OK, "%s", clcl_last_error());
    expect_gradients(ctx, m, st);
    expect_buffers(ctx, m, st);

    cr_assert_eq(clcl_model_forward(m, &x, CLCL_MODE_EVAL, &f, &p), CLCL_OK, "%s",
                 clcl_last_error());
    expect_golden(ctx, &f, st, "eval.features", 1e-4, 1e-4);
    expect_golden(ctx, &p, st, "eval.projection", 1e-4, 1e-4);
    clcl_tensor_free(&x);
    clcl_tensor_free(&dproj);
    clcl_tensor_free(&dfeat);
    clcl_model_free(m);
    clcl_safetensors_free(st);
    clcl_context_free(ctx);
}

static clcl_tensor random_tensor(clcl_context *ctx, int ndim, const int *shape, uint64_t seed) {
    clcl_tensor t;
    cr_assert_eq(clcl_tensor_create(ctx, &t, ndim, shape), CLCL_OK);
    float *h = malloc(t.count * sizeof *h);
    for (size_t i = 0; i < t.count; i++)
        h[i] = test_rand_uniform(&seed, -1, 1);
    cr_assert_eq(clcl_tensor_write(ctx, &t, h), CLCL_OK);
    free(h);
    return t;
}

static const clcl_model_config small = {
    .arch = CLCL_ARCH_RESNET18, .stem = CLCL_STEM_CIFAR, .width = 0.125f, .seed = 5};

/* ---- layout, counts, initialization ------------------------------------------------- */

Test(model, parameter_counts_equal_torchvision) {
    size_t backbone, head;
    clcl_model_config r18 = {.arch = CLCL_ARCH_RESNET18, .stem = CLCL_STEM_IMAGENET};
    clcl_model_config r50 = {.arch = CLCL_ARCH_RESNET50, .stem = CLCL_STEM_IMAGENET};
    cr_assert_eq(clcl_model_count(&r18, &backbone, &head), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(backbone, 11176512u, "resnet18: %zu", backbone);
    cr_expect_eq(head, 512u * 512 + 512 + 2 * 512 + 512 * 128 + 128, "resnet18 head: %zu", head);
    cr_assert_eq(clcl_model_count(&r50, &backbone, &head), CLCL_OK);
    cr_expect_eq(backbone, 23508032u, "resnet50: %zu", backbone);
    cr_expect_eq(head, 2048u * 2048 + 2048 + 2 * 2048 + 2048 * 128 + 128, "resnet50 head");

    /* The CIFAR stem swaps a 7x7 conv1 for a 3x3; one input channel shrinks conv1. */
    r18.stem = CLCL_STEM_CIFAR;
    cr_assert_eq(clcl_model_count(&r18, &backbone, &head), CLCL_OK);
    cr_expect_eq(backbone, 11176512u - 64 * 3 * 49 + 64 * 3 * 9);
    r18.in_channels = 1;
    cr_assert_eq(clcl_model_count(&r18, &backbone, &head), CLCL_OK);
    cr_expect_eq(backbone, 11176512u - 64 * 3 * 49 + 64 * 1 * 9);
}

Test(model, device_model_holds_the_counted_parameters_and_torchvision_names) {
    clcl_context *ctx = test_context();
    clcl_model_config cfg = {.arch = CLCL_ARCH_RESNET50, .stem = CLCL_STEM_IMAGENET};
    clcl_model *m;
    cr_assert_eq(clcl_model_create(ctx, &cfg, &m), CLCL_OK, "%s", clcl_last_error());
    int n, nb;
    clcl_param *p = clcl_model_params(m, &n);
    const clcl_model_buffer *b = clcl_model_buffers(m, &nb);
    size_t total = 0;
    int backbone = 0;
    for (int i = 0; i < n; i++) {
        if (!p[i].in_head) {
            total += p[i].value.count;
            backbone++;
        }
        cr_expect_eq(p[i].value.count, p[i].grad.count);
    }
    cr_expect_eq(total, 23508032u);
    cr_expect_eq(backbone, 161 - 2, "torchvision's resnet50 has 161 parameters with fc");
    cr_expect_eq(nb, 3 * 53 + 3, "53 batchnorms in the backbone, one in the head");
    cr_expect_eq(clcl_model_feature_dim(m), 2048);
    cr_expect_eq(clcl_model_projection_dim(m), 128);
    cr_expect_str_eq(p[0].name, "conv1.weight");
    cr_expect_str_eq(p[1].name, "bn1.weight");
    cr_expect_str_eq(p[3].name, "layer1.0.conv1.weight");
    cr_expect_str_eq(b[2].name, "bn1.num_batches_tracked");
    cr_expect_null(b[2].tensor);
    cr_expect_not_null(b[2].count);

    /* Bottleneck v1.5: the stride is in conv2 of the first block of layers 2-4. */
    for (int i = 0; i < n; i++) {
        if (!strcmp(p[i].name, "layer2.0.conv2.weight"))
            cr_expect(p[i].value.shape[0] == 128 && p[i].value.shape[2] == 3);
        if (!strcmp(p[i].name, "layer1.0.downsample.0.weight"))
            cr_expect(p[i].value.shape[0] == 256 && p[i].value.shape[1] == 64 &&
                      p[i].value.shape[2] == 1);
        if (!strcmp(p[i].name, "layer4.2.bn3.bias"))
            cr_expect(p[i].kind == CLCL_PARAM_BN_BIAS && p[i].excluded);
        if (!strcmp(p[i].name, "head.0.bias"))
            cr_expect(p[i].kind == CLCL_PARAM_LINEAR_BIAS && p[i].excluded && p[i].in_head);
        if (!strcmp(p[i].name, "head.3.weight"))
            cr_expect(p[i].kind == CLCL_PARAM_LINEAR_WEIGHT && !p[i].excluded &&
                      p[i].value.shape[0] == 128 && p[i].value.shape[1] == 2048);
    }
    cr_expect_str_eq(p[n - 1].name, "head.3.bias");
    clcl_model_free(m);
    clcl_context_free(ctx);
}

Test(model, width_rounds_half_up) {
    cr_expect_eq(clcl_model_channels(64, 0.25f), 16);
    cr_expect_eq(clcl_model_channels(64, 0.3f), 19);       /* 19.2 */
    cr_expect_eq(clcl_model_channels(64, 0.2578125f), 17); /* 16.5 exactly */
    cr_expect_eq(clcl_model_channels(64, 0.001f), 1);
    size_t b, h;
    clcl_model_config cfg = {.arch = CLCL_ARCH_RESNET50,
                             .width = 0.3f,
                             .head_hidden = 7,
                             .head_out = 5,
                             .head_no_last_bias = 1};
    cr_assert_eq(clcl_model_count(&cfg, &b, &h), CLCL_OK);
    cr_expect_eq(h, 4u * 154 * 7 + 7 + 2 * 7 + 7 * 5, "head of a width-0.3 resnet50: %zu", h);
}

Test(model, initialization_matches_an_independent_implementation) {
    clcl_context *ctx = test_context();
    clcl_safetensors *st = golden("model_init.safetensors");
    clcl_model_config cfg = {.arch = CLCL_ARCH_RESNET18,
                             .stem = CLCL_STEM_CIFAR,
                             .width = 0.125f,
                             .seed = (uint64_t)meta_int(st, "seed")};
    clcl_model *m;
    cr_assert_eq(clcl_model_create(ctx, &cfg, &m), CLCL_OK, "%s", clcl_last_error());
    int n, checked = 0;
    clcl_param *p = clcl_model_params(m, &n);
    for (int i = 0; i < n; i++) {
        char name[96];
        snprintf(name, sizeof name, "init.%s", p[i].name);
        const clcl_safetensors_entry *e = clcl_safetensors_find(st, name);
        if (!e)
            continue;
        float *v = read_all(ctx, &p[i].value);
        double ref[16];
        for (int k = 0; k < 16; k++)
            ref[k] = ((const float *)e->data)[k];
        expect_close(v, ref, 16, 0, 1e-6, name);
        free(v);
        checked++;
    }
    cr_expect_eq(checked, 7);
    clcl_model_free(m);
    clcl_safetensors_free(st);
    clcl_context_free(ctx);
}

Test(model, initialization_has_torchvision_statistics_and_a_seed_fixes_it) {
    clcl_context *ctx = test_context();
    clcl_model_config cfg = {.arch = CLCL_ARCH_RESNET18, .width = 0.5f, .seed = 17};
    clcl_model *a, *b;
    cr_assert_eq(clcl_model_create(ctx, &cfg, &a), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_model_create(ctx, &cfg, &b), CLCL_OK);
    int n;
    clcl_param *pa = clcl_model_params(a, &n), *pb = clcl_model_params(b, &n);
    for (int i = 0; i < n; i++) {
        float *va = read_all(ctx, &pa[i].value), *vb = read_all(ctx, &pb[i].value);
        size_t count = pa[i].value.count;
        cr_expect_eq(memcmp(va, vb, count * sizeof *va), 0, "%s differs", pa[i].name);
        double s = 0, s2 = 0, lo = INFINITY, hi = -INFINITY;
        for (size_t k = 0; k < count; k++) {
            s += va[k];
            s2 += (double)va[k] * va[k];
            lo = va[k] < lo ? va[k] : lo;
            hi = va[k] > hi ? va[k] : hi;
        }
        double mean = s / count, sd = sqrt(s2 / count - mean * mean);
        if (pa[i].kind == CLCL_PARAM_CONV_WEIGHT && count > 20000) {
            double want = sqrt(2.0 / pa[i].fan_out);
            cr_expect(fabs(sd / want - 1) < 0.03, "%s: sd %g, want %g", pa[i].name, sd, want);
            cr_expect(fabs(mean) < 0.03 * want, "%s: mean %g", pa[i].name, mean);
        } else if (pa[i].kind == CLCL_PARAM_LINEAR_WEIGHT) {
            double bound = 1.0 / sqrt((double)pa[i].fan_in);
            cr_expect(lo >= -bound && hi <= bound && hi > 0.95 * bound, "%s", pa[i].name);
            cr_expect(fabs(sd / (bound / sqrt(3.0)) - 1) < 0.03, "%s: sd %g", pa[i].name, sd);
        } else if (pa[i].kind == CLCL_PARAM_BN_WEIGHT) {
            cr_expect(lo == 1.0 && hi == 1.0, "%s", pa[i].name);
        } else if (pa[i].kind == CLCL_PARAM_BN_BIAS) {
            cr_expect(lo == 0.0 && hi == 0.0, "%s", pa[i].name);
        }
        free(va);
        free(vb);
    }
    clcl_model_free(b);

    /* Another seed, other weights. */
    cfg.seed = 18;
    cr_assert_eq(clcl_model_create(ctx, &cfg, &b), CLCL_OK);
    pb = clcl_model_params(b, &n);
    float *va = read_all(ctx, &pa[0].value), *vb = read_all(ctx, &pb[0].value);
    cr_expect_neq(memcmp(va, vb, pa[0].value.count * sizeof *va), 0);
    free(va);
    free(vb);
    clcl_model_free(a);
    clcl_model_free(b);
    clcl_context_free(ctx);
}

/* ---- against PyTorch ---------------------------------------------------------------- */

Test(model, resnet18_cifar_stem_batch2_matches_pytorch) {
    run_golden("resnet18_cifar_w0.5_b2.safetensors");
}

Test(model, resnet18_imagenet_stem_odd_size_batch3_matches_pytorch) {
    run_golden("resnet18_imagenet_w0.25_b3.safetensors");
}

/* The same with a GPU's limits (256 work-items, 32 KiB of local memory), in this test's
 * process only, so that no kernel leans on PoCL's generous ones. */
Test(model, resnet18_matches_pytorch_with_gpu_sized_limits) {
    setenv("CLCL_MAX_WORK_GROUP", "256", 1);
    setenv("CLCL_MAX_LOCAL_MEM", "32768", 1);
    run_golden("resnet18_imagenet_w0.25_b3.safetensors");
}

Test(model, resnet50_one_channel_no_last_bias_matches_pytorch) {
    run_golden("resnet50_cifar_w0.125_b4.safetensors");
}

Test(model, resnet18_one_channel_batch8_matches_pytorch) {
    run_golden("resnet18_cifar_w0.125_b8_sgd.safetensors");
}

/* Mean squared error of the projections to a target under torch.optim.SGD (momentum 0.9,
 * Nesterov, weight decay on every parameter), step by step as PyTorch ran it. */
Test(model, sgd_loss_trajectory_matches_pytorch) {
    /* One fixed path for every product and convolution (our GEMM kernel, the columns), not
     * the ones this build's timing happens to pick: this model has a channel on a ReLU
     * boundary, and the rounding of the direct convolution kernels flips it from the third
     * step on (docs/layers.md). Each path is checked against the references elsewhere. */
    setenv("CLCL_GEMM", "own", 1);
    clcl_context *ctx = test_context();
    clcl_safetensors *st = golden("resnet18_cifar_w0.125_b8_sgd.safetensors");
    clcl_model *m = golden_model(ctx, st);
    clcl_tensor x = golden_tensor(ctx, st, "input"), dproj, p;
    const clcl_safetensors_entry *target = clcl_safetensors_find(st, "traj.target");
    const clcl_safetensors_entry *losses = clcl_safetensors_find(st, "traj.loss");
    cr_assert(target && losses && losses->count <= 16);
    int np;
    clcl_param *params = clcl_model_params(m, &np);
    clcl_optim *opt;
    clcl_optim_config oc = {.kind = CLCL_OPTIM_SGD,
                            .momentum = 0.9f,
                            .nesterov = 1,
                            .weight_decay = strtof(clcl_safetensors_metadata(st, "traj_wd"), NULL),
                            .decay_all = 1};
    float lr = strtof(clcl_safetensors_metadata(st, "traj_lr"), NULL);
    cr_assert_eq(clcl_optim_create(ctx, &oc, params, np, &opt), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_tensor_create(ctx, &dproj, 2, (int[]){8, clcl_model_projection_dim(m)}),
                 CLCL_OK);
    size_t count = dproj.count;
    float *g = malloc(count * sizeof *g);
    double *got = malloc(losses->count * sizeof *got), *ref = malloc(losses->count * sizeof *ref);
    for (size_t step = 0; step < losses->count; step++) {
        cr_assert_eq(clcl_model_forward(m, &x, CLCL_MODE_TRAIN, NULL, &p), CLCL_OK, "%s",
                     clcl_last_error());
        float *h = read_all(ctx, &p);
        double loss = 0;
        for (size_t i = 0; i < count; i++) {
            double d = (double)h[i] - ((const float *)target->data)[i];
            loss += d * d / count;
            g[i] = (float)(2 * d / count);
        }
        free(h);
        got[step] = loss;
        ref[step] = ((const float *)losses->data)[step];
        cr_assert_eq(clcl_tensor_write(ctx, &dproj, g), CLCL_OK);
        cr_assert_eq(clcl_model_backward(m, &dproj, NULL), CLCL_OK, "%s", clcl_last_error());
        cr_assert_eq(clcl_optim_step(opt, lr), CLCL_OK, "%s", clcl_last_error());
    }
    float gotf[16];
    for (size_t i = 0; i < losses->count; i++)
        gotf[i] = (float)got[i];
    expect_close(gotf, ref, losses->count, 0, 1e-3, "loss trajectory");
    cr_expect_lt(got[losses->count - 1], 0.75 * got[0], "the loss did not fall: %g -> %g", got[0],
                 got[losses->count - 1]);
    free(g);
    free(got);
    free(ref);
    clcl_optim_free(opt);
    clcl_tensor_free(&x);
    clcl_tensor_free(&dproj);
    clcl_model_free(m);
    clcl_safetensors_free(st);
    clcl_context_free(ctx);
}

/* ---- steps, determinism -------------------------------------------------------------- */

static void train_step(clcl_context *ctx, clcl_model *m, const clcl_tensor *x,
                       const clcl_tensor *dproj) {
    clcl_tensor p;
    cr_assert_eq(clcl_model_forward(m, x, CLCL_MODE_TRAIN, NULL, &p), CLCL_OK, "%s",
                 clcl_last_error());
    cr_assert_eq(clcl_model_backward(m, dproj, NULL), CLCL_OK, "%s", clcl_last_error());
}

Test(model, training_steps_allocate_nothing_after_the_first) {
    clcl_context *ctx = test_context();
    clcl_model *m;
    cr_assert_eq(clcl_model_create(ctx, &small, &m), CLCL_OK, "%s", clcl_last_error());
    clcl_tensor x = random_tensor(ctx, 4, (int[]){4, 3, 16, 16}, 1);
    clcl_tensor xe = random_tensor(ctx, 4, (int[]){7, 3, 16, 16}, 2);
    clcl_tensor dproj = random_tensor(ctx, 2, (int[]){4, 128}, 3), f;
    train_step(ctx, m, &x, &dproj);
    size_t after_one = clcl_model_allocations(m);
    train_step(ctx, m, &x, &dproj);
    cr_expect_eq(clcl_model_allocations(m), after_one);

    /* An eval pass at another batch size (the kNN monitor) adds its buffers once. */
    cr_assert_eq(clcl_model_forward_backbone(m, &xe, CLCL_MODE_EVAL, &f), CLCL_OK, "%s",
                 clcl_last_error());
    cr_expect_eq(f.shape[0], 7);
    cr_expect_eq(f.shape[1], 64);
    train_step(ctx, m, &x, &dproj);
    size_t after_eval = clcl_model_allocations(m);
    cr_assert_eq(clcl_model_forward_backbone(m, &xe, CLCL_MODE_EVAL, &f), CLCL_OK);
    train_step(ctx, m, &x, &dproj);
    train_step(ctx, m, &x, &dproj);
    cr_expect_eq(clcl_model_allocations(m), after_eval);
    clcl_tensor_free(&x);
    clcl_tensor_free(&xe);
    clcl_tensor_free(&dproj);
    clcl_model_free(m);
    clcl_context_free(ctx);
}

Test(model, forward_and_backward_give_the_same_bits_every_run) {
    clcl_context *ctx = test_context();
    clcl_model *a, *b;
    clcl_model_config cfg = small;
    cfg.stem = CLCL_STEM_IMAGENET;
    cr_assert_eq(clcl_model_create(ctx, &cfg, &a), CLCL_OK, "%s", clcl_last_error());
    cr_assert_eq(clcl_model_create(ctx, &cfg, &b), CLCL_OK);
    clcl_tensor x = random_tensor(ctx, 4, (int[]){3, 3, 29, 29}, 4);
    clcl_tensor dproj = random_tensor(ctx, 2, (int[]){3, 128}, 5);
    train_step(ctx, a, &x, &dproj);
    train_step(ctx, a, &x, &dproj); /* a second step reuses the pool's buffers */
    train_step(ctx, b, &x, &dproj);
    train_step(ctx, b, &x, &dproj);
    int n;
    clcl_param *pa = clcl_model_params(a, &n), *pb = clcl_model_params(b, &n);
    for (int i = 0; i < n; i++) {
        float *ga = read_all(ctx, &pa[i].grad), *gb = read_all(ctx, &pb[i].grad);
        cr_expect_eq(memcmp(ga, gb, pa[i].grad.count * sizeof *ga), 0, "%s", pa[i].name);
        double s = 0;
        for (size_t k = 0; k < pa[i].grad.count; k++)
            s += fabs(ga[k]);
        cr_expect_gt(s, 0.0, "gradient of %s is all zero", pa[i].name);
        free(ga);
        free(gb);
    }
    clcl_tensor_free(&x);
    clcl_tensor_free(&dproj);
    clcl_model_free(a);
    clcl_model_free(b);
    clcl_context_free(ctx);
}

Test(model, bad_inputs_and_calls_are_refused_before_anything_runs) {
    clcl_context *ctx = test_context();
    clcl_model *m;
    cr_assert_eq(clcl_model_create(ctx, &small, &m), CLCL_OK);
    clcl_tensor x1 = random_tensor(ctx, 4, (int[]){2, 1, 16, 16}, 1);
    clcl_tensor one = random_tensor(ctx, 4, (int[]){1, 3, 16, 16}, 1);
    clcl_tensor x = random_tensor(ctx, 4, (int[]){2, 3, 16, 16}, 1);
    clcl_tensor bad = random_tensor(ctx, 2, (int[]){2, 64}, 1), f, p;

    cr_expect_eq(clcl_model_forward(m, &x1, CLCL_MODE_TRAIN, &f, &p), CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "input (2, 1, 16, 16): expected (N, 3, H, W)"), "%s",
              clcl_last_error());
    cr_expect_eq(clcl_model_backward(m, &bad, NULL), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "needs a training-mode forward"), "%s", clcl_last_error());
    cr_expect_eq(clcl_model_forward(m, &one, CLCL_MODE_TRAIN, &f, &p), CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "batchnorm 'head.1'"), "%s", clcl_last_error());
    cr_expect_eq(clcl_model_forward(m, &one, CLCL_MODE_EVAL, &f, &p), CLCL_OK, "%s",
                 clcl_last_error());

    cr_assert_eq(clcl_model_forward(m, &x, CLCL_MODE_TRAIN, &f, &p), CLCL_OK);
    cr_expect_eq(clcl_model_backward(m, &bad, NULL), CLCL_ERR_SHAPE);
    cr_expect(strstr(clcl_last_error(), "dproj (2, 64): expected (2, 128)"), "%s",
              clcl_last_error());
    cr_expect_eq(clcl_model_backward(m, NULL, NULL), CLCL_ERR_ARGUMENT);
    cr_assert_eq(clcl_model_forward_backbone(m, &x, CLCL_MODE_TRAIN, &f), CLCL_OK);
    cr_expect_eq(clcl_model_backward(m, &p, NULL), CLCL_ERR_ARGUMENT);
    cr_expect_eq(clcl_model_backward(m, NULL, &bad), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(clcl_model_backward(m, NULL, &bad), CLCL_ERR_ARGUMENT, "backward ran twice");

    clcl_model *other;
    clcl_model_config cfg = small;
    cfg.width = -1;
    cr_expect_eq(clcl_model_create(ctx, &cfg, &other), CLCL_ERR_ARGUMENT);
    cr_expect_null(other);
    cfg = small;
    cfg.arch = 7;
    cr_expect_eq(clcl_model_create(ctx, &cfg, &other), CLCL_ERR_ARGUMENT);
    clcl_arch arch;
    cr_expect_eq(clcl_arch_parse("resnet34", &arch), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "'resnet34' (expected resnet18 or resnet50)"), "%s",
              clcl_last_error());
    clcl_tensor_free(&x1);
    clcl_tensor_free(&one);
    clcl_tensor_free(&x);
    clcl_tensor_free(&bad);
    clcl_model_free(m);
    clcl_context_free(ctx);
}

/* ---- safetensors -------------------------------------------------------------------- */

static void expect_same_model(clcl_context *ctx, clcl_model *a, clcl_model *b, int head) {
    int n, nb;
    clcl_param *pa = clcl_model_params(a, &n), *pb = clcl_model_params(b, &n);
    for (int i = 0; i < n; i++) {
        if (pa[i].in_head && !head)
            continue;
        float *va = read_all(ctx, &pa[i].value), *vb = read_all(ctx, &pb[i].value);
        cr_expect_eq(memcmp(va, vb, pa[i].value.count * sizeof *va), 0, "%s", pa[i].name);
        free(va);
        free(vb);
    }
    const clcl_model_buffer *ba = clcl_model_buffers(a, &nb), *bb = clcl_model_buffers(b, &nb);
    for (int i = 0; i < nb; i++) {
        if (ba[i].in_head && !head)
            continue;
        if (!ba[i].tensor) {
            cr_expect_eq(*ba[i].count, *bb[i].count, "%s", ba[i].name);
            continue;
        }
        float *va = read_all(ctx, ba[i].tensor), *vb = read_all(ctx, bb[i].tensor);
        cr_expect_eq(memcmp(va, vb, ba[i].tensor->count * sizeof *va), 0, "%s", ba[i].name);
        free(va);
        free(vb);
    }
}

Test(model, save_and_load_round_trip_with_buffers_and_metadata) {
    clcl_context *ctx = test_context();
    clcl_model *a, *b;
    clcl_model_config cfg = small;
    cfg.head_no_last_bias = 1;
    cfg.head_hidden = 40;
    cr_assert_eq(clcl_model_create(ctx, &cfg, &a), CLCL_OK);
    clcl_tensor x = random_tensor(ctx, 4, (int[]){3, 3, 12, 12}, 8), f, p;
    for (int i = 0; i < 3; i++) /* running statistics and counters move */
        cr_assert_eq(clcl_model_forward(a, &x, CLCL_MODE_TRAIN, &f, &p), CLCL_OK);
    const char *dir = test_temp_dir("model");
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert_eq(clcl_model_save(a, path, 0), CLCL_OK, "%s", clcl_last_error());

    /* The configuration comes back from the metadata; the weights from the tensors. */
    clcl_safetensors *st;
    clcl_model_config back;
    cr_assert_eq(clcl_safetensors_read(path, &st), CLCL_OK);
    cr_assert_eq(clcl_model_config_read(st, &back), CLCL_OK, "%s", clcl_last_error());
    cr_expect(back.arch == cfg.arch && back.stem == cfg.stem && back.width == cfg.width &&
              back.in_channels == 3 && back.head_hidden == 40 && back.head_out == 128 &&
              back.head_no_last_bias == 1);
    const clcl_safetensors_entry *e = clcl_safetensors_find(st, "layer3.1.bn2.num_batches_tracked");
    cr_assert_not_null(e);
    cr_expect(e->dtype == CLCL_DTYPE_I64 && e->ndim == 0 && *(const int64_t *)e->data == 3);
    cr_expect_null(clcl_safetensors_find(st, "head.3.bias"));
    cr_expect_str_eq(clcl_safetensors_at(st, 0)->name, "conv1.weight");
    cr_expect_str_eq(clcl_safetensors_at(st, 3)->name, "bn1.running_mean");
    clcl_safetensors_free(st);

    /* A file without the configuration (a golden file) is refused by name. */
    st = golden("model_init.safetensors");
    clcl_model_config none;
    cr_expect_eq(clcl_model_config_read(st, &none), CLCL_ERR_FORMAT);
    cr_expect(strstr(clcl_last_error(), "not a model file clcl wrote"), "%s", clcl_last_error());
    clcl_safetensors_free(st);
    back.seed = 1234;
    cr_assert_eq(clcl_model_create(ctx, &back, &b), CLCL_OK);
    cr_assert_eq(clcl_model_load(b, path, 0), CLCL_OK, "%s", clcl_last_error());
    expect_same_model(ctx, a, b, 1);
    clcl_tensor_free(&x);
    clcl_model_free(a);
    clcl_model_free(b);
    clcl_context_free(ctx);
}

Test(model, loads_refuse_what_does_not_fit_and_name_it) {
    clcl_context *ctx = test_context();
    clcl_model *a, *b, *wide, *r50;
    cr_assert_eq(clcl_model_create(ctx, &small, &a), CLCL_OK);
    clcl_model_config cfg = small;
    cfg.seed = 6;
    cr_assert_eq(clcl_model_create(ctx, &cfg, &b), CLCL_OK);
    cfg.width = 0.25f;
    cr_assert_eq(clcl_model_create(ctx, &cfg, &wide), CLCL_OK);
    cfg.arch = CLCL_ARCH_RESNET50;
    cfg.width = 0.125f;
    cr_assert_eq(clcl_model_create(ctx, &cfg, &r50), CLCL_OK);
    const char *dir = test_temp_dir("model-bad");
    char backbone[600], full[600], extra[600];
    snprintf(backbone, sizeof backbone, "%s/backbone.safetensors", dir);
    snprintf(full, sizeof full, "%s/full.safetensors", dir);
    snprintf(extra, sizeof extra, "%s/extra.safetensors", dir);
    cr_assert_eq(clcl_model_save(a, backbone, CLCL_MODEL_BACKBONE_ONLY), CLCL_OK);
    cr_assert_eq(clcl_model_save(a, full, 0), CLCL_OK);

    /* A backbone file: strict loading names the head's tensors; the flag accepts it. */
    cr_expect_eq(clcl_model_load(b, backbone, 0), CLCL_ERR_FORMAT);
    cr_expect(strstr(clcl_last_error(), "9 missing tensor(s): 'head.0.weight', 'head.0.bias', "
                                        "'head.1.weight', 'head.1.bias', 'head.1.running_mean', "
                                        "'head.1.running_var' and 3 more"),
              "%s", clcl_last_error());
    cr_expect(strstr(clcl_last_error(), "0 unexpected"), "%s", clcl_last_error());
    cr_assert_eq(clcl_model_load(b, backbone, CLCL_MODEL_BACKBONE_ONLY), CLCL_OK, "%s",
                 clcl_last_error());
    expect_same_model(ctx, a, b, 0);

    /* Another width: the first shape that differs is named. */
    cr_expect_eq(clcl_model_load(wide, full, 0), CLCL_ERR_FORMAT);
    cr_expect(strstr(clcl_last_error(), "'conv1.weight' is F32 (8, 3, 3, 3); expected F32 "
                                        "(16, 3, 3, 3)"),
              "%s", clcl_last_error());

    /* Another architecture: names missing and unexpected both. */
    cr_expect_eq(clcl_model_load(r50, full, 0), CLCL_ERR_FORMAT);
    cr_expect(strstr(clcl_last_error(), "'layer1.0.conv1.weight' is F32 (8, 8, 3, 3); expected "
                                        "F32 (8, 8, 1, 1)"),
              "%s", clcl_last_error());

    /* A torchvision state dict carries fc.*: unexpected unless asked to skip it. */
    clcl_safetensors_writer *w;
    cr_assert_eq(clcl_safetensors_writer_create(&w), CLCL_OK);
    cr_assert_eq(clcl_model_write(a, w, CLCL_MODEL_BACKBONE_ONLY), CLCL_OK);
    float fc[64 * 10] = {0};
    cr_assert_eq(clcl_safetensors_add(w, "fc.weight", CLCL_DTYPE_F32, 2, (int64_t[]){10, 64}, fc),
                 CLCL_OK);
    cr_assert_eq(clcl_safetensors_add(w, "fc.bias", CLCL_DTYPE_F32, 1, (int64_t[]){10}, fc),
                 CLCL_OK);
    cr_assert_eq(clcl_safetensors_write(w, extra), CLCL_OK);
    clcl_safetensors_writer_free(w);
    cr_expect_eq(clcl_model_load(b, extra, CLCL_MODEL_BACKBONE_ONLY), CLCL_ERR_FORMAT);
    cr_expect(strstr(clcl_last_error(), "2 unexpected: 'fc.weight', 'fc.bias'"), "%s",
              clcl_last_error());
    cr_expect_eq(clcl_model_load(b, extra, CLCL_MODEL_BACKBONE_ONLY | CLCL_MODEL_IGNORE_UNEXPECTED),
                 CLCL_OK, "%s", clcl_last_error());
    clcl_model_free(a);
    clcl_model_free(b);
    clcl_model_free(wide);
    clcl_model_free(r50);
    clcl_context_free(ctx);
}

/* A full-width resnet18 backbone for torchvision. With CLCL_EXPORT_DIR=DIR the files stay
 * in DIR for `python3 tests/gen_model_golden.py --check-clcl DIR`. */
Test(model, backbone_export_for_torchvision) {
    clcl_context *ctx = test_context();
    const char *dir = getenv("CLCL_EXPORT_DIR");
    if (!dir || !*dir)
        dir = test_temp_dir("export");
    clcl_model *m;
    clcl_model_config cfg = {.arch = CLCL_ARCH_RESNET18, .stem = CLCL_STEM_IMAGENET, .seed = 7};
    cr_assert_eq(clcl_model_create(ctx, &cfg, &m), CLCL_OK, "%s", clcl_last_error());
    clcl_tensor x = random_tensor(ctx, 4, (int[]){2, 3, 64, 64}, 9), f;
    cr_assert_eq(clcl_model_forward_backbone(m, &x, CLCL_MODE_TRAIN, &f), CLCL_OK, "%s",
                 clcl_last_error());
    cr_assert_eq(clcl_model_forward_backbone(m, &x, CLCL_MODE_EVAL, &f), CLCL_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/backbone.safetensors", dir);
    cr_assert_eq(clcl_model_save(m, path, CLCL_MODEL_BACKBONE_ONLY), CLCL_OK, "%s",
                 clcl_last_error());

    clcl_safetensors_writer *w;
    cr_assert_eq(clcl_safetensors_writer_create(&w), CLCL_OK);
    cr_assert_eq(clcl_safetensors_add_tensor(w, ctx, "input", &x), CLCL_OK);
    cr_assert_eq(clcl_safetensors_add_tensor(w, ctx, "features", &f), CLCL_OK);
    snprintf(path, sizeof path, "%s/features.safetensors", dir);
    cr_assert_eq(clcl_safetensors_write(w, path), CLCL_OK);
    clcl_safetensors_writer_free(w);

    /* torchvision's resnet18 state dict holds 62 parameters and 60 buffers; less fc, 120. */
    clcl_safetensors *st;
    snprintf(path, sizeof path, "%s/backbone.safetensors", dir);
    cr_assert_eq(clcl_safetensors_read(path, &st), CLCL_OK);
    cr_expect_eq(clcl_safetensors_count(st), 120);
    cr_expect_eq(*(const int64_t *)clcl_safetensors_find(st, "bn1.num_batches_tracked")->data, 1);
    clcl_safetensors_free(st);
    clcl_tensor_free(&x);
    clcl_model_free(m);
    clcl_context_free(ctx);
}
