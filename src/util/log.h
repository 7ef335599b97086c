/* log.h - the library's logger: stderr, level from NIXL_LOG_LEVEL (default WARN). */
#ifndef NIXL_UTIL_LOG_H
#define NIXL_UTIL_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include "nixl_plugin.h" /* nixl_log_level_t */

/* The threshold, read once from NIXL_LOG_LEVEL (TRACE DEBUG INFO WARN ERROR FATAL). */
nixl_log_level_t nixl_log_threshold(void);
bool nixl_log_enabled(nixl_log_level_t level);
void nixl_log_write(nixl_log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void nixl_log_vwrite(nixl_log_level_t level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define NIXL_LOG(level, ...)                                                                  \
    do {                                                                                      \
        if (nixl_log_enabled(level))                                                          \
            nixl_log_write(level, __VA_ARGS__);                                               \
    } while (0)
#define NIXL_TRACE(...) NIXL_LOG(NIXL_LOG_TRACE, __VA_ARGS__)
#define NIXL_DEBUG(...) NIXL_LOG(NIXL_LOG_DEBUG, __VA_ARGS__)
#define NIXL_INFO(...) NIXL_LOG(NIXL_LOG_INFO, __VA_ARGS__)
#define NIXL_WARN(...) NIXL_LOG(NIXL_LOG_WARN, __VA_ARGS__)
#define NIXL_ERROR(...) NIXL_LOG(NIXL_LOG_ERROR, __VA_ARGS__)

#endif
