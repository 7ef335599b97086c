/*
 * ucx_proc.h - a second process for the UCX tests: the test program re-executes itself in a
 * child role (so the child starts with a fresh UCX), and the two talk through a pair of pipes:
 * length-prefixed metadata blobs, addresses, one-byte signals. The child never uses cmocka: it
 * reports through its exit status.
 */
#ifndef NIXL_TEST_UCX_PROC_H
#define NIXL_TEST_UCX_PROC_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ucx_test.h"

/* Under valgrind (`make valgrind` wraps the test, not the children it starts), where a test
 * runs a few rounds instead of many. */
static inline bool p_under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload");
}

/* Move all n bytes through fd (writing or reading), across short transfers and signals. */
static inline bool p_io_all(int fd, void *p, size_t n, bool out)
{
    for (uint8_t *b = p; n;) {
        ssize_t k = out ? write(fd, b, n) : read(fd, b, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        b += k;
        n -= (size_t)k;
    }
    return true;
}

static inline bool p_write(int fd, const void *p, size_t n)
{
    return p_io_all(fd, (void *)p, n, true);
}

static inline bool p_read(int fd, void *p, size_t n)
{
    return p_io_all(fd, p, n, false);
}

static inline bool p_send_md(int fd, nixl_agent_t *a)
{
    void *blob = NULL;
    size_t len = 0;
    if (nixl_agent_get_local_md(a, &blob, &len) != NIXL_SUCCESS)
        return false;
    uint64_t l = len;
    bool ok = p_write(fd, &l, sizeof(l)) && p_write(fd, blob, len);
    nixl_free(blob);
    return ok;
}

static inline bool p_recv_md(int fd, nixl_agent_t *a)
{
    uint64_t l;
    if (!p_read(fd, &l, sizeof(l)) || l > ((uint64_t)64 << 20))
        return false;
    void *blob = malloc(l ? l : 1);
    bool ok = blob && p_read(fd, blob, l) &&
              nixl_agent_load_remote_md(a, blob, l, NULL) == NIXL_SUCCESS;
    free(blob);
    return ok;
}

/* In the child: an agent `name` with a UCX engine over TCP only and `buf` (len bytes)
 * registered; its metadata, then the buffer's address, go to `out`. NULL (the reason on
 * stderr) on failure. */
static inline nixl_agent_t *p_child_agent(const char *name, void *buf, size_t len, int out)
{
    setenv("UCX_TLS", "tcp", 1);
    nixl_agent_t *a = NULL;
    nixl_backend_t *be = NULL;
    nixl_reg_desc_t d = {.addr = (uintptr_t)buf, .len = len};
    uint64_t addr = (uintptr_t)buf;
    if (nixl_agent_create(name, NULL, &a) != NIXL_SUCCESS ||
        nixl_agent_create_backend(a, "UCX", NULL, 0, &be) != NIXL_SUCCESS ||
        nixl_agent_register_mem(a, NIXL_DRAM_SEG, &d, 1, NULL) != NIXL_SUCCESS ||
        !p_send_md(out, a) || !p_write(out, &addr, sizeof(addr))) {
        fprintf(stderr, "child %s: %s\n", name, nixl_last_error());
        return NULL;
    }
    return a;
}

/* A child running `self role args...`; `in` reads from it, `out` writes to it. Its end of the
 * pipes are given as the two arguments after the role. */
typedef struct p_child {
    pid_t pid;
    int in, out;
} p_child_t;

static inline void p_spawn(p_child_t *c, const char *self, const char *role, const char *a1,
                           const char *a2, const char *a3, const char *a4)
{
    int p2c[2], c2p[2];
    assert_int_equal(pipe2(p2c, O_CLOEXEC), 0);
    assert_int_equal(pipe2(c2p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char in[16], out[16];
        int i = dup(p2c[0]), o = dup(c2p[1]); /* without O_CLOEXEC */
        snprintf(in, sizeof(in), "%d", i);
        snprintf(out, sizeof(out), "%d", o);
        execl(self, self, role, in, out, a1, a2, a3, a4, (char *)NULL);
        _exit(127);
    }
    close(p2c[0]);
    close(c2p[1]);
    c->pid = pid;
    c->in = c2p[0];
    c->out = p2c[1];
}

/* SIGKILL (also ends a stopped child) and reap; closes the pipes. */
static inline void p_reap(p_child_t *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGKILL);
        int status;
        while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    c->pid = -1;
    close(c->in);
    close(c->out);
}

#endif
