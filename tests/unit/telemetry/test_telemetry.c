/*
 * test_telemetry.c - the staging queue under concurrent producers (nothing lost or duplicated,
 * batches whole, drops counted), the settings of reference 8.1 (defaults, bad values refused
 * with a reason, the glob allowlist), and the events an agent with the BUFFER exporter writes
 * for registrations, transfers and failures.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_impl.h"
#include "agent_test.h"
#include "config.h"
#include "nixl.h"
#include "nixl_telemetry.h"
#include "telem.h"
#include "telem_queue.h"

static const char *const vars[] = {
    "NIXL_TELEMETRY_ENABLE", "NIXL_TELEMETRY_EXPORTER", "NIXL_TELEMETRY_DIR",
    "NIXL_TELEMETRY_BUFFER_SIZE", "NIXL_TELEMETRY_RUN_INTERVAL",
    "NIXL_TELEMETRY_ENABLED_METRICS",
};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    return 0;
}

/* ---- the staging queue ---- */

#define PRODUCERS 4
#define BATCHES 20000

static atomic_uint finished;

typedef struct {
    telem_queue_t *q;
    unsigned id;
    uint64_t pushed;
} producer_t;

static void *producer(void *arg)
{
    producer_t *p = arg;
    for (uint64_t b = 0; b < BATCHES; b++) {
        nixl_telemetry_event_t ev[4];
        for (unsigned i = 0; i < 4; i++)
            ev[i] = (nixl_telemetry_event_t){.id = p->id, .value = b * 4 + i};
        if (telem_queue_push(p->q, ev, 4))
            p->pushed += 4;
    }
    atomic_fetch_add(&finished, 1);
    return NULL;
}

static void test_queue_concurrent(void **state)
{
    (void)state;
    telem_queue_t q;
    assert_true(telem_queue_init(&q, 64)); /* small: producers overrun the consumer */
    producer_t p[PRODUCERS];
    pthread_t th[PRODUCERS];
    for (unsigned i = 0; i < PRODUCERS; i++) {
        p[i] = (producer_t){.q = &q, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, producer, &p[i]), 0);
    }
    uint64_t got[PRODUCERS] = {0}, next[PRODUCERS] = {0}, dropped = 0;
    nixl_telemetry_event_t buf[64];
    for (;;) {
        bool last = atomic_load(&finished) == PRODUCERS; /* before the pop: nothing comes after */
        size_t n = telem_queue_pop(&q, buf, 64);
        dropped += telem_queue_take_dropped(&q);
        for (size_t i = 0; i < n; i++) {
            unsigned id = buf[i].id;
            assert_true(id < PRODUCERS);
            /* per producer: increasing values; a batch arrives whole and in order */
            assert_true(buf[i].value >= next[id]);
            if (buf[i].value % 4)
                assert_int_equal(buf[i].value, next[id]);
            next[id] = buf[i].value + 1;
            got[id]++;
        }
        if (n == 0 && last)
            break;
    }
    for (unsigned i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    uint64_t total = 0;
    for (unsigned i = 0; i < PRODUCERS; i++) {
        assert_int_equal(got[i], p[i].pushed);
        total += got[i];
    }
    dropped += telem_queue_take_dropped(&q);
    assert_int_equal(total + dropped, (uint64_t)PRODUCERS * BATCHES * 4);
    assert_true(total > 0);
    telem_queue_fini(&q);
}

static void test_queue_full_batch(void **state)
{
    (void)state;
    telem_queue_t q;
    assert_true(telem_queue_init(&q, 6));
    nixl_telemetry_event_t ev[4] = {{.id = 1}, {.id = 2}, {.id = 3}, {.id = 4}};
    assert_true(telem_queue_push(&q, ev, 4));
    assert_false(telem_queue_push(&q, ev, 4)); /* 2 free slots: nothing of the batch goes in */
    assert_int_equal(telem_queue_take_dropped(&q), 4);
    assert_true(telem_queue_push(&q, ev, 2));
    nixl_telemetry_event_t out[8];
    assert_int_equal(telem_queue_pop(&q, out, 8), 6);
    assert_false(telem_queue_push(&q, ev, 7)); /* larger than the queue */
    assert_int_equal(telem_queue_take_dropped(&q), 7);
    assert_true(telem_queue_push(&q, ev, 4)); /* wraps around */
    assert_int_equal(telem_queue_pop(&q, out, 8), 4);
    assert_int_equal(out[3].id, 4);
    telem_queue_fini(&q);
}

/* ---- settings ---- */

static void test_settings(void **state)
{
    (void)state;
    nixl_telem_settings_t s;
    assert_int_equal(nixl_telem_settings_read(false, "t", &s), NIXL_SUCCESS);
    assert_false(s.enabled);
    assert_int_equal(nixl_telem_settings_read(true, "t", &s), NIXL_SUCCESS);
    assert_true(s.enabled);
    assert_string_equal(s.exporter, ""); /* no dir, no exporter: collect only */
    assert_int_equal(s.buffer_size, 4096);
    assert_int_equal(s.run_interval_ms, 100);
    assert_int_equal(s.enabled_mask, (1u << NIXL_TELEM_EVENT_COUNT) - 1);

    setenv("NIXL_TELEMETRY_ENABLE", "off", 1); /* the variable wins over the flag */
    assert_int_equal(nixl_telem_settings_read(true, "t", &s), NIXL_SUCCESS);
    assert_false(s.enabled);
    setenv("NIXL_TELEMETRY_ENABLE", "maybe", 1);
    assert_int_equal(nixl_telem_settings_read(true, "t", &s), NIXL_ERR_MISMATCH);
    setenv("NIXL_TELEMETRY_ENABLE", "yes", 1);
    setenv("NIXL_TELEMETRY_DIR", "/tmp", 1);
    assert_int_equal(nixl_telem_settings_read(false, "t", &s), NIXL_SUCCESS);
    assert_string_equal(s.exporter, "BUFFER"); /* a directory selects BUFFER */
    setenv("NIXL_TELEMETRY_EXPORTER", "nop", 1);
    assert_int_equal(nixl_telem_settings_read(false, "t", &s), NIXL_SUCCESS);
    assert_string_equal(s.exporter, "");

    setenv("NIXL_TELEMETRY_BUFFER_SIZE", "0", 1);
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "NIXL_TELEMETRY_BUFFER_SIZE",
               nixl_telem_settings_read(false, "t", &s));
    setenv("NIXL_TELEMETRY_BUFFER_SIZE", "12x", 1);
    EXPECT_ERR(NIXL_ERR_MISMATCH, "NIXL_TELEMETRY_BUFFER_SIZE",
               nixl_telem_settings_read(false, "t", &s));
    setenv("NIXL_TELEMETRY_BUFFER_SIZE", "100", 1);
    setenv("NIXL_TELEMETRY_RUN_INTERVAL", "0", 1);
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "NIXL_TELEMETRY_RUN_INTERVAL",
               nixl_telem_settings_read(false, "t", &s));
    setenv("NIXL_TELEMETRY_RUN_INTERVAL", "5", 1);
    assert_int_equal(nixl_telem_settings_read(false, "t", &s), NIXL_SUCCESS);
    assert_int_equal(s.buffer_size, 100);
    assert_int_equal(s.run_interval_ms, 5);
}

static void test_metrics_mask(void **state)
{
    (void)state;
    assert_int_equal(nixl_telem_metrics_mask(NULL, "t"), (1u << NIXL_TELEM_EVENT_COUNT) - 1);
    assert_int_equal(nixl_telem_metrics_mask("", "t"), (1u << NIXL_TELEM_EVENT_COUNT) - 1);
    assert_int_equal(nixl_telem_metrics_mask("agent_tx_bytes", "t"), 1u << NIXL_TELEM_TX_BYTES);
    assert_int_equal(nixl_telem_metrics_mask(" agent_*x_bytes , agent_xfer_time", "t"),
                     (1u << NIXL_TELEM_TX_BYTES) | (1u << NIXL_TELEM_RX_BYTES) |
                         (1u << NIXL_TELEM_XFER_TIME));
    assert_int_equal(nixl_telem_metrics_mask("agent_err_*", "t"), 0xfffu << 8);
    assert_int_equal(nixl_telem_metrics_mask("nothing_here", "t"), 0); /* warned */
}

/* ---- an agent and its ring ---- */

typedef struct {
    uint64_t count[NIXL_TELEM_EVENT_COUNT];
    uint64_t sum[NIXL_TELEM_EVENT_COUNT];
    uint64_t header_capacity;
    int version;
} ring_summary_t;

/* Read the ring file with the byte offsets of reference 8.3 (not the struct). */
static void ring_read(const char *path, ring_summary_t *out)
{
    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    close(fd);
    uint64_t w, r, cap, mask;
    int32_t ver, exp;
    memcpy(&w, m + 0, 8);
    memcpy(&r, m + 8, 8);
    memcpy(&ver, m + 16, 4);
    memcpy(&exp, m + 20, 4);
    memcpy(&cap, m + 24, 8);
    memcpy(&mask, m + 32, 8);
    assert_int_equal(ver, 4);
    assert_int_equal(exp, 4);
    assert_int_equal(mask, cap - 1);
    assert_int_equal((uint64_t)st.st_size, 40 + cap * 16);
    out->header_capacity = cap;
    out->version = ver;
    while (r != w) {
        uint32_t id, pad;
        uint64_t v;
        memcpy(&id, m + 40 + r * 16, 4);
        memcpy(&pad, m + 40 + r * 16 + 4, 4);
        memcpy(&v, m + 40 + r * 16 + 8, 8);
        assert_int_equal(pad, 0);
        assert_true(id < NIXL_TELEM_EVENT_COUNT);
        out->count[id]++;
        out->sum[id] += v;
        r = (r + 1) & mask;
    }
    memcpy(m + 8, &r, 8); /* consumed */
    munmap(m, (size_t)st.st_size);
}

static char tmpdir[64];

static int make_dir(void **state)
{
    clear_env(state);
    strcpy(tmpdir, "/tmp/nixl-telem-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    setenv("NIXL_TELEMETRY_DIR", tmpdir, 1);
    setenv("NIXL_TELEMETRY_ENABLE", "y", 1);
    return 0;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- the telemetry clock (telem_clock.h) ---- */

/* The counter scaled to CLOCK_MONOTONIC: each reading lies between two monotonic reads around
 * it (give or take the scaling error, 50 us here over ~0.2 s), and never goes back. */
/* One reading between two CLOCK_MONOTONIC reads: within 50 us of them and not before *prev;
 * how far (ns) it lies outside the bracket. */
static uint64_t clock_sample(uint64_t *prev)
{
    uint64_t a = telem_clock_mono_ns();
    uint64_t t = telem_clock_now_ns();
    uint64_t b = telem_clock_mono_ns();
    assert_true(t + 50000 >= a);
    assert_true(t <= b + 50000);
    assert_true(t >= *prev);
    *prev = t;
    return t < a ? a - t : t > b ? t - b : 0;
}

static void test_clock(void **state)
{
    (void)state;
    telem_clock_init();
    const char *src = telem_clock_source();
    print_message("telemetry clock: %s\n", src);
#if defined(__x86_64__) || defined(__aarch64__)
    /* the counter is used where the kernel itself trusts it */
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    char cs[32] = "";
    if (f) {
        if (!fgets(cs, sizeof(cs), f))
            cs[0] = '\0';
        fclose(f);
    }
#if defined(__aarch64__)
    assert_string_equal(src, "cntvct");
#else
    if (strcmp(cs, "tsc\n") != 0)
        assert_string_equal(src, "clock_gettime");
#endif
#endif
    uint64_t prev = 0;
    for (int i = 0; i < 2000; i++) {
        clock_sample(&prev);
        if (i % 100 == 0)
            usleep(100);
    }
    /* Across re-anchorings (about every 100 ms): still within 50 us, never backwards. */
    uint64_t end = telem_clock_mono_ns() + 450000000u, worst = 0;
    while (telem_clock_mono_ns() < end) {
        uint64_t off = clock_sample(&prev);
        worst = off > worst ? off : worst;
        usleep(500);
    }
    print_message("telemetry clock: at most %llu ns outside CLOCK_MONOTONIC over 450 ms\n",
                  (unsigned long long)worst);
}

/* A request's start time is on the CLOCK_MONOTONIC scale whatever the clock source. */
static void test_clock_request_times(void **state)
{
    (void)state;
    setenv("NIXL_TELEMETRY_ENABLE", "y", 1);
    unsetenv("NIXL_TELEMETRY_DIR");
    unsetenv("NIXL_TELEMETRY_EXPORTER");
    nixl_agent_t *a = t_agent("telem-clock", NULL, NULL, NULL);
    uint8_t *src = t_alloc(4096), *dst = t_alloc(4096);
    t_reg(a, src, 4096);
    t_reg(a, dst, 4096);
    nixl_desc_t l = t_desc(src, 4096), r = t_desc(dst, 4096);
    nixl_xfer_req_t *w = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1,
                                                       NIXL_DRAM_SEG, &r, 1, "telem-clock",
                                                       NULL, &w));
    uint64_t before = telem_clock_mono_ns() / 1000;
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, w, NULL));
    uint64_t after = telem_clock_mono_ns() / 1000;
    nixl_xfer_telem_t tm;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_xfer_telemetry(a, w, &tm));
    assert_true(tm.start_time_us + 50 >= before);
    assert_true(tm.start_time_us <= after + 50);
    assert_true(tm.xfer_duration_us <= after - before + 50);
    assert_true(tm.post_duration_us <= tm.xfer_duration_us);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    t_dereg(a, src, 4096);
    t_dereg(a, dst, 4096);
    nixl_agent_destroy(a);
    unsetenv("NIXL_TELEMETRY_ENABLE");
    free(src);
    free(dst);
}

#define XFERS 25
#define BLOCK 4096

static void test_agent_ring(void **state)
{
    (void)state;
    nixl_agent_t *a = t_agent("telem-a", NULL, NULL, NULL);
    uint8_t *src = t_alloc(BLOCK), *dst = t_alloc(BLOCK);
    t_reg(a, src, BLOCK);
    t_reg(a, dst, BLOCK);
    nixl_desc_t l = t_desc(src, BLOCK), r = t_desc(dst, BLOCK);
    nixl_xfer_req_t *w = NULL, *rd = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1,
                                                       NIXL_DRAM_SEG, &r, 1, "telem-a", NULL, &w));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_READ, NIXL_DRAM_SEG, &l, 1,
                                                       NIXL_DRAM_SEG, &r, 1, "telem-a", NULL, &rd));
    for (int i = 0; i < XFERS; i++) {
        EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, w, NULL));
        /* polling again after completion reports nothing more */
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_xfer_status(a, w));
    }
    for (int i = 0; i < 3; i++)
        EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, rd, NULL));
    /* two failures: an unknown peer (NOT_FOUND), a bad memory type (INVALID_PARAM) */
    nixl_xfer_req_t *bad = NULL;
    EXPECT_ST(NIXL_ERR_NOT_FOUND, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1,
                                                             NIXL_DRAM_SEG, &r, 1, "nobody",
                                                             NULL, &bad));
    EXPECT_ST(NIXL_ERR_INVALID_PARAM, nixl_agent_create_xfer_req(a, NIXL_WRITE, 99, &l, 1,
                                                                 NIXL_DRAM_SEG, &r, 1, "telem-a",
                                                                 NULL, &bad));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, rd));
    t_dereg(a, src, BLOCK);
    nixl_agent_destroy(a); /* flushes */

    char path[128];
    snprintf(path, sizeof(path), "%s/telem-a", tmpdir);
    ring_summary_t s;
    ring_read(path, &s);
    assert_int_equal(s.header_capacity, 4096);
    assert_int_equal(s.count[NIXL_TELEM_MEMORY_REGISTERED], 2);
    assert_int_equal(s.sum[NIXL_TELEM_MEMORY_REGISTERED], 2 * BLOCK);
    assert_int_equal(s.sum[NIXL_TELEM_MEMORY_DEREGISTERED], BLOCK);
    assert_int_equal(s.count[NIXL_TELEM_TX_BYTES], XFERS);
    assert_int_equal(s.sum[NIXL_TELEM_TX_BYTES], XFERS * BLOCK);
    assert_int_equal(s.sum[NIXL_TELEM_TX_REQUESTS_NUM], XFERS);
    assert_int_equal(s.sum[NIXL_TELEM_RX_BYTES], 3 * BLOCK);
    assert_int_equal(s.sum[NIXL_TELEM_RX_REQUESTS_NUM], 3);
    assert_int_equal(s.count[NIXL_TELEM_XFER_TIME], XFERS + 3);
    assert_int_equal(s.count[NIXL_TELEM_XFER_POST_TIME], XFERS + 3);
    assert_int_equal(s.sum[NIXL_TELEM_ERR_NOT_FOUND], 1);
    assert_int_equal(s.sum[NIXL_TELEM_ERR_INVALID_PARAM], 1);
    assert_int_equal(s.count[NIXL_TELEM_TELEMETRY_EVENTS_DROPPED], 0);
    free(src);
    free(dst);
}

/* A ring of 8 slots (7 usable) and a queue of 8 events, nobody reading: what does not fit is
 * counted and reported once the reader makes room. The allowlist keeps only tx bytes. */
static void test_agent_ring_overflow(void **state)
{
    (void)state;
    setenv("NIXL_TELEMETRY_BUFFER_SIZE", "8", 1);
    setenv("NIXL_TELEMETRY_RUN_INTERVAL", "1", 1);
    setenv("NIXL_TELEMETRY_ENABLED_METRICS", "agent_tx_bytes,agent_telemetry_*", 1);
    nixl_agent_t *a = t_agent("telem-b", NULL, NULL, NULL);
    uint8_t *src = t_alloc(BLOCK), *dst = t_alloc(BLOCK);
    t_reg(a, src, BLOCK);
    t_reg(a, dst, BLOCK);
    nixl_desc_t l = t_desc(src, BLOCK), r = t_desc(dst, BLOCK);
    nixl_xfer_req_t *w = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1,
                                                       NIXL_DRAM_SEG, &r, 1, "telem-b", NULL, &w));
    for (int i = 0; i < 20; i++) {
        EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, w, NULL));
        nixl_telem_flush(a->telem); /* the queue holds 8: move each event to the ring */
    }
    char path[128];
    snprintf(path, sizeof(path), "%s/telem-b", tmpdir);
    ring_summary_t s;
    ring_read(path, &s); /* 7 events fit; 13 were dropped */
    assert_int_equal(s.header_capacity, 8);
    assert_int_equal(s.count[NIXL_TELEM_TX_BYTES], 7);
    assert_int_equal(s.count[NIXL_TELEM_MEMORY_REGISTERED], 0); /* not allowed */
    assert_int_equal(s.count[NIXL_TELEM_TELEMETRY_EVENTS_DROPPED], 0);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, w, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, w));
    nixl_agent_destroy(a);
    ring_read(path, &s); /* the drop count, then the new event */
    assert_int_equal(s.count[NIXL_TELEM_TELEMETRY_EVENTS_DROPPED], 1);
    assert_int_equal(s.sum[NIXL_TELEM_TELEMETRY_EVENTS_DROPPED], 13);
    assert_int_equal(s.count[NIXL_TELEM_TX_BYTES], 1);
    free(src);
    free(dst);
}

static void test_agent_bad_settings(void **state)
{
    (void)state;
    nixl_agent_t *a = NULL;
    setenv("NIXL_TELEMETRY_BUFFER_SIZE", "1000", 1);
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "power of two", nixl_agent_create("telem-c", NULL, &a));
    assert_null(a);
    setenv("NIXL_TELEMETRY_BUFFER_SIZE", "1024", 1);
    setenv("NIXL_TELEMETRY_EXPORTER", "no_such_exporter", 1);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "libtelemetry_exporter_no_such_exporter.so",
               nixl_agent_create("telem-c", NULL, &a));
    setenv("NIXL_TELEMETRY_EXPORTER", "../evil", 1);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "not a valid exporter name", nixl_agent_create("telem-c", NULL, &a));
    setenv("NIXL_TELEMETRY_EXPORTER", "BUFFER", 1);
    setenv("NIXL_TELEMETRY_DIR", "/nonexistent-dir/x", 1);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "/nonexistent-dir/x", nixl_agent_create("telem-c", NULL, &a));
    setenv("NIXL_TELEMETRY_DIR", tmpdir, 1);
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "cannot name a file",
               nixl_agent_create("..", NULL, &a));
    /* telemetry off: nothing is written and no variable is checked */
    setenv("NIXL_TELEMETRY_ENABLE", "n", 1);
    setenv("NIXL_TELEMETRY_BUFFER_SIZE", "0", 1);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("telem-d", NULL, &a));
    nixl_agent_destroy(a);
    char path[128];
    snprintf(path, sizeof(path), "%s/telem-d", tmpdir);
    assert_int_equal(access(path, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_concurrent),
        cmocka_unit_test(test_queue_full_batch),
        cmocka_unit_test_setup(test_settings, clear_env),
        cmocka_unit_test(test_metrics_mask),
        cmocka_unit_test(test_clock),
        cmocka_unit_test_setup(test_clock_request_times, clear_env),
        cmocka_unit_test_setup_teardown(test_agent_ring, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_agent_ring_overflow, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(test_agent_bad_settings, make_dir, remove_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
