/* `clcl check`'s output: a table per device, the verdicts, and the same as JSON. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check_private.h"
#include "clcl/fileio.h"

static const char *result_name(clcl_check_result r) {
    return r == CLCL_CHECK_PASS ? "pass" : r == CLCL_CHECK_FAIL ? "FAIL" : "ERROR";
}

/* ---- tables ------------------------------------------------------------------------------ */

void check_print_header(FILE *out, const clcl_check_device *dev) {
    fprintf(out, "\n== device %d: %s (%s, %s) ==\n", dev->index, dev->name, dev->type,
            dev->platform);
    for (int i = 0; i < dev->n_adaptations; i++)
        fprintf(out, "   %s\n", dev->adaptations[i]);
    fprintf(out, "\n   %-38s %6s %9s %9s %6s %6s %-6s %8s\n", "check", "n", "max abs", "max rel",
            "atol", "rtol", "result", "ms");
}

/* The note under its row, indented 6 and wrapped at spaces to lines of at most 100. */
static void print_note(FILE *out, const char *note) {
    const int width = 94;
    while (*note) {
        int len = (int)strlen(note);
        if (len > width) {
            len = width;
            while (len > 0 && note[len] != ' ')
                len--;
            if (len == 0)
                len = width;
        }
        fprintf(out, "      %.*s\n", len, note);
        note += len;
        while (*note == ' ')
            note++;
    }
}

void check_print_row(FILE *out, const clcl_check_row *row) {
    if (row->result == CLCL_CHECK_ERROR && row->count == 0)
        fprintf(out, "   %-38.38s %6s %9s %9s %6s %6s %-6s %8.1f\n", row->name, "-", "-", "-", "-",
                "-", result_name(row->result), 1e3 * row->seconds);
    else
        fprintf(out, "   %-38.38s %6zu %9.2e %9.2e %6.0e %6.0e %-6s %8.1f\n", row->name, row->count,
                row->max_abs, row->max_rel, row->atol, row->rtol, result_name(row->result),
                1e3 * row->seconds);
    if (row->result == CLCL_CHECK_FAIL && isinf(row->worst_share))
        fprintf(out, "      worst: value %zu is %.9g, expected %.9g (tolerance 0: bit-exact)\n",
                row->worst, row->worst_got, row->worst_ref);
    else if (row->result == CLCL_CHECK_FAIL)
        fprintf(out, "      worst: value %zu is %.9g, expected %.9g (%.3g times its tolerance)\n",
                row->worst, row->worst_got, row->worst_ref, row->worst_share);
    print_note(out, row->note);
}

void check_print_device_verdict(FILE *out, const clcl_check_device *dev) {
    if (dev->tuning[0]) {
        fprintf(out, "   measured choices:\n");
        print_note(out, dev->tuning);
    }
    if (dev->failed == 0 && dev->n_rows > 0) {
        fprintf(out, "   verdict: device %d PASS, %d checks in %.1f s\n", dev->index, dev->n_rows,
                dev->seconds);
        return;
    }
    if (dev->n_rows == 0) {
        fprintf(out, "   verdict: device %d FAIL, no check ran (does --only match any?)\n",
                dev->index);
        return;
    }
    fprintf(out, "   verdict: device %d FAIL, %d of %d checks:", dev->index, dev->failed,
            dev->n_rows);
    for (int i = 0, shown = 0; i < dev->n_rows; i++) {
        if (dev->rows[i].result == CLCL_CHECK_PASS)
            continue;
        if (shown++ == 6) {
            fprintf(out, " ...");
            break;
        }
        fprintf(out, "%s %s", shown > 1 ? "," : "", dev->rows[i].name);
    }
    fprintf(out, " (%.1f s)\n", dev->seconds);
}

void clcl_check_print_device(FILE *out, const clcl_check_device *dev) {
    check_print_header(out, dev);
    for (int i = 0; i < dev->n_rows; i++)
        check_print_row(out, &dev->rows[i]);
    check_print_device_verdict(out, dev);
}

void clcl_check_print_verdict(FILE *out, const clcl_check_report *r) {
    if (clcl_check_passed(r)) {
        fprintf(out, "\nclcl check: PASS on %d device%s", r->n_devices,
                r->n_devices > 1 ? "s" : "");
        for (int i = 0; i < r->n_devices; i++)
            fprintf(out, "%s %d (%s)", i ? "," : ":", r->devices[i].index, r->devices[i].name);
        fprintf(out, "\n");
        return;
    }
    fprintf(out, "\nclcl check: FAIL on %d of %d device%s:", r->failed_devices, r->n_devices,
            r->n_devices > 1 ? "s" : "");
    for (int i = 0; i < r->n_devices; i++) {
        const clcl_check_device *d = &r->devices[i];
        if (d->n_rows == 0)
            fprintf(out, " %d (%s) ran no check;", d->index, d->name);
        else if (d->failed > 0)
            fprintf(out, " %d (%s) failed %d of %d checks;", d->index, d->name, d->failed,
                    d->n_rows);
    }
    fprintf(out, "%s\n", r->broken ? " CLCL_CHECK_BREAK was set" : "");
}

/* ---- JSON -------------------------------------------------------------------------------- */

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* A number, or null when it is not finite (JSON has no NaN or infinity). */
static void json_number(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fputs("null", f);
}

static void json_row(FILE *f, const clcl_check_row *row) {
    fputs("{\"check\": ", f);
    json_string(f, row->name);
    fprintf(f, ", \"result\": \"%s\", \"count\": %zu, \"max_abs\": ",
            row->result == CLCL_CHECK_PASS   ? "pass"
            : row->result == CLCL_CHECK_FAIL ? "fail"
                                             : "error",
            row->count);
    json_number(f, row->max_abs);
    fputs(", \"max_rel\": ", f);
    json_number(f, row->max_rel);
    fputs(", \"atol\": ", f);
    json_number(f, row->atol);
    fputs(", \"rtol\": ", f);
    json_number(f, row->rtol);
    fprintf(f, ", \"worst\": %zu, \"worst_got\": ", row->worst);
    json_number(f, row->worst_got);
    fputs(", \"worst_expected\": ", f);
    json_number(f, row->worst_ref);
    fputs(", \"seconds\": ", f);
    json_number(f, row->seconds);
    fputs(", \"note\": ", f);
    json_string(f, row->note);
    fputc('}', f);
}

static void json_device(FILE *f, const clcl_check_device *d) {
    fprintf(f, "    {\"index\": %d, \"name\": ", d->index);
    json_string(f, d->name);
    fputs(", \"platform\": ", f);
    json_string(f, d->platform);
    fputs(", \"type\": ", f);
    json_string(f, d->type ? d->type : "");
    fprintf(f, ", \"passed\": %s, \"failed\": %d, \"seconds\": ",
            d->failed == 0 && d->n_rows > 0 ? "true" : "false", d->failed);
    json_number(f, d->seconds);
    fputs(", \"tuning\": ", f);
    json_string(f, d->tuning);
    fputs(",\n     \"adaptations\": [", f);
    for (int i = 0; i < d->n_adaptations; i++) {
        fputs(i ? ", " : "", f);
        json_string(f, d->adaptations[i]);
    }
    fputs("],\n     \"rows\": [\n", f);
    for (int i = 0; i < d->n_rows; i++) {
        fputs("      ", f);
        json_row(f, &d->rows[i]);
        fputs(i + 1 < d->n_rows ? ",\n" : "\n", f);
    }
    fputs("     ]}", f);
}

clcl_status clcl_check_write_json(const clcl_check_report *r, const char *path) {
    clcl_atomic_file af;
    clcl_status st = clcl_atomic_open(&af, path);
    if (st != CLCL_OK)
        return st;
    FILE *f = af.file;
    fprintf(f, "{\n  \"clcl_check\": 1,\n  \"passed\": %s,\n  \"failed_devices\": %d,\n",
            clcl_check_passed(r) ? "true" : "false", r->failed_devices);
    fprintf(f, "  \"baseline_device\": %d,\n  \"step_theta\": ", r->baseline);
    json_number(f, r->step_theta);
    fputs(",\n  \"broken\": ", f);
    if (r->broken)
        json_string(f, r->broken);
    else
        fputs("null", f);
    fputs(",\n  \"devices\": [\n", f);
    for (int i = 0; i < r->n_devices; i++) {
        json_device(f, &r->devices[i]);
        fputs(i + 1 < r->n_devices ? ",\n" : "\n", f);
    }
    fputs("  ]\n}\n", f);
    return clcl_atomic_commit(&af);
}
