/*
 * test_ucx_kill.c - completion you can trust: the target of a transfer is SIGKILLed at a random
 * point of it, and a request that returns NIXL_SUCCESS must have moved every byte.
 *
 * UCX over TCP between two processes. The target's region is a memfd mapped by the target
 * (which registers it) and by the test, so the test can read what the target's memory
 * received even after the target is dead. Each round: a new target (a fresh process and agent
 * name), a request of 4 to 64 MiB in 1 to 8 descriptors (remote slots in reverse order, so
 * none merge), with a notification every other round. It is posted once to completion (it must succeed and is
 * verified; it also measures how long it takes, T), the bytes are reset, and it is posted
 * again: the target is SIGKILLed after a random delay of 0 to 1.3 T. Whatever that post
 * returns:
 *  - SUCCESS: every byte is checked (WRITE: the target's memory holds the new pattern; READ:
 *    the local buffer, zeroed before the post, holds the target's pattern);
 *  - otherwise it must be NIXL_ERR_REMOTE_DISCONNECT, within 10 s of the kill.
 * 100 READs and 100 WRITEs, so 200 kills (the count; NIXL_TEST_KILL_ROUNDS overrides
 * it; under valgrind 3 each). Then 25 READs and 25 WRITEs split over dedicated workers
 * (num_threads=2, split_batch_size=64, 64 to 2,048 descriptors): a chunk whose thread saw no
 * error must not make the request a success while another chunk's bytes are missing. Sizes are 4-64 MiB instead of the 256 MiB so the test
 * takes about 40 s on a 2-core machine; the race is the same. Half the rounds carry no
 * notification: a failed notification must not be what reveals the loss. Against the backend
 * that tracked only the endpoint flush, the READ half fails (SUCCESS with bytes missing).
 */
#include <sys/mman.h>

#include "ucx_proc.h"

#define MAXLEN ((size_t)64 << 20)
#define MINLEN ((size_t)4 << 20)
#define MAXDESC 8
#define SPLIT_MIN 64 /* split_batch_size of the split rounds */
#define SPLIT_MAXDESC 2048

static char self_path[4096];

static int child_main(int in, int out, int memfd)
{
    char name[32];
    if (!p_read(in, name, sizeof(name)))
        return 2;
    void *buf = mmap(NULL, MAXLEN, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    nixl_agent_t *a = buf != MAP_FAILED ? p_child_agent(name, buf, MAXLEN, out) : NULL;
    if (!a || !p_recv_md(in, a))
        return 4;
    char c = 'r';
    if (!p_write(out, &c, 1))
        return 5;
    while (read(in, &c, 1) > 0) /* until killed */
        ;
    nixl_agent_destroy(a);
    return 0;
}

typedef struct stats {
    unsigned rounds, warm, success, before_kill, errors;
    double ns_per_byte; /* how fast a transfer goes */
    double max_detect_ms;
} stats_t;

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    return t_rnd(&rnd_state);
}

/* Every byte of every descriptor moved: remote slot ndesc-1-i holds local piece i. */
static void expect_moved(nixl_xfer_op_t op, const uint8_t *local, const uint8_t *shared,
                         size_t piece, size_t ndesc, unsigned round, size_t len)
{
    for (size_t i = 0; i < ndesc; i++) {
        const uint8_t *got = op == NIXL_WRITE ? shared + (ndesc - 1 - i) * piece
                                              : local + i * piece;
        const uint8_t *want = op == NIXL_WRITE ? local + i * piece
                                               : shared + (ndesc - 1 - i) * piece;
        if (memcmp(got, want, piece)) {
            size_t k = 0;
            while (got[k] == want[k])
                k++;
            fail_msg("round %u: %s of %zu bytes (%zu descriptors) returned SUCCESS but "
                     "descriptor %zu differs from byte %zu on", round, nixl_op_str(op), len,
                     ndesc, i, k);
        }
    }
}

static void round_run(nixl_agent_t *a, uint8_t *local, uint8_t *shared, int memfd,
                      nixl_xfer_op_t op, unsigned round, bool split, stats_t *s)
{
    size_t ndesc = split ? SPLIT_MIN + rnd() % (SPLIT_MAXDESC - SPLIT_MIN + 1)
                         : 1 + rnd() % MAXDESC;
    size_t len = MINLEN + rnd() % (MAXLEN - MINLEN + 1);
    len -= len % (ndesc * 64);
    size_t piece = len / ndesc;
    unsigned seed = 1 + round % 250; /* each round's pattern differs from the last one's */

    /* WRITE: new bytes here, old ones there; READ: the target's bytes there, zeros here. */
    t_fill(op == NIXL_WRITE ? local : shared, len, seed);
    memset(op == NIXL_WRITE ? shared : local, 0, len);

    p_child_t c;
    char fd[16], name[32] = {0}; /* sent whole: no uninitialised bytes after the name */
    snprintf(fd, sizeof(fd), "%d", memfd);
    snprintf(name, sizeof(name), "target-%u-%u", (unsigned)op, round);
    p_spawn(&c, self_path, "child", fd, NULL, NULL, NULL);
    assert_true(p_write(c.out, name, sizeof(name)));
    uint64_t raddr = 0;
    char ready;
    assert_true(p_recv_md(c.in, a));
    assert_true(p_read(c.in, &raddr, sizeof(raddr)));
    assert_true(p_send_md(c.out, a));
    assert_true(p_read(c.in, &ready, 1));

    nixl_desc_t *l = calloc(ndesc, sizeof(*l)), *r = calloc(ndesc, sizeof(*r));
    for (size_t i = 0; i < ndesc; i++) {
        l[i] = t_desc(local + i * piece, piece);
        r[i] = (nixl_desc_t){.addr = (uintptr_t)(raddr + (ndesc - 1 - i) * piece),
                             .len = piece};
    }
    /* remote slot ndesc-1-i receives local piece i: the expected remote image */
    /* Every other round without a notification: a failed notification must not be what
     * tells the loss. */
    nixl_opt_args_t o = t_notif_opt("kill");
    nixl_opt_args_t *opt = round % 2 ? NULL : &o;
    nixl_xfer_req_t *req = u_req(a, op, l, r, ndesc, name, opt);
    free(l);
    free(r);

    /* A first post, not interrupted: it connects, shows how long this transfer takes here,
     * and must move every byte. Then the bytes are reset for the post that is interrupted. */
    uint64_t t0 = t_now_ns();
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, req, opt));
    uint64_t expect_ns = t_now_ns() - t0;
    s->ns_per_byte = (double)expect_ns / (double)len;
    expect_moved(op, local, shared, piece, ndesc, round, len);
    s->warm++;
    if (op == NIXL_WRITE)
        t_fill(local, len, seed + 1);
    memset(op == NIXL_WRITE ? shared : local, 0, len);

    uint64_t delay_ns = expect_ns * (rnd() % 1300) / 1000;
    t0 = t_now_ns();
    nixl_status_t st = nixl_agent_post_xfer_req(a, req, opt);
    while (st == NIXL_IN_PROG && t_now_ns() - t0 < delay_ns) {
        t_sleep_us(100);
        st = nixl_agent_get_xfer_status(a, req);
    }
    uint64_t t_done = st == NIXL_SUCCESS ? t_now_ns() : 0;
    assert_int_equal(kill(c.pid, SIGKILL), 0);
    uint64_t t_kill = t_now_ns();
    int status;
    assert_int_equal(waitpid(c.pid, &status, 0), c.pid);
    c.pid = -1;
    if (st == NIXL_IN_PROG)
        st = t_wait(a, req, 10000);
    if (st == NIXL_SUCCESS) {
        if (t_done)
            s->before_kill++;
        expect_moved(op, local, shared, piece, ndesc, round, len);
        s->success++;
    } else {
        double ms = (double)(t_now_ns() - t_kill) / 1e6;
        if (ms > s->max_detect_ms)
            s->max_detect_ms = ms;
        if (st != NIXL_ERR_REMOTE_DISCONNECT)
            fail_msg("round %u: %s of %zu bytes ended %s after the kill: %s", round,
                     nixl_op_str(op), len, nixl_status_str(st), nixl_last_error());
        if (!s->errors)
            print_message("%s: first failure: %s\n", nixl_op_str(op), nixl_last_error());
        s->errors++;
    }
    s->rounds++;
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, req));
    nixl_agent_invalidate_remote_md(a, name); /* NOT_FOUND when the failure did it already */
    p_reap(&c);
}

static void kill_rounds(nixl_xfer_op_t op, bool split)
{
    unsigned rounds = p_under_valgrind() ? 3 : split ? 25 : 100;
    const char *e = getenv("NIXL_TEST_KILL_ROUNDS");
    if (e && atoi(e) > 0)
        rounds = (unsigned)atoi(e);
    int memfd = memfd_create("ucx-kill-target", 0);
    assert_true(memfd >= 0);
    assert_int_equal(ftruncate(memfd, (off_t)MAXLEN), 0);
    uint8_t *shared = mmap(NULL, MAXLEN, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    assert_true(shared != MAP_FAILED);
    static const nixl_param_t pool[] = {{"num_threads", "2"}, {"split_batch_size", "64"}};
    nixl_agent_t *a = u_agent_p("initiator", U_TCP, pool, split ? 2 : 0, NULL);
    uint8_t *local = t_alloc_zero(MAXLEN);
    t_reg(a, local, MAXLEN);

    stats_t s = {.ns_per_byte = 1.0};
    uint64_t t0 = t_now_ns();
    for (unsigned i = 0; i < rounds; i++)
        round_run(a, local, shared, memfd, op, i, split, &s);
    print_message("%s%s: %u kills in %.1f s: of the interrupted requests %u SUCCESS verified "
                  "byte for byte (%u finished before the kill), %u REMOTE_DISCONNECT (slowest "
                  "%.0f ms after the kill); %u uninterrupted SUCCESS verified; last %.2f "
                  "ns/byte\n",
                  nixl_op_str(op), split ? " (split)" : "", s.rounds, (double)(t_now_ns() - t0) / 1e9, s.success,
                  s.before_kill, s.errors, s.max_detect_ms, s.warm, s.ns_per_byte);
    assert_int_equal(s.rounds, rounds);
    nixl_agent_destroy(a);
    t_free_zero(local, MAXLEN);
    munmap(shared, MAXLEN);
    close(memfd);
}

typedef struct kill_case {
    nixl_xfer_op_t op;
    bool split;
} kill_case_t;

static void test_kill_mid(void **state)
{
    const kill_case_t *c = *state;
    kill_rounds(c->op, c->split);
}

int main(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "child"))
        return child_main(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    if (!realpath(argv[0], self_path))
        return 1;
    signal(SIGPIPE, SIG_IGN);
    unsetenv("NIXL_TELEMETRY_ENABLE");
    static kill_case_t reads = {NIXL_READ, false}, writes = {NIXL_WRITE, false},
                        split_reads = {NIXL_READ, true}, split_writes = {NIXL_WRITE, true};
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_prestate(test_kill_mid, &reads),
        cmocka_unit_test_prestate(test_kill_mid, &writes),
        cmocka_unit_test_prestate(test_kill_mid, &split_reads),
        cmocka_unit_test_prestate(test_kill_mid, &split_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
