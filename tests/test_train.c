/* `clcl train` and `clcl eval` end to end on a small generated dataset in the real IDX
 * format: the loss goes down, a resumed run ends bit for bit where an uninterrupted one
 * does, and bad input gives clear errors. */
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "cli.h"
#include "support.h"
#include "support_datafiles.h"
#include "train_run.h"

/* Ten classes, each a bright bar at its own place on a noisy background: learnable in a few
 * steps, not by a constant. */
static void write_images(const char *dir, const char *prefix, int n, uint64_t seed) {
    uint8_t *pixels = malloc((size_t)n * 28 * 28), *labels = malloc((size_t)n);
    test_fill_bytes(pixels, (size_t)n * 28 * 28, seed);
    for (int i = 0; i < n; i++) {
        uint8_t *img = pixels + (size_t)i * 28 * 28;
        labels[i] = (uint8_t)(i % 10);
        for (int p = 0; p < 28 * 28; p++)
            img[p] /= 4;
        for (int y = 4; y < 24; y++)
            for (int x = 0; x < 4; x++)
                img[y * 28 + 2 + 2 * labels[i] + x] = 255;
    }
    char images[64], labels_name[64];
    snprintf(images, sizeof images, "%s-images-idx3-ubyte", prefix);
    snprintf(labels_name, sizeof labels_name, "%s-labels-idx1-ubyte", prefix);
    test_write_idx_images(test_join(dir, images), 0, 0x00000803, n, 28, 28, pixels);
    test_write_idx_labels(test_join(dir, labels_name), 0, 0x00000801, n, labels);
    free(pixels);
    free(labels);
}

static const char *make_dataset(void) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s", test_temp_dir("train-data"));
    write_images(dir, "train", 192, 1);
    write_images(dir, "t10k", 60, 2);
    return dir;
}

/* Runs `clcl train` in this process with the common small settings plus `extra`. */
static int train(const char *data, const char *out, const char *extra) {
    char line[1024];
    snprintf(line, sizeof line,
             "--dataset mnist --data %s --out %s --batch-size 32 "
             "--width 0.125 --head-out 32 --eval-every 0 --knn-k 20 --log-every 1 %s",
             data, out, extra);
    char *argv[64], *save = NULL;
    int argc = 0;
    for (char *tok = strtok_r(line, " ", &save); tok && argc < 64; tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    return clcl_cmd_train(argc, argv);
}

static char *slurp(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot read %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    if (size)
        *size = (size_t)n;
    return s;
}

/* Whether the file at `path` holds exactly the `size` bytes at `bytes`. */
static int holds_bytes(const char *path, const char *bytes, size_t size) {
    size_t n;
    char *content = slurp(path, &n);
    int same = n == size && memcmp(content, bytes, n) == 0;
    free(content);
    return same;
}

/* Whether run directories x and y hold byte-identical copies of file `name`. */
static int same_file(const char *x, const char *y, const char *name) {
    char path[700];
    size_t nx;
    snprintf(path, sizeof path, "%s/%s", x, name);
    char *fx = slurp(path, &nx);
    snprintf(path, sizeof path, "%s/%s", y, name);
    int same = holds_bytes(path, fx, nx);
    free(fx);
    return same;
}

/* Field `key` ("loss", "knn_top1") of the first metrics.jsonl record that contains
 * `pattern`. */
static double logged(const char *out, const char *pattern, const char *key) {
    char *log = slurp(test_join(out, "metrics.jsonl"), NULL), field[40];
    char *p = strstr(log, pattern);
    cr_assert_not_null(p, "no record %s in\n%s", pattern, log);
    snprintf(field, sizeof field, "\"%s\":", key);
    char *at = strstr(p, field);
    cr_assert_not_null(at, "no %s after %s in\n%s", field, pattern, log);
    double value = strtod(at + strlen(field), NULL);
    free(log);
    return value;
}

static double logged_loss(const char *out, const char *pattern) {
    return logged(out, pattern, "loss");
}

/* The mean loss of epoch e. */
static double epoch_loss(const char *out, int e) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "{\"type\":\"epoch\",\"epoch\":%d,", e);
    return logged_loss(out, pattern);
}

/* The loss logged at global step `step` (1-based) of the first epoch. */
static double step_loss(const char *out, int step) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"type\":\"step\",\"epoch\":1,\"step\":%d,", step);
    return logged_loss(out, pattern);
}

/* --loss-scale tau multiplies the gradient by tau / tau(0): 1 at the first step, so two runs
 * that differ only in it take the same first update (equal losses at steps 1 and 2) and part
 * after it; with a constant tau the factor is always 1 and the runs are bit-identical. */
Test(train, the_loss_scale_follows_the_rise_of_tau, .init = cr_redirect_stdout, .timeout = 300) {
    const char *data = make_dataset();
    const char *root = test_temp_dir("loss-scale");
    char a[600], b[600], c[600], d[600];
    snprintf(a, sizeof a, "%s/a", root);
    snprintf(b, sizeof b, "%s/b", root);
    snprintf(c, sizeof c, "%s/c", root);
    snprintf(d, sizeof d, "%s/d", root);
    const char *rising = "--epochs 1 --tau linear:0.2:0.6 --threshold off --warmup-epochs 0";
    char line[256];
    snprintf(line, sizeof line, "%s --loss-scale tau", rising);
    cr_assert_eq(train(data, a, line), 0, "%s", clcl_last_error());
    snprintf(line, sizeof line, "%s --loss-scale none", rising);
    cr_assert_eq(train(data, b, line), 0, "%s", clcl_last_error());
    cr_expect_eq(step_loss(a, 1), step_loss(b, 1));
    cr_expect_eq(step_loss(a, 2), step_loss(b, 2), "the first update was scaled");
    cr_expect_neq(step_loss(a, 3), step_loss(b, 3), "the second update was not scaled");

    const char *constant = "--epochs 1 --method simclr --tau constant:0.2";
    snprintf(line, sizeof line, "%s --loss-scale tau", constant);
    cr_assert_eq(train(data, c, line), 0, "%s", clcl_last_error());
    snprintf(line, sizeof line, "%s --loss-scale none", constant);
    cr_assert_eq(train(data, d, line), 0, "%s", clcl_last_error());
    cr_expect(same_file(c, d, "checkpoint/model.safetensors"), "a constant tau's scale is not 1");

    /* resuming a SimCLR run keeps its own temperature, not the preset's */
    char *resume[] = {"--resume", c};
    cr_expect_eq(clcl_cmd_train(2, resume), 0, "%s", clcl_last_error());
    char *config = slurp(test_join(c, "config.json"), NULL);
    cr_expect(strstr(config, "\"tau\": \"constant:0.2\""), "%s", config);
    free(config);
}

/* On one channel, --jitter -1 (what a config.json from before the setting reads as) trains
 * bit for bit as --jitter 0, and the default jitter changes the very first views. */
Test(train, the_jitter_setting_reaches_the_views, .init = cr_redirect_stdout, .timeout = 300) {
    const char *data = make_dataset();
    const char *root = test_temp_dir("jitter");
    char off[600], legacy[600], on[600];
    snprintf(off, sizeof off, "%s/off", root);
    snprintf(legacy, sizeof legacy, "%s/legacy", root);
    snprintf(on, sizeof on, "%s/on", root);
    cr_assert_eq(train(data, off, "--epochs 1 --jitter 0"), 0, "%s", clcl_last_error());
    cr_assert_eq(train(data, legacy, "--epochs 1 --jitter -1"), 0, "%s", clcl_last_error());
    cr_assert_eq(train(data, on, "--epochs 1"), 0, "%s", clcl_last_error());
    cr_expect(same_file(off, legacy, "checkpoint/model.safetensors"),
              "--jitter -1 jittered a one-channel dataset");
    cr_expect_neq(step_loss(on, 1), step_loss(off, 1), "the default jitter left the views alone");
    /* the start-up dump says what the views get */
    fflush(stdout);
    char *text = test_read_all(cr_get_redirected_stdout());
    cr_expect(strstr(text, "crops of 0.2-1 of the area, colour jitter p 0 (brightness, contrast), "
                           "no blur"),
              "%s", text);
    cr_expect(strstr(text, "colour jitter p 0.8 (brightness, contrast), no blur"), "%s", text);
    free(text);
}

/* A loss that stops being finite ends the run with the step and the last good checkpoint
 * named (or that there is none yet), and leaves that checkpoint as it was. */
Test(train, a_non_finite_loss_stops_the_run_naming_the_step_and_checkpoint,
     .init = cr_redirect_stderr, .timeout = 300) {
    const char *data = make_dataset();
    const char *root = test_temp_dir("non-finite");
    char early[600], late[600];
    snprintf(early, sizeof early, "%s/early", root);
    snprintf(late, sizeof late, "%s/late", root);
    cr_expect_eq(train(data, early, "--epochs 1 --lr 1e30"), 1);
    cr_expect(strstr(clcl_last_error(), "(epoch 1, step ") &&
                  strstr(clcl_last_error(), "stopping. No checkpoint was written before it"),
              "%s", clcl_last_error());

    /* a good first epoch, then the rate of the resumed run made absurd in its config.json */
    cr_assert_eq(train(data, late, "--epochs 1"), 0, "%s", clcl_last_error());
    const char *config = test_join(late, "config.json");
    char *text = slurp(config, NULL);
    char *lr = strstr(text, "\"lr\": ");
    cr_assert_not_null(lr);
    FILE *f = fopen(config, "w");
    cr_assert_not_null(f);
    fprintf(f, "%.*s\"lr\": 1e30%s", (int)(lr - text), text, strchr(lr, ','));
    fclose(f);
    free(text);
    size_t before_size;
    char *before = slurp(test_join(late, "checkpoint/model.safetensors"), &before_size);
    char *resume[] = {"--resume", late, "--epochs", "2"};
    cr_expect_eq(clcl_cmd_train(4, resume), 1);
    cr_expect(strstr(clcl_last_error(), "(epoch 2, step ") &&
                  strstr(clcl_last_error(), "The last good checkpoint is ") &&
                  strstr(clcl_last_error(), "late/checkpoint"),
              "%s", clcl_last_error());
    cr_expect(holds_bytes(test_join(late, "checkpoint/model.safetensors"), before, before_size),
              "the last good checkpoint changed");
    free(before);
}

/* clcl eval --untrained rebuilds the network a run started from: its kNN accuracy is the one
 * the run logged for epoch 0. */
Test(train, eval_untrained_scores_the_network_the_run_started_from, .init = cr_redirect_stdout,
     .timeout = 300) {
    const char *data = make_dataset();
    char out[600];
    snprintf(out, sizeof out, "%s/run", test_temp_dir("untrained"));
    cr_assert_eq(train(data, out, "--epochs 1 --eval-every 1"), 0, "%s", clcl_last_error());
    double untrained = logged(out, "{\"type\":\"epoch\",\"epoch\":0,", "knn_top1");

    char *argv[] = {"--checkpoint", out, "--untrained", "--probe-epochs", "0", "--knn-k", "20"};
    cr_expect_eq(clcl_cmd_eval(7, argv), 0, "%s", clcl_last_error());
    fflush(stdout);
    char *text = test_read_all(cr_get_redirected_stdout());
    char expect[80];
    snprintf(expect, sizeof expect, "kNN (k 20, temperature 0.1): top-1 %.2f%%", 100 * untrained);
    cr_expect(strstr(text, expect), "no \"%s\" in:\n%s", expect, text);
    cr_expect(strstr(text, "untrained (the initial weights of seed 0)"), "%s", text);
    free(text);
}

Test(train, a_short_run_lowers_the_loss_and_writes_its_outputs, .init = cr_redirect_stdout,
     .timeout = 600) {
    const char *data = make_dataset();
    char out[600];
    snprintf(out, sizeof out, "%s/run", test_temp_dir("train-run"));
    cr_assert_eq(train(data, out, "--method simclr --epochs 4 --lr 0.1 --warmup-epochs 0"), 0, "%s",
                 clcl_last_error());
    double first = epoch_loss(out, 1), last = epoch_loss(out, 4);
    cr_expect_lt(last, first - 0.05, "loss %g after epoch 1, %g after epoch 4", first, last);

    char *config = slurp(test_join(out, "config.json"), NULL);
    cr_expect(strstr(config, "\"tau\": \"constant:0.1\""), "%s", config);
    cr_expect(strstr(config, "\"threshold\": \"off\""), "%s", config);
    char *svg = slurp(test_join(out, "curves.svg"), NULL);
    cr_expect(strstr(svg, "<polyline"));
    free(config);
    free(svg);
    cr_expect_eq(access(test_join(out, "checkpoint/model.safetensors"), R_OK), 0);
    cr_expect_eq(access(test_join(out, "checkpoint/state.safetensors"), R_OK), 0);

    char *argv[] = {"--checkpoint", out, "--probe-epochs", "5", "--knn-k", "20"};
    cr_expect_eq(clcl_cmd_eval(6, argv), 0, "%s", clcl_last_error());

    /* A new run into the same directory is refused and leaves the old one as it was. */
    size_t before = 0, after = 0;
    free(slurp(test_join(out, "metrics.jsonl"), &before));
    cr_expect_eq(train(data, out, "--epochs 1"), 2, "a second run into %s was not refused", out);
    cr_expect(strstr(clcl_last_error(), "already holds a run"), "%s", clcl_last_error());
    free(slurp(test_join(out, "metrics.jsonl"), &after));
    cr_expect_eq(after, before, "metrics.jsonl changed from %zu to %zu bytes", before, after);
    cr_expect_eq(epoch_loss(out, 4), last);
}

/* Stops the run in flight once it has logged `after` steps, as Ctrl-C would. */
typedef struct {
    const char *out;
    int after;
} stopper;

static void *stop_later(void *arg) {
    const stopper *s = arg;
    for (int tries = 0; tries < 6000; tries++) {
        FILE *f = fopen(test_join(s->out, "metrics.jsonl"), "r");
        int steps = 0;
        char line[512];
        while (f && fgets(line, sizeof line, f))
            steps += strstr(line, "\"type\":\"step\"") != NULL;
        if (f)
            fclose(f);
        if (steps >= s->after) {
            clcl_train_stop = 1;
            return NULL;
        }
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    }
    return NULL;
}

Test(train, a_resumed_run_ends_bit_for_bit_like_an_uninterrupted_one, .init = cr_redirect_stdout,
     .timeout = 600) {
    const char *data = make_dataset();
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/a", test_temp_dir("resume"));
    snprintf(b, sizeof b, "%s/b", test_temp_dir("resume"));
    const char *settings = "--epochs 2 --tau linear:0.2:0.4 --threshold linear:0.8:0.9";
    cr_assert_eq(train(data, a, settings), 0, "%s", clcl_last_error());

    /* interrupted in its first epoch (6 steps per epoch), then resumed */
    pthread_t thread;
    stopper s = {b, 3};
    pthread_create(&thread, NULL, stop_later, &s);
    int rc = train(data, b, settings);
    pthread_join(thread, NULL);
    cr_assert_eq(rc, 130, "the run was interrupted: %s", clcl_last_error());
    cr_expect(strstr(clcl_last_error(), "--resume"), "%s", clcl_last_error());
    clcl_train_stop = 0;
    char *argv[] = {"--resume", b};
    cr_assert_eq(clcl_cmd_train(2, argv), 0, "%s", clcl_last_error());

    cr_expect(same_file(a, b, "checkpoint/model.safetensors"), "the weights differ after resuming");
    cr_expect(same_file(a, b, "checkpoint/state.safetensors"), "the optimizer state differs");
    /* the interrupted epoch's record covers all of its steps, in both processes */
    cr_expect_eq(epoch_loss(b, 1), epoch_loss(a, 1));
    cr_expect_eq(epoch_loss(b, 2), epoch_loss(a, 2));

    /* fewer epochs than the run has finished is refused, and config.json stays as it was */
    char *config = slurp(test_join(a, "config.json"), NULL);
    char *fewer[] = {"--resume", a, "--epochs", "1"};
    cr_expect_eq(clcl_cmd_train(4, fewer), 2);
    cr_expect(strstr(clcl_last_error(), "already finished 2 epochs"), "%s", clcl_last_error());
    char *after = slurp(test_join(a, "config.json"), NULL);
    cr_expect_str_eq(after, config);
    free(config);
    free(after);
}

Test(train, bad_input_gives_clear_errors, .init = cr_redirect_stderr, .timeout = 300) {
    const char *data = make_dataset();
    char out[600];
    snprintf(out, sizeof out, "%s/run", test_temp_dir("train-bad"));

    cr_expect_eq(train(data, out, "--epochs two"), 2);
    cr_expect_eq(train(data, out, "--optimizer adam"), 2);
    cr_expect_eq(train(data, out, "--tau linear:0.2"), 2);
    cr_expect(strstr(clcl_last_error(), "--tau") && strstr(clcl_last_error(), "linear:0.2"), "%s",
              clcl_last_error());

    char missing[700];
    snprintf(missing, sizeof missing, "%s/no-such-dir", data);
    cr_expect_eq(train(missing, out, ""), 1);
    cr_expect(strstr(clcl_last_error(), "no-such-dir"), "%s", clcl_last_error());

    char blocked[700];
    snprintf(blocked, sizeof blocked, "%s/train-images-idx3-ubyte/out", data);
    cr_expect_eq(train(data, blocked, ""), 1);
    cr_expect(strstr(clcl_last_error(), "train-images-idx3-ubyte"), "%s", clcl_last_error());

    char *argv[] = {"--resume", out, "--width", "1"};
    cr_expect_eq(clcl_cmd_train(4, argv), 2, "--resume takes no model flags");
    char *eval_argv[] = {"--checkpoint", missing};
    cr_expect_eq(clcl_cmd_eval(2, eval_argv), 2);
    cr_expect(strstr(clcl_last_error(), "config.json"), "%s", clcl_last_error());

    /* Values that only the data or the machine can refuse are still bad usage, named. */
    cr_expect_eq(train(data, out, "--subset 500"), 2);
    cr_expect(strstr(clcl_last_error(), "--subset 500") && strstr(clcl_last_error(), "only 192"),
              "%s", clcl_last_error());
    char *no_data[] = {"--dataset", "cifar10", "--out", out};
    cr_expect_eq(clcl_cmd_train(4, no_data), 2);
    cr_expect(strstr(clcl_last_error(), "--data: cifar10 has no default location"), "%s",
              clcl_last_error());
    cr_expect_eq(train(data, out, "--device 99"), 2);
    cr_expect(strstr(clcl_last_error(), "--device '99' matches no device"), "%s",
              clcl_last_error());
    char *knn[] = {"--checkpoint", out, "--knn-k", "0"};
    cr_expect_eq(clcl_cmd_eval(4, knn), 2);
    char *temperature[] = {"--checkpoint", out, "--knn-temperature", "0"};
    cr_expect_eq(clcl_cmd_eval(4, temperature), 2);
    /* a k above the bank is said and then used as the whole bank (train() sets 20 before) */
    char wide[700];
    snprintf(wide, sizeof wide, "%s/wide-k", test_temp_dir("train-bad-k"));
    cr_expect_eq(train(data, wide, "--epochs 1 --eval-every 1 --knn-k 500"), 0, "%s",
                 clcl_last_error());
    fflush(stderr);
    char *text = test_read_all(cr_get_redirected_stderr());
    cr_expect(strstr(text, "--knn-k 500 is more than the kNN bank's 192 images; the monitor uses "
                           "all 192"),
              "%s", text);
    cr_expect(strstr(text, "clcl eval: --knn-k 0; expected at least 1"), "%s", text);
    cr_expect(strstr(text, "clcl eval: --knn-temperature 0; expected above 0"), "%s", text);
    free(text);
}
