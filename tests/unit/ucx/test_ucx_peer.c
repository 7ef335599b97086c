/*
 * test_ucx_peer.c - a real second process over UCX (TCP): the program re-executes itself as
 * the peer ("child" role), so the peer starts with a fresh UCX. Metadata goes through pipes.
 * The peer is killed with SIGKILL while transfers run: the survivor's transfer must end with
 * NIXL_ERR_REMOTE_DISCONNECT within 5 s, naming the peer, instead of hanging.
 *
 * The child never uses cmocka: it reports through its exit status (ucx_proc.h).
 */
#include "ucx_proc.h"

#define BUF ((size_t)8 << 20)

static char self_path[4096]; /* argv[0] made absolute (under valgrind /proc/self/exe is not us) */

/* The peer: an agent with a registered buffer; it swaps metadata, says "ready", then waits
 * (reading its pipe) until it is killed. */
static int child_main(int in, int out)
{
    void *buf = calloc(1, BUF);
    nixl_agent_t *a = buf ? p_child_agent("child", buf, BUF, out) : NULL;
    if (!a || !p_recv_md(in, a))
        return 3;
    char c = 'r';
    if (!p_write(out, &c, 1))
        return 4;
    while (read(in, &c, 1) > 0)
        ;
    nixl_agent_destroy(a);
    free(buf);
    return 0;
}

static void test_peer_killed_mid_transfer(void **state)
{
    (void)state;
    p_child_t ch;
    p_spawn(&ch, self_path, "child", NULL, NULL, NULL, NULL);
    pid_t pid = ch.pid;

    nixl_agent_t *a = u_agent("parent", U_TCP);
    uint8_t *buf = t_alloc_zero(BUF);
    t_reg(a, buf, BUF);
    uint64_t raddr = 0;
    assert_true(p_recv_md(ch.in, a));
    assert_true(p_read(ch.in, &raddr, sizeof(raddr)));
    assert_true(p_send_md(ch.out, a));
    char c;
    assert_true(p_read(ch.in, &c, 1));

    nixl_desc_t l = t_desc(buf, BUF), r = {.addr = (uintptr_t)raddr, .len = BUF};
    nixl_xfer_req_t *req = u_req(a, NIXL_WRITE, &l, &r, 1, "child", NULL);
    for (int i = 0; i < 3; i++)
        EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, req, NULL)); /* the peer works */

    /* Kill it right after a post, and keep transferring until the failure shows. */
    nixl_status_t st = nixl_agent_post_xfer_req(a, req, NULL);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    uint64_t t0 = t_now_ns(), deadline = t0 + 5000000000ull;
    while (t_now_ns() < deadline) {
        if (st == NIXL_IN_PROG) {
            t_sleep_us(1000);
            st = nixl_agent_get_xfer_status(a, req);
        } else if (st == NIXL_SUCCESS) {
            st = nixl_agent_post_xfer_req(a, req, NULL); /* it finished before the kill */
        } else {
            break;
        }
    }
    print_message("failure seen %.1f ms after the kill: %s: %s\n",
                  (double)(t_now_ns() - t0) / 1e6, nixl_status_str(st), nixl_last_error());
    EXPECT_ST(NIXL_ERR_REMOTE_DISCONNECT, st);
    EXPECT_LASTERR("child");
    /* the agent has invalidated the dead peer */
    EXPECT_ERR(NIXL_ERR_NOT_FOUND, NULL, nixl_agent_post_xfer_req(a, req, NULL));
    EXPECT_ST(NIXL_SUCCESS, nixl_agent_release_xfer_req(a, req));
    nixl_agent_destroy(a);
    t_free_zero(buf, BUF);
    ch.pid = -1; /* reaped above */
    p_reap(&ch);
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "child"))
        return child_main(atoi(argv[2]), atoi(argv[3]));
    if (!realpath(argv[0], self_path))
        return 1;
    signal(SIGPIPE, SIG_IGN);
    unsetenv("NIXL_TELEMETRY_ENABLE");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peer_killed_mid_transfer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
