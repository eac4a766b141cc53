/* Temperature and threshold schedules: every form's values against closed forms, warm-up,
 * step boundaries, formatting round trips, malformed specs. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "clcl/schedule.h"

static clcl_schedule parse_ok(const char *spec) {
    clcl_schedule s;
    cr_assert_eq(clcl_schedule_parse(spec, "--test", &s), CLCL_OK, "'%s': %s", spec,
                 clcl_last_error());
    return s;
}

static void expect_at(const clcl_schedule *s, double t, double want, const char *spec) {
    double got = clcl_schedule_at(s, t);
    if (isinf(want))
        cr_expect(isinf(got) && got > 0, "%s at t = %g: %.17g, expected +inf", spec, t, got);
    else
        cr_expect(fabs(got - want) <= 1e-12 * (1 + fabs(want)),
                  "%s at t = %g: %.17g, expected %.17g", spec, t, got, want);
}

Test(schedule, constant_and_off) {
    clcl_schedule s = parse_ok("constant:0.2");
    cr_expect_eq(s.kind, CLCL_SCHEDULE_CONSTANT);
    for (double t = 0; t <= 1.0; t += 0.125)
        expect_at(&s, t, 0.2, "constant:0.2");
    s = parse_ok("off");
    cr_expect_eq(s.kind, CLCL_SCHEDULE_OFF);
    expect_at(&s, 0.0, INFINITY, "off");
    expect_at(&s, 0.7, INFINITY, "off");
    expect_at(&s, 1.0, INFINITY, "off");
}

Test(schedule, linear_cosine_exponential) {
    clcl_schedule lin = parse_ok("linear:0.1:0.5");
    clcl_schedule cos_ = parse_ok("cosine:0.6:0.9");
    clcl_schedule ex = parse_ok("exp:0.1:0.4");
    clcl_schedule ex2 = parse_ok("exponential:0.1:0.4");
    const double pi = 3.14159265358979323846;
    for (int k = 0; k <= 20; k++) {
        double t = k / 20.0;
        expect_at(&lin, t, 0.1 + 0.4 * t, "linear:0.1:0.5");
        expect_at(&cos_, t, 0.6 + 0.3 * (1 - cos(pi * t)) / 2, "cosine:0.6:0.9");
        expect_at(&ex, t, 0.1 * pow(4.0, t), "exp:0.1:0.4");
        expect_at(&ex2, t, 0.1 * pow(4.0, t), "exponential:0.1:0.4");
    }
    /* ends exactly, middle of the cosine half-way, a falling ramp */
    expect_at(&cos_, 0.5, 0.75, "cosine mid");
    expect_at(&ex, 0.5, 0.2, "exp mid");
    clcl_schedule down = parse_ok("linear:0.5:0.1");
    expect_at(&down, 0.25, 0.4, "linear:0.5:0.1");
    /* progress is clamped to [0, 1] */
    expect_at(&lin, -3.0, 0.1, "linear below 0");
    expect_at(&lin, 7.0, 0.5, "linear above 1");
}

Test(schedule, step_boundaries) {
    const char *spec = "step:0.2:0.3@0.5:0.45@0.8";
    clcl_schedule s = parse_ok(spec);
    cr_expect_eq(s.kind, CLCL_SCHEDULE_STEP);
    cr_expect_eq(s.n_values, 3);
    expect_at(&s, 0.0, 0.2, spec);
    expect_at(&s, 0.4999, 0.2, spec);
    expect_at(&s, 0.5, 0.3, spec);
    expect_at(&s, 0.79, 0.3, spec);
    expect_at(&s, 0.8, 0.45, spec);
    expect_at(&s, 1.0, 0.45, spec);
    cr_expect_float_eq(s.start, 0.2, 1e-15);
    cr_expect_float_eq(s.end, 0.45, 1e-15);
    clcl_schedule one = parse_ok("step:0.7");
    expect_at(&one, 0.9, 0.7, "step:0.7");
}

Test(schedule, warmup_turns_detection_off_then_runs_over_the_rest) {
    const char *spec = "cosine:0.6:0.9:warmup=0.2";
    clcl_schedule s = parse_ok(spec);
    cr_expect_float_eq(s.warmup, 0.2, 1e-15);
    expect_at(&s, 0.0, INFINITY, spec);
    expect_at(&s, 0.1999, INFINITY, spec);
    expect_at(&s, 0.2, 0.6, spec);
    expect_at(&s, 0.6, 0.75, spec); /* u = 0.5 */
    expect_at(&s, 1.0, 0.9, spec);
    clcl_schedule st = parse_ok("step:0.8:0.9@0.5:warmup=0.5");
    expect_at(&st, 0.4, INFINITY, "step with warm-up");
    expect_at(&st, 0.6, 0.8, "step with warm-up");  /* u = 0.2 */
    expect_at(&st, 0.75, 0.9, "step with warm-up"); /* u = 0.5 */
    clcl_schedule lin = parse_ok("linear:0.7:0.9:warmup=0");
    expect_at(&lin, 0.0, 0.7, "warmup=0");
}

Test(schedule, format_round_trips) {
    const char *specs[] = {"off",
                           "constant:0.2",
                           "linear:0.1:0.5",
                           "cosine:0.6:0.9:warmup=0.1",
                           "exp:0.05:0.5",
                           "step:0.2:0.3@0.5:0.45@0.8",
                           "step:0.8:0.9@0.25:warmup=0.2",
                           "linear:-0.25:1.5"};
    char text[256];
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        clcl_schedule s = parse_ok(specs[k]);
        clcl_schedule_format(&s, text, sizeof text);
        cr_expect_str_eq(text, specs[k]);
        clcl_schedule back = parse_ok(text);
        for (int i = 0; i <= 16; i++)
            cr_expect(clcl_schedule_at(&back, i / 16.0) == clcl_schedule_at(&s, i / 16.0) ||
                          (isinf(clcl_schedule_at(&back, i / 16.0)) &&
                           isinf(clcl_schedule_at(&s, i / 16.0))),
                      "%s changes after formatting", specs[k]);
    }
    clcl_schedule s = parse_ok("exponential:0.1:0.2");
    cr_expect_str_eq(clcl_schedule_format(&s, text, sizeof text), "exp:0.1:0.2");
    /* a short buffer is cut, not overrun */
    char tiny[8];
    s = parse_ok("cosine:0.6:0.9:warmup=0.1");
    clcl_schedule_format(&s, tiny, sizeof tiny);
    cr_expect_eq(strlen(tiny), sizeof tiny - 1);
}

Test(schedule, malformed_specs_are_refused_with_the_accepted_forms) {
    const char *bad[] = {"",
                         "linear",
                         "linear:0.1",
                         "linear:0.1:0.5:0.9",
                         "linear:a:0.5",
                         "cosine:0.6:inf",
                         "constant:nan",
                         "constant:",
                         "constant:0.2:0.3",
                         "exp:0:0.5",
                         "exp:-0.1:0.5",
                         "step:",
                         "step:0.2:0.3",
                         "step:0.2:0.3@0.5:0.4@0.5",
                         "step:0.2:0.3@0.6:0.4@0.5",
                         "step:0.2:0.3@1.0",
                         "step:0.2:0.3@0",
                         "off:0.5",
                         "ramp:0.1:0.2",
                         "Linear:0.1:0.2",
                         "linear:0.1:0.5:warmup=1",
                         "linear:0.1:0.5:warmup=-0.1",
                         "linear:0.1:0.5:warmup=x",
                         "linear:0.1:0.5:warm=0.1",
                         "step:1:2@0.1:3@0.2:4@0.3:5@0.4:6@0.5:7@0.6:8@0.7:9@0.8:10@0.85:11@0.9:"
                         "12@0.91:13@0.92:14@0.93:15@0.94:16@0.95:17@0.96"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        clcl_schedule s;
        clcl_status st = clcl_schedule_parse(bad[k], "--threshold", &s);
        cr_expect_eq(st, CLCL_ERR_ARGUMENT, "'%s' was accepted", bad[k]);
        const char *msg = clcl_last_error();
        cr_expect(strstr(msg, "--threshold"), "'%s': message lacks the flag: %s", bad[k], msg);
        cr_expect(strstr(msg, "accepted forms"), "'%s': message lacks the forms: %s", bad[k], msg);
        cr_expect(strstr(msg, "cosine:A:B"), "'%s': %s", bad[k], msg);
        char quoted[300];
        snprintf(quoted, sizeof quoted, "'%s'", bad[k]);
        cr_expect(strstr(msg, quoted), "'%s': message does not quote the spec: %s", bad[k], msg);
    }
    clcl_schedule s;
    cr_expect_eq(clcl_schedule_parse(NULL, "--tau", &s), CLCL_ERR_ARGUMENT);
}

Test(schedule, temperature_checks) {
    clcl_schedule s = parse_ok("linear:0.1:0.5");
    cr_expect_eq(clcl_schedule_check_temperature(&s, "--tau"), CLCL_OK);
    s = parse_ok("off");
    cr_expect_eq(clcl_schedule_check_temperature(&s, "--tau"), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "--tau 'off'"), "%s", clcl_last_error());
    s = parse_ok("cosine:0.1:0.5:warmup=0.1");
    cr_expect_eq(clcl_schedule_check_temperature(&s, "--tau"), CLCL_ERR_ARGUMENT);
    s = parse_ok("linear:0:0.5");
    cr_expect_eq(clcl_schedule_check_temperature(&s, "--tau"), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "[1e-4, 100]"), "%s", clcl_last_error());
    s = parse_ok("step:0.2:500@0.5");
    cr_expect_eq(clcl_schedule_check_temperature(&s, "--tau"), CLCL_ERR_ARGUMENT);
}

Test(schedule, threshold_checks) {
    const char *fine[] = {"off", "constant:-1", "linear:0.95:1.5", "step:0.9:-0.5@0.5",
                          "cosine:0.8:0.9:warmup=0.2"};
    for (size_t k = 0; k < sizeof fine / sizeof *fine; k++) {
        clcl_schedule s = parse_ok(fine[k]);
        cr_expect_eq(clcl_schedule_check_threshold(&s, "--threshold"), CLCL_OK, "%s: %s", fine[k],
                     clcl_last_error());
    }
    const char *bad[] = {"constant:-5", "linear:-1.5:0.9", "step:0.9:-2@0.5"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        clcl_schedule s = parse_ok(bad[k]);
        cr_expect_eq(clcl_schedule_check_threshold(&s, "--threshold"), CLCL_ERR_ARGUMENT, "%s",
                     bad[k]);
        cr_expect(strstr(clcl_last_error(), "--threshold") && strstr(clcl_last_error(), "-1"), "%s",
                  clcl_last_error());
    }
}
