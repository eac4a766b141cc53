/* Private helpers for checking calls inside the library. */
#ifndef CLCL_CHECK_H
#define CLCL_CHECK_H

#include "clcl/status.h"

/* Runs an OpenCL call; on failure records "file:line: call: CL_ERROR_NAME" and returns the
 * OpenCL code from the enclosing function. */
#define CLCL_TRY_CL(call)                                                                          \
    do {                                                                                           \
        cl_int clcl_err_ = (call);                                                                 \
        if (clcl_err_ != CL_SUCCESS)                                                               \
            return clcl_fail(clcl_err_, "%s:%d: %s: %s", __FILE__, __LINE__, #call,                \
                             clcl_status_name(clcl_err_));                                         \
    } while (0)

/* Same, but jumps to `label` after storing the status in `st` (for cleanup paths). */
#define CLCL_TRY_CL_GOTO(st, call, label)                                                          \
    do {                                                                                           \
        cl_int clcl_err_ = (call);                                                                 \
        if (clcl_err_ != CL_SUCCESS) {                                                             \
            st = clcl_fail(clcl_err_, "%s:%d: %s: %s", __FILE__, __LINE__, #call,                  \
                           clcl_status_name(clcl_err_));                                           \
            goto label;                                                                            \
        }                                                                                          \
    } while (0)

/* Propagates a failing clcl_status; the message is already recorded. */
#define CLCL_TRY(call)                                                                             \
    do {                                                                                           \
        clcl_status clcl_st_ = (call);                                                             \
        if (clcl_st_ != CLCL_OK)                                                                   \
            return clcl_st_;                                                                       \
    } while (0)

#define CLCL_TRY_GOTO(st, call, label)                                                             \
    do {                                                                                           \
        st = (call);                                                                               \
        if (st != CLCL_OK)                                                                         \
            goto label;                                                                            \
    } while (0)

#endif
