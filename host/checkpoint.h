/* Checkpoints of a training run: OUT/checkpoint/ holds model.safetensors
 * (weights and buffers by torchvision's names) and state.safetensors (optimizer
 * state and the position in training). A new checkpoint is written whole into
 * OUT/checkpoint.tmp/ and then swapped in by renames, so OUT/checkpoint (or,
 * between the two renames, OUT/checkpoint.old) is always a complete one. */
#ifndef CLCL_CHECKPOINT_H
#define CLCL_CHECKPOINT_H

#include <stdint.h>

#include "clcl/model.h"
#include "clcl/optim.h"

/* Where training stands: the next batch to run is step `step` of epoch `epoch`
 * (0-based); `global_step` batches have been run in all. A checkpoint taken inside an epoch
 * also keeps the sum of that epoch's step losses so far and its training seconds so far, so
 * that a resumed run reports the whole epoch (both 0 at an epoch's end). */
typedef struct {
    int epoch;
    int step;
    int64_t global_step;
    double epoch_loss_sum;
    double epoch_seconds;
} clcl_train_position;

clcl_status clcl_checkpoint_save(const char *out_dir, clcl_model *model, const clcl_optim *optim,
                                 const clcl_train_position *pos);

/* Loads the checkpoint of `run_dir` (OUT/checkpoint, or OUT/checkpoint.old when
 * a swap was interrupted) into model and optim (either may be NULL); `used`
 * (may be NULL) gets the directory read. */
clcl_status clcl_checkpoint_load(const char *run_dir, clcl_model *model, clcl_optim *optim,
                                 clcl_train_position *pos, char *used, size_t used_size);

/* The directory clcl_checkpoint_load would read, or "" when there is none. */
void clcl_checkpoint_find(const char *run_dir, char *dir, size_t size);

#endif
