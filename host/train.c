/* `clcl train`: pre-training with the progressive contrastive loss, end to end.
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "clcl/augment.h"
#include "clcl/dataset.h"
#include "clcl/eval.h"
#include "clcl/fileio.h"
#include "clcl/loader.h"
#include "clcl/log.h"
#include "clcl/loss.h"
#include "clcl/model.h"
#include "clcl/schedule.h"
#include "cli.h"
#include "metrics.h"
#include "train.h"
#include "train_run.h"

volatile sig_atomic_t clcl_train_stop;

double clcl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- setting up
 * ------------------------------------------------------------------------ */

clcl_status clcl_run_open_data(clcl_run *r) {
    const clcl_train_config *c = &r->cfg;
    clcl_dataset_kind kind;
    CLCL_TRY(clcl_dataset_kind_parse(c->dataset, &kind));
    clcl_dataset_config dc = {.kind = kind,
                              .path = *c->data ? c->data : NULL,
                              .split = kind == CLCL_DATASET_STL10 ? CLCL_SPLIT_UNLABELED
                                                                  : CLCL_SPLIT_TRAIN,
                              .subset = c->subset,
                              .subset_random = 1,
                              .subset_balanced = 1,
                              .seed = c->seed};
    if (!dc.path && !clcl_dataset_default_path(kind))
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "--data: %s has no default location; give --data DIR, the folder "
                         "that holds its files",
                         c->dataset);
    clcl_status st = clcl_dataset_open(&dc, &r->train);
    /* the subset's own errors (more images, or more of a class, than the split has) */
    if (st == CLCL_ERR_ARGUMENT && c->subset > 0 && strstr(clcl_last_error(), "subset"))
        return clcl_fail(st, "--subset %d: %s", c->subset, clcl_last_error());
    CLCL_TRY(st);

    /* the kNN bank: labelled training images (STL-10 pre-trains on unlabeled
     * ones) */
    if (kind == CLCL_DATASET_STL10) {
        dc.split = CLCL_SPLIT_TRAIN;
        dc.subset = 0;
        CLCL_TRY(clcl_dataset_open(&dc, &r->bank));
    }
    dc.split = CLCL_SPLIT_TEST;
    dc.subset = c->eval_subset;
    CLCL_TRY(clcl_dataset_open(&dc, &r->test));

    const int bank = clcl_dataset_count(r->bank ? r->bank : r->train);
    if (c->knn_k > bank) /* a small subset with the default k is common: say so, go on */
        CLCL_LOG_WARN("train",
                      "--knn-k %d is more than the kNN bank's %d images; the monitor "
                      "uses all %d",
                      c->knn_k, bank, bank);
    return CLCL_OK;
}

static clcl_status open_model(clcl_run *r) {
    const clcl_train_config *c = &r->cfg;
    clcl_model_config mc = {.in_channels = clcl_dataset_channels(r->train),
                            .width = (float)c->width,
                            .head_hidden = c->head_hidden,
                            .head_out = c->head_out,
                            .seed = c->seed};
    CLCL_TRY(clcl_arch_parse(c->arch, &mc.arch));
    if (strcmp(c->stem, "auto") == 0)
        mc.stem = clcl_dataset_height(r->train) <= 64 ? CLCL_STEM_CIFAR : CLCL_STEM_IMAGENET;
    else
        CLCL_TRY(clcl_stem_parse(c->stem, &mc.stem));
    CLCL_TRY(clcl_model_create(r->ctx, &mc, &r->model));
    r->params = clcl_model_params(r->model, &r->n_params);
    return CLCL_OK;
}

static clcl_status open_optim(clcl_run *r) {
    const clcl_train_config *c = &r->cfg;
    clcl_optim_config oc = {.kind = strcmp(c->optimizer, "lars") == 0 ? CLCL_OPTIM_LARS
                                                                      : CLCL_OPTIM_SGD,
                            .momentum = (float)c->momentum,
                            .weight_decay = (float)c->weight_decay};
    CLCL_TRY(clcl_optim_create(r->ctx, &oc, r->params, r->n_params, &r->optim));
    r->lr = (clcl_lr_schedule){
        .base_lr = c->lr,
        .scaling = strcmp(c->lr_scale, "linear") == 0 ? CLCL_LR_SCALE_LINEAR : CLCL_LR_SCALE_NONE,
        .batch_size = c->batch_size,
        .warmup_steps = (int64_t)llround(c->warmup_epochs * r->steps_per_epoch),
        .total_steps = r->total_steps};
    return CLCL_OK;
}

static clcl_status open_transforms(clcl_run *r) {
    int ch = clcl_dataset_channels(r->train), h = clcl_dataset_height(r->train),
        w = clcl_dataset_width(r->train);
    clcl_dataset_kind kind;
    CLCL_TRY(clcl_dataset_kind_parse(r->cfg.dataset, &kind));

    r->aug_config = clcl_augment_config_default(h, w);
    if (r->cfg.crop_scale > 0)
        r->aug_config.crop_scale_min = (float)r->cfg.crop_scale;
    if (r->cfg.jitter >= 0)
        r->aug_config.jitter_p = (float)r->cfg.jitter;
    else if (ch == 1)
        r->aug_config.jitter_p = 0.0f;
    CLCL_TRY(clcl_augment_normalization(kind, ch, r->aug_config.mean, r->aug_config.std));
    CLCL_TRY(clcl_augment_create(r->ctx, &r->aug_config, ch, h, w, r->cfg.batch_size, &r->aug));
    clcl_eval_transform_config ec = {0};
    memcpy(ec.mean, r->aug_config.mean, sizeof ec.mean);
    memcpy(ec.std, r->aug_config.std, sizeof ec.std);
    CLCL_TRY(clcl_eval_transform_create(r->ctx, &ec, ch, h, w, r->cfg.batch_size, &r->evt));

    int oh, ow;
    clcl_augment_output_size(r->aug, &oh, &ow);
    int n2 = 2 * r->cfg.batch_size;
    CLCL_TRY(clcl_tensor_create(r->ctx, &r->views, 4, (int[]){n2, ch, oh, ow}));
    return CLCL_OK;
}

static clcl_status open_loss(clcl_run *r) {
    const clcl_train_config *c = &r->cfg;
    clcl_loss_config lc = {.weight = (float)c->fn_weight, .cap = c->fn_cap, .impl = CLCL_LOSS_AUTO};
    int n2 = 2 * c->batch_size, d = clcl_model_projection_dim(r->model);
    CLCL_TRY(clcl_fn_mode_parse(c->fn_mode, &lc.mode));
    CLCL_TRY(clcl_loss_create(r->ctx, n2, d, &lc, &r->loss));
    CLCL_TRY(clcl_tensor_create(r->ctx, &r->dh, 2, (int[]){n2, d}));
    r->view_labels = malloc((size_t)n2 * sizeof *r->view_labels);
    if (!r->view_labels)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory");
    CLCL_TRY(clcl_schedule_parse(c->tau, "--tau", &r->tau));
    CLCL_TRY(clcl_schedule_check_temperature(&r->tau, "--tau"));
    CLCL_TRY(clcl_schedule_parse(c->threshold, "--threshold", &r->theta));
    return CLCL_OK;
}

clcl_status clcl_run_open(clcl_run *r) {
    CLCL_TRY(clcl_context_create(*r->cfg.device ? r->cfg.device : NULL, &r->ctx));
    CLCL_TRY(clcl_run_open_data(r));
    r->steps_per_epoch = clcl_dataset_count(r->train) / r->cfg.batch_size;
    r->total_steps = (int64_t)r->steps_per_epoch * r->cfg.epochs;
    CLCL_TRY(open_model(r));
    CLCL_TRY(open_optim(r));
    CLCL_TRY(open_transforms(r));
    CLCL_TRY(open_loss(r));
    return CLCL_OK;
}

void clcl_run_close(clcl_run *r) {
    clcl_metrics_close(r->metrics);
    clcl_tensor_free(&r->views);
    clcl_tensor_free(&r->dh);
    free(r->view_labels);
    clcl_loss_free(r->loss);
    clcl_eval_transform_free(r->evt);
    clcl_augment_free(r->aug);
    clcl_optim_free(r->optim);
    clcl_model_free(r->model);
    clcl_dataset_free(r->bank);
    clcl_dataset_free(r->test);
    clcl_dataset_free(r->train);
    clcl_context_free(r->ctx);
}

/* ---- one step
 * -------------------------------------------------------------------------- */

/* On the loader thread: the batch's augmentation records, from (seed, epoch,
 * image ids). */
static void draw_views(void *user, int epoch, int step, const int *index, int n, void *extra) {
    const clcl_run *r = user;
    (void)step;
    clcl_augment_draw(&r->aug_config, clcl_dataset_channels(r->train),
                      clcl_dataset_height(r->train), clcl_dataset_width(r->train), r->cfg.seed,
                      (uint64_t)epoch, index, n, extra);
}

typedef struct {
    float loss;
    double tau, theta, lr;
    clcl_loss_stats stats;
} step_result;

/* Batch b, staged in slot `slot` (see clcl_augment_stage), trained. Returns once the
 * backward pass and the update are enqueued. */
static clcl_status train_step(clcl_run *r, const clcl_batch *b, int slot, step_result *out) {
    int n = b->n;
    double t = (double)r->pos.global_step / (double)r->total_steps;

    /* the two views of every image, on the device */
    CLCL_TRY(clcl_augment_run(r->aug, slot, &r->views));

    /* forward, the loss and its gradient, backward, update */
    clcl_tensor proj;
    CLCL_TRY(clcl_model_forward(r->model, &r->views, CLCL_MODE_TRAIN, NULL, &proj));
    for (int i = 0; i < n; i++)
        r->view_labels[i] = r->view_labels[n + i] = b->labels[i];
    clcl_loss_labels labels = {.host = r->view_labels};
    out->tau = clcl_schedule_at(&r->tau, t);
    out->theta = clcl_schedule_at(&r->theta, t);
    CLCL_TRY(clcl_loss_forward_backward(r->loss, &proj, b->labels[0] >= 0 ? &labels : NULL,
                                        (float)out->tau, (float)out->theta, &out->loss, &r->dh,
                                        &out->stats));
    if (!isfinite(out->loss))
        return clcl_fail(CLCL_ERR_NON_FINITE, "the loss is %g", out->loss);
    /* The logits are s / tau, so the gradient shrinks as tau rises; --loss-scale tau keeps its
     * size by scaling it with tau / tau(0) (docs/method.md). The loss logged is unscaled. */
    double scale =
        strcmp(r->cfg.loss_scale, "tau") == 0 ? out->tau / clcl_schedule_at(&r->tau, 0) : 1.0;
    if (scale != 1.0)
        CLCL_TRY(clcl_tensor_scale(r->ctx, (float)scale, &r->dh));
    CLCL_TRY(clcl_model_backward(r->model, &r->dh, NULL));
    out->lr = clcl_lr_at(&r->lr, r->pos.global_step);
    CLCL_TRY(clcl_optim_step(r->optim, (float)out->lr));
    return CLCL_OK;
}

/* ---- progress
 * ------------------------------------------------------------------------- */

typedef struct {
    int tty;
    double started, last; /* run start, last log line */
    double step_seconds;  /* moving average */
    double epoch_started;
    double epoch_loss;
    int epoch_steps;
    long steps_run; /* by this process */
} progress;

static void format_eta(double seconds, char *buf, size_t size) {
    long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, size, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else
        snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
}

static void print_progress(const clcl_run *r, const progress *p, const clcl_batch *b,
                           const step_result *s) {
    char eta[32], theta[16], prec[16], bar[24];
    int64_t left = r->total_steps - r->pos.global_step;
    format_eta(left * p->step_seconds, eta, sizeof eta);
    if (s->theta > 1)
        snprintf(theta, sizeof theta, "  off");
    else
        snprintf(theta, sizeof theta, "%5.3f", s->theta);
    if (s->stats.has_labels && s->stats.pseudo_total > 0)
        snprintf(prec, sizeof prec, "%4.2f", s->stats.precision);
    else
        snprintf(prec, sizeof prec, "   -");
    int filled = (int)(20.0 * (b->step + 1) / r->steps_per_epoch);
    for (int i = 0; i < 20; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[20] = '\0';
    double ips = r->cfg.batch_size / p->step_seconds;
    if (p->tty)
        printf("\r%3d/%d [%s] %4d/%d", b->epoch + 1, r->cfg.epochs, bar, b->step + 1,
               r->steps_per_epoch);
    else
        printf("epoch %3d/%d step %5d/%d", b->epoch + 1, r->cfg.epochs, b->step + 1,
               r->steps_per_epoch);
    printf(" loss %7.4f tau %5.3f theta %s fn/anchor %5.2f prec %s lr %.4f %6.0f "
           "img/s "
           "ETA %s%s",
           s->loss, s->tau, theta, s->stats.pseudo_per_anchor, prec, s->lr, ips, eta,
           p->tty ? "  " : "\n");
    fflush(stdout);
}

static clcl_status log_step(clcl_run *r, progress *p, const clcl_batch *b, const step_result *s) {
    clcl_step_record rec = {
        .epoch = b->epoch + 1,
        .step = (long)r->pos.global_step,
        .loss = s->loss,
        .tau = s->tau,
        .theta = s->theta,
        .pseudo = s->stats.pseudo_per_anchor,
        .precision = s->stats.has_labels && s->stats.pseudo_total ? s->stats.precision : NAN,
        .recall = s->stats.has_labels && s->stats.same_total ? s->stats.recall : NAN,
        .lr = s->lr,
        .images_per_s = r->cfg.batch_size / p->step_seconds};
    int last = b->step + 1 == r->steps_per_epoch;
    if (p->tty || (b->step + 1) % r->cfg.log_every == 0 || last)
        print_progress(r, p, b, s);
    if ((b->step + 1) % r->cfg.log_every == 0 || last)
        return clcl_metrics_step(r->metrics, &rec);
    return CLCL_OK;
}

/* ---- epochs
 * ---------------------------------------------------------------------------
 */

static int knn_due(const clcl_run *r, int epoch_done) {
    return epoch_done == r->cfg.epochs ||
           (r->cfg.eval_every > 0 && epoch_done % r->cfg.eval_every == 0);
}

static clcl_status end_epoch(clcl_run *r, progress *p, int epoch_done) {
    clcl_epoch_record rec = {.epoch = epoch_done,
                             .step = (long)r->pos.global_step,
                             .loss = p->epoch_steps ? p->epoch_loss / p->epoch_steps : NAN,
                             .knn_top1 = NAN,
                             .knn_top5 = NAN,
                             .seconds = clcl_now() - p->epoch_started};
    if (p->tty)
        printf("\n");
    if (knn_due(r, epoch_done)) {
        clcl_accuracy acc;
        CLCL_TRY(clcl_run_evaluate(r, 0, &acc, NULL));
        rec.knn_top1 = acc.top1;
        rec.knn_top5 = acc.top5;
        printf("epoch %3d: loss %.4f, kNN top-1 %.2f%%", epoch_done, rec.loss, 100 * acc.top1);
        if (acc.top5 == acc.top5)
            printf(", top-5 %.2f%%", 100 * acc.top5);
        printf(" (%.1f s training)\n", rec.seconds);
    } else {
        printf("epoch %3d: loss %.4f (%.1f s training)\n", epoch_done, rec.loss, rec.seconds);
    }
    CLCL_TRY(clcl_metrics_epoch(r->metrics, &rec));
    CLCL_TRY(clcl_checkpoint_save(r->cfg.out, r->model, r->optim, &r->pos));
    CLCL_TRY(clcl_metrics_plot(r->metrics));
    p->epoch_loss = 0;
    p->epoch_steps = 0;
    p->epoch_started = clcl_now();
    return CLCL_OK;
}

/* Stops on Ctrl-C after the step in flight, with a checkpoint to resume from.
 */
static clcl_status stop_interrupted(clcl_run *r, const progress *p) {
    r->pos.epoch_loss_sum = p->epoch_loss;
    r->pos.epoch_seconds = clcl_now() - p->epoch_started;
    CLCL_TRY(clcl_checkpoint_save(r->cfg.out, r->model, r->optim, &r->pos));
    clcl_metrics_plot(r->metrics);
    return clcl_fail(CLCL_ERR_ARGUMENT,
                     "interrupted after step %lld (epoch %d, step %d); checkpoint written to "
                     "%s/checkpoint; continue with: clcl train --resume %s",
                     (long long)r->pos.global_step, r->pos.epoch + 1, r->pos.step, r->cfg.out,
                     r->cfg.out);
}

/* The next batch from the loader, its upload enqueued into slot `slot`; n == 0 at the end.
 */
static clcl_status next_batch(clcl_run *r, clcl_loader *loader, int slot, clcl_batch *b) {
    CLCL_TRY(clcl_loader_next(loader, b));
    if (b->n > 0)
        CLCL_TRY(clcl_augment_stage(r->aug, slot, b->images, b->n, b->extra));
    return CLCL_OK;
}

/* Batch k + 1 is fetched and its upload enqueued on the transfer queue as soon as step k's
 * backward pass is enqueued, so it crosses to the device while step k computes. */
static clcl_status run_batches(clcl_run *r, clcl_loader *loader, progress *p) {
    clcl_batch next, b;
    step_result s;
    CLCL_TRY(next_batch(r, loader, 0, &next));
    for (int slot = 0; next.n > 0; slot ^= 1) {
        b = next;
        double t0 = clcl_now();
        clcl_status st = train_step(r, &b, slot, &s);
        if (st == CLCL_ERR_NON_FINITE) {
            char dir[1100], last[1200] = "No checkpoint was written before it";
            clcl_checkpoint_find(r->cfg.out, dir, sizeof dir);
            if (dir[0])
                snprintf(last, sizeof last, "The last good checkpoint is %s", dir);
            return clcl_fail(st, "step %lld (epoch %d, step %d): %s; stopping. %s",
                             (long long)r->pos.global_step + 1, b.epoch + 1, b.step + 1,
                             clcl_last_error(), last);
        }
        CLCL_TRY(st);
        CLCL_TRY(next_batch(r, loader, slot ^ 1, &next)); /* b's buffers go back to the loader */
        double dt = clcl_now() - t0;
        if (p->steps_run++ == 0 && r->eval0_seconds > 0)
            printf("start-up: the first step began %.2f s after the command (%.2f s without "
                   "the untrained network's kNN) and took %.2f s\n",
                   t0 - r->started, t0 - r->started - r->eval0_seconds, dt);
        else if (p->steps_run == 1) /* resumed: there was no untrained network's kNN */
            printf("start-up: the first step began %.2f s after the command and took %.2f s\n",
                   t0 - r->started, dt);
        p->step_seconds = p->step_seconds > 0 ? 0.9 * p->step_seconds + 0.1 * dt : dt;
        r->pos = (clcl_train_position){b.epoch, b.step + 1, r->pos.global_step + 1, 0, 0};
        p->epoch_loss += s.loss;
        p->epoch_steps++;
        CLCL_TRY(log_step(r, p, &b, &s));
        if (b.step + 1 == r->steps_per_epoch) {
            r->pos = (clcl_train_position){b.epoch + 1, 0, r->pos.global_step, 0, 0};
            CLCL_TRY(end_epoch(r, p, b.epoch + 1));
        }
        if (clcl_train_stop)
            return stop_interrupted(r, p);
    }
    return CLCL_OK;
}

clcl_status clcl_run_train(clcl_run *r) {
    progress p = {.tty = isatty(STDOUT_FILENO), .started = clcl_now()};
    clcl_loader_config lc = {.dataset = r->train,
                             .batch_size = r->cfg.batch_size,
                             .seed = r->cfg.seed,
                             .epochs = r->cfg.epochs,
                             .start_epoch = r->pos.epoch,
                             .start_step = r->pos.step,
                             .prepare = draw_views,
                             .user = r,
                             .extra_bytes =
                                 2 * (size_t)r->cfg.batch_size * sizeof(clcl_augment_record)};
    clcl_loader *loader;
    if (r->pos.epoch >= r->cfg.epochs)
        return CLCL_OK; /* resumed a finished run */
    CLCL_TRY(clcl_loader_create(&lc, &loader));
    /* a run resumed inside an epoch goes on with that epoch's sums */
    p.epoch_started = clcl_now() - r->pos.epoch_seconds;
    p.epoch_loss = r->pos.epoch_loss_sum;
    p.epoch_steps = r->pos.step;
    clcl_status st = run_batches(r, loader, &p);
    clcl_loader_free(loader);
    return st;
}
