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
#include "prom_config.h"
#include "prom_http.h"
#include "prom_metrics.h"

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

static nixl_status_t prom_create(const nixl_telemetry_exporter_init_t *init, void **out)
{
    const nixl_telemetry_host_t *host = init->host;
    prom_config_t cfg;
    nixl_status_t st = prom_config_read(host, PROM_MAX_BOUNDS, &cfg);
    if (st != NIXL_SUCCESS)
        return st;
    size_t len = strlen(init->agent_name);
    prom_agent_t *a = calloc(1, sizeof(*a) + len + 1);
    if (!a) {
        host->fail(host, NIXL_ERR_UNKNOWN, "out of memory");
        return NIXL_ERR_UNKNOWN;
    }
    memcpy(a->name, init->agent_name, len + 1);
    a->host = host;
    a->bounds = cfg.bounds;
    char hostname[256];
    prom_hostname(hostname, sizeof(hostname));
    prom_labels_make(&a->labels, hostname, a->name, NULL, NULL, 0);

    pthread_mutex_lock(&life_lock);
    pthread_mutex_lock(&data_lock);
    for (prom_agent_t *o = agents; o; o = o->next)
        if (strcmp(o->name, a->name) == 0) {
            pthread_mutex_unlock(&data_lock);
            pthread_mutex_unlock(&life_lock);
            host->fail(host, NIXL_ERR_INVALID_PARAM, "agent '%s' is already exported by this "
                       "process: agent names must be unique per process", a->name);
            free(a);
            return NIXL_ERR_INVALID_PARAM;
        }
    pthread_mutex_unlock(&data_lock);
    if (!server) {
        char why[256];
        int e = prom_http_start(cfg.addr, cfg.port, render, NULL, &server, why, sizeof(why));
        if (e == 0) {
            snprintf(server_addr, sizeof(server_addr), "%s", cfg.addr);
            server_port = cfg.port;
            host->log(host, NIXL_LOG_INFO, "serving http://%s:%u/metrics", cfg.addr,
                      (unsigned)cfg.port);
        } else {
            host->log(host, NIXL_LOG_WARN, "%s: agent '%s' runs without Prometheus telemetry",
                      why, a->name);
        }
    } else if (server_port != cfg.port || strcmp(server_addr, cfg.addr) != 0) {
        host->log(host, NIXL_LOG_WARN, "agent '%s' asks for %s:%u; this process already serves "
                  "%s:%u, which exports it", a->name, cfg.addr, (unsigned)cfg.port, server_addr,
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
    return NIXL_SUCCESS;
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
