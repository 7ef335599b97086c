/*
 * prom_metrics.h - the metrics of one agent as the reference's Prometheus exporters name them
 * (NIXL-SEMANTICS 8.4): counters, last-value gauges and two histograms in microseconds, fed
 * by telemetry events, written in Prometheus's text exposition format (version 0.0.4).
 */
#ifndef NIXL_PROM_METRICS_H
#define NIXL_PROM_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "nixl_telemetry.h"

#define PROM_MAX_BOUNDS 64
#define PROM_NUM_ERRORS 12

typedef struct prom_hist {
    uint64_t counts[PROM_MAX_BOUNDS + 1]; /* per bucket (not cumulative); the last is +Inf */
    uint64_t sum, count;
} prom_hist_t;

typedef struct prom_bounds {
    uint64_t le[PROM_MAX_BOUNDS];
    size_t n;
} prom_bounds_t;

/* Plain numbers, so that the multi-process exporter can keep them in a shared file. */
typedef struct prom_values {
    uint64_t total[NIXL_TELEM_EVENT_COUNT]; /* sum of the values of each event */
    uint64_t last[NIXL_TELEM_EVENT_COUNT];  /* the last value of each event */
    prom_hist_t xfer_time, post_time;
} prom_values_t;

/* The default bounds (µs), or NIXL_TELEMETRY_HISTOGRAM_BUCKETS_US's (`text`, may be NULL):
 * a comma-separated, strictly increasing list of positive integers, at most `max`. False with
 * a reason in `why` otherwise. */
bool prom_bounds_parse(const char *text, size_t max, prom_bounds_t *out, char *why,
                       size_t why_len);

void prom_values_add(prom_values_t *v, const prom_bounds_t *b, const nixl_telemetry_event_t *ev,
                     size_t n);

/* The labels of one series set: `hostname="..",agent_name=".."` plus extras (already
 * formatted, may be empty), escaped as the format wants. */
typedef struct prom_labels {
    char text[1024];
} prom_labels_t;
void prom_labels_make(prom_labels_t *l, const char *hostname, const char *agent,
                      const char *extra_name[], const char *extra_value[], size_t n_extra);

/* One family written for `n` label sets and their values (all share `bounds`). Families come
 * in a fixed order; call prom_render with every agent's values at once. */
void prom_render(nixl_buf_t *out, const prom_labels_t *const *labels,
                 const prom_values_t *const *values, const prom_bounds_t *const *bounds,
                 size_t n);

#endif
