/*
 * host.c - the services the core offers each engine (nixl_host_t of nixl_plugin.h).
 *
 * Every engine gets its own host, embedded in its nixl_backend_t, so a plugin's call tells the
 * core which backend speaks: its messages get the plugin's name in front here, once, and no
 * plugin writes its own name into its messages.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include "agent_impl.h"
#include "error.h"
#include "gpu.h"
#include "log.h"

/* Room for a plugin's message; the last error holds 1 KiB in all. */
#define HOST_MSG_MAX 1024

static nixl_backend_t *backend_of(const nixl_host_t *host)
{
    return (nixl_backend_t *)(void *)((char *)(uintptr_t)host - offsetof(nixl_backend_t, host));
}

static void host_notif(const nixl_host_t *host, const char *agent, size_t agent_len,
                       const void *msg, size_t len)
{
    notif_host_push(backend_of(host), agent, agent_len, msg, len);
}

static bool host_log_enabled(const nixl_host_t *host, nixl_log_level_t level)
{
    (void)host;
    return nixl_log_enabled(level);
}

__attribute__((format(printf, 3, 4))) static void host_log(const nixl_host_t *host,
                                                          nixl_log_level_t level,
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nixl_log_vwrite_from(level, backend_of(host)->name, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 3, 4))) static void host_fail(const nixl_host_t *host,
                                                           nixl_status_t status, const char *fmt,
                                                           ...)
{
    /* Formatted apart first: a plugin may pass nixl_last_error() text as an argument. */
    char text[HOST_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    nixl_err_set("%s: %s", backend_of(host)->name, text);
    NIXL_LOG(NIXL_LOG_DEBUG, "%s: failing with %s: %s", backend_of(host)->name,
             nixl_status_str(status), text);
}

void backend_host_init(nixl_backend_t *b)
{
    b->host = (nixl_host_t){
        .struct_size = sizeof(nixl_host_t),
        .notif = host_notif,
        .log = host_log,
        .log_enabled = host_log_enabled,
        .fail = host_fail,
        .gpu = nixl_gpu_ops(),
    };
}
