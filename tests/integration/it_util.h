/*
 * it_util.h - NIXL helpers shared by the integration programs: agents with the SHM backend,
 * metadata over a channel, bounded waits for transfers and notifications, byte patterns, and
 * the generic target role.
 */
#ifndef NIXL_IT_UTIL_H
#define NIXL_IT_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nixl.h"
#include "peer.h"

/* Report a failing status with nixl_last_error(); goto fail (see IT_CHECK). */
#define IT_CHECK_ST(call, want)                                                                \
    do {                                                                                       \
        nixl_status_t st_ = (call);                                                            \
        if (st_ != (want)) {                                                                   \
            it_fail(__FILE__, __LINE__, "%s returned %s, expected %s (last error: %s)", #call, \
                    nixl_status_str(st_), nixl_status_str(want), nixl_last_error());           \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

/* ---- agents ---- */

/* An agent with an SHM engine; async_threshold 0 = synchronous posts. NULL on failure
 * (reported). */
nixl_agent_t *it_agent(const char *name, uint64_t async_threshold);
/* Register one DRAM region. 0 or -1 (reported). */
int it_register(nixl_agent_t *agent, const void *buf, size_t len);
/* Page-aligned, zeroed memory (free with free()); NULL reported. */
void *it_alloc(size_t len);

/* ---- metadata over a channel ---- */

/* Send our full metadata as one message. 0 or -1. */
int it_send_md(it_chan_t *ch, nixl_agent_t *agent);
/* Receive one metadata message and load it; the peer must be called `expect` (if not NULL).
 * 0 or -1 (reported). */
int it_recv_load_md(it_chan_t *ch, nixl_agent_t *agent, const char *expect);

/* ---- transfers ---- */

/* Post (opt may be NULL) and wait until the request leaves IN_PROG, at most timeout_ms.
 * Returns the final status, or NIXL_IN_PROG on timeout (reported). */
nixl_status_t it_post_wait(nixl_agent_t *agent, nixl_xfer_req_t *req, const nixl_opt_args_t *opt,
                           int timeout_ms);
/* Poll the status of a posted request until it leaves IN_PROG (NIXL_IN_PROG on timeout). */
nixl_status_t it_wait_xfer(nixl_agent_t *agent, nixl_xfer_req_t *req, int timeout_ms);
/* opt with a notification (the payload is borrowed). */
void it_notif_opt(nixl_opt_args_t *opt, const void *msg, size_t len);

/* ---- notifications ---- */

typedef struct it_notif {
    char *agent;
    uint8_t *msg; /* NUL-terminated copy; msg_len excludes the NUL */
    size_t len;
    bool used;
} it_notif_t;

typedef struct it_notifs {
    size_t count, cap;
    it_notif_t *items;
} it_notifs_t;

/* Append what arrived. 0 or -1 (get_notifs failed; reported). */
int it_notifs_poll(nixl_agent_t *agent, it_notifs_t *n);
/* Poll until at least `want` notifications are held, at most timeout_ms. 0 or -1 (reported). */
int it_notifs_wait(nixl_agent_t *agent, it_notifs_t *n, size_t want, int timeout_ms);
/* Index of the first unused notification from `agent` with payload msg/len, or -1. */
long it_notifs_find(const it_notifs_t *n, const char *agent, const void *msg, size_t len);
/* Poll until a notification from `agent` with the payload is held; mark it used. 0 or -1
 * (timeout, reported). */
int it_notifs_take(nixl_agent_t *agent, it_notifs_t *n, const char *from, const void *msg,
                   size_t len, int timeout_ms);
void it_notifs_clear(it_notifs_t *n);

/* ---- byte patterns: different seeds differ in every 8-byte word ---- */

uint64_t it_seed(uint64_t a, uint64_t b, uint64_t c);
void it_fill(void *p, size_t len, uint64_t seed);
/* 0 if p holds the pattern, else the offset of the first bad byte + 1. */
size_t it_verify(const void *p, size_t len, uint64_t seed);

/* ---- the generic target (role "target") ----
 *
 * Argument: "<agent name> <buffer bytes>". It creates the agent with an SHM engine, registers
 * one zeroed buffer, sends its metadata and then the buffer address (8 bytes) and serves:
 *   fill <off> <len> <seed>      fill a range with a pattern                 -> ok
 *   verify <off> <len> <seed>    check a range                               -> ok | error
 *   notifs <n> <sender> <msg>    wait for n notifications from <sender> with payload <msg>
 *                                ("-" = empty), then 300 ms more; exactly n may have arrived
 *                                since the last notifs command, all equal    -> ok | error
 *   md                           its full metadata again (one message)
 *   quit                         destroy the agent and exit 0
 */
int it_target_role(it_chan_t *ch, const char *arg);

/* Spawn a generic target, load its metadata into `agent` (may be NULL: then the metadata is
 * received and dropped) and receive its buffer address. 0 or -1 (peer cleaned up). */
int it_target_start(it_peer_t *p, const char *name, size_t size, nixl_agent_t *agent,
                    uint64_t *addr);

#endif
