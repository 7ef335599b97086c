/*
 * test_ucx_teardown.c - destroying an agent never aborts, whatever state its peer is in.
 * UCX over TCP between two processes; the peer is a child process with its own agent.
 *
 *  quiet    the peer sends its metadata and stops itself (SIGSTOP) before the initiator loads
 *           it: the initiator loads it, connects (its endpoint's wire-up is never answered),
 *           sends a notification that cannot leave, and destroys its agent. 20 times, each
 *           with a new peer and a new initiator agent.
 *  stopped  both load each other; a WRITE with a notification completes; the peer is
 *           SIGSTOPped; a notification to it cannot leave; the initiator destroys its agent.
 *           5 times.
 *  killed   the same, but the peer is SIGKILLed while a WRITE is in flight (which must end
 *           with REMOTE_DISCONNECT or SUCCESS); then destroy. 5 times.
 * Each destroy must return (an abort ends the test) within 10 s. Under valgrind: 2 of each.
 */
#include "ucx_proc.h"

#define BUF ((size_t)4 << 20)

static char self_path[4096];

/* The peer: an agent with one registered buffer. "quiet": sends its metadata, says ready and
 * stops itself. Otherwise also loads the initiator's metadata first. Then waits to be
 * killed. */
static int child_main(int in, int out, const char *mode)
{
    void *buf = calloc(1, BUF);
    nixl_agent_t *a = buf ? p_child_agent("peer", buf, BUF, out) : NULL;
    if (!a)
        return 3;
    bool quiet = !strcmp(mode, "quiet");
    if (!quiet && !p_recv_md(in, a))
        return 4;
    char c = 'r';
    if (!p_write(out, &c, 1))
        return 5;
    if (quiet)
        raise(SIGSTOP);
    while (read(in, &c, 1) > 0)
        ;
    return 0;
}

/* Wait until the child is stopped. */
static void wait_stopped(pid_t pid)
{
    int status;
    pid_t r;
    while ((r = waitpid(pid, &status, WUNTRACED)) < 0 && errno == EINTR)
        ;
    assert_int_equal(r, pid);
    assert_true(WIFSTOPPED(status));
}

/* Destroy `a`, which must return within 10 s. */
static void destroy_timed(nixl_agent_t *a, const char *mode, int i)
{
    uint64_t t0 = t_now_ns();
    nixl_agent_destroy(a);
    double ms = (double)(t_now_ns() - t0) / 1e6;
    if (ms > 10000)
        fail_msg("%s %d: destroy took %.0f ms", mode, i, ms);
    if (i == 0)
        print_message("%s: destroy took %.0f ms\n", mode, ms);
}

static void one_round(const char *mode, int i, uint8_t *buf)
{
    p_child_t c;
    p_spawn(&c, self_path, "child", mode, NULL, NULL, NULL);
    char name[32];
    snprintf(name, sizeof(name), "init-%s-%d", mode, i);
    nixl_agent_t *a = u_agent(name, U_TCP);
    t_reg(a, buf, BUF);
    uint64_t raddr = 0;
    char ready;
    bool quiet = !strcmp(mode, "quiet");
    assert_true(p_recv_md(c.in, a));
    assert_true(p_read(c.in, &raddr, sizeof(raddr)));
    if (!quiet)
        assert_true(p_send_md(c.out, a));
    assert_true(p_read(c.in, &ready, 1));
    nixl_opt_args_t o = t_notif_opt("bye");
    if (quiet) {
        wait_stopped(c.pid);
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_connection(a, "peer", NULL));
        nixl_agent_gen_notif(a, "peer", "x", 1, NULL); /* cannot leave: any status */
        destroy_timed(a, mode, i);
        p_reap(&c);
        return;
    }
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_make_connection(a, "peer", NULL));
    nixl_xfer_req_t *req = u_req1(a, NIXL_WRITE, buf, (void *)(uintptr_t)raddr, BUF, "peer", &o);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, req, &o));
    if (!strcmp(mode, "stopped")) {
        assert_int_equal(kill(c.pid, SIGSTOP), 0);
        wait_stopped(c.pid);
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, req));
        nixl_agent_gen_notif(a, "peer", "x", 1, NULL);
    } else {
        nixl_status_t st = nixl_agent_post_xfer_req(a, req, &o);
        assert_int_equal(kill(c.pid, SIGKILL), 0);
        int status;
        assert_int_equal(waitpid(c.pid, &status, 0), c.pid);
        c.pid = -1;
        if (st == NIXL_IN_PROG)
            st = t_wait(a, req, 10000);
        if (st != NIXL_SUCCESS && st != NIXL_ERR_REMOTE_DISCONNECT)
            fail_msg("killed %d: the WRITE ended %s: %s", i, nixl_status_str(st),
                     nixl_last_error());
        EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, req));
    }
    destroy_timed(a, mode, i);
    p_reap(&c);
}

static void rounds(const char *mode, int n)
{
    uint8_t *buf = t_alloc_zero(BUF);
    uint64_t t0 = t_now_ns();
    if (p_under_valgrind())
        n = 2;
    for (int i = 0; i < n; i++)
        one_round(mode, i, buf);
    print_message("%s: %d agents destroyed next to such a peer in %.1f s\n", mode, n,
                  (double)(t_now_ns() - t0) / 1e9);
    t_free_zero(buf, BUF);
}

static void test_quiet_peer(void **state)
{
    (void)state;
    rounds("quiet", 20);
}

static void test_stopped_peer(void **state)
{
    (void)state;
    rounds("stopped", 5);
}

static void test_killed_peer(void **state)
{
    (void)state;
    rounds("killed", 5);
}

int main(int argc, char **argv)
{
    if (argc >= 5 && !strcmp(argv[1], "child"))
        return child_main(atoi(argv[2]), atoi(argv[3]), argv[4]);
    if (!realpath(argv[0], self_path))
        return 1;
    signal(SIGPIPE, SIG_IGN);
    unsetenv("NIXL_TELEMETRY_ENABLE");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiet_peer),
        cmocka_unit_test(test_stopped_peer),
        cmocka_unit_test(test_killed_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
