/*
 * telem.h - agent telemetry (reference NIXL-SEMANTICS 8.1-8.3): which events an agent records,
 * the staging queue they wait in, and the exporter thread that hands them, every
 * NIXL_TELEMETRY_RUN_INTERVAL ms, to the exporter (BUFFER: the shared-memory ring of
 * nixl_telemetry.h; NOP: none).
 *
 * The data path (nixl_telem_record*) takes no lock and allocates nothing: a bit test, then one
 * CAS on the staging queue (telem_queue.h). A full queue drops the events and counts them; the
 * next flush reports the count as agent_telemetry_events_dropped.
 */
#ifndef NIXL_TELEMETRY_TELEM_H
#define NIXL_TELEMETRY_TELEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nixl.h"
#include "nixl_telemetry.h"
#include "nixl_telemetry_plugin.h"
#include "telem_clock.h"
#include "telem_queue.h"

/* Exporters fill the table of include/nixl_telemetry_plugin.h: the built-in BUFFER, and
 * plugins found by nixl_telem_exporter_find (telem_plugin.c). */
extern const nixl_telemetry_exporter_ops_t nixl_telem_buffer_exporter;

/* The exporter `name`: BUFFER, or libtelemetry_exporter_<name>.so in `plugin_dir`, loaded
 * once per process. NOT_FOUND (no such file) / NOT_SUPPORTED (not one of our exporters), with
 * the reason. */
nixl_status_t nixl_telem_exporter_find(const char *name, const char *plugin_dir,
                                       const nixl_telemetry_exporter_ops_t **out);
/* The services the library offers an exporter; `exporter_name` must outlive it. */
void nixl_telem_host_init(nixl_telemetry_host_t *host, const char *exporter_name);

/* The settings of section 8.1, read from the environment or the configuration file. */
typedef struct nixl_telem_settings {
    bool enabled;             /* NIXL_TELEMETRY_ENABLE, else the agent's capture_telemetry */
    char exporter[64];        /* "" (NOP: collect only), "BUFFER", ... */
    uint64_t buffer_size;     /* NIXL_TELEMETRY_BUFFER_SIZE, default 4096 */
    uint64_t run_interval_ms; /* NIXL_TELEMETRY_RUN_INTERVAL, default 100 */
    uint32_t enabled_mask;    /* bit per event id, from NIXL_TELEMETRY_ENABLED_METRICS */
} nixl_telem_settings_t;

/* Read and check the settings. `capture` is the agent configuration's flag; `agent` names the
 * agent in warnings. INVALID_PARAM / MISMATCH with a reason for a bad value. */
nixl_status_t nixl_telem_settings_read(bool capture, const char *agent,
                                       nixl_telem_settings_t *out);

/* The allowlist NIXL_TELEMETRY_ENABLED_METRICS (comma-separated globs over event names; NULL
 * or empty: all) as a bit mask over event ids. Tokens that match nothing are warned about. */
uint32_t nixl_telem_metrics_mask(const char *list, const char *agent);

typedef struct nixl_telem nixl_telem_t;

/* Start the exporter and its thread, when the settings name one (NULL in *out otherwise:
 * collect-only, nothing recorded); plugins are looked for in `plugin_dir`. Failure: the
 * exporter's status and reason. */
nixl_status_t nixl_telem_create(const char *agent, const nixl_telem_settings_t *s,
                                const char *plugin_dir, nixl_telem_t **out);
/* Stop the thread after a last flush, and close the exporter. NULL is fine. */
void nixl_telem_destroy(nixl_telem_t *t);

struct nixl_telem {
    telem_queue_t queue;
    uint32_t enabled_mask;
    /* the rest is the exporter thread's (telem.c) */
};

/* Record one event (any thread; no lock, no allocation). */
static inline void nixl_telem_record(nixl_telem_t *t, uint32_t id, uint64_t value)
{
    if (!t || !(t->enabled_mask & (1u << id)))
        return;
    nixl_telemetry_event_t ev = {.id = id, .pad = 0, .value = value};
    telem_queue_push(&t->queue, &ev, 1);
}

/* Record the events of one completed transfer (post time, transfer time, bytes, request
 * count: reference 8.2) as one all-or-nothing batch. */
void nixl_telem_record_completion(nixl_telem_t *t, bool write, uint64_t post_us,
                                  uint64_t xfer_us, uint64_t bytes);

/* Events waiting, dropped so far: tests. Flush now (tests; the exporter thread does this). */
void nixl_telem_flush(nixl_telem_t *t);

#endif
