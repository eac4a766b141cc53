/* SGD and LARS on the device, and the warm-up + cosine learning-rate schedule. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "clcl/optim.h"

/* Work-items per group of the update kernels. */
#define UPDATE_GROUP 64
/* Most groups the norm reduction uses for one tensor. */
#define MAX_NORM_GROUPS 64
/* Largest reduction group we ask for, whatever the device allows. */
#define MAX_REDUCE_GROUP 256

struct clcl_optim {
    clcl_context *ctx;
    clcl_optim_config cfg;
    clcl_param *params;
    int count;
    clcl_tensor *buffers; /* (count) momentum buffers, shaped as their parameters */
    clcl_tensor trust;    /* (count) LARS trust ratios of the current step */
    clcl_tensor partials; /* (2 MAX_NORM_GROUPS) partial sums of squares */
    int reduce_group;     /* OPTIM_GROUP the program was built with */
    char options[64];
    int64_t steps;
};

static clcl_status check_config(const clcl_optim_config *cfg, const clcl_param *params, int count) {
    if (cfg->kind != CLCL_OPTIM_SGD && cfg->kind != CLCL_OPTIM_LARS)
        return clcl_fail(CLCL_ERR_ARGUMENT, "optimizer: unknown kind %d (expected sgd or lars)",
                         (int)cfg->kind);
    if (!(cfg->momentum >= 0.0f && cfg->momentum < 1.0f))
        return clcl_fail(CLCL_ERR_ARGUMENT, "optimizer: momentum %g is not in [0, 1)",
                         cfg->momentum);
    if (!(cfg->weight_decay >= 0.0f) || !(cfg->trust_coefficient >= 0.0f))
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "optimizer: weight decay %g and trust coefficient %g must be >= 0",
                         cfg->weight_decay, cfg->trust_coefficient);
    if (cfg->nesterov && cfg->momentum == 0.0f)
        return clcl_fail(CLCL_ERR_ARGUMENT, "optimizer: Nesterov momentum needs momentum > 0");
    if (count < 1 || !params)
        return clcl_fail(CLCL_ERR_ARGUMENT, "optimizer: no parameters to optimize");
    for (int i = 0; i < count; i++)
        if (params[i].value.count != params[i].grad.count || !params[i].value.buf ||
            !params[i].grad.buf || params[i].value.count > 0x7fffffff)
            return clcl_fail(CLCL_ERR_SHAPE,
                             "optimizer: parameter '%s' has %zu values but %zu gradients",
                             params[i].name, params[i].value.count, params[i].grad.count);
    return CLCL_OK;
}

/* Picks the reduction group: the largest power of two the device and the kernel allow. */
static clcl_status choose_reduce_group(clcl_optim *o) {
    size_t limit = clcl_context_device(o->ctx)->max_work_group;
    int g = MAX_REDUCE_GROUP;
    while ((size_t)g > limit && g > 1)
        g /= 2;
    for (;;) {
        cl_kernel k;
        size_t kmax;
        snprintf(o->options, sizeof o->options, "-DOPTIM_GROUP=%d", g);
        CLCL_TRY(clcl_context_kernel(o->ctx, "optim", "sumsq_partial", o->options, &k));
        CLCL_TRY(clcl_kernel_max_work_group(o->ctx, k, &kmax));
        if ((size_t)g <= kmax || g == 1)
            break;
        g /= 2;
    }
    o->reduce_group = g;
    return CLCL_OK;
}

static clcl_status create_state(clcl_optim *o) {
    int two = 2 * MAX_NORM_GROUPS;
    CLCL_TRY(clcl_tensor_create(o->ctx, &o->trust, 1, &o->count));
    CLCL_TRY(clcl_tensor_fill(o->ctx, &o->trust, 1.0f));
    CLCL_TRY(clcl_tensor_create(o->ctx, &o->partials, 1, &two));
    CLCL_TRY(clcl_tensor_fill(o->ctx, &o->partials, 0.0f));
    if (o->cfg.momentum == 0.0f)
        return CLCL_OK;
    o->buffers = calloc((size_t)o->count, sizeof *o->buffers);
    if (!o->buffers)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "optimizer: out of host memory");
    for (int i = 0; i < o->count; i++) {
        const clcl_tensor *v = &o->params[i].value;
        CLCL_TRY(clcl_tensor_create(o->ctx, &o->buffers[i], v->ndim, v->shape));
        CLCL_TRY(clcl_tensor_fill(o->ctx, &o->buffers[i], 0.0f));
    }
    return CLCL_OK;
}

clcl_status clcl_optim_create(clcl_context *ctx, const clcl_optim_config *cfg, clcl_param *params,
                              int count, clcl_optim **out) {
    *out = NULL;
    CLCL_TRY(check_config(cfg, params, count));
    clcl_optim *o = calloc(1, sizeof *o);
    if (!o)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "optimizer: out of host memory");
    o->ctx = ctx;
    o->cfg = *cfg;
    if (o->cfg.trust_coefficient == 0.0f)
        o->cfg.trust_coefficient = 0.001f;
    o->params = params;
    o->count = count;
    clcl_status st = choose_reduce_group(o);
    if (st == CLCL_OK)
        st = create_state(o);
    if (st != CLCL_OK) {
        clcl_optim_free(o);
        return st;
    }
    *out = o;
    return CLCL_OK;
}

void clcl_optim_free(clcl_optim *opt) {
    if (!opt)
        return;
    if (opt->buffers)
        for (int i = 0; i < opt->count; i++)
            clcl_tensor_free(&opt->buffers[i]);
    free(opt->buffers);
    clcl_tensor_free(&opt->trust);
    clcl_tensor_free(&opt->partials);
    free(opt);
}

static float decay_of(const clcl_optim *o, const clcl_param *p) {
    return p->excluded && !o->cfg.decay_all ? 0.0f : o->cfg.weight_decay;
}

/* Groups of UPDATE_GROUP, or fewer where the kernel or the device (CLCL_MAX_WORK_GROUP)
 * allows less; the update is element-wise, so the size changes no bit. */
static clcl_status launch_update(clcl_optim *o, cl_kernel k, size_t n) {
    size_t local;
    CLCL_TRY(clcl_kernel_max_work_group(o->ctx, k, &local));
    local = local < UPDATE_GROUP ? local : UPDATE_GROUP;
    return clcl_launch(o->ctx, k, 1, &n, &local);
}

static clcl_status sgd_update(clcl_optim *o, int i, float lr) {
    clcl_param *p = &o->params[i];
    cl_kernel k;
    int has = o->buffers != NULL;
    cl_mem buf = has ? o->buffers[i].buf : p->value.buf; /* unused without momentum */
    CLCL_TRY(clcl_context_kernel(o->ctx, "optim", "sgd_step", o->options, &k));
    CLCL_TRY(clcl_kernel_args(
        k, CLCL_ARG_MEM(p->value.buf), CLCL_ARG_MEM(p->grad.buf), CLCL_ARG_MEM(buf),
        CLCL_ARG_INT((int)p->value.count), CLCL_ARG_FLOAT(lr), CLCL_ARG_FLOAT(o->cfg.momentum),
        CLCL_ARG_FLOAT(decay_of(o, p)), CLCL_ARG_INT(o->cfg.nesterov), CLCL_ARG_INT(has)));
    return launch_update(o, k, p->value.count);
}

/* trust[i] from ||w|| and ||g + wd w||, reduced on the device. */
static clcl_status lars_trust(clcl_optim *o, int i, float wd) {
    clcl_param *p = &o->params[i];
    int n = (int)p->value.count;
    int groups = (n + o->reduce_group - 1) / o->reduce_group;
    if (groups > MAX_NORM_GROUPS)
        groups = MAX_NORM_GROUPS;
    cl_kernel k;
    CLCL_TRY(clcl_context_kernel(o->ctx, "optim", "sumsq_partial", o->options, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(p->value.buf), CLCL_ARG_MEM(p->grad.buf),
                              CLCL_ARG_INT(n), CLCL_ARG_FLOAT(wd), CLCL_ARG_MEM(o->partials.buf)));
    size_t global = (size_t)groups * (size_t)o->reduce_group, local = (size_t)o->reduce_group;
    CLCL_TRY(clcl_launch(o->ctx, k, 1, &global, &local));

    size_t one = 1;
    CLCL_TRY(clcl_context_kernel(o->ctx, "optim", "lars_trust", o->options, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(o->partials.buf), CLCL_ARG_INT(groups),
                              CLCL_ARG_FLOAT(o->cfg.trust_coefficient), CLCL_ARG_MEM(o->trust.buf),
                              CLCL_ARG_INT(i)));
    return clcl_launch(o->ctx, k, 1, &one, &one);
}

static clcl_status lars_update(clcl_optim *o, int i, float lr) {
    clcl_param *p = &o->params[i];
    float wd = decay_of(o, p);
    int adapt = !p->excluded;
    cl_kernel k;
    if (adapt)
        CLCL_TRY(lars_trust(o, i, wd));
    int has = o->buffers != NULL;
    cl_mem buf = has ? o->buffers[i].buf : p->value.buf; /* unused without momentum */
    CLCL_TRY(clcl_context_kernel(o->ctx, "optim", "lars_step", o->options, &k));
    CLCL_TRY(clcl_kernel_args(
        k, CLCL_ARG_MEM(p->value.buf), CLCL_ARG_MEM(p->grad.buf), CLCL_ARG_MEM(buf),
        CLCL_ARG_INT((int)p->value.count), CLCL_ARG_FLOAT(lr), CLCL_ARG_MEM(o->trust.buf),
        CLCL_ARG_INT(adapt ? i : -1), CLCL_ARG_FLOAT(o->cfg.momentum), CLCL_ARG_FLOAT(wd),
        CLCL_ARG_INT(o->cfg.nesterov), CLCL_ARG_INT(has)));
    return launch_update(o, k, p->value.count);
}

clcl_status clcl_optim_step(clcl_optim *opt, float lr) {
    if (!isfinite(lr) || lr < 0.0f)
        return clcl_fail(CLCL_ERR_ARGUMENT, "optimizer: learning rate %g is not finite and >= 0",
                         lr);
    for (int i = 0; i < opt->count; i++) {
        if (opt->cfg.kind == CLCL_OPTIM_SGD)
            CLCL_TRY(sgd_update(opt, i, lr));
        else
            CLCL_TRY(lars_update(opt, i, lr));
    }
    opt->steps++;
    return CLCL_OK;
}

int64_t clcl_optim_steps(const clcl_optim *opt) {
    return opt->steps;
}

const clcl_tensor *clcl_optim_buffer(const clcl_optim *opt, int i) {
    return opt->buffers && i >= 0 && i < opt->count ? &opt->buffers[i] : NULL;
}

/* ---- state in safetensors ----------------------------------------------------------- */

static const char *kind_name(clcl_optim_kind kind) {
    return kind == CLCL_OPTIM_LARS ? "lars" : "sgd";
}

clcl_status clcl_optim_save(const clcl_optim *opt, clcl_safetensors_writer *w) {
    char name[96];
    CLCL_TRY(clcl_safetensors_add_metadata(w, "optim.kind", kind_name(opt->cfg.kind)));
    CLCL_TRY(clcl_safetensors_add_i64(w, "optim.steps", opt->steps));
    for (int i = 0; opt->buffers && i < opt->count; i++) {
        snprintf(name, sizeof name, "optim.momentum.%s", opt->params[i].name);
        CLCL_TRY(clcl_safetensors_add_tensor(w, opt->ctx, name, &opt->buffers[i]));
    }
    return CLCL_OK;
}

clcl_status clcl_optim_load(clcl_optim *opt, const clcl_safetensors *st) {
    const char *src = clcl_safetensors_source(st);
    const char *kind = clcl_safetensors_metadata(st, "optim.kind");
    const clcl_safetensors_entry *steps = clcl_safetensors_find(st, "optim.steps");
    char name[96];
    if (!kind || strcmp(kind, kind_name(opt->cfg.kind)))
        return clcl_fail(CLCL_ERR_FORMAT, "%s: optimizer state is for '%s', this run uses '%s'",
                         src, kind ? kind : "(none)", kind_name(opt->cfg.kind));
    if (!steps || steps->dtype != CLCL_DTYPE_I64 || steps->ndim != 0)
        return clcl_fail(CLCL_ERR_FORMAT, "%s: no I64 scalar 'optim.steps'", src);

    /* Check every buffer before changing any. */
    const clcl_safetensors_entry *e;
    for (int i = 0; opt->buffers && i < opt->count; i++) {
        snprintf(name, sizeof name, "optim.momentum.%s", opt->params[i].name);
        CLCL_TRY(
            clcl_safetensors_expect_f32(st, name, opt->buffers[i].ndim, opt->buffers[i].shape, &e));
    }
    for (int i = 0; opt->buffers && i < opt->count; i++) {
        snprintf(name, sizeof name, "optim.momentum.%s", opt->params[i].name);
        CLCL_TRY(
            clcl_safetensors_expect_f32(st, name, opt->buffers[i].ndim, opt->buffers[i].shape, &e));
        CLCL_TRY(clcl_safetensors_to_device(opt->ctx, st, e, &opt->buffers[i]));
    }
    opt->steps = *(const int64_t *)steps->data;
    return CLCL_OK;
}

/* ---- learning-rate schedule ------------------------------------------------------------ */

double clcl_lr_peak(const clcl_lr_schedule *s) {
    switch (s->scaling) {
        case CLCL_LR_SCALE_LINEAR:
            return s->base_lr * s->batch_size / 256.0;
        case CLCL_LR_SCALE_SQRT:
            return s->base_lr * sqrt((double)s->batch_size);
        default:
            return s->base_lr;
    }
}

double clcl_lr_at(const clcl_lr_schedule *s, int64_t step) {
    const double pi = 3.14159265358979323846;
    double peak = clcl_lr_peak(s);
    if (step < 0)
        step = 0;
    if (step < s->warmup_steps)
        return peak * (double)(step + 1) / (double)s->warmup_steps;
    if (s->total_steps <= 0)
        return peak;
    if (step >= s->total_steps)
        return 0.0;
    double span = (double)(s->total_steps - s->warmup_steps);
    double t = (double)(step - s->warmup_steps) / span;
    return peak * 0.5 * (1.0 + cos(pi * t));
}
