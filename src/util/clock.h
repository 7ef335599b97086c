/* clock.h - the monotonic clock, in the units the library's timeouts use. Header only, so
 * that plugins (which link only util) share it. */
#ifndef NIXL_UTIL_CLOCK_H
#define NIXL_UTIL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t nixl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t nixl_now_ms(void)
{
    return nixl_now_ns() / 1000000u;
}

#endif
