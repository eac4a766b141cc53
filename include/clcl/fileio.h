/* Files written so that nothing is lost: the data goes to "<path>.tmp" in the same
 * directory, is flushed and synced, and only then renamed over <path>. A reader sees the
 * old file or the new one, never half of one. */
#ifndef CLCL_FILEIO_H
#define CLCL_FILEIO_H

#include <stddef.h>
#include <stdio.h>

#include "clcl/status.h"

typedef struct {
    FILE *file; /* write to this */
    char path[1024];
    char tmp[1040];
} clcl_atomic_file;

clcl_status clcl_atomic_open(clcl_atomic_file *af, const char *path);
/* Flushes, syncs, closes and renames; on any failure the old file is left as it was. */
clcl_status clcl_atomic_commit(clcl_atomic_file *af);
/* Closes and removes the temporary file. */
void clcl_atomic_abort(clcl_atomic_file *af);

/* The whole of `data` as the new contents of `path`. */
clcl_status clcl_write_file_atomic(const char *path, const void *data, size_t size);

/* Creates `dir` and its missing parents (mode 0777 less umask); an existing directory is
 * fine. The error names the directory and the reason. */
clcl_status clcl_make_dirs(const char *dir);

#endif
