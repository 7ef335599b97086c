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

#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

/* The scaling in use; re-anchored about every 100 ms (telem_clock_reanchor) under a sequence
 * count, so readers never mix two anchors. Fields are atomics read relaxed (plain loads). */
typedef struct telem_clock {
    int use_counter;            /* 0: clock_gettime; 1: the CPU counter below (set once) */
    uint64_t period_ticks;      /* re-anchor when this many ticks passed since the anchor */
    _Atomic uint32_t seq;       /* odd while an anchor is being written */
    _Atomic uint64_t base_tick; /* the counter at the anchor */
    _Atomic uint64_t base_ns;   /* the clock's value at the anchor */
    _Atomic uint64_t mult;      /* ns per tick, 32.32 fixed point */
} telem_clock_t;

extern telem_clock_t nixl_telem_clock;

/* Called by a reader that found the anchor older than period_ticks: one thread at a time
 * takes a fresh (counter, CLOCK_MONOTONIC) pair and steers towards it (telem_clock.c). */
void telem_clock_reanchor(uint64_t tick);

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

/* The counter's value scaled by the anchor in force (no re-anchoring). */
static inline uint64_t telem_clock_scale(uint64_t tick, uint64_t *age)
{
    telem_clock_t *c = &nixl_telem_clock;
    uint32_t s0, s1;
    uint64_t base_tick, base_ns, mult;
    do {
        /* acquire loads keep the second count read after the fields (no fence: gcc's
         * ThreadSanitizer refuses atomic_thread_fence); plain loads on x86-64 */
        s0 = atomic_load_explicit(&c->seq, memory_order_acquire);
        base_tick = atomic_load_explicit(&c->base_tick, memory_order_acquire);
        base_ns = atomic_load_explicit(&c->base_ns, memory_order_acquire);
        mult = atomic_load_explicit(&c->mult, memory_order_acquire);
        s1 = atomic_load_explicit(&c->seq, memory_order_relaxed);
    } while ((s0 & 1u) || s0 != s1);
    uint64_t d = tick - base_tick;
    if ((int64_t)d < 0)
        d = 0; /* a core whose counter lags the anchor's by a few ticks, just after it */
    if (age)
        *age = d;
    __extension__ typedef unsigned __int128 u128;
    return base_ns + (uint64_t)(((u128)d * mult) >> 32);
}

/* CLOCK_MONOTONIC in ns, the cheap way when telem_clock_init found one. */
static inline uint64_t telem_clock_now_ns(void)
{
    if (!nixl_telem_clock.use_counter)
        return telem_clock_mono_ns();
    uint64_t age, tick = telem_clock_tick();
    uint64_t ns = telem_clock_scale(tick, &age);
    if (age > nixl_telem_clock.period_ticks)
        telem_clock_reanchor(tick);
    return ns;
}

#endif
