/*
 * nixl_telemetry.h - the agent telemetry events and the shared-memory ring the BUFFER exporter
 * writes (reference NIXL-SEMANTICS 8.2, 8.3), for readers of that ring (tools/nixl-telemetry,
 * examples/python/telemetry_reader.py, your own dashboards) and for exporter plugins.
 *
 * Plain C, no functions: a reader needs only this header and mmap(2). docs/telemetry.md is the
 * user page (what is measured, the variables, how to read and scrape it).
 */
#ifndef NIXL_TELEMETRY_H
#define NIXL_TELEMETRY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * The event catalogue: X(enum suffix, id, name, unit). Ids and names are the reference's; the
 * unit is "bytes", "us" (microseconds) or "count". Errors 8..19 are, in order, the error
 * statuses NIXL_ERR_NOT_POSTED (-1) .. NIXL_ERR_NO_TELEMETRY (-12): id = 7 - status.
 */
#define NIXL_TELEMETRY_EVENT_MAP(X)                                                           \
    X(TX_BYTES, 0, "agent_tx_bytes", "bytes")                                                 \
    X(RX_BYTES, 1, "agent_rx_bytes", "bytes")                                                 \
    X(TX_REQUESTS_NUM, 2, "agent_tx_requests_num", "count")                                   \
    X(RX_REQUESTS_NUM, 3, "agent_rx_requests_num", "count")                                   \
    X(MEMORY_REGISTERED, 4, "agent_memory_registered", "bytes")                               \
    X(MEMORY_DEREGISTERED, 5, "agent_memory_deregistered", "bytes")                           \
    X(XFER_TIME, 6, "agent_xfer_time", "us")                                                  \
    X(XFER_POST_TIME, 7, "agent_xfer_post_time", "us")                                        \
    X(ERR_NOT_POSTED, 8, "agent_err_not_posted", "count")                                     \
    X(ERR_INVALID_PARAM, 9, "agent_err_invalid_param", "count")                               \
    X(ERR_BACKEND, 10, "agent_err_backend", "count")                                          \
    X(ERR_NOT_FOUND, 11, "agent_err_not_found", "count")                                      \
    X(ERR_MISMATCH, 12, "agent_err_mismatch", "count")                                        \
    X(ERR_NOT_ALLOWED, 13, "agent_err_not_allowed", "count")                                  \
    X(ERR_REPOST_ACTIVE, 14, "agent_err_repost_active", "count")                              \
    X(ERR_UNKNOWN, 15, "agent_err_unknown", "count")                                          \
    X(ERR_NOT_SUPPORTED, 16, "agent_err_not_supported", "count")                              \
    X(ERR_REMOTE_DISCONNECT, 17, "agent_err_remote_disconnect", "count")                      \
    X(ERR_CANCELED, 18, "agent_err_canceled", "count")                                        \
    X(ERR_NO_TELEMETRY, 19, "agent_err_no_telemetry", "count")                                \
    X(TELEMETRY_EVENTS_DROPPED, 20, "agent_telemetry_events_dropped", "count")

typedef enum nixl_telemetry_event_id {
#define NIXL_TELEMETRY_ENUM_(s, id, name, unit) NIXL_TELEM_##s = (id),
    NIXL_TELEMETRY_EVENT_MAP(NIXL_TELEMETRY_ENUM_)
#undef NIXL_TELEMETRY_ENUM_
    NIXL_TELEM_EVENT_COUNT
} nixl_telemetry_event_id_t;

/* The event of a status < 0 (NIXL_ERR_*). */
#define NIXL_TELEM_ERROR_EVENT(status) ((uint32_t)(7 - (int)(status)))

/* ---- the BUFFER exporter's ring: file <NIXL_TELEMETRY_DIR>/<agent name> ---- */

/* Readers must find exactly this version in the header (the reference's TELEMETRY_VERSION). */
#define NIXL_TELEMETRY_RING_VERSION 4

/*
 * The file: this 40-byte header, then `capacity` events. Little-endian, naturally aligned;
 * the positions are slot indices in [0, capacity), not running counts. One writer (the agent's
 * exporter thread) and one reader: the writer stores an event in slot write_pos and then
 * publishes write_pos = (write_pos + 1) & mask (release); the reader takes slot read_pos while
 * read_pos != write_pos and then publishes read_pos = (read_pos + 1) & mask. The ring is full
 * when ((write_pos + 1) & mask) == read_pos, so capacity - 1 slots are usable.
 */
typedef struct nixl_telemetry_ring_header {
    uint64_t write_pos;        /* offset 0, atomic */
    uint64_t read_pos;         /* offset 8, atomic; advanced by the reader */
    int32_t version;           /* offset 16, atomic; NIXL_TELEMETRY_RING_VERSION once ready */
    int32_t expected_version;  /* offset 20 */
    uint64_t capacity;         /* offset 24, a power of two */
    uint64_t mask;             /* offset 32, capacity - 1 */
} nixl_telemetry_ring_header_t;

/* One event: 16 bytes, the id, 4 bytes of padding (zero), the value in its unit. */
typedef struct nixl_telemetry_event {
    uint32_t id;     /* nixl_telemetry_event_id_t */
    uint32_t pad;
    uint64_t value;
} nixl_telemetry_event_t;

#define NIXL_TELEMETRY_RING_HEADER_SIZE 40u
#define NIXL_TELEMETRY_RING_EVENT_SIZE 16u

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(nixl_telemetry_ring_header_t) == NIXL_TELEMETRY_RING_HEADER_SIZE,
               "ring header layout");
_Static_assert(sizeof(nixl_telemetry_event_t) == NIXL_TELEMETRY_RING_EVENT_SIZE,
               "ring event layout");
#endif

#ifdef __cplusplus
}
#endif

#endif
