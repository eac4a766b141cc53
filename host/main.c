/* The `clcl` command-line tool: dispatches to the subcommands of cli.h. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"devices", clcl_cmd_devices, "list OpenCL platforms and devices"},
    {"train", clcl_cmd_train, "pre-train a ResNet contrastively"},
    {"eval", clcl_cmd_eval, "kNN monitor and linear probe of a trained backbone"},
    {"augment", clcl_cmd_augment, "PNG grid of dataset images and their two augmented views"},
    {"check", clcl_cmd_check, "compare every kernel and a training step across devices"},
    {"tune", clcl_cmd_tune, "measure GEMM backends and tunables at a model's shapes"},
};

static int usage(FILE *out) {
    fprintf(out, "usage: clcl COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-10s %s\n", "help", "this list; `clcl COMMAND --help` for one command");
    return out == stdout ? 0 : 2;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return usage(stderr);
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0)
        return usage(stdout);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "clcl: unknown command '%s'\n", argv[1]);
    return usage(stderr);
}
