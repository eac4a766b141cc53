/* `clcl train`: the command line around host/train.c. */
#include <math.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "clcl/fileio.h"
#include "clcl/tuning.h"
#include "cli.h"
#include "train_run.h"

#define SUMMARY                                                                                    \
    "Pre-trains a ResNet with the progressive contrastive method (or SimCLR "                      \
    "with\n"                                                                                       \
    "--method simclr) on any OpenCL device. Writes OUT/config.json, "                              \
    "OUT/metrics.jsonl,\n"                                                                         \
    "OUT/curves.svg and OUT/checkpoint/. Schedules (--tau, --threshold) over "                     \
    "training\n"                                                                                   \
    "progress: constant:V, linear:A:B, cosine:A:B, exp:A:B, "                                      \
    "step:V0:V1@T1:V2@T2...,\n"                                                                    \
    "each with an optional :warmup=F (no false-negative detection before F);\n"                    \
    "--threshold off disables the detection. See docs/method.md."

/* Flags a resumed run may change; every other setting comes from its
 * config.json. */
static const char *resume_flags[] = {"resume", "device", "log-every", "epochs"};

static int resume_conflict(const clcl_flag *flags, int n) {
    for (int i = 0; i < n; i++) {
        int allowed = 0;
        for (size_t j = 0; j < sizeof resume_flags / sizeof *resume_flags; j++)
            allowed |= strcmp(flags[i].name, resume_flags[j]) == 0;
        if (flags[i].given && !allowed) {
            fprintf(stderr,
                    "clcl train: --%s cannot change a run being resumed (its settings "
                    "are in its config.json); --resume takes only --device, --epochs "
                    "and --log-every besides\n",
                    flags[i].name);
            return 1;
        }
    }
    return 0;
}

/* Loads the resumed run's settings, then applies the command line again on top.
 */
static int load_resumed(clcl_run *r, clcl_flag *flags, int n, int argc, char **argv) {
    char path[1100];
    const char *dir = r->cfg.resume;
    if (resume_conflict(flags, n))
        return 2;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (clcl_train_config_read(path, &r->cfg) != CLCL_OK)
        return clcl_cli_report("train --resume");
    for (int i = 0; i < n; i++)
        flags[i].given = 0;
    if (clcl_flags_parse("train", flags, n, argc, argv) != 0)
        return 2;
    r->cfg.resume = dir;
    r->cfg.out = dir;
    return 0;
}

/* What the measured backend choices hold so far, for the config dump and the summary. */
static void print_tuning(const clcl_run *r, const char *label) {
    clcl_tuning_summary ts;
    char text[1400];
    if (clcl_tuning_summarize(r->ctx, &ts) == CLCL_OK)
        printf("  %-16s %s\n", label, clcl_tuning_describe(&ts, text, sizeof text));
}

static void dump(const clcl_run *r) {
    const clcl_device_info *d = clcl_context_device(r->ctx);
    size_t backbone = 0, head = 0;
    char loss[256];
    const clcl_model_config *mc = clcl_model_config_get(r->model);
    clcl_model_count(mc, &backbone, &head);

    printf("clcl train%s\n", *r->cfg.resume ? " (resumed)" : "");
    clcl_train_config_dump(stdout, &r->cfg);
    printf("  device in use    %d: %s (%s, %s)\n", d->index, d->name, d->platform,
           d->driver_version);
    clcl_dataset_kind kind;
    const char *from = r->cfg.data;
    if (!*from && clcl_dataset_kind_parse(r->cfg.dataset, &kind) == CLCL_OK)
        from = clcl_dataset_default_path(kind);
    printf("  data read        %d train images (of %d), %d x %d x %d, %d "
           "classes; %d test (of %d); from %s\n",
           clcl_dataset_count(r->train), clcl_dataset_total(r->train),
           clcl_dataset_channels(r->train), clcl_dataset_height(r->train),
           clcl_dataset_width(r->train), clcl_dataset_classes(r->train),
           clcl_dataset_count(r->test), clcl_dataset_total(r->test), from ? from : "?");
    printf("  model            %s, %s stem, %zu backbone + %zu head parameters, "
           "features %d\n",
           clcl_arch_name(mc->arch), clcl_stem_name(mc->stem), backbone, head,
           clcl_model_feature_dim(r->model));
    printf("  loss             %s\n", clcl_loss_describe(r->loss, loss, sizeof loss));
    char blur[80] = "no blur";
    if (r->aug_config.blur_p > 0)
        snprintf(blur, sizeof blur, "blur p %g, kernel %d (%s)", r->aug_config.blur_p,
                 clcl_augment_blur_size(r->aug),
                 clcl_augment_blur_method(r->aug) == CLCL_BLUR_FFT ? "FFT" : "direct");
    printf("  augmentation     crops of %g-1 of the area, colour jitter p %g%s, %s\n",
           r->aug_config.crop_scale_min, r->aug_config.jitter_p,
           clcl_dataset_channels(r->train) == 1 ? " (brightness, contrast)" : "", blur);
    printf("  schedule         %d steps per epoch, %lld in all, peak lr %g\n", r->steps_per_epoch,
           (long long)r->total_steps, clcl_lr_peak(&r->lr));
    print_tuning(r, "tuning");
    if (*r->cfg.resume && r->pos.epoch >= r->cfg.epochs)
        printf("  resuming         nothing to do: the run has finished its %d epoch%s (step "
               "%lld); --resume with a larger --epochs trains further\n",
               r->pos.epoch, r->pos.epoch == 1 ? "" : "s", (long long)r->pos.global_step);
    else if (*r->cfg.resume)
        printf("  resuming at      epoch %d, step %d (step %lld of all)\n", r->pos.epoch + 1,
               r->pos.step, (long long)r->pos.global_step);
    fflush(stdout);
}

static clcl_status write_config(const clcl_run *r) {
    char path[1100];
    clcl_atomic_file af;
    snprintf(path, sizeof path, "%s/config.json", r->cfg.out);
    clcl_status st = clcl_atomic_open(&af, path);
    if (st != CLCL_OK)
        return st;
    clcl_train_config_json(af.file, &r->cfg);
    return clcl_atomic_commit(&af);
}

static clcl_status start(clcl_run *r) {
    int resumed = *r->cfg.resume != '\0';
    clcl_accuracy acc;

    if (!resumed) {
        /* a new run never replaces another's results */
        const char *held[] = {"config.json", "metrics.jsonl", "checkpoint"};
        char found[1100];
        clcl_checkpoint_find(r->cfg.out, found, sizeof found);
        for (size_t i = 0; i < sizeof held / sizeof *held; i++) {
            char path[1100];
            snprintf(path, sizeof path, "%s/%s", r->cfg.out, held[i]);
            if (access(path, F_OK) == 0 && !found[0])
                return clcl_fail(CLCL_ERR_ARGUMENT,
                                 "--out %s already holds the start of a run that stopped before "
                                 "its first checkpoint (%s); remove it or choose another --out",
                                 r->cfg.out, path);
            if (access(path, F_OK) == 0)
                return clcl_fail(CLCL_ERR_ARGUMENT,
                                 "--out %s already holds a run (%s); `clcl train --resume %s` "
                                 "continues it, or choose another --out",
                                 r->cfg.out, path, r->cfg.out);
        }
    }
    CLCL_TRY(clcl_run_open(r)); /* data, device, model: a failure here leaves no --out */
    CLCL_TRY(clcl_make_dirs(r->cfg.out));
    if (resumed)
        CLCL_TRY(clcl_checkpoint_load(r->cfg.out, r->model, r->optim, &r->pos, NULL, 0));
    if (resumed && r->pos.epoch > r->cfg.epochs)
        return clcl_fail(CLCL_ERR_ARGUMENT,
                         "--epochs %d: the run in %s has already finished %d epochs; give at "
                         "least %d",
                         r->cfg.epochs, r->cfg.out, r->pos.epoch, r->pos.epoch);
    CLCL_TRY(write_config(r));
    CLCL_TRY(clcl_metrics_open(r->cfg.out, resumed, (long)r->pos.global_step, &r->metrics));
    dump(r);
    if (resumed)
        return CLCL_OK;

    /* the untrained network, so that the gain from training is plain */
    double t0 = clcl_now();
    CLCL_TRY(clcl_run_evaluate(r, 0, &acc, NULL));
    r->eval0_seconds = clcl_now() - t0;
    printf("epoch   0: untrained network, kNN top-1 %.2f%%\n", 100 * acc.top1);
    clcl_epoch_record rec = {0, 0, NAN, acc.top1, acc.top5, 0};
    return clcl_metrics_epoch(r->metrics, &rec);
}

/* The first Ctrl-C (or SIGTERM) asks the trainer to stop at the next step boundary and
 * write a checkpoint; a second one ends the process at once. */
static void on_interrupt(int sig) {
    static const char msg[] = "\nclcl train: stopping after this step and writing a checkpoint "
                              "(interrupt again to quit at once, without one)\n";
    if (clcl_train_stop) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    clcl_train_stop = 1;
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
}

static void finish(clcl_run *r) {
    if (r->cfg.probe_epochs > 0) {
        clcl_accuracy acc;
        if (clcl_run_evaluate(r, r->cfg.probe_epochs, NULL, &acc) != CLCL_OK) {
            clcl_cli_report("train: linear probe");
            return;
        }
        char what[64];
        snprintf(what, sizeof what, "linear probe (%d epochs)", r->cfg.probe_epochs);
        clcl_print_accuracy(what, &acc);
    }
    print_tuning(r, "tuning now");
    printf("done: %s/checkpoint, %s/metrics.jsonl, %s/curves.svg\n", r->cfg.out, r->cfg.out,
           r->cfg.out);
}

int clcl_cmd_train(int argc, char **argv) {
    clcl_run r = {.started = clcl_now()};
    int n, rc = 0;

    clcl_train_defaults(&r.cfg);
    clcl_flag *flags = clcl_train_flags(&r.cfg, &n);
    if (!flags)
        return 1;
    int parsed = clcl_flags_parse("train", flags, n, argc, argv);
    if (parsed == 1)
        clcl_flags_usage(stdout, "train", SUMMARY, flags, n);
    if (parsed != 0) {
        free(flags);
        return parsed == 1 ? 0 : 2;
    }
    if (*r.cfg.resume && (rc = load_resumed(&r, flags, n, argc, argv)) != 0)
        goto done;
    if (clcl_train_resolve(&r.cfg, flags, n) != CLCL_OK) {
        fprintf(stderr, "clcl train: %s\n", clcl_last_error());
        rc = 2;
        goto done;
    }

    signal(SIGINT, on_interrupt);
    signal(SIGTERM, on_interrupt);
    if (start(&r) != CLCL_OK || clcl_run_train(&r) != CLCL_OK) {
        rc = clcl_cli_report("train");
        rc = clcl_train_stop ? 130 : rc;
        goto done;
    }
    finish(&r);
done:
    clcl_run_close(&r);
    free(flags);
    return rc;
}
