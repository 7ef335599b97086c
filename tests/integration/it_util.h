/*
 * it_util.h - NIXL helpers shared by the integration programs: agents with the SHM backend,
 * metadata over a channel, bounded waits for transfers and notifications, byte patterns, and
 * the generic target role; then agents of any backend whose metadata goes through the socket
 * side channel, with their target role ("sctarget") and the initiator's side of it.
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
 * one zeroed buffer (IT_TARGET_MEM: malloc, the default; memfd, a memfd "it-target" whose
 * descriptor stays open; memfd-closed, the same closed after mmap; memfd-huge, on hugetlbfs;
 * devshm, a file /dev/shm/it-target-<pid>, removed at quit; the size rounded up to 2 MiB), sends its metadata and then the buffer address (8 bytes) and serves:
 *   fill <off> <len> <seed>      fill a range with a pattern                 -> ok
 *   verify <off> <len> <seed>    check a range                               -> ok | error
 *   notifs <n> <sender> <msg>    wait for n notifications from <sender> with payload <msg>
 *                                ("-" = empty), then 300 ms more; exactly n may have arrived
 *                                since the last notifs command, all equal    -> ok | error
 *   md                           its full metadata again (one message)
 *   staged                       whether it maps an SHM staging ring -> ok | error
 *   quit                         destroy the agent and exit 0
 */
int it_target_role(it_chan_t *ch, const char *arg);

/* Spawn a generic target, load its metadata into `agent` (may be NULL: then the metadata is
 * received and dropped) and receive its buffer address. 0 or -1 (peer cleaned up). */
int it_target_start(it_peer_t *p, const char *name, size_t size, nixl_agent_t *agent,
                    uint64_t *addr);

/* The same with the target role `role` (one that ends in it_target_role). */
int it_target_start_role(it_peer_t *p, const char *role, const char *name, size_t size,
                         nixl_agent_t *agent, uint64_t *addr);
/* Whether this process maps an SHM staging ring (the memfd "nixl-shm-stage"): proof that a
 * transfer went through one. The generic target answers "staged" with it. */
bool it_maps_staging_ring(void);
/* How many staging rings this process maps (one mapping each). */
size_t it_staging_rings(void);
/* Whether a line of /proc/self/maps contains `what` ("memfd:it-target": the generic target's
 * buffer is mapped here, so SHM copies through a mapping of its file). */
bool it_maps(const char *what);

/* ---- any backend, metadata over the side channel (it_ucx, it_netns) ---- */

/* The backend under test: IT_BACKEND, default "UCX". */
const char *it_backend(void);
/* Whether an engine of `backend` can be created here: 0 yes; 77 its plugin is missing (said on
 * stderr: the program should skip); 1 it exists but fails (reported). */
int it_backend_probe(const char *backend);
/* An agent with one engine of `backend` (default parameters; for UCX, IT_UCX_ERR_MODE, when
 * set, gives ucx_error_handling_mode). With `listen`, the agent runs a side-channel listener
 * on a free port, written to *port. NULL on failure (reported). */
nixl_agent_t *it_agent_be(const char *name, const char *backend, bool listen, int *port);
/* Fetch the metadata of `name` from the listener at ip:port and wait until it is loaded. 0 or
 * -1 (the fetch status and reason reported). */
int it_fetch_md(nixl_agent_t *agent, const char *name, const char *ip, int port, int timeout_ms);
/* Poll check_remote_md(name, descs) until it succeeds (metadata pushed by a peer arrives
 * asynchronously). 0 or -1 (the last status reported). */
int it_wait_md(nixl_agent_t *agent, const char *name, const nixl_desc_t *descs, size_t count,
               int timeout_ms);

/* ---- slots: `count` blocks of `size` bytes, `stride` apart ----
 * Slot i holds the pattern it_seed(seed, i, 0), or with `reverse` that of slot count-1-i (the
 * initiator's local side when local descriptor i goes to remote slot count-1-i). */
void it_slots_fill(void *base, size_t count, size_t size, size_t stride, uint64_t seed,
                   bool reverse);
/* 0, or -1 with the first bad slot and byte written to `why`. */
int it_slots_verify(const void *base, size_t count, size_t size, size_t stride, uint64_t seed,
                    bool reverse, char *why, size_t why_len);

/* ---- the side-channel target (role "sctarget") ----
 *
 * Argument: "<agent name> <area bytes> <regions> <region bytes> <region stride>". It creates
 * the agent with an engine of it_backend() and a listener on a free port, allocates a zeroed
 * area, registers `regions` regions of `region bytes` every `region stride` bytes from its
 * start, and sends "<port> <area address>". Metadata travels only through the side channel.
 * Commands (slots as in it_slots_*, from the start of the area):
 *   fill <count> <size> <stride> <seed>      fill slots                          -> ok
 *   verify <count> <size> <stride> <seed>    check slots                         -> ok | error
 *   await <sender> <msg> <count> <size> <stride> <seed>
 *                                            answer "armed", wait for the notification <msg>
 *                                            from <sender>, and check the slots the moment
 *                                            it is seen (count 0: no check)      -> ok | error
 *   dump <n>                                 wait until n notifications not taken by an
 *                                            await are held, 300 ms more, then answer
 *                                            "<count>\n" + "<sender> <msg>\n" per
 *                                            notification, and forget them
 *   fetch <name> <ip> <port>                 fetch that agent's metadata         -> ok | error
 *   check <name> <addr> <len>                wait until check_remote_md accepts that range
 *                                            (len 0: just loaded)                -> ok | error
 *   quit                                     destroy the agent and exit 0
 */
int it_sc_target_role(it_chan_t *ch, const char *arg);

/* Spawn a side-channel target as `role` (a role that ends in it_sc_target_role) with `arg`,
 * and receive its port and area address. 0 or -1 (peer cleaned up). */
int it_sc_target_start(it_peer_t *p, const char *role, const char *arg, int *port,
                       uint64_t *base);

/* ---- the initiator's side of a side-channel target ---- */

/* A request moving local descriptor i (count x size, contiguous from `local`) to or from slot
 * count-1-i of the peer's slots (stride apart from rbase; the reversal keeps descriptors from
 * merging), with notification `notif` (NULL: none). Returns create_xfer_req's status. */
nixl_status_t it_req_slots(nixl_agent_t *agent, nixl_xfer_op_t op, const uint8_t *local,
                           uint64_t rbase, size_t count, size_t size, size_t stride,
                           const char *peer, const char *notif, nixl_xfer_req_t **out);
/* Post with notification `notif` (replacing the stored one) and wait for the end, at most
 * IT_TIMEOUT_MS (see it_post_wait). */
nixl_status_t it_post_notif(nixl_agent_t *agent, nixl_xfer_req_t *req, const char *notif);
/* Send our full metadata to the listener at ip:port. 0 or -1 (reported). */
int it_sc_send_md(nixl_agent_t *agent, const char *ip, int port);
/* Fetch the metadata of target `name` (listening at ip:port, its region `size` bytes at
 * `base`), check the region, send ours back and wait (over `ch`, with the target's "check")
 * until the target has it, covering local..+local_len. 0 or -1 (reported). */
int it_sc_connect(nixl_agent_t *agent, it_chan_t *ch, const char *name, const char *ip, int port,
                  uint64_t base, size_t size, const void *local, size_t local_len);
/* `posts` rounds of: a WRITE of new bytes, checked by the target the moment it sees the
 * WRITE's notification; a READ after the target filled its slots with new bytes, checked
 * here, whose notification the target must see. One WRITE and one READ request (it_req_slots)
 * over count x size against the target's slots `stride` apart, each reposted with a new
 * notification "W-<tag>-<k>" / "R-<tag>-<k>". 0 or -1 (reported). */
int it_sc_write_read(nixl_agent_t *agent, it_chan_t *ch, const char *peer, uint8_t *local,
                     uint64_t rbase, size_t count, size_t size, size_t stride, const char *tag,
                     unsigned posts);
/* The target's "dump <want>": the answer (free with free()), its count in *count. NULL on
 * failure (reported). */
char *it_sc_dump(it_chan_t *ch, size_t want, size_t *count);
/* The target must hold no notification that no await took. 0 or -1 (reported). */
int it_sc_expect_no_notifs(it_chan_t *ch);

#endif
