/*
 * test_ucx_xfer.c - the UCX backend moving real bytes through the public API: two agents of one
 * process (each its own UCP context) over TCP and over shared memory, and loopback; WRITE and
 * READ with notifications, checked byte for byte; a request of 1024 descriptors; empty and
 * binary notifications; a notification that leaves although the initiator never polls again;
 * standalone notifications; cost estimates; requests refused after invalidation.
 */
#include "ucx_test.h"

#define LEN ((size_t)1 << 20)
#define NDESC 1024
#define DLEN 4096
#define BIG ((size_t)32 << 20)

typedef struct fix {
    u_tls_t tls;
    nixl_agent_t *a, *b;
    uint8_t *mem; /* A's source and destination (one region), then B's buffer */
    uint8_t *asrc, *adst, *bbuf;
    size_t len;
} fix_t;

static int setup_len(void **state, size_t len)
{
    fix_t *f = calloc(1, sizeof(*f));
    f->tls = *(u_tls_t *)*state;
    f->len = len;
    f->a = u_agent("A", f->tls);
    f->b = u_agent("B", f->tls);
    f->mem = t_alloc_zero(3 * len);
    f->asrc = f->mem;
    f->adst = f->mem + len;
    f->bbuf = f->mem + 2 * len;
    t_reg(f->a, f->asrc, 2 * len);
    t_reg(f->b, f->bbuf, len);
    t_load(f->a, f->b);
    t_load(f->b, f->a);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_len(state, LEN);
}

static int setup_big(void **state)
{
    return setup_len(state, BIG);
}

static int teardown(void **state)
{
    fix_t *f = *state;
    nixl_agent_destroy(f->a);
    nixl_agent_destroy(f->b);
    t_free_zero(f->mem, 3 * f->len);
    free(f);
    return 0;
}

static void expect_notif(nixl_agent_t *target, const char *sender, const void *msg, size_t len)
{
    t_notifs_t n = {0};
    u_notifs(target, &n, 1);
    assert_string_equal(n.items[0].agent, sender);
    assert_int_equal(n.items[0].len, len);
    assert_memory_equal(n.items[0].msg, msg, len ? len : 1);
    t_notifs_free(&n);
}

/* `op` of `len` bytes between local and remote (pattern `seed` from the source), with the
 * notification `msg` that `target` (sent by `a`) must receive; the request is returned. */
static nixl_xfer_req_t *moved(nixl_agent_t *a, nixl_xfer_op_t op, uint8_t *local,
                              uint8_t *remote, size_t len, const char *peer, unsigned seed,
                              nixl_agent_t *target, const char *msg)
{
    t_fill(op == NIXL_WRITE ? local : remote, len, seed);
    nixl_opt_args_t o = t_notif_opt(msg);
    nixl_xfer_req_t *req = u_req1(a, op, local, remote, len, peer, &o);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, req, NULL));
    EXPECT_PATTERN(op == NIXL_WRITE ? remote : local, len, seed);
    expect_notif(target, nixl_agent_name(a), msg, strlen(msg));
    return req;
}

static void test_write_read(void **state)
{
    fix_t *f = *state;
    nixl_xfer_req_t *w = moved(f->a, NIXL_WRITE, f->asrc, f->bbuf, f->len, "B", 7, f->b,
                               "written");
    nixl_xfer_req_t *r = moved(f->a, NIXL_READ, f->adst, f->bbuf, f->len, "B", 9, f->b, "read");

    /* a request is posted many times */
    t_fill(f->asrc, f->len, 11);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, w, NULL));
    expect_notif(f->b, "A", "written", 7);
    EXPECT_PATTERN(f->bbuf, f->len, 11);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, w));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
}

/* 1024 descriptors of 4 KiB in one request, every other 4 KiB of the buffers (so that nothing
 * can be merged): the gaps must stay untouched. */
static void test_many_descriptors(void **state)
{
    fix_t *f = *state;
    nixl_desc_t *l = calloc(NDESC, sizeof(*l)), *r = calloc(NDESC, sizeof(*r));
    for (size_t i = 0; i < NDESC; i++) {
        l[i] = t_desc(f->asrc + 2 * i * DLEN, DLEN);
        r[i] = t_desc(f->bbuf + 2 * i * DLEN + DLEN, DLEN);
    }
    t_fill(f->asrc, f->len, 3);
    memset(f->bbuf, 0xee, f->len);
    nixl_opt_args_t o = t_notif_opt("many");
    nixl_xfer_req_t *req = u_req(f->a, NIXL_WRITE, l, r, NDESC, "B", &o);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, req, NULL));
    expect_notif(f->b, "A", "many", 4);
    for (size_t i = 0; i < NDESC; i++) {
        assert_memory_equal(f->bbuf + 2 * i * DLEN + DLEN, f->asrc + 2 * i * DLEN, DLEN);
        EXPECT_BYTES(f->bbuf + 2 * i * DLEN, DLEN, 0xee);
    }
    /* and back, as a READ into the local gaps */
    memset(f->adst, 0, f->len);
    for (size_t i = 0; i < NDESC; i++)
        l[i] = t_desc(f->adst + 2 * i * DLEN + DLEN, DLEN);
    nixl_xfer_req_t *back = u_req(f->a, NIXL_READ, l, r, NDESC, "B", NULL);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, back, NULL));
    for (size_t i = 0; i < NDESC; i++) {
        assert_memory_equal(f->adst + 2 * i * DLEN + DLEN, f->asrc + 2 * i * DLEN, DLEN);
        EXPECT_BYTES(f->adst + 2 * i * DLEN, DLEN, 0);
    }
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, req));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, back));
    free(l);
    free(r);
}

static void test_loopback(void **state)
{
    fix_t *f = *state;
    nixl_xfer_req_t *w = moved(f->a, NIXL_WRITE, f->asrc, f->adst, f->len, "A", 21, f->a,
                               "self");
    nixl_xfer_req_t *r = moved(f->a, NIXL_READ, f->asrc, f->adst, f->len / 2, "A", 22, f->a,
                               "self read");
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, w));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
}

static void test_special_notifications(void **state)
{
    fix_t *f = *state;
    static const char bin[] = {'a', '\0', 'b', '\0', '|', 'n', 'i', 'x', 'l'};
    nixl_opt_args_t o;
    nixl_opt_args_init(&o);
    o.has_notif = true; /* empty */
    nixl_xfer_req_t *w = u_req1(f->a, NIXL_WRITE, f->asrc, f->bbuf, 64, "B", &o);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, w, NULL));
    expect_notif(f->b, "A", "", 0);
    o.notif = bin;
    o.notif_len = sizeof(bin);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, w, &o));
    expect_notif(f->b, "A", bin, sizeof(bin));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, w));

    EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->a, "B", "", 0, NULL));
    expect_notif(f->b, "A", "", 0);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->a, "B", bin, sizeof(bin), NULL));
    expect_notif(f->b, "A", bin, sizeof(bin));
}

static void test_gen_notif(void **state)
{
    fix_t *f = *state;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->a, "B", "hello B", 7, NULL));
    expect_notif(f->b, "A", "hello B", 7);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->b, "A", "hello A", 7, NULL));
    expect_notif(f->a, "B", "hello A", 7);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->a, "A", "to myself", 9, NULL));
    expect_notif(f->a, "A", "to myself", 9);
    /* many in a row arrive, in order */
    char msg[16];
    for (int i = 0; i < 100; i++) {
        snprintf(msg, sizeof(msg), "n%d", i);
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->a, "B", msg, strlen(msg), NULL));
    }
    t_notifs_t n = {0};
    u_notifs(f->b, &n, 100);
    for (int i = 0; i < 100; i++) {
        snprintf(msg, sizeof(msg), "n%d", i);
        assert_string_equal(n.items[i].msg, msg);
    }
    t_notifs_free(&n);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "nobody", nixl_agent_gen_notif(f->a, "nobody", "x", 1, NULL));
}

/* The initiator posts and never looks at the request again: its progress thread completes the
 * data and sends the notification; the target, polling only its notifications, gets it. */
static void test_notif_without_initiator_polling(void **state)
{
    fix_t *f = *state;
    t_fill(f->asrc, f->len, 33);
    nixl_opt_args_t o = t_notif_opt("fire and forget");
    nixl_xfer_req_t *w = u_req1(f->a, NIXL_WRITE, f->asrc, f->bbuf, f->len, "B", &o);
    nixl_status_t st = nixl_agent_post_xfer_req(f->a, w, NULL);
    assert_true(st == NIXL_SUCCESS || st == NIXL_IN_PROG);
    expect_notif(f->b, "A", "fire and forget", 15);
    EXPECT_PATTERN(f->bbuf, f->len, 33); /* the data came first */
    EXPECT_ST(NIXL_SUCCESS, t_wait(f->a, w, 10000));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, w));
}

static void test_estimate_cost(void **state)
{
    fix_t *f = *state;
    nixl_desc_t l[4], r[4];
    for (size_t i = 0; i < 4; i++) {
        l[i] = t_desc(f->asrc + i * 65536, 65536);
        r[i] = t_desc(f->bbuf + i * 65536, 65536);
    }
    nixl_xfer_req_t *req = u_req(f->a, NIXL_WRITE, l, r, 4, "B", NULL);
    int64_t d = -1, m = -1;
    nixl_cost_t method = (nixl_cost_t)-1;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_estimate_xfer_cost(f->a, req, &d, &m, &method));
    assert_true(d >= 0);
    assert_int_equal(m, 0);
    assert_int_equal(method, NIXL_COST_ANALYTICAL_BACKEND);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, req));
}

static void test_invalidate_then_refused(void **state)
{
    fix_t *f = *state;
    nixl_xfer_req_t *w = u_req1(f->a, NIXL_WRITE, f->asrc, f->bbuf, 4096, "B", NULL);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, w, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(f->a, "B"));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "B", nixl_agent_post_xfer_req(f->a, w, NULL));
    nixl_desc_t l = t_desc(f->asrc, 4096), r = t_desc(f->bbuf, 4096);
    nixl_xfer_req_t *req = NULL;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_create_xfer_req(f->a, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG,
                                          &r, 1, "B", NULL, &req));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_gen_notif(f->a, "B", "x", 1, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, w));

    /* loading it again makes it reachable again, over new endpoints */
    t_load(f->a, f->b);
    t_fill(f->asrc, 4096, 44);
    w = u_req1(f->a, NIXL_WRITE, f->asrc, f->bbuf, 4096, "B", NULL);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, w, NULL));
    EXPECT_PATTERN(f->bbuf, 4096, 44);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, w));
}

/* Releasing, or invalidating the peer of, a transfer in flight: nothing breaks; a release
 * waits for the transfer (UCX cannot cancel RMA) or refuses, never frees what UCX uses. */
static void test_release_and_invalidate_in_flight(void **state)
{
    fix_t *f = *state;
    t_fill(f->asrc, f->len, 66);
    nixl_xfer_req_t *w = u_req1(f->a, NIXL_WRITE, f->asrc, f->bbuf, f->len, "B", NULL);
    nixl_status_t st = nixl_agent_post_xfer_req(f->a, w, NULL);
    assert_true(st == NIXL_SUCCESS || st == NIXL_IN_PROG);
    st = nixl_agent_release_xfer_req(f->a, w);
    if (st == NIXL_ERR_REPOST_ACTIVE) {
        EXPECT_LASTERR("in flight");
        EXPECT_ST(NIXL_SUCCESS, t_wait(f->a, w, 20000));
        st = nixl_agent_release_xfer_req(f->a, w);
    }
    EXPECT_ST(NIXL_SUCCESS, st);
    EXPECT_PATTERN(f->bbuf, f->len, 66);

    t_fill(f->asrc, f->len, 67);
    nixl_opt_args_t o = t_notif_opt("after invalidate");
    w = u_req1(f->a, NIXL_WRITE, f->asrc, f->bbuf, f->len, "B", &o);
    st = nixl_agent_post_xfer_req(f->a, w, NULL);
    assert_true(st == NIXL_SUCCESS || st == NIXL_IN_PROG);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(f->a, "B"));
    /* the request holds the endpoints: the transfer and its notification still complete */
    expect_notif(f->b, "A", "after invalidate", 16);
    EXPECT_PATTERN(f->bbuf, f->len, 67);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, w));
}

static void test_reload_same_metadata(void **state)
{
    fix_t *f = *state;
    t_load(f->a, f->b); /* identical: accepted, nothing changes */
    t_fill(f->asrc, 4096, 55);
    nixl_xfer_req_t *w = u_req1(f->a, NIXL_WRITE, f->asrc, f->bbuf, 4096, "B", NULL);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, w, NULL));
    EXPECT_PATTERN(f->bbuf, 4096, 55);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, w));
}

static u_tls_t tcp = U_TCP, shm = U_SHM;

#define T(fn, tls) cmocka_unit_test_prestate_setup_teardown(fn, setup, teardown, &(tls))
#define TB(fn, tls) cmocka_unit_test_prestate_setup_teardown(fn, setup_big, teardown, &(tls))
#define BOTH(fn) T(fn, tcp), T(fn, shm)

int main(void)
{
    unsetenv("NIXL_TELEMETRY_ENABLE");
    const struct CMUnitTest tests[] = {
        BOTH(test_write_read),
        TB(test_many_descriptors, tcp),
        TB(test_many_descriptors, shm),
        BOTH(test_loopback),
        BOTH(test_special_notifications),
        BOTH(test_gen_notif),
        TB(test_notif_without_initiator_polling, tcp),
        TB(test_notif_without_initiator_polling, shm),
        BOTH(test_estimate_cost),
        BOTH(test_invalidate_then_refused),
        TB(test_release_and_invalidate_in_flight, tcp),
        TB(test_release_and_invalidate_in_flight, shm),
        T(test_reload_same_metadata, tcp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
