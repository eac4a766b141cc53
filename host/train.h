/* `clcl train` and `clcl eval`: the settings of a run and the functions that carry it out. */
#ifndef CLCL_TRAIN_H
#define CLCL_TRAIN_H

#include <stdio.h>

#include "clcl/status.h"
#include "flags.h"

/* Every setting of a training run, as resolved from flags, presets and defaults. */
typedef struct {
    /* data */
    const char *dataset; /* fashion-mnist, mnist, cifar10, cifar100, stl10, folder */
    const char *data;    /* "" means the dataset's default location */
    int subset;          /* > 0: train on the first-N seeded random, class-balanced subset */
    int eval_subset;     /* > 0: kNN / probe queries from this many test images */
    /* model */
    const char *arch; /* resnet18, resnet50 */
    double width;
    const char *stem; /* cifar, imagenet, auto */
    int head_hidden;  /* 0: the backbone's feature width */
    int head_out;
    double crop_scale; /* smallest random crop, as a share of the image's area; 0: 0.08, or
                          0.2 for images of 64 px and less */
    double jitter;     /* colour jitter's probability per view (brightness and contrast on one
                        * channel); -1: colour images only, as runs before the setting did */
    /* optimisation */
    int epochs;
    int batch_size; /* images per step; the loss sees 2x as many views */
    const char *optimizer;
    double lr; /* base rate; scaled by batch / 256 when lr_scale is "linear" */
    const char *lr_scale;
    double momentum;
    double weight_decay;
    double warmup_epochs;
    /* the method */
    const char *method;     /* simclr, progressive */
    const char *tau;        /* schedule spec */
    const char *loss_scale; /* tau: the loss times tau / tau at step 0; none */
    const char *threshold;  /* schedule spec or "off" */
    const char *fn_mode;    /* attract, eliminate */
    double fn_weight;
    int fn_cap;
    /* run */
    unsigned long long seed;
    const char *device;
    const char *out;
    const char *resume;
    int eval_every; /* epochs between kNN evaluations; 0: only at the end */
    int log_every;  /* steps between plain log lines when output is not a terminal */
    int knn_k;
    double knn_temperature;
    int probe_epochs; /* 0: no linear probe at the end */
} clcl_train_config;

/* The flag table over `c`; n gets its length. The table points into c. */
clcl_flag *clcl_train_flags(clcl_train_config *c, int *n);
void clcl_train_defaults(clcl_train_config *c);
/* Applies the --method preset to what the command line left unset, then checks every
 * value; an error names the flag and what was expected. */
clcl_status clcl_train_resolve(clcl_train_config *c, const clcl_flag *flags, int n_flags);
/* The settings as one JSON object (config.json) and as the config dump's lines. */
void clcl_train_config_json(FILE *out, const clcl_train_config *c);
void clcl_train_config_dump(FILE *out, const clcl_train_config *c);
/* Reads a config.json that clcl_train_config_json wrote. */
clcl_status clcl_train_config_read(const char *path, clcl_train_config *c);

#endif
