/* telem_clock.c - choosing and calibrating the telemetry clock (telem_clock.h has the why). */
#include "telem_clock.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "log.h"

telem_clock_t nixl_telem_clock;
static const char *clock_source = "clock_gettime";
static pthread_once_t clock_once = PTHREAD_ONCE_INIT;

/* One (counter, monotonic) pair: the counter read between two clock reads, the pair with the
 * narrowest bracket of a few tries (a preempted try shows as a wide one). */
static void anchor(uint64_t *tick, uint64_t *ns)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 8; i++) {
        uint64_t a = telem_clock_mono_ns();
        uint64_t t = telem_clock_tick();
        uint64_t b = telem_clock_mono_ns();
        if (b - a < best) {
            best = b - a;
            *tick = t;
            *ns = a + (b - a) / 2;
        }
    }
}

#if defined(__x86_64__)
/* The TSC is usable when it is invariant (constant rate in every power state) and the kernel
 * still trusts it as its own clocksource (it switches away from a TSC it finds unstable, for
 * instance one that differs between sockets or a VM without a stable TSC). */
static int tsc_trusted(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000000u, &a, &b, &c, &d) || a < 0x80000007u)
        return 0;
    __get_cpuid(0x80000007u, &a, &b, &c, &d);
    if (!(d & (1u << 8)))
        return 0;
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    if (!f)
        return 0;
    char name[32] = "";
    int ok = fgets(name, sizeof(name), f) && strncmp(name, "tsc\n", 4) == 0;
    fclose(f);
    return ok;
}
#endif

static void clock_choose(void)
{
#if defined(__x86_64__)
    if (!tsc_trusted())
        return;
    uint64_t t0, n0, t1, n1;
    anchor(&t0, &n0);
    do { /* ~2 ms: the rate error is the anchors' bracket (tens of ns) over this span */
        anchor(&t1, &n1);
    } while (n1 - n0 < 2000000u);
    if (t1 <= t0)
        return;
    __extension__ typedef unsigned __int128 u128;
    nixl_telem_clock.mult = (uint64_t)(((u128)(n1 - n0) << 32) / (t1 - t0));
    nixl_telem_clock.base_tick = t1;
    nixl_telem_clock.base_ns = n1;
    clock_source = "tsc";
#elif defined(__aarch64__)
    uint64_t freq;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(freq));
    if (freq == 0)
        return;
    nixl_telem_clock.mult = (uint64_t)((1000000000ull << 32) / freq);
    anchor(&nixl_telem_clock.base_tick, &nixl_telem_clock.base_ns);
    clock_source = "cntvct";
#else
    return;
#endif
    if (nixl_telem_clock.mult == 0)
        return;
    nixl_telem_clock.use_counter = 1;
    NIXL_DEBUG("telemetry clock: %s, %.4f ns per tick", clock_source,
               (double)nixl_telem_clock.mult / 4294967296.0);
}

void telem_clock_init(void)
{
    pthread_once(&clock_once, clock_choose);
}

const char *telem_clock_source(void)
{
    return clock_source;
}
