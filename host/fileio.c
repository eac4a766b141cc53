/* Atomic file writes and directory creation. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clcl/fileio.h"

clcl_status clcl_atomic_open(clcl_atomic_file *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path)
        return clcl_fail(CLCL_ERR_ARGUMENT, "path too long: %s", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp", path);
    af->file = fopen(af->tmp, "wb");
    if (!af->file)
        return clcl_fail(CLCL_ERR_IO, "cannot write %s: %s", af->tmp, strerror(errno));
    return CLCL_OK;
}

clcl_status clcl_atomic_commit(clcl_atomic_file *af) {
    int failed = fflush(af->file) != 0 || ferror(af->file);
    int err = errno;
    if (!failed && fsync(fileno(af->file)) != 0) {
        failed = 1;
        err = errno;
    }
    if (fclose(af->file) != 0 && !failed) {
        failed = 1;
        err = errno;
    }
    af->file = NULL;
    if (!failed && rename(af->tmp, af->path) != 0) {
        failed = 1;
        err = errno;
    }
    if (failed) {
        remove(af->tmp);
        return clcl_fail(CLCL_ERR_IO,
                         "writing %s failed: %s (the previous file, if any, is "
                         "unchanged)",
                         af->path, strerror(err));
    }
    return CLCL_OK;
}

void clcl_atomic_abort(clcl_atomic_file *af) {
    if (af->file)
        fclose(af->file);
    af->file = NULL;
    if (af->tmp[0])
        remove(af->tmp);
}

clcl_status clcl_write_file_atomic(const char *path, const void *data, size_t size) {
    clcl_atomic_file af;
    clcl_status st = clcl_atomic_open(&af, path);
    if (st != CLCL_OK)
        return st;
    if (size && fwrite(data, 1, size, af.file) != size) {
        st = clcl_fail(CLCL_ERR_IO, "writing %s failed: %s", af.tmp, strerror(errno));
        clcl_atomic_abort(&af);
        return st;
    }
    return clcl_atomic_commit(&af);
}

clcl_status clcl_make_dirs(const char *dir) {
    char path[1024];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return clcl_fail(CLCL_ERR_ARGUMENT, "path too long: %s", dir);
    for (char *p = path + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(path, 0777) != 0 && errno != EEXIST)
                return clcl_fail(CLCL_ERR_IO, "cannot create directory %s: %s", path,
                                 strerror(errno));
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return clcl_fail(CLCL_ERR_IO, "%s exists and is not a directory", dir);
    if (access(dir, W_OK) != 0)
        return clcl_fail(CLCL_ERR_IO, "directory %s is not writable: %s", dir, strerror(errno));
    return CLCL_OK;
}
