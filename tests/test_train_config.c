/* The settings of `clcl train`: presets, checks and the config dump. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <criterion/redirect.h>

#include "support.h"
#include "train.h"

typedef struct {
    clcl_train_config c;
    clcl_flag *flags;
    int n;
} run;

static clcl_status parse(run *r, int argc, char **argv) {
    clcl_train_defaults(&r->c);
    r->flags = clcl_train_flags(&r->c, &r->n);
    cr_assert_eq(clcl_flags_parse("train", r->flags, r->n, argc, argv), 0);
    return clcl_train_resolve(&r->c, r->flags, r->n);
}

Test(train_config, simclr_preset_is_a_constant_tau_without_detection) {
    run r;
    char *argv[] = {"--method", "simclr"};
    cr_assert_eq(parse(&r, 2, argv), CLCL_OK, "%s", clcl_last_error());
    cr_expect_str_eq(r.c.tau, "constant:0.1");
    cr_expect_str_eq(r.c.threshold, "off");
    cr_expect_eq(r.c.fn_cap, 0);
    free(r.flags);
}

Test(train_config, simclr_refuses_a_threshold_or_a_moving_tau) {
    run r;
    char *a1[] = {"--method", "simclr", "--threshold", "linear:0.8:0.9"};
    cr_expect_eq(parse(&r, 4, a1), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "--threshold"), "%s", clcl_last_error());
    free(r.flags);
    char *a2[] = {"--method", "simclr", "--tau", "linear:0.1:0.5"};
    cr_expect_eq(parse(&r, 4, a2), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "--tau 'linear:0.1:0.5'") ||
                  strstr(clcl_last_error(), "--tau: 'linear:0.1:0.5'"),
              "%s", clcl_last_error());
    free(r.flags);
    char *a3[] = {"--method", "simclr", "--tau", "constant:0.5"};
    cr_expect_eq(parse(&r, 4, a3), CLCL_OK, "%s", clcl_last_error());
    cr_expect_str_eq(r.c.tau, "constant:0.5");
    free(r.flags);
}

Test(train_config, out_of_range_values_name_their_flag) {
    struct {
        char *flag, *value, *expect;
    } cases[] = {
        {"--epochs", "0", "--epochs: 0; expected at least 1"},
        {"--batch-size", "1", "--batch-size: 1; expected at least 2 images"},
        {"--width", "-1", "--width: -1"},
        {"--width", "0.001", "--width: 0.001; expected a value in [1/64, 8]"},
        {"--warmup-epochs", "11", "--warmup-epochs: 11; expected at least 0 and at most"},
        {"--fn-weight", "1.5", "--fn-weight: 1.5; expected [0, 1]"},
        {"--crop-scale", "1.2", "--crop-scale: 1.2; expected a share of the image in (0, 1]"},
        {"--jitter", "1.5", "--jitter: 1.5; expected a probability in [0, 1]"},
        {"--jitter", "-0.5", "--jitter: -0.5; expected a probability in [0, 1]"},
        {"--subset", "100", "--subset: 100 is smaller than one batch"},
        {"--out", "", "--out: an empty directory name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run r;
        char *argv[] = {cases[i].flag, cases[i].value};
        cr_expect_eq(parse(&r, 2, argv), CLCL_ERR_ARGUMENT, "%s %s", cases[i].flag, cases[i].value);
        cr_expect(strstr(clcl_last_error(), cases[i].expect), "%s", clcl_last_error());
        free(r.flags);
    }
}

Test(train_config, json_holds_every_resolved_setting, .init = cr_redirect_stdout) {
    run r;
    char *argv[] = {"--seed", "42",   "--lr",           "0.125",
                    "--out",  "a\"b", "--weight-decay", "0.30000000000000004"};
    cr_assert_eq(parse(&r, 8, argv), CLCL_OK, "%s", clcl_last_error());
    clcl_train_config_json(stdout, &r.c);
    fflush(stdout);
    char *text = test_read_all(cr_get_redirected_stdout());
    cr_expect(strstr(text, "\"seed\": 42,"), "%s", text);
    cr_expect(strstr(text, "\"lr\": 0.125,"), "%s", text);
    /* numbers in the fewest digits that read back exactly */
    cr_expect(strstr(text, "\"momentum\": 0.9,"), "%s", text);
    cr_expect(strstr(text, "\"weight_decay\": 0.30000000000000004,"), "%s", text);
    cr_expect(strstr(text, "\"out\": \"a\\\"b\","), "%s", text);
    cr_expect(strstr(text, "\"method\": \"progressive\","), "%s", text);
    cr_expect(strstr(text, "\"jitter\": 0.8,"), "%s", text);
    cr_expect_eq(text[0], '{');
    free(text);
    free(r.flags);
}

/* A config.json of a run older than a setting reads it as what that run trained with; any
 * other missing setting is an error naming it. */
static clcl_status read_without(const char *key, clcl_train_config *c) {
    clcl_train_config d;
    clcl_train_defaults(&d);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", test_temp_dir("config-read"));
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    char text[8192];
    FILE *mem = fmemopen(text, sizeof text, "w");
    clcl_train_config_json(mem, &d);
    fclose(mem);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (!strstr(line, key))
            fprintf(f, "%s\n", line);
    fclose(f);
    return clcl_train_config_read(path, c);
}

Test(train_config, an_older_config_reads_without_the_newer_settings) {
    clcl_train_config c;
    cr_assert_eq(read_without("\"loss_scale\"", &c), CLCL_OK, "%s", clcl_last_error());
    cr_expect_str_eq(c.loss_scale, "none");
    cr_expect_str_eq(c.tau, "linear:0.1:0.2");
    cr_expect_float_eq(c.jitter, 0.8, 1e-12);
    /* runs from before the setting jittered colour images only */
    cr_assert_eq(read_without("\"jitter\"", &c), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(c.jitter, -1.0);
    cr_expect_str_eq(c.loss_scale, "tau");
    cr_expect_eq(read_without("\"fn_cap\"", &c), CLCL_ERR_FORMAT);
    cr_expect(strstr(clcl_last_error(), "\"fn_cap\""), "%s", clcl_last_error());
}
