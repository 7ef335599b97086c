#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#include "clock.h"

static nixl_log_level_t threshold = NIXL_LOG_WARN;
static pthread_once_t threshold_once = PTHREAD_ONCE_INIT;

static const char *const level_names[] = {"TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"};

static void threshold_read(void)
{
    const char *v = getenv("NIXL_LOG_LEVEL");
    if (!v || !*v)
        return;
    for (int i = 0; i <= NIXL_LOG_FATAL; i++) {
        if (!strcasecmp(v, level_names[i])) {
            threshold = (nixl_log_level_t)i;
            return;
        }
    }
    if (!strcasecmp(v, "WARNING")) {
        threshold = NIXL_LOG_WARN;
        return;
    }
    fprintf(stderr, "nixl WARN: NIXL_LOG_LEVEL='%s' is not one of TRACE, DEBUG, INFO, WARN, "
                    "ERROR, FATAL; using WARN\n", v);
}

nixl_log_level_t nixl_log_threshold(void)
{
    pthread_once(&threshold_once, threshold_read);
    return threshold;
}

bool nixl_log_enabled(nixl_log_level_t level)
{
    return level >= nixl_log_threshold();
}

void nixl_log_write(nixl_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nixl_log_vwrite(level, fmt, ap);
    va_end(ap);
}

void nixl_log_vwrite(nixl_log_level_t level, const char *fmt, va_list ap)
{
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "[%02d:%02d:%02d.%06ld] nixl %s: ", tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000,
                     level_names[level <= NIXL_LOG_FATAL ? level : NIXL_LOG_FATAL]);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    /* one fputs per line so that lines of different threads do not interleave */
    fprintf(stderr, "%s\n", line);
}

void nixl_log_vwrite_from(nixl_log_level_t level, const char *who, const char *fmt, va_list ap)
{
    if (!nixl_log_enabled(level))
        return;
    char text[1024];
    vsnprintf(text, sizeof(text), fmt, ap);
    nixl_log_write(level, "%s: %s", who, text);
}

void nixl_log_limited(nixl_log_limit_t *limit, nixl_log_level_t level, const char *fmt, ...)
{
    char line[1800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    uint64_t repeats;
    if (!nixl_log_limit_pass(limit, line, nixl_now_ns(), &repeats))
        return;
    if (repeats)
        nixl_log_write(level, "%s (the previous line was repeated %llu more times)", line,
                       (unsigned long long)repeats);
    else
        nixl_log_write(level, "%s", line);
}
