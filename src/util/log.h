/* log.h - the library's logger: stderr, level from NIXL_LOG_LEVEL (default WARN). */
#ifndef NIXL_UTIL_LOG_H
#define NIXL_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "log_limit.h"
#include "nixl_plugin.h" /* nixl_log_level_t */

/* The threshold, read once from NIXL_LOG_LEVEL (TRACE DEBUG INFO WARN ERROR FATAL). */
nixl_log_level_t nixl_log_threshold(void);
bool nixl_log_enabled(nixl_log_level_t level);
void nixl_log_write(nixl_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void nixl_log_vwrite(nixl_log_level_t level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* A line "<who>: <message>", for what a plugin logs through its host (backends, exporters):
 * the message is formatted apart first, so that it cannot be read as a format. */
void nixl_log_vwrite_from(nixl_log_level_t level, const char *who, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define NIXL_LOG(level, ...)                                                                  \
    do {                                                                                      \
        if (nixl_log_enabled(level))                                                          \
            nixl_log_write(level, __VA_ARGS__);                                               \
    } while (0)
/* Write a line unless it repeats the last line of the same state within NIXL_LOG_REPEAT_NS
 * (log_limit.h); the number of lines held back is appended to the next one written. */
void nixl_log_limited(nixl_log_limit_t *limit, nixl_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* For a line that a peer or the system can make repeat without end (accept failures,
 * refused connections): one limit per call site. */
#define NIXL_LOG_LIMITED(level, ...)                                                          \
    do {                                                                                      \
        static nixl_log_limit_t nixl_limit_ = NIXL_LOG_LIMIT_INIT;                            \
        if (nixl_log_enabled(level))                                                          \
            nixl_log_limited(&nixl_limit_, level, __VA_ARGS__);                               \
    } while (0)

#define NIXL_TRACE(...) NIXL_LOG(NIXL_LOG_TRACE, __VA_ARGS__)
#define NIXL_DEBUG(...) NIXL_LOG(NIXL_LOG_DEBUG, __VA_ARGS__)
#define NIXL_INFO(...) NIXL_LOG(NIXL_LOG_INFO, __VA_ARGS__)
#define NIXL_WARN(...) NIXL_LOG(NIXL_LOG_WARN, __VA_ARGS__)
#define NIXL_ERROR(...) NIXL_LOG(NIXL_LOG_ERROR, __VA_ARGS__)

#endif
