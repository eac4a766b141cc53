/* Levelled logging to a settable sink. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clcl/log.h"

static clcl_log_sink sink;
static void *sink_user;
static int level = -1; /* -1: not yet read from CLCL_LOG */

static int level_from_env(void) {
    const char *names[] = {"debug", "info", "warn", "error", "off"};
    const char *env = getenv("CLCL_LOG");
    for (int i = 0; env && i < 5; i++)
        if (strcmp(env, names[i]) == 0)
            return i;
    return CLCL_LOG_LEVEL_INFO;
}

void clcl_log_set_level(clcl_log_level new_level) {
    level = (int)new_level;
}

clcl_log_level clcl_log_get_level(void) {
    if (level < 0)
        level = level_from_env();
    return (clcl_log_level)level;
}

void clcl_log_set_sink(clcl_log_sink new_sink, void *user) {
    sink = new_sink;
    sink_user = user;
}

void clcl_log(clcl_log_level msg_level, const char *module, const char *fmt, ...) {
    static const char *tags[] = {"debug: ", "", "warning: ", "error: "};
    char message[2048];
    va_list ap;

    if (msg_level < clcl_log_get_level() || msg_level >= CLCL_LOG_LEVEL_OFF)
        return;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (sink)
        sink(msg_level, module, message, sink_user);
    else
        fprintf(stderr, "[%s] %s%s\n", module, tags[msg_level], message);
}
