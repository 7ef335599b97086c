/*
 * test_agent_threads.c - agents used from several threads at once (every sync mode is meant
 * to be thread-safe: docs/differences.md item 1). Meant to run under ThreadSanitizer as well.
 *
 * Worker threads never call cmocka: they count failures and remember the first one, and the
 * main thread asserts.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "agent_test.h"

static atomic_int failures;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_failure[1024];

static bool tcheck(bool ok, int line, const char *what, nixl_status_t st)
{
    if (ok)
        return true;
    if (atomic_fetch_add(&failures, 1) == 0) {
        pthread_mutex_lock(&fail_lock);
        snprintf(first_failure, sizeof(first_failure), "line %d: %s: %s (%s)", line, what,
                 nixl_status_str(st), nixl_last_error());
        pthread_mutex_unlock(&fail_lock);
    }
    return false;
}

/* In a worker thread: `st` must be `want`, else record and leave the loop. */
#define TRY_ST(want, expr, what)                                                              \
    {                                                                                        \
        nixl_status_t st_ = (expr);                                                          \
        if (!tcheck(st_ == (want), __LINE__, (what), st_))                                   \
            break;                                                                           \
    }
#define TRY(cond, what)                                                                      \
    if (!tcheck((cond), __LINE__, (what), NIXL_SUCCESS))                                     \
        break

static void reset_failures(void)
{
    atomic_store(&failures, 0);
    first_failure[0] = '\0';
}

static void expect_no_failures(void)
{
    if (atomic_load(&failures))
        print_error("%d failure(s) in worker threads; first: %s\n", atomic_load(&failures),
                    first_failure);
    assert_int_equal(atomic_load(&failures), 0);
}

static void run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size)
{
    pthread_t th[16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&th[i], NULL, fn, (char *)args + (size_t)i * arg_size), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
}

/* Poll without cmocka. */
static nixl_status_t wait_done(nixl_agent_t *a, nixl_xfer_req_t *r, nixl_status_t st)
{
    uint64_t end = t_now_ns() + 30ull * 1000000000u;
    while (st == NIXL_IN_PROG && t_now_ns() < end) {
        t_sleep_us(50);
        st = nixl_agent_get_xfer_status(a, r);
    }
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* One agent, four threads, the same region                                                    */
/* ------------------------------------------------------------------------------------------ */

#define SLICE 8192
#define ITERS 200

typedef struct same_region_arg {
    nixl_agent_t *a;
    uint8_t *region; /* shared by all threads; each uses slices 2t (source) and 2t+1 */
    size_t region_len;
    int t;
} same_region_arg_t;

static void *same_region_thread(void *p)
{
    same_region_arg_t *x = p;
    uint8_t *src = x->region + (size_t)(2 * x->t) * SLICE, *dst = src + SLICE;
    nixl_reg_desc_t rd = t_rdesc(x->region, x->region_len);
    nixl_desc_t s = t_desc(src, SLICE), d = t_desc(dst, SLICE);
    for (int i = 0; i < ITERS; i++) {
        unsigned seed = (unsigned)(x->t * 1000 + i);
        t_fill(src, SLICE, seed);
        TRY_ST(NIXL_SUCCESS, nixl_agent_register_mem(x->a, NIXL_DRAM_SEG, &rd, 1, NULL), "register");
        nixl_xfer_req_t *r = NULL;
        nixl_xfer_op_t op = i % 2 ? NIXL_READ : NIXL_WRITE;
        /* READ pulls the "remote" (own) dst into the local src: swap roles to move src->dst */
        nixl_desc_t *l = op == NIXL_WRITE ? &s : &d, *rm = op == NIXL_WRITE ? &d : &s;
        TRY_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(x->a, op, NIXL_DRAM_SEG, l, 1,
                                                        NIXL_DRAM_SEG, rm, 1, "A", NULL, &r),
               "create");
        TRY_ST(NIXL_ERR_NOT_POSTED, nixl_agent_get_xfer_status(x->a, r), "status before post");
        nixl_status_t st = wait_done(x->a, r, nixl_agent_post_xfer_req(x->a, r, NULL));
        TRY_ST(NIXL_SUCCESS, st, "post/poll");
        TRY(t_check(dst, SLICE, seed) == -1, "data");
        TRY_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(x->a, r), "release");
        TRY_ST(NIXL_SUCCESS, nixl_agent_deregister_mem(x->a, NIXL_DRAM_SEG, &rd, 1, NULL),
               "deregister");
    }
    return NULL;
}

static void test_shared_agent_same_region(void **state)
{
    (void)state;
    static const struct {
        nixl_thread_sync_t mode;
        const char *threshold; /* SHM async_threshold: "4096" makes every post asynchronous */
    } modes[] = {
        {NIXL_THREAD_SYNC_NONE, "4096"},
        {NIXL_THREAD_SYNC_STRICT, NULL},
        {NIXL_THREAD_SYNC_RW, "4096"},
    };
    enum { THREADS = 4 };
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
        reset_failures();
        nixl_agent_config_t cfg;
        nixl_agent_config_init(&cfg);
        cfg.sync_mode = modes[m].mode;
        nixl_agent_t *a = t_agent("A", &cfg, modes[m].threshold, NULL);
        size_t len = (size_t)2 * THREADS * SLICE;
        uint8_t *region = t_alloc(len);
        same_region_arg_t args[THREADS];
        for (int t = 0; t < THREADS; t++)
            args[t] = (same_region_arg_t){.a = a, .region = region, .region_len = len, .t = t};
        run_threads(THREADS, same_region_thread, args, sizeof(args[0]));
        expect_no_failures();
        /* every thread deregistered its registration: none is left */
        nixl_reg_desc_t rd = t_rdesc(region, len);
        EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_deregister_mem(a, NIXL_DRAM_SEG, &rd, 1, NULL));
        nixl_agent_destroy(a);
        free(region);
    }
}

/* Two threads, each with its own agent of the same name, doing loopback transfers. */
static void *own_agent_thread(void *p)
{
    int t = *(int *)p;
    nixl_agent_t *a = NULL;
    nixl_backend_t *be = NULL;
    uint8_t *buf = malloc(2 * SLICE);
    do {
        TRY_ST(NIXL_SUCCESS, nixl_agent_create("same-name", NULL, &a), "create agent");
        TRY_ST(NIXL_SUCCESS, nixl_agent_create_backend(a, "SHM", NULL, 0, &be), "backend");
        nixl_reg_desc_t rd = t_rdesc(buf, 2 * SLICE);
        TRY_ST(NIXL_SUCCESS, nixl_agent_register_mem(a, NIXL_DRAM_SEG, &rd, 1, NULL), "register");
        nixl_desc_t s = t_desc(buf, SLICE), d = t_desc(buf + SLICE, SLICE);
        for (int i = 0; i < ITERS; i++) {
            t_fill(buf, SLICE, (unsigned)(t * 7 + i));
            nixl_xfer_req_t *r = NULL;
            TRY_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &s, 1,
                                                            NIXL_DRAM_SEG, &d, 1, "same-name",
                                                            NULL, &r), "create");
            TRY_ST(NIXL_SUCCESS, wait_done(a, r, nixl_agent_post_xfer_req(a, r, NULL)), "post");
            TRY(t_check(buf + SLICE, SLICE, (unsigned)(t * 7 + i)) == -1, "data");
            TRY_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, r), "release");
        }
    } while (0);
    nixl_agent_destroy(a);
    free(buf);
    return NULL;
}

static void test_agents_with_one_name_in_two_threads(void **state)
{
    (void)state;
    reset_failures();
    int ids[2] = {0, 1};
    run_threads(2, own_agent_thread, ids, sizeof(ids[0]));
    expect_no_failures();
}

/* ------------------------------------------------------------------------------------------ */
/* Notifications from several threads                                                          */
/* ------------------------------------------------------------------------------------------ */

typedef struct notif_arg {
    nixl_agent_t *a;
    int t, count;
    bool empty;
} notif_arg_t;

static void *notif_thread(void *p)
{
    notif_arg_t *x = p;
    char msg[32];
    for (int i = 0; i < x->count; i++) {
        int n = x->empty ? 0 : snprintf(msg, sizeof(msg), "t%d-%03d", x->t, i);
        TRY_ST(NIXL_SUCCESS, nixl_agent_gen_notif(x->a, "B", x->empty ? NULL : msg, (size_t)n, NULL),
               "gen_notif");
    }
    return NULL;
}

typedef struct two_agents {
    nixl_agent_t *a, *b;
} two_agents_t;

static int setup_two(void **state)
{
    two_agents_t *f = calloc(1, sizeof(*f));
    f->a = t_agent("A", NULL, NULL, NULL);
    f->b = t_agent("B", NULL, NULL, NULL);
    t_load(f->a, f->b);
    t_load(f->b, f->a);
    *state = f;
    return 0;
}

static int teardown_two(void **state)
{
    two_agents_t *f = *state;
    nixl_agent_destroy(f->a);
    nixl_agent_destroy(f->b);
    free(f);
    return 0;
}

static void test_threads_gen_notif(void **state)
{
    two_agents_t *f = *state;
    enum { THREADS = 4, PER = 100 };
    reset_failures();
    notif_arg_t args[THREADS];
    for (int t = 0; t < THREADS; t++)
        args[t] = (notif_arg_t){.a = f->a, .t = t, .count = PER};
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, notif_thread, &args[t]), 0);
    /* the target polls while they send */
    t_notifs_t got = {0};
    t_notifs_wait(f->b, &got, THREADS * PER, 30000);
    for (int t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(th[t], NULL), 0);
    expect_no_failures();
    t_sleep_us(50000);
    EXPECT_ST(NIXL_SUCCESS, t_notifs_take(f->b, &got));
    assert_int_equal(got.count, THREADS * PER);

    /* each payload exactly once, and each thread's in the order it sent them */
    int seen[THREADS][PER] = {{0}}, next[THREADS] = {0};
    for (size_t i = 0; i < got.count; i++) {
        int t = -1, k = -1;
        assert_string_equal(got.items[i].agent, "A");
        assert_int_equal(sscanf(got.items[i].msg, "t%d-%d", &t, &k), 2);
        assert_in_range(t, 0, THREADS - 1);
        assert_in_range(k, 0, PER - 1);
        seen[t][k]++;
        assert_int_equal(k, next[t]);
        next[t]++;
    }
    for (int t = 0; t < THREADS; t++)
        for (int k = 0; k < PER; k++)
            assert_int_equal(seen[t][k], 1);
    t_notifs_free(&got);
}

static void test_threads_empty_notifs(void **state)
{
    two_agents_t *f = *state;
    enum { THREADS = 2, PER = 16 };
    reset_failures();
    notif_arg_t args[THREADS];
    for (int t = 0; t < THREADS; t++)
        args[t] = (notif_arg_t){.a = f->a, .t = t, .count = PER, .empty = true};
    run_threads(THREADS, notif_thread, args, sizeof(args[0]));
    expect_no_failures();
    t_notifs_t got = {0};
    t_notifs_wait(f->b, &got, THREADS * PER, 20000);
    t_sleep_us(50000);
    EXPECT_ST(NIXL_SUCCESS, t_notifs_take(f->b, &got));
    assert_int_equal(got.count, THREADS * PER);
    for (size_t i = 0; i < got.count; i++) {
        assert_string_equal(got.items[i].agent, "A");
        assert_int_equal(got.items[i].len, 0);
        assert_string_equal(got.items[i].msg, "");
    }
    t_notifs_free(&got);
}

/* ------------------------------------------------------------------------------------------ */
/* Registration and metadata changes while others transfer                                     */
/* ------------------------------------------------------------------------------------------ */

#define XLEN (64 * 1024)

typedef struct mixed {
    nixl_agent_t *a, *b;
    uint8_t *asrc[2], *bdst[2]; /* per transfer thread, registered for the whole test */
    atomic_int transfers_left;
    atomic_int notifs_sent;
} mixed_t;

typedef struct mixed_arg {
    mixed_t *m;
    int t;
} mixed_arg_t;

/* A -> B writes with a notification, checked byte by byte on B's side. */
static void *mixed_transfer_thread(void *p)
{
    mixed_arg_t *x = p;
    mixed_t *m = x->m;
    uint8_t *src = m->asrc[x->t], *dst = m->bdst[x->t];
    nixl_desc_t s = t_desc(src, XLEN), d = t_desc(dst, XLEN);
    nixl_opt_args_t o = t_notif_opt(x->t ? "x1" : "x0");
    nixl_xfer_req_t *r = NULL;
    for (int i = 0; i < ITERS; i++) {
        unsigned seed = (unsigned)(x->t * 500 + i);
        t_fill(src, XLEN, seed);
        if (!r || i % 50 == 0) { /* new requests now and then, reposts otherwise */
            if (r)
                TRY_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(m->a, r), "release");
            r = NULL;
            TRY_ST(NIXL_SUCCESS, nixl_agent_create_xfer_req(m->a, NIXL_WRITE, NIXL_DRAM_SEG, &s, 1,
                                                            NIXL_DRAM_SEG, &d, 1, "B", &o, &r),
                   "create");
        }
        TRY_ST(NIXL_SUCCESS, wait_done(m->a, r, nixl_agent_post_xfer_req(m->a, r, NULL)), "post");
        atomic_fetch_add(&m->notifs_sent, 1);
        TRY(t_check(dst, XLEN, seed) == -1, "data");
    }
    if (r)
        tcheck(nixl_agent_release_xfer_req(m->a, r) == NIXL_SUCCESS, __LINE__, "release", 0);
    atomic_fetch_sub(&m->transfers_left, 1);
    return NULL;
}

/* Registers and deregisters its own regions on A and B, prepares lists on them, and sends
 * B's new regions to A as partial metadata, until the transfer threads are done. */
static void *mixed_register_thread(void *p)
{
    mixed_arg_t *x = p;
    mixed_t *m = x->m;
    enum { N = 8, RL = 512 };
    uint8_t *mine = malloc(N * RL);
    nixl_reg_desc_t rd[N];
    nixl_desc_t dd[N];
    for (int i = 0; i < N; i++) {
        rd[i] = t_rdesc(mine + i * RL, RL);
        dd[i] = t_desc(mine + i * RL, RL);
    }
    int rounds = 0;
    while (atomic_load(&m->transfers_left) > 0 || rounds < 20) {
        rounds++;
        nixl_agent_t *owner = x->t ? m->b : m->a;
        TRY_ST(NIXL_SUCCESS, nixl_agent_register_mem(owner, NIXL_DRAM_SEG, rd, N, NULL), "register");
        nixl_dlist_t *dl = NULL;
        TRY_ST(NIXL_SUCCESS, nixl_agent_prep_xfer_dlist(owner, NIXL_INIT_AGENT, NIXL_DRAM_SEG, dd,
                                                        N, NULL, &dl), "prep");
        TRY_ST(NIXL_SUCCESS, nixl_agent_release_dlist(owner, dl), "release dlist");
        if (x->t) {
            /* B's new regions travel to A while A transfers */
            void *blob = NULL;
            size_t len = 0;
            TRY_ST(NIXL_SUCCESS, nixl_agent_get_local_partial_md(m->b, NIXL_DRAM_SEG, rd, N, NULL,
                                                                 &blob, &len), "partial md");
            nixl_status_t st = nixl_agent_load_remote_md(m->a, blob, len, NULL);
            nixl_free(blob);
            TRY_ST(NIXL_SUCCESS, st, "load partial md");
            TRY_ST(NIXL_SUCCESS, nixl_agent_check_remote_md(m->a, "B", NIXL_DRAM_SEG, dd, N),
                   "check");
        } else {
            void *blob = NULL;
            size_t len = 0;
            TRY_ST(NIXL_SUCCESS, nixl_agent_get_local_md(m->a, &blob, &len), "local md");
            nixl_free(blob);
        }
        TRY_ST(NIXL_SUCCESS, nixl_agent_deregister_mem(owner, NIXL_DRAM_SEG, rd, N, NULL),
               "deregister");
    }
    free(mine);
    return NULL;
}

static void test_register_while_transferring(void **state)
{
    (void)state;
    reset_failures();
    mixed_t m = {0};
    m.a = t_agent("A", NULL, NULL, NULL);
    m.b = t_agent("B", NULL, NULL, NULL);
    for (int t = 0; t < 2; t++) {
        m.asrc[t] = t_alloc(XLEN);
        m.bdst[t] = t_alloc(XLEN);
        t_reg(m.a, m.asrc[t], XLEN);
        t_reg(m.b, m.bdst[t], XLEN);
    }
    t_load(m.a, m.b);
    atomic_store(&m.transfers_left, 2);
    mixed_arg_t args[4] = {{&m, 0}, {&m, 1}, {&m, 0}, {&m, 1}};
    pthread_t th[4];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, mixed_transfer_thread, &args[i]), 0);
    for (int i = 2; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, mixed_register_thread, &args[i]), 0);
    /* B drains its notifications meanwhile */
    t_notifs_t got = {0};
    t_notifs_wait(m.b, &got, 2 * ITERS, 30000);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    expect_no_failures();
    t_sleep_us(50000);
    EXPECT_ST(NIXL_SUCCESS, t_notifs_take(m.b, &got));
    assert_int_equal(got.count, atomic_load(&m.notifs_sent));
    assert_int_equal(got.count, 2 * ITERS);
    size_t per[2] = {0, 0};
    for (size_t i = 0; i < got.count; i++) {
        assert_string_equal(got.items[i].agent, "A");
        assert_true(!strcmp(got.items[i].msg, "x0") || !strcmp(got.items[i].msg, "x1"));
        per[got.items[i].msg[1] - '0']++;
    }
    assert_int_equal(per[0], ITERS);
    assert_int_equal(per[1], ITERS);
    t_notifs_free(&got);
    nixl_agent_destroy(m.a);
    nixl_agent_destroy(m.b);
    for (int t = 0; t < 2; t++) {
        free(m.asrc[t]);
        free(m.bdst[t]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_agent_same_region),
        cmocka_unit_test(test_agents_with_one_name_in_two_threads),
        cmocka_unit_test_setup_teardown(test_threads_gen_notif, setup_two, teardown_two),
        cmocka_unit_test_setup_teardown(test_threads_empty_notifs, setup_two, teardown_two),
        cmocka_unit_test(test_register_while_transferring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
