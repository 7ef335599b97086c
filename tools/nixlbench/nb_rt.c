/*
 * nb_rt.c - the two-process runtime: one TCP connection between the initiator (rank 0) and the
 * target (rank 1), carrying framed messages (magic, type, length, payload; host byte order,
 * since both ends are this program). The reference's ASIO runtime has its own protocol; only
 * its rule is kept: whoever binds the port first is the initiator. Every wait has a deadline,
 * and a peer that dies is noticed through its end of the socket closing.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nb.h"

#define NB_MAGIC 0x424c584eu /* "NXLB" */
#define NB_MAX_MSG (1ull << 30)

typedef struct frame {
    uint32_t magic, type;
    uint64_t len;
} frame_t;

static const char *peer_role(const nb_rt_t *rt)
{
    return rt->rank == 0 ? "target" : "initiator";
}

/* Why the peer's end closed: for a child we spawned, how it ended. */
static void tell_gone(nb_rt_t *rt)
{
    if (__atomic_exchange_n(&rt->gone_told, 1, __ATOMIC_ACQ_REL))
        return;
    int status;
    pid_t r = 0;
    for (int i = 0; rt->child > 0 && i < 100 && (r = waitpid(rt->child, &status, WNOHANG)) == 0;
         i++)
        usleep(10000);
    if (rt->child > 0 && r == rt->child) {
        rt->child = 0;
        if (WIFSIGNALED(status)) {
            nb_fail("the target process was killed by signal %d (%s)", WTERMSIG(status),
                    strsignal(WTERMSIG(status)));
            return;
        }
        nb_fail("the target process exited with status %d", WEXITSTATUS(status));
        return;
    }
    nb_fail("the %s closed the connection (it exited or died)", peer_role(rt));
}

static int wait_fd(int fd, short events, long long deadline)
{
    for (;;) {
        long long left = deadline - nb_now_ms();
        if (left < 0)
            return 0;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* 1: read; 0: end of stream; -1: error or timeout (errno ETIMEDOUT). */
static int read_exact(int fd, void *buf, size_t len, long long deadline)
{
    for (size_t got = 0; got < len;) {
        int w = wait_fd(fd, POLLIN, deadline);
        if (w <= 0) {
            errno = w == 0 ? ETIMEDOUT : errno;
            return -1;
        }
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
        if (n == 0)
            return 0;
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return errno == ECONNRESET ? 0 : -1;
        got += n > 0 ? (size_t)n : 0;
    }
    return 1;
}

int nb_rt_send(nb_rt_t *rt, uint32_t type, const void *data, size_t len)
{
    frame_t f = {NB_MAGIC, type, len};
    struct iovec iov[2] = {{&f, sizeof(f)}, {(void *)data, len}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
    size_t left = sizeof(f) + len;
    long long deadline = nb_now_ms() + NB_REPLY_TIMEOUT_MS;
    while (left) {
        if (wait_fd(rt->fd, POLLOUT, deadline) <= 0)
            return nb_fail("cannot send to the %s: it does not read", peer_role(rt));
        ssize_t n = sendmsg(rt->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0) {
            tell_gone(rt);
            return -1;
        }
        left -= (size_t)n;
        while (m.msg_iovlen && (size_t)n >= m.msg_iov->iov_len) {
            n -= (ssize_t)m.msg_iov->iov_len;
            m.msg_iov++;
            m.msg_iovlen--;
        }
        if (m.msg_iovlen) {
            m.msg_iov->iov_base = (char *)m.msg_iov->iov_base + n;
            m.msg_iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

int nb_rt_next(nb_rt_t *rt, uint32_t *type, void **data, size_t *len, int timeout_ms)
{
    long long deadline = nb_now_ms() + timeout_ms;
    frame_t f;
    int r = read_exact(rt->fd, &f, sizeof(f), deadline);
    if (r == 0) {
        tell_gone(rt);
        return -1;
    }
    if (r < 0 && errno == ETIMEDOUT)
        return nb_fail("no answer from the %s within %d s", peer_role(rt), timeout_ms / 1000);
    if (r < 0)
        return nb_fail("reading from the %s: %s", peer_role(rt), strerror(errno));
    if (f.magic != NB_MAGIC || f.len > NB_MAX_MSG)
        return nb_fail("the %s speaks another protocol (is it nixlbench?)", peer_role(rt));
    char *buf = malloc(f.len + 1);
    if (!buf)
        return nb_fail("out of memory");
    r = read_exact(rt->fd, buf, f.len, deadline);
    if (r <= 0) {
        free(buf);
        if (r == 0)
            tell_gone(rt);
        else
            nb_fail("the %s stopped in the middle of a message", peer_role(rt));
        return -1;
    }
    buf[f.len] = '\0';
    if (f.type == NB_MSG_ERROR) {
        __atomic_store_n(&rt->gone_told, 1, __ATOMIC_RELEASE);
        nb_fail("the %s failed: %s", peer_role(rt), buf);
        free(buf);
        return -1;
    }
    *type = f.type;
    *data = buf;
    *len = f.len;
    return 0;
}

int nb_rt_recv(nb_rt_t *rt, uint32_t want, void **data, size_t *len, int timeout_ms)
{
    uint32_t type = 0;
    if (nb_rt_next(rt, &type, data, len, timeout_ms))
        return NB_EXIT_FAIL;
    if (type == want)
        return 0;
    free(*data);
    return nb_fail("protocol error: message %u from the %s, expected %u", type, peer_role(rt),
                   want);
}

int nb_rt_recv_into(nb_rt_t *rt, uint32_t want, void *out, size_t len, int timeout_ms)
{
    void *data;
    size_t n;
    if (nb_rt_recv(rt, want, &data, &n, timeout_ms))
        return -1;
    int rc = 0;
    if (n != len)
        rc = nb_fail("protocol error: message %u of %zu bytes, expected %zu", want, n, len);
    else
        memcpy(out, data, len);
    free(data);
    return rc ? -1 : 0;
}

bool nb_rt_peer_gone(nb_rt_t *rt)
{
    struct pollfd p = {.fd = rt->fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0)
        return false;
    /* Nothing is expected while transfers run: readable means an ERROR message or the end. */
    if (!__atomic_load_n(&rt->gone_told, __ATOMIC_ACQUIRE)) {
        void *data;
        size_t n;
        if (nb_rt_recv(rt, NB_MSG_ERROR, &data, &n, 1000) == 0)
            free(data);
    }
    return true;
}

static int tcp_socket(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

static int accept_one(nb_rt_t *rt, int lfd, long long deadline)
{
    while (nb_now_ms() < deadline) {
        if (rt->child > 0 && waitpid(rt->child, NULL, WNOHANG) == rt->child) {
            rt->child = 0;
            return nb_fail("the target process exited before connecting");
        }
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            rt->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
            if (rt->fd >= 0) {
                int one = 1;
                setsockopt(rt->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                return 0;
            }
        }
    }
    return nb_fail("no peer connected within %d s", NB_CONNECT_TIMEOUT_MS / 1000);
}

static int connect_to(nb_rt_t *rt, const struct addrinfo *ai, long long deadline)
{
    do {
        rt->fd = tcp_socket(ai->ai_family);
        if (rt->fd >= 0 && connect(rt->fd, ai->ai_addr, ai->ai_addrlen) == 0)
            return 0;
        int e = errno;
        if (rt->fd >= 0)
            close(rt->fd);
        rt->fd = -1;
        if (e != ECONNREFUSED && e != ETIMEDOUT && e != EINTR)
            return nb_fail("connect: %s", strerror(e));
        usleep(100000);
    } while (nb_now_ms() < deadline);
    return nb_fail("could not connect within %d s", NB_CONNECT_TIMEOUT_MS / 1000);
}

static int resolve(const char *host, int port, struct addrinfo **ai)
{
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    int e = getaddrinfo(host, ps, &hints, ai);
    return e ? nb_fail("cannot resolve '%s': %s", host, gai_strerror(e)) : 0;
}

int nb_rt_asio(nb_rt_t *rt, const char *addr, int port)
{
    *rt = (nb_rt_t){.fd = -1};
    struct addrinfo *ai;
    if (resolve(addr, port, &ai))
        return -1;
    long long deadline = nb_now_ms() + NB_CONNECT_TIMEOUT_MS;
    int rc, lfd = tcp_socket(ai->ai_family);
    if (lfd >= 0 && bind(lfd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(lfd, 1) == 0) {
        printf("Waiting for all processes to start...\n");
        fflush(stdout);
        rt->rank = 0;
        rc = accept_one(rt, lfd, deadline);
    } else if (errno == EADDRINUSE || errno == EADDRNOTAVAIL) {
        rt->rank = 1; /* the port is taken (or the address is another host's): we connect */
        rc = connect_to(rt, ai, deadline);
    } else {
        rc = nb_fail("cannot bind %s:%d: %s", addr, port, strerror(errno));
    }
    if (lfd >= 0)
        close(lfd);
    freeaddrinfo(ai);
    return rc ? -1 : 0;
}

/* Pieces for runtimes that meet elsewhere (nb_etcd.c, and the spawn below): a listener on a
 * free port, the accept of its one peer, and a connect that retries until the listener is up. */
int nb_rt_listener(bool loopback, int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(loopback ? INADDR_LOOPBACK : INADDR_ANY)};
    socklen_t sl = sizeof(sa);
    int lfd = tcp_socket(AF_INET);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sl) || listen(lfd, 1) ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
        if (lfd >= 0)
            close(lfd);
        return nb_fail("cannot listen%s: %s", loopback ? " on the loopback" : "",
                       strerror(errno));
    }
    *port = ntohs(sa.sin_port);
    return lfd;
}

int nb_rt_accept(nb_rt_t *rt, int lfd)
{
    *rt = (nb_rt_t){.fd = -1, .rank = 0};
    int rc = accept_one(rt, lfd, nb_now_ms() + NB_CONNECT_TIMEOUT_MS);
    close(lfd);
    return rc ? -1 : 0;
}

int nb_rt_connect(nb_rt_t *rt, const char *host, int port)
{
    *rt = (nb_rt_t){.fd = -1, .rank = 1};
    struct addrinfo *ai;
    if (resolve(host, port, &ai))
        return -1;
    int rc = connect_to(rt, ai, nb_now_ms() + NB_CONNECT_TIMEOUT_MS);
    freeaddrinfo(ai);
    return rc ? -1 : 0;
}

int nb_rt_spawn(nb_rt_t *rt, int argc, char **argv)
{
    *rt = (nb_rt_t){.fd = -1};
    int port, lfd = nb_rt_listener(true, &port);
    if (lfd < 0)
        return -1;
    char peer[64];
    snprintf(peer, sizeof(peer), "--nb_peer=127.0.0.1:%d", port);
    char **args = calloc((size_t)argc + 2, sizeof(char *));
    if (!args) {
        close(lfd);
        return nb_fail("out of memory");
    }
    args[0] = argv[0];
    args[1] = peer;
    memcpy(args + 2, argv + 1, (size_t)(argc - 1) * sizeof(char *));
    fflush(NULL);
    rt->child = fork();
    if (rt->child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the initiator */
        execv("/proc/self/exe", args);
        fprintf(stderr, "nixlbench: cannot start the target: %s\n", strerror(errno));
        _exit(127);
    }
    free(args);
    int rc = rt->child < 0 ? nb_fail("fork: %s", strerror(errno))
                           : accept_one(rt, lfd, nb_now_ms() + NB_CONNECT_TIMEOUT_MS);
    close(lfd);
    rt->rank = 0;
    return rc ? -1 : 0;
}

int nb_rt_join(nb_rt_t *rt, const char *peer)
{
    *rt = (nb_rt_t){.fd = -1, .rank = 1};
    char host[64];
    const char *colon = strrchr(peer, ':');
    if (!colon || (size_t)(colon - peer) >= sizeof(host))
        return nb_fail("bad --nb_peer '%s'", peer);
    memcpy(host, peer, (size_t)(colon - peer));
    host[colon - peer] = '\0';
    struct addrinfo *ai;
    if (resolve(host, atoi(colon + 1), &ai))
        return -1;
    int rc = connect_to(rt, ai, nb_now_ms() + NB_CONNECT_TIMEOUT_MS);
    freeaddrinfo(ai);
    return rc ? -1 : 0;
}

void nb_rt_close(nb_rt_t *rt)
{
    if (rt->fd >= 0)
        close(rt->fd);
    rt->fd = -1;
    if (rt->child <= 0)
        return;
    /* The target exits once it sees FIN or our end close; give it a moment, then insist. */
    for (int i = 0; i < 500; i++) {
        if (waitpid(rt->child, NULL, WNOHANG) == rt->child) {
            rt->child = 0;
            return;
        }
        usleep(10000);
    }
    kill(rt->child, SIGKILL);
    waitpid(rt->child, NULL, 0);
    rt->child = 0;
}
