/* The process-wide table of tuning decisions, one per device, and its file.
 *
 * File format (text, one record a line, '#' starts a comment line):
 *
 *     clcl-tuning 1
 *     device <sanitised device name>
 *     driver <sanitised driver version>
 *     gemm <ta> <tb> <m> <n> <k> <lda> <ldb> <ldc> <aligned> own|clblast
 *          <tm> <vw> <nv> <dot_tm> <dot_tn> <lx> <ly> <ms_own> <ms_clblast> auto|tuned
 *     loss <2N> <d> fused|fused-rows|unfused <ms_fused> <ms_unfused> <ms_rows>
 *     conv forward|data|weights <n> <c> <h> <w> <k> <r> <s> <stride> <pad> direct|columns
 *          <ms_direct> <ms_columns>
 *
 * (each gemm record on one line). Times are informative; -1 means not measured. A loss
 * record without <ms_rows> (written before the row-block kernels existed) is skipped, so
 * that shape is measured again. Writers
 * hold an fcntl lock on "<file>.lock" while they merge and rewrite, and the first record
 * for a key wins (a later process adopts it), so processes sharing the file agree. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clcl/fileio.h"
#include "clcl/log.h"
#include "tuning_internal.h"

#define TUNING_MAGIC "clcl-tuning 1"

typedef struct {
    tuning_gemm_entry e;
    int measured; /* 0: read from the file, 1: measured by this process */
} gemm_slot;

typedef struct {
    tuning_loss_entry e;
    int measured;
} loss_slot;

typedef struct {
    tuning_conv_entry e;
    int measured;
} conv_slot;

typedef struct tuning_table {
    struct tuning_table *next;
    char device[160]; /* sanitised device name */
    char driver[96];  /* sanitised driver version */
    char platform[128];
    char path[1024];
    int file_ignored;
    int disqualified;
    gemm_slot *gemm;
    int n_gemm, cap_gemm;
    int *index;     /* open-addressed hash of the gemm keys: slot + 1, 0 when empty */
    int index_size; /* a power of two, at least twice n_gemm; 0 before the first record */
    loss_slot *loss;
    int n_loss, cap_loss;
    conv_slot *conv;
    int n_conv, cap_conv;
} tuning_table;

static pthread_mutex_t tuning_lock = PTHREAD_MUTEX_INITIALIZER;
static tuning_table *tables;

/* Letters, digits and ".+-" stay; every other run of characters becomes one '_'. */
static void sanitise(const char *in, char *out, size_t size) {
    size_t o = 0;
    int gap = 0;
    for (const char *p = in; *p && o + 2 < size; p++) {
        int keep = isalnum((unsigned char)*p) || *p == '.' || *p == '+' || *p == '-';
        if (keep) {
            if (gap && o > 0)
                out[o++] = '_';
            out[o++] = *p;
            gap = 0;
        } else {
            gap = 1;
        }
    }
    out[o] = '\0';
    if (o == 0)
        snprintf(out, size, "unknown");
}

static clcl_status resolve_path(const tuning_table *t, char *buf, size_t size) {
    const char *env = getenv("CLCL_TUNING_FILE");
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;

    buf[0] = '\0';
    if (env && *env)
        n = snprintf(buf, size, "%s", env);
    else if (xdg && xdg[0] == '/')
        n = snprintf(buf, size, "%s/clcl/tuning-%s-%s.txt", xdg, t->device, t->driver);
    else if (home && *home)
        n = snprintf(buf, size, "%s/.cache/clcl/tuning-%s-%s.txt", home, t->device, t->driver);
    else
        return CLCL_OK;
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return clcl_fail(CLCL_ERR_ARGUMENT, "tuning file path too long (CLCL_TUNING_FILE, "
                                            "XDG_CACHE_HOME or HOME)");
    }
    return CLCL_OK;
}

/* ---- records ------------------------------------------------------------------------- */

int tuning_gemm_key_equal(const tuning_gemm_key *a, const tuning_gemm_key *b) {
    return a->trans_a == b->trans_a && a->trans_b == b->trans_b && a->m == b->m && a->n == b->n &&
           a->k == b->k && a->lda == b->lda && a->ldb == b->ldb && a->ldc == b->ldc &&
           a->aligned == b->aligned;
}

tuning_gemm_key tuning_gemm_key_of(const clcl_gemm_args *g) {
    int aligned = g->a_offset % 16 == 0 && g->b_offset % 16 == 0 && g->c_offset % 16 == 0;
    return (tuning_gemm_key){g->trans_a, g->trans_b, g->m,   g->n,   g->k,
                             g->lda,     g->ldb,     g->ldc, aligned};
}

static unsigned key_hash(const tuning_gemm_key *k) {
    uint64_t v[] = {(uint64_t)k->trans_a << 1 | (uint64_t)k->trans_b,
                    (uint64_t)k->m,
                    (uint64_t)k->n,
                    (uint64_t)k->k,
                    k->lda,
                    k->ldb,
                    k->ldc,
                    (uint64_t)k->aligned};
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        h = (h ^ v[i]) * 1099511628211ull;
    return (unsigned)(h ^ (h >> 32));
}

/* The index position of key: its slot's entry, or the empty one where it would go. */
static int index_probe(const tuning_table *t, const tuning_gemm_key *key) {
    unsigned mask = (unsigned)t->index_size - 1, i = key_hash(key) & mask;
    while (t->index[i] && !tuning_gemm_key_equal(&t->gemm[t->index[i] - 1].e.key, key))
        i = (i + 1) & mask;
    return (int)i;
}

/* Rebuilds the index at twice the size when it is half full; 0 when out of memory. */
static int index_grow(tuning_table *t) {
    if (2 * (t->n_gemm + 1) <= t->index_size)
        return 1;
    int size = t->index_size ? 2 * t->index_size : 256;
    int *index = calloc((size_t)size, sizeof *index);
    if (!index)
        return 0;
    free(t->index);
    t->index = index, t->index_size = size;
    for (int s = 0; s < t->n_gemm; s++)
        t->index[index_probe(t, &t->gemm[s].e.key)] = s + 1;
    return 1;
}

static gemm_slot *gemm_lookup(tuning_table *t, const tuning_gemm_key *key) {
    if (!t->index_size)
        return NULL;
    int at = t->index[index_probe(t, key)];
    return at ? &t->gemm[at - 1] : NULL;
}

static void gemm_clear(tuning_table *t) {
    t->n_gemm = 0;
    if (t->index)
        memset(t->index, 0, (size_t)t->index_size * sizeof *t->index);
}

static loss_slot *loss_lookup(tuning_table *t, int n2, int dim) {
    for (int i = 0; i < t->n_loss; i++)
        if (t->loss[i].e.n2 == n2 && t->loss[i].e.dim == dim)
            return &t->loss[i];
    return NULL;
}

static conv_slot *conv_lookup(tuning_table *t, const tuning_conv_key *key) {
    for (int i = 0; i < t->n_conv; i++)
        if (!memcmp(&t->conv[i].e.key, key, sizeof *key))
            return &t->conv[i];
    return NULL;
}

static int conv_put(tuning_table *t, const tuning_conv_entry *e, int measured) {
    conv_slot *s = conv_lookup(t, &e->key);
    if (!s) {
        if (t->n_conv == t->cap_conv) {
            int cap = t->cap_conv ? 2 * t->cap_conv : 32;
            conv_slot *p = realloc(t->conv, (size_t)cap * sizeof *p);
            if (!p)
                return 0;
            t->conv = p, t->cap_conv = cap;
        }
        s = &t->conv[t->n_conv++];
    }
    s->e = *e;
    s->measured = measured;
    return 1;
}

/* Adds or replaces; 0 when out of memory. */
static int gemm_put(tuning_table *t, const tuning_gemm_entry *e, int measured) {
    gemm_slot *s = gemm_lookup(t, &e->key);
    if (!s) {
        if (t->n_gemm == t->cap_gemm) {
            int cap = t->cap_gemm ? 2 * t->cap_gemm : 64;
            gemm_slot *p = realloc(t->gemm, (size_t)cap * sizeof *p);
            if (!p)
                return 0;
            t->gemm = p, t->cap_gemm = cap;
        }
        if (!index_grow(t))
            return 0;
        t->index[index_probe(t, &e->key)] = t->n_gemm + 1;
        s = &t->gemm[t->n_gemm++];
    }
    s->e = *e;
    s->measured = measured;
    return 1;
}

static int loss_put(tuning_table *t, const tuning_loss_entry *e, int measured) {
    loss_slot *s = loss_lookup(t, e->n2, e->dim);
    if (!s) {
        if (t->n_loss == t->cap_loss) {
            int cap = t->cap_loss ? 2 * t->cap_loss : 16;
            loss_slot *p = realloc(t->loss, (size_t)cap * sizeof *p);
            if (!p)
                return 0;
            t->loss = p, t->cap_loss = cap;
        }
        s = &t->loss[t->n_loss++];
    }
    s->e = *e;
    s->measured = measured;
    return 1;
}

/* ---- reading ------------------------------------------------------------------------- */

static int parse_gemm(const char *line, tuning_gemm_entry *e) {
    char backend[16], source[16];
    clcl_gemm_params *p = &e->params;
    tuning_gemm_key *k = &e->key;
    int used = 0;

    int got =
        sscanf(line, "gemm %d %d %d %d %d %zu %zu %zu %d %15s %d %d %d %d %d %d %d %lf %lf %15s %n",
               &k->trans_a, &k->trans_b, &k->m, &k->n, &k->k, &k->lda, &k->ldb, &k->ldc,
               &k->aligned, backend, &p->tm, &p->vw, &p->nv, &p->dot_tm, &p->dot_tn, &p->lx, &p->ly,
               &e->ms_own, &e->ms_clblast, source, &used);
    if (got != 20 || line[used] != '\0')
        return 0;
    if (strcmp(source, "auto") != 0 && strcmp(source, "tuned") != 0)
        return 0;
    e->tuned = strcmp(source, "tuned") == 0;
    if (strcmp(backend, "own") == 0)
        e->backend = TUNING_OWN;
    else if (strcmp(backend, "clblast") == 0)
        e->backend = TUNING_CLBLAST;
    else
        return 0;
    if ((k->trans_a | k->trans_b | k->aligned) & ~1 || k->m <= 0 || k->n <= 0 || k->k <= 0)
        return 0;
    return e->backend == TUNING_CLBLAST || tuning_gemm_params_valid(p);
}

static const char *loss_impl_word(clcl_loss_impl impl) {
    return impl == CLCL_LOSS_FUSED        ? "fused"
           : impl == CLCL_LOSS_FUSED_ROWS ? "fused-rows"
                                          : "unfused";
}

/* 1: a record, 0: malformed, -1: a record of the older form without <ms_rows> (skipped). */
static int parse_loss(const char *line, tuning_loss_entry *e) {
    static const clcl_loss_impl impls[] = {CLCL_LOSS_FUSED, CLCL_LOSS_FUSED_ROWS,
                                           CLCL_LOSS_UNFUSED};
    char impl[16];
    int used = 0, old = 0;
    int got = sscanf(line, "loss %d %d %15s %lf %lf %n", &e->n2, &e->dim, impl, &e->ms_fused,
                     &e->ms_unfused, &old);
    if (got == 5 && line[old] == '\0')
        return -1;
    got = sscanf(line, "loss %d %d %15s %lf %lf %lf %n", &e->n2, &e->dim, impl, &e->ms_fused,
                 &e->ms_unfused, &e->ms_rows, &used);
    if (got != 6 || line[used] != '\0' || e->n2 < 2 || e->dim < 1)
        return 0;
    for (size_t i = 0; i < sizeof impls / sizeof impls[0]; i++) {
        if (strcmp(impl, loss_impl_word(impls[i])) == 0) {
            e->impl = impls[i];
            return 1;
        }
    }
    return 0;
}

static int parse_conv(const char *line, tuning_conv_entry *e) {
    char dir[16], path[16];
    tuning_conv_key *k = &e->key;
    int used = 0;
    memset(e, 0, sizeof *e);
    int got = sscanf(line, "conv %15s %d %d %d %d %d %d %d %d %d %15s %lf %lf %n", dir, &k->n,
                     &k->c, &k->h, &k->w, &k->k, &k->r, &k->s, &k->stride, &k->pad, path,
                     &e->ms_direct, &e->ms_columns, &used);
    if (got != 13 || line[used] != '\0')
        return 0;
    if (k->n < 1 || k->c < 1 || k->h < 1 || k->w < 1 || k->k < 1 || k->r < 1 || k->s < 1 ||
        k->stride < 1 || k->pad < 0)
        return 0;
    if ((strcmp(dir, "forward") && strcmp(dir, "data") && strcmp(dir, "weights")) ||
        (strcmp(path, "direct") && strcmp(path, "columns")))
        return 0;
    k->data = strcmp(dir, "data") == 0 ? 1 : strcmp(dir, "weights") == 0 ? 2 : 0;
    e->direct = strcmp(path, "direct") == 0;
    return 1;
}

/* One line into t; NULL when fine, else what is wrong with it. */
static const char *parse_line(tuning_table *t, char *line, int number) {
    char word[200];
    tuning_gemm_entry g;
    tuning_loss_entry l;
    tuning_conv_entry c;

    line[strcspn(line, "\r\n")] = '\0';
    if (number == 1)
        return strcmp(line, TUNING_MAGIC) == 0 ? NULL : "expected the header \"" TUNING_MAGIC "\"";
    if (line[0] == '\0' || line[0] == '#')
        return NULL;
    if (sscanf(line, "device %199s", word) == 1)
        return strcmp(word, t->device) == 0 ? NULL : "the file belongs to another device";
    if (sscanf(line, "driver %199s", word) == 1)
        return strcmp(word, t->driver) == 0 ? NULL : "the file belongs to another driver version";
    if (strncmp(line, "gemm ", 5) == 0)
        return !parse_gemm(line, &g) ? "malformed gemm record"
               : !gemm_put(t, &g, 0) ? "out of memory"
                                     : NULL;
    if (strncmp(line, "loss ", 5) == 0) {
        int got = parse_loss(line, &l);
        return got == 0                         ? "malformed loss record"
               : got > 0 && !loss_put(t, &l, 0) ? "out of memory"
                                                : NULL;
    }
    if (strncmp(line, "conv ", 5) == 0)
        return !parse_conv(line, &c) ? "malformed conv record"
               : !conv_put(t, &c, 0) ? "out of memory"
                                     : NULL;
    return "unknown record";
}

/* Reads t->path into t (which must be empty). A missing file is no decision; a bad one is
 * reported, its records dropped, and file_ignored set. */
static void load_file(tuning_table *t) {
    char line[512];
    const char *bad = NULL;
    int number = 0;

    if (!t->path[0])
        return;
    FILE *f = fopen(t->path, "r");
    if (!f) {
        if (errno != ENOENT)
            CLCL_LOG_WARN("tuning", "cannot read %s: %s; measuring afresh", t->path,
                          strerror(errno));
        return;
    }
    while (!bad && fgets(line, sizeof line, f)) {
        number++;
        if (!strchr(line, '\n') && !feof(f))
            bad = "line too long";
        else
            bad = parse_line(t, line, number);
    }
    if (!bad && number == 0)
        bad = "empty file";
    fclose(f);
    if (bad) {
        CLCL_LOG_WARN("tuning",
                      "%s:%d: %s; ignoring the file (it is rewritten at the next "
                      "decision)",
                      t->path, number, bad);
        gemm_clear(t);
        t->n_loss = 0;
        t->n_conv = 0;
        t->file_ignored = 1;
        return;
    }
    CLCL_LOG_DEBUG("tuning", "%s: %d GEMM and %d loss decisions", t->path, t->n_gemm, t->n_loss);
}

/* The table of ctx's device, created and loaded on first use; NULL when out of memory.
 * Called with tuning_lock held. */
static tuning_table *table_of(clcl_context *ctx) {
    const clcl_device_info *d = clcl_context_device(ctx);
    char device[160], driver[96];

    sanitise(d->name, device, sizeof device);
    sanitise(d->driver_version, driver, sizeof driver);
    for (tuning_table *t = tables; t; t = t->next)
        if (!strcmp(t->device, device) && !strcmp(t->driver, driver) &&
            !strcmp(t->platform, d->platform))
            return t;

    tuning_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    snprintf(t->device, sizeof t->device, "%s", device);
    snprintf(t->driver, sizeof t->driver, "%s", driver);
    snprintf(t->platform, sizeof t->platform, "%s", d->platform);
    if (resolve_path(t, t->path, sizeof t->path) != CLCL_OK)
        CLCL_LOG_WARN("tuning", "%s; decisions are not kept", clcl_last_error());
    load_file(t);
    t->next = tables;
    tables = t;
    return t;
}

/* ---- writing ------------------------------------------------------------------------- */

static void write_records(const tuning_table *t, FILE *f) {
    fprintf(f, "%s\n# written by clcl; delete to measure again\ndevice %s\ndriver %s\n",
            TUNING_MAGIC, t->device, t->driver);
    for (int i = 0; i < t->n_gemm; i++) {
        const tuning_gemm_entry *e = &t->gemm[i].e;
        const clcl_gemm_params *p = &e->params;
        fprintf(f, "gemm %d %d %d %d %d %zu %zu %zu %d %s %d %d %d %d %d %d %d %.4f %.4f %s\n",
                e->key.trans_a, e->key.trans_b, e->key.m, e->key.n, e->key.k, e->key.lda,
                e->key.ldb, e->key.ldc, e->key.aligned,
                e->backend == TUNING_OWN ? "own" : "clblast", p->tm, p->vw, p->nv, p->dot_tm,
                p->dot_tn, p->lx, p->ly, e->ms_own, e->ms_clblast, e->tuned ? "tuned" : "auto");
    }
    for (int i = 0; i < t->n_loss; i++) {
        const tuning_loss_entry *e = &t->loss[i].e;
        fprintf(f, "loss %d %d %s %.4f %.4f %.4f\n", e->n2, e->dim, loss_impl_word(e->impl),
                e->ms_fused, e->ms_unfused, e->ms_rows);
    }
    for (int i = 0; i < t->n_conv; i++) {
        const tuning_conv_entry *e = &t->conv[i].e;
        const tuning_conv_key *k = &e->key;
        fprintf(f, "conv %s %d %d %d %d %d %d %d %d %d %s %.4f %.4f\n",
                k->data == 2 ? "weights"
                : k->data    ? "data"
                             : "forward",
                k->n, k->c, k->h, k->w, k->k, k->r, k->s, k->stride, k->pad,
                e->direct ? "direct" : "columns", e->ms_direct, e->ms_columns);
    }
}

/* An exclusive fcntl lock on "<path>.lock" (created with its directory); -1 when it
 * cannot be taken, and then the write goes ahead unlocked. */
static int lock_file(const char *path) {
    char name[1100], dir[1024];
    struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET};

    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (clcl_make_dirs(dir) != CLCL_OK)
            return -1;
    }
    snprintf(name, sizeof name, "%s.lock", path);
    int fd = open(name, O_RDWR | O_CREAT, 0666);
    if (fd >= 0 && fcntl(fd, F_SETLKW, &lk) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Merges what the file holds now into t (the file's record wins where both have one,
 * unless ours is forced, since another process may already run by it), then writes t
 * atomically. Called with tuning_lock held; `forced` may be NULL. */
static void save(tuning_table *t, const tuning_gemm_key *forced) {
    tuning_table other = {0};
    clcl_atomic_file af;

    if (!t->path[0])
        return;
    int fd = lock_file(t->path);
    snprintf(other.device, sizeof other.device, "%s", t->device);
    snprintf(other.driver, sizeof other.driver, "%s", t->driver);
    snprintf(other.path, sizeof other.path, "%s", t->path);
    load_file(&other);
    for (int i = 0; i < other.n_gemm; i++) {
        gemm_slot *mine = gemm_lookup(t, &other.gemm[i].e.key);
        if (!mine)
            gemm_put(t, &other.gemm[i].e, 0);
        else if (!(forced && tuning_gemm_key_equal(forced, &mine->e.key)))
            mine->e = other.gemm[i].e;
    }
    for (int i = 0; i < other.n_loss; i++) {
        loss_slot *mine = loss_lookup(t, other.loss[i].e.n2, other.loss[i].e.dim);
        if (!mine)
            loss_put(t, &other.loss[i].e, 0);
        else
            mine->e = other.loss[i].e;
    }
    for (int i = 0; i < other.n_conv; i++) {
        conv_slot *mine = conv_lookup(t, &other.conv[i].e.key);
        if (!mine)
            conv_put(t, &other.conv[i].e, 0);
        else
            mine->e = other.conv[i].e;
    }
    free(other.gemm);
    free(other.index);
    free(other.loss);
    free(other.conv);

    clcl_status st = clcl_atomic_open(&af, t->path);
    if (st == CLCL_OK) {
        write_records(t, af.file);
        st = clcl_atomic_commit(&af);
    }
    if (fd >= 0)
        close(fd);
    if (st != CLCL_OK) {
        CLCL_LOG_WARN("tuning", "%s; the decision holds for this process only", clcl_last_error());
        return;
    }
    t->file_ignored = 0;
}

/* ---- the private interface ----------------------------------------------------------- */

int tuning_gemm_find(clcl_context *ctx, const tuning_gemm_key *key, tuning_gemm_entry *out) {
    int found = 0;
    pthread_mutex_lock(&tuning_lock);
    tuning_table *t = table_of(ctx);
    gemm_slot *s = t ? gemm_lookup(t, key) : NULL;
    if (s) {
        *out = s->e;
        found = 1;
    }
    pthread_mutex_unlock(&tuning_lock);
    return found;
}

int tuning_loss_find(clcl_context *ctx, int n2, int dim, tuning_loss_entry *out) {
    int found = 0;
    pthread_mutex_lock(&tuning_lock);
    tuning_table *t = table_of(ctx);
    loss_slot *s = t ? loss_lookup(t, n2, dim) : NULL;
    if (s) {
        *out = s->e;
        found = 1;
    }
    pthread_mutex_unlock(&tuning_lock);
    return found;
}

int tuning_conv_find(clcl_context *ctx, const tuning_conv_key *key, tuning_conv_entry *out) {
    int found = 0;
    pthread_mutex_lock(&tuning_lock);
    tuning_table *t = table_of(ctx);
    conv_slot *s = t ? conv_lookup(t, key) : NULL;
    if (s) {
        *out = s->e;
        found = 1;
    }
    pthread_mutex_unlock(&tuning_lock);
    return found;
}

void tuning_conv_store(clcl_context *ctx, const tuning_conv_entry *e, tuning_conv_entry *out) {
    *out = *e;
    pthread_mutex_lock(&tuning_lock);
    tuning_table *t = table_of(ctx);
    if (t && conv_put(t, e, 1)) {
        save(t, NULL);
        conv_slot *s = conv_lookup(t, &e->key);
        if (s)
            *out = s->e;
    }
    pthread_mutex_unlock(&tuning_lock);
}

void tuning_gemm_store(clcl_context *ctx, const tuning_gemm_entry *e, int disqualified,
                       tuning_gemm_entry *out) {
    *out = *e;
    pthread_mutex_lock(&tuning_lock);
    tuning_table *t = table_of(ctx);
    if (t && gemm_put(t, e, 1)) {
        t->disqualified += disqualified != 0;
        save(t, e->tuned ? &e->key : NULL);
        gemm_slot *s = gemm_lookup(t, &e->key);
        if (s)
            *out = s->e;
    }
    pthread_mutex_unlock(&tuning_lock);
}

void tuning_loss_store(clcl_context *ctx, const tuning_loss_entry *e, tuning_loss_entry *out) {
    *out = *e;
    pthread_mutex_lock(&tuning_lock);
    tuning_table *t = table_of(ctx);
    if (t && loss_put(t, e, 1)) {
        save(t, NULL);
        loss_slot *s = loss_lookup(t, e->n2, e->dim);
        if (s)
            *out = s->e;
    }
    pthread_mutex_unlock(&tuning_lock);
}

/* ---- the public interface ------------------------------------------------------------ */

const char *tuning_gemm_mode(void) {
    const char *v = getenv("CLCL_GEMM");
    return v && *v ? v : "auto";
}

clcl_status clcl_tuning_summarize(clcl_context *ctx, clcl_tuning_summary *out) {
    memset(out, 0, sizeof *out);
    out->gemm_mode = tuning_gemm_mode();
    pthread_mutex_lock(&tuning_lock);
    tuning_table *t = table_of(ctx);
    if (!t) {
        pthread_mutex_unlock(&tuning_lock);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "tuning: out of host memory");
    }
    snprintf(out->path, sizeof out->path, "%s", t->path);
    out->file_ignored = t->file_ignored;
    out->gemm_disqualified = t->disqualified;
    for (int i = 0; i < t->n_gemm; i++) {
        out->gemm_measured += t->gemm[i].measured;
        out->gemm_from_file += !t->gemm[i].measured;
        out->gemm_own += t->gemm[i].e.backend == TUNING_OWN;
    }
    for (int i = 0; i < t->n_loss; i++) {
        out->loss_measured += t->loss[i].measured;
        out->loss_from_file += !t->loss[i].measured;
        out->loss_fused += t->loss[i].e.impl != CLCL_LOSS_UNFUSED;
    }
    for (int i = 0; i < t->n_conv; i++) {
        out->conv_measured += t->conv[i].measured;
        out->conv_from_file += !t->conv[i].measured;
        out->conv_direct += t->conv[i].e.direct;
    }
    pthread_mutex_unlock(&tuning_lock);
    return CLCL_OK;
}

const char *clcl_tuning_describe(const clcl_tuning_summary *s, char *buf, size_t size) {
    snprintf(buf, size,
             "GEMM %s: %d shapes from the file, %d measured, %d on our kernel, %d disqualified; "
             "loss: %d from the file, %d measured, %d fused; conv: %d from the file, %d measured, "
             "%d direct; file %s%s",
             s->gemm_mode, s->gemm_from_file, s->gemm_measured, s->gemm_own, s->gemm_disqualified,
             s->loss_from_file, s->loss_measured, s->loss_fused, s->conv_from_file,
             s->conv_measured, s->conv_direct, s->path[0] ? s->path : "(none)",
             s->file_ignored ? " (ignored: corrupt or another device's)" : "");
    return buf;
}

clcl_status clcl_tuning_path(clcl_context *ctx, char *buf, size_t size) {
    tuning_table t = {0};
    const clcl_device_info *d = clcl_context_device(ctx);
    sanitise(d->name, t.device, sizeof t.device);
    sanitise(d->driver_version, t.driver, sizeof t.driver);
    return resolve_path(&t, buf, size);
}

clcl_status clcl_tuning_reload(clcl_context *ctx) {
    clcl_status st = CLCL_OK;
    pthread_mutex_lock(&tuning_lock);
    tuning_table *t = table_of(ctx);
    if (t) {
        gemm_clear(t);
        t->n_loss = 0;
        t->n_conv = 0;
        t->file_ignored = t->disqualified = 0;
        st = resolve_path(t, t->path, sizeof t->path);
        load_file(t);
    } else {
        st = clcl_fail(CLCL_ERR_NO_MEMORY, "tuning: out of host memory");
    }
    pthread_mutex_unlock(&tuning_lock);
    return st;
}
