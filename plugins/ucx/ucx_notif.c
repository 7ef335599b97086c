/*
 * ucx_notif.c - notifications, in the reference's wire form: active message id 0, no header,
 * the data a serdes container {"name": sender, "msg": payload}, sent with the eager protocol
 * (so the receiver gets it whole, in its handler). Every peer sends to our worker 0, so the
 * handler lives there; it runs on whichever thread progresses worker 0 (normally the progress
 * thread) and hands the notification to the core at once.
 *
 * The bytes are written and parsed by ucx_notif_wire.c (the fuzzed parser): a malformed
 * message is logged and dropped, never trusted.
 */
#include <stdlib.h>
#include <string.h>

#include "ucx_priv.h"

/* At most one line a second about dropped notifications. */
#define NOTIF_DROP_LOG_NS 1000000000ull

size_t ucx_notif_size(const nixl_be_engine_t *eng, size_t len)
{
    return ucx_notif_wire_size(eng->name_len, len);
}

void ucx_notif_write(const nixl_be_engine_t *eng, const void *msg, size_t len, uint8_t *out)
{
    ucx_notif_wire_write(eng->name, eng->name_len, msg, len, out);
}

static ucs_status_t notif_recv(void *arg, const void *header, size_t header_len, void *data,
                               size_t length, const ucp_am_recv_param_t *param)
{
    nixl_be_engine_t *eng = arg;
    ucx_notif_view_t v;
    const char *why = NULL;
    (void)header, (void)header_len; /* the reference sends none; ignore one */
    if (param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV)
        why = "it came by rendezvous, not eager";
    else
        ucx_notif_parse(data, length, &v, &why);
    if (why) {
        /* a peer can send these without end: one line a second, with the count */
        uint64_t now = nixl_now_ns();
        eng->notif_dropped++;
        if (!eng->notif_drop_log_ns || now - eng->notif_drop_log_ns >= NOTIF_DROP_LOG_NS) {
            NIXL_BE_LOG(eng->host, NIXL_LOG_WARN,
                        "agent '%s' dropped a malformed notification (%zu bytes): %s "
                        "(%llu dropped since the last such line)",
                        eng->name, length, why, (unsigned long long)eng->notif_dropped);
            eng->notif_dropped = 0;
            eng->notif_drop_log_ns = now;
        }
        return UCS_OK;
    }
    eng->host->notif(eng->host, v.name, v.name_len, v.msg, v.msg_len);
    return UCS_OK;
}

nixl_status_t ucx_notif_init(nixl_be_engine_t *eng)
{
    ucp_am_handler_param_t p = {
        .field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_FLAGS |
                      UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG,
        .id = UCX_AM_NOTIF,
        .flags = UCP_AM_FLAG_WHOLE_MSG,
        .cb = notif_recv,
        .arg = eng,
    };
    ucs_status_t s = ucp_worker_set_am_recv_handler(eng->workers[0], &p);
    if (s != UCS_OK)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_BACKEND,
                           "registering the notification handler "
                           "failed: %s",
                           ucs_status_string(s));
    return NIXL_SUCCESS;
}

ucs_status_t ucx_notif_send(ucx_conn_t *conn, unsigned worker, const void *buf, size_t len,
                            ucp_send_nbx_callback_t cb, void *arg)
{
    ucp_request_param_t p = {
        .op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS | UCP_OP_ATTR_FIELD_CALLBACK |
                        UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_MEMORY_TYPE,
        .flags = UCP_AM_SEND_FLAG_EAGER,
        .cb.send = cb,
        .user_data = arg,
        .memory_type = UCS_MEMORY_TYPE_HOST,
    };
    ucs_status_ptr_t r = ucp_am_send_nbx(conn->eps[worker], UCX_AM_NOTIF, NULL, 0, buf, len, &p);
    return UCS_PTR_IS_PTR(r) ? UCS_INPROGRESS : UCS_PTR_STATUS(r);
}

/* A standalone notification owns its buffer until UCX is done with it. */
typedef struct gen_notif {
    nixl_be_engine_t *eng;
    uint8_t data[];
} gen_notif_t;

static void gen_done(void *request, ucs_status_t status, void *arg)
{
    gen_notif_t *g = arg;
    nixl_be_engine_t *eng = g->eng;
    ucp_request_free(request);
    if (status != UCS_OK)
        NIXL_BE_LOG(eng->host, NIXL_LOG_WARN, "a notification of agent '%s' was not delivered: %s",
                    eng->name, ucs_status_string(status));
    free(g);
    ucx_busy_dec(eng);
}

nixl_status_t ucx_gen_notif(nixl_be_engine_t *eng, const char *agent, const void *msg,
                            size_t len)
{
    if (len > UCX_NOTIF_MAX)
        return NIXL_BE_ERR(eng->host, NIXL_ERR_INVALID_PARAM,
                           "a %zu-byte notification exceeds the "
                           "limit of %zu bytes",
                           len, UCX_NOTIF_MAX);
    ucx_conn_t *conn = ucx_conn_get(eng, agent);
    if (!conn)
        return NIXL_ERR_NOT_FOUND;
    nixl_status_t st = ucx_conn_usable(conn, "notifying");
    size_t size = ucx_notif_size(eng, len);
    gen_notif_t *g = st == NIXL_SUCCESS ? malloc(sizeof(*g) + size) : NULL;
    if (st == NIXL_SUCCESS && !g)
        st = NIXL_BE_ERR(eng->host, NIXL_ERR_UNKNOWN, "out of memory for a notification");
    if (st != NIXL_SUCCESS) {
        ucx_conn_unref(conn, 1);
        return st;
    }
    g->eng = eng;
    ucx_notif_write(eng, msg, len, g->data);
    ucx_busy_inc(eng);
    ucs_status_t s = ucx_notif_send(conn, ucx_conn_worker(eng, conn), g->data, size, gen_done, g);
    if (s == UCS_INPROGRESS) {
        ucx_kick(eng);
    } else {
        free(g);
        ucx_busy_dec(eng);
        if (s != UCS_OK)
            st = NIXL_BE_ERR(
                eng->host, atomic_load(&conn->failed) ? NIXL_ERR_REMOTE_DISCONNECT : ucx_status(s),
                "sending a notification to agent '%s' failed: %s", agent, ucs_status_string(s));
    }
    ucx_conn_unref(conn, 1);
    return st;
}
