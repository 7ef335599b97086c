/*
 * ucx_conn.c - peers: the name table, one endpoint per local worker to the peer's worker 0,
 * failure detection, and closing without ever blocking a caller.
 *
 * Endpoints are closed when the last reference to their conn goes (never while a request or a
 * region still uses them), with ucp_ep_close_nbx and a callback: by force wherever UCX allows
 * it (ucx_close_force: disconnect flushed them first), gracefully only without peer error
 * handling, where UCX refuses a forced close. Whoever drops the last
 * reference does not wait: the progress thread completes the close and the callback frees the
 * memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ucx_priv.h"

static void conn_free(ucx_conn_t *conn)
{
    nixl_be_engine_t *eng = conn->eng;
    pthread_mutex_lock(&eng->all_lock);
    nixl_list_remove(&eng->all_conns, &conn->all);
    pthread_mutex_unlock(&eng->all_lock);
    free(conn->name);
    free(conn->addr);
    free(conn);
}

static void conn_drop_hold(ucx_conn_t *conn)
{
    if (atomic_fetch_sub(&conn->holds, 1) == 1)
        conn_free(conn);
}

static void close_done(void *request, ucs_status_t status, void *arg)
{
    ucx_conn_t *conn = arg;
    nixl_be_engine_t *eng = conn->eng;
    (void)status; /* a close that failed has closed all the same */
    ucp_request_free(request);
    conn_drop_hold(conn);
    ucx_busy_dec(eng);
}

/* Issue the close of every endpoint; each close in flight holds the memory. */
static void conn_close_eps(ucx_conn_t *conn, bool force)
{
    if (conn->eps_closed)
        return;
    conn->eps_closed = true;
    nixl_be_engine_t *eng = conn->eng;
    ucp_request_param_t param = {
        .op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS | UCP_OP_ATTR_FIELD_CALLBACK |
                        UCP_OP_ATTR_FIELD_USER_DATA,
        .flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0,
        .cb.send = close_done,
        .user_data = conn,
    };
    for (unsigned w = 0; w < eng->nworkers; w++) {
        if (!conn->eps[w])
            continue;
        atomic_fetch_add(&conn->holds, 1);
        ucx_busy_inc(eng);
        ucs_status_ptr_t r = ucp_ep_close_nbx(conn->eps[w], &param);
        conn->eps[w] = NULL;
        if (UCS_PTR_IS_PTR(r)) {
            ucx_kick(eng);
            ucx_pool_wake(eng, w); /* a dedicated worker's thread may sleep without timeout */
        } else {
            ucx_busy_dec(eng);
            conn_drop_hold(conn); /* never the last: the caller holds the users' hold */
        }
    }
}

void ucx_conn_ref(ucx_conn_t *conn, size_t n)
{
    atomic_fetch_add(&conn->refs, n);
}

void ucx_conn_unref(ucx_conn_t *conn, size_t n)
{
    if (!n || atomic_fetch_sub(&conn->refs, n) != n)
        return;
    conn_close_eps(conn, ucx_close_force(conn));
    conn_drop_hold(conn);
}

static void ep_failed(void *arg, ucp_ep_h ep, ucs_status_t status)
{
    ucx_conn_t *conn = arg;
    (void)ep; /* closed (forced) when the conn's last user goes, never from here */
    if (atomic_exchange(&conn->failed, true))
        return;
    atomic_store(&conn->fail_status, (int)status);
    NIXL_BE_LOG(conn->eng->host, NIXL_LOG_INFO, "the connection to agent '%s' failed: %s",
                conn->name, ucs_status_string(status));
}

static nixl_status_t conn_new(nixl_be_engine_t *eng, const char *name, const void *addr,
                              size_t len, bool is_self, ucx_conn_t **out)
{
    ucx_conn_t *conn = calloc(1, sizeof(*conn) + eng->nworkers * sizeof(ucp_ep_h));
    if (!conn)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    conn->eng = eng;
    conn->is_self = is_self;
    conn->serial = atomic_fetch_add(&eng->next_serial, 1) + 1;
    atomic_init(&conn->refs, 1);
    atomic_init(&conn->holds, 1);
    conn->name = strdup(name);
    conn->addr = malloc(len);
    if (!conn->name || !conn->addr) {
        free(conn->name);
        free(conn->addr);
        free(conn);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    conn->name_len = strlen(name);
    memcpy(conn->addr, addr, len);
    conn->addr_len = len;
    pthread_mutex_lock(&eng->all_lock);
    nixl_list_push(&eng->all_conns, &conn->all);
    pthread_mutex_unlock(&eng->all_lock);

    /* Loopback needs no failure handling (our own worker cannot fail without us) and the
     * 'self' and shared-memory transports of UCX 1.13 refuse it; over TCP only, it gets it
     * anyway (see tcp_only() in ucx_config.c). Loopback uses worker 0 only: it reaches itself
     * through 'self', and other workers would reach it by a transport between workers of one
     * context (TCP without failure handling, when UCX_TLS=tcp: see above). */
    ucp_err_handling_mode_t mode = is_self ? eng->self_mode : eng->params.err_mode;
    unsigned nep = is_self ? 1 : eng->nworkers;
    ucp_ep_params_t ep = {
        .field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                      UCP_EP_PARAM_FIELD_ERR_HANDLER,
        .address = (const ucp_address_t *)conn->addr,
        .err_mode = mode,
        .err_handler = {.cb = ep_failed, .arg = conn},
    };
    for (unsigned w = 0; w < nep; w++) {
        ucs_status_t s = ucp_ep_create(eng->workers[w], &ep, &conn->eps[w]);
        if (s == UCS_OK)
            continue;
        conn->eps[w] = NULL;
        ucx_conn_unref(conn, 1);
        if (s == UCS_ERR_UNREACHABLE && mode == UCP_ERR_HANDLING_MODE_PEER)
            return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                               "no transport reaches agent '%s' with "
                               "peer failure detection (the shared-memory transports of UCX %s "
                               "have none): add tcp or an RDMA transport to UCX_TLS, or set "
                               "ucx_error_handling_mode=none",
                               name, ucp_get_version_string());
        return NIXL_BE_ERR(eng->host,
                           ucx_status(s) == NIXL_ERR_INVALID_PARAM ? NIXL_ERR_INVALID_PARAM
                                                                   : NIXL_ERR_BACKEND,
                           "creating an endpoint to agent '%s' (worker %u) failed: %s", name, w,
                           ucs_status_string(s));
    }
    *out = conn;
    return NIXL_SUCCESS;
}

/* conns_lock held */
static ucx_conn_t *table_find(nixl_be_engine_t *eng, const char *name)
{
    return nixl_hmap_get(&eng->conns, name, strlen(name));
}

/* false when memory is short */
static bool table_insert(nixl_be_engine_t *eng, ucx_conn_t *conn)
{
    pthread_mutex_lock(&eng->conns_lock);
    bool ok = nixl_hmap_put(&eng->conns, conn->name, conn->name_len, conn);
    pthread_mutex_unlock(&eng->conns_lock);
    return ok;
}

static ucx_conn_t *table_remove(nixl_be_engine_t *eng, const char *name)
{
    pthread_mutex_lock(&eng->conns_lock);
    ucx_conn_t *c = nixl_hmap_remove(&eng->conns, name, strlen(name));
    pthread_mutex_unlock(&eng->conns_lock);
    return c;
}

ucx_conn_t *ucx_conn_find(nixl_be_engine_t *eng, const char *name)
{
    pthread_mutex_lock(&eng->conns_lock);
    ucx_conn_t *c = table_find(eng, name);
    if (c)
        ucx_conn_ref(c, 1);
    pthread_mutex_unlock(&eng->conns_lock);
    return c;
}

ucx_conn_t *ucx_conn_get(nixl_be_engine_t *eng, const char *name)
{
    ucx_conn_t *c = ucx_conn_find(eng, name);
    if (!c)
        (void)NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_FOUND,
                          "no connection info of agent '%s' is loaded", name);
    return c;
}

nixl_status_t ucx_conn_usable(ucx_conn_t *conn, const char *what)
{
    if (atomic_load(&conn->failed))
        return NIXL_BE_ERR(conn->eng->host, NIXL_ERR_REMOTE_DISCONNECT,
                           "%s agent '%s': the "
                           "connection failed (%s): the peer is gone",
                           what, conn->name,
                           ucs_status_string((ucs_status_t)atomic_load(&conn->fail_status)));
    if (atomic_load(&conn->forgotten))
        return NIXL_BE_ERR(conn->eng->host, NIXL_ERR_NOT_FOUND,
                           "%s agent '%s': it was disconnected "
                           "(its metadata was invalidated)",
                           what, conn->name);
    return NIXL_SUCCESS;
}

/* ---- liveness ----
 *
 * UCX notices a peer whose process died or whose connection broke (error mode peer), but not
 * one that stopped answering with its connections intact (SIGSTOP, a hung host, a cable cut
 * with no traffic to time out): its kernel keeps the TCP connection alive and UCX's keepalive
 * is satisfied (over TCP, UCX 1.13 left a transfer to a SIGSTOPped peer IN_PROG for as long as
 * we waited, with UCX_KEEPALIVE_INTERVAL=1s). So while ucx_peer_timeout_ms is set, a thread
 * sends every remote peer a small active message (PING, carrying the conn's serial) every
 * quarter of the timeout, and the peer's worker 0 answers it (PONG, the same serial) from its
 * progress thread. A peer that answered once and then leaves a probe unanswered for the
 * timeout has failed, as if UCX had reported it: its transfers fail with
 * NIXL_ERR_REMOTE_DISCONNECT. A peer that has not answered any of its first UCX_PROBE_TRIES
 * probes (a reference agent has no handler for them) is not judged by probes.
 */

/* A PONG for the conn with `serial`: it answers. A conn stays on all_conns until it is freed,
 * so nothing more than all_lock is needed to touch it. */
static void conn_answered(nixl_be_engine_t *eng, uint64_t serial)
{
    pthread_mutex_lock(&eng->all_lock);
    for (nixl_list_node_t *n = eng->all_conns; n; n = n->next) {
        ucx_conn_t *c = nixl_list_entry(n, ucx_conn_t, all);
        if (c->serial == serial) {
            atomic_store(&c->ping_sent_ns, 0);
            atomic_store(&c->probe, UCX_PROBE_ANSWERS);
            break;
        }
    }
    pthread_mutex_unlock(&eng->all_lock);
}

/* A probe or an answer in flight: UCX 1.13 reads the AM header of a pending send when it finally
 * leaves (it has no flag to copy it), so the header lives here until the send completes, not on
 * the sender's stack. Our probes are rare (at most one per peer per second) and answers are
 * bounded (UCX_PONGS_MAX): one allocation each. */
typedef struct probe_msg {
    nixl_be_engine_t *eng;
    uint64_t serial;
    bool pong;
} probe_msg_t;

static void probe_msg_free(probe_msg_t *m)
{
    if (m->pong)
        atomic_fetch_sub(&m->eng->pongs_out, 1);
    free(m);
}

static void probe_sent(void *request, ucs_status_t status, void *arg)
{
    probe_msg_t *m = arg;
    nixl_be_engine_t *eng = m->eng;
    (void)status; /* a probe that could not leave is an unanswered probe */
    ucp_request_free(request);
    probe_msg_free(m);
    ucx_busy_dec(eng);
}

static void probe_send(nixl_be_engine_t *eng, ucp_ep_h ep, unsigned id, uint64_t serial)
{
    bool pong = id == UCX_AM_PONG;
    if (pong && atomic_fetch_add(&eng->pongs_out, 1) >= UCX_PONGS_MAX) {
        atomic_fetch_sub(&eng->pongs_out, 1); /* flooded: this probe stays unanswered */
        return;
    }
    probe_msg_t *m = malloc(sizeof(*m));
    if (!m) {
        if (pong)
            atomic_fetch_sub(&eng->pongs_out, 1);
        return; /* an unsent probe is an unanswered one */
    }
    *m = (probe_msg_t){.eng = eng, .serial = serial, .pong = pong};
    ucp_request_param_t p = {
        .op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS | UCP_OP_ATTR_FIELD_CALLBACK |
                        UCP_OP_ATTR_FIELD_USER_DATA,
        .flags = UCP_AM_SEND_FLAG_EAGER | (id == UCX_AM_PING ? UCP_AM_SEND_FLAG_REPLY : 0),
        .cb.send = probe_sent,
        .user_data = m,
    };
    ucx_busy_inc(eng);
    ucs_status_ptr_t r = ucp_am_send_nbx(ep, id, &m->serial, sizeof(m->serial), NULL, 0, &p);
    if (UCS_PTR_IS_PTR(r)) {
        ucx_kick(eng);
    } else {
        probe_msg_free(m);
        ucx_busy_dec(eng);
    }
}

static ucs_status_t ping_recv(void *arg, const void *header, size_t header_len, void *data,
                              size_t len, const ucp_am_recv_param_t *param)
{
    nixl_be_engine_t *eng = arg;
    (void)data;
    (void)len;
    uint64_t serial;
    if (header_len != sizeof(serial) || !(param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP))
        return UCS_OK; /* not our probe: ignored */
    memcpy(&serial, header, sizeof(serial));
    probe_send(eng, param->reply_ep, UCX_AM_PONG, serial);
    return UCS_OK;
}

static ucs_status_t pong_recv(void *arg, const void *header, size_t header_len, void *data,
                              size_t len, const ucp_am_recv_param_t *param)
{
    nixl_be_engine_t *eng = arg;
    (void)data;
    (void)len;
    (void)param;
    uint64_t serial;
    if (header_len != sizeof(serial))
        return UCS_OK;
    memcpy(&serial, header, sizeof(serial));
    conn_answered(eng, serial);
    return UCS_OK;
}

static nixl_status_t probe_handlers(nixl_be_engine_t *eng)
{
    ucp_am_handler_param_t p = {
        .field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_FLAGS |
                      UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG,
        .flags = UCP_AM_FLAG_WHOLE_MSG,
        .arg = eng,
    };
    p.id = UCX_AM_PING;
    p.cb = ping_recv;
    ucs_status_t s = ucp_worker_set_am_recv_handler(eng->workers[0], &p);
    if (s == UCS_OK) {
        p.id = UCX_AM_PONG;
        p.cb = pong_recv;
        s = ucp_worker_set_am_recv_handler(eng->workers[0], &p);
    }
    if (s != UCS_OK)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                           "registering the peer probe handlers failed: %s",
                           ucs_status_string(s));
    return NIXL_SUCCESS;
}

/* One pass: probe each open remote conn, judge those whose probe is overdue. */
static void live_pass(nixl_be_engine_t *eng, uint64_t timeout_ns)
{
    for (uint64_t serial = 0;;) {
        /* the next conn after `serial` (lowest serial above it), +1 ref */
        ucx_conn_t *c = NULL;
        uint64_t best = UINT64_MAX;
        pthread_mutex_lock(&eng->all_lock);
        for (nixl_list_node_t *n = eng->all_conns; n; n = n->next) {
            ucx_conn_t *x = nixl_list_entry(n, ucx_conn_t, all);
            if (x->serial > serial && x->serial < best && !x->is_self &&
                atomic_load(&x->refs) && !atomic_load(&x->failed) &&
                atomic_load(&x->probe) != UCX_PROBE_SILENT) {
                best = x->serial;
                c = x;
            }
        }
        /* a reference only while the count is not 0: a conn whose last one went is closing */
        if (c) {
            size_t r = atomic_load(&c->refs);
            while (r && !atomic_compare_exchange_weak(&c->refs, &r, r + 1))
                ;
            if (!r)
                c = NULL;
        }
        pthread_mutex_unlock(&eng->all_lock);
        if (best == UINT64_MAX)
            return;
        serial = best;
        if (!c)
            continue;
        uint64_t now = nixl_now_ns(), sent = atomic_load(&c->ping_sent_ns);
        if (!sent) {
            atomic_store(&c->ping_sent_ns, now);
            if (c->eps[0])
                probe_send(eng, c->eps[0], UCX_AM_PING, c->serial);
        } else if (now - sent > timeout_ns) {
            if (atomic_load(&c->probe) == UCX_PROBE_ANSWERS) {
                if (!atomic_exchange(&c->failed, true)) {
                    atomic_store(&c->fail_status, (int)UCS_ERR_ENDPOINT_TIMEOUT);
                    NIXL_BE_LOG(eng->host, NIXL_LOG_INFO,
                                "agent '%s' has not answered for %llu ms "
                                "(ucx_peer_timeout_ms): taken as failed",
                                c->name, (unsigned long long)(timeout_ns / 1000000u));
                }
            } else if (++c->probe_tries < UCX_PROBE_TRIES) {
                atomic_store(&c->ping_sent_ns, now); /* try again */
                if (c->eps[0])
                    probe_send(eng, c->eps[0], UCX_AM_PING, c->serial);
            } else {
                atomic_store(&c->probe, UCX_PROBE_SILENT);
                NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG,
                            "agent '%s' does not answer probes (not one of ours?): its "
                            "liveness is left to UCX",
                            c->name);
            }
        }
        ucx_conn_unref(c, 1);
    }
}

static void *live_main(void *arg)
{
    nixl_be_engine_t *eng = arg;
    uint64_t timeout_ns = eng->params.peer_timeout_ms * 1000000u;
    uint64_t step_ns = timeout_ns / 4;
    if (step_ns > 1000000000u)
        step_ns = 1000000000u;
    if (step_ns < 10000000u)
        step_ns = 10000000u;
    uint64_t next = nixl_now_ns();
    while (!atomic_load(&eng->live_stop)) {
        if (nixl_now_ns() >= next) {
            live_pass(eng, timeout_ns);
            next = nixl_now_ns() + step_ns;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    return NULL;
}

static void liveness_start(nixl_be_engine_t *eng)
{
    if (!eng->params.peer_timeout_ms || atomic_exchange(&eng->live_started, true))
        return;
    atomic_store(&eng->live_stop, false);
    if (pthread_create(&eng->live_thread, NULL, live_main, eng)) {
        atomic_store(&eng->live_started, false);
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "the peer probe thread could not start: stopped peers will not be noticed");
    }
}

void ucx_liveness_stop(nixl_be_engine_t *eng)
{
    if (!atomic_load(&eng->live_started))
        return;
    atomic_store(&eng->live_stop, true);
    pthread_join(eng->live_thread, NULL);
    atomic_store(&eng->live_started, false);
}

nixl_status_t ucx_conn_self(nixl_be_engine_t *eng)
{
    /* Our own address must pass the checks peers' addresses get: if it does not, this UCX
     * packs addresses in a format ucx_validate.c does not know, and peers' are refused. */
    char why[160];
    if (!ucx_addr_check(eng->addr, eng->addr_len, why, sizeof(why))) {
        snprintf(eng->addr_fmt_why, sizeof(eng->addr_fmt_why), "%s", why);
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                    "the worker address of this UCX (%s) is not in a format the "
                    "backend can check (%s): connection info of peers will be refused",
                    ucp_get_version_string(), why);
    }
    nixl_status_t st = probe_handlers(eng);
    if (st != NIXL_SUCCESS)
        return st;
    ucx_conn_t *conn;
    st = conn_new(eng, eng->name, eng->addr, eng->addr_len, true, &conn);
    if (st != NIXL_SUCCESS)
        return st;
    if (!table_insert(eng, conn)) {
        ucx_conn_unref(conn, 1);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    eng->self = conn; /* the table's reference keeps it */
    return NIXL_SUCCESS;
}

nixl_status_t ucx_load_remote_conn(nixl_be_engine_t *eng, const char *agent, const void *blob,
                                   size_t len)
{
    if (!agent || !*agent || strlen(agent) > UCX_NAME_MAX || !blob || !len)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "load_remote_conn needs an agent name "
                           "and a non-empty worker address");
    /* UCX parses an address without its length and trusts what is inside it: check it all
     * before UCX sees it (ucx_validate.c). */
    if (eng->addr_fmt_why[0])
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_SUPPORTED,
                           "the connection info of agent '%s' cannot be checked: this UCX "
                           "(%s) packs worker addresses in a format the backend does not "
                           "know (%s)",
                           agent, ucp_get_version_string(), eng->addr_fmt_why);
    char why[160];
    if (!ucx_addr_check(blob, len, why, sizeof(why)))
        return NIXL_BE_ERR(eng->host, NIXL_ERR_MISMATCH,
                           "the connection info of agent '%s' (%zu bytes) is not a valid UCX "
                           "worker address: %s",
                           agent, len, why);
    pthread_mutex_lock(&eng->conns_lock);
    ucx_conn_t *old = table_find(eng, agent);
    bool same = old && old->addr_len == len && !memcmp(old->addr, blob, len);
    bool failed = old && atomic_load(&old->failed);
    pthread_mutex_unlock(&eng->conns_lock);
    if (old) {
        /* Loading the very same address again is harmless (the reference refuses it). */
        if (same && !failed)
            return NIXL_SUCCESS;
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "agent '%s' is already loaded %s; "
                           "disconnect (invalidate) it first",
                           agent,
                           same ? "and its connection failed" : "with another worker address");
    }
    ucx_conn_t *conn;
    nixl_status_t st = conn_new(eng, agent, blob, len, false, &conn);
    if (st != NIXL_SUCCESS)
        return st;
    if (!table_insert(eng, conn)) {
        ucx_conn_unref(conn, 1);
        return NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory");
    }
    NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG, "'%s' loaded agent '%s' (%zu-byte address)", eng->name,
                agent, len);
    liveness_start(eng);
    return NIXL_SUCCESS;
}

nixl_status_t ucx_connect(nixl_be_engine_t *eng, const char *agent)
{
    ucx_conn_t *conn = ucx_conn_get(eng, agent);
    if (!conn)
        return NIXL_ERR_NOT_FOUND;
    nixl_status_t st = ucx_conn_usable(conn, "connecting to");
    ucx_conn_unref(conn, 1);
    return st;
}

nixl_status_t ucx_disconnect(nixl_be_engine_t *eng, const char *agent)
{
    if (!strcmp(agent, eng->name))
        return NIXL_SUCCESS; /* loopback lives as long as the engine */
    ucx_conn_t *conn = table_remove(eng, agent);
    if (!conn)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_NOT_FOUND, "agent '%s' is not loaded", agent);
    atomic_store(&conn->forgotten, true);
    ucx_conn_unref(conn, 1); /* closes the endpoints unless a request still holds them */
    return NIXL_SUCCESS;
}

void ucx_conns_shutdown(nixl_be_engine_t *eng)
{
    ucx_liveness_stop(eng);
    /* Take the whole table, then let go of each conn outside the lock. */
    pthread_mutex_lock(&eng->conns_lock);
    nixl_hmap_t conns = eng->conns;
    nixl_hmap_init(&eng->conns);
    pthread_mutex_unlock(&eng->conns_lock);
    void *c;
    for (size_t it = 0; nixl_hmap_next(&conns, &it, NULL, NULL, &c);) {
        atomic_store(&((ucx_conn_t *)c)->forgotten, true);
        ucx_conn_unref(c, 1);
    }
    nixl_hmap_free(&conns);
    eng->self = NULL;
}

void ucx_conns_force_close(nixl_be_engine_t *eng)
{
    /* Conns whose endpoints are open still have users (leftovers the core never released),
     * so none of them is freed while we go through the list. */
    for (;;) {
        ucx_conn_t *open = NULL;
        pthread_mutex_lock(&eng->all_lock);
        for (nixl_list_node_t *n = eng->all_conns; n && !open; n = n->next) {
            ucx_conn_t *c = nixl_list_entry(n, ucx_conn_t, all);
            if (!c->eps_closed)
                open = c;
        }
        pthread_mutex_unlock(&eng->all_lock);
        if (!open)
            return;
        conn_close_eps(open, true);
    }
}

void ucx_conns_free_all(nixl_be_engine_t *eng)
{
    size_t n = 0;
    while (eng->all_conns) {
        conn_free(nixl_list_entry(eng->all_conns, ucx_conn_t, all));
        n++;
    }
    if (n)
        NIXL_BE_LOG(eng->host, NIXL_LOG_DEBUG, "%zu connection(s) freed after their workers", n);
}
