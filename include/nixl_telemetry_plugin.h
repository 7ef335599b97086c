/*
 * nixl_telemetry_plugin.h - the telemetry exporter plugin ABI: what a plugin that receives an
 * agent's telemetry events (reference NIXL-SEMANTICS 8) implements. docs/plugin-guide.md
 * ("Telemetry exporters") walks through one.
 *
 * The same rules as the backend ABI (nixl_plugin.h): a plugin is the file
 * libtelemetry_exporter_<name>.so in NIXL_PLUGIN_DIR (the reference's file name), exporting one
 * function of our own name, NIXL_TELEMETRY_EXPORTER_ENTRY_SYMBOL, that returns a const table;
 * every table crossing the boundary starts with its size, and a plugin states the oldest ABI it
 * needs. The built-in BUFFER exporter fills the same table.
 *
 * Threads: create and destroy run in the thread that creates or destroys the agent;
 * export_events runs in the agent's exporter thread, every NIXL_TELEMETRY_RUN_INTERVAL ms with
 * the events recorded since. The calls of one exporter never overlap; exporters of several
 * agents of a process run in their own threads at the same time, so state a plugin shares
 * between agents (one HTTP server per process) needs its own lock.
 */
#ifndef NIXL_TELEMETRY_PLUGIN_H
#define NIXL_TELEMETRY_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "nixl.h"
#include "nixl_plugin.h"
#include "nixl_telemetry.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NIXL_TELEMETRY_EXPORTER_ABI_VERSION 1u
#define NIXL_TELEMETRY_EXPORTER_ENTRY_SYMBOL "nixl_telemetry_exporter_entry"
/* The file name of exporter `name`: "libtelemetry_exporter_" name ".so". */
#define NIXL_TELEMETRY_EXPORTER_PREFIX "libtelemetry_exporter_"

typedef struct nixl_telemetry_host nixl_telemetry_host_t;

/** What the library offers an exporter (valid from create to destroy). */
struct nixl_telemetry_host {
    size_t struct_size;
    /**
     * The option `name` (e.g. "NIXL_TELEMETRY_PROMETHEUS_PORT") from the environment, else the
     * configuration file (reference section 9). *out: NULL when absent, else a string the
     * caller frees with free(). NIXL_ERR_MISMATCH (reason set) when the file key is not a
     * string.
     */
    nixl_status_t (*config_string)(const nixl_telemetry_host_t *host, const char *name,
                                   char **out);
    /** Log through the library's logger, prefixed with the exporter's name. */
    void (*log)(const nixl_telemetry_host_t *host, nixl_log_level_t level, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
    /** The reason of the failure being returned by create (nixl_last_error() of the user's
     * nixl_agent_create). */
    void (*fail)(const nixl_telemetry_host_t *host, nixl_status_t status, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;
    const void *priv; /* the library's */
};

/** What create gets. */
typedef struct nixl_telemetry_exporter_init {
    size_t struct_size;
    const char *agent_name;            /* unique among the agents of the process */
    uint64_t capacity;                 /* NIXL_TELEMETRY_BUFFER_SIZE */
    const nixl_telemetry_host_t *host;
} nixl_telemetry_exporter_init_t;

/** An exporter. */
typedef struct nixl_telemetry_exporter_ops {
    size_t struct_size;
    uint32_t abi_version; /* NIXL_TELEMETRY_EXPORTER_ABI_VERSION the plugin was built with */
    uint32_t min_abi;     /* the oldest ABI whose library it works with */
    const char *name;     /* as in NIXL_TELEMETRY_EXPORTER */
    const char *version;  /* free text */
    /**
     * An exporter for one agent. A failure (its reason given with host->fail) makes
     * nixl_agent_create fail with that status.
     */
    nixl_status_t (*create)(const nixl_telemetry_exporter_init_t *init, void **out);
    /** The events recorded since the last call, oldest first (an all-or-nothing batch of a
     * completion stays together). Called every NIXL_TELEMETRY_RUN_INTERVAL ms, with count 0
     * when nothing was recorded: a tick for housekeeping. Must not block for long: it delays
     * the next flush. */
    void (*export_events)(void *exporter, const nixl_telemetry_event_t *events, size_t count);
    /** After a last export_events with what was still staged. */
    void (*destroy)(void *exporter);
} nixl_telemetry_exporter_ops_t;

typedef const nixl_telemetry_exporter_ops_t *(*nixl_telemetry_exporter_entry_t)(void);

#ifdef __cplusplus
}
#endif

#endif
