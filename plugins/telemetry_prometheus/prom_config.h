/* prom_config.h - the variables both Prometheus exporters read (reference 8.4). */
#ifndef NIXL_PROM_CONFIG_H
#define NIXL_PROM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "nixl_telemetry_plugin.h"
#include "prom_metrics.h"

typedef struct prom_config {
    char addr[16];   /* "127.0.0.1" (NIXL_TELEMETRY_PROMETHEUS_LOCAL) or "0.0.0.0" */
    uint16_t port;   /* NIXL_TELEMETRY_PROMETHEUS_PORT, default 9090 */
    prom_bounds_t bounds; /* NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US, at most `max_bounds` */
} prom_config_t;

/* NIXL_SUCCESS, or the status of a bad value with the reason given through the host. */
nixl_status_t prom_config_read(const nixl_telemetry_host_t *host, size_t max_bounds,
                               prom_config_t *out);

/* An option through the host (NULL when absent; free() it); false with the reason given. */
bool prom_option(const nixl_telemetry_host_t *host, const char *name, char **out);

/* The host name for the `hostname` label. */
void prom_hostname(char *out, size_t len);

#endif
