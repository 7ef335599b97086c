/* telem_clock.c - choosing and calibrating the telemetry clock (telem_clock.h has the why). */
#include "telem_clock.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "log.h"

telem_clock_t nixl_telem_clock;
static const char *clock_source = "clock_gettime";
static pthread_once_t clock_once = PTHREAD_ONCE_INIT;
/* The first anchor (the long baseline of the rate) and the re-anchoring thread's flag. */
static uint64_t first_tick, first_ns;
static atomic_flag reanchoring = ATOMIC_FLAG_INIT;

/* Re-anchor about this often (ns): the calibration's rate error over this span is the most
 * the clock can part from CLOCK_MONOTONIC between two anchors (25 ppm: 2.5 us). */
#define TELEM_CLOCK_PERIOD_NS 100000000u

static void set_anchor(uint64_t tick, uint64_t ns, uint64_t mult)
{
    telem_clock_t *c = &nixl_telem_clock;
    /* the odd count is visible before the fields change (an acquire RMW keeps the stores
     * after it), the even one after (release) */
    uint32_t s = atomic_fetch_add_explicit(&c->seq, 1, memory_order_acq_rel);
    atomic_store_explicit(&c->base_tick, tick, memory_order_relaxed);
    atomic_store_explicit(&c->base_ns, ns, memory_order_relaxed);
    atomic_store_explicit(&c->mult, mult, memory_order_relaxed);
    atomic_store_explicit(&c->seq, s + 2, memory_order_release);
}

/* One (counter, monotonic) pair: the counter read between two clock reads, the pair with the
 * narrowest bracket of a few tries (a preempted try shows as a wide one). */
static void anchor(uint64_t *tick, uint64_t *ns)
{
    uint64_t best = 0;
    for (int i = 0; i < 8; i++) {
        uint64_t a = telem_clock_mono_ns();
        uint64_t t = telem_clock_tick();
        uint64_t b = telem_clock_mono_ns();
        if (i == 0 || b - a < best) { /* the first try always sets the pair */
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
    first_tick = t0;
    first_ns = n0;
    set_anchor(t1, n1, (uint64_t)(((u128)(n1 - n0) << 32) / (t1 - t0)));
    clock_source = "tsc";
#elif defined(__aarch64__)
    uint64_t freq;
    __asm__ volatile("mrs %0, cntfrq_el0" : "=r"(freq));
    if (freq == 0)
        return;
    uint64_t t, n;
    anchor(&t, &n);
    first_tick = t;
    first_ns = n;
    set_anchor(t, n, (uint64_t)((1000000000ull << 32) / freq));
    clock_source = "cntvct";
#else
    return;
#endif
    uint64_t mult = atomic_load(&nixl_telem_clock.mult);
    if (mult == 0)
        return;
    __extension__ typedef unsigned __int128 u128x;
    nixl_telem_clock.period_ticks = (uint64_t)(((u128x)TELEM_CLOCK_PERIOD_NS << 32) / mult);
    nixl_telem_clock.use_counter = 1;
    NIXL_DEBUG("telemetry clock: %s, %.4f ns per tick", clock_source, (double)mult / 4294967296.0);
}

void telem_clock_reanchor(uint64_t tick)
{
    if (atomic_flag_test_and_set_explicit(&reanchoring, memory_order_acquire))
        return; /* another thread is at it */
    telem_clock_t *c = &nixl_telem_clock;
    uint64_t age;
    telem_clock_scale(tick, &age);
    if (age > c->period_ticks) { /* not done by another thread meanwhile */
        /* the best of a few tries, as at calibration: a single bracket that was preempted, or
         * slowed (valgrind), misplaces the anchor and the lifetime rate by half its width
         * (the unit test saw the clock 50 us behind CLOCK_MONOTONIC under valgrind) */
        uint64_t t, mono;
        anchor(&t, &mono);
        uint64_t ours = telem_clock_scale(t, NULL);
        __extension__ typedef unsigned __int128 u128;
        /* the rate over the whole life of the process: its error shrinks as the life grows */
        uint64_t rate = t > first_tick && mono > first_ns
                            ? (uint64_t)(((u128)(mono - first_ns) << 32) / (t - first_tick))
                            : atomic_load_explicit(&c->mult, memory_order_relaxed);
        uint64_t period_ns = (uint64_t)(((u128)c->period_ticks * rate) >> 32);
        if (ours <= mono || ours - mono > period_ns / 2) {
            set_anchor(t, mono, rate); /* behind: step forward; far ahead: step back */
        } else {
            /* ahead by a little: run slower so as to meet CLOCK_MONOTONIC a period from now */
            uint64_t target = mono + period_ns;
            set_anchor(t, ours, (uint64_t)(((u128)(target - ours) << 32) / c->period_ticks));
        }
    }
    atomic_flag_clear_explicit(&reanchoring, memory_order_release);
}

void telem_clock_init(void)
{
    pthread_once(&clock_once, clock_choose);
}

const char *telem_clock_source(void)
{
    return clock_source;
}
