/* prom_config.c - the Prometheus exporters' variables. */
#include "prom_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "parse.h"

#define DEFAULT_PORT 9090

bool prom_option(const nixl_telemetry_host_t *host, const char *name, char **out)
{
    nixl_status_t st = host->config_string(host, name, out);
    if (st != NIXL_SUCCESS)
        host->fail(host, st, "%s cannot be read", name);
    return st == NIXL_SUCCESS;
}

nixl_status_t prom_config_read(const nixl_telemetry_host_t *host, size_t max_bounds,
                               prom_config_t *out)
{
    char *port_s = NULL, *local_s = NULL, *buckets_s = NULL;
    nixl_status_t st = NIXL_ERR_INVALID_PARAM;
    uint64_t port = DEFAULT_PORT;
    bool local = false;
    char why[256];
    if (!prom_option(host, "NIXL_TELEMETRY_PROMETHEUS_PORT", &port_s) ||
        !prom_option(host, "NIXL_TELEMETRY_PROMETHEUS_LOCAL", &local_s) ||
        !prom_option(host, "NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US", &buckets_s)) {
        st = NIXL_ERR_MISMATCH;
    } else if (port_s && (!nixl_parse_u64(port_s, &port) || port == 0 || port > 65535)) {
        host->fail(host, st, "NIXL_TELEMETRY_PROMETHEUS_PORT=%s is not a TCP port", port_s);
    } else if (local_s && !nixl_parse_bool(local_s, &local)) {
        host->fail(host, st, "NIXL_TELEMETRY_PROMETHEUS_LOCAL=%s is not a boolean", local_s);
    } else if (!prom_bounds_parse(buckets_s, max_bounds, &out->bounds, why, sizeof(why))) {
        host->fail(host, st, "NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US=%s: %s", buckets_s, why);
    } else {
        snprintf(out->addr, sizeof(out->addr), "%s", local ? "127.0.0.1" : "0.0.0.0");
        out->port = (uint16_t)port;
        st = NIXL_SUCCESS;
    }
    free(port_s);
    free(local_s);
    free(buckets_s);
    return st;
}

void prom_hostname(char *out, size_t len)
{
    out[0] = '\0';
    if (gethostname(out, len - 1) != 0)
        snprintf(out, len, "unknown");
    out[len - 1] = '\0';
}
