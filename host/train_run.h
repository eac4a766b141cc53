/* The state of one training run, shared by train.c, train_eval.c and
 * cmd_eval.c. */
#ifndef CLCL_TRAIN_RUN_H
#define CLCL_TRAIN_RUN_H

#include <signal.h>

#include "checkpoint.h"
#include "clcl/augment.h"
#include "clcl/dataset.h"
#include "clcl/eval.h"
#include "clcl/loss.h"
#include "clcl/model.h"
#include "clcl/schedule.h"
#include "metrics.h"
#include "train.h"

typedef struct {
    clcl_train_config cfg;
    clcl_context *ctx;
    clcl_dataset *train; /* what the loss sees */
    clcl_dataset *bank;  /* the kNN bank when it is not `train` (STL-10), else NULL */
    clcl_dataset *test;  /* kNN and probe queries */
    clcl_model *model;
    clcl_param *params;
    int n_params;
    clcl_optim *optim;
    clcl_lr_schedule lr;
    clcl_loss *loss;
    clcl_schedule tau, theta;
    clcl_augment_config aug_config;
    clcl_augment *aug;
    clcl_eval_transform *evt;
    clcl_tensor views; /* (2 batch, C, OH, OW) */
    clcl_tensor dh;    /* (2 batch, d) */
    int *view_labels;  /* (2 batch) */
    int steps_per_epoch;
    int64_t total_steps;
    clcl_train_position pos;
    clcl_metrics *metrics;
    double started;       /* clcl_now() when the command began */
    double eval0_seconds; /* of the start-up, the untrained network's kNN */
} clcl_run;

double clcl_now(void);

/* Set by a signal handler: the run stops after the step in flight, with a
 * checkpoint. */
extern volatile sig_atomic_t clcl_train_stop;

/* Opens device, data, model, optimizer, transforms and loss for r->cfg. */
clcl_status clcl_run_open(clcl_run *r);
clcl_status clcl_run_open_data(clcl_run *r);
void clcl_run_close(clcl_run *r);

/* Backbone features (n, F) of every image of `ds` under the evaluation
 * transform, in eval mode; *labels is malloc'ed (n). */
clcl_status clcl_run_features(clcl_run *r, clcl_dataset *ds, clcl_tensor *features, int **labels);
/* Backbone features of the training images (the bank) and of the test images, extracted
 * once; then the linear probe when probe_epochs > 0 (into *probe) and the kNN monitor when
 * knn is not NULL. */
clcl_status clcl_run_evaluate(clcl_run *r, int probe_epochs, clcl_accuracy *knn,
                              clcl_accuracy *probe);
/* "what: top-1 61.20%, top-5 97.10%" (no top-5 for five classes or fewer). */
void clcl_print_accuracy(const char *what, const clcl_accuracy *acc);

/* Trains from r->pos to the last epoch: steps, logs, kNN monitors and
 * checkpoints. */
clcl_status clcl_run_train(clcl_run *r);

#endif
