/* Evaluation inside a run: features of a whole dataset, the kNN monitor, the
 * probe. */
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

clcl_status clcl_run_knn(clcl_run *r, clcl_accuracy *acc) {
    clcl_tensor bank = {0}, queries = {0};
    int *bank_labels = NULL, *query_labels = NULL;
    clcl_dataset *bank_ds = r->bank ? r->bank : r->train;
    clcl_knn_config kc = {.k = r->cfg.knn_k, .temperature = r->cfg.knn_temperature};

    clcl_status st = clcl_run_features(r, bank_ds, &bank, &bank_labels);
    if (st == CLCL_OK)
        st = clcl_run_features(r, r->test, &queries, &query_labels);
    if (st == CLCL_OK)
        st = clcl_knn_evaluate(r->ctx, &bank, bank_labels, &queries, query_labels,
                               clcl_dataset_classes(r->test), &kc, acc);
    clcl_tensor_free(&bank);
    clcl_tensor_free(&queries);
    free(bank_labels);
    free(query_labels);
    return st;
}

clcl_status clcl_run_probe(clcl_run *r, int epochs, clcl_accuracy *acc) {
    clcl_tensor train = {0}, test = {0};
    int *train_labels = NULL, *test_labels = NULL;
    clcl_probe_config pc = CLCL_PROBE_DEFAULTS;
    pc.epochs = epochs;
    pc.seed = r->cfg.seed;

    clcl_status st = clcl_run_features(r, r->bank ? r->bank : r->train, &train, &train_labels);
    if (st == CLCL_OK)
        st = clcl_run_features(r, r->test, &test, &test_labels);
    if (st == CLCL_OK)
        st = clcl_linear_probe(r->ctx, &train, train_labels, &test, test_labels,
                               clcl_dataset_classes(r->test), &pc, acc, NULL);
    clcl_tensor_free(&train);
    clcl_tensor_free(&test);
    free(train_labels);
    free(test_labels);
    return st;
}
