/* The training log and its curves. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clcl/fileio.h"
#include "metrics.h"

struct clcl_metrics {
    char path[1024], svg[1024];
    FILE *file;
    clcl_step_record *steps;
    size_t n_steps, cap_steps;
    clcl_epoch_record *epochs;
    size_t n_epochs, cap_epochs;
};

void clcl_json_number(FILE *out, double v) {
    if (isfinite(v))
        fprintf(out, "%.6g", v);
    else
        fputs("null", out);
}

static int push(void **items, size_t *n, size_t *cap, size_t size, const void *item) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 256;
        void *grown = realloc(*items, c * size);
        if (!grown)
            return -1;
        *items = grown;
        *cap = c;
    }
    memcpy((char *)*items + *n * size, item, size);
    (*n)++;
    return 0;
}

/* ,"key":value */
static void json_field(FILE *f, const char *key, double v) {
    fprintf(f, ",\"%s\":", key);
    clcl_json_number(f, v);
}

static void write_step(FILE *f, const clcl_step_record *r) {
    fprintf(f, "{\"type\":\"step\",\"epoch\":%d,\"step\":%ld", r->epoch, r->step);
    json_field(f, "loss", r->loss);
    json_field(f, "tau", r->tau);
    json_field(f, "theta", r->theta);
    json_field(f, "pseudo_per_anchor", r->pseudo);
    json_field(f, "fn_precision", r->precision);
    json_field(f, "fn_recall", r->recall);
    json_field(f, "lr", r->lr);
    json_field(f, "images_per_s", r->images_per_s);
    fputs("}\n", f);
}

static void write_epoch(FILE *f, const clcl_epoch_record *r) {
    fprintf(f, "{\"type\":\"epoch\",\"epoch\":%d,\"step\":%ld", r->epoch, r->step);
    json_field(f, "loss", r->loss);
    json_field(f, "knn_top1", r->knn_top1);
    json_field(f, "knn_top5", r->knn_top5);
    json_field(f, "seconds", r->seconds);
    fputs("}\n", f);
}

/* The number after "key": in a record we wrote; NaN for null or a missing key. */
static double field(const char *line, const char *key) {
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\":", key);
    const char *p = strstr(line, pattern);
    if (!p)
        return NAN;
    p += strlen(pattern);
    char *end;
    double v = strtod(p, &end);
    return end == p ? NAN : v;
}

static int read_back(clcl_metrics *m, long max_step) {
    FILE *f = fopen(m->path, "r");
    char line[1024];
    if (!f)
        return 0; /* nothing logged yet */
    while (fgets(line, sizeof line, f)) {
        long step = (long)field(line, "step");
        if (step > max_step)
            continue;
        if (strstr(line, "\"type\":\"step\"")) {
            clcl_step_record r = {(int)field(line, "epoch"),   step,
                                  field(line, "loss"),         field(line, "tau"),
                                  field(line, "theta"),        field(line, "pseudo_per_anchor"),
                                  field(line, "fn_precision"), field(line, "fn_recall"),
                                  field(line, "lr"),           field(line, "images_per_s")};
            if (push((void **)&m->steps, &m->n_steps, &m->cap_steps, sizeof r, &r))
                break;
        } else if (strstr(line, "\"type\":\"epoch\"")) {
            clcl_epoch_record r = {(int)field(line, "epoch"), step,
                                   field(line, "loss"),       field(line, "knn_top1"),
                                   field(line, "knn_top5"),   field(line, "seconds")};
            if (push((void **)&m->epochs, &m->n_epochs, &m->cap_epochs, sizeof r, &r))
                break;
        }
    }
    fclose(f);
    return 0;
}

/* Rewrites metrics.jsonl with the records read back, atomically. */
static clcl_status rewrite(clcl_metrics *m) {
    clcl_atomic_file af;
    clcl_status st = clcl_atomic_open(&af, m->path);
    if (st != CLCL_OK)
        return st;
    size_t e = 0;
    for (size_t s = 0; s < m->n_steps; s++) {
        while (e < m->n_epochs && m->epochs[e].step < m->steps[s].step)
            write_epoch(af.file, &m->epochs[e++]);
        write_step(af.file, &m->steps[s]);
    }
    while (e < m->n_epochs)
        write_epoch(af.file, &m->epochs[e++]);
    return clcl_atomic_commit(&af);
}

clcl_status clcl_metrics_open(const char *out_dir, int resume, long step, clcl_metrics **out) {
    clcl_metrics *m = calloc(1, sizeof *m);
    clcl_status st = CLCL_OK;
    if (!m)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory");
    snprintf(m->path, sizeof m->path, "%s/metrics.jsonl", out_dir);
    snprintf(m->svg, sizeof m->svg, "%s/curves.svg", out_dir);
    if (resume) {
        read_back(m, step);
        st = rewrite(m);
    }
    if (st == CLCL_OK) {
        m->file = fopen(m->path, resume ? "a" : "w");
        if (!m->file)
            st = clcl_fail(CLCL_ERR_IO, "cannot write %s: %s", m->path, strerror(errno));
    }
    if (st != CLCL_OK) {
        clcl_metrics_close(m);
        return st;
    }
    *out = m;
    return CLCL_OK;
}

void clcl_metrics_close(clcl_metrics *m) {
    if (!m)
        return;
    if (m->file)
        fclose(m->file);
    free(m->steps);
    free(m->epochs);
    free(m);
}

clcl_status clcl_metrics_step(clcl_metrics *m, const clcl_step_record *r) {
    if (push((void **)&m->steps, &m->n_steps, &m->cap_steps, sizeof *r, r))
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory");
    write_step(m->file, r);
    if (fflush(m->file) != 0)
        return clcl_fail(CLCL_ERR_IO, "writing %s: %s", m->path, strerror(errno));
    return CLCL_OK;
}

clcl_status clcl_metrics_epoch(clcl_metrics *m, const clcl_epoch_record *r) {
    if (push((void **)&m->epochs, &m->n_epochs, &m->cap_epochs, sizeof *r, r))
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory");
    write_epoch(m->file, r);
    if (fflush(m->file) != 0)
        return clcl_fail(CLCL_ERR_IO, "writing %s: %s", m->path, strerror(errno));
    return CLCL_OK;
}

/* ---- curves.svg ------------------------------------------------------------------------ */

#define SVG_WIDTH    900
#define PANEL_HEIGHT 150
#define MARGIN_LEFT  70
#define MARGIN_RIGHT 20

typedef struct {
    const char *name;
    const char *colour;
    const double *x, *y; /* n points; non-finite y breaks the line */
    size_t n;
} series;

static void panel_range(const series *s, int n_series, double *lo, double *hi) {
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int i = 0; i < n_series; i++)
        for (size_t j = 0; j < s[i].n; j++)
            if (isfinite(s[i].y[j])) {
                *lo = fmin(*lo, s[i].y[j]);
                *hi = fmax(*hi, s[i].y[j]);
            }
    if (!isfinite(*lo)) {
        *lo = 0;
        *hi = 1;
    }
    if (*hi - *lo < 1e-9) {
        *lo -= 0.5;
        *hi += 0.5;
    }
}

static void panel(FILE *f, int top, const char *title, const series *s, int n_series,
                  double x_max) {
    double lo, hi;
    int w = SVG_WIDTH - MARGIN_LEFT - MARGIN_RIGHT, h = PANEL_HEIGHT - 40, y0 = top + 25;

    panel_range(s, n_series, &lo, &hi);
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-weight=\"bold\">%s</text>\n", MARGIN_LEFT, top + 15,
            title);
    fprintf(f,
            "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
            "stroke=\"#888\"/>\n",
            MARGIN_LEFT, y0, w, h);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.4g</text>\n", MARGIN_LEFT - 5,
            y0 + 10, hi);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%.4g</text>\n", MARGIN_LEFT - 5, y0 + h,
            lo);
    for (int i = 0; i < n_series; i++) {
        int open = 0;
        fprintf(f, "<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", MARGIN_LEFT + 250 + 150 * i,
                top + 15, s[i].colour, s[i].name);
        for (size_t j = 0; j < s[i].n; j++) {
            if (!isfinite(s[i].y[j])) {
                if (open)
                    fputs("\"/>\n", f);
                open = 0;
                continue;
            }
            double px = MARGIN_LEFT + w * (x_max > 0 ? s[i].x[j] / x_max : 0);
            double py = y0 + h - h * (s[i].y[j] - lo) / (hi - lo);
            if (!open)
                fprintf(f,
                        "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
                        "points=\"",
                        s[i].colour);
            fprintf(f, "%.1f,%.1f ", px, py);
            open = 1;
        }
        if (open)
            fputs("\"/>\n", f);
    }
}

clcl_status clcl_metrics_plot(const clcl_metrics *m) {
    size_t ns = m->n_steps, ne = m->n_epochs;
    double *buf = malloc((7 * ns + 3 * ne + 1) * sizeof *buf);
    if (!buf)
        return clcl_fail(CLCL_ERR_NO_MEMORY, "out of host memory");
    double *x = buf, *loss = x + ns, *tau = loss + ns, *theta = tau + ns, *prec = theta + ns,
           *rec = prec + ns, *pseudo = rec + ns, *ex = pseudo + ns, *top1 = ex + ne,
           *eloss = top1 + ne;
    double x_max = 1;
    for (size_t i = 0; i < ns; i++) {
        const clcl_step_record *r = &m->steps[i];
        x[i] = (double)r->step;
        loss[i] = r->loss;
        tau[i] = r->tau;
        theta[i] = r->theta <= 1 ? r->theta : NAN; /* off: no line */
        prec[i] = r->precision;
        rec[i] = r->recall;
        pseudo[i] = r->pseudo;
        x_max = fmax(x_max, x[i]);
    }
    for (size_t i = 0; i < ne; i++) {
        ex[i] = (double)m->epochs[i].step;
        top1[i] = m->epochs[i].knn_top1;
        eloss[i] = m->epochs[i].loss;
        x_max = fmax(x_max, ex[i]);
    }

    clcl_atomic_file af;
    clcl_status st = clcl_atomic_open(&af, m->svg);
    if (st != CLCL_OK) {
        free(buf);
        return st;
    }
    FILE *f = af.file;
    int height = 5 * PANEL_HEIGHT + 30;
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            SVG_WIDTH, height);
    series s_loss[] = {{"step", "#1f77b4", x, loss, ns}, {"epoch mean", "#d62728", ex, eloss, ne}};
    series s_sched[] = {{"tau", "#2ca02c", x, tau, ns},
                        {"theta (when on)", "#9467bd", x, theta, ns}};
    series s_fn[] = {{"precision", "#ff7f0e", x, prec, ns}, {"recall", "#8c564b", x, rec, ns}};
    series s_pseudo[] = {{"per anchor", "#e377c2", x, pseudo, ns}};
    series s_knn[] = {{"kNN top-1", "#17becf", ex, top1, ne}};
    panel(f, 0, "loss", s_loss, 2, x_max);
    panel(f, PANEL_HEIGHT, "schedules", s_sched, 2, x_max);
    panel(f, 2 * PANEL_HEIGHT, "false-negative detection", s_fn, 2, x_max);
    panel(f, 3 * PANEL_HEIGHT, "pseudo-positives", s_pseudo, 1, x_max);
    panel(f, 4 * PANEL_HEIGHT, "kNN accuracy", s_knn, 1, x_max);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">step (0 .. %.0f)</text>\n</svg>\n",
            SVG_WIDTH / 2, height - 8, x_max);
    free(buf);
    return clcl_atomic_commit(&af);
}
