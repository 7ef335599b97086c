/*
 * test_agent_xfer.c - transfer requests made with nixl_agent_create_xfer_req and their state
 * machine, loopback (to the agent's own name) and across two agents of one process; the
 * notifications that come with them and standalone ones; telemetry.
 *
 * Large transfers (64 MiB, SHM async_threshold=1) run on SHM's worker thread, so that post
 * returns IN_PROG and the IN_PROG states (repost, release, invalidate) are real: the copy
 * takes milliseconds, the calls that find it running come microseconds after the post.
 */
#include "agent_test.h"

#define LEN (64 * 1024)
#define BIG ((size_t)64 << 20)

typedef struct fix {
    nixl_agent_t *a, *b;
    nixl_backend_t *abe, *bbe;
    uint8_t *asrc, *adst, *bbuf;
    size_t len;
} fix_t;

static int setup_with(void **state, const char *threshold, size_t len)
{
    fix_t *f = calloc(1, sizeof(*f));
    nixl_agent_config_t cfg;
    nixl_agent_config_init(&cfg);
    cfg.capture_telemetry = true;
    f->a = t_agent("A", &cfg, threshold, &f->abe);
    f->b = t_agent("B", &cfg, threshold, &f->bbe);
    f->len = len;
    f->asrc = t_alloc_zero(len);
    f->adst = t_alloc_zero(len);
    f->bbuf = t_alloc_zero(len);
    t_reg(f->a, f->asrc, len);
    t_reg(f->a, f->adst, len);
    t_reg(f->b, f->bbuf, len);
    t_load(f->a, f->b);
    t_load(f->b, f->a);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, NULL, LEN);
}

static int setup_async(void **state)
{
    return setup_with(state, "1", BIG);
}

static int teardown(void **state)
{
    fix_t *f = *state;
    nixl_agent_destroy(f->a);
    nixl_agent_destroy(f->b);
    t_free_zero(f->asrc, f->len);
    t_free_zero(f->adst, f->len);
    t_free_zero(f->bbuf, f->len);
    free(f);
    return 0;
}

static nixl_xfer_req_t *make(nixl_agent_t *ag, nixl_xfer_op_t op, const void *local,
                             const void *remote, size_t len, const char *peer,
                             const nixl_opt_args_t *opt)
{
    nixl_desc_t l = t_desc(local, len), r = t_desc(remote, len);
    nixl_xfer_req_t *req = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(ag, op, NIXL_DRAM_SEG, &l, 1,
                                                       NIXL_DRAM_SEG, &r, 1, peer, opt, &req));
    assert_non_null(req);
    return req;
}

/* A fast fill for big buffers: one value per 4 KiB page, varying with `seed`, never 0 (the
 * value of untouched zeroed memory). */
static void big_fill(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t off = 0; off < len; off += 4096)
        memset(p + off, (int)(1 + (off / 4096 * 7 + seed) % 255), len - off < 4096 ? len - off : 4096);
}

/* ------------------------------------------------------------------------------------------ */
/* Creation errors and the first state                                                         */
/* ------------------------------------------------------------------------------------------ */

static void test_create_errors(void **state)
{
    fix_t *f = *state;
    nixl_desc_t l2[2] = {t_desc(f->asrc, 100), t_desc(f->asrc + 100, 100)};
    nixl_desc_t r2[2] = {t_desc(f->bbuf, 100), t_desc(f->bbuf + 100, 99)};
    nixl_xfer_req_t *r = (nixl_xfer_req_t *)0x1;
    nixl_agent_t *a = f->a;

    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "2 local and 1 remote",
               nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, l2, 2, NIXL_DRAM_SEG, r2,
                                          1, "B", NULL, &r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, "pair 1",
               nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, l2, 2, NIXL_DRAM_SEG, r2,
                                          2, "B", NULL, &r));
    r2[1].len = 100;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "nobody",
               nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, l2, 2, NIXL_DRAM_SEG, r2,
                                          2, "nobody", NULL, &r));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, l2, 0, NIXL_DRAM_SEG, r2,
                                          0, "B", NULL, &r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_create_xfer_req(a, (nixl_xfer_op_t)2, NIXL_DRAM_SEG, l2, 2,
                                          NIXL_DRAM_SEG, r2, 2, "B", NULL, &r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_create_xfer_req(a, NIXL_WRITE, (nixl_mem_t)5, l2, 2, NIXL_DRAM_SEG, r2,
                                          2, "B", NULL, &r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, l2, 2, NIXL_DRAM_SEG, r2,
                                          2, NULL, NULL, &r));
    /* unregistered memory, on either side */
    uint8_t *unreg = t_alloc(LEN);
    nixl_desc_t lu[2] = {l2[0], t_desc(unreg, 100)}, ru[2] = {r2[0], t_desc(unreg, 100)};
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "descriptor 1",
               nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, lu, 2, NIXL_DRAM_SEG, r2,
                                          2, "B", NULL, &r));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "descriptor 1",
               nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, l2, 2, NIXL_DRAM_SEG, ru,
                                          2, "B", NULL, &r));
    /* A's memory is not B's: a loopback to A's own regions is fine, to B's regions is not */
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, l2, 2, NIXL_DRAM_SEG, r2,
                                          2, "A", NULL, &r));
    /* a descriptor past the end of its region */
    nixl_desc_t tail = t_desc(f->asrc + LEN - 50, 100), rt = t_desc(f->bbuf, 100);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &tail, 1, NIXL_DRAM_SEG,
                                          &rt, 1, "B", NULL, &r));
    /* a memory type nobody has registered */
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL,
               nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, l2, 2, NIXL_FILE_SEG, r2,
                                          2, "B", NULL, &r));
    /* a notification pointer missing its bytes */
    nixl_opt_args_t o = t_notif_opt("x");
    o.notif = NULL;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, l2, 2, NIXL_DRAM_SEG, r2,
                                          2, "B", &o, &r));
    assert_ptr_equal(r, (nixl_xfer_req_t *)0x1);
    free(unreg);

    /* a new request is NOT_POSTED, and stays so until posted */
    r = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, l2, 2,
                                                       NIXL_DRAM_SEG, r2, 2, "B", NULL, &r));
    EXPECT_ST(NIXL_ERR_NOT_POSTED, nixl_agent_get_xfer_status(a, r));
    EXPECT_ST(NIXL_ERR_NOT_POSTED, nixl_agent_get_xfer_status(a, r));
    /* handles of another agent are refused */
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_post_xfer_req(f->b, r, NULL));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_get_xfer_status(f->b, r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_release_xfer_req(f->b, r));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_post_xfer_req(a, NULL, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, NULL));
}

/* ------------------------------------------------------------------------------------------ */
/* Moving bytes                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void test_loopback_write_read(void **state)
{
    fix_t *f = *state;
    t_fill(f->asrc, LEN, 21);
    nixl_opt_args_t o = t_notif_opt("loop-write");
    nixl_xfer_req_t *r = make(f->a, NIXL_WRITE, f->asrc, f->adst, LEN, "A", &o);
    EXPECT_ST(NIXL_ERR_NOT_POSTED, nixl_agent_get_xfer_status(f->a, r));
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_xfer_status(f->a, r));
    EXPECT_PATTERN(f->adst, LEN, 21);
    t_expect_one_notif(f->a, "A", "loop-write");
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));

    /* READ: the "remote" (own) region flows into the local one */
    t_fill(f->adst, LEN, 22);
    memset(f->asrc, 0, LEN);
    o = t_notif_opt("loop-read");
    r = make(f->a, NIXL_READ, f->asrc, f->adst, LEN, "A", &o);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    EXPECT_PATTERN(f->asrc, LEN, 22);
    t_expect_one_notif(f->a, "A", "loop-read");
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
    t_expect_no_notif(f->b);
}

static void test_cross_agent_write_read(void **state)
{
    fix_t *f = *state;
    /* three descriptors of different sizes, in a scattered order */
    t_fill(f->asrc, LEN, 31);
    memset(f->bbuf, 0xee, LEN);
    nixl_desc_t l[3] = {t_desc(f->asrc, 1000), t_desc(f->asrc + 1000, 7), t_desc(f->asrc + 2000, 30000)};
    nixl_desc_t r[3] = {t_desc(f->bbuf + 40000, 1000), t_desc(f->bbuf + 5, 7), t_desc(f->bbuf + 8000, 30000)};
    nixl_opt_args_t o = t_notif_opt("three pieces");
    nixl_xfer_req_t *req = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(f->a, NIXL_WRITE, NIXL_DRAM_SEG, l, 3,
                                                       NIXL_DRAM_SEG, r, 3, "B", &o, &req));
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, req, NULL));
    for (size_t i = 0; i < 3; i++)
        assert_memory_equal((void *)r[i].addr, (void *)l[i].addr, l[i].len);
    /* nothing else of B was touched */
    EXPECT_BYTES(f->bbuf, 5, 0xee);
    EXPECT_BYTES(f->bbuf + 12, 8000 - 12, 0xee);
    EXPECT_BYTES(f->bbuf + 38000, 2000, 0xee);
    EXPECT_BYTES(f->bbuf + 41000, LEN - 41000, 0xee);
    t_expect_one_notif(f->b, "A", "three pieces");
    t_expect_no_notif(f->a);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, req));

    /* READ from B: B (the target) is notified */
    t_fill(f->bbuf, LEN, 32);
    memset(f->adst, 0, LEN);
    o = t_notif_opt("read it");
    req = make(f->a, NIXL_READ, f->adst, f->bbuf, LEN, "B", &o);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, req, NULL));
    EXPECT_PATTERN(f->adst, LEN, 32);
    t_expect_one_notif(f->b, "A", "read it");
    t_expect_no_notif(f->a);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, req));

    /* and B writes into A */
    t_fill(f->bbuf, LEN, 33);
    o = t_notif_opt("from B");
    req = make(f->b, NIXL_WRITE, f->bbuf, f->adst, LEN, "A", &o);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->b, req, NULL));
    EXPECT_PATTERN(f->adst, LEN, 33);
    t_expect_one_notif(f->a, "B", "from B");
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->b, req));
}

static void test_empty_and_binary_notifications(void **state)
{
    fix_t *f = *state;
    nixl_opt_args_t o = t_notif_opt("");
    nixl_xfer_req_t *r = make(f->a, NIXL_WRITE, f->asrc, f->bbuf, 512, "B", &o);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    t_expect_one_notif(f->b, "A", "");
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));

    /* binary-safe: every byte value, NULs included */
    uint8_t bin[256];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (uint8_t)i;
    nixl_opt_args_init(&o);
    o.has_notif = true;
    o.notif = bin;
    o.notif_len = sizeof(bin);
    r = make(f->a, NIXL_WRITE, f->asrc, f->bbuf, 512, "B", &o);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    t_notifs_t n = {0};
    assert_int_equal(t_notifs_wait(f->b, &n, 1, 10000), 1);
    assert_int_equal(n.items[0].len, sizeof(bin));
    assert_memory_equal(n.items[0].msg, bin, sizeof(bin));
    t_notifs_free(&n);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
}

/* A notification given to post replaces the stored one and persists; an opt without one clears
 * it; a NULL opt keeps what is stored. */
static void test_repost_notification_semantics(void **state)
{
    fix_t *f = *state;
    nixl_opt_args_t one = t_notif_opt("one"), two = t_notif_opt("two"), none;
    nixl_opt_args_init(&none);
    nixl_xfer_req_t *r = make(f->a, NIXL_WRITE, f->asrc, f->bbuf, LEN, "B", &one);

    for (unsigned i = 0; i < 2; i++) { /* reposts from SUCCESS are allowed */
        t_fill(f->asrc, LEN, 40 + i);
        EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
        EXPECT_PATTERN(f->bbuf, LEN, 40 + i);
        t_expect_one_notif(f->b, "A", "one");
    }
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, &two));
    t_expect_one_notif(f->b, "A", "two");
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    t_expect_one_notif(f->b, "A", "two");
    t_fill(f->asrc, LEN, 49);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, &none));
    EXPECT_PATTERN(f->bbuf, LEN, 49);
    t_expect_no_notif(f->b);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    t_expect_no_notif(f->b);
    /* and one can be attached again later */
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, &one));
    t_expect_one_notif(f->b, "A", "one");

    /* an opt from a caller that predates the notification fields is an opt without one
     * (the fields beyond its struct_size are garbage and must not be read) */
    nixl_opt_args_t old_caller = t_notif_opt("garbage");
    old_caller.struct_size = offsetof(nixl_opt_args_t, has_notif);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, &old_caller));
    t_expect_no_notif(f->b);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
    r = make(f->a, NIXL_WRITE, f->asrc, f->bbuf, LEN, "B", &old_caller);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    t_expect_no_notif(f->b);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));

    /* a request made without a notification, given one at post */
    r = make(f->a, NIXL_READ, f->adst, f->bbuf, LEN, "B", NULL);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    t_expect_no_notif(f->b);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, &two));
    t_expect_one_notif(f->b, "A", "two");
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
}

/* A post refused for a bad notification changes nothing: the stored one is still sent. */
static void test_refused_post_keeps_notification(void **state)
{
    fix_t *f = *state;
    nixl_opt_args_t one = t_notif_opt("one"), bad = t_notif_opt("bad");
    bad.notif = NULL; /* 3 bytes announced, no bytes */
    nixl_xfer_req_t *r = make(f->a, NIXL_WRITE, f->asrc, f->bbuf, LEN, "B", &one);
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_post_xfer_req(f->a, r, &bad));
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    t_expect_one_notif(f->b, "A", "one");
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
}

/* ------------------------------------------------------------------------------------------ */
/* Asynchronous transfers: IN_PROG                                                             */
/* ------------------------------------------------------------------------------------------ */

static void test_async_repost_active(void **state)
{
    fix_t *f = *state;
    big_fill(f->asrc, BIG, 1);
    nixl_xfer_req_t *r = make(f->a, NIXL_WRITE, f->asrc, f->bbuf, BIG, "B", NULL);
    /* A repost right after the post finds it running. (Under valgrind's serialising scheduler
     * the copy may finish first: then the repost is a new post; try again.) */
    int attempts = 0;
    nixl_status_t rep;
    do {
        attempts++;
        EXPECT_ST(NIXL_IN_PROG, nixl_agent_post_xfer_req(f->a, r, NULL));
        rep = nixl_agent_post_xfer_req(f->a, r, NULL);
        if (rep != NIXL_ERR_REPOST_ACTIVE) {
            assert_true(rep == NIXL_IN_PROG || rep == NIXL_SUCCESS);
            EXPECT_ST(NIXL_SUCCESS, t_wait(f->a, r, 30000));
        }
    } while (rep != NIXL_ERR_REPOST_ACTIVE && attempts < 10);
    EXPECT_ST(NIXL_ERR_REPOST_ACTIVE, rep);
    EXPECT_LASTERR("in progress");
    if (attempts > 1)
        print_message("REPOST_ACTIVE seen at attempt %d\n", attempts);
    EXPECT_ST(NIXL_SUCCESS, t_wait(f->a, r, 30000));
    assert_int_equal(memcmp(f->bbuf, f->asrc, BIG), 0);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));

    /* with a notification, and nobody polling the request */
    big_fill(f->asrc, BIG, 4);
    nixl_opt_args_t o = t_notif_opt("big");
    r = make(f->a, NIXL_WRITE, f->asrc, f->bbuf, BIG, "B", &o);
    EXPECT_ST(NIXL_IN_PROG, nixl_agent_post_xfer_req(f->a, r, NULL));
    nixl_xfer_telem_t tel;
    memset(&tel, 0x5a, sizeof(tel));
    nixl_xfer_telem_t untouched = tel;
    EXPECT_ST(NIXL_IN_PROG, nixl_agent_get_xfer_telemetry(f->a, r, &tel));
    assert_memory_equal(&tel, &untouched, sizeof(tel));

    /* the notification goes out without anyone polling the request (differences item 9) */
    t_expect_one_notif(f->b, "A", "big");
    assert_int_equal(memcmp(f->bbuf, f->asrc, BIG), 0);
    EXPECT_ST(NIXL_SUCCESS, t_wait(f->a, r, 30000));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_xfer_telemetry(f->a, r, &tel));
    assert_int_equal(tel.total_bytes, BIG);
    assert_true(tel.post_duration_us <= tel.xfer_duration_us);

    /* a repost after completion runs again */
    big_fill(f->asrc, BIG, 2);
    EXPECT_ST(NIXL_IN_PROG, nixl_agent_post_xfer_req(f->a, r, NULL));
    EXPECT_ST(NIXL_SUCCESS, t_wait(f->a, r, 30000));
    assert_int_equal(memcmp(f->bbuf, f->asrc, BIG), 0);
    t_expect_one_notif(f->b, "A", "big");
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
}

/* Releasing an IN_PROG request aborts it; nothing outside its range is written, and nothing
 * at all after the release returned. */
static void test_async_release_in_prog(void **state)
{
    fix_t *f = *state;
    const size_t guard = 64 * 1024, len = BIG - 2 * guard;
    big_fill(f->asrc, BIG, 3);
    memset(f->bbuf, 0, BIG);
    for (int loopback = 0; loopback < 2; loopback++) {
        uint8_t *dst = loopback ? f->adst : f->bbuf;
        memset(dst, 0, BIG);
        nixl_xfer_req_t *r = make(f->a, NIXL_WRITE, f->asrc + guard, dst + guard, len,
                                  loopback ? "A" : "B", NULL);
        EXPECT_ST(NIXL_IN_PROG, nixl_agent_post_xfer_req(f->a, r, NULL));
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
        /* snapshot, wait, compare: a transfer still running would change it */
        uint8_t *snap = malloc(BIG);
        assert_non_null(snap);
        memcpy(snap, dst, BIG);
        t_sleep_us(100000);
        assert_int_equal(memcmp(snap, dst, BIG), 0);
        free(snap);
        EXPECT_BYTES(dst, guard, 0);
        EXPECT_BYTES(dst + BIG - guard, guard, 0);
        /* inside: each page holds either the old or the new value */
        size_t copied = 0;
        for (size_t off = guard; off < guard + len; off += 4096) {
            size_t n = guard + len - off < 4096 ? guard + len - off : 4096;
            if (dst[off] == f->asrc[off]) {
                assert_int_equal(memcmp(dst + off, f->asrc + off, n), 0);
                copied++;
            } else {
                EXPECT_BYTES(dst + off, n, 0);
            }
        }
        print_message("%s: %zu of %zu pages copied before the abort\n",
                      loopback ? "loopback" : "A->B", copied, len / 4096);
    }
    t_notifs_t n = {0};
    EXPECT_ST(NIXL_SUCCESS, t_notifs_take(f->b, &n));
    t_notifs_free(&n);
}

/* Invalidating the peer while a transfer is in flight: the request reports NOT_FOUND. */
static void test_async_invalidate_in_prog(void **state)
{
    fix_t *f = *state;
    nixl_xfer_req_t *r = make(f->a, NIXL_WRITE, f->asrc, f->bbuf, BIG, "B", NULL);
    EXPECT_ST(NIXL_IN_PROG, nixl_agent_post_xfer_req(f->a, r, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(f->a, "B"));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "B", nixl_agent_get_xfer_status(f->a, r));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "B", nixl_agent_post_xfer_req(f->a, r, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
}

/* ------------------------------------------------------------------------------------------ */
/* Stale requests, backend queries                                                             */
/* ------------------------------------------------------------------------------------------ */

static void test_stale_request(void **state)
{
    fix_t *f = *state;
    nixl_xfer_req_t *done = make(f->a, NIXL_WRITE, f->asrc, f->bbuf, LEN, "B", NULL);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, done, NULL));
    nixl_xfer_req_t *r = make(f->a, NIXL_WRITE, f->asrc, f->bbuf, LEN, "B", NULL);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_invalidate_remote_md(f->a, "B"));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "invalidated", nixl_agent_post_xfer_req(f->a, r, NULL));
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "invalidated", nixl_agent_post_xfer_req(f->a, done, NULL));
    /* reloading the same peer does not revive requests of the old generation */
    t_load(f->a, f->b);
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_post_xfer_req(f->a, r, NULL));
    int64_t d = -7, m = -7;
    nixl_cost_t how = (nixl_cost_t)7;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_estimate_xfer_cost(f->a, r, &d, &m, &how));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, done));
    /* a new request works */
    t_fill(f->asrc, LEN, 50);
    r = make(f->a, NIXL_WRITE, f->asrc, f->bbuf, LEN, "B", NULL);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    EXPECT_PATTERN(f->bbuf, LEN, 50);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
    /* loopback requests never go stale */
    r = make(f->a, NIXL_WRITE, f->asrc, f->adst, LEN, "A", NULL);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, r, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
}

static void test_query_backend_and_cost(void **state)
{
    fix_t *f = *state;
    nixl_xfer_req_t *r = make(f->a, NIXL_WRITE, f->asrc, f->bbuf, LEN, "B", NULL);
    nixl_backend_t *be = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_query_xfer_backend(f->a, r, &be));
    assert_ptr_equal(be, f->abe);
    assert_string_equal(nixl_backend_name(be), "SHM");
    nixl_backend_t *other = NULL;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_query_xfer_backend(f->b, r, &other));
    assert_null(other);
    int64_t d = -7, m = -7;
    nixl_cost_t how = (nixl_cost_t)7;
    EXPECT_ERR(NIXL_ERR_NOT_SUPPORTED, "SHM", nixl_agent_estimate_xfer_cost(f->a, r, &d, &m, &how));
    assert_int_equal(d, -7);
    assert_int_equal(m, -7);
    assert_int_equal(how, 7);
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_estimate_xfer_cost(f->a, r, NULL, &m, &how));
    /* an explicit backend list naming SHM gives SHM; one of another agent is refused */
    nixl_opt_args_t o;
    nixl_opt_args_init(&o);
    o.backends = &f->abe;
    o.num_backends = 1;
    nixl_xfer_req_t *h = make(f->a, NIXL_WRITE, f->asrc, f->bbuf, LEN, "B", &o);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_query_xfer_backend(f->a, h, &be));
    assert_ptr_equal(be, f->abe);
    o.backends = &f->bbe;
    nixl_desc_t l = t_desc(f->asrc, LEN), rd = t_desc(f->bbuf, LEN);
    nixl_xfer_req_t *bad = NULL;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL,
               nixl_agent_create_xfer_req(f->a, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1, NIXL_DRAM_SEG,
                                          &rd, 1, "B", &o, &bad));
    assert_null(bad);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, h));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, r));
}

/* ------------------------------------------------------------------------------------------ */
/* Telemetry                                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void test_telemetry_on(void **state)
{
    fix_t *f = *state;
    nixl_desc_t l[3] = {t_desc(f->asrc, 100), t_desc(f->asrc + 100, 100), t_desc(f->asrc + 1000, 824)};
    nixl_desc_t r[3] = {t_desc(f->bbuf, 100), t_desc(f->bbuf + 100, 100), t_desc(f->bbuf + 1000, 824)};
    nixl_xfer_req_t *req = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(f->a, NIXL_WRITE, NIXL_DRAM_SEG, l, 3,
                                                       NIXL_DRAM_SEG, r, 3, "B", NULL, &req));
    nixl_xfer_telem_t tel, untouched;
    memset(&tel, 0x5a, sizeof(tel));
    untouched = tel;
    EXPECT_ST(NIXL_ERR_NOT_POSTED, nixl_agent_get_xfer_telemetry(f->a, req, &tel));
    assert_memory_equal(&tel, &untouched, sizeof(tel));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_get_xfer_telemetry(f->a, req, NULL));

    uint64_t before = t_now_ns() / 1000;
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, req, NULL));
    uint64_t after = t_now_ns() / 1000;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_xfer_telemetry(f->a, req, &tel));
    assert_int_equal(tel.total_bytes, 1024);
    assert_int_equal(tel.desc_count, 3); /* create_xfer_req does not merge */
    assert_true(tel.post_duration_us <= tel.xfer_duration_us);
    assert_true(tel.xfer_duration_us <= after - before + 1);
    /* the telemetry clock follows CLOCK_MONOTONIC within 50 us (telem_clock.h) */
    assert_in_range(tel.start_time_us, before - 50, after + 50);

    /* a repost restarts the clock */
    t_sleep_us(2000);
    uint64_t before2 = t_now_ns() / 1000;
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, req, NULL));
    nixl_xfer_telem_t tel2;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_xfer_telemetry(f->a, req, &tel2));
    assert_true(tel2.start_time_us + 50 >= before2);
    assert_true(tel2.start_time_us > tel.start_time_us);
    assert_int_equal(tel2.total_bytes, 1024);
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, req));
}

/* Telemetry off by default; NIXL_TELEMETRY_ENABLE wins over capture_telemetry both ways. */
static void test_telemetry_enablement(void **state)
{
    (void)state;
    static const struct {
        const char *env; /* NULL: unset */
        bool capture;
        bool on;
    } cases[] = {
        {NULL, false, false}, {NULL, true, true},  {"n", true, false},
        {"0", false, false},  {"y", false, true},  {"yes", true, true},
    };
    uint8_t buf[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].env)
            assert_int_equal(setenv("NIXL_TELEMETRY_ENABLE", cases[i].env, 1), 0);
        else
            unsetenv("NIXL_TELEMETRY_ENABLE");
        nixl_agent_config_t cfg;
        nixl_agent_config_init(&cfg);
        cfg.capture_telemetry = cases[i].capture;
        nixl_agent_t *a = t_agent("T", &cfg, NULL, NULL);
        unsetenv("NIXL_TELEMETRY_ENABLE");
        t_reg(a, buf, sizeof(buf));
        nixl_xfer_req_t *r = make(a, NIXL_WRITE, buf, buf + 128, 128, "T", NULL);
        EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, r, NULL));
        nixl_xfer_telem_t tel;
        memset(&tel, 0, sizeof(tel));
        if (cases[i].on) {
            EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_xfer_telemetry(a, r, &tel));
            assert_int_equal(tel.total_bytes, 128);
            assert_int_equal(tel.desc_count, 1);
        } else {
            EXPECT_ERR(NIXL_ERR_NO_TELEMETRY, "telemetry", nixl_agent_get_xfer_telemetry(a, r, &tel));
            assert_int_equal(tel.total_bytes, 0);
        }
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r));
        nixl_agent_destroy(a);
    }
    /* a value that is not a boolean is refused at agent creation */
    assert_int_equal(setenv("NIXL_TELEMETRY_ENABLE", "maybe", 1), 0);
    nixl_agent_t *a = (nixl_agent_t *)0x1;
    EXPECT_ERR(NIXL_ERR_MISMATCH, "NIXL_TELEMETRY_ENABLE", nixl_agent_create("T", NULL, &a));
    assert_ptr_equal(a, (nixl_agent_t *)0x1);
    unsetenv("NIXL_TELEMETRY_ENABLE");
}

/* ------------------------------------------------------------------------------------------ */
/* Standalone notifications                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void test_gen_notif(void **state)
{
    fix_t *f = *state;
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, "nobody", nixl_agent_gen_notif(f->a, "nobody", "x", 1, NULL));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_gen_notif(f->a, "B", NULL, 3, NULL));
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_gen_notif(f->a, NULL, "x", 1, NULL));

    /* to ourselves: 400 arrive, in order */
    enum { N = 400 };
    char msg[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(msg, sizeof(msg), "self-%03d", i);
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->a, "A", msg, (size_t)n, NULL));
    }
    t_notifs_t got = {0};
    assert_int_equal(t_notifs_wait(f->a, &got, N, 20000), N);
    for (int i = 0; i < N; i++) {
        snprintf(msg, sizeof(msg), "self-%03d", i);
        assert_string_equal(got.items[i].agent, "A");
        assert_string_equal(got.items[i].msg, msg);
    }
    t_notifs_free(&got);
    t_expect_no_notif(f->a);

    /* to B, empty ones too, in order; the sender is named */
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->a, "B", "first", 5, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->a, "B", NULL, 0, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->a, "B", "", 0, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->a, "B", "last", 4, NULL));
    assert_int_equal(t_notifs_wait(f->b, &got, 4, 10000), 4);
    const char *want[] = {"first", "", "", "last"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(got.items[i].agent, "A");
        assert_int_equal(got.items[i].len, strlen(want[i]));
        assert_string_equal(got.items[i].msg, want[i]);
    }
    t_notifs_free(&got);

    /* restricted to a backend; one of another agent is refused */
    nixl_opt_args_t o;
    nixl_opt_args_init(&o);
    o.backends = &f->abe;
    o.num_backends = 1;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_gen_notif(f->a, "B", "hinted", 6, &o));
    t_expect_one_notif(f->b, "A", "hinted");
    nixl_notif_list_t *l = NULL;
    o.backends = &f->bbe;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_gen_notif(f->a, "B", "x", 1, &o));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_notifs(f->b, &o, &l));
    assert_int_equal(l->count, 0);
    nixl_free(l);
    o.backends = &f->abe;
    l = (nixl_notif_list_t *)0x1;
    EXPECT_ERR(NIXL_ERR_INVALID_PARAM, NULL, nixl_agent_get_notifs(f->b, &o, &l));
    assert_ptr_equal(l, (nixl_notif_list_t *)0x1);
    t_expect_no_notif(f->b);

    /* an agent without a notification backend */
    nixl_agent_t *c = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_create("C", NULL, &c));
    EXPECT_ERR(NIXL_ERR_BACKEND, NULL, nixl_agent_gen_notif(c, "A", "x", 1, NULL));
    l = (nixl_notif_list_t *)0x1;
    EXPECT_ERR(NIXL_ERR_BACKEND, NULL, nixl_agent_get_notifs(c, NULL, &l));
    assert_ptr_equal(l, (nixl_notif_list_t *)0x1);
    nixl_agent_destroy(c);

    /* nothing pending: an empty list, not NULL */
    l = NULL;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_get_notifs(f->a, NULL, &l));
    assert_non_null(l);
    assert_int_equal(l->count, 0);
    nixl_free(l);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TA(fn) cmocka_unit_test_setup_teardown(fn, setup_async, teardown)

int main(void)
{
    unsetenv("NIXL_TELEMETRY_ENABLE");
    const struct CMUnitTest tests[] = {
        T(test_create_errors),
        T(test_loopback_write_read),
        T(test_cross_agent_write_read),
        T(test_empty_and_binary_notifications),
        T(test_repost_notification_semantics),
        T(test_refused_post_keeps_notification),
        TA(test_async_repost_active),
        TA(test_async_release_in_prog),
        TA(test_async_invalidate_in_prog),
        T(test_stale_request),
        T(test_query_backend_and_cost),
        T(test_telemetry_on),
        cmocka_unit_test(test_telemetry_enablement),
        T(test_gen_notif),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
