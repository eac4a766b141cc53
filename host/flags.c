/* Command-line flags for the subcommands. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flags.h"

const clcl_flag *clcl_flags_find(const clcl_flag *flags, int n_flags, const char *name) {
    for (int i = 0; i < n_flags; i++)
        if (strcmp(flags[i].name, name) == 0)
            return &flags[i];
    return NULL;
}

static const char *type_word(const clcl_flag *f) {
    switch (f->type) {
        case CLCL_FLAG_INT:
            return "an integer";
        case CLCL_FLAG_UINT64:
            return "a non-negative integer";
        case CLCL_FLAG_DOUBLE:
            return "a number";
        case CLCL_FLAG_CHOICE:
            return f->choices;
        default:
            return "a value";
    }
}

static void print_default(FILE *out, const clcl_flag *f) {
    switch (f->type) {
        case CLCL_FLAG_INT:
            fprintf(out, " (default %d)", *(int *)f->value);
            break;
        case CLCL_FLAG_UINT64:
            fprintf(out, " (default %llu)", *(unsigned long long *)f->value);
            break;
        case CLCL_FLAG_DOUBLE:
            fprintf(out, " (default %g)", *(double *)f->value);
            break;
        case CLCL_FLAG_STRING:
        case CLCL_FLAG_CHOICE: {
            const char *s = *(const char **)f->value;
            if (s)
                fprintf(out, " (default %s)", *s ? s : "\"\"");
            break;
        }
        case CLCL_FLAG_SWITCH:
            break;
    }
}

void clcl_flags_usage(FILE *out, const char *command, const char *summary, const clcl_flag *flags,
                      int n_flags) {
    fprintf(out, "usage: clcl %s [flags]\n\n%s\n\nflags:\n", command, summary);
    for (int i = 0; i < n_flags; i++) {
        const clcl_flag *f = &flags[i];
        char left[64];
        if (f->type == CLCL_FLAG_SWITCH)
            snprintf(left, sizeof left, "--%s", f->name);
        else if (f->type == CLCL_FLAG_CHOICE)
            snprintf(left, sizeof left, "--%s %s", f->name, f->choices);
        else
            snprintf(left, sizeof left, "--%s V", f->name);
        fprintf(out, "  %-26s %s", left, f->help);
        print_default(out, f);
        fputc('\n', out);
    }
    fprintf(out, "  %-26s %s\n", "--help", "this text");
}

static int in_choices(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return 1;
        if (!bar)
            break;
        p = bar + 1;
    }
    return 0;
}

/* Stores text into the flag; 0 on success, 1 for a number out of the type's range, -1 for
 * text of the wrong form. */
static int store(clcl_flag *f, const char *text) {
    char *end;
    errno = 0;
    switch (f->type) {
        case CLCL_FLAG_INT: {
            long v = strtol(text, &end, 10);
            if (*text == '\0' || *end)
                return -1;
            if (errno == ERANGE || v < -2147483647L || v > 2147483647L)
                return 1;
            *(int *)f->value = (int)v;
            return 0;
        }
        case CLCL_FLAG_UINT64: {
            if (*text == '-')
                return -1;
            unsigned long long v = strtoull(text, &end, 10);
            if (*text == '\0' || *end)
                return -1;
            if (errno == ERANGE)
                return 1;
            *(unsigned long long *)f->value = v;
            return 0;
        }
        case CLCL_FLAG_DOUBLE: {
            double v = strtod(text, &end);
            if (*text == '\0' || *end || isnan(v))
                return -1;
            if (!isfinite(v) || (errno == ERANGE && v != 0.0))
                return 1;
            *(double *)f->value = v;
            return 0;
        }
        case CLCL_FLAG_CHOICE:
            if (!in_choices(f->choices, text))
                return -1;
            *(const char **)f->value = text;
            return 0;
        case CLCL_FLAG_STRING:
            *(const char **)f->value = text;
            return 0;
        case CLCL_FLAG_SWITCH:
            return -1;
    }
    return -1;
}

int clcl_flags_parse(const char *command, clcl_flag *flags, int n_flags, int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return 1;
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr,
                    "clcl %s: unexpected argument '%s'; flags start with -- (see "
                    "`clcl %s --help`)\n",
                    command, arg, command);
            return 2;
        }
        /* --name=value or --name value */
        char name[64];
        const char *eq = strchr(arg + 2, '=');
        size_t len = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        snprintf(name, sizeof name, "%.*s", (int)len, arg + 2);
        clcl_flag *f = (clcl_flag *)clcl_flags_find(flags, n_flags, name);
        if (!f) {
            fprintf(stderr, "clcl %s: unknown flag '--%s' (see `clcl %s --help`)\n", command, name,
                    command);
            return 2;
        }
        if (f->type == CLCL_FLAG_SWITCH) {
            if (eq) {
                fprintf(stderr, "clcl %s: --%s takes no value\n", command, name);
                return 2;
            }
            *(int *)f->value = 1;
            f->given = 1;
            continue;
        }
        const char *text = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!text) {
            fprintf(stderr, "clcl %s: --%s needs %s\n", command, name, type_word(f));
            return 2;
        }
        int bad = store(f, text);
        if (bad) {
            fprintf(stderr, "clcl %s: --%s '%s': %s %s\n", command, name, text,
                    bad > 0 ? "out of range for" : "expected", type_word(f));
            return 2;
        }
        f->given = 1;
    }
    return 0;
}
