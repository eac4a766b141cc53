/* Levelled logging with a module prefix and a settable sink.
 *
 *     CLCL_LOG_INFO("runtime", "device %s", name);
 *
 * prints "[runtime] device ..." to the sink (stderr by default) when the level is at or
 * below the threshold, which clcl_log_set_level() or CLCL_LOG=debug|info|warn|error set. */
#ifndef CLCL_LOG_H
#define CLCL_LOG_H

#include <stdio.h>

typedef enum {
    CLCL_LOG_LEVEL_DEBUG = 0,
    CLCL_LOG_LEVEL_INFO = 1,
    CLCL_LOG_LEVEL_WARN = 2,
    CLCL_LOG_LEVEL_ERROR = 3,
    CLCL_LOG_LEVEL_OFF = 4
} clcl_log_level;

typedef void (*clcl_log_sink)(clcl_log_level level, const char *module, const char *message,
                              void *user);

void clcl_log_set_level(clcl_log_level level);
clcl_log_level clcl_log_get_level(void);
/* NULL restores the default sink (stderr). */
void clcl_log_set_sink(clcl_log_sink sink, void *user);
void clcl_log(clcl_log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CLCL_LOG_DEBUG(module, ...) clcl_log(CLCL_LOG_LEVEL_DEBUG, module, __VA_ARGS__)
#define CLCL_LOG_INFO(module, ...)  clcl_log(CLCL_LOG_LEVEL_INFO, module, __VA_ARGS__)
#define CLCL_LOG_WARN(module, ...)  clcl_log(CLCL_LOG_LEVEL_WARN, module, __VA_ARGS__)
#define CLCL_LOG_ERROR(module, ...) clcl_log(CLCL_LOG_LEVEL_ERROR, module, __VA_ARGS__)

#endif
