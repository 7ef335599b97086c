/*
 * sc_conn.c - one side-channel connection: non-blocking connect over the resolved addresses,
 * frame reassembly, command dispatch, queued writes, timeouts and failure reporting.
 * Worker thread only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "codec.h"
#include "error.h"
#include "log.h"
#include "sc_priv.h"

#define SC_READ_CHUNK (64u * 1024u)
/* Reads per wake-up per connection, so that one fast sender cannot starve the others. */
#define SC_READS_PER_PASS 16
/* How often the average rate of a message in progress is checked once it may be judged. */
#define SC_RATE_CHECK_MS 250u

static sc_conn_t *conn_alloc(nixl_sc_t *sc)
{
    sc_conn_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->fd = -1;
    c->out_tail = &c->out_head;
    c->fetch_tail = &c->fetch_head;
    c->last_rx_ns = c->last_tx_ns = nixl_now_ns();
    sc_reader_init(&c->rd, sc->cfg.max_frame);
    c->next = sc->conns;
    sc->conns = c;
    return c;
}

sc_conn_t *sc_conn_inbound(nixl_sc_t *sc, int fd)
{
    sc_conn_t *c = conn_alloc(sc);
    if (!c)
        return NULL;
    c->fd = fd;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
                inet_ntop(AF_INET, &a->sin6_addr.s6_addr[12], ip, sizeof(ip));
            else
                inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(c->peer, sizeof(c->peer), strchr(ip, ':') ? "[%s]:%d" : "%s:%d", ip, port);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return c;
}

sc_conn_t *sc_conn_outbound(nixl_sc_t *sc, const char *host, int port)
{
    sc_conn_t *c = conn_alloc(sc);
    if (!c)
        return NULL;
    c->outbound = true;
    c->host = strdup(host);
    c->port = port;
    snprintf(c->peer, sizeof(c->peer), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    if (!c->host) {
        sc_conn_fail(sc, c, NIXL_ERR_OOM, NIXL_OOM_REASON);
        return c;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    int rc = getaddrinfo(host, service, &hints, &c->addrs);
    if (rc != 0) {
        c->addrs = NULL;
        sc_conn_fail(sc, c, NIXL_ERR_REMOTE_DISCONNECT, "cannot resolve %s: %s", host,
                     gai_strerror(rc));
        return c;
    }
    c->next_addr = c->addrs;
    c->connecting = true;
    sc_conn_connect(sc, c);
    return c;
}

static void conn_established(sc_conn_t *c)
{
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->connecting = false;
    c->last_rx_ns = c->last_tx_ns = nixl_now_ns();
}

void sc_conn_connect(nixl_sc_t *sc, sc_conn_t *c)
{
    while (c->next_addr) {
        struct addrinfo *ai = c->next_addr;
        c->next_addr = ai->ai_next;
        if (c->fd >= 0)
            close(c->fd);
        c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                       ai->ai_protocol);
        if (c->fd < 0) {
            c->last_errno = errno;
            continue;
        }
        if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            conn_established(c);
            return;
        }
        if (errno == EINPROGRESS) {
            c->connect_deadline_ns = nixl_now_ns() + sc_ms_to_ns(sc->cfg.connect_timeout_ms);
            return;
        }
        c->last_errno = errno;
    }
    sc_conn_fail(sc, c, NIXL_ERR_REMOTE_DISCONNECT, "cannot connect to %s: %s", c->peer,
                 c->last_errno ? strerror(c->last_errno) : "no address");
}

void sc_conn_queue(sc_conn_t *c, uint8_t *frame, size_t len)
{
    sc_out_t *o = malloc(sizeof(*o));
    if (!o) {
        NIXL_ERROR("side channel: out of memory queueing a message to %s", c->peer);
        free(frame);
        return;
    }
    *o = (sc_out_t){.data = frame, .len = len};
    if (!c->out_head)
        c->last_tx_ns = nixl_now_ns();
    c->out_bytes += len;
    *c->out_tail = o;
    c->out_tail = &o->next;
}

void sc_conn_fetch_pop(nixl_sc_t *sc, sc_conn_t *c, nixl_status_t st, const char *loaded,
                       const char *reason)
{
    sc_fetch_t *f = c->fetch_head;
    c->fetch_head = f->next;
    if (!c->fetch_head)
        c->fetch_tail = &c->fetch_head;
    c->fetch_since_ns = nixl_now_ns();
    char why[512];
    if (st == NIXL_SUCCESS && loaded && strcmp(loaded, f->name) != 0) {
        st = NIXL_ERR_MISMATCH;
        snprintf(why, sizeof(why), "the agent listening at %s is '%s', not '%s'", c->peer,
                 loaded, f->name);
        reason = why;
    } else if (st != NIXL_SUCCESS) {
        snprintf(why, sizeof(why), "metadata from %s could not be loaded: %s", c->peer, reason);
        reason = why;
    }
    if (st != NIXL_SUCCESS)
        NIXL_WARN("side channel: fetch of '%s' failed: %s", f->name, reason);
    sc->hooks.fetch_done(sc->hooks.ctx, f->name, st, st == NIXL_SUCCESS ? "" : reason);
    free(f);
}

/* The name a metadata blob claims, when it is `sender`'s: a LOAD proven by `sender` may carry
 * only its own metadata, or it could replace another loaded peer. */
static nixl_status_t blob_named(const uint8_t *blob, size_t len, const char *sender)
{
    nixl_md_view_t v;
    nixl_status_t st = nixl_md_decode(blob, len, &v);
    if (st != NIXL_SUCCESS)
        return st;
    bool same = v.name_len == strlen(sender) && memcmp(v.name, sender, v.name_len) == 0;
    int n = (int)(v.name_len > 64 ? 64 : v.name_len);
    char claimed[65];
    memcpy(claimed, v.name, (size_t)n);
    claimed[n] = '\0';
    nixl_md_view_free(&v);
    if (!same)
        return nixl_err(NIXL_ERR_NOT_ALLOWED, "the metadata of '%s' was sent under the proof of "
                        "'%s' (an agent may send only its own)", claimed, sender);
    return NIXL_SUCCESS;
}

void sc_cmd_load(nixl_sc_t *sc, sc_conn_t *c, const sc_cmd_t *cmd, const char *sender)
{
    char *name = NULL;
    nixl_status_t st = sender ? blob_named(cmd->payload, cmd->len, sender) : NIXL_SUCCESS;
    if (st != NIXL_SUCCESS)
        nixl_auth_count_refused(sc->cfg.auth);
    else
        st = sc->hooks.load_md(sc->hooks.ctx, cmd->payload, cmd->len, &name);
    const char *reason = st == NIXL_SUCCESS ? "" : nixl_err_text();
    if (c->outbound && c->fetch_head) {
        sc_conn_fetch_pop(sc, c, st, name, reason);
    } else if (st != NIXL_SUCCESS) {
        NIXL_WARN("side channel: metadata received from %s was not loaded: %s", c->peer,
                  reason);
    } else {
        NIXL_DEBUG("side channel: loaded metadata of '%s' from %s", name, c->peer);
    }
    free(name);
}

void sc_cmd_send(nixl_sc_t *sc, sc_conn_t *c)
{
    /* A peer that asks and never reads would make us hold every answer: past the bound it is
     * dropped. One answer is always allowed, however large the metadata. */
    if (c->out_bytes >= sc->cfg.max_queued) {
        NIXL_LOG_LIMITED(NIXL_LOG_WARN, "side channel (agent '%s'): a peer asks for metadata "
                         "and does not read the answers (NIXL_SIDECHANNEL_MAX_QUEUED); "
                         "disconnected", sc->agent_name);
        sc_conn_fail(sc, c, NIXL_ERR_REMOTE_DISCONNECT,
                     "%s has %zu bytes of answers unread (NIXL_SIDECHANNEL_MAX_QUEUED=%llu)",
                     c->peer, c->out_bytes, (unsigned long long)sc->cfg.max_queued);
        return;
    }
    uint8_t *blob = NULL;
    size_t len = 0;
    nixl_status_t st = sc->hooks.get_md(sc->hooks.ctx, &blob, &len);
    if (st != NIXL_SUCCESS) {
        NIXL_ERROR("side channel: cannot answer %s's metadata request: %s", c->peer,
                   nixl_err_text());
        return;
    }
    size_t flen;
    uint8_t *frame = sc_frame_make(sc, "LOAD", blob, len, &flen);
    free(blob);
    if (!frame) {
        NIXL_ERROR("side channel: out of memory answering %s", c->peer);
        return;
    }
    sc_conn_queue(c, frame, flen);
}

void sc_cmd_invl(nixl_sc_t *sc, sc_conn_t *c, const sc_cmd_t *cmd, const char *sender)
{
    if (cmd->len == 0 || cmd->len > 255 || memchr(cmd->payload, 0, cmd->len)) {
        NIXL_WARN("side channel: ignoring an invalidation from %s with a malformed agent name "
                  "(%zu bytes)", c->peer, cmd->len);
        return;
    }
    char name[256];
    memcpy(name, cmd->payload, cmd->len);
    name[cmd->len] = '\0';
    if (sender && strcmp(sender, name) != 0) {
        nixl_auth_count_refused(sc->cfg.auth);
        NIXL_LOG_LIMITED(NIXL_LOG_WARN, "side channel (agent '%s'): '%s' (at %s) asked to "
                         "forget '%s'; refused: an agent may invalidate only itself",
                         sc->agent_name, sender, c->peer, name);
        return;
    }
    NIXL_DEBUG("side channel: %s invalidates '%s'", c->peer, name);
    sc->hooks.invalidate(sc->hooks.ctx, name);
}

/* Run the commands of one frame; false when the frame is not ours (the peer gets dropped). */
static bool conn_frame(nixl_sc_t *sc, sc_conn_t *c, const uint8_t *body, size_t len)
{
    if (len == 0)
        return true;
    sc_body_iter_t it;
    sc_body_iter_init(&it, body, len);
    sc_cmd_t cmd;
    const char *why = NULL;
    int r = 0; /* no command read: the loop may not run (a dead connection) */
    while (!c->dead && (r = sc_body_next(&it, &cmd, &why)) > 0) {
        switch (cmd.verb) {
        case SC_VERB_LOAD:
        case SC_VERB_SEND:
        case SC_VERB_INVL:
            if (sc->cfg.auth)
                sc_auth_refuse_plain(sc, c, &cmd);
            else if (cmd.verb == SC_VERB_LOAD)
                sc_cmd_load(sc, c, &cmd, NULL);
            else if (cmd.verb == SC_VERB_SEND)
                sc_cmd_send(sc, c);
            else
                sc_cmd_invl(sc, c, &cmd, NULL);
            break;
        case SC_VERB_AUTH:
            sc_auth_cmd(sc, c, &cmd);
            break;
        case SC_VERB_DENY:
            sc_deny_cmd(sc, c, &cmd);
            break;
        default:
            NIXL_WARN("side channel: unknown command \"%.4s\" from %s, skipped", cmd.verb_text,
                      c->peer);
        }
    }
    if (c->dead)
        return false;
    if (r < 0) {
        sc_conn_fail(sc, c, NIXL_ERR_MISMATCH, "%s sent a %zu-byte message that is not a NIXL "
                     "side-channel message (%s); connection closed", c->peer, len, why);
        return false;
    }
    return true;
}

static void conn_read(nixl_sc_t *sc, sc_conn_t *c)
{
    uint8_t chunk[SC_READ_CHUNK];
    for (int pass = 0; pass < SC_READS_PER_PASS && !c->dead; pass++) {
        ssize_t n = recv(c->fd, chunk, sizeof(chunk), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            bool mid = sc_reader_partial(&c->rd);
            if (n == 0 && !mid && !c->fetch_head) {
                NIXL_DEBUG("side channel: %s closed the connection", c->peer);
                sc_conn_fail(sc, c, NIXL_ERR_REMOTE_DISCONNECT, "%s closed the connection",
                             c->peer);
            } else {
                sc_conn_fail(sc, c, NIXL_ERR_REMOTE_DISCONNECT, "%s %s%s", c->peer,
                             n == 0 ? "closed the connection" : strerror(errno),
                             mid ? " in the middle of a message" : " before replying");
            }
            return;
        }
        c->last_rx_ns = nixl_now_ns();
        if (!sc_reader_partial(&c->rd)) {
            c->frame_start_ns = c->last_rx_ns;
            c->frame_bytes = 0;
        }
        c->frame_bytes += (uint64_t)n;
        size_t pos = 0;
        while (pos < (size_t)n && !c->dead) {
            size_t used = 0;
            sc_feed_result_t fr = sc_reader_feed(&c->rd, chunk + pos, (size_t)n - pos, &used);
            pos += used;
            if (fr == SC_FEED_FRAME) {
                size_t len;
                uint8_t *body = sc_reader_take(&c->rd, &len);
                conn_frame(sc, c, body, len);
                free(body);
                c->frame_start_ns = c->last_rx_ns;
                c->frame_bytes = (size_t)n - pos;
            } else if (fr == SC_FEED_TOO_LARGE) {
                sc_conn_fail(sc, c, NIXL_ERR_MISMATCH,
                             "%s announced a %llu-byte message, more than the limit of %llu "
                             "(NIXL_SIDECHANNEL_MAX_FRAME); refused unread, connection closed",
                             c->peer, (unsigned long long)sc_reader_announced(&c->rd),
                             (unsigned long long)sc->cfg.max_frame);
            } else if (fr == SC_FEED_NOMEM) {
                sc_conn_fail(sc, c, NIXL_ERR_OOM, NIXL_OOM_REASON " reading from %s", c->peer);
            }
        }
    }
}

static void conn_write(nixl_sc_t *sc, sc_conn_t *c)
{
    while (c->out_head) {
        sc_out_t *o = c->out_head;
        ssize_t n = send(c->fd, o->data + o->off, o->len - o->off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            sc_conn_fail(sc, c, NIXL_ERR_REMOTE_DISCONNECT, "sending to %s failed: %s",
                         c->peer, strerror(errno));
            return;
        }
        c->last_tx_ns = nixl_now_ns();
        o->off += (size_t)n;
        c->out_bytes -= (size_t)n;
        if (o->off < o->len)
            continue;
        c->out_head = o->next;
        if (!c->out_head)
            c->out_tail = &c->out_head;
        free(o->data);
        free(o);
    }
}

void sc_conn_events(nixl_sc_t *sc, sc_conn_t *c, short revents)
{
    if (c->dead || !revents)
        return;
    if (c->connecting) {
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
            err = errno;
        if (err == 0 && !(revents & (POLLERR | POLLHUP))) {
            conn_established(c);
        } else {
            c->last_errno = err ? err : ECONNREFUSED;
            sc_conn_connect(sc, c);
        }
        return;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR))
        conn_read(sc, c);
    if (!c->dead && c->out_head && (revents & POLLOUT))
        conn_write(sc, c);
}

uint64_t sc_conn_last_active(const sc_conn_t *c)
{
    return c->last_rx_ns > c->last_tx_ns ? c->last_rx_ns : c->last_tx_ns;
}

/*
 * The stall timer alone restarts on every byte, so a peer trickling a message keeps its slot
 * for ever: once a message has been arriving for longer than the stall timeout, it must have
 * averaged cfg.min_rate bytes/s since it began.
 */
static bool conn_rate_ok(nixl_sc_t *sc, sc_conn_t *c, uint64_t now)
{
    uint64_t elapsed = now - c->frame_start_ns;
    if (!sc->cfg.min_rate || elapsed < sc_ms_to_ns(sc->cfg.stall_timeout_ms))
        return true;
    /* bytes * 1e9 / elapsed_ns, without overflow for any frame below 2^34 bytes */
    double rate = (double)c->frame_bytes * 1e9 / (double)elapsed;
    if (rate >= (double)sc->cfg.min_rate)
        return true;
    NIXL_LOG_LIMITED(NIXL_LOG_WARN, "side channel (agent '%s'): a peer sends a message slower "
                     "than NIXL_SIDECHANNEL_MIN_RATE; disconnected", sc->agent_name);
    sc_conn_fail(sc, c, NIXL_ERR_REMOTE_DISCONNECT,
                 "%s sent %llu bytes in %llu ms, below %llu bytes/s "
                 "(NIXL_SIDECHANNEL_MIN_RATE); disconnected", c->peer,
                 (unsigned long long)c->frame_bytes, (unsigned long long)(elapsed / 1000000u),
                 (unsigned long long)sc->cfg.min_rate);
    return false;
}

uint64_t sc_conn_timeouts(nixl_sc_t *sc, sc_conn_t *c, uint64_t now)
{
    if (c->dead)
        return UINT64_MAX;
    if (c->connecting) {
        if (now >= c->connect_deadline_ns) {
            c->last_errno = ETIMEDOUT;
            sc_conn_connect(sc, c);
            return c->dead ? UINT64_MAX : c->connect_deadline_ns;
        }
        return c->connect_deadline_ns;
    }
    uint64_t next = UINT64_MAX;
    uint64_t stall = sc_ms_to_ns(sc->cfg.stall_timeout_ms);
    if (sc_reader_partial(&c->rd)) {
        if (now - c->last_rx_ns >= stall) {
            sc_conn_fail(sc, c, NIXL_ERR_REMOTE_DISCONNECT,
                         "%s stalled in the middle of a message for %u ms; disconnected",
                         c->peer, sc->cfg.stall_timeout_ms);
            return UINT64_MAX;
        }
        next = c->last_rx_ns + stall;
        if (!conn_rate_ok(sc, c, now))
            return UINT64_MAX;
        if (now + sc_ms_to_ns(SC_RATE_CHECK_MS) < next)
            next = now + sc_ms_to_ns(SC_RATE_CHECK_MS);
    } else if (!c->outbound && !c->out_head) {
        uint64_t idle = sc_ms_to_ns(sc->cfg.idle_timeout_ms), act = sc_conn_last_active(c);
        if (now - act >= idle) {
            NIXL_DEBUG("side channel: %s idle for %u ms; closed", c->peer,
                       sc->cfg.idle_timeout_ms);
            sc_conn_fail(sc, c, NIXL_ERR_REMOTE_DISCONNECT, "%s was idle for %u ms", c->peer,
                         sc->cfg.idle_timeout_ms);
            return UINT64_MAX;
        }
        next = act + idle;
    }
    if (c->out_head) {
        if (now - c->last_tx_ns >= stall) {
            sc_conn_fail(sc, c, NIXL_ERR_REMOTE_DISCONNECT,
                         "%s has not read our messages for %u ms; disconnected", c->peer,
                         sc->cfg.stall_timeout_ms);
            return UINT64_MAX;
        }
        if (c->last_tx_ns + stall < next)
            next = c->last_tx_ns + stall;
    }
    if (c->fetch_head) {
        /* A reply that is arriving, however slowly, is not late. */
        uint64_t since = c->fetch_since_ns > c->last_rx_ns ? c->fetch_since_ns : c->last_rx_ns;
        uint64_t reply = sc_ms_to_ns(sc->cfg.reply_timeout_ms);
        if (now - since >= reply) {
            sc_conn_fail(sc, c, NIXL_ERR_BACKEND,
                         "no metadata from %s within %u ms (NIXL_SIDECHANNEL_REPLY_TIMEOUT_MS)",
                         c->peer, sc->cfg.reply_timeout_ms);
            return UINT64_MAX;
        }
        if (since + reply < next)
            next = since + reply;
    }
    return next;
}

void sc_conn_fail_fetches(nixl_sc_t *sc, sc_conn_t *c, nixl_status_t status,
                          const char *reason)
{
    while (c->fetch_head) {
        sc_fetch_t *f = c->fetch_head;
        c->fetch_head = f->next;
        NIXL_WARN("side channel: fetch of '%s' failed: %s", f->name, reason);
        sc->hooks.fetch_done(sc->hooks.ctx, f->name, status, reason);
        free(f);
    }
    c->fetch_tail = &c->fetch_head;
}

void sc_conn_fail(nixl_sc_t *sc, sc_conn_t *c, nixl_status_t status, const char *fmt, ...)
{
    if (c->dead)
        return;
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    c->dead = true;
    c->fail_status = status;
    snprintf(c->fail_reason, sizeof(c->fail_reason), "%s", reason);
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    size_t undelivered = 0;
    while (c->out_head) {
        sc_out_t *o = c->out_head;
        c->out_head = o->next;
        /* Only what we sent on our own initiative counts: a lost reply to the peer's SEND is
         * the peer's loss, and a lost request of ours fails its fetch, reported below. */
        undelivered += c->outbound && !(o->len >= SC_HDR_LEN + SC_MAGIC_LEN + SC_VERB_LEN &&
                                        memcmp(o->data + SC_HDR_LEN + SC_MAGIC_LEN, "SEND",
                                               SC_VERB_LEN) == 0);
        free(o->data);
        free(o);
    }
    c->out_tail = &c->out_head;
    c->out_bytes = 0;
    if (undelivered)
        NIXL_ERROR("side channel (agent '%s'): %zu message(s) to %s not delivered: %s",
                   sc->agent_name, undelivered, c->peer, reason);
    else if (status == NIXL_ERR_MISMATCH)
        NIXL_WARN("side channel (agent '%s'): %s", sc->agent_name, reason);
    sc_conn_fail_fetches(sc, c, status, reason);
    if (!c->outbound)
        sc->num_inbound--;
}

void sc_conn_free(sc_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    if (c->addrs)
        freeaddrinfo(c->addrs);
    sc_reader_free(&c->rd);
    free(c->host);
    free(c);
}
