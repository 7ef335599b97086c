/*
 * prometheus.c - the `prometheus` telemetry exporter (reference NIXL-SEMANTICS 8.4): one HTTP
 * endpoint per process, GET /metrics, shared by all the agents of the process, each agent's
 * series labelled hostname and agent_name.
 *
 * Variables: NIXL_TELEMETRY_PROMETHEUS_PORT (default 9090), NIXL_TELEMETRY_PROMETHEUS_LOCAL
 * (true: 127.0.0.1, else 0.0.0.0), NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US. A duplicate agent
 * name or a bad bucket list fails the agent's creation; a port that cannot be bound is a
 * warning, and that agent runs without Prometheus telemetry.
 *
 * Locks: life_lock serialises create and destroy (starting and stopping the server);
 * data_lock guards the agents' values against the server's thread, which takes it for each
 * scrape. A server is stopped with data_lock released, since stopping waits for a scrape.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nixl_telemetry_plugin.h"
#include "parse.h"
#include "prom_http.h"
#include "prom_metrics.h"

#define DEFAULT_PORT 9090

typedef struct prom_agent {
    struct prom_agent *next;
    const nixl_telemetry_host_t *host;
    bool served; /* in the list (false: the port could not be bound) */
    prom_labels_t labels;
    prom_bounds_t bounds;
    prom_values_t values;
    char name[];
} prom_agent_t;

static pthread_mutex_t life_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t data_lock = PTHREAD_MUTEX_INITIALIZER;
static prom_agent_t *agents; /* served agents, data_lock */
static size_t num_agents;
static prom_http_t *server; /* life_lock */
static char server_addr[16];
static uint16_t server_port;

static void render(nixl_buf_t *out, void *ctx)
{
    (void)ctx;
    pthread_mutex_lock(&data_lock);
    size_t n = num_agents;
    const prom_labels_t **l = calloc(n ? n : 1, sizeof(*l));
    const prom_values_t **v = calloc(n ? n : 1, sizeof(*v));
    const prom_bounds_t **b = calloc(n ? n : 1, sizeof(*b));
    if (l && v && b) {
        size_t i = 0;
        for (prom_agent_t *a = agents; a; a = a->next, i++) {
            l[i] = &a->labels;
            v[i] = &a->values;
            b[i] = &a->bounds;
        }
        prom_render(out, l, v, b, n);
    } else {
        out->oom = true;
    }
    pthread_mutex_unlock(&data_lock);
    free(l);
    free(v);
    free(b);
}

/* An option through the host; false (reason given) when it cannot be read. */
static bool option(const nixl_telemetry_host_t *host, const char *name, char **out)
{
    nixl_status_t st = host->config_string(host, name, out);
    if (st != NIXL_SUCCESS)
        host->fail(host, st, "%s cannot be read", name);
    return st == NIXL_SUCCESS;
}

static nixl_status_t prom_create(const nixl_telemetry_exporter_init_t *init, void **out)
{
    const nixl_telemetry_host_t *host = init->host;
    char *port_s = NULL, *local_s = NULL, *buckets_s = NULL;
    nixl_status_t st = NIXL_ERR_INVALID_PARAM;
    uint64_t port = DEFAULT_PORT;
    bool local = false;
    prom_agent_t *a = NULL;
    if (!option(host, "NIXL_TELEMETRY_PROMETHEUS_PORT", &port_s) ||
        !option(host, "NIXL_TELEMETRY_PROMETHEUS_LOCAL", &local_s) ||
        !option(host, "NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US", &buckets_s)) {
        st = NIXL_ERR_MISMATCH;
        goto out;
    }
    if (port_s && (!nixl_parse_u64(port_s, &port) || port == 0 || port > 65535)) {
        host->fail(host, st, "NIXL_TELEMETRY_PROMETHEUS_PORT=%s is not a TCP port", port_s);
        goto out;
    }
    if (local_s && !nixl_parse_bool(local_s, &local)) {
        host->fail(host, st, "NIXL_TELEMETRY_PROMETHEUS_LOCAL=%s is not a boolean", local_s);
        goto out;
    }
    size_t len = strlen(init->agent_name);
    a = calloc(1, sizeof(*a) + len + 1);
    if (!a) {
        st = NIXL_ERR_UNKNOWN;
        host->fail(host, st, "out of memory");
        goto out;
    }
    memcpy(a->name, init->agent_name, len + 1);
    a->host = host;
    char why[256];
    if (!prom_bounds_parse(buckets_s, PROM_MAX_BOUNDS, &a->bounds, why, sizeof(why))) {
        host->fail(host, st, "NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US=%s: %s", buckets_s, why);
        goto out;
    }
    char hostname[256] = "";
    gethostname(hostname, sizeof(hostname) - 1);
    prom_labels_make(&a->labels, hostname, a->name, NULL, NULL, 0);

    const char *addr = local ? "127.0.0.1" : "0.0.0.0";
    pthread_mutex_lock(&life_lock);
    pthread_mutex_lock(&data_lock);
    for (prom_agent_t *o = agents; o; o = o->next)
        if (strcmp(o->name, a->name) == 0) {
            pthread_mutex_unlock(&data_lock);
            pthread_mutex_unlock(&life_lock);
            host->fail(host, st, "agent '%s' is already exported by this process: agent names "
                       "must be unique per process", a->name);
            goto out;
        }
    pthread_mutex_unlock(&data_lock);
    if (!server) {
        int e = prom_http_start(addr, (uint16_t)port, render, NULL, &server, why, sizeof(why));
        if (e == 0) {
            snprintf(server_addr, sizeof(server_addr), "%s", addr);
            server_port = (uint16_t)port;
            host->log(host, NIXL_LOG_INFO, "serving http://%s:%u/metrics", addr,
                      (unsigned)port);
        } else {
            host->log(host, NIXL_LOG_WARN, "%s: agent '%s' runs without Prometheus telemetry",
                      why, a->name);
        }
    } else if (server_port != port || strcmp(server_addr, addr) != 0) {
        host->log(host, NIXL_LOG_WARN, "agent '%s' asks for %s:%u; this process already serves "
                  "%s:%u, which exports it", a->name, addr, (unsigned)port, server_addr,
                  (unsigned)server_port);
    }
    if (server) {
        pthread_mutex_lock(&data_lock);
        a->next = agents;
        agents = a;
        num_agents++;
        a->served = true;
        pthread_mutex_unlock(&data_lock);
    }
    pthread_mutex_unlock(&life_lock);
    *out = a;
    a = NULL;
    st = NIXL_SUCCESS;
out:
    free(a);
    free(port_s);
    free(local_s);
    free(buckets_s);
    return st;
}

static void prom_export(void *exp, const nixl_telemetry_event_t *ev, size_t n)
{
    prom_agent_t *a = exp;
    if (!a->served)
        return;
    pthread_mutex_lock(&data_lock);
    prom_values_add(&a->values, &a->bounds, ev, n);
    pthread_mutex_unlock(&data_lock);
}

static void prom_destroy(void *exp)
{
    prom_agent_t *a = exp;
    if (!a)
        return;
    pthread_mutex_lock(&life_lock);
    prom_http_t *stop = NULL;
    if (a->served) {
        pthread_mutex_lock(&data_lock);
        for (prom_agent_t **p = &agents; *p; p = &(*p)->next)
            if (*p == a) {
                *p = a->next;
                num_agents--;
                break;
            }
        if (!agents) {
            stop = server; /* the last agent: the endpoint goes */
            server = NULL;
        }
        pthread_mutex_unlock(&data_lock);
    }
    prom_http_stop(stop);
    pthread_mutex_unlock(&life_lock);
    free(a);
}

static const nixl_telemetry_exporter_ops_t prom_ops = {
    .struct_size = sizeof(nixl_telemetry_exporter_ops_t),
    .abi_version = NIXL_TELEMETRY_EXPORTER_ABI_VERSION,
    .min_abi = 1,
    .name = "prometheus",
    .version = "1.0",
    .create = prom_create,
    .export_events = prom_export,
    .destroy = prom_destroy,
};

__attribute__((visibility("default"))) const nixl_telemetry_exporter_ops_t *
nixl_telemetry_exporter_entry(void);
const nixl_telemetry_exporter_ops_t *nixl_telemetry_exporter_entry(void)
{
    return &prom_ops;
}
