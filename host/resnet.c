/* ResNet-18/50 with a projection head: layout, initialization, forward, backward,
 * safetensors. The network is a list of "units" (conv -> batchnorm -> optional ReLU)
 * grouped into residual blocks; each unit keeps its input, conv output and batchnorm
 * output of the last training forward for backward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "clcl/layers.h"
#include "clcl/model.h"
#include "clcl/rng.h"

#define BN_MOMENTUM 0.1f
#define BN_EPS      1e-5f
/* ResNet-18 has 8 blocks, ResNet-50 16. */
#define MAX_BLOCKS 16
/* Names listed in a load error before "and N more". */
#define NAMES_SHOWN 6

typedef struct {
    int gamma, beta;                       /* parameter indices */
    clcl_tensor running_mean, running_var; /* (C) */
    clcl_tensor save_mean, save_invstd;    /* (C), from the last training forward */
    int64_t batches;                       /* num_batches_tracked */
    char name[48];
} bn_layer;

/* conv (no bias) -> batchnorm -> ReLU if `relu`. */
typedef struct {
    int weight; /* parameter index */
    int in_c, out_c, k, stride, pad, relu;
    bn_layer bn;
    clcl_tensor x, z, y; /* last forward: input, conv output, batchnorm (+ReLU) output */
} unit;

typedef struct {
    unit u[3];
    int n;        /* 2 (basic) or 3 (bottleneck) units */
    int has_down; /* a 1x1 conv + batchnorm on the shortcut */
    unit down;
} block;

typedef struct {
    int weight, bias; /* bias -1: none */
} linear_layer;

/* What the file order interleaves: a parameter, or a buffer (after its bn's bias). */
typedef struct {
    int is_buffer, index;
} tensor_ref;

enum { STATE_NONE, STATE_BACKBONE, STATE_FULL };

struct clcl_model {
    clcl_context *ctx; /* NULL while only counting */
    clcl_model_config cfg;
    clcl_param *params;
    int n_params, cap_params;
    clcl_model_buffer *buffers;
    int n_buffers, cap_buffers;
    tensor_ref *order;
    int n_order, cap_order;

    unit stem;
    block blocks[MAX_BLOCKS];
    int n_blocks;
    int features, hidden, out;
    linear_layer fc1, fc2;
    bn_layer hbn;

    clcl_pool *acts, *scratch;
    int state, batch;
    clcl_tensor pooled;       /* stem output after the max pool (ImageNet stem) */
    clcl_tensor last;         /* layer4 output (N, F, h, w) */
    clcl_tensor feat, h1, h2; /* (N, F), (N, hidden) linear out, (N, hidden) bn + ReLU out */
    clcl_tensor proj;         /* (N, out) */
};

/* ---- names and configuration -------------------------------------------------------- */

const char *clcl_arch_name(clcl_arch arch) {
    return arch == CLCL_ARCH_RESNET50 ? "resnet50" : "resnet18";
}

const char *clcl_stem_name(clcl_stem stem) {
    return stem == CLCL_STEM_IMAGENET ? "imagenet" : "cifar";
}

clcl_status clcl_arch_parse(const char *name, clcl_arch *out) {
    if (name && !strcmp(name, "resnet18"))
        *out = CLCL_ARCH_RESNET18;
    else if (name && !strcmp(name, "resnet50"))
        *out = CLCL_ARCH_RESNET50;
    else
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "unknown architecture '%s' (expected resnet18 or "
                         "resnet50)",
                         name ? name : "(null)");
    return CLCL_OK;
}

clcl_status clcl_stem_parse(const char *name, clcl_stem *out) {
    if (name && !strcmp(name, "cifar"))
        *out = CLCL_STEM_CIFAR;
    else if (name && !strcmp(name, "imagenet"))
        *out = CLCL_STEM_IMAGENET;
    else
        return clcl_fail(CLCL_ERR_ARGUMENT, "unknown stem '%s' (expected cifar or imagenet)",
                         name ? name : "(null)");
    return CLCL_OK;
}

int clcl_model_channels(int base, float width) {
    int c = (int)floor((double)base * width + 0.5);
    return c < 1 ? 1 : c;
}

static clcl_status resolve_config(const clcl_model_config *in, clcl_model_config *out) {
    *out = *in;
    if (in->arch != CLCL_ARCH_RESNET18 && in->arch != CLCL_ARCH_RESNET50)
        return clcl_fail(CLCL_ERR_ARGUMENT, "model: unknown architecture %d", (int)in->arch);
    if (in->stem != CLCL_STEM_CIFAR && in->stem != CLCL_STEM_IMAGENET)
        return clcl_fail(CLCL_ERR_ARGUMENT, "model: unknown stem %d", (int)in->stem);
    if (!out->in_channels)
        out->in_channels = 3;
    if (out->width == 0.0f)
        out->width = 1.0f;
    if (!out->head_out)
        out->head_out = 128;
    if (out->in_channels < 1 || out->in_channels > 4096)
        return clcl_fail(CLCL_ERR_ARGUMENT, "model: %d input channels (expected 1 to 4096)",
                         in->in_channels);
    if (!(out->width > 0.0f && out->width <= 16.0f))
        return clcl_fail(CLCL_ERR_ARGUMENT, "model: width %g (expected > 0 and <= 16)", out->width);
    if (out->head_hidden < 0 || out->head_out < 0 || out->head_hidden > 65536 ||
        out->head_out > 65536)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "model: head sizes hidden %d, out %d (expected 1 to 65536; 0: default)",
                         in->head_hidden, in->head_out);
    return CLCL_OK;
}

/* ---- layout ------------------------------------------------------------------------- */

static void *grow(void *array, int *cap, int need, size_t elem) {
    if (need <= *cap)
        return array;
    int cap2 = *cap ? 2 * *cap : 64;
    void *grown = realloc(array, (size_t)cap2 * elem);
    if (grown)
        *cap = cap2;
    return grown;
}

/* A tensor with its shape; on the device only when the model has a context. */
static clcl_status make_tensor(clcl_model *m, clcl_tensor *t, int ndim, const int *shape) {
    if (m->ctx)
        return clcl_tensor_create(m->ctx, t, ndim, shape);
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->count = clcl_shape_count(ndim, shape);
    return CLCL_OK;
}

static clcl_status push_order(clcl_model *m, int is_buffer, int index) {
    tensor_ref *grown = grow(m->order, &m->cap_order, m->n_order + 1, sizeof *m->order);
    if (!grown)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "model: out of host memory");
    m->order = grown;
    m->order[m->n_order++] = (tensor_ref){is_buffer, index};
    return CLCL_OK;
}

static clcl_status add_param(clcl_model *m, const char *name, clcl_param_kind kind, int ndim,
                             const int *shape, int *index) {
    clcl_param *grown = grow(m->params, &m->cap_params, m->n_params + 1, sizeof *m->params);
    if (!grown)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "model: out of host memory");
    m->params = grown;
    clcl_param *p = &m->params[m->n_params];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->kind = kind;
    p->excluded = kind != CLCL_PARAM_CONV_WEIGHT && kind != CLCL_PARAM_LINEAR_WEIGHT;
    p->in_head = !strncmp(name, "head.", 5);
    if (kind == CLCL_PARAM_CONV_WEIGHT) {
        p->fan_in = (size_t)shape[1] * shape[2] * shape[3];
        p->fan_out = (size_t)shape[0] * shape[2] * shape[3];
    } else if (kind == CLCL_PARAM_LINEAR_WEIGHT) {
        p->fan_in = (size_t)shape[1];
        p->fan_out = (size_t)shape[0];
    }
    *index = m->n_params++;
    CLCL_TRY(make_tensor(m, &p->value, ndim, shape));
    CLCL_TRY(make_tensor(m, &p->grad, ndim, shape));
    return push_order(m, 0, *index);
}

static clcl_status add_buffer(clcl_model *m, const char *prefix, const char *what,
                              clcl_tensor *tensor, int64_t *count) {
    clcl_model_buffer *grown =
        grow(m->buffers, &m->cap_buffers, m->n_buffers + 1, sizeof *m->buffers);
    if (!grown)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "model: out of host memory");
    m->buffers = grown;
    clcl_model_buffer *b = &m->buffers[m->n_buffers];
    snprintf(b->name, sizeof b->name, "%s.%s", prefix, what);
    b->tensor = tensor;
    b->count = count;
    b->in_head = !strncmp(prefix, "head.", 5);
    return push_order(m, 1, m->n_buffers++);
}

/* prefix.weight, prefix.bias, then its running statistics. */
static clcl_status add_bn(clcl_model *m, const char *prefix, int c, bn_layer *bn) {
    char name[64];
    snprintf(bn->name, sizeof bn->name, "%s", prefix);
    snprintf(name, sizeof name, "%s.weight", prefix);
    CLCL_TRY(add_param(m, name, CLCL_PARAM_BN_WEIGHT, 1, &c, &bn->gamma));
    snprintf(name, sizeof name, "%s.bias", prefix);
    CLCL_TRY(add_param(m, name, CLCL_PARAM_BN_BIAS, 1, &c, &bn->beta));
    CLCL_TRY(make_tensor(m, &bn->running_mean, 1, &c));
    CLCL_TRY(make_tensor(m, &bn->running_var, 1, &c));
    CLCL_TRY(make_tensor(m, &bn->save_mean, 1, &c));
    CLCL_TRY(make_tensor(m, &bn->save_invstd, 1, &c));
    CLCL_TRY(add_buffer(m, prefix, "running_mean", &bn->running_mean, NULL));
    CLCL_TRY(add_buffer(m, prefix, "running_var", &bn->running_var, NULL));
    return add_buffer(m, prefix, "num_batches_tracked", NULL, &bn->batches);
}

static clcl_status add_unit(clcl_model *m, unit *u, const char *conv, const char *bn, int in_c,
                            int out_c, int k, int stride, int relu) {
    char name[64];
    *u = (unit){.in_c = in_c, .out_c = out_c, .k = k, .stride = stride, .pad = k / 2, .relu = relu};
    snprintf(name, sizeof name, "%s.weight", conv);
    CLCL_TRY(add_param(m, name, CLCL_PARAM_CONV_WEIGHT, 4, (int[]){out_c, in_c, k, k}, &u->weight));
    return add_bn(m, bn, out_c, &u->bn);
}

/* Block `b` of layer `layer` (1-based): basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1). */
static clcl_status add_block(clcl_model *m, block *blk, int layer, int b, int in_c, int planes,
                             int stride, int bottleneck, int *out_c) {
    char p[40], conv[64], bn[64];
    snprintf(p, sizeof p, "layer%d.%d", layer, b);
    blk->n = bottleneck ? 3 : 2;
    *out_c = bottleneck ? 4 * planes : planes;
    for (int i = 0; i < blk->n; i++) {
        int k = bottleneck && i != 1 ? 1 : 3;
        int s = (bottleneck ? i == 1 : i == 0) ? stride : 1;
        int ci = i == 0 ? in_c : planes, co = i == blk->n - 1 ? *out_c : planes;
        snprintf(conv, sizeof conv, "%s.conv%d", p, i + 1);
        snprintf(bn, sizeof bn, "%s.bn%d", p, i + 1);
        CLCL_TRY(add_unit(m, &blk->u[i], conv, bn, ci, co, k, s, i != blk->n - 1));
    }
    blk->has_down = stride != 1 || in_c != *out_c;
    if (!blk->has_down)
        return CLCL_OK;
    snprintf(conv, sizeof conv, "%s.downsample.0", p);
    snprintf(bn, sizeof bn, "%s.downsample.1", p);
    return add_unit(m, &blk->down, conv, bn, in_c, *out_c, 1, stride, 0);
}

static clcl_status add_linear(clcl_model *m, linear_layer *l, const char *prefix, int in, int out,
                              int bias) {
    char name[64];
    snprintf(name, sizeof name, "%s.weight", prefix);
    CLCL_TRY(add_param(m, name, CLCL_PARAM_LINEAR_WEIGHT, 2, (int[]){out, in}, &l->weight));
    l->bias = -1;
    if (!bias)
        return CLCL_OK;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return add_param(m, name, CLCL_PARAM_LINEAR_BIAS, 1, &out, &l->bias);
}

static clcl_status build(clcl_model *m) {
    static const int counts18[4] = {2, 2, 2, 2}, counts50[4] = {3, 4, 6, 3};
    const clcl_model_config *c = &m->cfg;
    int bottleneck = c->arch == CLCL_ARCH_RESNET50;
    const int *counts = bottleneck ? counts50 : counts18;
    int ch = clcl_model_channels(64, c->width);

    /* The stem, then four layers of blocks; the first block of layers 2-4 halves the size. */
    int k = c->stem == CLCL_STEM_IMAGENET ? 7 : 3, s = c->stem == CLCL_STEM_IMAGENET ? 2 : 1;
    CLCL_TRY(add_unit(m, &m->stem, "conv1", "bn1", c->in_channels, ch, k, s, 1));
    for (int layer = 0; layer < 4; layer++) {
        int planes = clcl_model_channels(64 << layer, c->width);
        for (int b = 0; b < counts[layer]; b++) {
            int stride = b == 0 && layer > 0 ? 2 : 1;
            CLCL_TRY(add_block(m, &m->blocks[m->n_blocks++], layer + 1, b, ch, planes, stride,
                               bottleneck, &ch));
        }
    }

    /* The projection head. */
    m->features = ch;
    m->hidden = c->head_hidden ? c->head_hidden : ch;
    m->out = c->head_out;
    m->cfg.head_hidden = m->hidden;
    CLCL_TRY(add_linear(m, &m->fc1, "head.0", m->features, m->hidden, 1));
    CLCL_TRY(add_bn(m, "head.1", m->hidden, &m->hbn));
    return add_linear(m, &m->fc2, "head.3", m->hidden, m->out, !c->head_no_last_bias);
}

static void release_layout(clcl_model *m) {
    for (int i = 0; i < m->n_params; i++) {
        clcl_tensor_free(&m->params[i].value);
        clcl_tensor_free(&m->params[i].grad);
    }
    bn_layer *bns[1 + 2 * MAX_BLOCKS * 2 + 1];
    int n = 0;
    bns[n++] = &m->stem.bn;
    for (int b = 0; b < m->n_blocks; b++) {
        for (int i = 0; i < m->blocks[b].n; i++)
            bns[n++] = &m->blocks[b].u[i].bn;
        if (m->blocks[b].has_down)
            bns[n++] = &m->blocks[b].down.bn;
    }
    bns[n++] = &m->hbn;
    for (int i = 0; i < n; i++) {
        clcl_tensor_free(&bns[i]->running_mean);
        clcl_tensor_free(&bns[i]->running_var);
        clcl_tensor_free(&bns[i]->save_mean);
        clcl_tensor_free(&bns[i]->save_invstd);
    }
    free(m->params);
    free(m->buffers);
    free(m->order);
}

clcl_status clcl_model_count(const clcl_model_config *cfg, size_t *backbone, size_t *head) {
    clcl_model *m = calloc(1, sizeof *m);
    if (!m)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "model: out of host memory");
    clcl_status st = resolve_config(cfg, &m->cfg);
    if (st == CLCL_OK)
        st = build(m);
    *backbone = *head = 0;
    for (int i = 0; st == CLCL_OK && i < m->n_params; i++)
        *(m->params[i].in_head ? head : backbone) += m->params[i].value.count;
    release_layout(m);
    free(m);
    return st;
}

/* ---- initialization ----------------------------------------------------------------- */

static void init_values(const clcl_param *p, clcl_rng *rng, float *v, const clcl_param *params,
                        int index) {
    size_t n = p->value.count;
    if (p->kind == CLCL_PARAM_CONV_WEIGHT) {
        double std = sqrt(2.0 / (double)p->fan_out);
        for (size_t i = 0; i < n; i++)
            v[i] = (float)(clcl_rng_normal(rng) * std);
    } else if (p->kind == CLCL_PARAM_LINEAR_WEIGHT || p->kind == CLCL_PARAM_LINEAR_BIAS) {
        /* A linear bias takes its bound from the weight just before it. */
        size_t fan_in = p->kind == CLCL_PARAM_LINEAR_WEIGHT ? p->fan_in : params[index - 1].fan_in;
        double bound = 1.0 / sqrt((double)fan_in);
        for (size_t i = 0; i < n; i++)
            v[i] = (float)clcl_rng_range(rng, -bound, bound);
    } else {
        float value = p->kind == CLCL_PARAM_BN_WEIGHT ? 1.0f : 0.0f;
        for (size_t i = 0; i < n; i++)
            v[i] = value;
    }
}

static clcl_status initialize(clcl_model *m) {
    size_t largest = 1;
    clcl_rng rng;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].value.count > largest)
            largest = m->params[i].value.count;
    float *host = malloc(largest * sizeof *host);
    if (!host)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "model: out of host memory initializing weights");

    /* Parameters in list order from one stream; gradients start at 0. */
    clcl_rng_seed(&rng, m->cfg.seed);
    clcl_status st = CLCL_OK;
    for (int i = 0; i < m->n_params && st == CLCL_OK; i++) {
        init_values(&m->params[i], &rng, host, m->params, i);
        st = clcl_tensor_write(m->ctx, &m->params[i].value, host);
        if (st == CLCL_OK)
            st = clcl_tensor_fill(m->ctx, &m->params[i].grad, 0.0f);
    }
    free(host);
    CLCL_TRY(st);

    /* Running statistics as torch starts them: mean 0, variance 1. */
    for (int i = 0; i < m->n_buffers; i++) {
        clcl_model_buffer *b = &m->buffers[i];
        if (b->tensor)
            CLCL_TRY(
                clcl_tensor_fill(m->ctx, b->tensor, strstr(b->name, "running_var") ? 1.0f : 0.0f));
        else
            *b->count = 0;
    }
    return CLCL_OK;
}

/* save_mean and save_invstd are read only after a training forward, but start defined. */
static clcl_status init_saved_stats(clcl_model *m, bn_layer *bn) {
    CLCL_TRY(clcl_tensor_fill(m->ctx, &bn->save_mean, 0.0f));
    return clcl_tensor_fill(m->ctx, &bn->save_invstd, 1.0f);
}

static clcl_status init_all_saved_stats(clcl_model *m) {
    CLCL_TRY(init_saved_stats(m, &m->stem.bn));
    for (int b = 0; b < m->n_blocks; b++) {
        for (int i = 0; i < m->blocks[b].n; i++)
            CLCL_TRY(init_saved_stats(m, &m->blocks[b].u[i].bn));
        if (m->blocks[b].has_down)
            CLCL_TRY(init_saved_stats(m, &m->blocks[b].down.bn));
    }
    return init_saved_stats(m, &m->hbn);
}

clcl_status clcl_model_create(clcl_context *ctx, const clcl_model_config *cfg, clcl_model **out) {
    *out = NULL;
    clcl_model *m = calloc(1, sizeof *m);
    if (!m)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "model: out of host memory");
    m->ctx = ctx;
    clcl_status st = resolve_config(cfg, &m->cfg);
    if (st == CLCL_OK)
        st = build(m);
    if (st == CLCL_OK)
        st = initialize(m);
    if (st == CLCL_OK)
        st = init_all_saved_stats(m);
    if (st == CLCL_OK)
        st = clcl_pool_create(ctx, &m->acts);
    if (st == CLCL_OK)
        st = clcl_pool_create(ctx, &m->scratch);
    if (st != CLCL_OK) {
        clcl_model_free(m);
        return st;
    }
    *out = m;
    return CLCL_OK;
}

void clcl_model_free(clcl_model *m) {
    if (!m)
        return;
    release_layout(m);
    clcl_pool_free(m->acts);
    clcl_pool_free(m->scratch);
    free(m);
}

const clcl_model_config *clcl_model_config_get(const clcl_model *m) {
    return &m->cfg;
}

int clcl_model_feature_dim(const clcl_model *m) {
    return m->features;
}

int clcl_model_projection_dim(const clcl_model *m) {
    return m->out;
}

clcl_param *clcl_model_params(clcl_model *m, int *count) {
    *count = m->n_params;
    return m->params;
}

const clcl_model_buffer *clcl_model_buffers(const clcl_model *m, int *count) {
    *count = m->n_buffers;
    return m->buffers;
}

size_t clcl_model_allocations(const clcl_model *m) {
    return clcl_pool_allocations(m->acts) + clcl_pool_allocations(m->scratch);
}

size_t clcl_model_activation_bytes(const clcl_model *m) {
    return clcl_pool_bytes(m->acts) + clcl_pool_bytes(m->scratch);
}

/* ---- forward ------------------------------------------------------------------------ */

static clcl_tensor *W(clcl_model *m, int index) {
    return &m->params[index].value;
}

static clcl_tensor *G(clcl_model *m, int index) {
    return &m->params[index].grad;
}

static clcl_status act(clcl_model *m, clcl_tensor *t, int ndim, const int *shape) {
    return clcl_pool_tensor(m->acts, t, ndim, shape);
}

static void drop(clcl_model *m, clcl_tensor *t) {
    if (t->buf)
        clcl_pool_release(m->acts, t);
}

static clcl_status bn_forward(clcl_model *m, bn_layer *bn, const clcl_tensor *x, int train,
                              clcl_tensor *y) {
    char shape[96];
    if (!train)
        return clcl_batchnorm_forward_eval(m->ctx, x, W(m, bn->gamma), W(m, bn->beta),
                                           &bn->running_mean, &bn->running_var, BN_EPS, y);
    if (x->count / (size_t)x->shape[1] < 2)
        return clcl_fail(CLCL_ERR_SHAPE,
                         "model: batchnorm '%s' in training mode needs more than one value per "
                         "channel, got %s: use a batch of 2 or more",
                         bn->name, clcl_shape_string(x->ndim, x->shape, shape, sizeof shape));
    bn->batches++;
    return clcl_batchnorm_forward_train(m->ctx, m->scratch, x, W(m, bn->gamma), W(m, bn->beta),
                                        &bn->running_mean, &bn->running_var, BN_MOMENTUM, BN_EPS, y,
                                        &bn->save_mean, &bn->save_invstd);
}

static clcl_status unit_forward(clcl_model *m, unit *u, const clcl_tensor *x, int train) {
    const int *s = x->shape;
    int p = clcl_conv2d_out_size(s[2], u->k, u->stride, u->pad);
    int q = clcl_conv2d_out_size(s[3], u->k, u->stride, u->pad);
    if (p < 1 || q < 1)
        return clcl_fail(CLCL_ERR_SHAPE, "model: the input is too small: %s sees %dx%d",
                         m->params[u->weight].name, s[2], s[3]);
    int shape[4] = {s[0], u->out_c, p, q};

    /* z = conv(x); y = bn(z), ReLU in place. */
    u->x = *x;
    CLCL_TRY(act(m, &u->z, 4, shape));
    CLCL_TRY(clcl_conv2d_forward(m->ctx, m->scratch, x, W(m, u->weight), u->stride, u->pad, &u->z));
    CLCL_TRY(act(m, &u->y, 4, shape));
    CLCL_TRY(bn_forward(m, &u->bn, &u->z, train, &u->y));
    if (u->relu)
        CLCL_TRY(clcl_relu_forward(m->ctx, &u->y, &u->y));
    if (!train)
        drop(m, &u->z);
    return CLCL_OK;
}

/* out = ReLU(main(x) + shortcut(x)), left in the last unit's y. */
static clcl_status block_forward(clcl_model *m, block *b, const clcl_tensor *x, int train) {
    const clcl_tensor *cur = x;
    for (int i = 0; i < b->n; i++) {
        CLCL_TRY(unit_forward(m, &b->u[i], cur, train));
        cur = &b->u[i].y;
    }
    const clcl_tensor *shortcut = x;
    if (b->has_down) {
        CLCL_TRY(unit_forward(m, &b->down, x, train));
        shortcut = &b->down.y;
    }
    clcl_tensor *out = &b->u[b->n - 1].y;
    CLCL_TRY(clcl_add_forward(m->ctx, out, shortcut, out));
    CLCL_TRY(clcl_relu_forward(m->ctx, out, out));

    /* In eval mode nothing is kept for backward. */
    if (!train) {
        for (int i = 0; i < b->n - 1; i++)
            drop(m, &b->u[i].y);
        if (b->has_down)
            drop(m, &b->down.y);
    }
    return CLCL_OK;
}

static clcl_status check_input(const clcl_model *m, const clcl_tensor *x) {
    char shape[96];
    if (!x || !x->buf || x->ndim != 4 || x->shape[1] != m->cfg.in_channels)
        return clcl_fail(CLCL_ERR_SHAPE, "model: input %s: expected (N, %d, H, W)",
                         x && x->buf ? clcl_shape_string(x->ndim, x->shape, shape, sizeof shape)
                                     : "(none)",
                         m->cfg.in_channels);
    return CLCL_OK;
}

static clcl_status backbone_forward(clcl_model *m, const clcl_tensor *x, int train) {
    CLCL_TRY(check_input(m, x));
    clcl_pool_reset(m->acts);
    m->state = STATE_NONE;
    m->batch = x->shape[0];

    /* Stem, with the max pool of the ImageNet stem. */
    CLCL_TRY(unit_forward(m, &m->stem, x, train));
    const clcl_tensor *cur = &m->stem.y;
    if (m->cfg.stem == CLCL_STEM_IMAGENET) {
        const int *s = m->stem.y.shape;
        int shape[4] = {s[0], s[1], clcl_conv2d_out_size(s[2], 3, 2, 1),
                        clcl_conv2d_out_size(s[3], 3, 2, 1)};
        CLCL_TRY(act(m, &m->pooled, 4, shape));
        CLCL_TRY(clcl_maxpool_forward(m->ctx, &m->stem.y, &m->pooled));
        if (!train)
            drop(m, &m->stem.y);
        cur = &m->pooled;
    }

    /* The residual blocks; in eval mode each block's input goes back once it is used. */
    for (int b = 0; b < m->n_blocks; b++) {
        CLCL_TRY(block_forward(m, &m->blocks[b], cur, train));
        if (!train && cur != x)
            drop(m, (clcl_tensor *)cur);
        cur = &m->blocks[b].u[m->blocks[b].n - 1].y;
    }
    m->last = *cur;

    /* Global average pool: (N, F, h, w) -> (N, F). */
    CLCL_TRY(act(m, &m->feat, 2, (int[]){m->batch, m->features}));
    CLCL_TRY(clcl_avgpool_forward(m->ctx, &m->last, &m->feat));
    if (!train)
        drop(m, (clcl_tensor *)cur);
    return CLCL_OK;
}

static clcl_status head_forward(clcl_model *m, int train) {
    int n = m->batch;
    CLCL_TRY(act(m, &m->h1, 2, (int[]){n, m->hidden}));
    CLCL_TRY(clcl_linear_forward(m->ctx, &m->feat, W(m, m->fc1.weight), W(m, m->fc1.bias), &m->h1));
    CLCL_TRY(act(m, &m->h2, 2, (int[]){n, m->hidden}));
    CLCL_TRY(bn_forward(m, &m->hbn, &m->h1, train, &m->h2));
    CLCL_TRY(clcl_relu_forward(m->ctx, &m->h2, &m->h2));
    CLCL_TRY(act(m, &m->proj, 2, (int[]){n, m->out}));
    CLCL_TRY(clcl_linear_forward(m->ctx, &m->h2, W(m, m->fc2.weight),
                                 m->fc2.bias >= 0 ? W(m, m->fc2.bias) : NULL, &m->proj));
    if (!train) {
        drop(m, &m->h1);
        drop(m, &m->h2);
    }
    return CLCL_OK;
}

clcl_status clcl_model_forward(clcl_model *m, const clcl_tensor *x, clcl_mode mode,
                               clcl_tensor *features, clcl_tensor *projection) {
    int train = mode == CLCL_MODE_TRAIN;
    CLCL_TRY(backbone_forward(m, x, train));
    CLCL_TRY(head_forward(m, train));
    m->state = train ? STATE_FULL : STATE_NONE;
    if (features)
        *features = m->feat;
    if (projection)
        *projection = m->proj;
    return CLCL_OK;
}

clcl_status clcl_model_forward_backbone(clcl_model *m, const clcl_tensor *x, clcl_mode mode,
                                        clcl_tensor *features) {
    int train = mode == CLCL_MODE_TRAIN;
    CLCL_TRY(backbone_forward(m, x, train));
    m->state = train ? STATE_BACKBONE : STATE_NONE;
    if (features)
        *features = m->feat;
    return CLCL_OK;
}

/* ---- backward ----------------------------------------------------------------------- */

/* From d (the gradient of u->y; consumed unless keep_d) to the parameter gradients and,
 * when dx is not NULL, the gradient of u->x. */
static clcl_status unit_backward(clcl_model *m, unit *u, clcl_tensor *d, int keep_d,
                                 clcl_tensor *dx) {
    clcl_tensor dz;
    bn_layer *bn = &u->bn;
    if (u->relu)
        CLCL_TRY(clcl_relu_backward(m->ctx, &u->y, d, d));
    CLCL_TRY(act(m, &dz, 4, u->z.shape));
    CLCL_TRY(clcl_batchnorm_backward(m->ctx, m->scratch, &u->z, d, W(m, bn->gamma), &bn->save_mean,
                                     &bn->save_invstd, &dz, G(m, bn->gamma), G(m, bn->beta)));
    if (!keep_d)
        drop(m, d);
    CLCL_TRY(clcl_conv2d_backward_weights(m->ctx, m->scratch, &u->x, &dz, u->stride, u->pad,
                                          G(m, u->weight)));
    if (dx) {
        CLCL_TRY(act(m, dx, 4, u->x.shape));
        CLCL_TRY(clcl_conv2d_backward_data(m->ctx, m->scratch, &dz, W(m, u->weight), u->stride,
                                           u->pad, dx));
    }
    drop(m, &dz);
    drop(m, &u->z);
    drop(m, &u->y);
    return CLCL_OK;
}

/* dout (consumed) -> dx: the main path's and the shortcut's input gradients summed. */
static clcl_status block_backward(clcl_model *m, block *b, clcl_tensor *dout, clcl_tensor *dx) {
    unit *last = &b->u[b->n - 1];
    clcl_tensor d = *dout, next;
    CLCL_TRY(clcl_relu_backward(m->ctx, &last->y, dout, dout));
    for (int i = b->n - 1; i >= 0; i--) {
        CLCL_TRY(unit_backward(m, &b->u[i], &d, i == b->n - 1, &next));
        d = next;
    }
    if (b->has_down) {
        clcl_tensor dshort;
        CLCL_TRY(unit_backward(m, &b->down, dout, 0, &dshort));
        CLCL_TRY(clcl_add_forward(m->ctx, &d, &dshort, &d));
        drop(m, &dshort);
    } else {
        CLCL_TRY(clcl_add_forward(m->ctx, &d, dout, &d));
        drop(m, dout);
    }
    *dx = d;
    return CLCL_OK;
}

/* dproj -> gradients of the head's parameters and df (N, F), the features' gradient. */
static clcl_status head_backward(clcl_model *m, const clcl_tensor *dproj, clcl_tensor *df) {
    clcl_tensor dh2, dh1;
    bn_layer *bn = &m->hbn;
    CLCL_TRY(act(m, &dh2, 2, m->h2.shape));
    CLCL_TRY(clcl_linear_backward(m->ctx, m->scratch, &m->h2, W(m, m->fc2.weight), dproj, &dh2,
                                  G(m, m->fc2.weight),
                                  m->fc2.bias >= 0 ? G(m, m->fc2.bias) : NULL));
    CLCL_TRY(clcl_relu_backward(m->ctx, &m->h2, &dh2, &dh2));
    CLCL_TRY(act(m, &dh1, 2, m->h1.shape));
    CLCL_TRY(clcl_batchnorm_backward(m->ctx, m->scratch, &m->h1, &dh2, W(m, bn->gamma),
                                     &bn->save_mean, &bn->save_invstd, &dh1, G(m, bn->gamma),
                                     G(m, bn->beta)));
    drop(m, &dh2);
    CLCL_TRY(act(m, df, 2, m->feat.shape));
    CLCL_TRY(clcl_linear_backward(m->ctx, m->scratch, &m->feat, W(m, m->fc1.weight), &dh1, df,
                                  G(m, m->fc1.weight), G(m, m->fc1.bias)));
    drop(m, &dh1);
    return CLCL_OK;
}

static clcl_status check_gradient(const char *what, const clcl_tensor *t, int rows, int cols) {
    char shape[96];
    if (t && (!t->buf || t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols))
        return clcl_fail(CLCL_ERR_SHAPE, "model backward: %s %s: expected (%d, %d)", what,
                         t->buf ? clcl_shape_string(t->ndim, t->shape, shape, sizeof shape)
                                : "(unallocated)",
                         rows, cols);
    return CLCL_OK;
}

/* The gradient entering at the features: the head's, dfeat's, or their sum. */
static clcl_status features_gradient(clcl_model *m, const clcl_tensor *dproj,
                                     const clcl_tensor *dfeat, clcl_tensor *df) {
    if (dproj) {
        CLCL_TRY(head_backward(m, dproj, df));
        if (dfeat)
            CLCL_TRY(clcl_add_forward(m->ctx, df, dfeat, df));
        return CLCL_OK;
    }
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].in_head)
            CLCL_TRY(clcl_tensor_fill(m->ctx, &m->params[i].grad, 0.0f));
    *df = *dfeat;
    return CLCL_OK;
}

clcl_status clcl_model_backward(clcl_model *m, const clcl_tensor *dproj, const clcl_tensor *dfeat) {
    if (m->state == STATE_NONE || (dproj && m->state != STATE_FULL))
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "model backward: needs a training-mode forward%s just before it",
                         dproj ? " with the head (clcl_model_forward)" : "");
    if (!dproj && !dfeat)
        return clcl_fail(CLCL_ERR_ARGUMENT, "model backward: no gradient given (dproj and "
                                            "dfeat are NULL)");
    CLCL_TRY(check_gradient("dproj", dproj, m->batch, m->out));
    CLCL_TRY(check_gradient("dfeat", dfeat, m->batch, m->features));
    m->state = STATE_NONE; /* what backward releases cannot serve a second time */

    /* Head, then the average pool's spread back over layer4's output. */
    clcl_tensor df, d, next;
    CLCL_TRY(features_gradient(m, dproj, dfeat, &df));
    CLCL_TRY(act(m, &d, 4, m->last.shape));
    CLCL_TRY(clcl_avgpool_backward(m->ctx, &df, &d));
    if (dproj)
        drop(m, &df);

    /* The blocks in reverse, then the stem (no input gradient needed). */
    for (int b = m->n_blocks - 1; b >= 0; b--) {
        CLCL_TRY(block_backward(m, &m->blocks[b], &d, &next));
        d = next;
    }
    if (m->cfg.stem == CLCL_STEM_IMAGENET) {
        CLCL_TRY(act(m, &next, 4, m->stem.y.shape));
        CLCL_TRY(clcl_maxpool_backward(m->ctx, &m->stem.y, &d, &next));
        drop(m, &d);
        d = next;
    }
    return unit_backward(m, &m->stem, &d, 0, NULL);
}

/* ---- safetensors -------------------------------------------------------------------- */

static clcl_status write_metadata(const clcl_model *m, clcl_safetensors_writer *w, int flags) {
    char text[32];
    const clcl_model_config *c = &m->cfg;
    CLCL_TRY(clcl_safetensors_add_metadata(w, "format", "pt"));
    CLCL_TRY(clcl_safetensors_add_metadata(w, "clcl.arch", clcl_arch_name(c->arch)));
    CLCL_TRY(clcl_safetensors_add_metadata(w, "clcl.stem", clcl_stem_name(c->stem)));
    snprintf(text, sizeof text, "%d", c->in_channels);
    CLCL_TRY(clcl_safetensors_add_metadata(w, "clcl.in_channels", text));
    snprintf(text, sizeof text, "%.9g", c->width);
    CLCL_TRY(clcl_safetensors_add_metadata(w, "clcl.width", text));
    snprintf(text, sizeof text, "%d", m->hidden);
    CLCL_TRY(clcl_safetensors_add_metadata(w, "clcl.head_hidden", text));
    snprintf(text, sizeof text, "%d", m->out);
    CLCL_TRY(clcl_safetensors_add_metadata(w, "clcl.head_out", text));
    CLCL_TRY(
        clcl_safetensors_add_metadata(w, "clcl.head_last_bias", c->head_no_last_bias ? "0" : "1"));
    return clcl_safetensors_add_metadata(
        w, "clcl.contents", flags & CLCL_MODEL_BACKBONE_ONLY ? "backbone" : "backbone+head");
}

clcl_status clcl_model_write(clcl_model *m, clcl_safetensors_writer *w, int flags) {
    int backbone_only = flags & CLCL_MODEL_BACKBONE_ONLY;
    CLCL_TRY(write_metadata(m, w, flags));

    /* torchvision's state_dict order: each module's parameters, then its buffers. */
    for (int i = 0; i < m->n_order; i++) {
        const tensor_ref *r = &m->order[i];
        if (r->is_buffer) {
            const clcl_model_buffer *b = &m->buffers[r->index];
            if (backbone_only && b->in_head)
                continue;
            if (b->tensor)
                CLCL_TRY(clcl_safetensors_add_tensor(w, m->ctx, b->name, b->tensor));
            else
                CLCL_TRY(clcl_safetensors_add_i64(w, b->name, *b->count));
        } else {
            const clcl_param *p = &m->params[r->index];
            if (!(backbone_only && p->in_head))
                CLCL_TRY(clcl_safetensors_add_tensor(w, m->ctx, p->name, &p->value));
        }
    }
    return CLCL_OK;
}

clcl_status clcl_model_save(clcl_model *m, const char *path, int flags) {
    clcl_safetensors_writer *w;
    CLCL_TRY(clcl_safetensors_writer_create(&w));
    clcl_status st = clcl_model_write(m, w, flags);
    if (st == CLCL_OK)
        st = clcl_safetensors_write(w, path);
    clcl_safetensors_writer_free(w);
    return st;
}

/* A list of names for an error message: "a, b, c and 4 more". */
typedef struct {
    char text[1024];
    int n;
} name_list;

static void name_list_add(name_list *l, const char *name) {
    size_t used = strlen(l->text);
    if (l->n < NAMES_SHOWN)
        snprintf(l->text + used, sizeof l->text - used, "%s'%s'", l->n ? ", " : "", name);
    l->n++;
}

static const char *name_list_text(name_list *l) {
    size_t used = strlen(l->text);
    if (l->n > NAMES_SHOWN)
        snprintf(l->text + used, sizeof l->text - used, " and %d more", l->n - NAMES_SHOWN);
    return l->text;
}

/* The model tensor behind order entry i: its name, its tensor (NULL for a counter), and
 * whether it is in the head. */
static const char *ref_name(const clcl_model *m, int i, clcl_tensor **t, int *in_head) {
    const tensor_ref *r = &m->order[i];
    if (r->is_buffer) {
        *t = m->buffers[r->index].tensor;
        *in_head = m->buffers[r->index].in_head;
        return m->buffers[r->index].name;
    }
    *t = &m->params[r->index].value;
    *in_head = m->params[r->index].in_head;
    return m->params[r->index].name;
}

static int model_has(const clcl_model *m, const char *name) {
    clcl_tensor *t;
    int in_head;
    for (int i = 0; i < m->n_order; i++)
        if (!strcmp(ref_name(m, i, &t, &in_head), name))
            return 1;
    return 0;
}

/* Every check before anything is written: missing names, bad shapes, unexpected names. */
static clcl_status check_file(const clcl_model *m, const clcl_safetensors *st, int flags) {
    name_list missing = {{0}, 0}, unexpected = {{0}, 0};
    const char *src = clcl_safetensors_source(st);
    for (int i = 0; i < m->n_order; i++) {
        clcl_tensor *t;
        int in_head;
        const char *name = ref_name(m, i, &t, &in_head);
        const clcl_safetensors_entry *e = clcl_safetensors_find(st, name);
        if ((flags & CLCL_MODEL_BACKBONE_ONLY) && in_head)
            continue;
        if (!e) {
            name_list_add(&missing, name);
        } else if (t) {
            CLCL_TRY(clcl_safetensors_expect_f32(st, name, t->ndim, t->shape, &e));
        } else if (e->dtype != CLCL_DTYPE_I64 || e->ndim != 0) {
            return clcl_fail(CLCL_ERR_FORMAT,
                             "%s: tensor '%s' is %s with %d dimensions; "
                             "expected an I64 scalar",
                             src, name, e->dtype_name, e->ndim);
        }
    }
    for (int i = 0; i < clcl_safetensors_count(st); i++) {
        const char *name = clcl_safetensors_at(st, i)->name;
        int head = !strncmp(name, "head.", 5);
        if (!model_has(m, name) && !(flags & CLCL_MODEL_IGNORE_UNEXPECTED) &&
            !(head && (flags & CLCL_MODEL_BACKBONE_ONLY)))
            name_list_add(&unexpected, name);
    }
    if (missing.n || unexpected.n)
        return clcl_fail(CLCL_ERR_FORMAT,
                         "%s does not fit this %s (width %g, %d input channels): %d missing "
                         "tensor(s)%s%s; %d unexpected%s%s",
                         src, clcl_arch_name(m->cfg.arch), m->cfg.width, m->cfg.in_channels,
                         missing.n, missing.n ? ": " : "", name_list_text(&missing), unexpected.n,
                         unexpected.n ? ": " : "", name_list_text(&unexpected));
    return CLCL_OK;
}

clcl_status clcl_model_read(clcl_model *m, const clcl_safetensors *st, int flags) {
    CLCL_TRY(check_file(m, st, flags));
    for (int i = 0; i < m->n_order; i++) {
        clcl_tensor *t;
        int in_head;
        const char *name = ref_name(m, i, &t, &in_head);
        const clcl_safetensors_entry *e = clcl_safetensors_find(st, name);
        if ((flags & CLCL_MODEL_BACKBONE_ONLY) && in_head)
            continue;
        if (t)
            CLCL_TRY(clcl_safetensors_to_device(m->ctx, st, e, t));
        else
            *m->buffers[m->order[i].index].count = *(const int64_t *)e->data;
    }
    m->state = STATE_NONE;
    return CLCL_OK;
}

clcl_status clcl_model_load(clcl_model *m, const char *path, int flags) {
    clcl_safetensors *st;
    CLCL_TRY(clcl_safetensors_read(path, &st));
    clcl_status s = clcl_model_read(m, st, flags);
    clcl_safetensors_free(st);
    return s;
}

static clcl_status meta_int(const clcl_safetensors *st, const char *key, int *out) {
    const char *v = clcl_safetensors_metadata(st, key);
    char *end;
    if (!v)
        return clcl_fail(CLCL_ERR_FORMAT, "%s: no metadata '%s': not a model file clcl wrote",
                         clcl_safetensors_source(st), key);
    long x = strtol(v, &end, 10);
    if (*v == 0 || *end != 0 || x < 0 || x > 1 << 20)
        return clcl_fail(CLCL_ERR_FORMAT, "%s: metadata %s = '%s' is not a count",
                         clcl_safetensors_source(st), key, v);
    *out = (int)x;
    return CLCL_OK;
}

clcl_status clcl_model_config_read(const clcl_safetensors *st, clcl_model_config *cfg) {
    const char *src = clcl_safetensors_source(st);
    const char *arch = clcl_safetensors_metadata(st, "clcl.arch");
    const char *stem = clcl_safetensors_metadata(st, "clcl.stem");
    const char *width = clcl_safetensors_metadata(st, "clcl.width");
    int last_bias;
    memset(cfg, 0, sizeof *cfg);
    if (!arch || !stem || !width)
        return clcl_fail(CLCL_ERR_FORMAT,
                         "%s: no clcl.arch, clcl.stem or clcl.width metadata: not a model file "
                         "clcl wrote",
                         src);
    CLCL_TRY(clcl_arch_parse(arch, &cfg->arch));
    CLCL_TRY(clcl_stem_parse(stem, &cfg->stem));
    char *end;
    cfg->width = strtof(width, &end);
    if (*end != 0 || !(cfg->width > 0.0f))
        return clcl_fail(CLCL_ERR_FORMAT, "%s: metadata clcl.width = '%s' is not a width", src,
                         width);
    CLCL_TRY(meta_int(st, "clcl.in_channels", &cfg->in_channels));
    CLCL_TRY(meta_int(st, "clcl.head_hidden", &cfg->head_hidden));
    CLCL_TRY(meta_int(st, "clcl.head_out", &cfg->head_out));
    CLCL_TRY(meta_int(st, "clcl.head_last_bias", &last_bias));
    cfg->head_no_last_bias = !last_bias;
    return CLCL_OK;
}
