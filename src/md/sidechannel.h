/*
 * sidechannel.h - the metadata side channel: a TCP listener and client speaking the reference
 * protocol (sc_proto.h), run by one worker thread per agent.
 *
 * All network I/O happens on the worker thread; callers only queue work, so no call blocks on
 * a peer. The worker sleeps in poll() on its sockets and a wake-up eventfd; every socket is
 * non-blocking, so a slow or silent peer holds nothing but its own connection. Outbound
 * connections are cached per (host, port) and read like inbound ones, which is how a fetch
 * receives its reply without a listener of its own.
 *
 * The side channel does not know the agent: it calls hooks (on the worker thread) to load,
 * produce and invalidate metadata, and to report the outcome of fetches.
 */
#ifndef NIXL_MD_SIDECHANNEL_H
#define NIXL_MD_SIDECHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nixl.h"

typedef struct nixl_sc nixl_sc_t;

typedef struct nixl_sc_hooks {
    void *ctx;
    /* The full local metadata, malloc'ed (the reply to SEND). */
    nixl_status_t (*get_md)(void *ctx, uint8_t **blob, size_t *len);
    /* Load a peer's metadata; on success *name (malloc'ed) is the peer's name. */
    nixl_status_t (*load_md)(void *ctx, const uint8_t *blob, size_t len, char **name);
    /* Forget a peer (INVL). */
    void (*invalidate)(void *ctx, const char *name);
    /* A fetch of `name` ended: NIXL_SUCCESS, or an error and its reason. */
    void (*fetch_done)(void *ctx, const char *name, nixl_status_t status, const char *reason);
} nixl_sc_hooks_t;

/*
 * What the listener defends itself with (docs/security.md): every inbound connection costs a
 * slot, a file descriptor and memory, so each is bounded in time (idle timeout, minimum rate
 * of a message in progress), in memory (bytes queued for a peer that does not read), and in
 * number (max_conns, where the least recently active connection makes room for a newcomer).
 */
typedef struct nixl_sc_config {
    bool listen;                 /* accept connections */
    int port;                    /* listen port; 0 = any free port */
    const char *bind_addr;       /* listen address; NULL or "" = all (the reference) */
    uint64_t max_frame;          /* larger frames are refused unread */
    uint32_t connect_timeout_ms; /* outbound connect */
    uint32_t stall_timeout_ms;   /* a peer silent mid-frame (or not draining ours) is dropped */
    uint32_t reply_timeout_ms;   /* a fetch without a reply fails */
    uint32_t max_conns;          /* inbound connections served at once */
    uint32_t idle_timeout_ms;    /* an inbound connection with nothing to do this long closes */
    uint64_t min_rate;           /* bytes/s a message must average after stall_timeout_ms */
    uint64_t max_queued;         /* bytes of replies queued for one peer before it is dropped */
    uint32_t max_peers;          /* peers the side channel may add (hooks->load_md enforces) */
    const char *agent_name;      /* for log lines, and the sender of authenticated commands */
    struct nixl_auth *auth;      /* borrowed; non-NULL: every command must carry a proof */
} nixl_sc_config_t;

/*
 * Defaults, overridden by NIXL_SIDECHANNEL_* options (docs/metadata.md). cfg->bind_addr, when
 * set by the caller, is kept; otherwise NIXL_SIDECHANNEL_BIND is read into *bind_owned
 * (malloc'ed, freed by the caller after nixl_sc_create, which copies it).
 */
nixl_status_t nixl_sc_config_load(nixl_sc_config_t *cfg, char **bind_owned);

/*
 * Start the worker (and bind the listener when cfg->listen). Binding happens here, on the
 * caller's thread, so that a port in use is an error of this call.
 */
nixl_status_t nixl_sc_create(const nixl_sc_config_t *cfg, const nixl_sc_hooks_t *hooks,
                             nixl_sc_t **out);
/* The bound port, or -1 when not listening. */
int nixl_sc_port(const nixl_sc_t *sc);

/*
 * Queue a command for host:port (an IPv4 or IPv6 literal, optionally in brackets, or a host
 * name). INVALID_PARAM for a bad address; failures after queueing are logged (and, for
 * fetches, reported through hooks->fetch_done).
 */
nixl_status_t nixl_sc_send(nixl_sc_t *sc, const char *host, int port, const char *verb,
                           const void *payload, size_t len);
/* Queue SEND to host:port; the LOAD that answers it is the fetch of `name`. */
nixl_status_t nixl_sc_fetch(nixl_sc_t *sc, const char *host, int port, const char *name);

/* Stop: queued messages get a bounded time to leave, then everything is closed. */
void nixl_sc_destroy(nixl_sc_t *sc);

#endif
