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
/* An honest peer sends a message in one go and keeps its connection for the next one; a
 * minute of nothing frees the slot (the peer reconnects when it has something to say). */
#define SC_DEFAULT_IDLE_MS 60000u
/* A message still arriving after the stall timeout must have averaged this much: far below
 * any network an agent runs on, far above a slowloris trickle. */
#define SC_DEFAULT_MIN_RATE 4096u
/* Replies (our metadata) queued for one peer that does not read them; a few full metadata
 * blobs of a large agent. */
#define SC_DEFAULT_MAX_QUEUED (64ull << 20)
#define SC_DEFAULT_MAX_PEERS 4096u
#define SC_BACKLOG 128
/* After destroy is called, queued messages get this long beyond a connect timeout to leave. */
#define SC_DRAIN_EXTRA_MS 1000u
#define SC_ACCEPTS_PER_PASS 64
/* accept() out of descriptors or memory: stop accepting for this long, doubling to the max
 * while it lasts, so that the thread sleeps instead of spinning on a listener that stays
 * readable. */
#define SC_ACCEPT_BACKOFF_MIN_MS 50u
#define SC_ACCEPT_BACKOFF_MAX_MS 1000u

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

nixl_status_t nixl_sc_config_load(nixl_sc_config_t *cfg, char **bind_owned)
{
    uint64_t frame = SC_DEFAULT_MAX_FRAME, conn = SC_DEFAULT_CONNECT_MS,
             stall = SC_DEFAULT_STALL_MS, reply = SC_DEFAULT_REPLY_MS,
             conns = SC_DEFAULT_MAX_CONNS, idle = SC_DEFAULT_IDLE_MS,
             rate = SC_DEFAULT_MIN_RATE, queued = SC_DEFAULT_MAX_QUEUED,
             peers = SC_DEFAULT_MAX_PEERS;
    nixl_status_t st;
    *bind_owned = NULL;
    if ((st = option_u64("NIXL_SIDECHANNEL_MAX_FRAME", 64, UINT64_MAX / 2, &frame)) ||
        (st = option_u64("NIXL_SIDECHANNEL_CONNECT_TIMEOUT_MS", 1, 3600000, &conn)) ||
        (st = option_u64("NIXL_SIDECHANNEL_STALL_TIMEOUT_MS", 1, 3600000, &stall)) ||
        (st = option_u64("NIXL_SIDECHANNEL_REPLY_TIMEOUT_MS", 1, 3600000, &reply)) ||
        (st = option_u64("NIXL_SIDECHANNEL_MAX_CONNS", 1, 65536, &conns)) ||
        (st = option_u64("NIXL_SIDECHANNEL_IDLE_TIMEOUT_MS", 1, 86400000, &idle)) ||
        (st = option_u64("NIXL_SIDECHANNEL_MIN_RATE", 0, UINT64_MAX / 2, &rate)) ||
        (st = option_u64("NIXL_SIDECHANNEL_MAX_QUEUED", 4096, UINT64_MAX / 2, &queued)) ||
        (st = option_u64("NIXL_SIDECHANNEL_MAX_PEERS", 1, UINT32_MAX, &peers)))
        return st;
    if (!cfg->bind_addr || !*cfg->bind_addr) {
        if ((st = nixl_config_string("NIXL_SIDECHANNEL_BIND", bind_owned)) != NIXL_SUCCESS)
            return st;
        cfg->bind_addr = *bind_owned;
    }
    cfg->max_frame = frame;
    cfg->connect_timeout_ms = (uint32_t)conn;
    cfg->stall_timeout_ms = (uint32_t)stall;
    cfg->reply_timeout_ms = (uint32_t)reply;
    cfg->max_conns = (uint32_t)conns;
    cfg->idle_timeout_ms = (uint32_t)idle;
    cfg->min_rate = rate;
    cfg->max_queued = queued;
    cfg->max_peers = (uint32_t)peers;
    return NIXL_SUCCESS;
}

/* A bound, listening, non-blocking socket for one address; -1 with errno. */
static int listen_socket(int family, const struct sockaddr *addr, socklen_t len)
{
    int one = 1, zero = 0, fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (family == AF_INET6) /* "::" (or all addresses) serves IPv4 too */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, addr, len) != 0 || listen(fd, SC_BACKLOG) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* All addresses: IPv6 dual stack where the host has IPv6, else IPv4 only (the reference). */
static int listen_any(int port, int *err)
{
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                              .sin6_addr = in6addr_any};
    int fd = listen_socket(AF_INET6, (struct sockaddr *)&a6, sizeof(a6));
    if (fd >= 0 || (errno != EADDRNOTAVAIL && errno != EAFNOSUPPORT)) {
        *err = errno;
        return fd;
    }
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_ANY)};
    fd = listen_socket(AF_INET, (struct sockaddr *)&a4, sizeof(a4));
    *err = errno;
    return fd;
}

/* One given address (NIXL_SIDECHANNEL_BIND): an IP literal, bracketed or not, or a host name
 * whose first address that binds is used. */
static int listen_addr(const char *bind_addr, int port, int *err, const char **why)
{
    char host[256];
    size_t n = strlen(bind_addr);
    if (bind_addr[0] == '[' && n > 2 && bind_addr[n - 1] == ']') {
        bind_addr++;
        n -= 2;
    }
    if (n >= sizeof(host)) {
        *why = "the address is too long";
        return -1;
    }
    memcpy(host, bind_addr, n);
    host[n] = '\0';
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res = NULL;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        *why = gai_strerror(rc);
        return -1;
    }
    int fd = -1;
    *err = EADDRNOTAVAIL;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = listen_socket(ai->ai_family, ai->ai_addr, ai->ai_addrlen);
        if (fd < 0)
            *err = errno;
    }
    freeaddrinfo(res);
    if (fd < 0)
        *why = strerror(*err);
    return fd;
}

static nixl_status_t listen_open(nixl_sc_t *sc, int port)
{
    const char *bind_addr = sc->cfg.bind_addr;
    int err = 0, fd;
    const char *why = NULL;
    if (bind_addr && *bind_addr) {
        fd = listen_addr(bind_addr, port, &err, &why);
    } else {
        fd = listen_any(port, &err);
        why = strerror(err);
    }
    if (fd < 0)
        return nixl_err(NIXL_ERR_BACKEND, "cannot listen on %s port %d: %s",
                        bind_addr && *bind_addr ? bind_addr : "all addresses,", port, why);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    sc->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                              : ((struct sockaddr_in *)&ss)->sin_port);
    sc->listen_fd = fd;
    NIXL_INFO("agent '%s': side channel listening on %s port %d", sc->agent_name,
              bind_addr && *bind_addr ? bind_addr : "all addresses,", sc->port);
    return NIXL_SUCCESS;
}

/* Out of descriptors or memory: the listener stays readable, so stop watching it for a while
 * (it is retried after the backoff; connections wait in the backlog meanwhile). */
static bool accept_exhausted(int e)
{
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

static void accept_back_off(nixl_sc_t *sc, int e)
{
    sc->accept_backoff_ms = sc->accept_backoff_ms
                                ? (sc->accept_backoff_ms * 2 > SC_ACCEPT_BACKOFF_MAX_MS
                                       ? SC_ACCEPT_BACKOFF_MAX_MS
                                       : sc->accept_backoff_ms * 2)
                                : SC_ACCEPT_BACKOFF_MIN_MS;
    sc->accept_resume_ns = nixl_now_ns() + sc_ms_to_ns(sc->accept_backoff_ms);
    NIXL_LOG_LIMITED(NIXL_LOG_WARN,
                     "side channel (agent '%s'): cannot accept connections: %s; retrying in "
                     "up to %u ms", sc->agent_name, strerror(e), SC_ACCEPT_BACKOFF_MAX_MS);
}

/*
 * At the connection cap, the least recently active inbound connection makes room, preferring
 * one with nothing in progress: a newcomer is never locked out by connections that merely
 * stay open. Returns whether a slot was freed.
 */
static bool evict_one(nixl_sc_t *sc)
{
    sc_conn_t *victim = NULL;
    bool victim_idle = false;
    for (sc_conn_t *c = sc->conns; c; c = c->next) {
        if (c->dead || c->outbound)
            continue;
        bool idle = !sc_reader_partial(&c->rd) && !c->out_head;
        uint64_t act = sc_conn_last_active(c);
        if (!victim || (idle && !victim_idle) ||
            (idle == victim_idle && act < sc_conn_last_active(victim))) {
            victim = c;
            victim_idle = idle;
        }
    }
    if (!victim)
        return false;
    NIXL_LOG_LIMITED(NIXL_LOG_INFO, "side channel (agent '%s'): %u connections open "
                     "(NIXL_SIDECHANNEL_MAX_CONNS); closing the least active one to serve a "
                     "new peer", sc->agent_name, sc->num_inbound);
    sc_conn_fail(sc, victim, NIXL_ERR_REMOTE_DISCONNECT,
                 "%s was closed to make room for a new connection", victim->peer);
    return true;
}

static void listen_accept(nixl_sc_t *sc)
{
    for (int i = 0; i < SC_ACCEPTS_PER_PASS; i++) {
        int fd = accept4(sc->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int e = errno;
            if (e == EINTR || e == ECONNABORTED)
                continue;
            if (accept_exhausted(e))
                accept_back_off(sc, e);
            else if (e != EAGAIN && e != EWOULDBLOCK)
                NIXL_LOG_LIMITED(NIXL_LOG_WARN, "side channel: accept failed: %s", strerror(e));
            return;
        }
        sc->accept_backoff_ms = 0;
        if (sc->num_inbound >= sc->cfg.max_conns && !evict_one(sc)) {
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
        bool accepting = sc->listen_fd >= 0 && now >= sc->accept_resume_ns;
        if (accepting)
            pfds[k++] = (struct pollfd){.fd = sc->listen_fd, .events = POLLIN};
        else if (sc->listen_fd >= 0 && sc->accept_resume_ns < next)
            next = sc->accept_resume_ns;
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
        if (accepting && (pfds[1].revents & POLLIN))
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
    sc->bind_addr = cfg->bind_addr && *cfg->bind_addr ? strdup(cfg->bind_addr) : NULL;
    sc->cfg.bind_addr = sc->bind_addr;
    nixl_status_t st;
    if (!sc->agent_name || (cfg->bind_addr && *cfg->bind_addr && !sc->bind_addr)) {
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
    free(sc->bind_addr);
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
    uint8_t *frame = sc_frame_make(sc, verb, payload, len, &flen);
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
    uint8_t *frame = sc_frame_make(sc, "SEND", NULL, 0, &flen);
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
    free(sc->bind_addr);
    free(sc->agent_name);
    free(sc);
}
