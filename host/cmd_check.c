/* `clcl check`: runs the same seeded work on every OpenCL device (or those named) and
 * compares the results with C references and between devices (docs/devices.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clcl/check.h"

static void check_usage(FILE *out) {
    fprintf(out,
            "usage: clcl check [--device D ...] [--json FILE] [--only TEXT]\n\n"
            "Runs every kernel family on small, awkward shapes and one full ResNet-18 training\n"
            "step on each OpenCL device, compares the results with double-precision C\n"
            "references and the step between devices, and prints a table per device.\n"
            "Exit status 0 only when every check on every device passes.\n\n"
            "  --device D   check this device only (repeatable): an index, 'cpu', 'gpu' or\n"
            "               part of a device or platform name; default: every device\n"
            "  --json FILE  also write the report as JSON to FILE\n"
            "  --only TEXT  run only the checks whose name contains TEXT\n\n"
            "CLCL_MAX_LOCAL_MEM and CLCL_MAX_WORK_GROUP make a device look smaller;\n"
            "CLCL_CHECK_BREAK=relu breaks one kernel on purpose (to test the check).\n");
}

/* The value of flag argv[*i] (advancing *i), or NULL after printing the error. */
static const char *flag_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc || argv[*i + 1][0] == '\0') {
        fprintf(stderr, "clcl check: %s needs a value; see clcl check --help\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

/* Parses the flags into cfg and *json; 0 when parsed, 1 after --help, 2 after an error. */
static int parse(int argc, char **argv, clcl_check_config *cfg, const char **devices,
                 const char **json) {
    for (int i = 0; i < argc; i++) {
        const char *flag = argv[i], *value;
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            check_usage(stdout);
            return 1;
        }
        if (strcmp(flag, "--device") && strcmp(flag, "--json") && strcmp(flag, "--only")) {
            fprintf(stderr, "clcl check: unknown argument '%s'; see clcl check --help\n", flag);
            return 2;
        }
        if (!(value = flag_value(argc, argv, &i)))
            return 2;
        if (strcmp(flag, "--device") == 0)
            devices[cfg->n_devices++] = value;
        else if (strcmp(flag, "--json") == 0)
            *json = value;
        else
            cfg->only = value;
    }
    return 0;
}

int clcl_cmd_check(int argc, char **argv) {
    const char **devices = calloc((size_t)argc + 1, sizeof *devices);
    clcl_check_config cfg = {.devices = devices, .out = stdout};
    const char *json = NULL;
    clcl_check_report *report;

    if (!devices) {
        fprintf(stderr, "clcl check: out of host memory\n");
        return 1;
    }
    int parsed = parse(argc, argv, &cfg, devices, &json);
    if (parsed == 0 && json && clcl_cli_names_directory(json)) {
        parsed =
            clcl_cli_usage("check", "--json %s is a directory; expected the file to write", json);
    }
    if (parsed != 0) {
        free(devices);
        return parsed == 1 ? 0 : 2;
    }
    clcl_status st = clcl_check_run(&cfg, &report);
    free(devices);
    if (st != CLCL_OK)
        return clcl_cli_report("check");

    int code = clcl_check_passed(report) ? 0 : 1;
    if (json && clcl_check_write_json(report, json) != CLCL_OK)
        code = clcl_cli_report("check --json");
    else if (json)
        printf("report written to %s\n", json);
    clcl_check_report_free(report);
    return code;
}
