/*
 * log_limit.h - the decision behind rate-limited log lines: a line identical to the last one
 * written from the same call site within NIXL_LOG_REPEAT_NS is counted instead of written,
 * and the count is said with the next line that is written. A peer that makes the same
 * failure happen a million times a second then costs a few lines, not a full disk.
 *
 * Header only and stateless (the caller owns the state, one per call site), so that plugins,
 * which link only nixl_util and log through their host, use the same rule as the library
 * (NIXL_LOG_LIMITED in log.h).
 */
#ifndef NIXL_UTIL_LOG_LIMIT_H
#define NIXL_UTIL_LOG_LIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "hashmap.h" /* nixl_hash_fnv1a */

/* How long an identical line stays quiet: long enough that a flood is a few lines a minute,
 * short enough that a condition that persists is seen again soon. */
#define NIXL_LOG_REPEAT_NS (10ull * 1000000000ull)

typedef struct nixl_log_limit {
    pthread_mutex_t lock;
    uint64_t hash;     /* of the last line written (0: none yet) */
    uint64_t since_ns; /* when it was written */
    uint64_t repeats;  /* identical lines suppressed since */
} nixl_log_limit_t;

#define NIXL_LOG_LIMIT_INIT {PTHREAD_MUTEX_INITIALIZER, 0, 0, 0}

/*
 * Whether `line` is to be written now. When it is, *repeats is the number of lines suppressed
 * since the last written one (say it, then reset); when it is not, it was counted.
 */
static inline bool nixl_log_limit_pass(nixl_log_limit_t *l, const char *line, uint64_t now_ns,
                                       uint64_t *repeats)
{
    uint64_t h = nixl_hash_fnv1a(line, strlen(line)) | 1u;
    pthread_mutex_lock(&l->lock);
    bool quiet = h == l->hash && now_ns - l->since_ns < NIXL_LOG_REPEAT_NS;
    if (quiet) {
        l->repeats++;
    } else {
        *repeats = l->repeats;
        l->repeats = 0;
        l->hash = h;
        l->since_ns = now_ns;
    }
    pthread_mutex_unlock(&l->lock);
    return !quiet;
}

#endif
