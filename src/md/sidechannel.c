/*
 * sidechannel.c - the side channel's API, listener and worker loop (sidechannel.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "array.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "sc_priv.h"

#define SC_DEFAULT_MAX_FRAME (1ull << 30) /* the reference's limit */
#define SC_DEFAULT_CONNECT_MS 1000u
#define SC_DEFAULT_STALL_MS 5000u
#define SC_DEFAULT_REPLY_MS 10000u
#define SC_DEFAULT_MAX_CONNS 1024u
#define SC_BACKLOG 128
/* After destroy is called, queued messages get this long beyond a connect timeout to leave. */
#define SC_DRAIN_EXTRA_MS 1000u
#define SC_ACCEPTS_PER_PASS 64

uint64_t sc_ms_to_ns(uint32_t ms)
{
    return (uint64_t)ms * 1000000ull;
}

static nixl_status_t option_u64(const char *name, uint64_t min, uint64_t max, uint64_t *v)
{
    uint64_t x = *v;
    nixl_status_t st = nixl_config_u64(name, &x);
    if (st != NIXL_SUCCESS)
        return st;
    if (x < min || x > max)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "%s=%llu is out of range [%llu, %llu]", name,
                        (unsigned long long)x, (unsigned long long)min,
                        (unsigned long long)max);
    *v = x;
    return NIXL_SUCCESS;
}

nixl_status_t nixl_sc_config_load(nixl_sc_config_t *cfg)
{
    uint64_t frame = SC_DEFAULT_MAX_FRAME, conn = SC_DEFAULT_CONNECT_MS,
             stall = SC_DEFAULT_STALL_MS, reply = SC_DEFAULT_REPLY_MS,
             conns = SC_DEFAULT_MAX_CONNS;
    nixl_status_t st;
    if ((st = option_u64("NIXL_SIDECHANNEL_MAX_FRAME", 64, UINT64_MAX / 2, &frame)) ||
        (st = option_u64("NIXL_SIDECHANNEL_CONNECT_TIMEOUT_MS", 1, 3600000, &conn)) ||
        (st = option_u64("NIXL_SIDECHANNEL_STALL_TIMEOUT_MS", 1, 3600000, &stall)) ||
        (st = option_u64("NIXL_SIDECHANNEL_REPLY_TIMEOUT_MS", 1, 3600000, &reply)) ||
        (st = option_u64("NIXL_SIDECHANNEL_MAX_CONNS", 1, 65536, &conns)))
        return st;
    cfg->max_frame = frame;
    cfg->connect_timeout_ms = (uint32_t)conn;
    cfg->stall_timeout_ms = (uint32_t)stall;
    cfg->reply_timeout_ms = (uint32_t)reply;
    cfg->max_conns = (uint32_t)conns;
    return NIXL_SUCCESS;
}

/* Bind the listener: IPv6 dual stack where the host has IPv6, else IPv4 only. */
static nixl_status_t listen_open(nixl_sc_t *sc, int port)
{
    int one = 1, zero = 0, fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                                  .sin6_addr = in6addr_any};
        if (bind(fd, (struct sockaddr *)&a6, sizeof(a6)) != 0) {
            int e = errno;
            close(fd);
            fd = -1;
            if (e != EADDRNOTAVAIL && e != EAFNOSUPPORT)
                return nixl_err(NIXL_ERR_BACKEND, "cannot listen on port %d: %s", port,
                                strerror(e));
        }
    }
    if (fd < 0) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return nixl_err(NIXL_ERR_BACKEND, "cannot create a socket: %s", strerror(errno));
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_ANY)};
        if (bind(fd, (struct sockaddr *)&a4, sizeof(a4)) != 0) {
            int e = errno;
            close(fd);
            return nixl_err(NIXL_ERR_BACKEND, "cannot listen on port %d: %s", port, strerror(e));
        }
    }
    if (listen(fd, SC_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        return nixl_err(NIXL_ERR_BACKEND, "cannot listen on port %d: %s", port, strerror(e));
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    sc->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    sc->listen_fd = fd;
    NIXL_INFO("agent '%s': side channel listening on port %d", sc->agent_name, sc->port);
    return NIXL_SUCCESS;
}

static void listen_accept(nixl_sc_t *sc)
{
    for (int i = 0; i < SC_ACCEPTS_PER_PASS; i++) {
        int fd = accept4(sc->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                NIXL_WARN("side channel: accept failed: %s", strerror(errno));
            return;
        }
        if (sc->num_inbound >= sc->cfg.max_conns) {
            NIXL_WARN("side channel (agent '%s'): %u connections already open "
                      "(NIXL_SIDECHANNEL_MAX_CONNS); refusing a new one",
                      sc->agent_name, sc->num_inbound);
            close(fd);
            continue;
        }
        if (!sc_conn_inbound(sc, fd)) {
            close(fd);
            continue;
        }
        sc->num_inbound++;
    }
}

static sc_conn_t *outbound_find(nixl_sc_t *sc, const char *host, int port)
{
    for (sc_conn_t *c = sc->conns; c; c = c->next)
        if (c->outbound && !c->dead && c->port == port && strcmp(c->host, host) == 0)
            return c;
    return NULL;
}

static void op_run(nixl_sc_t *sc, sc_op_t *op)
{
    sc_conn_t *c = outbound_find(sc, op->host, op->port);
    if (!c)
        c = sc_conn_outbound(sc, op->host, op->port);
    if (op->fetch_name) {
        size_t n = strlen(op->fetch_name);
        sc_fetch_t *f = malloc(sizeof(*f) + n + 1);
        if (!c || c->dead || !f) {
            free(f);
            if (c && c->dead)
                NIXL_WARN("side channel: fetch of '%s' failed: %s", op->fetch_name,
                          c->fail_reason);
            sc->hooks.fetch_done(sc->hooks.ctx, op->fetch_name,
                                 c && c->dead ? c->fail_status : NIXL_ERR_OOM,
                                 c && c->dead ? c->fail_reason : NIXL_OOM_REASON);
            free(op->frame);
            return;
        }
        memcpy(f->name, op->fetch_name, n + 1);
        f->next = NULL;
        if (!c->fetch_head)
            c->fetch_since_ns = nixl_now_ns();
        *c->fetch_tail = f;
        c->fetch_tail = &f->next;
    }
    if (c && !c->dead)
        sc_conn_queue(c, op->frame, op->len);
    else
        free(op->frame);
}

static void op_free(sc_op_t *op)
{
    free(op->host);
    free(op->fetch_name);
    free(op);
}

/* Take the queued ops; returns whether stopping was requested. */
static bool ops_drain(nixl_sc_t *sc)
{
    pthread_mutex_lock(&sc->lock);
    sc_op_t *ops = sc->ops_head;
    sc->ops_head = NULL;
    sc->ops_tail = &sc->ops_head;
    bool stopping = sc->stopping;
    pthread_mutex_unlock(&sc->lock);
    while (ops) {
        sc_op_t *next = ops->next;
        op_run(sc, ops);
        op_free(ops);
        ops = next;
    }
    return stopping;
}

static bool outbound_pending(const nixl_sc_t *sc)
{
    for (const sc_conn_t *c = sc->conns; c; c = c->next)
        if (!c->dead && c->outbound && c->out_head)
            return true;
    return false;
}

static void conns_reap(nixl_sc_t *sc)
{
    for (sc_conn_t **pp = &sc->conns; *pp;) {
        sc_conn_t *c = *pp;
        if (c->dead) {
            *pp = c->next;
            sc_conn_free(c);
        } else {
            pp = &c->next;
        }
    }
}

static void *sc_worker(void *arg)
{
    nixl_sc_t *sc = arg;
    struct pollfd *pfds = NULL;
    sc_conn_t **pconn = NULL;
    size_t cap = 0;
    uint64_t drain_deadline = 0;
    for (;;) {
        bool stopping = ops_drain(sc);
        uint64_t now = nixl_now_ns();
        if (stopping && !drain_deadline) {
            drain_deadline = now + sc_ms_to_ns(sc->cfg.connect_timeout_ms + SC_DRAIN_EXTRA_MS);
            if (sc->listen_fd >= 0) {
                close(sc->listen_fd);
                sc->listen_fd = -1;
            }
            for (sc_conn_t *c = sc->conns; c; c = c->next)
                sc_conn_fail_fetches(sc, c, NIXL_ERR_BACKEND, "the agent is shutting down");
        }
        uint64_t next = UINT64_MAX;
        for (sc_conn_t *c = sc->conns; c; c = c->next) {
            uint64_t d = sc_conn_timeouts(sc, c, now);
            if (d < next)
                next = d;
        }
        conns_reap(sc);
        if (stopping && (!outbound_pending(sc) || now >= drain_deadline))
            break;
        if (stopping && drain_deadline < next)
            next = drain_deadline;

        size_t n = 0;
        for (sc_conn_t *c = sc->conns; c; c = c->next)
            n++;
        if (n + 2 > cap) {
            size_t ncap = nixl_array_grow_cap(cap, n + 2, sizeof(*pfds));
            struct pollfd *np = nixl_array_realloc(pfds, ncap, sizeof(*np));
            if (np)
                pfds = np;
            sc_conn_t **nc = np ? nixl_array_realloc(pconn, ncap, sizeof(*nc)) : NULL;
            if (!np || !nc) {
                NIXL_ERROR("side channel: out of memory; retrying");
                struct timespec ts = {0, 10000000};
                nanosleep(&ts, NULL);
                continue;
            }
            pconn = nc;
            cap = ncap;
        }
        size_t k = 0;
        pfds[k++] = (struct pollfd){.fd = sc->wake_fd, .events = POLLIN};
        if (sc->listen_fd >= 0)
            pfds[k++] = (struct pollfd){.fd = sc->listen_fd, .events = POLLIN};
        size_t first_conn = k;
        for (sc_conn_t *c = sc->conns; c; c = c->next) {
            short ev = c->connecting ? POLLOUT : (short)(POLLIN | (c->out_head ? POLLOUT : 0));
            pconn[k] = c;
            pfds[k++] = (struct pollfd){.fd = c->fd, .events = ev};
        }
        int timeout = -1;
        if (next != UINT64_MAX)
            timeout = next <= now ? 0 : (int)((next - now) / 1000000ull + 1);
        int r = poll(pfds, k, timeout);
        if (r < 0 && errno != EINTR) {
            NIXL_ERROR("side channel: poll failed: %s", strerror(errno));
            break;
        }
        if (r <= 0)
            continue;
        if (pfds[0].revents & POLLIN) {
            uint64_t v;
            if (read(sc->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                NIXL_DEBUG("side channel: wake-up read failed: %s", strerror(errno));
        }
        if (first_conn == 2 && (pfds[1].revents & POLLIN))
            listen_accept(sc);
        for (size_t i = first_conn; i < k; i++)
            sc_conn_events(sc, pconn[i], pfds[i].revents);
    }
    for (sc_conn_t *c = sc->conns; c; c = c->next)
        sc_conn_fail(sc, c, NIXL_ERR_BACKEND, "the agent is shutting down");
    conns_reap(sc);
    free(pfds);
    free(pconn);
    return NULL;
}

nixl_status_t nixl_sc_create(const nixl_sc_config_t *cfg, const nixl_sc_hooks_t *hooks,
                             nixl_sc_t **out)
{
    nixl_sc_t *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return nixl_err_oom("side channel");
    sc->cfg = *cfg;
    sc->hooks = *hooks;
    sc->listen_fd = -1;
    sc->port = -1;
    sc->ops_tail = &sc->ops_head;
    sc->agent_name = strdup(cfg->agent_name ? cfg->agent_name : "");
    sc->cfg.agent_name = sc->agent_name;
    nixl_status_t st;
    if (!sc->agent_name) {
        st = nixl_err_oom("side channel");
        goto free_sc;
    }
    sc->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sc->wake_fd < 0) {
        st = nixl_err(NIXL_ERR_BACKEND, "eventfd failed: %s", strerror(errno));
        goto free_sc;
    }
    if (cfg->listen && (st = listen_open(sc, cfg->port)) != NIXL_SUCCESS)
        goto close_wake;
    pthread_mutex_init(&sc->lock, NULL);
    int e = pthread_create(&sc->thread, NULL, sc_worker, sc);
    if (e != 0) {
        st = nixl_err(NIXL_ERR_BACKEND, "cannot start the side-channel thread: %s", strerror(e));
        goto close_listen;
    }
    *out = sc;
    return NIXL_SUCCESS;
close_listen:
    pthread_mutex_destroy(&sc->lock);
    if (sc->listen_fd >= 0)
        close(sc->listen_fd);
close_wake:
    close(sc->wake_fd);
free_sc:
    free(sc->agent_name);
    free(sc);
    return st;
}

int nixl_sc_port(const nixl_sc_t *sc)
{
    return sc->port;
}

static void sc_wake(nixl_sc_t *sc)
{
    uint64_t one = 1;
    if (write(sc->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        NIXL_DEBUG("side channel: wake-up write failed: %s", strerror(errno));
}

/* Validate and normalise a peer address: brackets around an IPv6 literal are dropped. */
static nixl_status_t host_check(const char *host, int port, char *out, size_t cap)
{
    if (!host || !*host)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "no peer address (ip_addr) given");
    if (port <= 0 || port > 65535)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "port %d is not a TCP port", port);
    size_t n = strlen(host);
    if (host[0] == '[') {
        if (n < 3 || host[n - 1] != ']')
            return nixl_err(NIXL_ERR_INVALID_PARAM, "peer address '%s' has unbalanced brackets",
                            host);
        host++;
        n -= 2;
    }
    if (n >= cap)
        return nixl_err(NIXL_ERR_INVALID_PARAM, "peer address is longer than %zu bytes",
                        cap - 1);
    for (size_t i = 0; i < n; i++)
        if (host[i] <= ' ' || host[i] == '/' || (unsigned char)host[i] >= 0x7f)
            return nixl_err(NIXL_ERR_INVALID_PARAM,
                            "peer address '%s' contains a character not allowed in a host name "
                            "or IP address", host);
    memcpy(out, host, n);
    out[n] = '\0';
    return NIXL_SUCCESS;
}

static nixl_status_t sc_enqueue(nixl_sc_t *sc, const char *host, int port, uint8_t *frame,
                                size_t len, const char *fetch_name)
{
    char h[256];
    nixl_status_t st = host_check(host, port, h, sizeof(h));
    if (st != NIXL_SUCCESS) {
        free(frame);
        return st;
    }
    sc_op_t *op = calloc(1, sizeof(*op));
    if (op) {
        op->host = strdup(h);
        op->fetch_name = fetch_name ? strdup(fetch_name) : NULL;
    }
    if (!op || !op->host || (fetch_name && !op->fetch_name)) {
        if (op)
            op_free(op);
        free(frame);
        return nixl_err_oom("side-channel message to %s", host);
    }
    op->port = port;
    op->frame = frame;
    op->len = len;
    pthread_mutex_lock(&sc->lock);
    *sc->ops_tail = op;
    sc->ops_tail = &op->next;
    pthread_mutex_unlock(&sc->lock);
    sc_wake(sc);
    return NIXL_SUCCESS;
}

nixl_status_t nixl_sc_send(nixl_sc_t *sc, const char *host, int port, const char *verb,
                           const void *payload, size_t len)
{
    size_t flen;
    uint8_t *frame = sc_frame_build(verb, payload, len, &flen);
    if (!frame)
        return nixl_err_oom("building a %zu-byte side-channel message", len);
    if (flen - SC_HDR_LEN > sc->cfg.max_frame) {
        free(frame);
        return nixl_err(NIXL_ERR_INVALID_PARAM,
                        "a %zu-byte message exceeds the side channel's limit of %llu bytes "
                        "(NIXL_SIDECHANNEL_MAX_FRAME)", flen - SC_HDR_LEN,
                        (unsigned long long)sc->cfg.max_frame);
    }
    return sc_enqueue(sc, host, port, frame, flen, NULL);
}

nixl_status_t nixl_sc_fetch(nixl_sc_t *sc, const char *host, int port, const char *name)
{
    size_t flen;
    uint8_t *frame = sc_frame_build("SEND", NULL, 0, &flen);
    if (!frame)
        return nixl_err_oom("side-channel fetch of '%s'", name);
    return sc_enqueue(sc, host, port, frame, flen, name);
}

void nixl_sc_destroy(nixl_sc_t *sc)
{
    if (!sc)
        return;
    pthread_mutex_lock(&sc->lock);
    sc->stopping = true;
    pthread_mutex_unlock(&sc->lock);
    sc_wake(sc);
    pthread_join(sc->thread, NULL);
    while (sc->ops_head) {
        sc_op_t *op = sc->ops_head;
        sc->ops_head = op->next;
        free(op->frame);
        op_free(op);
    }
    if (sc->listen_fd >= 0)
        close(sc->listen_fd);
    close(sc->wake_fd);
    pthread_mutex_destroy(&sc->lock);
    free(sc->agent_name);
    free(sc);
}
