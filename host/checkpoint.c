/* Checkpoints: written into a fresh directory, then swapped in by renames. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "checkpoint.h"
#include "clcl/fileio.h"

static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Removes a checkpoint directory: its files, then itself (it holds no
 * sub-directories). */
static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    char path[1400];
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        remove(path);
    }
    closedir(d);
    rmdir(dir);
}

static clcl_status write_state(const char *path, const clcl_optim *optim,
                               const clcl_train_position *pos) {
    clcl_safetensors_writer *w;
    char text[32];
    CLCL_TRY(clcl_safetensors_writer_create(&w));
    clcl_status st = clcl_optim_save(optim, w);
    if (st == CLCL_OK)
        st = clcl_safetensors_add_i64(w, "train.epoch", pos->epoch);
    if (st == CLCL_OK)
        st = clcl_safetensors_add_i64(w, "train.step", pos->step);
    if (st == CLCL_OK)
        st = clcl_safetensors_add_i64(w, "train.global_step", pos->global_step);
    snprintf(text, sizeof text, "%lld", (long long)pos->global_step);
    if (st == CLCL_OK)
        st = clcl_safetensors_add_metadata(w, "clcl.global_step", text);
    snprintf(text, sizeof text, "%a", pos->epoch_loss_sum); /* exact, so resuming is too */
    if (st == CLCL_OK)
        st = clcl_safetensors_add_metadata(w, "clcl.epoch_loss_sum", text);
    snprintf(text, sizeof text, "%.3f", pos->epoch_seconds);
    if (st == CLCL_OK)
        st = clcl_safetensors_add_metadata(w, "clcl.epoch_seconds", text);
    if (st == CLCL_OK)
        st = clcl_safetensors_write(w, path);
    clcl_safetensors_writer_free(w);
    return st;
}

clcl_status clcl_checkpoint_save(const char *out_dir, clcl_model *model, const clcl_optim *optim,
                                 const clcl_train_position *pos) {
    char tmp[1100], cur[1100], old[1100], path[1200];

    snprintf(tmp, sizeof tmp, "%s/checkpoint.tmp", out_dir);
    snprintf(cur, sizeof cur, "%s/checkpoint", out_dir);
    snprintf(old, sizeof old, "%s/checkpoint.old", out_dir);

    /* the new checkpoint, whole, beside the current one */
    remove_dir(tmp);
    CLCL_TRY(clcl_make_dirs(tmp));
    snprintf(path, sizeof path, "%s/model.safetensors", tmp);
    CLCL_TRY(clcl_model_save(model, path, 0));
    snprintf(path, sizeof path, "%s/state.safetensors", tmp);
    CLCL_TRY(write_state(path, optim, pos));

    /* swap: current -> old, new -> current, then drop old */
    remove_dir(old);
    if (is_dir(cur) && rename(cur, old) != 0)
        return clcl_fail(CLCL_ERR_IO, "cannot rename %s to %s: %s", cur, old, strerror(errno));
    if (rename(tmp, cur) != 0)
        return clcl_fail(CLCL_ERR_IO,
                         "cannot rename %s to %s: %s (the previous checkpoint is "
                         "in %s)",
                         tmp, cur, strerror(errno), old);
    remove_dir(old);
    return CLCL_OK;
}

void clcl_checkpoint_find(const char *run_dir, char *dir, size_t size) {
    snprintf(dir, size, "%s/checkpoint", run_dir);
    if (is_dir(dir))
        return;
    snprintf(dir, size, "%s/checkpoint.old", run_dir);
    if (is_dir(dir))
        return;
    dir[0] = '\0';
}

static clcl_status read_i64(const clcl_safetensors *st, const char *name, int64_t *out) {
    const clcl_safetensors_entry *e = clcl_safetensors_find(st, name);
    if (!e || e->dtype != CLCL_DTYPE_I64 || e->count != 1)
        return clcl_fail(CLCL_ERR_FORMAT, "%s: no I64 scalar '%s'", clcl_safetensors_source(st),
                         name);
    memcpy(out, e->data, sizeof *out);
    return CLCL_OK;
}

static clcl_status read_state(const char *path, clcl_optim *optim, clcl_train_position *pos) {
    clcl_safetensors *st;
    int64_t epoch = 0, step = 0, global = 0;
    CLCL_TRY(clcl_safetensors_read(path, &st));
    clcl_status s = read_i64(st, "train.epoch", &epoch);
    if (s == CLCL_OK)
        s = read_i64(st, "train.step", &step);
    if (s == CLCL_OK)
        s = read_i64(st, "train.global_step", &global);
    if (s == CLCL_OK && optim)
        s = clcl_optim_load(optim, st);
    /* absent from checkpoints of before they were kept: the epoch then restarts its sums */
    const char *loss = clcl_safetensors_metadata(st, "clcl.epoch_loss_sum");
    const char *seconds = clcl_safetensors_metadata(st, "clcl.epoch_seconds");
    if (s == CLCL_OK)
        *pos = (clcl_train_position){(int)epoch, (int)step, global, loss ? strtod(loss, NULL) : 0,
                                     seconds ? strtod(seconds, NULL) : 0};
    clcl_safetensors_free(st);
    return s;
}

clcl_status clcl_checkpoint_load(const char *run_dir, clcl_model *model, clcl_optim *optim,
                                 clcl_train_position *pos, char *used, size_t used_size) {
    char dir[1100], path[1200];
    clcl_checkpoint_find(run_dir, dir, sizeof dir);
    if (!dir[0])
        return clcl_fail(CLCL_ERR_IO,
                         "%s holds no checkpoint (expected %s/checkpoint/ with "
                         "model.safetensors and state.safetensors)",
                         run_dir, run_dir);
    if (used)
        snprintf(used, used_size, "%s", dir);
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    CLCL_TRY(read_state(path, optim, pos));
    if (model) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        CLCL_TRY(clcl_model_load(model, path, 0));
    }
    return CLCL_OK;
}
