/*
 * sc_priv.h - the side channel's internal state, shared by sidechannel.c (API, worker loop,
 * listener) and sc_conn.c (one connection: connect, read, write, failure). Everything here is
 * touched by the worker thread only, except the op queue (under `lock`).
 */
#ifndef NIXL_MD_SC_PRIV_H
#define NIXL_MD_SC_PRIV_H

#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "sc_proto.h"
#include "sidechannel.h"
#include "clock.h"

/* A queued outgoing frame. */
typedef struct sc_out {
    struct sc_out *next;
    uint8_t *data;
    size_t len;
    size_t off; /* bytes already written */
} sc_out_t;

/* A fetch waiting for its LOAD on an outbound connection (replies come back in order). */
typedef struct sc_fetch {
    struct sc_fetch *next;
    char name[];
} sc_fetch_t;

typedef struct sc_conn {
    struct sc_conn *next;
    int fd; /* -1 before the first connect attempt */
    bool outbound;
    bool connecting;
    bool dead; /* closed; reaped at the end of the loop pass */
    char *host; /* outbound: the cache key with port */
    int port;
    char peer[96]; /* printable address for log lines */
    struct addrinfo *addrs; /* outbound: resolved addresses */
    struct addrinfo *next_addr; /* the next one to try */
    int last_errno; /* of the last failed connect attempt */
    uint64_t connect_deadline_ns;
    uint64_t last_rx_ns;
    uint64_t last_tx_ns; /* last write progress, or when the queue became non-empty */
    sc_reader_t rd;
    uint64_t frame_start_ns; /* when the message being read began arriving */
    uint64_t frame_bytes;    /* its bytes so far (for the minimum rate) */
    sc_out_t *out_head, **out_tail;
    size_t out_bytes; /* queued, not yet written (bounded by cfg.max_queued for replies) */
    sc_fetch_t *fetch_head, **fetch_tail;
    uint64_t fetch_since_ns; /* when the oldest pending fetch was queued */
    nixl_status_t fail_status; /* why the connection died (for fetches queued afterwards) */
    char fail_reason[256];
} sc_conn_t;

/* Work handed from callers to the worker. */
typedef struct sc_op {
    struct sc_op *next;
    char *host;
    int port;
    uint8_t *frame;
    size_t len;
    char *fetch_name; /* non-NULL for a fetch */
} sc_op_t;

struct nixl_sc {
    nixl_sc_config_t cfg;
    char *agent_name;
    nixl_sc_hooks_t hooks;
    int listen_fd;
    int port;
    int wake_fd;
    pthread_t thread;

    pthread_mutex_t lock; /* guards the op queue and `stopping` */
    sc_op_t *ops_head, **ops_tail;
    bool stopping;

    sc_conn_t *conns;
    unsigned num_inbound;
    char *bind_addr; /* cfg.bind_addr points here */
    /* accept() ran out of descriptors or memory: the listener is not watched before
     * accept_resume_ns; the backoff doubles while it lasts (0: accepting normally). */
    uint64_t accept_resume_ns;
    uint32_t accept_backoff_ms;
};

uint64_t sc_ms_to_ns(uint32_t ms);

/* ---- sc_conn.c ---- */
/* A new outbound connection to host:port (resolved here, connected by sc_conn_connect). */
sc_conn_t *sc_conn_outbound(nixl_sc_t *sc, const char *host, int port);
/* An accepted connection. */
sc_conn_t *sc_conn_inbound(nixl_sc_t *sc, int fd);
/* Try the next address of an outbound connection. */
void sc_conn_connect(nixl_sc_t *sc, sc_conn_t *c);
/* Queue a frame (ownership passes to the connection). */
void sc_conn_queue(sc_conn_t *c, uint8_t *frame, size_t len);
/* React to poll() events. */
void sc_conn_events(nixl_sc_t *sc, sc_conn_t *c, short revents);
/* Enforce connect, stall and reply timeouts; returns the next deadline (UINT64_MAX: none). */
uint64_t sc_conn_timeouts(nixl_sc_t *sc, sc_conn_t *c, uint64_t now);
/* Close: pending fetches fail with `status`/`reason`, undelivered frames are logged. */
void sc_conn_fail(nixl_sc_t *sc, sc_conn_t *c, nixl_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Report every pending fetch of the connection as failed (the connection stays). */
void sc_conn_fail_fetches(nixl_sc_t *sc, sc_conn_t *c, nixl_status_t status,
                          const char *reason);
/* The last time the connection moved a byte either way (or was opened). */
uint64_t sc_conn_last_active(const sc_conn_t *c);
/* Free a dead connection. */
void sc_conn_free(sc_conn_t *c);
/* The oldest pending fetch ended (`loaded`: the name that was loaded, checked against it). */
void sc_conn_fetch_pop(nixl_sc_t *sc, sc_conn_t *c, nixl_status_t st, const char *loaded,
                       const char *reason);
/* Commands. `sender` is the name a proof vouched for (NULL without authentication): a LOAD
 * must carry that agent's metadata and an INVL may name only it. */
void sc_cmd_load(nixl_sc_t *sc, sc_conn_t *c, const sc_cmd_t *cmd, const char *sender);
void sc_cmd_send(nixl_sc_t *sc, sc_conn_t *c);
void sc_cmd_invl(nixl_sc_t *sc, sc_conn_t *c, const sc_cmd_t *cmd, const char *sender);

/* ---- sc_auth.c ---- */
/* A whole frame for `verb`: plain, or in an envelope when a secret is set. NULL: no memory. */
uint8_t *sc_frame_make(nixl_sc_t *sc, const char *verb, const void *payload, size_t len,
                       size_t *out_len);
/* A LOAD, SEND or INVL without a proof reached an agent that requires one. */
void sc_auth_refuse_plain(nixl_sc_t *sc, sc_conn_t *c, const sc_cmd_t *cmd);
/* An AUTH command: verified, then run as the command it wraps. */
void sc_auth_cmd(nixl_sc_t *sc, sc_conn_t *c, const sc_cmd_t *cmd);
/* A DENY: the peer refused what we sent. */
void sc_deny_cmd(nixl_sc_t *sc, sc_conn_t *c, const sc_cmd_t *cmd);

#endif
