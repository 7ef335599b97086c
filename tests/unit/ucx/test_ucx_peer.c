/*
 * test_ucx_peer.c - a real second process over UCX (TCP): the program re-executes itself as
 * the peer ("child" role), so the peer starts with a fresh UCX. Metadata goes through pipes.
 * The peer is killed with SIGKILL while transfers run: the survivor's transfer must end with
 * NIXL_ERR_REMOTE_DISCONNECT within 5 s, naming the peer, instead of hanging. Or it is stopped
 * with SIGSTOP: the survivor's liveness probe must notice it (test_peer_stopped).
 *
 * The child never uses cmocka: it reports through its exit status.
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ucx_proc.h"

#define BUF ((size_t)8 << 20)

static char self_path[4096]; /* argv[0] made absolute (under valgrind /proc/self/exe is not us) */

/* The peer: an agent with a registered buffer; it swaps metadata, says "ready", then waits
 * (reading its pipe) until it is killed. */
static int child_main(int in, int out)
{
    setenv("UCX_TLS", "tcp", 1);
    nixl_agent_t *a = NULL;
    nixl_backend_t *be = NULL;
    void *buf = calloc(1, BUF);
    nixl_reg_desc_t d = {.addr = (uintptr_t)buf, .len = BUF};
    if (!buf || nixl_agent_create("child", NULL, &a) != NIXL_SUCCESS ||
        nixl_agent_create_backend(a, "UCX", NULL, 0, &be) != NIXL_SUCCESS ||
        nixl_agent_register_mem(a, NIXL_DRAM_SEG, &d, 1, NULL) != NIXL_SUCCESS) {
        fprintf(stderr, "child: %s\n", nixl_last_error());
        return 2;
    }
    uint64_t addr = (uintptr_t)buf;
    if (!p_send_md(out, a) || !p_write(out, &addr, sizeof(addr)) || !p_recv_md(in, a))
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

static pid_t child_pid; /* killed by the teardown, whatever the test did */

static int kill_child(void **state)
{
    (void)state;
    if (child_pid > 0) {
        kill(child_pid, SIGKILL);
        waitpid(child_pid, NULL, 0);
    }
    child_pid = 0;
    return 0;
}

/* The parent's side of a test: the peer started, metadata swapped both ways, a WRITE of the
 * whole buffer prepared and done three times. */
typedef struct {
    pid_t pid;
    int to_child, from_child;
    nixl_agent_t *a;
    uint8_t *buf;
    nixl_desc_t l, r;
    nixl_xfer_req_t *req;
} pair_t;

static void pair_start(pair_t *t, const nixl_param_t *params, size_t n)
{
    int p2c[2], c2p[2];
    assert_int_equal(pipe(p2c), 0);
    assert_int_equal(pipe(c2p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char in[16], out[16];
        snprintf(in, sizeof(in), "%d", p2c[0]);
        snprintf(out, sizeof(out), "%d", c2p[1]);
        close(p2c[1]);
        close(c2p[0]);
        execl(self_path, "test_ucx_peer", "child", in, out, (char *)NULL);
        _exit(127);
    }
    close(p2c[0]);
    close(c2p[1]);
    t->pid = pid;
    child_pid = pid;
    t->to_child = p2c[1];
    t->from_child = c2p[0];

    t->a = u_agent_p("parent", U_TCP, params, n, NULL);
    t->buf = t_alloc_zero(BUF);
    t_reg(t->a, t->buf, BUF);
    uint64_t raddr = 0;
    assert_true(p_recv_md(t->from_child, t->a));
    assert_true(p_read(t->from_child, &raddr, sizeof(raddr)));
    assert_true(p_send_md(t->to_child, t->a));
    char c;
    assert_true(p_read(t->from_child, &c, 1));

    t->l = t_desc(t->buf, BUF);
    t->r = (nixl_desc_t){.addr = (uintptr_t)raddr, .len = BUF};
    t->req = u_req(t->a, NIXL_WRITE, &t->l, &t->r, 1, "child", NULL);
    for (int i = 0; i < 3; i++)
        EXPECT_ST(NIXL_SUCCESS, t_post_wait(t->a, t->req, NULL)); /* the peer works */
}

static void test_peer_killed_mid_transfer(void **state)
{
    (void)state;
    pair_t t;
    pair_start(&t, NULL, 0);
    pid_t pid = t.pid;
    nixl_agent_t *a = t.a;
    uint8_t *buf = t.buf;
    nixl_xfer_req_t *req = t.req;
    int p2c[2] = {-1, t.to_child}, c2p[2] = {t.from_child, -1};

    /* Kill it right after a post, and keep transferring until the failure shows. */
    nixl_status_t st = nixl_agent_post_xfer_req(a, req, NULL);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    child_pid = 0;
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
    close(p2c[1]);
    close(c2p[0]);
}

/*
 * A peer that stops answering (SIGSTOP: its process and its connections stay, so neither the
 * kernel nor UCX notices) is taken as failed within ucx_peer_timeout_ms: with 2000 ms,
 * preparing or posting transfers to it fails with NIXL_ERR_REMOTE_DISCONNECT 2 to 3 s after.
 */
static void test_peer_stopped(void **state)
{
    (void)state;
    nixl_param_t timeout = {"ucx_peer_timeout_ms", "2000"};
    pair_t t;
    pair_start(&t, &timeout, 1);
    pid_t pid = t.pid;
    nixl_agent_t *a = t.a;
    uint8_t *buf = t.buf;
    nixl_xfer_req_t *req = t.req;
    nixl_desc_t l = t.l, r = t.r;
    int p2c[2] = {-1, t.to_child}, c2p[2] = {t.from_child, -1};
    /* Let the first probes be answered (one every 500 ms), and the peer stay alive through
     * more than a timeout: answering peers are not failed. */
    t_sleep_us(2600000);
    EXPECT_ST(NIXL_SUCCESS, t_post_wait(a, req, NULL));

    /* A transfer posted just after the stop cannot complete (its flush waits on the peer): it
     * must end with REMOTE_DISCONNECT within the timeout, not stay IN_PROG. */
    assert_int_equal(kill(pid, SIGSTOP), 0);
    uint64_t t0 = t_now_ns(), deadline = t0 + 15000000000ull;
    nixl_status_t st = nixl_agent_post_xfer_req(a, req, NULL);
    while (st == NIXL_IN_PROG && t_now_ns() < deadline) {
        t_sleep_us(20000);
        st = nixl_agent_get_xfer_status(a, req);
    }
    double ms = (double)(t_now_ns() - t0) / 1e6;
    print_message("in-flight WRITE to the stopped peer ended %.0f ms after SIGSTOP: %s: %s\n", ms,
                  nixl_status_str(st), nixl_last_error());
    EXPECT_ST(NIXL_ERR_REMOTE_DISCONNECT, st);
    EXPECT_LASTERR("child");
    /* 2000 ms, plus up to a probe period (500 ms), plus slack for a loaded machine */
    assert_true(ms > 1500 && ms < 8000);
    /* The peer is now forgotten (its metadata invalidated): new requests to it are refused,
     * and the request in flight is not posted again. */
    nixl_xfer_req_t *probe = NULL;
    assert_int_not_equal(nixl_agent_create_xfer_req(a, NIXL_WRITE, NIXL_DRAM_SEG, &l, 1,
                                                    NIXL_DRAM_SEG, &r, 1, "child", NULL, &probe),
                         NIXL_SUCCESS);
    assert_null(probe);
    nixl_status_t again = nixl_agent_post_xfer_req(a, req, NULL);
    assert_true(again != NIXL_SUCCESS && again != NIXL_IN_PROG);

    assert_int_equal(kill_child(NULL), 0);
    nixl_agent_release_xfer_req(a, req);
    nixl_agent_destroy(a);
    t_free_zero(buf, BUF);
    close(p2c[1]);
    close(c2p[0]);
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
        cmocka_unit_test_teardown(test_peer_killed_mid_transfer, kill_child),
        cmocka_unit_test_teardown(test_peer_stopped, kill_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
