/* prom_metrics.c - counters, gauges and histograms of reference 8.4, and their exposition. */
#include "prom_metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "parse.h"

static const uint64_t default_bounds[] = {10,     25,     50,      100,     250,     500,
                                          1000,   2500,   5000,    10000,   25000,   50000,
                                          100000, 250000, 500000,  1000000, 5000000, 10000000};

static const char *const error_status[PROM_NUM_ERRORS] = {
    "not_posted", "invalid_param", "backend", "not_found", "mismatch", "not_allowed",
    "repost_active", "unknown", "not_supported", "remote_disconnect", "canceled", "no_telemetry",
};

bool prom_bounds_parse(const char *text, size_t max, prom_bounds_t *out, char *why,
                       size_t why_len)
{
    if (!text || !*text) {
        out->n = sizeof(default_bounds) / sizeof(default_bounds[0]);
        memcpy(out->le, default_bounds, sizeof(default_bounds));
        return true;
    }
    size_t n = 0;
    const char *p = text;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && *p == ' ')
            p++, len--;
        while (len && p[len - 1] == ' ')
            len--;
        char tok[32];
        uint64_t v;
        if (!len || len >= sizeof(tok)) {
            snprintf(why, why_len, "an empty or overlong entry");
            return false;
        }
        memcpy(tok, p, len);
        tok[len] = '\0';
        if (!nixl_parse_u64(tok, &v) || v == 0) {
            snprintf(why, why_len, "'%s' is not a positive integer (µs)", tok);
            return false;
        }
        if (n && v <= out->le[n - 1]) {
            snprintf(why, why_len, "%" PRIu64 " after %" PRIu64 ": the list must be strictly "
                     "increasing", v, out->le[n - 1]);
            return false;
        }
        if (n == max) {
            snprintf(why, why_len, "more than %zu bounds", max);
            return false;
        }
        out->le[n++] = v;
        if (!end)
            break;
        p = end + 1;
    }
    out->n = n;
    return true;
}

static void hist_add(prom_hist_t *h, const prom_bounds_t *b, uint64_t v)
{
    size_t i = 0;
    while (i < b->n && v > b->le[i])
        i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void prom_values_add(prom_values_t *v, const prom_bounds_t *b, const nixl_telemetry_event_t *ev,
                     size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ev[i].id;
        if (id >= NIXL_TELEM_EVENT_COUNT)
            continue;
        v->total[id] += ev[i].value;
        v->last[id] = ev[i].value;
        if (id == NIXL_TELEM_XFER_TIME)
            hist_add(&v->xfer_time, b, ev[i].value);
        else if (id == NIXL_TELEM_XFER_POST_TIME)
            hist_add(&v->post_time, b, ev[i].value);
    }
}

/* Bytes of the well-formed UTF-8 character at `s` (NUL-terminated), 0 if it is not one:
 * overlong forms, surrogates and code points past U+10FFFF included. */
static size_t utf8_char(const unsigned char *s)
{
    static const struct {
        unsigned char lead_min, lead_max, len, second_min, second_max;
    } forms[] = {
        {0xc2, 0xdf, 2, 0x80, 0xbf}, {0xe0, 0xe0, 3, 0xa0, 0xbf}, {0xe1, 0xec, 3, 0x80, 0xbf},
        {0xed, 0xed, 3, 0x80, 0x9f}, {0xee, 0xef, 3, 0x80, 0xbf}, {0xf0, 0xf0, 4, 0x90, 0xbf},
        {0xf1, 0xf3, 4, 0x80, 0xbf}, {0xf4, 0xf4, 4, 0x80, 0x8f},
    };
    if (s[0] < 0x80)
        return 1;
    for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
        if (s[0] < forms[f].lead_min || s[0] > forms[f].lead_max)
            continue;
        if (s[1] < forms[f].second_min || s[1] > forms[f].second_max)
            return 0;
        for (size_t i = 2; i < forms[f].len; i++)
            if ((s[i] & 0xc0) != 0x80)
                return 0; /* a NUL stops here too */
        return forms[f].len;
    }
    return 0;
}

/* A label value as the text format wants it: backslash, quote and newline escaped, and valid
 * UTF-8 (Prometheus refuses the whole scrape otherwise): a byte that does not start a
 * well-formed character becomes '?'. Cut at `cap` between characters, never inside one. */
static size_t escape(char *out, size_t cap, const char *in)
{
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)in;
    while (*p) {
        size_t take = utf8_char(p), put_len = take;
        const char *put = (const char *)p;
        if (*p == '\\' || *p == '"') {
            put = *p == '"' ? "\\\"" : "\\\\";
            put_len = 2;
        } else if (*p == '\n') {
            put = "\\n";
            put_len = 2;
        } else if (!take) {
            put = "?";
            put_len = take = 1;
        }
        if (n + put_len + 1 > cap)
            break;
        memcpy(out + n, put, put_len);
        n += put_len;
        p += take;
    }
    out[n] = '\0';
    return n;
}

void prom_labels_make(prom_labels_t *l, const char *hostname, const char *agent,
                      const char *extra_name[], const char *extra_value[], size_t n_extra)
{
    char h[256], a[512];
    escape(h, sizeof(h), hostname);
    escape(a, sizeof(a), agent);
    int len = snprintf(l->text, sizeof(l->text), "hostname=\"%s\",agent_name=\"%s\"", h, a);
    for (size_t i = 0; i < n_extra && len > 0 && (size_t)len < sizeof(l->text); i++) {
        char v[128];
        escape(v, sizeof(v), extra_value[i]);
        len += snprintf(l->text + len, sizeof(l->text) - (size_t)len, ",%s=\"%s\"",
                        extra_name[i], v);
    }
}

__attribute__((format(printf, 2, 3))) static void put(nixl_buf_t *out, const char *fmt, ...)
{
    char line[1536];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        nixl_buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static const struct {
    const char *name, *help;
    uint32_t id;
} counters[] = {
    {"agent_tx_bytes_total", "Bytes sent by completed WRITE transfers", NIXL_TELEM_TX_BYTES},
    {"agent_rx_bytes_total", "Bytes received by completed READ transfers", NIXL_TELEM_RX_BYTES},
    {"agent_tx_requests_num_total", "Completed WRITE requests", NIXL_TELEM_TX_REQUESTS_NUM},
    {"agent_rx_requests_num_total", "Completed READ requests", NIXL_TELEM_RX_REQUESTS_NUM},
    {"agent_memory_registered_total", "Bytes of memory registered",
     NIXL_TELEM_MEMORY_REGISTERED},
    {"agent_memory_deregistered_total", "Bytes of memory deregistered",
     NIXL_TELEM_MEMORY_DEREGISTERED},
    {"agent_xfer_time_total", "Sum of transfer times (post to completion), microseconds",
     NIXL_TELEM_XFER_TIME},
    {"agent_xfer_post_time_total", "Sum of post call durations, microseconds",
     NIXL_TELEM_XFER_POST_TIME},
    {"agent_telemetry_events_dropped_total", "Telemetry events dropped (queue full)",
     NIXL_TELEM_TELEMETRY_EVENTS_DROPPED},
};

static const struct {
    const char *name, *help;
    uint32_t id;
} gauges[] = {
    {"agent_tx_last_bytes", "Bytes of the last completed WRITE request", NIXL_TELEM_TX_BYTES},
    {"agent_rx_last_bytes", "Bytes of the last completed READ request", NIXL_TELEM_RX_BYTES},
    {"agent_memory_registered_last_bytes", "Bytes of the last registration",
     NIXL_TELEM_MEMORY_REGISTERED},
    {"agent_memory_deregistered_last_bytes", "Bytes of the last deregistration",
     NIXL_TELEM_MEMORY_DEREGISTERED},
    {"agent_xfer_time", "Transfer time of the last completed request, microseconds",
     NIXL_TELEM_XFER_TIME},
    {"agent_xfer_post_time", "Post duration of the last completed request, microseconds",
     NIXL_TELEM_XFER_POST_TIME},
};

static void render_hist(nixl_buf_t *out, const char *name, const char *help, bool post,
                        const prom_labels_t *const *labels, const prom_values_t *const *values,
                        const prom_bounds_t *const *bounds, size_t n)
{
    put(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t a = 0; a < n; a++) {
        const prom_hist_t *h = post ? &values[a]->post_time : &values[a]->xfer_time;
        uint64_t cum = 0;
        for (size_t i = 0; i < bounds[a]->n; i++) {
            cum += h->counts[i];
            put(out, "%s_bucket{%s,le=\"%" PRIu64 "\"} %" PRIu64 "\n", name, labels[a]->text,
                bounds[a]->le[i], cum);
        }
        cum += h->counts[bounds[a]->n];
        put(out, "%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n", name, labels[a]->text, cum);
        put(out, "%s_sum{%s} %" PRIu64 "\n", name, labels[a]->text, h->sum);
        put(out, "%s_count{%s} %" PRIu64 "\n", name, labels[a]->text, h->count);
    }
}

void prom_render(nixl_buf_t *out, const prom_labels_t *const *labels,
                 const prom_values_t *const *values, const prom_bounds_t *const *bounds,
                 size_t n)
{
    for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
        put(out, "# HELP %s %s\n# TYPE %s counter\n", counters[c].name, counters[c].help,
            counters[c].name);
        for (size_t a = 0; a < n; a++)
            put(out, "%s{%s} %" PRIu64 "\n", counters[c].name, labels[a]->text,
                values[a]->total[counters[c].id]);
    }
    put(out, "# HELP agent_errors_total Failed transfer calls, by status\n"
             "# TYPE agent_errors_total counter\n");
    for (size_t a = 0; a < n; a++)
        for (unsigned e = 0; e < PROM_NUM_ERRORS; e++)
            put(out, "agent_errors_total{%s,status=\"%s\"} %" PRIu64 "\n", labels[a]->text,
                error_status[e], values[a]->total[NIXL_TELEM_ERR_NOT_POSTED + e]);
    for (size_t g = 0; g < sizeof(gauges) / sizeof(gauges[0]); g++) {
        put(out, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g].name, gauges[g].help,
            gauges[g].name);
        for (size_t a = 0; a < n; a++)
            put(out, "%s{%s} %" PRIu64 "\n", gauges[g].name, labels[a]->text,
                values[a]->last[gauges[g].id]);
    }
    render_hist(out, "agent_xfer_time_us", "Transfer time (post to completion), microseconds",
                false, labels, values, bounds, n);
    render_hist(out, "agent_xfer_post_time_us", "Post call duration, microseconds", true,
                labels, values, bounds, n);
}
