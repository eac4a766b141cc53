/* The runtime: device listing and choice, program builds and their failures, arguments. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <criterion/criterion.h>

#include "clcl/runtime.h"
#include "support.h"

Test(devices, list_has_a_device_with_sane_limits) {
    clcl_device_info *devs;
    int n;
    cr_assert_eq(clcl_devices_list(&devs, &n), CLCL_OK, "%s", clcl_last_error());
    cr_assert_gt(n, 0);
    for (int i = 0; i < n; i++) {
        cr_expect_eq(devs[i].index, i);
        cr_expect_gt(strlen(devs[i].name), 0);
        cr_expect_gt(devs[i].compute_units, 0);
        cr_expect_geq(devs[i].global_mem, devs[i].max_alloc);
        cr_expect_gt(devs[i].max_work_group, 0);
        cr_expect_gt(devs[i].local_mem, 0);
    }
    free(devs);
}

Test(devices, choose_by_index_type_and_name) {
    clcl_device_info *devs;
    int n, idx = -1;
    cr_assert_eq(clcl_devices_list(&devs, &n), CLCL_OK);

    cr_expect_eq(clcl_device_choose(devs, n, "0", &idx), CLCL_OK);
    cr_expect_eq(idx, 0);
    char last[16];
    snprintf(last, sizeof last, "%d", n - 1);
    cr_expect_eq(clcl_device_choose(devs, n, last, &idx), CLCL_OK);
    cr_expect_eq(idx, n - 1);

    /* a name substring in another case picks a device whose name has it */
    char part[5] = {0};
    for (int i = 0; i < 4 && devs[n - 1].name[i]; i++) {
        char c = devs[n - 1].name[i];
        part[i] = (char)(islower((unsigned char)c) ? toupper((unsigned char)c)
                                                   : tolower((unsigned char)c));
    }
    cr_expect_eq(clcl_device_choose(devs, n, part, &idx), CLCL_OK, "%s", clcl_last_error());
    cr_expect_eq(strncasecmp(devs[idx].name, part, strlen(part)), 0, "'%s' chose '%s'", part,
                 devs[idx].name);

    const char *type = (devs[0].type & CL_DEVICE_TYPE_GPU) ? "gpu" : "cpu";
    if (devs[0].type & (CL_DEVICE_TYPE_GPU | CL_DEVICE_TYPE_CPU)) {
        cr_expect_eq(clcl_device_choose(devs, n, type, &idx), CLCL_OK);
        cr_expect_eq(idx, 0);
    }
    free(devs);
}

Test(devices, impossible_choice_lists_what_exists) {
    clcl_device_info *devs;
    int n, idx = -1;
    cr_assert_eq(clcl_devices_list(&devs, &n), CLCL_OK);

    cr_expect_eq(clcl_device_choose(devs, n, "no-such-device-xyz", &idx), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "no-such-device-xyz"), "%s", clcl_last_error());
    cr_expect(strstr(clcl_last_error(), devs[0].name), "%s", clcl_last_error());

    char beyond[16];
    snprintf(beyond, sizeof beyond, "%d", n);
    cr_expect_eq(clcl_device_choose(devs, n, beyond, &idx), CLCL_ERR_ARGUMENT);
    free(devs);
}

Test(devices, environment_variable_chooses) {
    clcl_device_info *devs;
    int n, idx = -1;
    cr_assert_eq(clcl_devices_list(&devs, &n), CLCL_OK);
    char last[16];
    snprintf(last, sizeof last, "%d", n - 1);
    setenv("CLCL_DEVICE", last, 1);
    cr_expect_eq(clcl_device_choose(devs, n, NULL, &idx), CLCL_OK);
    cr_expect_eq(idx, n - 1);
    setenv("CLCL_DEVICE", "bogus-device", 1);
    cr_expect_eq(clcl_device_choose(devs, n, "", &idx), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "CLCL_DEVICE"), "%s", clcl_last_error());
    unsetenv("CLCL_DEVICE");
    free(devs);
}

Test(context, limit_overrides_shrink_the_device) {
    setenv("CLCL_MAX_LOCAL_MEM", "32768", 1);
    setenv("CLCL_MAX_WORK_GROUP", "256", 1);
    clcl_context *ctx = test_context();
    const clcl_device_info *d = clcl_context_device(ctx);
    cr_expect_leq(d->local_mem, 32768);
    cr_expect_leq(d->max_work_group, 256);
    clcl_context_free(ctx);
    unsetenv("CLCL_MAX_LOCAL_MEM");
    unsetenv("CLCL_MAX_WORK_GROUP");
}

Test(program, embedded_kernel_is_built_once_per_option_string) {
    clcl_context *ctx = test_context();
    cl_kernel a, b, c;
    cr_assert_eq(clcl_context_kernel(ctx, "elementwise", "fill", NULL, &a), CLCL_OK, "%s",
                 clcl_last_error());
    cr_assert_eq(clcl_context_kernel(ctx, "elementwise", "axpy", NULL, &b), CLCL_OK);
    cr_expect_eq(clcl_context_builds(ctx), 1);
    cr_assert_eq(clcl_context_kernel(ctx, "elementwise", "fill", NULL, &c), CLCL_OK);
    cr_expect_eq(a, c, "the cached kernel object is returned again");
    cr_assert_eq(clcl_context_kernel(ctx, "elementwise", "fill", "-DUNUSED=1", &c), CLCL_OK);
    cr_expect_eq(clcl_context_builds(ctx), 2);
    clcl_context_free(ctx);
}

Test(program, syntax_error_gives_the_build_log) {
    clcl_context *ctx = test_context();
    cl_program p;
    const char *src = "__kernel void broken(__global float *x) { x[0] = undeclared_name; }";
    cr_assert_eq(clcl_context_build_source(ctx, "broken_test", src, "-DTUNE=3", &p),
                 CLCL_ERR_BUILD);
    const char *msg = clcl_last_error();
    cr_expect(strstr(msg, "broken_test"), "names the program: %s", msg);
    cr_expect(strstr(msg, "-DTUNE=3"), "shows the options: %s", msg);
    cr_expect(strstr(msg, "-cl-std=CL1.2"), "shows the options: %s", msg);
    cr_expect(strstr(msg, "undeclared_name"), "carries the compiler's log: %s", msg);
    clcl_context_free(ctx);
}

Test(program, unknown_program_and_kernel_are_errors) {
    clcl_context *ctx = test_context();
    cl_kernel k;
    cr_expect_eq(clcl_context_kernel(ctx, "no_such_program", "x", NULL, &k), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "no_such_program"));
    cr_expect_eq(clcl_context_kernel(ctx, "elementwise", "no_such_kernel", NULL, &k),
                 CL_INVALID_KERNEL_NAME);
    cr_expect(strstr(clcl_last_error(), "CL_INVALID_KERNEL_NAME"), "%s", clcl_last_error());
    cr_expect(strstr(clcl_last_error(), "no_such_kernel"), "%s", clcl_last_error());
    clcl_context_free(ctx);
}

Test(program, argument_count_is_checked) {
    clcl_context *ctx = test_context();
    cl_kernel k;
    cr_assert_eq(clcl_context_kernel(ctx, "elementwise", "scale", NULL, &k), CLCL_OK);
    cr_expect_eq(clcl_kernel_args(k, CLCL_ARG_INT(1)), CLCL_ERR_ARGUMENT);
    cr_expect(strstr(clcl_last_error(), "'scale' takes 3 arguments, 1 were given"), "%s",
              clcl_last_error());
    clcl_context_free(ctx);
}

Test(status, names_are_the_symbols) {
    cr_expect_str_eq(clcl_status_name(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES");
    cr_expect_str_eq(clcl_status_name(CL_INVALID_WORK_GROUP_SIZE), "CL_INVALID_WORK_GROUP_SIZE");
    cr_expect_str_eq(clcl_status_name(CLCL_ERR_SHAPE), "CLCL_ERR_SHAPE");
    cr_expect_str_eq(clcl_status_name(-1001), "CL_PLATFORM_NOT_FOUND_KHR");
}

Test(status, an_error_can_be_wrapped_in_context) {
    clcl_fail(CLCL_ERR_NON_FINITE, "row %d of h (%d, %d) holds a NaN", 3, 256, 128);
    cr_expect_eq(clcl_fail(CLCL_ERR_NON_FINITE, "step %d: %s; stopping", 2, clcl_last_error()),
                 CLCL_ERR_NON_FINITE);
    cr_expect_str_eq(clcl_last_error(), "step 2: row 3 of h (256, 128) holds a NaN; stopping");
}

Test(devices, no_platform_says_which_driver_to_install) {
    /* ocl-icd reads its vendor list on the first OpenCL call of this (forked) process */
    setenv("OCL_ICD_VENDORS", test_temp_dir("no-icd"), 1);
    clcl_device_info *devs;
    int n;
    cr_assert_eq(clcl_devices_list(&devs, &n), CLCL_ERR_NO_DEVICE);
    cr_expect(strstr(clcl_last_error(), "pocl-opencl-icd"), "%s", clcl_last_error());
}

Test(program, a_work_group_beyond_the_capped_limit_is_refused) {
    setenv("CLCL_MAX_WORK_GROUP", "16", 1);
    clcl_context *ctx = test_context();
    cl_kernel k;
    cl_mem m;
    cr_assert_eq(clcl_context_kernel(ctx, "elementwise", "scale", NULL, &k), CLCL_OK);
    cl_int err;
    m = clCreateBuffer(clcl_context_cl(ctx), CL_MEM_READ_WRITE, 256 * sizeof(float), NULL, &err);
    cr_assert_eq(err, CL_SUCCESS);
    cr_assert_eq(clcl_kernel_args(k, CLCL_ARG_MEM(m), CLCL_ARG_INT(256), CLCL_ARG_FLOAT(2)),
                 CLCL_OK);
    size_t global = 256, local = 64;
    cr_expect_eq(clcl_launch(ctx, k, 1, &global, &local), CL_INVALID_WORK_GROUP_SIZE);
    cr_expect(strstr(clcl_last_error(), "'scale': a work-group of 64 work-items, more than the 16"),
              "%s", clcl_last_error());
    local = 16;
    cr_expect_eq(clcl_launch(ctx, k, 1, &global, &local), CLCL_OK, "%s", clcl_last_error());
    clReleaseMemObject(m);
    clcl_context_free(ctx);
    unsetenv("CLCL_MAX_WORK_GROUP");
}
