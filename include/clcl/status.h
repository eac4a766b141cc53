/* Status codes and error messages.
 *
 * Every library call returns a clcl_status: CLCL_OK (0), an OpenCL error code (negative,
 * as cl.h and its extensions define them, all above -2000) or one of clcl's own codes
 * (-2000 and below). On failure the call also leaves a human-readable message, naming the file,
 * flag, shape or OpenCL call at fault, that clcl_last_error() returns. Only the command-line front
 * end exits; library code frees what it took and returns. */
#ifndef CLCL_STATUS_H
#define CLCL_STATUS_H

typedef int clcl_status;

enum {
    CLCL_OK = 0,
    CLCL_ERR_ARGUMENT = -2000,  /* a bad argument, flag or specification */
    CLCL_ERR_SHAPE = -2001,     /* tensor shapes that do not fit together */
    CLCL_ERR_IO = -2002,        /* a file that cannot be opened, read or written */
    CLCL_ERR_FORMAT = -2003,    /* a file whose contents are not what its format says */
    CLCL_ERR_NO_MEMORY = -2004, /* host allocation failed */
    CLCL_ERR_NO_DEVICE = -2005, /* no OpenCL platform or device (a choice that matches none of
                                 * the devices is CLCL_ERR_ARGUMENT) */
    CLCL_ERR_BUILD = -2006,     /* an OpenCL program failed to build */
    CLCL_ERR_TOO_LARGE = -2007, /* a buffer larger than the device allows */
    CLCL_ERR_NON_FINITE = -2008 /* NaN or infinity where finite numbers are required */
};

/* The name of a status: "CL_OUT_OF_RESOURCES", "CLCL_ERR_SHAPE", ... */
const char *clcl_status_name(clcl_status status);

/* The message the last failing call on this thread left ("" when none). */
const char *clcl_last_error(void);

/* The status that call returned (CLCL_OK when none). */
clcl_status clcl_last_status(void);

/* Records a message for clcl_last_error() and returns status, so that library code can
 * write `return clcl_fail(CLCL_ERR_SHAPE, "conv2d: ...", ...);`. */
clcl_status clcl_fail(clcl_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Clears the last error message. */
void clcl_clear_error(void);

#endif
