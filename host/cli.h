/* The subcommands of the `clcl` tool. Each takes the arguments after its name and returns
 * the process exit status: 0 on success, 1 when the work failed, 2 for bad usage. */
#ifndef CLCL_CLI_H
#define CLCL_CLI_H

int clcl_cmd_devices(int argc, char **argv);
int clcl_cmd_train(int argc, char **argv);
int clcl_cmd_eval(int argc, char **argv);
int clcl_cmd_augment(int argc, char **argv);
int clcl_cmd_check(int argc, char **argv);
int clcl_cmd_tune(int argc, char **argv);

/* Prints "clcl WHAT: <message>" from clcl_last_error() to stderr and returns the exit status: 2
 * when the failure was a bad argument (CLCL_ERR_ARGUMENT: a flag whose value the work found
 * wrong, such as a --subset larger than the dataset), else 1. */
int clcl_cli_report(const char *what);

/* Prints "clcl CMD: <message>" to stderr and returns 2, the exit status of bad usage. */
int clcl_cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 1 when path names a directory (it ends in '/' or is one), so cannot be a file to write. */
int clcl_cli_names_directory(const char *path);

#endif
