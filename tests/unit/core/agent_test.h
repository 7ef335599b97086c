/*
 * agent_test.h - helpers shared by the agent API tests (test_agent_*.c). Only the public
 * header is used: these tests see the library as a user does.
 *
 * Everything here is static inline so that a test file that does not use a helper does not
 * warn. Helpers that assert use cmocka and must run on the test's main thread; the thread
 * tests count failures instead and assert in the main thread.
 */
#ifndef NIXL_TEST_AGENT_TEST_H
#define NIXL_TEST_AGENT_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <cmocka.h>

#include "nixl.h"

/* ------------------------------------------------------------------------------------------ */
/* Status assertions that say what went wrong                                                  */
/* ------------------------------------------------------------------------------------------ */

static inline void t_expect_status(nixl_status_t got, nixl_status_t want, const char *expr,
                                   const char *file, int line)
{
    if (got == want)
        return;
    print_error("%s:%d: %s\n    returned %s (%d), expected %s (%d)\n    last error: '%s'\n",
                file, line, expr, nixl_status_str(got), (int)got, nixl_status_str(want),
                (int)want, nixl_last_error());
    _fail(file, line);
}

/* The last error is set and mentions `what`. */
static inline void t_expect_error_mentions(const char *what, const char *expr, const char *file,
                                           int line)
{
    const char *e = nixl_last_error();
    if (e && e[0] && (!what || strstr(e, what)))
        return;
    print_error("%s:%d: after %s\n    nixl_last_error() is '%s', expected it to mention '%s'\n",
                file, line, expr, e ? e : "(null)", what ? what : "(anything)");
    _fail(file, line);
}

/* `expr` returns `want`. */
#define EXPECT_ST(want, expr) t_expect_status((expr), (want), #expr, __FILE__, __LINE__)

/* `expr` fails with `want` and nixl_last_error() mentions `what` (NULL: is non-empty). */
#define EXPECT_ERR(want, what, expr)                                                          \
    do {                                                                                     \
        t_expect_status((expr), (want), #expr, __FILE__, __LINE__);                          \
        t_expect_error_mentions((what), #expr, __FILE__, __LINE__);                          \
    } while (0)

/* The last error (of the call just made) also mentions `what`. */
#define EXPECT_LASTERR(what) t_expect_error_mentions((what), "the previous call", __FILE__, __LINE__)

/* ------------------------------------------------------------------------------------------ */
/* Time                                                                                        */
/* ------------------------------------------------------------------------------------------ */

static inline uint64_t t_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void t_sleep_us(unsigned us)
{
    struct timespec ts = {.tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Buffers with a checkable pattern                                                            */
/* ------------------------------------------------------------------------------------------ */

static inline uint8_t t_pattern(size_t i, unsigned seed)
{
    return (uint8_t)((i * 131u) ^ (i >> 9) ^ (seed * 0x5bu) ^ (seed >> 3));
}

/* A deterministic xorshift64 generator (`*state` starts non-zero). */
static inline uint64_t t_rnd(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

static inline void t_fill(void *buf, size_t len, unsigned seed)
{
    uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        p[i] = t_pattern(i, seed);
}

/* Index of the first byte that does not hold pattern `seed`, or -1 when all do. */
static inline long t_check(const void *buf, size_t len, unsigned seed)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        if (p[i] != t_pattern(i, seed))
            return (long)i;
    return -1;
}

static inline long t_check_byte(const void *buf, size_t len, uint8_t v)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++)
        if (p[i] != v)
            return (long)i;
    return -1;
}

#define EXPECT_PATTERN(buf, len, seed) assert_int_equal(t_check((buf), (len), (seed)), -1)
#define EXPECT_BYTES(buf, len, v) assert_int_equal(t_check_byte((buf), (len), (v)), -1)

static inline void *t_alloc(size_t len)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 4096, len ? len : 1), 0);
    memset(p, 0, len);
    return p;
}

/* Large zeroed buffers straight from the kernel (no memset, freed with t_free_zero). */
static inline void *t_alloc_zero(size_t len)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    return p;
}

static inline void t_free_zero(void *p, size_t len)
{
    if (p)
        munmap(p, len);
}

static inline nixl_desc_t t_desc(const void *p, size_t len)
{
    return (nixl_desc_t){.addr = (uintptr_t)p, .len = len, .dev_id = 0};
}

static inline nixl_reg_desc_t t_rdesc(const void *p, size_t len)
{
    return (nixl_reg_desc_t){.addr = (uintptr_t)p, .len = len, .dev_id = 0};
}

/* ------------------------------------------------------------------------------------------ */
/* Agents                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* An agent with the built-in SHM backend; `threshold` is SHM's async_threshold (NULL: default).
 * `cfg` may be NULL. */
static inline nixl_agent_t *t_agent(const char *name, const nixl_agent_config_t *cfg,
                                    const char *threshold, nixl_backend_t **out_be)
{
    nixl_agent_t *a = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create(name, cfg, &a));
    assert_non_null(a);
    nixl_param_t p = {"async_threshold", threshold};
    nixl_backend_t *be = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "SHM", threshold ? &p : NULL,
                                                      threshold ? 1 : 0, &be));
    assert_non_null(be);
    if (out_be)
        *out_be = be;
    return a;
}

static inline void t_reg(nixl_agent_t *a, const void *p, size_t len)
{
    nixl_reg_desc_t d = t_rdesc(p, len);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_register_mem(a, NIXL_DRAM_SEG, &d, 1, NULL));
}

static inline void t_dereg(nixl_agent_t *a, const void *p, size_t len)
{
    nixl_reg_desc_t d = t_rdesc(p, len);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_deregister_mem(a, NIXL_DRAM_SEG, &d, 1, NULL));
}

/* Load `from`'s full metadata into `into`; checks the returned name. */
static inline void t_load(nixl_agent_t *into, nixl_agent_t *from)
{
    void *blob = NULL;
    size_t len = 0;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_local_md(from, &blob, &len));
    char *name = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_load_remote_md(into, blob, len, &name));
    assert_non_null(name);
    assert_string_equal(name, nixl_agent_name(from));
    nixl_free(name);
    nixl_free(blob);
}

/* Poll a request until it leaves IN_PROG (or `timeout_ms` passes: then IN_PROG). */
static inline nixl_status_t t_wait(nixl_agent_t *a, nixl_xfer_req_t *r, unsigned timeout_ms)
{
    uint64_t end = t_now_ns() + (uint64_t)timeout_ms * 1000000u;
    nixl_status_t st;
    while ((st = nixl_agent_get_xfer_status(a, r)) == NIXL_IN_PROG && t_now_ns() < end)
        t_sleep_us(200);
    return st;
}

/* Poll the fetch of `name` until it ends (or `timeout_ms` passes: then IN_PROG). */
static inline nixl_status_t t_wait_fetch(nixl_agent_t *a, const char *name, unsigned timeout_ms)
{
    uint64_t end = t_now_ns() + (uint64_t)timeout_ms * 1000000u;
    nixl_status_t st;
    while ((st = nixl_agent_get_fetch_status(a, name)) == NIXL_IN_PROG && t_now_ns() < end)
        t_sleep_us(2000);
    return st;
}

/* Post and wait; the final status. */
static inline nixl_status_t t_post_wait(nixl_agent_t *a, nixl_xfer_req_t *r,
                                        const nixl_opt_args_t *opt)
{
    nixl_status_t st = nixl_agent_post_xfer_req(a, r, opt);
    if (st == NIXL_IN_PROG)
        st = t_wait(a, r, 30000);
    return st;
}

/* An nixl_opt_args_t carrying a notification (a string; "" is an empty one). */
static inline nixl_opt_args_t t_notif_opt(const char *msg)
{
    nixl_opt_args_t o;
    nixl_opt_args_init(&o);
    o.has_notif = true;
    o.notif = msg;
    o.notif_len = strlen(msg);
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* Notifications, copied out of the library's lists                                            */
/* ------------------------------------------------------------------------------------------ */

typedef struct t_notif {
    char agent[256];
    size_t len;
    char *msg; /* NUL-terminated copy of the payload */
} t_notif_t;

typedef struct t_notifs {
    size_t count, cap;
    t_notif_t *items;
} t_notifs_t;

static inline void t_notifs_free(t_notifs_t *n)
{
    for (size_t i = 0; i < n->count; i++)
        free(n->items[i].msg);
    free(n->items);
    memset(n, 0, sizeof(*n));
}

/* One get_notifs call; appends what arrived. Returns the status of the call. */
static inline nixl_status_t t_notifs_take(nixl_agent_t *a, t_notifs_t *acc)
{
    nixl_notif_list_t *l = NULL;
    nixl_status_t st = nixl_agent_get_notifs(a, NULL, &l);
    if (st != NIXL_SUCCESS)
        return st;
    if (!l)
        return NIXL_ERR_UNKNOWN;
    for (size_t i = 0; i < l->count; i++) {
        if (acc->count == acc->cap) {
            acc->cap = acc->cap ? acc->cap * 2 : 16;
            acc->items = realloc(acc->items, acc->cap * sizeof(*acc->items));
            if (!acc->items)
                abort();
        }
        t_notif_t *n = &acc->items[acc->count++];
        snprintf(n->agent, sizeof(n->agent), "%s", l->items[i].agent);
        n->len = l->items[i].msg_len;
        n->msg = malloc(n->len + 1);
        if (!n->msg)
            abort();
        if (n->len)
            memcpy(n->msg, l->items[i].msg, n->len);
        n->msg[n->len] = '\0';
    }
    nixl_free(l);
    return NIXL_SUCCESS;
}

/* Poll until at least `want` notifications were collected or `timeout_ms` passed. */
static inline size_t t_notifs_wait(nixl_agent_t *a, t_notifs_t *acc, size_t want,
                                   unsigned timeout_ms)
{
    uint64_t end = t_now_ns() + (uint64_t)timeout_ms * 1000000u;
    do {
        EXPECT_ST(NIXL_SUCCESS, t_notifs_take(a, acc));
        if (acc->count >= want)
            break;
        t_sleep_us(500);
    } while (t_now_ns() < end);
    return acc->count;
}

/* Exactly one notification arrives (nothing more within a grace period), from `sender`, with
 * payload `msg`. */
static inline void t_expect_one_notif(nixl_agent_t *target, const char *sender, const char *msg)
{
    t_notifs_t n = {0};
    assert_int_equal(t_notifs_wait(target, &n, 1, 10000), 1);
    t_sleep_us(50000);
    EXPECT_ST(NIXL_SUCCESS, t_notifs_take(target, &n));
    assert_int_equal(n.count, 1);
    assert_string_equal(n.items[0].agent, sender);
    assert_string_equal(n.items[0].msg, msg);
    assert_int_equal(n.items[0].len, strlen(msg));
    t_notifs_free(&n);
}

/* No notification arrives within a grace period. */
static inline void t_expect_no_notif(nixl_agent_t *target)
{
    t_notifs_t n = {0};
    t_sleep_us(100000);
    EXPECT_ST(NIXL_SUCCESS, t_notifs_take(target, &n));
    if (n.count)
        print_error("unexpected notification from '%s': '%s'\n", n.items[0].agent,
                    n.items[0].msg);
    assert_int_equal(n.count, 0);
    t_notifs_free(&n);
}

#endif
