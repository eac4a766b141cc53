/* Evaluation inside a run: features of a whole dataset, the kNN monitor, the
 * probe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "train_run.h"

/* Runs `ds` through the evaluation transform and the backbone, batch by batch,
 * copying each batch's features into rows of `features`. */
static clcl_status features_into(clcl_run *r, clcl_dataset *ds, clcl_tensor *features, int *labels,
                                 uint8_t *host, int *index, clcl_tensor *x) {
    int n = clcl_dataset_count(ds), batch = r->cfg.batch_size;
    size_t row = (size_t)clcl_model_feature_dim(r->model) * sizeof(float);
    for (int off = 0; off < n; off += batch) {
        int b = n - off < batch ? n - off : batch;
        for (int i = 0; i < b; i++)
            index[i] = off + i;
        CLCL_TRY(clcl_dataset_read(ds, index, b, host, labels + off));
        x->shape[0] = b;
        x->count = (size_t)b * x->shape[1] * x->shape[2] * x->shape[3];
        CLCL_TRY(clcl_eval_transform_batch(r->evt, host, b, x));
        clcl_tensor f;
        CLCL_TRY(clcl_model_forward_backbone(r->model, x, CLCL_MODE_EVAL, &f));
        CLCL_TRY_CL(clEnqueueCopyBuffer(clcl_context_queue(r->ctx), f.buf, features->buf, 0,
                                        off * row, b * row, 0, NULL, NULL));
    }
    return clcl_finish(r->ctx);
}

clcl_status clcl_run_features(clcl_run *r, clcl_dataset *ds, clcl_tensor *features, int **labels) {
    int n = clcl_dataset_count(ds), batch = r->cfg.batch_size, oh, ow;
    int ch = clcl_dataset_channels(ds);
    clcl_eval_transform_output_size(r->evt, &oh, &ow);

    *labels = malloc((size_t)n * sizeof **labels);
    uint8_t *host = malloc((size_t)batch * clcl_dataset_image_bytes(ds));
    int *index = malloc((size_t)batch * sizeof *index);
    clcl_tensor x = {0};
    clcl_status st = CLCL_OK;
    if (!*labels || !host || !index) {
        st = clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory");
        goto done;
    }
    CLCL_TRY_GOTO(
        st, clcl_tensor_create(r->ctx, features, 2, (int[]){n, clcl_model_feature_dim(r->model)}),
        done);
    CLCL_TRY_GOTO(st, clcl_tensor_create(r->ctx, &x, 4, (int[]){batch, ch, oh, ow}), done);
    st = features_into(r, ds, features, *labels, host, index, &x);
done:
    x.shape[0] = batch; /* the buffer's own size, for the free below */
    clcl_tensor_free(&x);
    free(host);
    free(index);
    if (st != CLCL_OK) {
        clcl_tensor_free(features);
        free(*labels);
        *labels = NULL;
    }
    return st;
}

clcl_status clcl_run_evaluate(clcl_run *r, int probe_epochs, clcl_accuracy *knn,
                              clcl_accuracy *probe) {
    clcl_tensor bank = {0}, queries = {0};
    int *bank_labels = NULL, *query_labels = NULL;
    int classes = clcl_dataset_classes(r->test);

    /* the features of both sets, once for both evaluations */
    clcl_status st = clcl_run_features(r, r->bank ? r->bank : r->train, &bank, &bank_labels);
    if (st == CLCL_OK)
        st = clcl_run_features(r, r->test, &queries, &query_labels);

    /* the probe first: the kNN monitor normalizes the features in place */
    if (st == CLCL_OK && probe_epochs > 0) {
        clcl_probe_config pc = CLCL_PROBE_DEFAULTS;
        pc.epochs = probe_epochs;
        pc.seed = r->cfg.seed;
        st = clcl_linear_probe(r->ctx, &bank, bank_labels, &queries, query_labels, classes, &pc,
                               probe, NULL);
    }
    if (st == CLCL_OK && knn) {
        clcl_knn_config kc = {.k = r->cfg.knn_k, .temperature = r->cfg.knn_temperature};
        st = clcl_knn_evaluate(r->ctx, &bank, bank_labels, &queries, query_labels, classes, &kc,
                               knn);
    }
    clcl_tensor_free(&bank);
    clcl_tensor_free(&queries);
    free(bank_labels);
    free(query_labels);
    return st;
}

void clcl_print_accuracy(const char *what, const clcl_accuracy *acc) {
    printf("%s: top-1 %.2f%%", what, 100 * acc->top1);
    if (acc->top5 == acc->top5) /* not NaN: more than five classes */
        printf(", top-5 %.2f%%", 100 * acc->top5);
    printf("\n");
}
