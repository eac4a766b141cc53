/* The settings of a training run: flags, presets, checks, and their dump. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "clcl/schedule.h"
#include "train.h"

/* The presets of --method, applied to the flags the command line did not give. The
 * progressive values are the ones docs/method.md chose by experiment. */
#define SIMCLR_TAU            "constant:0.1"
#define PROGRESSIVE_TAU       "linear:0.1:0.2"
#define PROGRESSIVE_THRESHOLD "linear:0.95:0.99:warmup=0.3"
#define PROGRESSIVE_FN_CAP    5

void clcl_train_defaults(clcl_train_config *c) {
    *c = (clcl_train_config){
        .dataset = "fashion-mnist",
        .data = "",
        .subset = 0,
        .eval_subset = 0,
        .arch = "resnet18",
        .width = 0.25,
        .stem = "auto",
        .head_hidden = 0,
        .head_out = 128,
        .jitter = 0.8,
        .epochs = 10,
        .batch_size = 256,
        .optimizer = "sgd",
        .lr = 0.3,
        .lr_scale = "none",
        .momentum = 0.9,
        .weight_decay = 1e-4,
        .warmup_epochs = 1,
        .method = "progressive",
        .tau = PROGRESSIVE_TAU,
        .loss_scale = "tau",
        .threshold = PROGRESSIVE_THRESHOLD,
        .fn_mode = "attract",
        .fn_weight = 1.0,
        .fn_cap = PROGRESSIVE_FN_CAP,
        .seed = 0,
        .device = "",
        .out = "runs/clcl",
        .resume = "",
        .eval_every = 1,
        .log_every = 20,
        .knn_k = 200,
        .knn_temperature = 0.1,
        .probe_epochs = 0,
    };
}

#define FLAG(name, type, field, help)                                                              \
    { name, type, &c->field, help, NULL, 0 }
#define CHOICE(name, field, choices, help)                                                         \
    { name, CLCL_FLAG_CHOICE, &c->field, help, choices, 0 }

clcl_flag *clcl_train_flags(clcl_train_config *c, int *n) {
    const clcl_flag table[] = {
        CHOICE("dataset", dataset, "fashion-mnist|mnist|cifar10|cifar100|stl10|folder",
               "training data"),
        FLAG("data", CLCL_FLAG_STRING, data, "dataset directory (fashion-mnist: Debian's)"),
        FLAG("subset", CLCL_FLAG_INT, subset, "train on N images, class-balanced; 0: all"),
        FLAG("eval-subset", CLCL_FLAG_INT, eval_subset, "evaluate on N test images; 0: all"),
        CHOICE("arch", arch, "resnet18|resnet50", "backbone"),
        FLAG("width", CLCL_FLAG_DOUBLE, width, "channel width multiplier"),
        CHOICE("stem", stem, "auto|cifar|imagenet", "stem; auto: cifar up to 64 px"),
        FLAG("head-hidden", CLCL_FLAG_INT, head_hidden, "projection hidden width; 0: features"),
        FLAG("head-out", CLCL_FLAG_INT, head_out, "projection output width"),
        FLAG("crop-scale", CLCL_FLAG_DOUBLE, crop_scale,
             "smallest crop area share; 0: 0.08 (0.2 up to 64 px)"),
        FLAG("jitter", CLCL_FLAG_DOUBLE, jitter,
             "probability of colour jitter per view (grey: brightness, contrast)"),
        FLAG("epochs", CLCL_FLAG_INT, epochs, "training epochs"),
        FLAG("batch-size", CLCL_FLAG_INT, batch_size, "images per step (2 views each)"),
        CHOICE("optimizer", optimizer, "sgd|lars", "optimizer"),
        FLAG("lr", CLCL_FLAG_DOUBLE, lr, "base learning rate"),
        CHOICE("lr-scale", lr_scale, "none|linear", "linear: lr x batch / 256"),
        FLAG("momentum", CLCL_FLAG_DOUBLE, momentum, "momentum"),
        FLAG("weight-decay", CLCL_FLAG_DOUBLE, weight_decay, "weight decay"),
        FLAG("warmup-epochs", CLCL_FLAG_DOUBLE, warmup_epochs, "linear learning-rate warm-up"),
        CHOICE("method", method, "simclr|progressive",
               "preset: simclr = constant tau, no false-negative detection"),
        FLAG("tau", CLCL_FLAG_STRING, tau, "temperature schedule"),
        CHOICE("loss-scale", loss_scale, "tau|none",
               "tau: loss x tau / (tau at step 0), so a rising tau keeps the gradient's size"),
        FLAG("threshold", CLCL_FLAG_STRING, threshold, "false-negative threshold schedule"),
        CHOICE("fn-mode", fn_mode, "attract|eliminate", "what detected false negatives become"),
        FLAG("fn-weight", CLCL_FLAG_DOUBLE, fn_weight, "weight of pseudo-positives, 0..1"),
        FLAG("fn-cap", CLCL_FLAG_INT, fn_cap, "at most K pseudo-positives per anchor; 0: all"),
        FLAG("seed", CLCL_FLAG_UINT64, seed, "seed of weights, order and augmentation"),
        FLAG("device", CLCL_FLAG_STRING, device, "OpenCL device: index, cpu, gpu or a name"),
        FLAG("out", CLCL_FLAG_STRING, out, "output directory"),
        FLAG("resume", CLCL_FLAG_STRING, resume, "continue the run in this directory"),
        FLAG("eval-every", CLCL_FLAG_INT, eval_every, "epochs between kNN monitors; 0: end"),
        FLAG("log-every", CLCL_FLAG_INT, log_every, "steps between log lines off a terminal"),
        FLAG("knn-k", CLCL_FLAG_INT, knn_k, "neighbours of the kNN monitor"),
        FLAG("knn-temperature", CLCL_FLAG_DOUBLE, knn_temperature, "kNN vote temperature"),
        FLAG("probe-epochs", CLCL_FLAG_INT, probe_epochs, "linear probe at the end; 0: none"),
    };
    clcl_flag *flags = malloc(sizeof table);
    if (flags)
        memcpy(flags, table, sizeof table);
    *n = (int)(sizeof table / sizeof *table);
    return flags;
}

static int given(const clcl_flag *flags, int n, const char *name) {
    const clcl_flag *f = clcl_flags_find(flags, n, name);
    return f && f->given;
}

/* Each check: a condition that must hold, the flag, and what was expected. */
#define EXPECT(cond, flag, ...)                                                                    \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return clcl_fail(CLCL_ERR_ARGUMENT, "--" flag ": " __VA_ARGS__);                       \
    } while (0)

static clcl_status apply_method(clcl_train_config *c, const clcl_flag *flags, int n) {
    if (strcmp(c->method, "simclr") == 0) {
        EXPECT(!given(flags, n, "threshold") || strcmp(c->threshold, "off") == 0, "threshold",
               "'%s' with --method simclr, which has no false-negative detection; drop "
               "--threshold or use --method progressive",
               c->threshold);
        if (!given(flags, n, "tau") && !*c->resume) /* a resumed run keeps its own */
            c->tau = SIMCLR_TAU;
        EXPECT(strncmp(c->tau, "constant:", 9) == 0, "tau",
               "'%s' with --method simclr, whose temperature is constant; give constant:T", c->tau);
        c->threshold = "off";
        c->fn_cap = 0;
    }
    return CLCL_OK;
}

clcl_status clcl_train_resolve(clcl_train_config *c, const clcl_flag *flags, int n) {
    if (apply_method(c, flags, n) != CLCL_OK)
        return CLCL_ERR_ARGUMENT;
    EXPECT(c->epochs >= 1, "epochs", "%d; expected at least 1", c->epochs);
    EXPECT(c->batch_size >= 2, "batch-size", "%d; expected at least 2 images", c->batch_size);
    EXPECT(c->width >= 1.0 / 64 && c->width <= 8, "width",
           "%g; expected a value in [1/64, 8] (the stem's 64 channels times the width is at "
           "least 1)",
           c->width);
    EXPECT(c->lr > 0, "lr", "%g; expected a positive rate", c->lr);
    EXPECT(c->momentum >= 0 && c->momentum < 1, "momentum", "%g; expected [0, 1)", c->momentum);
    EXPECT(c->weight_decay >= 0, "weight-decay", "%g; expected >= 0", c->weight_decay);
    EXPECT(c->warmup_epochs >= 0 && c->warmup_epochs <= c->epochs, "warmup-epochs",
           "%g; expected at least 0 and at most --epochs (%d)", c->warmup_epochs, c->epochs);
    EXPECT(c->fn_weight >= 0 && c->fn_weight <= 1, "fn-weight", "%g; expected [0, 1]",
           c->fn_weight);
    EXPECT(c->fn_cap >= 0, "fn-cap", "%d; expected >= 0", c->fn_cap);
    EXPECT(c->subset >= 0, "subset", "%d; expected >= 0", c->subset);
    EXPECT(c->subset == 0 || c->subset >= c->batch_size, "subset",
           "%d is smaller than one batch (--batch-size %d)", c->subset, c->batch_size);
    EXPECT(c->eval_subset >= 0, "eval-subset", "%d; expected >= 0", c->eval_subset);
    EXPECT(c->head_hidden >= 0, "head-hidden", "%d; expected >= 0", c->head_hidden);
    EXPECT(c->head_out >= 1, "head-out", "%d; expected >= 1", c->head_out);
    EXPECT(c->crop_scale >= 0 && c->crop_scale <= 1, "crop-scale",
           "%g; expected a share of the image in (0, 1], or 0 for the default", c->crop_scale);
    EXPECT((c->jitter >= 0 && c->jitter <= 1) || c->jitter == -1, "jitter",
           "%g; expected a probability in [0, 1] (or -1: colour images only)", c->jitter);
    EXPECT(c->eval_every >= 0, "eval-every", "%d; expected >= 0", c->eval_every);
    EXPECT(c->log_every >= 1, "log-every", "%d; expected >= 1", c->log_every);
    EXPECT(c->knn_k >= 1, "knn-k", "%d; expected >= 1", c->knn_k);
    EXPECT(c->knn_temperature > 0, "knn-temperature", "%g; expected > 0", c->knn_temperature);
    EXPECT(c->probe_epochs >= 0, "probe-epochs", "%d; expected >= 0", c->probe_epochs);
    EXPECT(*c->out, "out", "an empty directory name");
    /* the schedules are checked here too, so a malformed spec is refused before any data
     * is read (host/train.c parses them again for the run) */
    clcl_schedule check;
    CLCL_TRY(clcl_schedule_parse(c->tau, "--tau", &check));
    CLCL_TRY(clcl_schedule_check_temperature(&check, "--tau"));
    CLCL_TRY(clcl_schedule_parse(c->threshold, "--threshold", &check));
    CLCL_TRY(clcl_schedule_check_threshold(&check, "--threshold"));
    return CLCL_OK;
}

static void json_string(FILE *out, const char *s) {
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', out);
        if ((unsigned char)*s < 0x20)
            fprintf(out, "\\u%04x", *s);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

/* One row per setting: its name, and how to print it. */
typedef enum { S, I, D, U } kind;
typedef struct {
    const char *name;
    kind k;
    const void *v;
} setting;

/* Settings newer than some runs, and the value (as config.json writes it) that a file
 * without them reads as: the behaviour those runs trained with. Every other setting is
 * required. */
static const struct {
    const char *name, *absent;
} newer[] = {
    {"loss_scale", "\"none\""}, {"jitter", "-1"}, /* colour images only */
};

static const char *absent_value(const char *name) {
    for (size_t i = 0; i < sizeof newer / sizeof *newer; i++)
        if (strcmp(newer[i].name, name) == 0)
            return newer[i].absent;
    return NULL;
}

static int settings(const clcl_train_config *c, setting *s) {
    const setting all[] = {
        {"dataset", S, &c->dataset},
        {"data", S, &c->data},
        {"subset", I, &c->subset},
        {"eval_subset", I, &c->eval_subset},
        {"arch", S, &c->arch},
        {"width", D, &c->width},
        {"stem", S, &c->stem},
        {"head_hidden", I, &c->head_hidden},
        {"head_out", I, &c->head_out},
        {"crop_scale", D, &c->crop_scale},
        {"jitter", D, &c->jitter},
        {"epochs", I, &c->epochs},
        {"batch_size", I, &c->batch_size},
        {"optimizer", S, &c->optimizer},
        {"lr", D, &c->lr},
        {"lr_scale", S, &c->lr_scale},
        {"momentum", D, &c->momentum},
        {"weight_decay", D, &c->weight_decay},
        {"warmup_epochs", D, &c->warmup_epochs},
        {"method", S, &c->method},
        {"tau", S, &c->tau},
        {"loss_scale", S, &c->loss_scale},
        {"threshold", S, &c->threshold},
        {"fn_mode", S, &c->fn_mode},
        {"fn_weight", D, &c->fn_weight},
        {"fn_cap", I, &c->fn_cap},
        {"seed", U, &c->seed},
        {"device", S, &c->device},
        {"out", S, &c->out},
        {"eval_every", I, &c->eval_every},
        {"log_every", I, &c->log_every},
        {"knn_k", I, &c->knn_k},
        {"knn_temperature", D, &c->knn_temperature},
        {"probe_epochs", I, &c->probe_epochs},
    };
    memcpy(s, all, sizeof all);
    return (int)(sizeof all / sizeof *all);
}

static void print_value(FILE *out, const setting *s, int json) {
    switch (s->k) {
        case S:
            if (json)
                json_string(out, *(const char *const *)s->v);
            else /* the dump: an empty setting is its default, resolved on a later line */
                fputs(**(const char *const *)s->v ? *(const char *const *)s->v : "(default)", out);
            break;
        case I:
            fprintf(out, "%d", *(const int *)s->v);
            break;
        case D: { /* the shortest text that reads back as the same double: 0.3, not 0.2999... */
            double v = *(const double *)s->v;
            char text[32];
            for (int digits = 15; digits <= 17; digits++) {
                snprintf(text, sizeof text, "%.*g", digits, v);
                if (strtod(text, NULL) == v)
                    break;
            }
            fputs(text, out);
            break;
        }
        case U:
            fprintf(out, "%llu", *(const unsigned long long *)s->v);
            break;
    }
}

void clcl_train_config_json(FILE *out, const clcl_train_config *c) {
    setting s[64];
    int n = settings(c, s);
    fputs("{\n", out);
    for (int i = 0; i < n; i++) {
        fprintf(out, "  \"%s\": ", s[i].name);
        print_value(out, &s[i], 1);
        fputs(i + 1 < n ? ",\n" : "\n", out);
    }
    fputs("}\n", out);
}

void clcl_train_config_dump(FILE *out, const clcl_train_config *c) {
    setting s[64];
    int n = settings(c, s);
    for (int i = 0; i < n; i++) {
        fprintf(out, "  %-16s ", s[i].name);
        if (s[i].k == D)
            fprintf(out, "%g", *(const double *)s[i].v);
        else
            print_value(out, &s[i], 0);
        fputc('\n', out);
    }
}

/* A value as config.json writes it, at p; strings are unescaped into a fresh allocation
 * that lives as long as the process (the settings do). 0 when valid, -1 when not. */
static int parse_value(const char *p, const setting *s) {
    char *end;
    switch (s->k) {
        case S: {
            if (*p++ != '"')
                return -1;
            char *out = malloc(strlen(p) + 1), *o = out;
            if (!out)
                return -1;
            for (; *p && *p != '"'; p++)
                *o++ = *p == '\\' && p[1] ? *++p : *p;
            *o = '\0';
            *(const char **)s->v = out;
            return *p == '"' ? 0 : -1;
        }
        case I:
            *(int *)s->v = (int)strtol(p, &end, 10);
            break;
        case D:
            *(double *)s->v = strtod(p, &end);
            break;
        case U:
            *(unsigned long long *)s->v = strtoull(p, &end, 10);
            break;
    }
    return end == p ? -1 : 0;
}

/* The value after "name": in a config.json that clcl wrote: 0 when read, 1 when the key is
 * absent, -1 when its value is not valid. */
static int read_setting(const char *text, const setting *s) {
    char pattern[80];
    snprintf(pattern, sizeof pattern, "\"%s\": ", s->name);
    const char *p = strstr(text, pattern);
    return p ? parse_value(p + strlen(pattern), s) : 1;
}

clcl_status clcl_train_config_read(const char *path, clcl_train_config *c) {
    FILE *f = fopen(path, "rb");
    char text[16384];
    if (!f)
        return clcl_fail(CLCL_ERR_IO,
                         "cannot read %s: %s (is this a clcl training "
                         "directory?)",
                         path, strerror(errno));
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    clcl_train_defaults(c);
    setting s[64];
    int count = settings((clcl_train_config *)c, s);
    for (int i = 0; i < count; i++) {
        int rc = read_setting(text, &s[i]);
        if (rc == 0)
            continue;
        const char *absent = rc > 0 ? absent_value(s[i].name) : NULL;
        if (absent && parse_value(absent, &s[i]) == 0)
            continue;
        return clcl_fail(CLCL_ERR_FORMAT, "%s: no valid \"%s\"", path, s[i].name);
    }
    return CLCL_OK;
}
