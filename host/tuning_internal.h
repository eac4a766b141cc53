/* The tuning table's records, for host/gemm.c, host/loss.c and the tuner (private). */
#ifndef CLCL_TUNING_INTERNAL_H
#define CLCL_TUNING_INTERNAL_H

#include "clcl/gemm.h"
#include "clcl/loss.h"
#include "clcl/tuning.h"

typedef enum { TUNING_CLBLAST = 0, TUNING_OWN = 1 } tuning_gemm_backend;

/* What a GEMM decision depends on: transposes, sizes, leading dimensions and whether all
 * three offsets are multiples of 16 floats (64 bytes). */
typedef struct {
    int trans_a, trans_b, m, n, k;
    size_t lda, ldb, ldc;
    int aligned;
} tuning_gemm_key;

typedef struct {
    tuning_gemm_key key;
    tuning_gemm_backend backend;
    clcl_gemm_params params; /* our kernel's tunables (meaningful when backend is OWN) */
    double ms_own;           /* measured times, -1 when not measured or disqualified */
    double ms_clblast;
    int tuned; /* 1: from `clcl tune` (replaces a record in the file), 0: first-use measure */
} tuning_gemm_entry;

typedef struct {
    int n2, dim;
    clcl_loss_impl impl; /* CLCL_LOSS_FUSED, CLCL_LOSS_FUSED_ROWS or CLCL_LOSS_UNFUSED */
    double ms_fused, ms_unfused, ms_rows; /* measured times, -1 when not measured */
} tuning_loss_entry;

/* A convolution pass's path: the direct kernel or the columns (host/conv.c). */
typedef struct {
    int data; /* 0: forward, 1: backward data, 2: backward weights */
    int n, c, h, w, k, r, s, stride, pad;
} tuning_conv_key;

typedef struct {
    tuning_conv_key key;
    int direct; /* 1: the direct kernel, 0: the columns */
    double ms_direct, ms_columns;
} tuning_conv_entry;

tuning_gemm_key tuning_gemm_key_of(const clcl_gemm_args *g);
int tuning_gemm_key_equal(const tuning_gemm_key *a, const tuning_gemm_key *b);

/* 1 when clcl_gemm_own accepts p (host/gemm.c); sets no error. */
int tuning_gemm_params_valid(const clcl_gemm_params *p);

/* CLCL_GEMM's value, "auto" when unset or empty (not checked here). */
const char *tuning_gemm_mode(void);

/* The decision for key on ctx's device: 1 and *out when there is one, 0 when not. */
int tuning_gemm_find(clcl_context *ctx, const tuning_gemm_key *key, tuning_gemm_entry *out);
int tuning_loss_find(clcl_context *ctx, int n2, int dim, tuning_loss_entry *out);
int tuning_conv_find(clcl_context *ctx, const tuning_conv_key *key, tuning_conv_entry *out);

/* Records a measured decision, counts it as measured and writes the file, under a lock
 * on "<file>.lock" against other processes. Where the file already holds a decision for
 * the same key (another process was first), that one wins, unless e->tuned: *out is the
 * decision to use. A failed write is logged and otherwise ignored (the decision then
 * holds for this process only). */
void tuning_gemm_store(clcl_context *ctx, const tuning_gemm_entry *e, int disqualified,
                       tuning_gemm_entry *out);
void tuning_loss_store(clcl_context *ctx, const tuning_loss_entry *e, tuning_loss_entry *out);
void tuning_conv_store(clcl_context *ctx, const tuning_conv_entry *e, tuning_conv_entry *out);

/* ---- for the tuner (host/cmd_tune.c) ------------------------------------------------- */

/* While a recorder is set (process-wide; NULL stops), clcl_gemm adds every argument set
 * of a shape not yet in it to args[] (buffers set to NULL: the shape only) and runs our
 * kernel with its default tunables (CLBlast where ours cannot), measuring nothing and
 * writing no file. */
typedef struct {
    clcl_gemm_args *args;
    int count, cap;
    int failed; /* 1: out of memory, some shapes were not recorded */
} tuning_gemm_recorder;

void tuning_gemm_record(tuning_gemm_recorder *r);

/* Scratch buffers of g's shape filled with seeded values, for timing candidates (g's own
 * buffers are not used and may be NULL). */
typedef struct tuning_trial tuning_trial;

clcl_status tuning_trial_create(clcl_context *ctx, const clcl_gemm_args *g, tuning_trial **out);
void tuning_trial_free(tuning_trial *t);

/* One candidate (our kernel with p, or CLBlast when own is 0): run once, checked at 64
 * sampled outputs (corners included) against a double-precision host sum, then timed
 * (the minimum of up to 3 runs, fewer once 0.3 s are spent). When bound_ms > 0 and the
 * checked run (transfers included) took longer, that run's time is *ms, an upper bound,
 * and nothing more is run: the candidate has lost anyway. *ms is -1 when it failed or
 * disagreed; the status is CLCL_OK either way unless the trial itself failed. */
clcl_status tuning_trial_measure(clcl_context *ctx, tuning_trial *t, int own,
                                 const clcl_gemm_params *p, double bound_ms, double *ms);

/* The tunings of our kernel that `clcl tune` (and bench_peak) try: for B as stored
 * (gemm_bcast) and B transposed (gemm_dot). The first of each is cl/gemm.cl's default. */
#define TUNING_CANDIDATES 6
extern const clcl_gemm_params tuning_candidates_bcast[TUNING_CANDIDATES];
extern const clcl_gemm_params tuning_candidates_dot[TUNING_CANDIDATES];

#endif
