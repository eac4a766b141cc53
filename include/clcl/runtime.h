/* The OpenCL runtime: devices, one opaque context per device, programs and launches.
 *
 * A context owns a platform/device pair, a cl_context, two in-order queues (compute, and a
 * transfer queue for uploads that overlap it) and every program built for it. Programs are
 * the cl/<name>.cl files embedded in the library at build time; each is compiled at most
 * once per context and option string. A context is not thread-safe: use it from one thread
 * at a time. */
#ifndef CLCL_RUNTIME_H
#define CLCL_RUNTIME_H

#include <stddef.h>

#include <CL/cl.h>

#include "clcl/status.h"

typedef struct clcl_context clcl_context;

/* What clcl knows of a device. In a context, local_mem and max_work_group already carry
 * the CLCL_MAX_LOCAL_MEM / CLCL_MAX_WORK_GROUP caps (see docs/devices.md). */
typedef struct {
    int index; /* position in the list of all devices of all platforms */
    int platform_index;
    cl_platform_id platform_id;
    cl_device_id device_id;
    char platform[128];
    char name[128];
    char vendor[128];
    char driver_version[64];
    char device_version[64];
    char opencl_c_version[64];
    cl_device_type type;
    cl_uint compute_units;
    cl_uint clock_mhz;
    cl_ulong global_mem;
    cl_ulong max_alloc;
    cl_ulong local_mem;
    size_t max_work_group;
    cl_uint base_addr_align_bits;
    int has_fp16;
    int has_fp64;
} clcl_device_info;

/* Lists every device of every platform. *devices is malloc'ed; free() it. No platform at
 * all is CLCL_ERR_NO_DEVICE with a message saying which ICD to install. */
clcl_status clcl_devices_list(clcl_device_info **devices, int *count);

/* Picks a device by `choice`: an index, "cpu", "gpu", or a case-insensitive substring of
 * the device or platform name. NULL or "" means $CLCL_DEVICE, then the first device. An
 * impossible choice is CLCL_ERR_NO_DEVICE with a message listing what exists. */
clcl_status clcl_device_choose(const clcl_device_info *devices, int count, const char *choice,
                               int *index);

/* "CPU", "GPU", "ACCELERATOR" or "OTHER". */
const char *clcl_device_type_name(cl_device_type type);

clcl_status clcl_context_create(const char *choice, clcl_context **ctx);
void clcl_context_free(clcl_context *ctx);

const clcl_device_info *clcl_context_device(const clcl_context *ctx);
cl_context clcl_context_cl(const clcl_context *ctx);
cl_command_queue clcl_context_queue(const clcl_context *ctx);
/* The second in-order queue: work on it runs beside the compute queue where the device can
 * (a GPU's copy engine); order the two with events. */
cl_command_queue clcl_context_transfer_queue(const clcl_context *ctx);

/* The kernel `kernel` of the embedded program `program` (cl/<program>.cl), built with
 * "-cl-std=CL1.2 " followed by `options` (may be NULL). Built once per context and option
 * string; the kernel object is cached and owned by the context. A failed build is
 * CLCL_ERR_BUILD with the program's name, its options and the full build log. */
clcl_status clcl_context_kernel(clcl_context *ctx, const char *program, const char *kernel,
                                const char *options, cl_kernel *out);

/* Builds `source` as a program called `name` (for tests and generated code); the caller
 * releases *out. Errors as for clcl_context_kernel. */
clcl_status clcl_context_build_source(clcl_context *ctx, const char *name, const char *source,
                                      const char *options, cl_program *out);

/* How many programs this context has compiled (each (program, options) pair once). */
int clcl_context_builds(const clcl_context *ctx);

/* The largest work-group `kernel` may use here: the smaller of CL_KERNEL_WORK_GROUP_SIZE
 * and the device's (capped) maximum. */
clcl_status clcl_kernel_max_work_group(clcl_context *ctx, cl_kernel kernel, size_t *out);

/* ---- kernel arguments, set through a helper that counts ------------------------------ */

typedef struct {
    size_t size;
    const void *value; /* NULL with a size: local memory of that many bytes */
} clcl_arg;

#define CLCL_ARG_MEM(m)       ((clcl_arg){sizeof(cl_mem), &(cl_mem){(m)}})
#define CLCL_ARG_INT(x)       ((clcl_arg){sizeof(cl_int), &(cl_int){(x)}})
#define CLCL_ARG_UINT(x)      ((clcl_arg){sizeof(cl_uint), &(cl_uint){(x)}})
#define CLCL_ARG_FLOAT(x)     ((clcl_arg){sizeof(cl_float), &(cl_float){(x)}})
#define CLCL_ARG_LOCAL(bytes) ((clcl_arg){(bytes), NULL})

clcl_status clcl_kernel_set_args_array(cl_kernel kernel, const clcl_arg *args, int count);

/* clcl_kernel_args(k, CLCL_ARG_MEM(x), CLCL_ARG_INT(n)) sets arguments 0, 1, ... in order
 * and checks that their number is the kernel's. */
#define clcl_kernel_args(kernel, ...)                                                              \
    clcl_kernel_set_args_array((kernel), (const clcl_arg[]){__VA_ARGS__},                          \
                               (int)(sizeof((clcl_arg[]){__VA_ARGS__}) / sizeof(clcl_arg)))

/* Enqueues `kernel` over `global` work-items (each dimension rounded up to a multiple of
 * `local`; local NULL lets the driver choose). */
clcl_status clcl_launch(clcl_context *ctx, cl_kernel kernel, cl_uint dims, const size_t *global,
                        const size_t *local);

/* Waits for everything enqueued on the context's queue. */
clcl_status clcl_finish(clcl_context *ctx);

#endif
