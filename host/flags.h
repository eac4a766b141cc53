/* Command-line flags for the subcommands: a table of --name VALUE options whose current
 * values are the defaults that --help prints. */
#ifndef CLCL_FLAGS_H
#define CLCL_FLAGS_H

#include <stdio.h>

typedef enum {
    CLCL_FLAG_INT,    /* value: int * */
    CLCL_FLAG_UINT64, /* value: unsigned long long * */
    CLCL_FLAG_DOUBLE, /* value: double * */
    CLCL_FLAG_STRING, /* value: const char ** (points into argv) */
    CLCL_FLAG_CHOICE, /* value: const char **, one of `choices` ("sgd|lars") */
    CLCL_FLAG_SWITCH  /* value: int *, set to 1 by the bare flag */
} clcl_flag_type;

typedef struct {
    const char *name; /* without the dashes: "batch-size" */
    clcl_flag_type type;
    void *value;
    const char *help;
    const char *choices; /* CLCL_FLAG_CHOICE only */
    int given;           /* set by clcl_flags_parse when the flag was on the command line */
} clcl_flag;

/* Parses argv into the table. Returns 0 when parsed, 1 when --help was printed (exit 0),
 * 2 after printing an error that names the flag and what was expected (exit 2). */
int clcl_flags_parse(const char *command, clcl_flag *flags, int n_flags, int argc, char **argv);

/* "usage: clcl COMMAND [flags]", the summary, then each flag with its default. */
void clcl_flags_usage(FILE *out, const char *command, const char *summary, const clcl_flag *flags,
                      int n_flags);

/* The flag called `name` in the table, or NULL. */
const clcl_flag *clcl_flags_find(const clcl_flag *flags, int n_flags, const char *name);

#endif
