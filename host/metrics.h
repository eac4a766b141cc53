/* The training log: OUT/metrics.jsonl (one JSON record per logged step and per epoch) and
 * OUT/curves.svg drawn from the same records. */
#ifndef CLCL_METRICS_H
#define CLCL_METRICS_H

#include <stdio.h>

#include "clcl/status.h"

typedef struct {
    int epoch; /* 1-based epoch the step belongs to */
    long step; /* global step, 1-based */
    double loss;
    double tau;
    double theta;             /* > 1 while false-negative detection is off */
    double pseudo;            /* pseudo-positives per anchor */
    double precision, recall; /* NaN when there were none / no labels */
    double lr;
    double images_per_s;
} clcl_step_record;

typedef struct {
    int epoch;                 /* 0: the untrained network */
    long step;                 /* global step at the end of the epoch */
    double loss;               /* mean over the epoch's steps; NaN for epoch 0 */
    double knn_top1, knn_top5; /* NaN when not evaluated */
    double seconds;            /* the epoch's training time */
} clcl_epoch_record;

typedef struct clcl_metrics clcl_metrics;

/* Opens OUT/metrics.jsonl; when `resume`, reads back the records before `step` so that the
 * curves continue, and drops any later ones (they belong to the interrupted run). */
clcl_status clcl_metrics_open(const char *out_dir, int resume, long step, clcl_metrics **m);
void clcl_metrics_close(clcl_metrics *m);
clcl_status clcl_metrics_step(clcl_metrics *m, const clcl_step_record *r);
clcl_status clcl_metrics_epoch(clcl_metrics *m, const clcl_epoch_record *r);
/* Rewrites OUT/curves.svg (atomically) from every record so far. */
clcl_status clcl_metrics_plot(const clcl_metrics *m);

/* Prints a double as JSON: a number, or null when it is not finite. */
void clcl_json_number(FILE *out, double v);

#endif
