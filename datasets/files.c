/* File and path helpers shared by the readers. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "source.h"

int clcl_path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int clcl_path_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *clcl_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%s/%s", dir, name);
    return out;
}

char *clcl_path_resolve(const char *dir, const char *sub, const char *probe) {
    char *path = clcl_path_join(dir, probe);
    if (!path)
        return NULL;
    int here = clcl_path_is_file(path);
    free(path);
    if (here)
        return strdup(dir);

    /* The folder the release unpacks into. */
    char *inner = clcl_path_join(dir, sub);
    if (!inner)
        return NULL;
    path = clcl_path_join(inner, probe);
    int there = path && clcl_path_is_file(path);
    free(path);
    if (there)
        return inner;
    free(inner);
    return NULL;
}

clcl_status clcl_pread_all(int fd, void *buf, size_t n, int64_t offset, const char *what,
                           const char *path) {
    size_t done = 0;
    while (done < n) {
        ssize_t got = pread(fd, (char *)buf + done, n - done, (off_t)(offset + (int64_t)done));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return clcl_fail(CLCL_ERR_IO, "%s: %s: cannot read %zu bytes at offset %lld: %s", what,
                             path, n, (long long)offset, strerror(errno));
        if (got == 0)
            return clcl_fail(CLCL_ERR_FORMAT,
                             "%s: %s: truncated: expected %zu bytes at offset %lld, the file "
                             "ends after %zu",
                             what, path, n, (long long)offset, done);
        done += (size_t)got;
    }
    return CLCL_OK;
}

clcl_status clcl_file_size(const char *path, const char *what, int64_t *size) {
    struct stat st;
    if (stat(path, &st) != 0)
        return clcl_fail(CLCL_ERR_IO, "%s: cannot open %s: %s", what, path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return clcl_fail(CLCL_ERR_IO, "%s: %s is not a regular file", what, path);
    *size = (int64_t)st.st_size;
    return CLCL_OK;
}

void clcl_source_free(clcl_source *src) {
    if (src->free_state && src->state)
        src->free_state(src->state);
    if (src->names)
        for (int c = 0; c < src->classes; c++)
            free(src->names[c]);
    free(src->names);
    free(src->labels);
    free(src->pixels);
    memset(src, 0, sizeof *src);
}

clcl_status clcl_source_set_names(clcl_source *src, const char *const *names, int n) {
    src->names = calloc((size_t)n, sizeof *src->names);
    if (!src->names)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "dataset: out of memory for %d class names", n);
    src->classes = n;
    for (int c = 0; c < n; c++)
        if (!(src->names[c] = strdup(names[c])))
            return clcl_fail(CLCL_ERR_NO_MEMORY, "dataset: out of memory for class names");
    return CLCL_OK;
}
