/* Evaluation of frozen features: the weighted kNN monitor and the linear probe, both on
 * the device. */
#ifndef CLCL_EVAL_H
#define CLCL_EVAL_H

#include <stdint.h>

#include "clcl/tensor.h"

typedef struct {
    double top1; /* fraction in [0, 1] */
    double top5; /* NaN when there are 5 classes or fewer */
} clcl_accuracy;

/* Weighted kNN as in InstDisc: cosine similarity to a bank of features, the k nearest vote
 * for their class with weight exp(s / temperature). */
typedef struct {
    int k;              /* 200 */
    double temperature; /* 0.1 */
} clcl_knn_config;

#define CLCL_KNN_DEFAULTS                                                                          \
    { .k = 200, .temperature = 0.1 }

/* bank (Nb, F) and queries (Nq, F) are L2-normalized in place. Labels are host arrays in
 * [0, classes). */
clcl_status clcl_knn_evaluate(clcl_context *ctx, clcl_tensor *bank, const int *bank_labels,
                              clcl_tensor *queries, const int *query_labels, int classes,
                              const clcl_knn_config *config, clcl_accuracy *out);

/* Linear probe: a softmax classifier on standardized frozen features (statistics of the
 * training features), trained by mini-batch SGD with momentum and a cosine learning rate. */
typedef struct {
    int epochs;          /* 30 */
    int batch;           /* 256 */
    double lr;           /* 0.1, at the start of the cosine */
    double momentum;     /* 0.9 */
    double weight_decay; /* 1e-4 */
    uint64_t seed;       /* shuffles and initial weights */
} clcl_probe_config;

#define CLCL_PROBE_DEFAULTS                                                                        \
    { .epochs = 30, .batch = 256, .lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4, .seed = 0 }

/* Trains on (train, train_labels), reports accuracy on (test, test_labels); `final_loss`
 * (may be NULL) gets the last epoch's mean training cross-entropy. */
clcl_status clcl_linear_probe(clcl_context *ctx, const clcl_tensor *train, const int *train_labels,
                              const clcl_tensor *test, const int *test_labels, int classes,
                              const clcl_probe_config *config, clcl_accuracy *out,
                              double *final_loss);

#endif
