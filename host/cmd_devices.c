/* `clcl devices`: every OpenCL platform and device with the limits clcl cares about. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "clcl/runtime.h"

int clcl_cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "clcl %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

int clcl_cli_names_directory(const char *path) {
    struct stat sb;
    size_t n = strlen(path);
    return (n > 0 && path[n - 1] == '/') || (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode));
}

int clcl_cli_report(const char *what) {
    fprintf(stderr, "clcl %s: %s\n", what, clcl_last_error());
    return clcl_last_status() == CLCL_ERR_ARGUMENT ? 2 : 1;
}

static void print_device(const clcl_device_info *d, int chosen) {
    printf("%c %d: %s\n", chosen ? '*' : ' ', d->index, d->name);
    printf("      platform       %s (platform %d)\n", d->platform, d->platform_index);
    printf("      vendor         %s\n", d->vendor);
    printf("      type           %s\n", clcl_device_type_name(d->type));
    printf("      version        %s; driver %s; %s\n", d->device_version, d->driver_version,
           d->opencl_c_version);
    printf("      compute units  %u at %u MHz\n", d->compute_units, d->clock_mhz);
    printf("      global memory  %.1f MiB, max allocation %.1f MiB\n", d->global_mem / 1048576.0,
           d->max_alloc / 1048576.0);
    printf("      local memory   %llu KiB\n", (unsigned long long)(d->local_mem / 1024));
    printf("      work-group     up to %zu work-items\n", d->max_work_group);
    printf("      base alignment %u bits\n", d->base_addr_align_bits);
    printf("      fp16 %s, fp64 %s\n", d->has_fp16 ? "yes" : "no", d->has_fp64 ? "yes" : "no");
}

int clcl_cmd_devices(int argc, char **argv) {
    clcl_device_info *devices;
    int count, chosen = -1;
    const char *choice = NULL;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: clcl devices [--device D]\n\n"
                   "Lists every OpenCL platform and device. The device that --device D\n"
                   "(or $CLCL_DEVICE) chooses is marked with '*'. D is an index, 'cpu',\n"
                   "'gpu' or part of a device or platform name.\n");
            return 0;
        } else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc) {
            choice = argv[++i];
        } else {
            fprintf(stderr,
                    "clcl devices: unknown argument '%s'; expected --device D or "
                    "--help\n",
                    argv[i]);
            return 2;
        }
    }
    if (clcl_devices_list(&devices, &count) != CLCL_OK)
        return clcl_cli_report("devices");
    if (clcl_device_choose(devices, count, choice, &chosen) != CLCL_OK) {
        free(devices);
        return clcl_cli_report("devices");
    }
    for (int i = 0; i < count; i++)
        print_device(&devices[i], i == chosen);
    free(devices);
    return 0;
}
