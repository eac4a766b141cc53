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

/* Prints "clcl: <message>" from clcl_last_error() to stderr and returns 1. */
int clcl_cli_report(const char *what);

#endif
