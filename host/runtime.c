/* Devices, the context, program builds and kernel launches. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "clcl/log.h"
#include "clcl/runtime.h"
#include "embedded.h"

#define MAX_PLATFORMS            16
#define MAX_DEVICES_PER_PLATFORM 64

typedef struct {
    char *program; /* embedded program name */
    char *options; /* as the caller gave them (without -cl-std) */
    cl_program handle;
} built_program;

typedef struct {
    int program; /* index into built */
    char *name;
    cl_kernel handle;
} cached_kernel;

struct clcl_context {
    clcl_device_info device;
    cl_context context;
    cl_command_queue queue;
    cl_command_queue transfer; /* a second in-order queue for uploads that overlap compute */
    built_program *built;
    int n_built;
    cached_kernel *kernels;
    int n_kernels;
    /* CLCL_PROFILE: per-kernel device time, printed when the context is freed */
    struct profile_entry *profile;
    int n_profile, cap_profile;
};

typedef struct profile_entry {
    char name[128];
    size_t global[3]; /* the launch's (rounded) global size, to tell shapes apart */
    long calls;
    double ns;
} profile_entry;

static void kernel_name(cl_kernel kernel, char *buf, size_t size);

/* ---- devices ---------------------------------------------------------------------------- */

static void device_string(cl_device_id dev, cl_device_info what, char *buf, size_t size) {
    buf[0] = '\0';
    if (clGetDeviceInfo(dev, what, size, buf, NULL) != CL_SUCCESS)
        snprintf(buf, size, "?");
}

static int has_extension(cl_device_id dev, const char *ext) {
    size_t size = 0;
    int found = 0;
    if (clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, 0, NULL, &size) != CL_SUCCESS || !size)
        return 0;
    char *all = malloc(size + 1);
    if (all && clGetDeviceInfo(dev, CL_DEVICE_EXTENSIONS, size, all, NULL) == CL_SUCCESS) {
        all[size] = '\0';
        found = strstr(all, ext) != NULL;
    }
    free(all);
    return found;
}

static clcl_status describe_device(cl_platform_id platform, cl_device_id dev, clcl_device_info *d) {
    memset(d, 0, sizeof *d);
    d->platform_id = platform;
    d->device_id = dev;
    clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof d->platform, d->platform, NULL);
    device_string(dev, CL_DEVICE_NAME, d->name, sizeof d->name);
    device_string(dev, CL_DEVICE_VENDOR, d->vendor, sizeof d->vendor);
    device_string(dev, CL_DRIVER_VERSION, d->driver_version, sizeof d->driver_version);
    device_string(dev, CL_DEVICE_VERSION, d->device_version, sizeof d->device_version);
    device_string(dev, CL_DEVICE_OPENCL_C_VERSION, d->opencl_c_version, sizeof d->opencl_c_version);
    CLCL_TRY_CL(clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof d->type, &d->type, NULL));
    CLCL_TRY_CL(clGetDeviceInfo(dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof d->compute_units,
                                &d->compute_units, NULL));
    CLCL_TRY_CL(clGetDeviceInfo(dev, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof d->clock_mhz,
                                &d->clock_mhz, NULL));
    CLCL_TRY_CL(clGetDeviceInfo(dev, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof d->global_mem,
                                &d->global_mem, NULL));
    CLCL_TRY_CL(clGetDeviceInfo(dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof d->max_alloc,
                                &d->max_alloc, NULL));
    CLCL_TRY_CL(
        clGetDeviceInfo(dev, CL_DEVICE_LOCAL_MEM_SIZE, sizeof d->local_mem, &d->local_mem, NULL));
    CLCL_TRY_CL(clGetDeviceInfo(dev, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof d->max_work_group,
                                &d->max_work_group, NULL));
    CLCL_TRY_CL(clGetDeviceInfo(dev, CL_DEVICE_MEM_BASE_ADDR_ALIGN, sizeof d->base_addr_align_bits,
                                &d->base_addr_align_bits, NULL));
    d->has_fp16 = has_extension(dev, "cl_khr_fp16");
    d->has_fp64 = has_extension(dev, "cl_khr_fp64");
    return CLCL_OK;
}

static clcl_status no_platform(cl_int err) {
    return clcl_fail(CLCL_ERR_NO_DEVICE,
                     "no OpenCL platform found (clGetPlatformIDs: %s). Install an OpenCL "
                     "driver (ICD): pocl-opencl-icd for CPUs, mesa-opencl-icd or the "
                     "vendor's driver for GPUs; `clinfo -l` should then list it",
                     clcl_status_name(err));
}

clcl_status clcl_devices_list(clcl_device_info **devices, int *count) {
    cl_platform_id platforms[MAX_PLATFORMS];
    cl_uint n_platforms = 0;
    clcl_device_info *list = NULL;
    int n = 0;

    *devices = NULL;
    *count = 0;
    cl_int err = clGetPlatformIDs(MAX_PLATFORMS, platforms, &n_platforms);
    if (err != CL_SUCCESS || n_platforms == 0)
        return no_platform(err);

    for (cl_uint p = 0; p < n_platforms; p++) {
        cl_device_id ids[MAX_DEVICES_PER_PLATFORM];
        cl_uint n_ids = 0;
        if (clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES_PER_PLATFORM, ids,
                           &n_ids) != CL_SUCCESS)
            continue; /* a platform without devices is not an error */
        clcl_device_info *grown = realloc(list, (n + n_ids) * sizeof *list);
        if (!grown) {
            free(list);
            return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory listing devices");
        }
        list = grown;
        for (cl_uint i = 0; i < n_ids; i++) {
            clcl_status st = describe_device(platforms[p], ids[i], &list[n]);
            if (st != CLCL_OK) {
                free(list);
                return st;
            }
            list[n].index = n;
            list[n].platform_index = (int)p;
            n++;
        }
    }
    if (n == 0) {
        free(list);
        return clcl_fail(CLCL_ERR_NO_DEVICE, "OpenCL platforms exist but none has a device; "
                                             "check the driver with `clinfo`");
    }
    *devices = list;
    *count = n;
    return CLCL_OK;
}

const char *clcl_device_type_name(cl_device_type type) {
    if (type & CL_DEVICE_TYPE_GPU)
        return "GPU";
    if (type & CL_DEVICE_TYPE_CPU)
        return "CPU";
    if (type & CL_DEVICE_TYPE_ACCELERATOR)
        return "ACCELERATOR";
    return "OTHER";
}

static int contains_nocase(const char *haystack, const char *needle) {
    size_t n = strlen(needle);
    for (; *haystack; haystack++) {
        size_t i = 0;
        while (i < n && haystack[i] &&
               tolower((unsigned char)haystack[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return 1;
    }
    return n == 0;
}

static int matches(const clcl_device_info *d, const char *choice) {
    char *end;
    long idx = strtol(choice, &end, 10);
    if (*end == '\0' && end != choice)
        return d->index == idx;
    if (strcasecmp(choice, "cpu") == 0)
        return (d->type & CL_DEVICE_TYPE_CPU) != 0;
    if (strcasecmp(choice, "gpu") == 0)
        return (d->type & CL_DEVICE_TYPE_GPU) != 0;
    return contains_nocase(d->name, choice) || contains_nocase(d->platform, choice);
}

clcl_status clcl_device_choose(const clcl_device_info *devices, int count, const char *choice,
                               int *index) {
    const char *source = "--device";
    if (!choice || !*choice) {
        choice = getenv("CLCL_DEVICE");
        source = "CLCL_DEVICE";
    }
    if (!choice || !*choice) {
        *index = 0;
        return count > 0 ? CLCL_OK : clcl_fail(CLCL_ERR_NO_DEVICE, "no OpenCL device");
    }
    for (int i = 0; i < count; i++) {
        if (matches(&devices[i], choice)) {
            *index = i;
            return CLCL_OK;
        }
    }

    char list[2048] = "";
    size_t used = 0;
    for (int i = 0; i < count && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "\n  %d: %s (%s, %s)", i,
                                 devices[i].name, devices[i].platform,
                                 clcl_device_type_name(devices[i].type));
    return clcl_fail(CLCL_ERR_ARGUMENT,
                     "%s '%s' matches no device; expected an index, 'cpu', 'gpu' or part of "
                     "a device name. The devices are:%s",
                     source, choice, list);
}

/* ---- the context --------------------------------------------------------------------- */

/* CLCL_MAX_LOCAL_MEM and CLCL_MAX_WORK_GROUP make a device look smaller than it is. */
static void apply_limit_overrides(clcl_device_info *d) {
    const char *env = getenv("CLCL_MAX_LOCAL_MEM");
    if (env && *env) {
        unsigned long long cap = strtoull(env, NULL, 10);
        if (cap > 0 && cap < d->local_mem)
            d->local_mem = cap;
    }
    env = getenv("CLCL_MAX_WORK_GROUP");
    if (env && *env) {
        unsigned long long cap = strtoull(env, NULL, 10);
        if (cap > 0 && cap < d->max_work_group)
            d->max_work_group = (size_t)cap;
    }
}

clcl_status clcl_context_create(const char *choice, clcl_context **out) {
    clcl_device_info *devices;
    int count, index;
    cl_int err;

    *out = NULL;
    CLCL_TRY(clcl_devices_list(&devices, &count));
    clcl_status st = clcl_device_choose(devices, count, choice, &index);
    if (st != CLCL_OK) {
        free(devices);
        return st;
    }
    clcl_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        free(devices);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory creating a context");
    }
    ctx->device = devices[index];
    free(devices);
    apply_limit_overrides(&ctx->device);

    cl_context_properties props[] = {CL_CONTEXT_PLATFORM,
                                     (cl_context_properties)ctx->device.platform_id, 0};
    ctx->context = clCreateContext(props, 1, &ctx->device.device_id, NULL, NULL, &err);
    if (err != CL_SUCCESS) {
        st = clcl_fail(err, "%s:%d: clCreateContext on '%s': %s", __FILE__, __LINE__,
                       ctx->device.name, clcl_status_name(err));
        free(ctx);
        return st;
    }
    const char *profile = getenv("CLCL_PROFILE");
    cl_command_queue_properties qprops =
        profile && *profile && strcmp(profile, "0") ? CL_QUEUE_PROFILING_ENABLE : 0;
    ctx->queue = clCreateCommandQueue(ctx->context, ctx->device.device_id, qprops, &err);
    ctx->cap_profile = qprops ? -1 : 0; /* -1: profiling on, table not yet allocated */
    if (err != CL_SUCCESS) {
        clReleaseContext(ctx->context);
        free(ctx);
        return clcl_fail(err, "%s:%d: clCreateCommandQueue: %s", __FILE__, __LINE__,
                         clcl_status_name(err));
    }
    ctx->transfer = clCreateCommandQueue(ctx->context, ctx->device.device_id, 0, &err);
    if (err != CL_SUCCESS) {
        clReleaseCommandQueue(ctx->queue);
        clReleaseContext(ctx->context);
        free(ctx);
        return clcl_fail(err, "%s:%d: clCreateCommandQueue (transfers): %s", __FILE__, __LINE__,
                         clcl_status_name(err));
    }
    CLCL_LOG_DEBUG("runtime", "device %d: %s (%s)", ctx->device.index, ctx->device.name,
                   ctx->device.platform);
    *out = ctx;
    return CLCL_OK;
}

static int profile_by_time(const void *a, const void *b) {
    double x = ((const profile_entry *)a)->ns, y = ((const profile_entry *)b)->ns;
    return (x < y) - (x > y);
}

/* The table CLCL_PROFILE collected: kernels by total device time, each with its launch size. */
static void profile_print(clcl_context *ctx) {
    double total = 0;
    for (int i = 0; i < ctx->n_profile; i++)
        total += ctx->profile[i].ns;
    qsort(ctx->profile, ctx->n_profile, sizeof *ctx->profile, profile_by_time);
    fprintf(stderr, "CLCL_PROFILE: %.1f ms of kernel time on '%s' (CLBlast not included)\n",
            total * 1e-6, ctx->device.name);
    fprintf(stderr, "%10s %6s %8s %20s  %s\n", "ms", "share", "calls", "global size", "kernel");
    for (int i = 0; i < ctx->n_profile; i++) {
        const profile_entry *e = &ctx->profile[i];
        char size[64];
        snprintf(size, sizeof size, "%zux%zux%zu", e->global[0], e->global[1], e->global[2]);
        fprintf(stderr, "%10.2f %5.1f%% %8ld %20s  %s\n", e->ns * 1e-6,
                total > 0 ? 100 * e->ns / total : 0, e->calls, size, e->name);
    }
}

static void profile_add(clcl_context *ctx, cl_kernel kernel, const size_t *global, cl_event ev) {
    cl_ulong t0 = 0, t1 = 0;
    char name[128];
    if (clWaitForEvents(1, &ev) != CL_SUCCESS ||
        clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL) !=
            CL_SUCCESS ||
        clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL) != CL_SUCCESS)
        return;
    kernel_name(kernel, name, sizeof name);
    for (int i = 0; i < ctx->n_profile; i++) {
        profile_entry *e = &ctx->profile[i];
        if (!memcmp(e->global, global, sizeof e->global) && strcmp(e->name, name) == 0) {
            e->calls++;
            e->ns += (double)(t1 - t0);
            return;
        }
    }
    if (ctx->n_profile >= ctx->cap_profile) {
        int cap = ctx->cap_profile > 0 ? 2 * ctx->cap_profile : 64;
        profile_entry *grown = realloc(ctx->profile, cap * sizeof *grown);
        if (!grown)
            return;
        ctx->profile = grown;
        ctx->cap_profile = cap;
    }
    profile_entry *e = &ctx->profile[ctx->n_profile++];
    snprintf(e->name, sizeof e->name, "%s", name);
    memcpy(e->global, global, sizeof e->global);
    e->calls = 1;
    e->ns = (double)(t1 - t0);
}

void clcl_context_free(clcl_context *ctx) {
    if (!ctx)
        return;
    if (ctx->transfer)
        clFinish(ctx->transfer);
    if (ctx->queue)
        clFinish(ctx->queue);
    if (ctx->cap_profile) {
        profile_print(ctx);
        free(ctx->profile);
    }
    for (int i = 0; i < ctx->n_kernels; i++) {
        clReleaseKernel(ctx->kernels[i].handle);
        free(ctx->kernels[i].name);
    }
    for (int i = 0; i < ctx->n_built; i++) {
        clReleaseProgram(ctx->built[i].handle);
        free(ctx->built[i].program);
        free(ctx->built[i].options);
    }
    free(ctx->kernels);
    free(ctx->built);
    if (ctx->transfer)
        clReleaseCommandQueue(ctx->transfer);
    if (ctx->queue)
        clReleaseCommandQueue(ctx->queue);
    if (ctx->context)
        clReleaseContext(ctx->context);
    free(ctx);
}

const clcl_device_info *clcl_context_device(const clcl_context *ctx) {
    return &ctx->device;
}

cl_context clcl_context_cl(const clcl_context *ctx) {
    return ctx->context;
}

cl_command_queue clcl_context_queue(const clcl_context *ctx) {
    return ctx->queue;
}

cl_command_queue clcl_context_transfer_queue(const clcl_context *ctx) {
    return ctx->transfer;
}

int clcl_context_builds(const clcl_context *ctx) {
    return ctx->n_built;
}

/* ---- programs ------------------------------------------------------------------------ */

static clcl_status build_failure(clcl_context *ctx, cl_program program, const char *name,
                                 const char *options, cl_int err) {
    size_t size = 0;
    char *log = NULL;
    clGetProgramBuildInfo(program, ctx->device.device_id, CL_PROGRAM_BUILD_LOG, 0, NULL, &size);
    if (size > 0 && (log = malloc(size + 1)) != NULL) {
        clGetProgramBuildInfo(program, ctx->device.device_id, CL_PROGRAM_BUILD_LOG, size, log,
                              NULL);
        log[size] = '\0';
    }
    clcl_status st =
        clcl_fail(CLCL_ERR_BUILD,
                  "building OpenCL program '%s' for '%s' failed (%s)\n"
                  "options: %s\nbuild log:\n%s",
                  name, ctx->device.name, clcl_status_name(err), options, log ? log : "(empty)");
    free(log);
    return st;
}

clcl_status clcl_context_build_source(clcl_context *ctx, const char *name, const char *source,
                                      const char *options, cl_program *out) {
    char full[4096];
    cl_int err;

    snprintf(full, sizeof full, "-cl-std=CL1.2 %s", options ? options : "");
    cl_program program = clCreateProgramWithSource(ctx->context, 1, &source, NULL, &err);
    if (err != CL_SUCCESS)
        return clcl_fail(err, "%s:%d: clCreateProgramWithSource('%s'): %s", __FILE__, __LINE__,
                         name, clcl_status_name(err));
    err = clBuildProgram(program, 1, &ctx->device.device_id, full, NULL, NULL);
    if (err != CL_SUCCESS) {
        clcl_status st = build_failure(ctx, program, name, full, err);
        clReleaseProgram(program);
        return st;
    }
    CLCL_LOG_DEBUG("runtime", "built program '%s' with '%s'", name, full);
    *out = program;
    return CLCL_OK;
}

static const char *embedded_source(const char *program) {
    for (const struct clcl_embedded_program *p = clcl_embedded_programs; p->name; p++)
        if (strcmp(p->name, program) == 0)
            return p->source;
    return NULL;
}

static clcl_status find_or_build(clcl_context *ctx, const char *program, const char *options,
                                 int *index) {
    for (int i = 0; i < ctx->n_built; i++) {
        if (strcmp(ctx->built[i].program, program) == 0 &&
            strcmp(ctx->built[i].options, options) == 0) {
            *index = i;
            return CLCL_OK;
        }
    }
    const char *source = embedded_source(program);
    if (!source)
        return clcl_fail(CLCL_ERR_ARGUMENT, "no OpenCL program '%s' is embedded (cl/%s.cl)",
                         program, program);
    built_program *grown = realloc(ctx->built, (ctx->n_built + 1) * sizeof *grown);
    if (!grown)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory");
    ctx->built = grown;

    cl_program handle;
    CLCL_TRY(clcl_context_build_source(ctx, program, source, options, &handle));
    built_program *b = &ctx->built[ctx->n_built];
    b->program = strdup(program);
    b->options = strdup(options);
    b->handle = handle;
    *index = ctx->n_built++;
    return CLCL_OK;
}

clcl_status clcl_context_kernel(clcl_context *ctx, const char *program, const char *kernel,
                                const char *options, cl_kernel *out) {
    int prog = -1;
    cl_int err;

    CLCL_TRY(find_or_build(ctx, program, options ? options : "", &prog));
    for (int i = 0; i < ctx->n_kernels; i++) {
        if (ctx->kernels[i].program == prog && strcmp(ctx->kernels[i].name, kernel) == 0) {
            *out = ctx->kernels[i].handle;
            return CLCL_OK;
        }
    }
    cl_kernel handle = clCreateKernel(ctx->built[prog].handle, kernel, &err);
    if (err != CL_SUCCESS)
        return clcl_fail(err, "%s:%d: clCreateKernel('%s' in program '%s'): %s", __FILE__, __LINE__,
                         kernel, program, clcl_status_name(err));
    cached_kernel *grown = realloc(ctx->kernels, (ctx->n_kernels + 1) * sizeof *grown);
    if (!grown) {
        clReleaseKernel(handle);
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory");
    }
    ctx->kernels = grown;
    ctx->kernels[ctx->n_kernels] = (cached_kernel){prog, strdup(kernel), handle};
    ctx->n_kernels++;
    *out = handle;
    return CLCL_OK;
}

clcl_status clcl_kernel_max_work_group(clcl_context *ctx, cl_kernel kernel, size_t *out) {
    size_t wg = 0;
    CLCL_TRY_CL(clGetKernelWorkGroupInfo(kernel, ctx->device.device_id, CL_KERNEL_WORK_GROUP_SIZE,
                                         sizeof wg, &wg, NULL));
    *out = wg < ctx->device.max_work_group ? wg : ctx->device.max_work_group;
    return CLCL_OK;
}

/* ---- arguments and launches ---------------------------------------------------------- */

static void kernel_name(cl_kernel kernel, char *buf, size_t size) {
    if (clGetKernelInfo(kernel, CL_KERNEL_FUNCTION_NAME, size, buf, NULL) != CL_SUCCESS)
        snprintf(buf, size, "?");
}

clcl_status clcl_kernel_set_args_array(cl_kernel kernel, const clcl_arg *args, int count) {
    char name[128];
    cl_uint expected = 0;

    CLCL_TRY_CL(clGetKernelInfo(kernel, CL_KERNEL_NUM_ARGS, sizeof expected, &expected, NULL));
    if ((cl_uint)count != expected) {
        kernel_name(kernel, name, sizeof name);
        return clcl_fail(CLCL_ERR_ARGUMENT, "kernel '%s' takes %u arguments, %d were given", name,
                         expected, count);
    }
    for (int i = 0; i < count; i++) {
        cl_int err = clSetKernelArg(kernel, (cl_uint)i, args[i].size, args[i].value);
        if (err != CL_SUCCESS) {
            kernel_name(kernel, name, sizeof name);
            return clcl_fail(err, "clSetKernelArg('%s', argument %d, %zu bytes): %s", name, i,
                             args[i].size, clcl_status_name(err));
        }
    }
    return CLCL_OK;
}

clcl_status clcl_launch(clcl_context *ctx, cl_kernel kernel, cl_uint dims, const size_t *global,
                        const size_t *local) {
    size_t rounded[3];
    char name[128];

    if (dims < 1 || dims > 3)
        return clcl_fail(CLCL_ERR_ARGUMENT, "clcl_launch: %u dimensions, expected 1 to 3", dims);

    /* a work-group beyond the (capped) device limit fails here, as it would on a GPU */
    size_t group = 1;
    for (cl_uint i = 0; local && i < dims; i++)
        group *= local[i];
    if (group > ctx->device.max_work_group) {
        kernel_name(kernel, name, sizeof name);
        return clcl_fail(CL_INVALID_WORK_GROUP_SIZE,
                         "kernel '%s': a work-group of %zu work-items, more than the %zu '%s' "
                         "allows (CLCL_MAX_WORK_GROUP caps it)",
                         name, group, ctx->device.max_work_group, ctx->device.name);
    }
    for (cl_uint i = 0; i < dims; i++) {
        size_t l = local ? local[i] : 1;
        if (global[i] == 0)
            return CLCL_OK; /* nothing to do */
        rounded[i] = (global[i] + l - 1) / l * l;
    }
    cl_event ev = NULL;
    cl_int err = clEnqueueNDRangeKernel(ctx->queue, kernel, dims, NULL, rounded, local, 0, NULL,
                                        ctx->cap_profile ? &ev : NULL);
    if (ev) {
        size_t shape[3] = {rounded[0], dims > 1 ? rounded[1] : 1, dims > 2 ? rounded[2] : 1};
        profile_add(ctx, kernel, shape, ev); /* waits: profiling serialises the launches */
        clReleaseEvent(ev);
    }
    if (err != CL_SUCCESS) {
        kernel_name(kernel, name, sizeof name);
        return clcl_fail(err,
                         "%s:%d: clEnqueueNDRangeKernel('%s', global %zu x %zu x %zu, "
                         "local %zu x %zu x %zu): %s",
                         __FILE__, __LINE__, name, rounded[0], dims > 1 ? rounded[1] : 1,
                         dims > 2 ? rounded[2] : 1, local ? local[0] : 0,
                         local && dims > 1 ? local[1] : 0, local && dims > 2 ? local[2] : 0,
                         clcl_status_name(err));
    }
    return CLCL_OK;
}

clcl_status clcl_finish(clcl_context *ctx) {
    CLCL_TRY_CL(clFinish(ctx->queue));
    return CLCL_OK;
}
