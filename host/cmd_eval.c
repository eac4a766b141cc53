/* `clcl eval`: the kNN monitor and the linear probe of a trained backbone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "train_run.h"

#define SUMMARY                                                                                    \
    "Evaluates the backbone of a run of `clcl train`: the weighted kNN "                           \
    "monitor\n"                                                                                    \
    "(cosine, k neighbours, temperature) and a linear probe on frozen "                            \
    "features, on the\n"                                                                           \
    "run's dataset. DIR is the run's --out directory or its checkpoint/ folder;\n"                 \
    "--untrained evaluates the network the run started from (its seed's initial weights)."

typedef struct {
    const char *checkpoint, *device, *data;
    int probe_epochs, knn_k, eval_subset, untrained;
    double knn_temperature;
} eval_args;

/* The run directory of a checkpoint argument: DIR itself, or its parent when DIR is the
 * checkpoint folder; 0 when neither holds a config.json. */
static int run_dir_of(const char *arg, char *dir, size_t size) {
    char probe[1200];
    struct stat sb;
    snprintf(dir, size, "%s", arg);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        dir[--n] = '\0';
    snprintf(probe, sizeof probe, "%s/config.json", dir);
    if (stat(probe, &sb) == 0)
        return 1;
    char parent[1100];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent)
        *slash = '\0';
    else
        snprintf(parent, sizeof parent, slash ? "/" : ".");
    snprintf(probe, sizeof probe, "%s/config.json", parent);
    if (stat(probe, &sb) != 0)
        return 0;
    snprintf(dir, size, "%s", parent);
    return 1;
}

static int evaluate(clcl_run *r, const eval_args *a, const char *run_dir) {
    char path[1200];
    clcl_accuracy acc;
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    if (clcl_train_config_read(path, &r->cfg) != CLCL_OK)
        return clcl_cli_report("eval");
    if (*a->device)
        r->cfg.device = a->device;
    if (*a->data)
        r->cfg.data = a->data;
    r->cfg.knn_k = a->knn_k;
    r->cfg.knn_temperature = a->knn_temperature;
    r->cfg.eval_subset = a->eval_subset;
    if (clcl_run_open(r) != CLCL_OK)
        return clcl_cli_report("eval");
    if (a->untrained) /* the model as clcl_run_open built it: the run's initial weights */
        printf("clcl eval: %s untrained (the initial weights of seed %llu), %s on %s\n", run_dir,
               (unsigned long long)r->cfg.seed, r->cfg.dataset, clcl_context_device(r->ctx)->name);
    else if (clcl_checkpoint_load(run_dir, r->model, NULL, &r->pos, path, sizeof path) != CLCL_OK)
        return clcl_cli_report("eval");
    else
        printf("clcl eval: %s (epoch %d, step %lld), %s on %s\n", path, r->pos.epoch,
               (long long)r->pos.global_step, r->cfg.dataset, clcl_context_device(r->ctx)->name);

    clcl_accuracy probe;
    if (clcl_run_evaluate(r, a->probe_epochs, &acc, &probe) != CLCL_OK)
        return clcl_cli_report("eval");
    char what[64];
    snprintf(what, sizeof what, "kNN (k %d, temperature %g)", a->knn_k, a->knn_temperature);
    clcl_print_accuracy(what, &acc);
    if (a->probe_epochs > 0) {
        snprintf(what, sizeof what, "linear probe (%d epochs)", a->probe_epochs);
        clcl_print_accuracy(what, &probe);
    }
    return 0;
}

int clcl_cmd_eval(int argc, char **argv) {
    eval_args a = {.checkpoint = "",
                   .device = "",
                   .data = "",
                   .probe_epochs = 30,
                   .knn_k = 200,
                   .eval_subset = 0,
                   .knn_temperature = 0.1};
    clcl_flag flags[] = {
        {"checkpoint", CLCL_FLAG_STRING, &a.checkpoint, "the run to evaluate (required)", NULL, 0},
        {"device", CLCL_FLAG_STRING, &a.device, "OpenCL device: index, cpu, gpu or a name", NULL,
         0},
        {"data", CLCL_FLAG_STRING, &a.data, "dataset directory, if not the run's", NULL, 0},
        {"probe-epochs", CLCL_FLAG_INT, &a.probe_epochs, "linear probe epochs; 0: none", NULL, 0},
        {"knn-k", CLCL_FLAG_INT, &a.knn_k, "neighbours of the kNN monitor", NULL, 0},
        {"untrained", CLCL_FLAG_SWITCH, &a.untrained,
         "evaluate the run's initial weights instead of its checkpoint", NULL, 0},
        {"knn-temperature", CLCL_FLAG_DOUBLE, &a.knn_temperature, "kNN vote temperature", NULL, 0},
        {"eval-subset", CLCL_FLAG_INT, &a.eval_subset, "evaluate on N test images; 0: all", NULL,
         0},
    };
    int n = (int)(sizeof flags / sizeof *flags);
    int parsed = clcl_flags_parse("eval", flags, n, argc, argv);
    if (parsed == 1)
        clcl_flags_usage(stdout, "eval", SUMMARY, flags, n);
    if (parsed != 0)
        return parsed == 1 ? 0 : 2;
    if (!*a.checkpoint) {
        fprintf(stderr, "clcl eval: --checkpoint DIR is required (a `clcl train --out` "
                        "directory)\n");
        return 2;
    }
    if (a.probe_epochs < 0)
        return clcl_cli_usage("eval", "--probe-epochs %d; expected at least 0", a.probe_epochs);
    if (a.knn_k < 1)
        return clcl_cli_usage("eval", "--knn-k %d; expected at least 1", a.knn_k);
    if (!(a.knn_temperature > 0))
        return clcl_cli_usage("eval", "--knn-temperature %g; expected above 0", a.knn_temperature);
    if (a.eval_subset < 0)
        return clcl_cli_usage("eval", "--eval-subset %d; expected at least 0", a.eval_subset);
    char run_dir[1100];
    if (!run_dir_of(a.checkpoint, run_dir, sizeof run_dir)) {
        clcl_fail(CLCL_ERR_ARGUMENT,
                  "--checkpoint %s: no config.json there or in its parent; expected the --out "
                  "directory of a clcl train run, or its checkpoint folder",
                  a.checkpoint);
        return clcl_cli_report("eval");
    }
    clcl_run r = {0};
    int rc = evaluate(&r, &a, run_dir);
    clcl_run_close(&r);
    return rc;
}
