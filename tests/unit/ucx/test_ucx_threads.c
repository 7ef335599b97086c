/*
 * test_ucx_threads.c - num_threads and split_batch_size: an initiator with 2 dedicated workers
 * (and 2 shared ones) and split_batch_size 64 moves requests of 1, 63, 64, 200 and 16,384
 * descriptors of odd sizes (1 to 61 bytes, none mergeable: every slot is followed by a guard
 * byte, and the remote slots are in reverse order) to and from a second agent over TCP, WRITE
 * and READ, each with a notification; every byte of every slot is checked, and every guard
 * byte must stay untouched. The big request is posted twice (the counters of a split request
 * are reset by a repost). Loopback requests of split size are not split and work as before.
 * The killed-peer case of split requests is in test_ucx_kill.c.
 */
#include <dirent.h>

#include "ucx_test.h"

#define SPLIT "64"
#define MAXN 16384u
#define GUARD 0xee
#define REGION ((size_t)2 << 20)

typedef struct fix {
    nixl_agent_t *a, *b;
    uint8_t *amem, *bmem; /* A's local slots, B's remote slots (REGION each) */
    size_t *loff, *roff, *len;
} fix_t;

static const nixl_param_t threads_params[] = {
    {"num_threads", "2"}, {"num_workers", "2"}, {"split_batch_size", SPLIT}};

static int setup(void **state)
{
    fix_t *f = calloc(1, sizeof(*f));
    f->a = u_agent_p("A", U_TCP, threads_params, 3, NULL);
    f->b = u_agent("B", U_TCP);
    f->amem = t_alloc_zero(2 * REGION); /* the second half: A's loopback target */
    f->bmem = t_alloc_zero(REGION);
    t_reg(f->a, f->amem, 2 * REGION);
    t_reg(f->b, f->bmem, REGION);
    t_load(f->a, f->b);
    t_load(f->b, f->a);
    f->loff = calloc(MAXN, sizeof(size_t));
    f->roff = calloc(MAXN, sizeof(size_t));
    f->len = calloc(MAXN, sizeof(size_t));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fix_t *f = *state;
    nixl_agent_destroy(f->a);
    nixl_agent_destroy(f->b);
    t_free_zero(f->amem, 2 * REGION);
    t_free_zero(f->bmem, REGION);
    free(f->loff);
    free(f->roff);
    free(f->len);
    free(f);
    return 0;
}

/* n slots of odd sizes: local ones in order, remote ones in reverse order, each followed by a
 * guard byte. */
static void layout(fix_t *f, size_t n)
{
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        f->len[i] = 1 + (i * 37 + 11) % 61;
        f->loff[i] = off;
        off += f->len[i] + 1;
    }
    assert_true(off <= REGION);
    off = 0;
    for (size_t i = n; i-- > 0;) {
        f->roff[i] = off;
        off += f->len[i] + 1;
    }
}

/* Every slot of `dst` holds the bytes of the same slot of `src`; every other byte of dst's
 * region is the guard. */
static void expect_slots(const fix_t *f, size_t n, const uint8_t *src, const size_t *soff,
                         const uint8_t *dst, const size_t *doff, const char *what)
{
    uint8_t *want = malloc(REGION);
    memset(want, GUARD, REGION);
    for (size_t i = 0; i < n; i++)
        memcpy(want + doff[i], src + soff[i], f->len[i]);
    if (memcmp(want, dst, REGION)) {
        size_t k = 0;
        while (want[k] == dst[k])
            k++;
        free(want);
        fail_msg("%s of %zu descriptors: byte %zu of the destination is wrong", what, n, k);
    }
    free(want);
}

static void xfer(fix_t *f, nixl_xfer_op_t op, size_t n, bool loopback, unsigned posts)
{
    layout(f, n);
    uint8_t *local = f->amem, *remote = loopback ? f->amem + REGION : f->bmem;
    nixl_agent_t *target = loopback ? f->a : f->b;
    nixl_desc_t *l = calloc(n, sizeof(*l)), *r = calloc(n, sizeof(*r));
    for (size_t i = 0; i < n; i++) {
        l[i] = t_desc(local + f->loff[i], f->len[i]);
        r[i] = t_desc(remote + f->roff[i], f->len[i]);
    }
    char msg[64];
    snprintf(msg, sizeof(msg), "%s %zu%s", nixl_op_str(op), n, loopback ? " self" : "");
    nixl_opt_args_t o = t_notif_opt(msg);
    nixl_xfer_req_t *req = u_req(f->a, op, l, r, n, loopback ? "A" : "B", &o);
    for (unsigned p = 0; p < posts; p++) {
        unsigned seed = 3 + p + (unsigned)n;
        uint8_t *src = op == NIXL_WRITE ? local : remote, *dst = op == NIXL_WRITE ? remote : local;
        t_fill(src, REGION, seed);
        memset(dst, GUARD, REGION);
        EXPECT_ST(NIXL_SUCCESS, t_post_wait(f->a, req, &o));
        if (op == NIXL_WRITE)
            expect_slots(f, n, src, f->loff, dst, f->roff, msg);
        else
            expect_slots(f, n, src, f->roff, dst, f->loff, msg);
        t_expect_one_notif(target, "A", msg);
    }
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(f->a, req));
    free(l);
    free(r);
}

static const size_t counts[] = {1, 63, 64, 200, MAXN};

static void test_write(void **state)
{
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        xfer(*state, NIXL_WRITE, counts[i], false, counts[i] == MAXN ? 2 : 1);
}

static void test_read(void **state)
{
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
        xfer(*state, NIXL_READ, counts[i], false, counts[i] == MAXN ? 2 : 1);
}

static void test_loopback(void **state)
{
    xfer(*state, NIXL_WRITE, MAXN, true, 1);
    xfer(*state, NIXL_READ, 200, true, 1);
}

static size_t threads_now(void)
{
    size_t n = 0;
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* num_threads=N starts N threads more than num_threads=0, and they end with the agent. */
static void test_pool_threads(void **state)
{
    (void)state;
    size_t before = threads_now();
    nixl_agent_t *plain = u_agent("plain", U_TCP);
    size_t plain_threads = threads_now() - before;
    nixl_agent_destroy(plain);
    assert_int_equal(threads_now(), before);
    nixl_agent_t *pooled = u_agent_p("pooled", U_TCP, threads_params, 3, NULL);
    assert_int_equal(threads_now() - before, plain_threads + 2);
    nixl_agent_destroy(pooled);
    assert_int_equal(threads_now(), before);
}

int main(void)
{
    unsetenv("NIXL_TELEMETRY_ENABLE");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loopback, setup, teardown),
        cmocka_unit_test(test_pool_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
