/* The weighted kNN monitor and the linear probe on frozen features. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "clcl/eval.h"
#include "clcl/gemm.h"
#include "clcl/rng.h"

/* Upper bound on the similarity block one kNN pass holds, in bytes. */
#define KNN_BLOCK_BYTES (64u << 20)
#define EVAL_GROUP      64
#define PI              3.14159265358979323846

/* One work-item per row, in groups of EVAL_GROUP or fewer where the kernel or the device
 * (CLCL_MAX_WORK_GROUP) allows less. */
static clcl_status run_rows(clcl_context *ctx, cl_kernel k, size_t rows) {
    size_t local;
    CLCL_TRY(clcl_kernel_max_work_group(ctx, k, &local));
    local = local < EVAL_GROUP ? local : EVAL_GROUP;
    return clcl_launch(ctx, k, 1, &rows, &local);
}

static clcl_status upload(clcl_context *ctx, cl_mem buf, const void *host, size_t bytes) {
    CLCL_TRY_CL(
        clEnqueueWriteBuffer(clcl_context_queue(ctx), buf, CL_TRUE, 0, bytes, host, 0, NULL, NULL));
    return CLCL_OK;
}

static clcl_status download(clcl_context *ctx, cl_mem buf, void *host, size_t bytes) {
    CLCL_TRY_CL(
        clEnqueueReadBuffer(clcl_context_queue(ctx), buf, CL_TRUE, 0, bytes, host, 0, NULL, NULL));
    return CLCL_OK;
}

static clcl_status check_features(const char *what, const clcl_tensor *t, int cols,
                                  const int *labels, int classes) {
    char s[64];
    if (t->ndim != 2 || (cols > 0 && t->shape[1] != cols))
        return clcl_fail(CLCL_ERR_SHAPE, "%s: features %s, expected (rows, %d)", what,
                         clcl_shape_string(t->ndim, t->shape, s, sizeof s), cols);
    for (int i = 0; i < t->shape[0]; i++)
        if (labels[i] < 0 || labels[i] >= classes)
            return clcl_fail(CLCL_ERR_ARGUMENT, "%s: label %d of row %d is outside [0, %d)", what,
                             labels[i], i, classes);
    return CLCL_OK;
}

static clcl_status normalize_rows(clcl_context *ctx, clcl_tensor *x) {
    cl_kernel k;
    CLCL_TRY(clcl_context_kernel(ctx, "eval", "l2_normalize_rows", NULL, &k));
    CLCL_TRY(clcl_kernel_args(k, CLCL_ARG_MEM(x->buf), CLCL_ARG_INT(x->shape[0]),
                              CLCL_ARG_INT(x->shape[1])));
    return run_rows(ctx, k, (size_t)x->shape[0]);
}

/* Sums the 0/1 flags of correct1/correct5 into an accuracy. */
static clcl_status tally(clcl_context *ctx, cl_mem c1, cl_mem c5, int n, int classes,
                         clcl_accuracy *out) {
    int *h = malloc(2 * (size_t)n * sizeof *h);
    if (!h)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory");
    clcl_status st = download(ctx, c1, h, (size_t)n * sizeof *h);
    if (st == CLCL_OK)
        st = download(ctx, c5, h + n, (size_t)n * sizeof *h);
    long s1 = 0, s5 = 0;
    for (int i = 0; i < n; i++) {
        s1 += h[i];
        s5 += h[n + i];
    }
    free(h);
    out->top1 = (double)s1 / n;
    out->top5 = classes > 5 ? (double)s5 / n : NAN;
    return st;
}

/* ---- kNN ----------------------------------------------------------------------------- */

typedef struct {
    cl_mem bank_labels, query_labels, sim, heap_val, heap_idx, scores, correct1, correct5;
} knn_buffers;

static void knn_buffers_free(knn_buffers *b) {
    cl_mem *all = (cl_mem *)b;
    for (size_t i = 0; i < sizeof *b / sizeof(cl_mem); i++)
        if (all[i])
            clReleaseMemObject(all[i]);
}

static clcl_status knn_buffers_create(clcl_context *ctx, int nb, int nq, int block, int k,
                                      int classes, knn_buffers *b) {
    size_t ib = sizeof(cl_int), fb = sizeof(cl_float);
    memset(b, 0, sizeof *b);
    CLCL_TRY(clcl_buffer_create(ctx, nb * ib, "kNN bank labels", &b->bank_labels));
    CLCL_TRY(clcl_buffer_create(ctx, nq * ib, "kNN query labels", &b->query_labels));
    CLCL_TRY(clcl_buffer_create(ctx, (size_t)block * nb * fb, "kNN similarities", &b->sim));
    CLCL_TRY(clcl_buffer_create(ctx, (size_t)block * k * fb, "kNN heap", &b->heap_val));
    CLCL_TRY(clcl_buffer_create(ctx, (size_t)block * k * ib, "kNN heap", &b->heap_idx));
    CLCL_TRY(clcl_buffer_create(ctx, (size_t)block * classes * fb, "kNN votes", &b->scores));
    CLCL_TRY(clcl_buffer_create(ctx, nq * ib, "kNN results", &b->correct1));
    CLCL_TRY(clcl_buffer_create(ctx, nq * ib, "kNN results", &b->correct5));
    return CLCL_OK;
}

static clcl_status knn_run(clcl_context *ctx, clcl_tensor *bank, clcl_tensor *queries, int classes,
                           int k, float inv_t, int block, knn_buffers *b) {
    int nb = bank->shape[0], nq = queries->shape[0], f = bank->shape[1];
    cl_kernel vote;

    CLCL_TRY(clcl_context_kernel(ctx, "eval", "knn_vote", NULL, &vote));
    for (int q0 = 0; q0 < nq; q0 += block) {
        int n = nq - q0 < block ? nq - q0 : block;

        /* sim (n, Nb) = queries[q0 : q0 + n] bank^T */
        clcl_gemm_args g = {.trans_b = 1,
                            .m = n,
                            .n = nb,
                            .k = f,
                            .alpha = 1,
                            .beta = 0,
                            .a = queries->buf,
                            .a_offset = (size_t)q0 * f,
                            .lda = f,
                            .b = bank->buf,
                            .ldb = f,
                            .c = b->sim,
                            .ldc = nb};
        CLCL_TRY(clcl_gemm(ctx, &g));
        CLCL_TRY(clcl_kernel_args(
            vote, CLCL_ARG_MEM(b->sim), CLCL_ARG_INT(q0), CLCL_ARG_INT(n), CLCL_ARG_INT(nb),
            CLCL_ARG_MEM(b->bank_labels), CLCL_ARG_MEM(b->query_labels), CLCL_ARG_INT(k),
            CLCL_ARG_FLOAT(inv_t), CLCL_ARG_INT(classes), CLCL_ARG_MEM(b->heap_val),
            CLCL_ARG_MEM(b->heap_idx), CLCL_ARG_MEM(b->scores), CLCL_ARG_MEM(b->correct1),
            CLCL_ARG_MEM(b->correct5)));
        CLCL_TRY(run_rows(ctx, vote, (size_t)n));
    }
    return CLCL_OK;
}

clcl_status clcl_knn_evaluate(clcl_context *ctx, clcl_tensor *bank, const int *bank_labels,
                              clcl_tensor *queries, const int *query_labels, int classes,
                              const clcl_knn_config *config, clcl_accuracy *out) {
    knn_buffers b;

    if (classes < 1 || config->k < 1 || !(config->temperature > 0))
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "kNN: classes %d, k %d, temperature %g: expected "
                         "positive values",
                         classes, config->k, config->temperature);
    CLCL_TRY(check_features("kNN bank", bank, 0, bank_labels, classes));
    CLCL_TRY(check_features("kNN queries", queries, bank->shape[1], query_labels, classes));
    int nb = bank->shape[0], nq = queries->shape[0];
    int k = config->k < nb ? config->k : nb;
    size_t budget = KNN_BLOCK_BYTES;
    if (budget > clcl_context_device(ctx)->max_alloc)
        budget = (size_t)clcl_context_device(ctx)->max_alloc;
    int block = (int)(budget / ((size_t)nb * sizeof(float)));
    block = block < 1 ? 1 : block > nq ? nq : block;

    clcl_status st = knn_buffers_create(ctx, nb, nq, block, k, classes, &b);
    CLCL_TRY_GOTO(st, st, done);
    CLCL_TRY_GOTO(st, upload(ctx, b.bank_labels, bank_labels, nb * sizeof(int)), done);
    CLCL_TRY_GOTO(st, upload(ctx, b.query_labels, query_labels, nq * sizeof(int)), done);
    CLCL_TRY_GOTO(st, normalize_rows(ctx, bank), done);
    CLCL_TRY_GOTO(st, normalize_rows(ctx, queries), done);
    CLCL_TRY_GOTO(
        st, knn_run(ctx, bank, queries, classes, k, (float)(1 / config->temperature), block, &b),
        done);
    st = tally(ctx, b.correct1, b.correct5, nq, classes, out);
done:
    knn_buffers_free(&b);
    return st;
}

/* ---- linear probe -------------------------------------------------------------------- */

typedef struct {
    cl_mem train_labels, test_labels, index, mean, inv_std, xb, logits, grad, loss, w, b, dw, db,
        vw, vb, correct1, correct5;
} probe_buffers;

static void probe_buffers_free(probe_buffers *p) {
    cl_mem *all = (cl_mem *)p;
    for (size_t i = 0; i < sizeof *p / sizeof(cl_mem); i++)
        if (all[i])
            clReleaseMemObject(all[i]);
}

static clcl_status zeroed(clcl_context *ctx, size_t count, const char *what, cl_mem *out) {
    float zero = 0.0f;
    CLCL_TRY(clcl_buffer_create(ctx, count * sizeof(float), what, out));
    CLCL_TRY_CL(clEnqueueFillBuffer(clcl_context_queue(ctx), *out, &zero, sizeof zero, 0,
                                    count * sizeof(float), 0, NULL, NULL));
    return CLCL_OK;
}

static clcl_status probe_buffers_create(clcl_context *ctx, int nt, int ne, int f, int batch,
                                        int classes, probe_buffers *p) {
    size_t ib = sizeof(cl_int), fb = sizeof(cl_float), wc = (size_t)classes * f;
    int n_index = nt > ne ? nt : ne;
    memset(p, 0, sizeof *p);
    CLCL_TRY(clcl_buffer_create(ctx, nt * ib, "probe labels", &p->train_labels));
    CLCL_TRY(clcl_buffer_create(ctx, ne * ib, "probe labels", &p->test_labels));
    CLCL_TRY(clcl_buffer_create(ctx, n_index * ib, "probe order", &p->index));
    CLCL_TRY(clcl_buffer_create(ctx, f * fb, "probe mean", &p->mean));
    CLCL_TRY(clcl_buffer_create(ctx, f * fb, "probe std", &p->inv_std));
    CLCL_TRY(clcl_buffer_create(ctx, (size_t)batch * f * fb, "probe batch", &p->xb));
    CLCL_TRY(clcl_buffer_create(ctx, (size_t)batch * classes * fb, "probe logits", &p->logits));
    CLCL_TRY(clcl_buffer_create(ctx, (size_t)batch * classes * fb, "probe grad", &p->grad));
    CLCL_TRY(clcl_buffer_create(ctx, (size_t)batch * fb, "probe loss", &p->loss));
    CLCL_TRY(zeroed(ctx, wc, "probe weights", &p->w));
    CLCL_TRY(zeroed(ctx, classes, "probe bias", &p->b));
    CLCL_TRY(clcl_buffer_create(ctx, wc * fb, "probe grad", &p->dw));
    CLCL_TRY(clcl_buffer_create(ctx, classes * fb, "probe grad", &p->db));
    CLCL_TRY(zeroed(ctx, wc, "probe momentum", &p->vw));
    CLCL_TRY(zeroed(ctx, classes, "probe momentum", &p->vb));
    CLCL_TRY(clcl_buffer_create(ctx, ne * ib, "probe results", &p->correct1));
    CLCL_TRY(clcl_buffer_create(ctx, ne * ib, "probe results", &p->correct5));
    return CLCL_OK;
}

typedef struct {
    clcl_context *ctx;
    probe_buffers *p;
    int f, classes;
    const int *train_labels; /* host, in dataset order */
    cl_kernel gather, xent, colsum, sgd, rank;
} probe;

/* xb (n, F) = standardized rows x[index[offset ..]]; logits (n, classes) = xb w^T. */
static clcl_status probe_logits(probe *pr, const clcl_tensor *x, int offset, int n) {
    probe_buffers *p = pr->p;
    CLCL_TRY(clcl_kernel_args(pr->gather, CLCL_ARG_MEM(x->buf), CLCL_ARG_MEM(p->index),
                              CLCL_ARG_INT(offset), CLCL_ARG_INT(n), CLCL_ARG_INT(pr->f),
                              CLCL_ARG_MEM(p->mean), CLCL_ARG_MEM(p->inv_std),
                              CLCL_ARG_MEM(p->xb)));
    CLCL_TRY(run_rows(pr->ctx, pr->gather, (size_t)n * pr->f));
    clcl_gemm_args g = {.trans_b = 1,
                        .m = n,
                        .n = pr->classes,
                        .k = pr->f,
                        .alpha = 1,
                        .a = p->xb,
                        .lda = pr->f,
                        .b = p->w,
                        .ldb = pr->f,
                        .c = p->logits,
                        .ldc = pr->classes};
    return clcl_gemm(pr->ctx, &g);
}

static clcl_status probe_update(probe *pr, int n, float lr, float momentum, float wd) {
    probe_buffers *p = pr->p;
    int wc = pr->classes * pr->f;

    /* dw (classes, F) = grad^T xb; db = column sums of grad */
    clcl_gemm_args g = {.trans_a = 1,
                        .m = pr->classes,
                        .n = pr->f,
                        .k = n,
                        .alpha = 1,
                        .a = p->grad,
                        .lda = pr->classes,
                        .b = p->xb,
                        .ldb = pr->f,
                        .c = p->dw,
                        .ldc = pr->f};
    CLCL_TRY(clcl_gemm(pr->ctx, &g));
    CLCL_TRY(clcl_kernel_args(pr->colsum, CLCL_ARG_MEM(p->grad), CLCL_ARG_INT(n),
                              CLCL_ARG_INT(pr->classes), CLCL_ARG_MEM(p->db)));
    CLCL_TRY(run_rows(pr->ctx, pr->colsum, (size_t)pr->classes));

    CLCL_TRY(clcl_kernel_args(pr->sgd, CLCL_ARG_MEM(p->w), CLCL_ARG_MEM(p->dw), CLCL_ARG_MEM(p->vw),
                              CLCL_ARG_INT(wc), CLCL_ARG_FLOAT(lr), CLCL_ARG_FLOAT(momentum),
                              CLCL_ARG_FLOAT(wd)));
    CLCL_TRY(run_rows(pr->ctx, pr->sgd, (size_t)wc));
    CLCL_TRY(clcl_kernel_args(pr->sgd, CLCL_ARG_MEM(p->b), CLCL_ARG_MEM(p->db), CLCL_ARG_MEM(p->vb),
                              CLCL_ARG_INT(pr->classes), CLCL_ARG_FLOAT(lr),
                              CLCL_ARG_FLOAT(momentum), CLCL_ARG_FLOAT(0.0f)));
    return run_rows(pr->ctx, pr->sgd, (size_t)pr->classes);
}

/* One epoch over a shuffled order; *loss gets the mean cross-entropy when asked. */
static clcl_status probe_epoch(probe *pr, const clcl_tensor *train, const clcl_probe_config *c,
                               int epoch, long *step, long total_steps, int *order, double *loss) {
    int nt = train->shape[0];
    clcl_rng rng;
    float *host_loss = loss ? malloc((size_t)c->batch * sizeof *host_loss) : NULL;
    double sum = 0;
    clcl_status st = CLCL_OK;

    if (loss && !host_loss)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory");
    /* this epoch's order, and the labels in that order (order[nt ..] holds them) */
    for (int i = 0; i < nt; i++)
        order[i] = i;
    clcl_rng_seed_stream(&rng, c->seed, (uint64_t)epoch);
    clcl_rng_shuffle(&rng, order, nt);
    for (int i = 0; i < nt; i++)
        order[nt + i] = pr->train_labels[order[i]];
    CLCL_TRY_GOTO(st, upload(pr->ctx, pr->p->index, order, (size_t)nt * sizeof(int)), done);
    CLCL_TRY_GOTO(st, upload(pr->ctx, pr->p->train_labels, order + nt, (size_t)nt * sizeof(int)),
                  done);

    for (int off = 0; off < nt; off += c->batch, (*step)++) {
        int n = nt - off < c->batch ? nt - off : c->batch;
        float lr = (float)(c->lr * 0.5 * (1 + cos(PI * (double)*step / total_steps)));
        CLCL_TRY_GOTO(st, probe_logits(pr, train, off, n), done);
        CLCL_TRY_GOTO(st,
                      clcl_kernel_args(pr->xent, CLCL_ARG_MEM(pr->p->logits),
                                       CLCL_ARG_MEM(pr->p->b), CLCL_ARG_MEM(pr->p->train_labels),
                                       CLCL_ARG_INT(off), CLCL_ARG_INT(n),
                                       CLCL_ARG_INT(pr->classes), CLCL_ARG_MEM(pr->p->grad),
                                       CLCL_ARG_MEM(pr->p->loss)),
                      done);
        CLCL_TRY_GOTO(st, run_rows(pr->ctx, pr->xent, (size_t)n), done);
        if (loss) {
            CLCL_TRY_GOTO(st, download(pr->ctx, pr->p->loss, host_loss, n * sizeof(float)), done);
            for (int i = 0; i < n; i++)
                sum += host_loss[i];
        }
        CLCL_TRY_GOTO(st, probe_update(pr, n, lr, (float)c->momentum, (float)c->weight_decay),
                      done);
    }
    if (loss)
        *loss = sum / nt;
done:
    free(host_loss);
    return st;
}

static clcl_status probe_test(probe *pr, const clcl_tensor *test, const int *test_labels, int batch,
                              int *order, clcl_accuracy *out) {
    int ne = test->shape[0];
    probe_buffers *p = pr->p;

    for (int i = 0; i < ne; i++)
        order[i] = i;
    CLCL_TRY(upload(pr->ctx, p->index, order, (size_t)ne * sizeof(int)));
    CLCL_TRY(upload(pr->ctx, p->test_labels, test_labels, (size_t)ne * sizeof(int)));
    for (int off = 0; off < ne; off += batch) {
        int n = ne - off < batch ? ne - off : batch;
        CLCL_TRY(probe_logits(pr, test, off, n));
        CLCL_TRY(clcl_kernel_args(pr->rank, CLCL_ARG_MEM(p->logits), CLCL_ARG_MEM(p->b),
                                  CLCL_ARG_MEM(p->test_labels), CLCL_ARG_INT(off), CLCL_ARG_INT(n),
                                  CLCL_ARG_INT(pr->classes), CLCL_ARG_MEM(p->correct1),
                                  CLCL_ARG_MEM(p->correct5)));
        CLCL_TRY(run_rows(pr->ctx, pr->rank, (size_t)n));
    }
    return tally(pr->ctx, p->correct1, p->correct5, ne, pr->classes, out);
}

static clcl_status probe_kernels(probe *pr) {
    clcl_context *ctx = pr->ctx;
    CLCL_TRY(clcl_context_kernel(ctx, "eval", "gather_standardize", NULL, &pr->gather));
    CLCL_TRY(clcl_context_kernel(ctx, "eval", "softmax_xent", NULL, &pr->xent));
    CLCL_TRY(clcl_context_kernel(ctx, "eval", "column_sum", NULL, &pr->colsum));
    CLCL_TRY(clcl_context_kernel(ctx, "eval", "sgd_momentum", NULL, &pr->sgd));
    CLCL_TRY(clcl_context_kernel(ctx, "eval", "logits_rank", NULL, &pr->rank));
    return CLCL_OK;
}

clcl_status clcl_linear_probe(clcl_context *ctx, const clcl_tensor *train, const int *train_labels,
                              const clcl_tensor *test, const int *test_labels, int classes,
                              const clcl_probe_config *config, clcl_accuracy *out,
                              double *final_loss) {
    probe_buffers p;
    cl_kernel stats;

    if (classes < 2 || config->epochs < 1 || config->batch < 1 || !(config->lr > 0))
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "linear probe: classes %d, epochs %d, batch %d, "
                         "lr %g: expected classes >= 2 and positive values",
                         classes, config->epochs, config->batch, config->lr);
    CLCL_TRY(check_features("linear probe train", train, 0, train_labels, classes));
    CLCL_TRY(check_features("linear probe test", test, train->shape[1], test_labels, classes));
    int nt = train->shape[0], ne = test->shape[0], f = train->shape[1];
    int batch = config->batch < nt ? config->batch : nt;
    int n_order = nt > ne ? nt : ne;
    int *order = malloc(2 * (size_t)n_order * sizeof *order);
    if (!order)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory");
    probe pr = {.ctx = ctx, .p = &p, .f = f, .classes = classes, .train_labels = train_labels};
    clcl_probe_config c = *config;
    c.batch = batch;

    clcl_status st = probe_buffers_create(ctx, nt, ne, f, batch, classes, &p);
    CLCL_TRY_GOTO(st, st, done);
    CLCL_TRY_GOTO(st, probe_kernels(&pr), done);

    /* standardize with the training features' statistics */
    CLCL_TRY_GOTO(st, clcl_context_kernel(ctx, "eval", "column_stats", NULL, &stats), done);
    CLCL_TRY_GOTO(st,
                  clcl_kernel_args(stats, CLCL_ARG_MEM(train->buf), CLCL_ARG_INT(nt),
                                   CLCL_ARG_INT(f), CLCL_ARG_MEM(p.mean), CLCL_ARG_MEM(p.inv_std)),
                  done);
    CLCL_TRY_GOTO(st, run_rows(ctx, stats, (size_t)f), done);

    long step = 0, total = (long)config->epochs * ((nt + batch - 1) / batch);
    for (int e = 0; e < config->epochs; e++) {
        int last = e == config->epochs - 1;
        CLCL_TRY_GOTO(st,
                      probe_epoch(&pr, train, &c, e, &step, total, order,
                                  last && final_loss ? final_loss : NULL),
                      done);
    }
    st = probe_test(&pr, test, test_labels, batch, order, out);
done:
    probe_buffers_free(&p);
    free(order);
    return st;
}
