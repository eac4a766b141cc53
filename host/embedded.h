/* The OpenCL programs of cl/, embedded at build time (see cmake/embed_cl.cmake). */
#ifndef CLCL_EMBEDDED_H
#define CLCL_EMBEDDED_H

struct clcl_embedded_program {
    const char *name;   /* file name without .cl */
    const char *source; /* NUL-terminated */
};

/* Terminated by an entry whose name is NULL. */
extern const struct clcl_embedded_program clcl_embedded_programs[];

#endif
