/*
 * telem_clock.h - the clock of per-request telemetry: CLOCK_MONOTONIC nanoseconds, read from
 * the CPU's counter where that is safe (x86-64: an invariant TSC that the kernel itself uses as
 * its clocksource; aarch64: the generic timer's virtual count), else from clock_gettime.
 *
 * Why: a request with telemetry on reads the clock twice (post start, post end, which is also
 * the completion of a synchronous transfer). clock_gettime(CLOCK_MONOTONIC) costs 25-30 ns on
 * a virtual machine (the vDSO's sequence lock, fences and scaling), against a 70 ns loopback
 * 4 KiB SHM WRITE; the counter read costs about a third of that (docs/BENCHMARKS.md,
 * "Telemetry overhead"). CLOCK_MONOTONIC_COARSE is cheaper still but ticks every few ms, too
 * coarse for events in microseconds.
 *
 * The counter is scaled to CLOCK_MONOTONIC once per process (telem_clock_init, from the
 * settings read at agent creation): an anchor pair (counter, monotonic ns) and a 32.32
 * fixed-point ns-per-tick factor measured over about 2 ms on x86 (exact from the timer's
 * frequency on aarch64). Readings then follow CLOCK_MONOTONIC within the calibration error and
 * NTP's slewing of CLOCK_MONOTONIC, which the counter does not follow (under 1 ppm measured on
 * the development VM; the kernel slews by 500 ppm at most): that bounds how far start_time_us
 * may drift from it. Durations come from the counter alone.
 */
#ifndef NIXL_TELEMETRY_CLOCK_H
#define NIXL_TELEMETRY_CLOCK_H

#include <stdint.h>
#include <time.h>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

typedef struct telem_clock {
    int use_counter;   /* 0: clock_gettime; 1: the CPU counter below */
    uint64_t base_tick; /* the counter at the anchor */
    uint64_t base_ns;   /* CLOCK_MONOTONIC at the anchor */
    uint64_t mult;      /* ns per tick, 32.32 fixed point */
} telem_clock_t;

/* Written once by telem_clock_init (pthread_once), read-only afterwards. */
extern telem_clock_t nixl_telem_clock;

/* Choose the source and calibrate it: once per process, any thread, cold path. */
void telem_clock_init(void);

/* Which source telem_clock_init chose: "tsc", "cntvct" or "clock_gettime" (logs, tests). */
const char *telem_clock_source(void);

static inline uint64_t telem_clock_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t telem_clock_tick(void)
{
#if defined(__x86_64__)
    return __rdtsc();
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ volatile("isb; mrs %0, cntvct_el0" : "=r"(v)::"memory");
    return v;
#else
    return 0;
#endif
}

/* CLOCK_MONOTONIC in ns, the cheap way when telem_clock_init found one. */
static inline uint64_t telem_clock_now_ns(void)
{
    const telem_clock_t *c = &nixl_telem_clock;
    if (!c->use_counter)
        return telem_clock_mono_ns();
    uint64_t d = telem_clock_tick() - c->base_tick;
    if ((int64_t)d < 0)
        d = 0; /* a core whose counter lags the anchor's by a few ticks, just after it */
    __extension__ typedef unsigned __int128 u128;
    return c->base_ns + (uint64_t)(((u128)d * c->mult) >> 32);
}

#endif
